"""Production-scale benchmark (issue 6): what the guarded night costs, and what it grows with.

    python -m benchmarks.run                     # 75k, 150k and 300k customers, ~19 months each
    python -m benchmarks.run --sizes 300000      # one size
    python -m benchmarks.run --tiny              # a few hundred customers: the CI smoke run

For every size it builds the embedded world in a work folder (customers, raw history
from 2025-01-01 to the night before ``--night`` through the real raw job, and a small
model trained shortly before the night), then measures, as medians of ``--repeats`` runs:

1. serving features of the night (every active customer);
2. training features for the production training spine (the default ``training``
   settings: 61 as-of days; the row count is reported);
3. all asset checks of the night (sum of the check steps of the Dagster run);
4. LightGBM scoring of the night's encoded features;
5. the whole nightly partition through Dagster in-process, with the checks and without
   them (each in a fresh process, see :mod:`benchmarks.nightly_once`), and the ratio;
6. the peak RSS of the process that ran 5;
7. all of the above per size, and the growth from the smallest size to the largest.

At the largest size it also puts side by side, on the same frames (8):
our serving SQL vs a plain pandas groupby-rolling implementation of the same window
features (values compared), and our drift check vs Evidently's ``DataDriftPreset``
(``pip install -e '.[bench]'``; recorded as skipped when Evidently is not installed).

Results, the machine they ran on and the targets of issue 6 go to
``benchmarks/results/run_<sizes>.json``. Nothing here is a test: it asserts nothing
about speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from benchmarks import world
from benchmarks.machine import describe
from benchmarks.nightly_once import peak_rss_mb
from risk_assets.app.cli import quiet_dagster_warnings
from risk_assets.checks import Step, drift
from risk_assets.checks.catalogue import declared
from risk_assets.checks.drift import monitored_features
from risk_assets.core import model as model_lib
from risk_assets.core.features.spec import SPEC_VERSION
from risk_assets.core.night import Night
from risk_assets.defs.model import training_nights
from risk_assets.defs.resources import duckdb_resource, open_warehouse
from risk_assets.engines import DuckDBEngine
from risk_assets.engines import executions as feature_sql
from risk_assets.settings import Settings
from risk_assets.store.registry import current_mapping_version, load_deployed
from risk_assets.store.warehouse import read_partition

DEFAULT_NIGHT = dt.date(2026, 8, 1)
"""Clean: the default world's product change starts on 2026-08-10."""
TINY = {"sizes": [400], "night": world.FIRST_NIGHT, "repeats": 1}
TARGETS = {  # issue 15 (issue 6's were: checks 1 s, night 15 s, share 25%, growth 4.5x)
    "serving_features_s": 0.3,
    "training_features_s": 15.0,
    "all_checks_s": 0.6,
    "evidently_over_drift_check": 20.0,
    "nightly_s": 4.0,
    "checks_share_of_nightly": 0.20,
    "peak_rss_gb": 4.0,
    "training_peak_rss_gb": 4.0,
    "largest_over_smallest_nightly": 4.0,
}
ROLLING = {"txn_count": "count", "amount_sum": "sum", "amount_max": "max"}


def drift_check(conn, night: dt.date, settings: Settings):
    """The drift_bounds check as a night runs it: the aggregates from the warehouse, judged."""
    inputs = drift.load(Step(DuckDBEngine(conn), Night.of(night, settings.calendar), settings, source=None))
    return declared("encoded_features", "drift_bounds").judge(inputs.args, settings)


def timed(fn: Callable[[], object], repeats: int) -> tuple[dict, object]:
    """Median and every run's seconds; returns the last result too."""
    runs, result = [], None
    for _ in range(repeats):
        result = None
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        runs.append(round(time.perf_counter() - t0, 4))
    return {"median_s": round(statistics.median(runs), 4), "runs_s": runs}, result


