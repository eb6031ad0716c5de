"""The end-to-end demo behind ``risk-assets demo``: runs the real jobs through Dagster
into a persistent instance and prints what happened, night by night."""

from __future__ import annotations

import datetime as dt
import time
from typing import TextIO

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from risk_assets import warehouse
from risk_assets.defs.factory import HISTORY_JOB, NIGHTLY_JOB, REFERENCE_JOB, TRAINING_JOB, build_definitions
from risk_assets.settings import Settings

HISTORY_END = dt.date(2026, 7, 31)
FIRST_NIGHT = dt.date(2026, 8, 1)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _checks(result: dg.ExecuteInProcessResult) -> str:
    evals = result.get_asset_check_evaluations()
    failed = [e.check_name for e in evals if not e.passed]
    return f"{len(evals) - len(failed)}/{len(evals)} passed" + (f" FAILED: {', '.join(failed)}" if failed else "")


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def run_demo(settings: Settings, instance: dg.DagsterInstance, nights: int, out: TextIO) -> int:
    defs = build_definitions(settings)

    def say(msg: str = "") -> None:
        print(msg, file=out, flush=True)

    def step(label: str, job: str, **kwargs) -> dg.ExecuteInProcessResult | None:
        t0 = time.perf_counter()
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, raise_on_error=False, **{"run_config": QUIET, **kwargs}
        )
        say(f"[{label}] {'ok' if result.success else 'FAILED'} ({_checks(result)}) "
            f"in {time.perf_counter() - t0:.1f}s  run {result.run_id[:8]}")
        return result if result.success else None

    say(f"risk_assets demo — source={settings.source.kind}, customers={settings.world.n_customers:,}, "
        f"warehouse={settings.warehouse.duckdb_path}, DAGSTER_HOME={instance.root_directory}")
    if not step("reference data: customers, irregularities", REFERENCE_JOB):
        return 1
    start = settings.calendar.partitions_start
    if not step(f"raw history {start}..{HISTORY_END}, one run", HISTORY_JOB,
                tags={ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
                      ASSET_PARTITION_RANGE_END_TAG: HISTORY_END.isoformat()}):
        return 1
    trained = step("training: category mapping, point-in-time features, LightGBM", TRAINING_JOB)
    if not trained:
        return 1
    m = _metadata(trained)["risk_model"]
    say(f"  model {m['model_version']}: validation ({m['validation_as_of']}) ROC AUC {m['validation_roc_auc']:.3f}, "
        f"PR AUC {m['validation_pr_auc']:.3f}, precision in top {m['review_budget']:.0%} "
        f"{m['validation_precision_at_budget']:.3f} (base rate {m['validation_base_rate']:.3f}); "
        f"{m['training_rows']:,} training rows")

    say()
    header = f"{'night':<12}{'received':>9}{'rejected':>9}{'scored':>8}{'imputed':>9}{'high':>6}  checks"
    say(header)
    say("-" * len(header))
    status = 0
    for i in range(nights):
        night = FIRST_NIGHT + dt.timedelta(days=i)
        read_at = dt.datetime.combine(night + dt.timedelta(days=1), dt.time(2, 30)).isoformat()
        result = defs.resolve_job_def(NIGHTLY_JOB).execute_in_process(
            instance=instance,
            partition_key=night.isoformat(),
            raise_on_error=False,
            run_config={**QUIET, "ops": {"raw_transactions": {"config": {"read_at": read_at}}}},
        )
        meta = _metadata(result)
        raw, enc, scores = (meta.get(k, {}) for k in ("raw_transactions", "encoded_features", "risk_scores"))
        say(f"{night.isoformat():<12}{raw.get('received', '-'):>9}{raw.get('rejected', '-'):>9}"
            f"{scores.get('scored_customers', '-'):>8}{enc.get('substituted_cells', '-'):>9}"
            f"{scores.get('high_band', '-'):>6}  {_checks(result)}{'' if result.success else '  RUN FAILED'}")
        status |= 0 if result.success else 1

    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        stored = warehouse.count(conn, "raw_transactions")
        scored = warehouse.count(conn, "risk_scores")
    say()
    say(f"warehouse {settings.warehouse.duckdb_path}: {stored:,} transactions, {scored:,} scores "
        "(tables risk_scores, imputation_log, rejected_transactions, ...)")
    say("See the same history in the UI:  DAGSTER_HOME=$PWD/.dagster_home .venv/bin/dagster dev -h 127.0.0.1 -p 3000")
    return status
