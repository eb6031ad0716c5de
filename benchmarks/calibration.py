"""The false-alarm budget and the night profile's thresholds, calibrated on clean days.

    python -m benchmarks.calibration --customers 4000
    python -m benchmarks.calibration --customers 1000000 --world embedded \
        --warehouse /tmp/bench_hist/customers_1000000/warehouse.duckdb   # a history_load world

The night profile (``raw_transactions.night_profile``) judges about a hundred statistics a
night; a per-test threshold would fire every few nights. Its thresholds are set on the
*largest* statistic of each clean day instead (a max-statistic calibration): the ERROR
threshold is the quantile of that maximum that leaves ``checks.budget_blocked_nights`` of
clean days over it, the WARN threshold the one that leaves ``checks.budget_warn_nights``.

For each world (embedded and alpine) the script exports a landing folder of 15 months,
loads reference data and every raw day through the landing source (no model is needed),
computes the profile once over all days and judges every day after the first 90 exactly as
the check does (same functions, same healthy-day baselines). The days split in two by
date: the *calibration* days (2025-04-01 .. 2025-11-30) give the thresholds the budget
implies (and how often, and how far, any statistic moved by ``profile_large_ratio``: the
large-change tier of the rule); the *held-out* days (2025-12-01 .. 2026-03-31, holidays and month ends included)
measure the configured thresholds' false-block and WARN rates. Writes
``benchmarks/results/calibration_<customers>.json``; the README quotes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from benchmarks.machine import describe
from risk_assets.app.cli import quiet_dagster_warnings
from risk_assets.checks import profile
from risk_assets.core.calendar import holidays_between
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import HISTORY_JOB, REFERENCE_JOB, range_tags
from risk_assets.engines.duckdb_engine import DuckDBEngine
from risk_assets.scenario.source import export_landing
from risk_assets.scenario.worlds import WORLDS, landing_settings
from risk_assets.store import warehouse

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
FIRST, LAST = dt.date(2025, 1, 1), dt.date(2026, 3, 31)
CALIBRATION = (dt.date(2025, 4, 1), dt.date(2025, 11, 30))
HELD_OUT = (dt.date(2025, 12, 1), LAST)
TRAINING = {"start": "2025-04-01", "end": "2025-09-15"}  # not trained: the settings only need a window


def judged_days(settings, conn) -> pd.DataFrame:
    """Every day from :data:`CALIBRATION`'s start judged as ``night_profile`` judges it:
    ``day, holiday, statistics, max_z`` (the largest |z| among the statistics that moved by
    ``min_ratio``) and the worst statistic."""
    checks = settings.checks
    # no model trained: categories as delivered; a month at a time (the statistic is per
    # partition, and one query over 15 months of 1M customers takes most of this machine's memory)
    months = pd.date_range(FIRST, LAST, freq="MS").date
    days = pd.concat(
        [
            profile.profile(DuckDBEngine(conn), start, min(LAST, next_start - dt.timedelta(days=1)), None)
            for start, next_start in zip(months, [*months[1:], LAST + dt.timedelta(days=1)], strict=True)
        ],
        ignore_index=True,
    )
    stats = profile.statistics(days)
    holidays = holidays_between(settings.calendar, FIRST, LAST)
    verdicts = warehouse.raw_verdicts(conn, FIRST, LAST)
    sick = set(verdicts.loc[~verdicts["passed"], "partition"])
    loaded = sorted(set(days["partition"]))
    rows = []
    for day in (d for d in loaded if d >= CALIBRATION[0]):
        window = profile.comparable_days(day, [d for d in loaded if d < day and d not in sick], holidays)
        mine = stats[stats["partition"].isin([*window, day])]
        table = profile.judge(mine, day, window, checks.profile_min_ratio, day in holidays)
        large = table[table["large"]]
        worst = large.loc[large["z"].abs().idxmax()] if len(large) else None
        far = large[np.abs(np.log(large["ratio"])) >= np.log(checks.profile_large_ratio)]
        verdicts = profile.level(
            large["z"],
            large["ratio"],
            checks.profile_max_z,
            checks.profile_warn_z,
            checks.profile_large_ratio,
            checks.profile_large_z,
        )
        rows.append(
            {
                "day": day,
                "holiday": day in holidays,
                "statistics": int(table["judged"].sum()),
                "max_z": float(large["z"].abs().max()) if len(large) else 0.0,
                "large_moves": len(far),
                "large_max_z": float(far["z"].abs().max()) if len(far) else 0.0,
                "verdict": "ERROR" if (verdicts == "ERROR").any() else "WARN" if (verdicts == "WARN").any() else "",
                "worst": None
                if worst is None
                else f"{worst['col']}={worst['value']} {worst['statistic']} z={worst['z']:+.1f} x{worst['ratio']:.2f}",
            }
        )
    return pd.DataFrame(rows)


def load(settings, world: str) -> None:
    """Exports the landing folder of :data:`FIRST` .. :data:`LAST` and loads it through the
    reference and raw jobs."""
    export_landing(
        settings,
        Path(settings.source.landing_dir),
        [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)],
    )
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)
        for job, tags in ((REFERENCE_JOB, None), (HISTORY_JOB, range_tags(FIRST, LAST))):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, run_config=QUIET, tags=tags, raise_on_error=False
            )
            if not result.success:
                raise RuntimeError(f"{world}: {job} failed")


def measure(world: str, customers: int, loaded: Path | None = None) -> dict:
    """The calibration of ``world`` at ``customers``: on a fresh export and load, or (``loaded``)
    on a warehouse that already holds this world's raw days from :data:`FIRST` to :data:`LAST`
    (``benchmarks.history_load``'s, at production size), opened read-only."""
    folder = Path(tempfile.mkdtemp(prefix=f"risk_assets_cal_{world}_"))
    settings = landing_settings(folder, world, customers, TRAINING)
    if loaded is None:
        load(settings, world)
    path = loaded or settings.warehouse.duckdb_path
    with warehouse.connect(path, read_only=loaded is not None) as conn:
        judged = judged_days(settings, conn)
    checks = settings.checks
    calibration = judged[(judged["day"] >= CALIBRATION[0]) & (judged["day"] <= CALIBRATION[1])]
    held_out = judged[judged["day"] >= HELD_OUT[0]]
    q = calibration["max_z"]
    blocked = held_out[held_out["verdict"] == "ERROR"]
    warned = held_out[held_out["verdict"] == "WARN"]
    return {
        "world": world,
        "customers": customers,
        "warehouse": "a fresh load" if loaded is None else f"loaded before ({loaded.name})",
        "budget": {"blocked_nights": checks.budget_blocked_nights, "warn_nights": checks.budget_warn_nights},
        "calibration_days": len(calibration),
        "calibration_range": [str(CALIBRATION[0]), str(CALIBRATION[1])],
        "max_z_quantiles": {str(p): float(q.quantile(p)) for p in (0.5, 0.9, 0.95, 0.99)} | {"max": float(q.max())},
        "implied_max_z": float(np.quantile(q, 1 - checks.budget_blocked_nights)),
        "implied_warn_z": float(np.quantile(q, 1 - checks.budget_warn_nights)),
        "configured": {
            "max_z": checks.profile_max_z,
            "warn_z": checks.profile_warn_z,
            "min_ratio": checks.profile_min_ratio,
            "large_ratio": checks.profile_large_ratio,
            "large_z": checks.profile_large_z,
        },
        "calibration_days_with_a_large_move": int((calibration["large_moves"] > 0).sum()),
        "calibration_large_max_z": float(calibration["large_max_z"].max()),
        "calibration_blocked_by_the_rule": [str(d) for d in calibration.loc[calibration["verdict"] == "ERROR", "day"]],
        "held_out_days": len(held_out),
        "held_out_range": [str(HELD_OUT[0]), str(HELD_OUT[1])],
        "held_out_holidays": int(held_out["holiday"].sum()),
        "held_out_blocked": [str(d) for d in blocked["day"]],
        "held_out_warned": [str(d) for d in warned["day"]],
        "held_out_max_z": float(held_out["max_z"].max()),
        "held_out_worst": held_out.loc[held_out["max_z"].idxmax(), "worst"],
        "statistics_per_day_median": float(judged["statistics"].median()),
        "days": [
            {
                "day": str(r.day),
                "holiday": bool(r.holiday),
                "max_z": round(r.max_z, 3),
                "large_max_z": round(r.large_max_z, 3),
                "verdict": r.verdict,
                "worst": r.worst,
            }
            for r in judged.itertuples()
        ],
        "machine": describe(),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--world", choices=[*WORLDS, "both"], default="both")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="judge the raw days of this warehouse (one --world, loaded with its history, e.g. "
        "by benchmarks.history_load) instead of exporting and loading a new one",
    )
    args = parser.parse_args(argv)
    if args.warehouse is not None and args.world == "both":
        parser.error("--warehouse holds one world: name it with --world")
    quiet_dagster_warnings()
    worlds = list(WORLDS) if args.world == "both" else [args.world]
    reports = [measure(w, args.customers, args.warehouse) for w in worlds]
    out = args.out or Path(__file__).parent / "results" / f"calibration_{args.customers}.json"
    out.write_text(json.dumps(reports, indent=1))
    for r in reports:
        print(json.dumps({k: v for k, v in r.items() if k not in ("machine", "days")}, indent=1))
    return reports


if __name__ == "__main__":
    main()
