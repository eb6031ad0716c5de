"""Measured false-alarm rates: many clean nights through every check.

    python -m benchmarks.false_alarms --customers 4000 --nights 60

Builds a trained embedded world (no incident switched on), runs consecutive nightly
partitions through Dagster and counts ERROR and WARN results per check. Writes
``benchmarks/results/false_alarms_<customers>x<nights>.json``.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import tempfile
from pathlib import Path

import dagster as dg

from benchmarks import world
from benchmarks.machine import describe
from risk_assets.cli import quiet_dagster_warnings
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import NIGHTLY_JOB

TRAINING = {"start": "2025-04-01", "end": "2025-05-31", "asof_step_days": 8,
            "validation_start": "2025-07-01", "validation_end": "2025-07-15", "validation_step_days": 3,
            "num_boost_round": 100}
"""The model every false-alarm figure in the README was measured with (eight as-of days
eight days apart; validation in the first half of July)."""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--nights", type=int, default=60)
    args = parser.parse_args(argv)
    quiet_dagster_warnings()
    settings = world.settings_for(Path(tempfile.mkdtemp(prefix="risk_assets_fa_")), args.customers).with_overrides(
        training=TRAINING)
    errors, warns, results = collections.Counter(), collections.Counter(), 0
    with dg.instance_for_test() as instance:
        world.build(settings, instance)
        job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
        for i in range(args.nights):
            night = world.FIRST_NIGHT + dt.timedelta(days=i)
            run = job.execute_in_process(instance=instance, run_config=world.QUIET,
                                         partition_key=night.isoformat(), raise_on_error=False)
            for e in run.get_asset_check_evaluations():
                results += 1
                if not e.passed:
                    key = f"{e.asset_key.to_user_string()}.{e.check_name}"
                    (errors if e.severity == dg.AssetCheckSeverity.ERROR else warns)[key] += 1
            print(f"{night}: {sum(errors.values())} ERROR, {sum(warns.values())} WARN so far", flush=True)
    checks_per_night = results // max(args.nights, 1)
    report = {
        "customers": args.customers, "nights": args.nights, "check_results": results,
        "error_results": sum(errors.values()), "warn_results": sum(warns.values()),
        "error_by_check": dict(errors), "warn_by_check": dict(warns),
        "error_rate_per_check_result": sum(errors.values()) / max(results, 1),
        "warn_rate_per_night": sum(warns.values()) / max(args.nights, 1),
        "checks_per_night": checks_per_night,
        "machine": describe(),
    }
    out = Path(__file__).parent / "results" / f"false_alarms_{args.customers}x{args.nights}.json"
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))
    return report


if __name__ == "__main__":
    main()
