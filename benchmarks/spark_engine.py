"""The Spark engine next to DuckDB on this machine (issue 16), on worlds built by
``benchmarks.run`` (``--workdir DIR --reuse`` keeps them).

    python -m benchmarks.spark_engine --workdir DIR --sizes 75000 300000

For each size: the world's raw history committed to a Parquet lake (timed: the one-off
cost of switching engine), then medians of ``--repeats`` runs, Spark (a local Spark
Connect server, ``local[2]``) and DuckDB side by side on the same night and the same data:

* serving features of the night (every active customer);
* training features of one chunk of the production spine (8 as-of nights — the unit
  both engines compute per query; the whole spine is 61 nights, ~7.6 chunks);
* scoring the night's encoded rows (Spark: ``mapInPandas`` on the executors);
* the statistics of the checks that aggregate (coverage, channels, amount levels,
  imputation, missingness, drift): the checks evaluated with their queries on the warehouse
  and on Spark over the lake, verdicts compared;
* the night's raw day through the landing contract, on the driver and on Spark (the day
  exported as a landing folder of 8 files): accepted, rejected and reasons compared;

the values are compared (they must be equal: features bit for bit, scores to 1e-12), and the
rows and bytes each side reads and returns are recorded for the README's projection.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks import world
from benchmarks.machine import describe
from benchmarks.run import DEFAULT_NIGHT
from risk_assets.app.cli import quiet_dagster_warnings
from risk_assets.checks import Step
from risk_assets.core import model as model_lib
from risk_assets.core.night import Night
from risk_assets.defs.model import training_nights
from risk_assets.defs.resources import duckdb_resource, open_warehouse
from risk_assets.engines import DuckDBEngine
from risk_assets.engines import executions as feature_sql
from risk_assets.settings import Settings
from risk_assets.store import registry, warehouse
from risk_assets.store.registry import load_deployed


def _timed(fn, repeats: int):
    """Median and runs; a measurement that fails is recorded with its error, not hidden."""
    runs, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:
            return {
                "failed": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                "after_s": round(time.perf_counter() - t0, 1),
            }, None
        runs.append(round(time.perf_counter() - t0, 3))
    return {"median_s": statistics.median(runs), "runs_s": runs}, out


STATISTIC_LOADERS = (
    "amount_scale",
    "category_coverage",
    "channel_coverage",
    "imputation_ceiling",
    "missingness_pattern",
    "drift_bounds",
)
"""The checks whose loaders are aggregate queries (the statistic sections of ``risk_assets/checks/``)."""


def check_statistics(conn, engine, night: Night, settings: Settings, repeats: int) -> dict:
    """Every statistic the checks aggregate for the night, by the warehouse and by Spark
    over the lake (the night's encoded rows and ledger committed first, as the encoding
    step does), with the check verdicts compared."""
    from risk_assets.checks.catalogue import CHECKS

    for name in ("encoded_features", "imputation_log"):
        engine.lake.commit_partition(conn, name, night.day)
    decls = [d for d in CHECKS if d.name in STATISTIC_LOADERS and d.load is not None]

    def verdicts(on):
        step = Step(on, night, settings, source=None, checks=CHECKS)  # one step: statistics computed once
        return {f"{d.asset}.{d.name}": d.evaluate(step)[0] for d in decls}

    out = {}
    out["check_statistics_duckdb"], ours = _timed(lambda: verdicts(DuckDBEngine(conn)), repeats)
    out["check_statistics_spark"], theirs = _timed(lambda: verdicts(engine), repeats)
    out["check_statistics_checks"] = [d.label for d in decls]
    out["check_verdicts_equal"] = theirs is not None and all(
        ours[k].passed == theirs[k].passed and ours[k].summary == theirs[k].summary for k in ours
    )
    return out


def contract(folder: Path, conn, engine, night: Night, settings: Settings, repeats: int) -> dict:
    """The night's raw day through the landing contract on the driver and on Spark: the
    day exported as a landing folder of 8 files (as an export would deliver it)."""
    import pyarrow.parquet as pq

    from risk_assets.core.contract import split_transactions
    from risk_assets.engines.spark.contract import split_day
    from risk_assets.scenario.source import export_landing
    from risk_assets.sources import LandingSource

    root = folder / "landing_export"
    day_dir = root / "transactions" / f"date={night.day}"
    if not day_dir.exists():
        export_landing(settings, root, [night.day])
        table = pq.read_table(day_dir / "part-0.parquet")
        (day_dir / "part-0.parquet").unlink()
        step = -(-table.num_rows // 8)
        for i in range(8):
            pq.write_table(table.slice(i * step, step), day_dir / f"part-{i}.parquet")
    landing = settings.with_overrides(source={"kind": "landing", "landing_dir": str(root)})
    source, r = LandingSource(landing), settings.raw
    known, conflicted = warehouse.customer_ids(conn), warehouse.conflicted_customers(conn)

    def driver():
        frame = source.transactions(night.day)
        return split_transactions(
            frame,
            night.window,
            max_amount=r.max_amount,
            max_text=r.max_text_length,
            known_customers=known,
            conflicted_customers=conflicted,
            stored_elsewhere=warehouse.stored_elsewhere(conn, night.day, frame["transaction_id"]),
        )

    def spark():
        return split_day(
            engine,
            source.data_files(night.day),
            source.root,
            night.day,
            night.window,
            max_amount=r.max_amount,
            max_text=r.max_text_length,
            conflicted=conflicted,
        )[0]

    out = {}
    out["contract_driver"], ours = _timed(driver, repeats)
    out["contract_spark"], theirs = _timed(spark, repeats)
    out["contract_rows"] = None if ours is None else ours.received
    out["contract_files"] = len(source.data_files(night.day))
    out["contract_equal"] = (
        theirs is not None
        and ours is not None
        and (len(ours.accepted), len(ours.rejected), ours.reasons)
        == (len(theirs.accepted), len(theirs.rejected), theirs.reasons)
    )
    return out


def measure(folder: Path, customers: int, repeats: int) -> dict:
    from risk_assets.engines.spark.engine import SparkEngine, connect
    from risk_assets.engines.spark.lake import RAW, Lake

    settings = world.settings_for(folder, customers, DEFAULT_NIGHT)
    lake = Lake(folder / "lake")
    night = Night.of(DEFAULT_NIGHT, settings.calendar)
    vocabulary = settings.features.vocabulary()
    chunk = training_nights(Settings())[0][-feature_sql.TRAINING_CHUNK_DAYS :]
    out: dict = {"customers": customers}
    with open_warehouse(duckdb_resource(settings)) as conn:
        if not warehouse.count(conn, "encoded_features", DEFAULT_NIGHT):
            raise SystemExit(
                f"{folder}: run `python -m benchmarks.run --workdir ... --sizes {customers}` first "
                "(the night must be scored)"
            )
        t0 = time.perf_counter()
        committed = lake.sync(conn)
        out["lake_sync"] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "partitions": len(committed),
            "bytes": sum(f.stat().st_size for f in lake.table(RAW).rglob("*.parquet")),
        }
        t0 = time.perf_counter()
        engine = SparkEngine(conn, connect("local[2]"), lake, "local[2]")
        engine.register_views()
        out["spark_session_start_s"] = round(time.perf_counter() - t0, 1)
        version = registry.current_mapping_version(conn)

        out["serving_duckdb"], ours = _timed(
            lambda: feature_sql.serving_features(conn, night, version, vocabulary), repeats
        )
        out["serving_spark"], theirs = _timed(lambda: engine.serving_features(night, version, vocabulary), repeats)
        out["serving_equal"] = theirs is not None and bool(ours.equals(theirs))
        out["serving_rows"] = len(ours)

        out["training_chunk_duckdb"], ours = _timed(
            lambda: feature_sql.training_features(conn, chunk, version, vocabulary), 1
        )
        out["training_chunk_spark"], theirs = _timed(lambda: engine.training_chunk(chunk, version, vocabulary), 1)
        out["training_chunk_equal"] = theirs is not None and bool(ours.equals(theirs))
        out["training_chunk_rows"] = len(ours)
        out["training_chunk_as_of"] = [str(chunk[0].day), str(chunk[-1].day)]
        out["training_chunk_result_mb"] = round(ours.memory_usage(deep=True).sum() / 1024**2, 1)
        del ours, theirs

        out |= check_statistics(conn, engine, night, settings, repeats)
        out |= contract(folder, conn, engine, night, settings, repeats)

        booster, card = load_deployed(conn)
        encoded = warehouse.read_partition(conn, "encoded_features", DEFAULT_NIGHT)
    out["scoring_duckdb_process"], here = _timed(lambda: model_lib.predict(booster, encoded, card), repeats)
    out["scoring_spark"], there = _timed(lambda: engine.score(encoded, booster, card), repeats)
    out["scores_max_abs_diff"] = None if there is None else float(np.max(np.abs(here - there)))
    out["scored_rows"] = len(encoded)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[75_000, 300_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    quiet_dagster_warnings()
    report = {
        "machine": describe(),
        "night": DEFAULT_NIGHT.isoformat(),
        "repeats": args.repeats,
        "spark_remote": "local[2]",
        "sizes": {},
    }
    for customers in sorted(args.sizes):
        report["sizes"][customers] = measure(args.workdir / f"customers_{customers}", customers, args.repeats)
        print(json.dumps(report["sizes"][customers]), flush=True)
    import pyspark

    report["machine"]["pyspark"] = pyspark.__version__
    target = args.out or Path(__file__).parent / "results" / f"spark_{'_'.join(map(str, sorted(args.sizes)))}.json"
    target.write_text(json.dumps(report, indent=1, default=str))
    print(f"written to {target}")
    return report


if __name__ == "__main__":
    main()
