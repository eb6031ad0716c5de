"""The end-to-end demo behind ``risk-assets demo``: runs the real jobs through Dagster
into a persistent instance and prints what happened, night by night."""

from __future__ import annotations

import datetime as dt
import time
from typing import TextIO

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from risk_assets import warehouse
from risk_assets.defs.factory import NIGHTLY_JOB, REFERENCE_JOB, build_definitions
from risk_assets.settings import Settings

HISTORY_END = dt.date(2026, 7, 31)
FIRST_NIGHT = dt.date(2026, 8, 1)


def _checks(result: dg.ExecuteInProcessResult) -> str:
    evals = result.get_asset_check_evaluations()
    failed = [e.check_name for e in evals if not e.passed]
    return f"{len(evals) - len(failed)}/{len(evals)} passed" + (f" FAILED: {', '.join(failed)}" if failed else "")


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_demo(settings: Settings, instance: dg.DagsterInstance, nights: int, out: TextIO) -> int:
    defs = build_definitions(settings)
    say = lambda msg: print(msg, file=out, flush=True)  # noqa: E731
    say(f"risk_assets demo — source={settings.source.kind}, customers={settings.world.n_customers:,}, "
        f"warehouse={settings.warehouse.duckdb_path}, DAGSTER_HOME={instance.root_directory}")

    t0 = time.perf_counter()
    ref = defs.resolve_job_def(REFERENCE_JOB).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET
    )
    say(f"[reference] customers + irregularities: {'ok' if ref.success else 'FAILED'} "
        f"({_checks(ref)}) in {time.perf_counter() - t0:.1f}s")
    if not ref.success:
        return 1

    nightly = defs.resolve_job_def(NIGHTLY_JOB)
    start = settings.calendar.partitions_start
    t0 = time.perf_counter()
    hist = nightly.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        tags={ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
              ASSET_PARTITION_RANGE_END_TAG: HISTORY_END.isoformat()},
    )
    say(f"[history] raw layer {start}..{HISTORY_END} in one backfill run: "
        f"{'ok' if hist.success else 'FAILED'} ({_checks(hist)}) in {time.perf_counter() - t0:.1f}s")
    if not hist.success:
        return 1

    say("")
    say(f"{'night':<12}{'received':>10}{'accepted':>10}{'rejected':>10}  checks")
    status = 0
    for i in range(nights):
        night = FIRST_NIGHT + dt.timedelta(days=i)
        read_at = dt.datetime.combine(night + dt.timedelta(days=1), dt.time(2, 30)).isoformat()
        result = nightly.execute_in_process(
            instance=instance,
            partition_key=night.isoformat(),
            raise_on_error=False,
            run_config={**QUIET, "ops": {"raw_transactions": {"config": {"read_at": read_at}}}},
        )
        meta = {
            m.asset_key.to_user_string(): m.metadata
            for m in result.asset_materializations_for_node("raw_transactions")
        }.get("raw_transactions", {})
        value = lambda k: meta[k].value if k in meta else "-"  # noqa: E731
        say(f"{night.isoformat():<12}{value('received'):>10}{value('accepted'):>10}{value('rejected'):>10}  "
            f"{_checks(result)}")
        status |= 0 if result.success else 1

    with warehouse.connect(settings.warehouse.duckdb_path, read_only=True) as conn:
        stored = warehouse.count(conn, "raw_transactions")
        rejected = warehouse.count(conn, "rejected_transactions")
    say("")
    say(f"warehouse: {stored:,} accepted transactions, {rejected:,} rejected rows "
        f"({settings.warehouse.duckdb_path})")
    say("See it in the UI:  DAGSTER_HOME=$PWD/.dagster_home dagster dev -h 127.0.0.1 -p 3000")
    return status
