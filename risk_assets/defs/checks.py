"""Asset checks on the daily partitions, upstream of ``risk_scores``.

Thin: each loads its frames from DuckDB and hands them to a guard in
:mod:`risk_assets.guards`. ERROR results of blocking checks stop every downstream
step of the run, so a bad night never reaches ``risk_scores``."""

import datetime as dt

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets import warehouse
from risk_assets.defs.common import (
    check_result,
    daily_partitions,
    open_warehouse,
    partition_day,
    partition_window,
    read_partition,
)
from risk_assets.defs.features import current_mapping_version, deployed_model, sample_parity, stored_parity_sample
from risk_assets.features.encoding import UNSEEN_CATEGORY
from risk_assets.features.spec import LOOKBACK_DAYS, NUMERIC, window_bounds
from risk_assets.guards import Outcome
from risk_assets.guards.coverage import category_coverage
from risk_assets.guards.drift import drift_bounds, drift_direction, monitored_features
from risk_assets.guards.imputation import category_usage, imputation_ceiling, missingness_pattern
from risk_assets.guards.schemas import encoded_schema, raw_schema
from risk_assets.guards.volume import row_volume
from risk_assets.settings import Settings
from risk_assets.sources import make_source


def _night(conn, day: dt.date) -> pd.DataFrame:
    return conn.execute(
        "SELECT transaction_id, category, amount_cents FROM raw_transactions WHERE partition = ?", [day]
    ).df()


def _mapping(conn) -> pd.DataFrame:
    return conn.execute("SELECT * FROM category_mapping").df()


def _coverage(conn, day: dt.date, threshold: float) -> Outcome:
    return category_coverage(_night(conn, day), _mapping(conn), threshold)


