"""Category mapping, serving features, and encoding with its imputation ledger."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets import model as model_lib
from risk_assets import warehouse
from risk_assets.defs.common import daily_partitions, md_table, open_warehouse, partition_day, read_partition
from risk_assets.features import sql as feature_sql
from risk_assets.features.encoding import encode, ledger_rates
from risk_assets.features.mapping import build_mapping
from risk_assets.features.spec import FEATURE_NAMES, LOOKBACK_DAYS, SPEC_VERSION
from risk_assets.settings import Settings

LOOKBACK_MAPPING = dg.TimeWindowPartitionMapping(
    start_offset=-(LOOKBACK_DAYS + 1), end_offset=0, allow_nonexistent_upstream_partitions=True
)


def current_mapping_version(conn) -> str:
    versions = [r[0] for r in conn.execute("SELECT DISTINCT version FROM category_mapping").fetchall()]
    if len(versions) != 1:
        raise dg.Failure(
            description=f"expected one current category mapping, found {len(versions)}: "
            "materialise `category_mapping` first"
        )
    return versions[0]


def deployed_model(conn) -> tuple:
    rows = conn.execute(
        "SELECT path FROM model_registry WHERE deployed_at IS NOT NULL ORDER BY deployed_at DESC, version LIMIT 1"
    ).fetchall()
    if not rows:
        raise dg.Failure(description="no deployed model: materialise `risk_model` first (training_job)")
    return model_lib.load(rows[0][0])


def parity_sample(ids, settings: Settings, day: dt.date) -> list[str]:
    """The night's seeded sample of customer ids (a new one every night)."""
    c = settings.checks
    rng = np.random.default_rng([c.parity_seed, day.toordinal()])
    ids = np.asarray(ids, dtype=object)
    n = min(c.parity_sample, len(ids))
    return sorted(rng.choice(ids, size=n, replace=False)) if n else []


def stored_parity_sample(conn, settings: Settings, day: dt.date) -> pd.DataFrame:
    """The stored serving features of tonight's parity sample only (the ids are read
    first: reading 2,000 rows instead of every customer's)."""
    ids = [r[0] for r in conn.execute(
        "SELECT customer_id FROM serving_features WHERE partition = ? ORDER BY customer_id", [day]).fetchall()]
    conn.register("_parity_ids", pd.DataFrame({"customer_id": parity_sample(ids, settings, day)}, dtype=object))
    try:
        return warehouse.frame(conn, "SELECT s.* FROM serving_features s JOIN _parity_ids USING (customer_id) "
                                     "WHERE s.partition = ? ORDER BY s.customer_id", [day])
    finally:
        conn.unregister("_parity_ids")


def sample_parity(conn, settings: Settings, day: dt.date, mapping_version: str | None = None,
                  served: pd.DataFrame | None = None):
    """Recompute a seeded sample of a night's customers with the training path and compare
    it with the serving path (``served``: the stored rows, at least the sample's; computed
    now when None). Shared by the nightly parity check and the deployment gate."""
    from risk_assets.guards.parity import parity

    c = settings.checks
    tz = settings.calendar.timezone
    mapping_version = mapping_version or current_mapping_version(conn)
    if served is None:
        skew = feature_sql.ServingSkew(settings.serving_skew.end_shift_hours, settings.serving_skew.window_days_offset)
        served = feature_sql.serving_features(conn, day, tz, mapping_version, skew)
    sample = parity_sample(served["customer_id"].to_numpy(), settings, day)
    recomputed = feature_sql.training_features(conn, [day], tz, mapping_version, customers=sample)
    return parity(served[served["customer_id"].isin(sample)], recomputed, c.parity_atol, c.parity_rtol,
                  c.parity_bias_alpha, c.parity_min_nonzero, c.parity_categorical_tolerance)


