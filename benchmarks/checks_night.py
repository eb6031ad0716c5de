"""How long all checks take for one night (issue 4), at a chosen size.

    python -m benchmarks.checks_night --customers 300000

Builds the embedded world in a temporary folder (raw history, a small model), runs one
nightly partition through Dagster in-process and reports the duration of every step —
assets and checks — from the run's event log, plus the machine it ran on. Results go to
``benchmarks/results/checks_night_<customers>.json``. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg

from benchmarks import world
from benchmarks.machine import describe
from risk_assets.defs.factory import NIGHTLY_JOB, build_definitions

NIGHT = world.FIRST_NIGHT


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    folder = Path(tempfile.mkdtemp(prefix="risk_assets_bench_"))
    settings = world.settings_for(folder, args.customers)
    with dg.instance_for_test() as instance:
        timings = world.build(settings, instance, say=lambda m: print(m, flush=True))
        t0 = time.perf_counter()
        night = build_definitions(settings).resolve_job_def(NIGHTLY_JOB).execute_in_process(
            instance=instance, run_config=world.QUIET, partition_key=NIGHT.isoformat(), raise_on_error=False)
        timings["night"] = round(time.perf_counter() - t0, 2)
        print(f"night: {timings['night']} s ({'ok' if night.success else 'FAILED'})", flush=True)
        steps = step_durations(instance, night.run_id)
    checks = {k: v for k, v in steps.items() if k not in {
        "raw_transactions", "serving_features", "encoded_features", "risk_scores"}}
    result = {
        "customers": args.customers,
        "night": NIGHT.isoformat(),
        "machine": describe(),
        "jobs_seconds": timings,
        "steps_seconds": steps,
        "checks_seconds_total": round(sum(checks.values()), 3),
        "note": "checks = every asset-check step of the nightly run (rows_reconcile and the risk_scores "
                "checks run inside their assets and are included in those steps)",
    }
    out = args.out or Path(__file__).parent / "results" / f"checks_night_{args.customers}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({"checks_seconds_total": result["checks_seconds_total"], "steps_seconds": steps}, indent=1))
    return result


if __name__ == "__main__":
    main()