def nightly(folder: Path, customers: int, night: dt.date, checks: bool, cold: bool = False) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.nightly_once",
        "--folder",
        str(folder),
        "--customers",
        str(customers),
        "--night",
        night.isoformat(),
    ]
    out = subprocess.run(
        cmd + ([] if checks else ["--without-checks"]) + (["--cold"] if cold else []),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if out.returncode != 0:
        raise RuntimeError(f"nightly run failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_world(folder: Path, customers: int, night: dt.date, reuse: bool) -> dict:
    marker = folder / "built.json"
    if reuse and marker.exists():
        built = json.loads(marker.read_text())
        if built.get("customers") == customers and built.get("night") == night.isoformat():
            print(f"[{customers}] reusing the world in {folder}", flush=True)
            return built["jobs_seconds"] | {"reused": True}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    settings = world.settings_for(folder, customers, night)
    with dg.instance_for_test(temp_dir=world.home(folder)) as instance:
        timings = world.build(settings, instance, say=lambda m: print(f"[{customers}] {m}", flush=True), night=night)
    marker.write_text(json.dumps({"customers": customers, "night": night.isoformat(), "jobs_seconds": timings}))
    return timings


def measure_size(folder: Path, customers: int, night: dt.date, repeats: int, night_only: bool = False) -> dict:
    settings = world.settings_for(folder, customers, night)
    tz = settings.calendar.timezone
    out: dict = {"customers": customers}
    # A warm-up run first loads the night's own raw partition: every measurement below
    # sees the same night (serving features read it as the last day of the look-back).
    nightly(folder, customers, night, checks=True)
    with open_warehouse(duckdb_resource(settings)) as conn:
        out["transactions_in_warehouse"] = int(conn.execute("SELECT count(*) FROM raw_transactions").fetchall()[0][0])
        version = current_mapping_version(conn)
        out["serving_features"], served = timed(
            lambda: feature_sql.serving_features(conn, Night(night, tz), version, settings.features.vocabulary()),
            repeats,
        )
        out["serving_features"]["rows"] = len(served)
        out["serving_features_written"], _ = timed(
            lambda: feature_sql.write_serving_features(
                conn, Night(night, tz), version, settings.features.vocabulary(), SPEC_VERSION
            ),
            repeats,
        )
        out["serving_features_written"]["what"] = (
            "write_serving_features: the partition computed and written "
            "inside the warehouse, as the serving_features asset does"
        )
        print(f"[{customers}] serving features: {out['serving_features']}", flush=True)
        del served

    # 5 and 6: fresh processes (before this one grows with the training frame). First a
    # night with no statistics kept from earlier loads (the first night after an upgrade or a
    # new customers version), then the repeats: each computes its own day and reads the
    # weeks before from what earlier nights kept, as a night after a night does.
    cold = nightly(folder, customers, night, checks=True, cold=True)
    out["nightly_cold_statistics"] = {
        "seconds": cold["seconds"],
        "success": cold["success"],
        "peak_rss_mb": cold["peak_rss_mb"],
        "steps_seconds": cold["steps_seconds"],
        "what": "every per-partition statistic computed: none kept from an earlier load",
    }
    runs = {True: [], False: []}
    for _ in range(repeats):
        for checks in (True, False):
            runs[checks].append(nightly(folder, customers, night, checks))
    guarded, bare = runs[True], runs[False]
    med = statistics.median
    out["nightly_with_checks"] = {
        "median_s": med(r["seconds"] for r in guarded),
        "runs_s": [r["seconds"] for r in guarded],
        "success": all(r["success"] for r in guarded),
        "failed_checks": sorted({c for r in guarded for c in r["failed_checks"]}),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in guarded),
        "steps_median_s": {
            k: med(r["steps_seconds"].get(k, 0.0) for r in guarded) for k in guarded[0]["steps_seconds"]
        },
        "kept_statistics_before": guarded[-1]["kept_statistics_before"],
    }
    out["nightly_without_checks"] = {
        "median_s": med(r["seconds"] for r in bare),
        "runs_s": [r["seconds"] for r in bare],
        "success": all(r["success"] for r in bare),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in bare),
        "steps_median_s": {k: med(r["steps_seconds"].get(k, 0.0) for r in bare) for k in bare[0]["steps_seconds"]},
    }
    out["all_checks"] = {
        "median_s": med(r["check_steps_seconds"] for r in guarded),
        "runs_s": [r["check_steps_seconds"] for r in guarded],
        "note": "sum of the asset-check steps of the guarded nightly run, Dagster step overhead included",
    }
    with_s, without_s = out["nightly_with_checks"]["median_s"], out["nightly_without_checks"]["median_s"]
    out["checks_share_of_nightly"] = round((with_s - without_s) / with_s, 3)
    out["with_over_without"] = round(with_s / without_s, 3)
    print(f"[{customers}] nightly: {with_s} s with checks, {without_s} s without", flush=True)
    if night_only:  # the night's figures alone (--night-only): no scoring, drift or training timings
        return out

    with open_warehouse(duckdb_resource(settings)) as conn:
        booster, card = load_deployed(conn)
        encoded = read_partition(conn, "encoded_features", night)
        out["drift_check_only"], _ = timed(lambda: drift_check(conn, night, settings), repeats)
    out["scoring"], scores = timed(lambda: model_lib.predict(booster, encoded, card), repeats)
    out["scoring"]["rows"] = len(scores)
    encoded = None  # free it before the training frame

    spine, _ = training_nights(Settings())  # the production spine, not the benchmark model's
    rss_before = peak_rss_mb()
    with open_warehouse(duckdb_resource(settings)) as conn:

        def build_training_rows() -> int:
            # what the training_features asset does for its training split: the rows and
            # their labels written inside the warehouse (rolled back: the world keeps its table)
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute("DELETE FROM training_features")
                feature_sql.insert_training_features(
                    conn, spine, version, settings.features.vocabulary(), "train", SPEC_VERSION
                )
                return int(conn.execute("SELECT count(*) FROM training_features").fetchall()[0][0])
            finally:
                conn.execute("ROLLBACK")

        out["training_features"], rows = timed(build_training_rows, min(repeats, 3))
    out["training_features"] |= {
        "rows": rows,
        "as_of_days": len(spine),
        "spine": f"{spine[0]} .. {spine[-1]} every {Settings().training.asof_step_days} days",
        "what": "insert_training_features: rows and labels written into the warehouse table, as the asset does",
        "process_peak_rss_mb": peak_rss_mb(),
        "process_peak_rss_mb_before": rss_before,
    }
    print(f"[{customers}] training features: {out['training_features']}", flush=True)
    return out