def build_feature_assets(settings: Settings) -> list:
    partitions = daily_partitions(settings)
    tz = settings.calendar.timezone
    skew = feature_sql.ServingSkew(
        settings.serving_skew.end_shift_hours, settings.serving_skew.window_days_offset
    )

    @dg.asset(
        group_name="features",
        kinds={"duckdb"},
        code_version="1",
        deps=[dg.AssetDep("raw_transactions")],
        description="Versioned map raw category -> canonical category -> code: the categories "
        "seen in the training period plus the aliases in `settings.mapping.aliases`.",
    )
    def category_mapping(duckdb: DuckDBResource) -> dg.MaterializeResult:
        t = settings.training
        with open_warehouse(duckdb) as conn:
            seen = conn.execute(
                "SELECT category AS raw_category, count(*) AS rows, sum(amount_cents) AS amount_cents, "
                "avg(ln(amount_cents)) AS log_amount_mean, coalesce(stddev_samp(ln(amount_cents)), 0) AS log_amount_std "
                "FROM raw_transactions "
                "WHERE partition BETWEEN ? AND ? GROUP BY category",
                [t.start - dt.timedelta(days=LOOKBACK_DAYS), t.end],
            ).df()
            if seen.empty:
                raise dg.Failure(description=f"no raw transactions in the training period {t.start}..{t.end}")
            mapping = build_mapping(seen, dict(settings.mapping.aliases))
            version = mapping.at[0, "version"]
            known = warehouse.scalar(
                conn, "SELECT count(*) FROM category_mapping_history WHERE version = ?", [version]
            )
            with warehouse.transaction(conn):
                conn.execute("DELETE FROM category_mapping")
                warehouse.insert(conn, "category_mapping", mapping)
                if not known:
                    warehouse.insert(
                        conn, "category_mapping_history", mapping.assign(created_at=pd.Timestamp.now("UTC").tz_localize(None))
                    )
        return dg.MaterializeResult(
            metadata={
                "mapping_version": version,
                "canonical_categories": int(mapping["canonical"].nunique()),
                "aliases": int((mapping["origin"] == "alias").sum()),
                "mapping": md_table(mapping[["raw_category", "canonical", "code", "origin", "training_rows"]], 60),
                "new_version": not known,
            }
        )

    @dg.asset(
        group_name="features",
        kinds={"duckdb"},
        code_version=SPEC_VERSION,
        partitions_def=partitions,
        deps=[
            dg.AssetDep("raw_transactions", partition_mapping=LOOKBACK_MAPPING),
            dg.AssetDep("customers"),
            category_mapping,
        ],
        description="Every active customer's features as of the end of day P, computed by the "
        "serving execution of the feature spec (NULLs kept; encoding logs every substitution).",
    )
    def serving_features(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            mapping_version = current_mapping_version(conn)
            frame = feature_sql.serving_features(conn, day, tz, mapping_version, skew)
            frame = frame.assign(spec_version=SPEC_VERSION, mapping_version=mapping_version)
            warehouse.replace_partition(conn, day, {"serving_features": frame})
        nulls = frame[list(FEATURE_NAMES)].isna().sum()
        if skew.active:
            context.log.warning(f"serving skew injection is ON: {skew}")
        return dg.MaterializeResult(
            metadata={
                "active_customers": len(frame),
                "null_cells": int(nulls.sum()),
                "null_cells_by_feature": md_table(
                    nulls[nulls > 0].rename("cells").rename_axis("feature").reset_index(), 30
                ),
                "spec_version": SPEC_VERSION,
                "mapping_version": mapping_version,
                "serving_skew": str(skew) if skew.active else "off",
                "settings_version": settings.version(),
            }
        )

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "encoded_features",
                group_name="features",
                kinds={"duckdb"},
                code_version=SPEC_VERSION,
                partitions_def=partitions,
                deps=[serving_features, "risk_model"],
                description="Serving features on the deployed model's vocabulary: unseen levels "
                "are `__unseen__`, missing numbers the training median — each one in the ledger.",
            ),
            dg.AssetSpec(
                "imputation_log",
                group_name="features",
                kinds={"duckdb"},
                code_version="1",
                partitions_def=partitions,
                deps=[serving_features, "risk_model"],
                description="The ledger: one row per substituted cell (customer, feature, reason, "
                "original and substituted value, versions).",
            ),
        ],
        can_subset=False,
    )
    def encoded_features(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> Iterator:
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            _, card = deployed_model(conn)
            served = read_partition(conn, "serving_features", day)
            mapping_version = served.at[0, "mapping_version"]
            encoded, ledger = encode(served.drop(columns=["partition"]), card.enc)
            versions = {"spec_version": SPEC_VERSION, "mapping_version": mapping_version,
                        "model_version": card.version}
            encoded = encoded.assign(**versions)
            ledger = ledger.assign(**versions)
            warehouse.replace_partition(conn, day, {"encoded_features": encoded, "imputation_log": ledger})
            stored_ledger = warehouse.count(conn, "imputation_log", day)
        rates = ledger_rates(ledger, len(encoded))
        per_feature = rates.groupby("feature", sort=False)["cells"].sum()
        yield dg.MaterializeResult(
            asset_key="encoded_features",
            metadata={
                "rows": len(encoded),
                "substituted_cells": len(ledger),
                "rows_with_any_substitution": int(ledger["customer_id"].nunique()),
                "substitutions": md_table(rates[rates["cells"] > 0], 40),
                # one numeric entry per feature, so the UI plots every rate over time
                **{f"substituted_rate.{f}": float(per_feature.get(f, 0)) / len(encoded) for f in FEATURE_NAMES},
                **versions,
            },
        )
        yield dg.MaterializeResult(
            asset_key="imputation_log",
            metadata={"ledger_rows": stored_ledger, "examples": md_table(ledger.head(10)), **versions},
        )

    return [category_mapping, serving_features, encoded_features]
