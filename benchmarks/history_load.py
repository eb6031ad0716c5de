"""The history load a team runs first: a landing folder's raw history through the raw job.

    python -m benchmarks.history_load --sizes 75000 300000     # ~20 months per size
    python -m benchmarks.history_load --sizes 1000000 --workdir /data/bench --reuse
    python -m benchmarks.history_load --tiny                   # CI smoke: a few hundred customers

For each size it exports the embedded world's history (2025-01-01 .. 2026-08-31, the span
the training benchmark trains on) as a landing folder (not timed), then, in a fresh process
so that the peak RSS is the load's own, runs what ``risk-assets load`` runs: the reference
job (customers, irregularities) and the raw job over the whole range in one run — every day
through the contract, written, and judged by the quarantining raw checks. Recorded: each
job's seconds, rows received / accepted / rejected, rows per second, peak RSS, the days
quarantined. A full history is left where ``python -m benchmarks.training --workdir <the
same> --reuse`` trains on it.

Results, the machine and the target of issue 25 (100,000 rows/s) go to
``benchmarks/results/history_load_<sizes>.json``. Nothing here is a test: it asserts
nothing about speed (``risk_assets_tests/test_benchmark_smoke.py`` runs ``--tiny``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks import world
from benchmarks.machine import describe, write_result
from benchmarks.nightly_once import peak_rss_mb
from risk_assets.app.cli import quiet_dagster_warnings
from risk_assets.settings import Settings

FIRST = dt.date(2025, 1, 1)
LAST = dt.date(2026, 8, 31)
"""The history the training benchmark builds (its night is 2026-09-01)."""
TINY = {"sizes": [300], "days": 20}
TARGET_ROWS_PER_S = 100_000
"""Issue 25: a history load at warehouse speed."""


def settings_for(folder: Path, customers: int) -> Settings:
    return world.settings_for(folder, customers, LAST + dt.timedelta(days=1)).with_overrides(
        source={"kind": "landing", "landing_dir": str(folder / "landing")}
    )


def export(folder: Path, customers: int, last: dt.date, reuse: bool) -> dict:
    """The landing folder of ``customers`` up to ``last`` (kept with ``reuse``)."""
    from risk_assets.scenario.source import export_landing

    marker = folder / "exported.json"
    wanted = {"customers": customers, "first": FIRST.isoformat(), "last": last.isoformat()}
    if reuse and marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"[{customers}] reusing the landing folder in {folder}", flush=True)
        return wanted | {"reused": True}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    days = [FIRST + dt.timedelta(days=i) for i in range((last - FIRST).days + 1)]
    export_landing(settings_for(folder, customers), folder / "landing", days)
    marker.write_text(json.dumps(wanted))
    return wanted | {"export_seconds": round(time.perf_counter() - started, 1)}


def once(folder: Path, customers: int, last: dt.date) -> dict:
    """The reference job, then the raw job over ``FIRST .. last`` (this fresh process)."""
    from risk_assets.defs.factory import build_definitions
    from risk_assets.defs.jobs import HISTORY_JOB, REFERENCE_JOB, range_tags
    from risk_assets.store import warehouse

    settings = settings_for(folder, customers)
    for stale in ("warehouse.duckdb", "warehouse.duckdb.wal", "dagster_home", "models", "built.json"):
        path = folder / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    defs = build_definitions(settings)
    seconds = {}
    with dg.instance_for_test(temp_dir=world.home(folder)) as instance:
        for label, job, tags in (
            ("reference", REFERENCE_JOB, {}),
            ("raw_history", HISTORY_JOB, range_tags(FIRST, last)),
        ):
            started = time.perf_counter()
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, run_config=world.QUIET, tags=tags, raise_on_error=False
            )
            seconds[label] = round(time.perf_counter() - started, 2)
            if not result.success:
                raise RuntimeError(f"{job} failed at {customers} customers")
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        received, accepted, rejected, days = conn.execute(
            "SELECT sum(received), sum(accepted), sum(rejected), count(*) FROM raw_loads"
        ).fetchall()[0]
        quarantined = conn.execute("SELECT count(DISTINCT partition) FROM raw_verdicts WHERE NOT passed").fetchall()[0][
            0
        ]
    return {
        "days": int(days),
        "received": int(received),
        "accepted": int(accepted),
        "rejected": int(rejected),
        "seconds": seconds,
        "rows_per_s": round(int(received) / seconds["raw_history"]),
        "rows_per_s_with_reference": round(int(received) / (seconds["raw_history"] + seconds["reference"])),
        "peak_rss_mb": peak_rss_mb(),
        "quarantined_days": int(quarantined),
    }


def _fresh(folder: Path, customers: int, last: dt.date) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.history_load", "--once", str(folder), "--customers", str(customers)]
    out = subprocess.run(
        [*cmd, "--last", last.isoformat()], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    if out.returncode != 0:
        raise RuntimeError(f"the history load at {customers} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[75_000])
    parser.add_argument("--days", type=int, default=None, help="load only the first DAYS days of the history")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep an exported landing folder of the same size")
    parser.add_argument("--tiny", action="store_true", help=f"CI smoke run: {TINY}")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--once", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--last", type=dt.date.fromisoformat, default=LAST, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_dagster_warnings()
    if args.once is not None:
        result = once(args.once, args.customers, args.last)
        print(json.dumps(result, default=str))
        return result
    if args.tiny:
        args.sizes, args.days = TINY["sizes"], TINY["days"]
    last = FIRST + dt.timedelta(days=args.days - 1) if args.days else LAST
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="risk_assets_history_"))
    report: dict = {
        "machine": describe(),
        "command": "python -m benchmarks.history_load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "history": {"first": FIRST.isoformat(), "last": last.isoformat()},
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "sizes": {},
    }
    for customers in sorted(args.sizes):
        folder = workdir / f"customers_{customers}"
        size = {"export": export(folder, customers, last, args.reuse)}
        size["load"] = _fresh(folder, customers, last)
        if last == LAST:  # the world benchmarks.training trains on (``--workdir`` the same, ``--reuse``)
            (folder / "built.json").write_text(
                json.dumps(
                    {
                        "customers": customers,
                        "jobs_seconds": size["load"]["seconds"],
                        "raw_rows": size["load"]["accepted"],
                        "history_rows_per_s": size["load"]["rows_per_s"],
                        "built_by": "benchmarks.history_load (the landing folder's history)",
                    }
                )
            )
        size["target_met"] = size["load"]["rows_per_s"] >= TARGET_ROWS_PER_S
        print(f"[{customers}] {size['load']}", flush=True)
        report["sizes"][customers] = size
    write_result(report, args.out, "history_load", args.sizes)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
