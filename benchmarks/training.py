"""The production model at production size: the whole ``training_job`` and its peak memory.

    python -m benchmarks.training --sizes 75000            # ~20 months of history per size
    python -m benchmarks.training --sizes 75000 300000 --workdir /data/bench --reuse
    python -m benchmarks.training --tiny                   # CI smoke: a few hundred customers

For each size it builds the embedded world in a work folder — customers and the raw
history from 2025-01-01 to 2026-08-31 through the real raw job (timed: the history load's
rows per second) — then runs, each in a fresh process so that its peak RSS is its own:

1. the whole ``training_job`` (category mapping, point-in-time training features on the
   production spine of the default ``training`` settings, the LightGBM model through the
   bounded path, the deployment gate): wall time, every step's time, peak RSS, the model's
   validation metrics;
2. at sizes up to ``--frames-up-to`` (default 75,000), the fit as it was before the bounded
   path — the whole training table as one pandas frame, encoded, a float64 frame with pandas
   categoricals handed to LightGBM — on the same table and settings: its validation metrics
   (to compare with 1), time and peak RSS.

Results, the machine and the targets of issue 25 go to
``benchmarks/results/training_<sizes>.json``. Nothing here is a test: it asserts nothing
about speed (``risk_assets_tests/test_benchmark_smoke.py`` runs ``--tiny``).
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
from benchmarks.nightly_once import peak_rss_mb, step_durations
from risk_assets.app.cli import quiet_dagster_warnings
from risk_assets.settings import Settings

NIGHT = dt.date(2026, 9, 1)
"""The night after the history: the default training spine (2025-02-01 .. 2026-05-31, validation
in July 2026) has every label known by then."""
TINY = {"sizes": [300], "frames_up_to": 300}
TARGETS = {
    300_000: {"training_job_s": 600, "peak_rss_mb": 6 * 1024},
    1_000_000: {"peak_rss_mb": 20 * 1024},
}
"""Issue 25: at 300k the training job within 10 min and 6 GB; at 1M within 20 GB."""


def settings_for(folder: Path, customers: int) -> Settings:
    """The benchmark world with the production training settings (not the small model the
    nightly benchmark trains)."""
    return world.settings_for(folder, customers, NIGHT).with_overrides(training=Settings().training.model_dump())


def fit_on_frames(conn, settings: Settings) -> dict:
    """The fit before the bounded path, on the warehouse's training table: the whole table as
    one frame, encoded, LightGBM on a float64 frame with pandas categoricals, predicting on
    the validation split. Returns its validation metrics."""
    import lightgbm as lgb

    from risk_assets.core import model as model_lib
    from risk_assets.core.features.encoding import encode, fit_encoding, model_matrix
    from risk_assets.core.features.spec import CATEGORICAL, NONE
    from risk_assets.store import registry, warehouse

    frame = warehouse.training_frame(conn)
    train, valid = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    levels = registry.canonical_levels(conn)
    encoding = fit_encoding(train, extra_levels={"top_category_30d": levels + [NONE]})
    enc_train, _ = encode(train, encoding)
    enc_valid, _ = encode(valid, encoding)
    data = lgb.Dataset(
        model_matrix(enc_train, encoding), label=train["label"].to_numpy(), categorical_feature=list(CATEGORICAL)
    )
    booster = lgb.train(
        model_lib.lgb_params(settings.training), data, num_boost_round=settings.training.num_boost_round
    )
    scores = booster.predict(model_matrix(enc_valid, encoding))
    return model_lib.evaluate(valid["label"].to_numpy(), scores, settings.scoring.review_budget)


# --------------------------------------------------------------------------- in a fresh process
def once(folder: Path, customers: int, mode: str) -> dict:
    """One measurement in this (fresh) process: ``job`` (the training job) or ``frames``."""
    from risk_assets.defs.factory import build_definitions
    from risk_assets.defs.jobs import TRAINING_JOB
    from risk_assets.store import warehouse

    settings = settings_for(folder, customers)
    started = time.perf_counter()
    if mode == "frames":
        with warehouse.connect(settings.warehouse.duckdb_path) as conn:
            metrics = fit_on_frames(conn, settings)
        return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": peak_rss_mb(), "validation": metrics}
    with dg.instance_for_test(temp_dir=world.home(folder)) as instance:
        result = (
            build_definitions(settings)
            .resolve_job_def(TRAINING_JOB)
            .execute_in_process(instance=instance, run_config=world.QUIET, raise_on_error=False)
        )
        seconds = time.perf_counter() - started
        steps = step_durations(instance, result.run_id)
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        rows = dict(conn.execute("SELECT split, count(*) FROM training_features GROUP BY split").fetchall())
        card = warehouse.frame(conn, "SELECT * FROM model_registry ORDER BY trained_at DESC LIMIT 1")
    model = card.iloc[0].to_dict() if len(card) else {}
    return {
        "success": result.success,
        "seconds": round(seconds, 1),
        "steps_s": steps,
        "peak_rss_mb": peak_rss_mb(),
        "training_rows": int(rows.get("train", 0)),
        "validation_rows": int(rows.get("validation", 0)),
        "validation": {k: model.get(k) for k in ("roc_auc", "pr_auc", "precision_at_budget")},
        "model_version": model.get("version"),
        "deployed": bool(model.get("deployed_at") is not None and str(model.get("deployed_at")) != "NaT"),
    }


def _fresh(folder: Path, customers: int, mode: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.training", "--once", str(folder), "--customers", str(customers)]
    out = subprocess.run(
        [*cmd, "--mode", mode], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    if out.returncode != 0:
        raise RuntimeError(f"{mode} at {customers} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- driver
def build(folder: Path, customers: int, reuse: bool) -> dict:
    marker = folder / "built.json"
    if reuse and marker.exists():
        built = json.loads(marker.read_text())
        if built.get("customers") == customers:
            print(f"[{customers}] reusing the world in {folder}", flush=True)
            return built | {"reused": True}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    settings = settings_for(folder, customers)
    with dg.instance_for_test(temp_dir=world.home(folder)) as instance:
        timings = world.build(
            settings, instance, say=lambda m: print(f"[{customers}] {m}", flush=True), night=NIGHT, train=False
        )
    from risk_assets.store import warehouse

    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        raw_rows = int(conn.execute("SELECT count(*) FROM raw_transactions").fetchall()[0][0])
    built = {
        "customers": customers,
        "jobs_seconds": timings,
        "raw_rows": raw_rows,
        "history_rows_per_s": round(raw_rows / max(timings["raw_history"], 1e-9)),
    }
    marker.write_text(json.dumps(built))
    return built


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[75_000])
    parser.add_argument("--frames-up-to", type=int, default=75_000, help="compare with the frame fit up to this size")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--tiny", action="store_true", help=f"CI smoke run: {TINY}")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--once", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["job", "frames"], default="job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_dagster_warnings()
    if args.once is not None:
        result = once(args.once, args.customers, args.mode)
        print(json.dumps(result, default=str))
        return result
    if args.tiny:
        args.sizes, args.frames_up_to = TINY["sizes"], TINY["frames_up_to"]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="risk_assets_training_"))
    report: dict = {
        "machine": describe(),
        "command": "python -m benchmarks.training " + " ".join(argv if argv is not None else sys.argv[1:]),
        "training": Settings().training.model_dump(mode="json"),
        "sizes": {},
    }
    for customers in sorted(args.sizes):
        folder = workdir / f"customers_{customers}"
        size = {"build": build(folder, customers, args.reuse)}
        size["training_job"] = _fresh(folder, customers, "job")
        print(f"[{customers}] training job: {size['training_job']}", flush=True)
        if customers <= args.frames_up_to:
            size["frames_fit"] = _fresh(folder, customers, "frames")
            size["auc_difference"] = round(
                size["training_job"]["validation"]["roc_auc"] - size["frames_fit"]["validation"]["roc_auc"], 5
            )
            print(f"[{customers}] frames fit: {size['frames_fit']}", flush=True)
        target = TARGETS.get(customers)
        if target:
            job = size["training_job"]
            size["targets"] = {
                name: {"target": limit, "measured": job["seconds" if name.endswith("_s") else "peak_rss_mb"]}
                | {"met": job["seconds" if name.endswith("_s") else "peak_rss_mb"] <= limit}
                for name, limit in target.items()
            }
        report["sizes"][customers] = size
    write_result(report, args.out, "training", args.sizes)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
