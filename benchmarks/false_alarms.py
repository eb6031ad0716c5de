"""Measured false-alarm rates: many clean nights through every check, on both worlds.

    python -m benchmarks.false_alarms --customers 4000 --nights 62

For each world (the embedded one and the alpine one, see ``risk_assets/scenario/worlds.py``)
exports a landing folder, loads and trains through the landing source (no incident), then
runs consecutive nightly partitions through Dagster from 2025-12-01 (public holidays,
month ends and paydays included) and counts blocked nights, nights with any WARN, and
ERROR and WARN results per check. Writes ``benchmarks/results/false_alarms_<world>_<customers>x<nights>.json``.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import tempfile
from pathlib import Path

import dagster as dg

from benchmarks.machine import describe
from risk_assets.app.cli import quiet_dagster_warnings
from risk_assets.app.operations import build_landing_world
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import NIGHTLY_JOB
from risk_assets.scenario.worlds import WORLDS, landing_settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
HISTORY = (dt.date(2025, 1, 1), dt.date(2025, 11, 30))
FIRST_NIGHT = dt.date(2025, 12, 1)
TRAINING = {
    "start": "2025-04-01",
    "end": "2025-09-15",
    "asof_step_days": 8,
    "validation_start": "2025-10-20",
    "validation_end": "2025-11-29",
    "validation_step_days": 4,
    "num_boost_round": 60,
}
"""The model every false-alarm figure in the README was measured with (the test suite's)."""


def measure(world: str, customers: int, nights: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"risk_assets_fa_{world}_"))
    settings = landing_settings(folder, world, customers, TRAINING)
    last = FIRST_NIGHT + dt.timedelta(days=nights - 1)
    errors, warns = collections.Counter(), collections.Counter()
    blocked, warn_nights, results = [], [], 0
    with dg.instance_for_test() as instance:
        build_landing_world(settings, instance, HISTORY, last, QUIET, say=print)
        job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
        for i in range(nights):
            night = FIRST_NIGHT + dt.timedelta(days=i)
            run = job.execute_in_process(
                instance=instance, run_config=QUIET, partition_key=night.isoformat(), raise_on_error=False
            )
            warned = False
            for e in run.get_asset_check_evaluations():
                results += 1
                if not e.passed:
                    key = f"{e.asset_key.to_user_string()}.{e.check_name}"
                    if e.severity == dg.AssetCheckSeverity.ERROR:
                        errors[key] += 1
                    else:
                        warns[key] += 1
                        warned = True
            blocked += [] if run.success else [str(night)]
            warn_nights += [str(night)] if warned else []
            print(
                f"{world} {night}: blocked {len(blocked)}, WARN nights {len(warn_nights)}, "
                f"ERROR results {sum(errors.values())}",
                flush=True,
            )
    return {
        "world": world,
        "customers": customers,
        "nights": nights,
        "first_night": str(FIRST_NIGHT),
        "last_night": str(last),
        "check_results": results,
        "checks_per_night": results // max(nights, 1),
        "blocked_nights": blocked,
        "warn_nights": warn_nights,
        "warn_night_share": len(warn_nights) / max(nights, 1),
        "error_results": sum(errors.values()),
        "warn_results": sum(warns.values()),
        "error_by_check": dict(errors),
        "warn_by_check": dict(warns),
        "machine": describe(),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--nights", type=int, default=62)
    parser.add_argument("--world", choices=[*WORLDS, "both"], default="both")
    args = parser.parse_args(argv)
    quiet_dagster_warnings()
    reports = []
    for world in list(WORLDS) if args.world == "both" else [args.world]:
        report = measure(world, args.customers, args.nights)
        out = Path(__file__).parent / "results" / f"false_alarms_{world}_{args.customers}x{args.nights}.json"
        out.write_text(json.dumps(report, indent=1))
        print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))
        reports.append(report)
    return reports


if __name__ == "__main__":
    main()