def pandas_rolling(tx: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """What a team would write instead: per-customer time-based rolling windows in pandas,
    read at a sentinel row placed at ``as_of`` (``closed='left'`` -> ``[as_of - w, as_of)``)."""
    sentinel = pd.DataFrame({"customer_id": tx["customer_id"].unique(), "event_ts": as_of, "amount": np.nan})
    frame = pd.concat([tx, sentinel], ignore_index=True).sort_values(["customer_id", "event_ts"], kind="stable")
    frame = frame.set_index("event_ts")
    grouped = frame.groupby("customer_id", sort=False)["amount"]
    result = {}
    for days in (7, 14, 30):
        window = grouped.rolling(f"{days}D", closed="left")
        for name, how in ROLLING.items():
            values = getattr(window, how)()
            result[f"{name}_{days}d"] = values
    out = pd.DataFrame(result).reset_index()
    return out[out["event_ts"] == as_of].drop(columns="event_ts").set_index("customer_id").sort_index()


def compare(folder: Path, customers: int, night: dt.date, repeats: int) -> dict:
    settings = world.settings_for(folder, customers, night)
    tz = settings.calendar.timezone
    b = Night(night, tz).bounds
    out: dict = {"customers": customers}
    with open_warehouse(duckdb_resource(settings)) as conn:
        version = current_mapping_version(conn)
        ours_timing, ours = timed(
            lambda: feature_sql.serving_features(conn, Night(night, tz), version, settings.features.vocabulary()),
            repeats,
        )
        ours = ours.set_index("customer_id")
        tx = conn.execute(
            "SELECT customer_id, event_ts, amount_cents / 100.0 AS amount FROM raw_transactions "
            "WHERE partition BETWEEN ? AND ? AND event_ts >= ? AND event_ts < ?",
            [night - dt.timedelta(days=32), night + dt.timedelta(days=1), b["start_30"], b["as_of"]],
        ).df()
        # a seeded sample of the model's training frame, as large as the night
        reference = conn.execute(
            f"SELECT * FROM training_features USING SAMPLE reservoir({int(len(ours))} ROWS) REPEATABLE (7)"
        ).df()
        encoded = read_partition(conn, "encoded_features", night)
        _, card = load_deployed(conn)
        ours_drift, _ = timed(lambda: drift_check(conn, night, settings), repeats)
    as_of = pd.Timestamp(b["as_of"])
    rolling_timing, rolled = timed(lambda: pandas_rolling(tx, as_of), min(repeats, 3))
    # An empty window is 0 in the spec (coalesce) and NaN in pandas' rolling max: compare as 0.
    mine = ours.loc[rolled.index, rolled.columns].fillna(0.0)
    agree = bool(np.allclose(mine.to_numpy(float), rolled.fillna(0.0).to_numpy(float), rtol=1e-9, atol=1e-6))
    out["features"] = {
        "ours_serving_sql": ours_timing,
        "pandas_groupby_rolling": rolling_timing,
        "features_compared": list(rolled.columns),
        "customers_compared": len(rolled),
        "values_agree": agree,
        "pandas_over_ours": round(rolling_timing["median_s"] / ours_timing["median_s"], 1),
        "note": "pandas timed on a frame already in memory (the 30-day window only); ours includes the DuckDB scan "
        "and all 24 features",
    }
    print(f"[compare] features: {out['features']}", flush=True)
    out["drift"] = {
        "ours_drift_bounds": ours_drift,
        "features": len(monitored_features()),
        "reference_rows": len(reference),
        "current_rows": len(encoded),
    }
    try:
        from evidently import Report
        from evidently.presets import DataDriftPreset
    except ImportError:
        out["drift"]["evidently"] = "skipped: evidently is not installed (pip install -e '.[bench]')"
        return out
    import evidently

    columns = monitored_features()
    ref, cur = reference[columns], encoded[columns]
    ev_timing, _ = timed(
        lambda: Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref), max(1, min(repeats, 3))
    )
    out["drift"]["evidently"] = ev_timing | {"version": evidently.__version__}
    out["drift"]["evidently_over_ours"] = round(ev_timing["median_s"] / ours_drift["median_s"], 1)
    print(f"[compare] drift: {out['drift']}", flush=True)
    return out