def build_checks(settings: Settings) -> list:
    partitions = daily_partitions(settings)
    c = settings.checks
    tz = settings.calendar.timezone

    def check(name: str, asset: str, blocking: bool = True, **kwargs):
        return dg.asset_check(name=name, asset=asset, partitions_def=partitions, blocking=blocking, **kwargs)

    # ------------------------------------------------------------------ raw layer
    @check(name="rows_reconcile", asset="raw_transactions",
           description="received = accepted + rejected: the counts recorded at load time against the "
           "rows stored in raw_transactions and rejected_transactions.")
    def rows_reconcile(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            load = conn.execute("SELECT received, accepted, rejected FROM raw_loads WHERE partition = ?", [day]).fetchall()
            accepted = warehouse.count(conn, "raw_transactions", day)
            rejected = warehouse.count(conn, "rejected_transactions", day)
        received = load[0][0] if load else 0
        passed = bool(load) and received == accepted + rejected == load[0][1] + load[0][2]
        outcome = Outcome(
            passed=passed, severity="ERROR",
            summary=(f"received {received} = {accepted} accepted + {rejected} rejected" if passed else
                     f"received {received} but stored {accepted} accepted + {rejected} rejected"
                     if load else "no load recorded for this partition"),
            metadata={"received": received, "stored_accepted": accepted, "stored_rejected": rejected,
                      "unaccounted": received - accepted - rejected},
        )
        return check_result(outcome, settings)

    @check(name="raw_schema", asset="raw_transactions", description="Pandera schema of the stored partition: types, ranges, "
           "unique ids, timestamps inside the partition.")
    def raw_schema_check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        key = context.partition_key
        with open_warehouse(duckdb) as conn:
            frame = conn.execute("SELECT * FROM raw_transactions WHERE partition = ?", [partition_day(key)]).df()
        outcome = raw_schema(frame, partition_window(partitions, key), settings.raw.max_amount,
                             settings.raw.max_text_length)
        return check_result(outcome, settings, partition=key)

    @check(name="rejection_rate", asset="raw_transactions", description="Share of received rows the contract rejected.")
    def rejection_rate(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            accepted = warehouse.count(conn, "raw_transactions", day)
            reasons = conn.execute(
                "SELECT reasons, count(*) AS rows FROM rejected_transactions WHERE partition = ? "
                "GROUP BY reasons ORDER BY rows DESC", [day]).df()
        rejected = int(reasons["rows"].sum()) if len(reasons) else 0
        share = rejected / (accepted + rejected) if accepted + rejected else 0.0
        outcome = Outcome(
            passed=share <= c.max_rejected_share, severity="ERROR",
            summary=f"{rejected} of {accepted + rejected} rows rejected ({share:.2%}, threshold {c.max_rejected_share:.2%})",
            metadata={"accepted": accepted, "rejected": rejected, "rejected_share": share,
                      "threshold": c.max_rejected_share},
            tables={"reasons": reasons},
        )
        return check_result(outcome, settings)

    @check(name="row_volume", asset="raw_transactions",
           description="A day with no rows, or far fewer than the recent median, stops the night: "
           "zero rows break no contract but would silently shrink every window.")
    def row_volume_check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            loads = conn.execute(
                "SELECT partition, received, accepted FROM raw_loads WHERE partition BETWEEN ? AND ? ORDER BY partition",
                [day - dt.timedelta(days=28), day]).fetchall()
        today = [r for r in loads if r[0] == day]
        received, accepted = (today[0][1], today[0][2]) if today else (0, 0)
        recent = [r[2] for r in loads if r[0] != day]
        return check_result(row_volume(received, accepted, recent, c.min_volume_share), settings)

    @check(name="category_coverage", asset="raw_transactions", blocking=False, additional_deps=["category_mapping"],
           description="Unmapped categories among the night's raw rows, vanished categories and "
           "suggested aliases. ERROR but not blocking here, so the feature layer still shows the "
           "consequences; the blocking coverage check sits on encoded_features.")
    def category_coverage_raw(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with open_warehouse(duckdb) as conn:
            outcome = _coverage(conn, partition_day(context.partition_key), c.coverage_max_unmapped_share)
            version = current_mapping_version(conn)
        return check_result(outcome, settings, mapping_version=version)

    @check(name="late_arrivals", asset="raw_transactions", blocking=False,
           description="Reconciles last night: re-reads the previous partition from the source with "
           "tonight's cut-off; rows that arrived after it was served are late data, and the customers "
           "they belong to were scored on incomplete windows. WARN with the affected share.")
    def late_arrivals(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        previous = day - dt.timedelta(days=1)
        with open_warehouse(duckdb) as conn:
            loads = dict(conn.execute("SELECT partition, read_at FROM raw_loads WHERE partition IN (?, ?)",
                                      [previous, day]).fetchall())
            if previous not in loads:
                outcome = Outcome(True, "WARN", f"nothing to reconcile: {previous} was never loaded",
                                  {"late_rows": 0, "reconciled_partition": str(previous)})
                return check_result(outcome, settings)
            stored = {r[0] for r in conn.execute(
                "SELECT transaction_id FROM raw_transactions WHERE partition = ? UNION "
                "SELECT record_key FROM rejected_transactions WHERE partition = ?", [previous, previous]).fetchall()}
            scored = {r[0] for r in conn.execute(
                "SELECT customer_id FROM risk_scores WHERE partition = ?", [previous]).fetchall()}
        cutoff = loads.get(day)
        now = make_source(settings).transactions(previous, read_at=pd.Timestamp(cutoff) if cutoff else None)
        late = now[~now["transaction_id"].isin(stored)]
        affected = set(late["customer_id"]) & scored
        share = len(late) / max(len(now), 1)
        outcome = Outcome(
            passed=late.empty, severity="WARN",
            summary=(f"{len(late)} row(s) of {previous} arrived after it was served ({share:.2%}); "
                     f"{len(affected)} scored customer(s) affected — re-run {previous} to refresh"
                     if len(late) else f"{previous}: no late rows by tonight's cut-off"),
            metadata={"reconciled_partition": str(previous), "late_rows": len(late), "late_share": share,
                      "affected_customers": len(affected),
                      "affected_share": len(affected) / len(scored) if scored else 0.0,
                      "cutoff": cutoff or "(all arrived)"},
        )
        return check_result(outcome, settings)

    # ------------------------------------------------------------------ serving features
    @check(name="lookback_complete", asset="serving_features",
           description="Every raw partition the night's 90-day look-back reads has been loaded "
           "(a missing day would silently shrink every window).")
    def lookback_complete(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        first = max(settings.calendar.partitions_start, day - dt.timedelta(days=LOOKBACK_DAYS))
        with open_warehouse(duckdb) as conn:
            loaded = {r[0] for r in conn.execute(
                "SELECT partition FROM raw_loads WHERE partition BETWEEN ? AND ?", [first, day]).fetchall()}
        expected = [first + dt.timedelta(days=i) for i in range((day - first).days + 1)]
        missing = [d for d in expected if d not in loaded]
        outcome = Outcome(
            passed=not missing, severity="ERROR",
            summary=(f"{len(missing)} of {len(expected)} look-back day(s) never loaded: "
                     + ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else ""))
            if missing else f"all {len(expected)} look-back days loaded ({first} .. {day})",
            metadata={"lookback_days": len(expected), "missing_days": len(missing),
                      "first_missing": str(missing[0]) if missing else "-"},
        )
        return check_result(outcome, settings)

    @check(name="feature_parity", asset="serving_features", description="A seeded sample of tonight's customers recomputed by the "
           "training path and compared row by row: tolerance, missing rows and one-sided bias.")
    def feature_parity(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            served = stored_parity_sample(conn, settings, day)
            mapping_version = served.at[0, "mapping_version"] if len(served) else current_mapping_version(conn)
            outcome = sample_parity(conn, settings, day, mapping_version, served=served)
        return check_result(outcome, settings, weekday=day.strftime("%A"), mapping_version=mapping_version)

    # ------------------------------------------------------------------ encoded features
    def _encoded(conn, day):
        return read_partition(conn, "encoded_features", day)

    def _ledger(conn, day):
        return conn.execute("SELECT * FROM imputation_log WHERE partition = ?", [day]).df()

    @check(name="encoded_schema", asset="encoded_features", description="Pandera schema: finite numbers, categorical levels in the "
           "deployed model's vocabulary, one row per customer, versions present.")
    def encoded_schema_check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with open_warehouse(duckdb) as conn:
            _, card = deployed_model(conn)
            frame = _encoded(conn, partition_day(context.partition_key))
        return check_result(encoded_schema(frame, card.enc.vocab, card.version), settings, model_version=card.version)

    @check(name="category_coverage", asset="encoded_features", additional_deps=["category_mapping"],
           description="Blocking coverage gate: unmapped share of the night's rows and share of "
           "scored customers with an unseen category in their features.")
    def category_coverage_features(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            outcome = _coverage(conn, day, c.coverage_max_unmapped_share)
            ledger = _ledger(conn, day)
            rows = warehouse.count(conn, "encoded_features", day)
            version = current_mapping_version(conn)
        unseen = ledger.loc[ledger["reason"] == UNSEEN_CATEGORY, "customer_id"].nunique()
        share = unseen / rows if rows else 0.0
        outcome.metadata |= {"customers_with_unseen": int(unseen), "customer_share": share,
                             "threshold_customer_share": c.coverage_max_customer_share}
        if share > c.coverage_max_customer_share:
            outcome.passed = False
            outcome.summary += f"; {share:.2%} of scored customers have an unseen category"
        return check_result(outcome, settings, mapping_version=version)

    @check(name="imputation_ceiling", asset="encoded_features", description="Per-feature share of substituted cells (imputed or "
           "__unseen__) from the imputation ledger, against the ceiling.")
    def imputation_ceiling_check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            ledger = _ledger(conn, day)
            rows = warehouse.count(conn, "encoded_features", day)
        return check_result(imputation_ceiling(ledger, rows, c.imputation_ceiling), settings)

    @check(name="missingness_pattern", asset="encoded_features", description="Is missingness concentrated in a segment, region or "
           "category (chi-square, Bonferroni, lift)? Fires even under the imputation ceiling.")
    def missingness_pattern_check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        b = window_bounds(day, tz)
        with open_warehouse(duckdb) as conn:
            ledger = _ledger(conn, day)
            groups = conn.execute(
                "SELECT customer_id, segment, region FROM encoded_features WHERE partition = ? ORDER BY customer_id",
                [day]).df()
            if (ledger.groupby("feature").size() >= c.missingness_min_cells).any():
                # only a night with enough substituted cells needs the category-usage groups
                window = conn.execute(
                    "SELECT DISTINCT customer_id, category FROM raw_transactions WHERE event_ts >= ? "
                    "AND event_ts < ? AND partition BETWEEN ? AND ?",
                    [b["start_30"], b["as_of"], day - dt.timedelta(days=31), day]).df()
                groups = pd.concat([groups, category_usage(window, groups["customer_id"])], axis=1)
        outcome = missingness_pattern(ledger, groups, c.missingness_alpha, c.missingness_min_lift, c.missingness_min_cells)
        return check_result(outcome, settings)

    @check(name="drift_bounds", asset="encoded_features", description="Per-feature PSI (numeric) / Jensen-Shannon (categorical) "
           "against the model's reference profile; WARN and ERROR bands calibrated on the training "
           "period's day-to-day variability.")
    def drift_bounds_check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with open_warehouse(duckdb) as conn:
            _, card = deployed_model(conn)
            frame = read_partition(conn, "encoded_features", partition_day(context.partition_key),
                                   columns=monitored_features())
        outcome = drift_bounds(frame, card.reference, c.drift_warn_alpha, c.drift_error_alpha)
        return check_result(outcome, settings, model_version=card.version)

    @check(name="drift_direction", asset="encoded_features", blocking=False, description="CUSUM of each feature's nightly mean "
           "(standardised by the training period's day-to-day spread): drift that stays inside the "
           "bands but keeps pointing one way. WARN only.")
    def drift_direction_check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        day = partition_day(context.partition_key)
        means = ", ".join(f"avg({f}) AS {f}" for f in NUMERIC)  # spec names only
        with open_warehouse(duckdb) as conn:
            _, card = deployed_model(conn)
            nightly = conn.execute(
                f"SELECT partition, {means} FROM encoded_features WHERE partition BETWEEN ? AND ? "
                "AND model_version = ? GROUP BY partition ORDER BY partition",
                [day - dt.timedelta(days=c.cusum_nights - 1), day, card.version]).df()
        outcome = drift_direction(nightly, card.reference, c.cusum_k, c.cusum_h)
        return check_result(outcome, settings, model_version=card.version,
                            nights_from=str(nightly["partition"].min()) if len(nightly) else "-")

    return [rows_reconcile, raw_schema_check, rejection_rate, row_volume_check, category_coverage_raw, late_arrivals, lookback_complete, feature_parity, encoded_schema_check,
            category_coverage_features, imputation_ceiling_check, missingness_pattern_check,
            drift_bounds_check, drift_direction_check]
