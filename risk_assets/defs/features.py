"""Category mapping, serving features, and encoding with its imputation ledger."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets.core.features.encoding import encode, ledger_rates
from risk_assets.core.features.mapping import build_mapping, channel_vocabulary
from risk_assets.core.features.spec import FEATURE_NAMES, LOOKBACK_DAYS, SPEC_VERSION
from risk_assets.core.night import Night
from risk_assets.defs import render
from risk_assets.defs.resources import daily_partitions, night_of, open_engine
from risk_assets.engines import Engine, EngineFactory
from risk_assets.settings import Settings
from risk_assets.store import registry, warehouse
from risk_assets.store.warehouse import NotMaterialised

LOOKBACK_MAPPING = dg.TimeWindowPartitionMapping(
    start_offset=-(LOOKBACK_DAYS + 1), end_offset=0, allow_nonexistent_upstream_partitions=True
)


# --------------------------------------------------------------------------- bodies
def build_category_mapping(engine: Engine, settings: Settings) -> dict:
    """The training period's categories plus the configured aliases, as the current
    mapping (a new version when anything changed)."""
    conn, t = engine.conn, settings.training
    first = Night.of(t.start, settings.calendar).days_back(LOOKBACK_DAYS)
    seen = registry.category_volumes(engine, first, t.end)
    if seen.empty:
        raise NotMaterialised(f"no raw transactions in the training period {t.start}..{t.end}")
    channels = registry.channel_volumes(engine, first, t.end)
    mapping = build_mapping(seen, dict(settings.mapping.aliases), channels)
    vocabulary = channel_vocabulary(mapping.at[0, "version"], channels)
    new = registry.replace_mapping(conn, mapping, vocabulary, pd.Timestamp.now("UTC").tz_localize(None))
    return {
        "mapping_version": mapping.at[0, "version"],
        "canonical_categories": int(mapping["canonical"].nunique()),
        "aliases": int((mapping["origin"] == "alias").sum()),
        "mapping": mapping[["raw_category", "canonical", "code", "origin", "training_rows"]],
        "channels": vocabulary[["channel", "training_rows"]],
        "new_version": new,
    }


def compute_serving_features(engine: Engine, night: Night, settings: Settings) -> dict:
    """Every active customer's features as of the night, written as its partition by the
    engine's serving execution."""
    conn = engine.conn
    mapping_version = registry.current_mapping_version(conn)
    engine.write_serving(night, mapping_version, settings.features.vocabulary())
    rows = warehouse.count(conn, "serving_features", night.day)
    engine.published("serving_features", night.day, rows)
    nulls = pd.Series(warehouse.null_cells(conn, "serving_features", night.day, list(FEATURE_NAMES)), dtype="int64")
    return {
        "active_customers": rows,
        "null_cells": int(nulls.sum()),
        "null_cells_by_feature": nulls[nulls > 0].rename("cells").rename_axis("feature").reset_index(),
        "spec_version": SPEC_VERSION,
        "mapping_version": mapping_version,
        **engine.describe(),
        "settings_version": settings.version(),
    }


def encode_night(engine: Engine, night: Night) -> tuple[dict, dict]:
    """The night's serving features on the deployed model's vocabulary, and the ledger of
    every substituted cell; returns the metadata of both assets."""
    conn = engine.conn
    _, card = registry.load_deployed(conn)
    served = warehouse.read_partition(conn, "serving_features", night.day)
    versions = {
        "spec_version": SPEC_VERSION,
        "mapping_version": served.at[0, "mapping_version"],
        "model_version": card.version,
    }
    encoded, ledger = encode(served.drop(columns=["partition"]), card.enc)
    encoded, ledger = encoded.assign(**versions), ledger.assign(**versions)
    warehouse.replace_partition(conn, night.day, {"encoded_features": encoded, "imputation_log": ledger})
    engine.published("encoded_features", night.day, len(encoded))
    engine.published("imputation_log", night.day, len(ledger))
    rates = ledger_rates(ledger, len(encoded))
    per_feature = rates.groupby("feature", sort=False)["cells"].sum()
    encoded_meta = {
        "rows": len(encoded),
        "substituted_cells": len(ledger),
        "rows_with_any_substitution": int(ledger["customer_id"].nunique()),
        "substitutions": rates[rates["cells"] > 0],
        # one numeric entry per feature, so the UI plots every rate over time
        **{f"substituted_rate.{f}": float(per_feature.get(f, 0)) / len(encoded) for f in FEATURE_NAMES},
        **versions,
    }
    ledger_meta = {
        "ledger_rows": warehouse.count(conn, "imputation_log", night.day),
        "examples": ledger.head(10),
        **versions,
    }
    return encoded_meta, ledger_meta


# --------------------------------------------------------------------------- factory
def build_feature_assets(settings: Settings) -> list:
    partitions = daily_partitions(settings)

    @dg.asset(
        group_name="features",
        kinds={"duckdb"},
        code_version="1",
        deps=[dg.AssetDep("raw_transactions")],
        description="Versioned map raw category -> canonical category -> code: the categories "
        "seen in the training period plus the aliases in `settings.mapping.aliases`.",
    )
    def category_mapping(duckdb: DuckDBResource, engine: dg.ResourceParam[EngineFactory]) -> dg.MaterializeResult:
        with render.clear_failure(), open_engine(duckdb, engine) as opened:
            return dg.MaterializeResult(metadata=render.metadata(build_category_mapping(opened, settings)))

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
    def serving_features(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, engine: dg.ResourceParam[EngineFactory]
    ) -> dg.MaterializeResult:
        with render.clear_failure(), open_engine(duckdb, engine) as opened:
            meta = compute_serving_features(opened, night_of(context, settings), settings)
        if meta.get("fault"):
            context.log.warning(f"fault injection is ON: {meta['fault']}")
        return dg.MaterializeResult(metadata=render.metadata(meta))

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
    def encoded_features(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, engine: dg.ResourceParam[EngineFactory]
    ):
        with render.clear_failure(), open_engine(duckdb, engine) as opened:
            encoded_meta, ledger_meta = encode_night(opened, night_of(context, settings))
        yield dg.MaterializeResult(asset_key="encoded_features", metadata=render.metadata(encoded_meta))
        yield dg.MaterializeResult(asset_key="imputation_log", metadata=render.metadata(ledger_meta))

    return [category_mapping, serving_features, encoded_features]
