"""One nightly partition through Dagster in a fresh process, with or without the checks.

    python -m benchmarks.nightly_once --folder DIR --customers N --night YYYY-MM-DD [--without-checks] [--cold]

Run by :mod:`benchmarks.run` once per measurement, so that the peak RSS it reports is
the nightly run's own (imports included), not the benchmark's. Prints one JSON line:
wall seconds of ``execute_in_process``, every step's duration from the event log,
whether the run succeeded and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import dagster as dg

from benchmarks import world
from risk_assets.app.cli import quiet_dagster_warnings
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import NIGHTLY_JOB
from risk_assets.store import warehouse
from risk_assets.store.warehouse import PER_NIGHT as NIGHTLY_ASSETS

WITHOUT_CHECKS_JOB = "nightly_job_without_checks"


def step_durations(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    starts, durations = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
            durations[event.step_key] = round(record.timestamp - starts[event.step_key], 3)
    return durations


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ``getrusage``: its ru_maxrss
    survives exec, so a child started by a big parent would report the parent's peak."""
    with open("/proc/self/status") as f:
        return next(round(int(line.split()[1]) / 1024, 1) for line in f if line.startswith("VmHWM"))


def is_check_step(step_key: str) -> bool:
    """Asset steps are named after their (first) asset; every other step is an asset check."""
    return step_key not in NIGHTLY_ASSETS


def run_night(folder: Path, customers: int, night: dt.date, checks: bool = True, cold: bool = False) -> dict:
    settings = world.settings_for(folder, customers, night)
    defs = build_definitions(settings)
    name = NIGHTLY_JOB
    if not checks:
        # The same assets without their asset checks. Checks that run inside an asset
        # (the scores' schema and sanity) cannot be split off: they stay, as part of the
        # asset's own work.
        inside = [key for name in NIGHTLY_ASSETS for key in defs.resolve_assets_def(name).check_keys]
        name = WITHOUT_CHECKS_JOB
        selection = dg.AssetSelection.assets(*NIGHTLY_ASSETS).without_checks() | dg.AssetSelection.checks(*inside)
        defs = dg.Definitions.merge(
            defs, dg.Definitions(jobs=[dg.define_asset_job(WITHOUT_CHECKS_JOB, selection=selection)])
        )
    kept = forget_kept_statistics(settings, night, everything=cold)
    with dg.instance_for_test(temp_dir=world.home(folder)) as instance:
        job = defs.resolve_job_def(name)
        t0 = time.perf_counter()
        result = job.execute_in_process(
            instance=instance, run_config=world.QUIET, partition_key=night.isoformat(), raise_on_error=False
        )
        seconds = time.perf_counter() - t0
        steps = step_durations(instance, result.run_id)
        failed_checks = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    return {
        "checks": checks,
        "success": result.success,
        "seconds": round(seconds, 3),
        "steps_seconds": steps,
        "check_steps_seconds": round(sum(v for k, v in steps.items() if is_check_step(k)), 3),
        "failed_checks": failed_checks,
        "peak_rss_mb": peak_rss_mb(),
        "kept_statistics_before": kept,
    }


def forget_kept_statistics(settings, night: dt.date, everything: bool = False) -> dict:
    """Drop the statistics kept for ``night``'s own partition, so that a repeated night
    computes its own day and reads the weeks before from the store, as a production night
    after a night does (the benchmark re-runs one night, whose rows it already loaded);
    ``everything``: all of them (a cold night: the first after an upgrade, or after a new
    customers version, computes every partition). Returns what was kept before, for the
    report."""
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        before = warehouse.scalar(
            conn, "SELECT count(DISTINCT partition) FROM partition_statistics WHERE partition < ?", [night]
        )
        dropped = warehouse.scalar(conn, "SELECT count(*) FROM partition_statistics WHERE partition = ?", [night])
        if everything:
            conn.execute("DELETE FROM partition_statistics")
        else:
            conn.execute("DELETE FROM partition_statistics WHERE partition = ?", [night])
    return {"partitions_before_the_night": int(before), "night_entries_dropped": int(dropped)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--night", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--without-checks", action="store_true")
    parser.add_argument("--cold", action="store_true", help="drop every kept statistic first")
    args = parser.parse_args(argv)
    quiet_dagster_warnings()
    print(json.dumps(run_night(args.folder, args.customers, args.night, not args.without_checks, args.cold)))


if __name__ == "__main__":
    main()