def verdicts(sizes: dict[int, dict], comparison: dict | None) -> dict:
    largest, smallest = sizes[max(sizes)], sizes[min(sizes)]
    measured = {
        "serving_features_s": largest.get("serving_features_written", largest["serving_features"])["median_s"],
        "all_checks_s": largest["all_checks"]["median_s"],
        "nightly_s": largest["nightly_with_checks"]["median_s"],
        "checks_share_of_nightly": largest["checks_share_of_nightly"],
        "peak_rss_gb": round(largest["nightly_with_checks"]["peak_rss_mb"] / 1024, 2),
    }
    if "training_features" in largest:  # not with --night-only
        measured["training_features_s"] = largest["training_features"]["median_s"]
        measured["training_peak_rss_gb"] = round(largest["training_features"]["process_peak_rss_mb"] / 1024, 2)
    if len(sizes) > 1:
        measured["largest_over_smallest_nightly"] = round(
            largest["nightly_with_checks"]["median_s"] / smallest["nightly_with_checks"]["median_s"], 2
        )
    ev = (comparison or {}).get("drift", {}).get("evidently")
    if isinstance(ev, dict):
        measured["evidently_over_drift_check"] = comparison["drift"]["evidently_over_ours"]
        measured["evidently_over_all_checks"] = round(ev["median_s"] / largest["all_checks"]["median_s"], 1)
    result = {}
    for key, value in measured.items():
        target = TARGETS.get(key, TARGETS["evidently_over_drift_check"] if key.startswith("evidently") else None)
        higher_is_better = key.startswith("evidently")
        met = value >= target if higher_is_better else value <= target
        result[key] = {"measured": value, "target": ("≥ " if higher_is_better else "≤ ") + str(target), "met": met}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[75_000, 150_000, 300_000])
    parser.add_argument("--night", type=dt.date.fromisoformat, default=DEFAULT_NIGHT)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the worlds are built (default: a temp folder)"
    )
    parser.add_argument("--reuse", action="store_true", help="reuse worlds already built in --workdir")
    parser.add_argument("--no-compare", action="store_true", help="skip the pandas / Evidently comparison")
    parser.add_argument(
        "--night-only", action="store_true", help="measure the night alone (no scoring, drift or training timings)"
    )
    parser.add_argument("--tiny", action="store_true", help=f"CI smoke run: {TINY}")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.sizes, args.night, args.repeats = TINY["sizes"], TINY["night"], TINY["repeats"]
    quiet_dagster_warnings()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="risk_assets_bench_"))
    started = time.perf_counter()
    report: dict = {
        "machine": describe(),
        "night": args.night.isoformat(),
        "repeats": args.repeats,
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "build_seconds": {},
        "sizes": {},
    }
    sizes = sorted(args.sizes)
    for customers in sizes:
        folder = workdir / f"customers_{customers}"
        report["build_seconds"][customers] = build_world(folder, customers, args.night, args.reuse)
        report["sizes"][customers] = measure_size(folder, customers, args.night, args.repeats, args.night_only)
    comparison = None
    if not args.no_compare:
        comparison = compare(workdir / f"customers_{sizes[-1]}", sizes[-1], args.night, args.repeats)
        report["side_by_side"] = comparison
    report["targets"] = verdicts(dict(report["sizes"]), comparison)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or Path(__file__).parent / "results" / f"run_{'_'.join(map(str, sizes))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report["targets"], indent=1))
    print(f"written to {out}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
