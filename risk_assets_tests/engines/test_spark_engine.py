"""Issue 16: the same pipeline on Spark (Spark Connect, a local server here).

On copies of the small trained world, with its raw history committed to a Parquet lake:

* the Spark renderings of the feature spec compute exactly what DuckDB computes — serving
  features for several nights, and the whole training and validation spine;
* the nightly job with ``[engine] kind = "spark"`` writes the same serving features as
  the DuckDB engine and scores on the executors that agree with DuckDB's to 1e-12;
* the incident nights are blocked by the same checks on both engines, their statistics
  aggregated by Spark over the lake equal to the warehouse's.

Needs PySpark (``pip install -e '.[spark]'``) and Java 17; ``.ci/run`` provides both.
"""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest

from risk_assets.checks import Step
from risk_assets.checks.catalogue import CHECKS
from risk_assets.core import model as model_lib
from risk_assets.core.night import Night
from risk_assets.defs.factory import deployment
from risk_assets.defs.model import build_training_features, training_nights
from risk_assets.defs.resources import duckdb_resource, open_warehouse
from risk_assets.engines import DuckDBEngine
from risk_assets.engines import executions as fsql
from risk_assets.store import registry, warehouse
from risk_assets_tests.checks.test_statistics import all_statistics, assert_same_statistics
from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, require, run_night
from risk_assets_tests.defs.test_incidents import failed_errors, materialized
from risk_assets_tests.engines.test_point_in_time import change_segments
from risk_assets_tests.sources.test_bad_input import (  # noqa: F401 - the landing fixture
    FATAL,
    FILE_KINDS,
    FIRST_LANDING_DAY,
    PLACES,
    STORED_DAY,
    _file,
    _write,
    landing,
)


@pytest.fixture(scope="module")
def spark_session():
    try:
        import pyspark  # noqa: F401
        import sqlglot  # noqa: F401
    except ImportError:
        require("PySpark", False, "pip install -e '.[spark]'")
    require(
        "Java",
        shutil.which("java") is not None,
        "install a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless)",
    )
    from risk_assets.engines.spark.engine import connect

    return connect("local[2]")


def _spark_settings(world_copy, **sections):
    return world_copy(engine={"kind": "spark", "lake_path": str(world_copy.folder / "lake")}, **sections)


def _engine(settings, session):
    """The Spark engine's factory for ``settings``, with the warehouse's history committed
    to its lake."""
    from risk_assets.engines.spark.engine import SparkEngineFactory

    factory = SparkEngineFactory("local[2]", str(settings.engine.lake_path))
    with open_warehouse(duckdb_resource(settings)) as conn:
        assert factory.lake().sync(conn)  # the history the warehouse holds, committed to the lake
    return factory


def test_spark_features_equal_duckdb_features_exactly(world_copy, spark_session):
    settings = _spark_settings(world_copy)
    factory = _engine(settings, spark_session)
    vocabulary = settings.features.vocabulary()
    with open_warehouse(duckdb_resource(settings)) as conn:
        # a second customers version mid-history: both engines join the version valid at each as-of
        moved = change_segments(conn, settings, world_copy.folder, dt.date(2025, 8, 1))
        engine = factory.open(conn)
        version = registry.current_mapping_version(conn)
        for day in (dt.date(2025, 6, 30), dt.date(2025, 10, 31), dt.date(2025, 11, 30)):
            night = Night.of(day, settings.calendar)
            ours = fsql.serving_features(conn, night, version, vocabulary)
            theirs = engine.serving_features(night, version, vocabulary)
            assert len(ours) > 1000 and ours["top_category_30d"].nunique() > 3
            pd.testing.assert_frame_equal(theirs, ours, check_exact=True)
        for spine in training_nights(settings):
            ours = fsql.training_features(conn, spine, version, vocabulary)
            theirs = engine.training_features(spine, version, vocabulary)
            assert ours["as_of"].nunique() == len(spine)
            pd.testing.assert_frame_equal(theirs, ours, check_exact=True)
            seen = theirs.merge(moved, on="customer_id")
            late = seen["as_of"] >= Night.of(dt.date(2025, 8, 1), settings.calendar).as_of
            assert (seen.loc[late, "segment"] == seen.loc[late, "new"]).all()
            assert (seen.loc[~late, "segment"] == seen.loc[~late, "old"]).all()

        # the training_features asset's body on each engine: the same table, labels included
        build_training_features(engine, settings)
        on_spark = warehouse.training_frame(conn)
        build_training_features(DuckDBEngine(conn), settings)
        on_duckdb = warehouse.training_frame(conn)
    assert on_duckdb["label"].sum() > 0
    pd.testing.assert_frame_equal(on_spark, on_duckdb, check_exact=True)


def _copy(settings, folder):
    """The same warehouse (and lake) in another folder: one night, two engines."""
    folder.mkdir()
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
        source = settings.warehouse.duckdb_path.parent / name
        if source.exists():
            shutil.copy(source, folder / name)
    return settings.model_copy(
        update={
            "warehouse": settings.warehouse.model_copy(update={"duckdb_path": folder / "warehouse.duckdb"}),
            "engine": settings.engine.model_copy(update={"kind": "duckdb"}),
        }
    )


def test_nightly_job_on_spark_scores_like_duckdb_and_blocks_the_same_nights(
    world_copy, spark_session, tmp_path, instance
):
    product_change = FIRST_NIGHT + dt.timedelta(days=2)
    skewed = FIRST_NIGHT + dt.timedelta(days=1)
    spark = _spark_settings(world_copy, world={"product_change": {"enabled": True, "date": product_change.isoformat()}})
    _engine(spark, spark_session)

    # a clean night: same features, scores from the executors equal to DuckDB's
    result = run_night(spark, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert result.success and failed_errors(result) == set()
    engines = {
        e.asset_key.to_user_string(): e.materialization.metadata["engine"].value
        for e in result.get_asset_materialization_events()
        if "engine" in e.materialization.metadata
    }
    assert engines == {"raw_transactions": "spark", "serving_features": "spark", "risk_scores": "spark"}
    with open_warehouse(duckdb_resource(spark)) as conn:
        stored = warehouse.read_partition(conn, "serving_features", FIRST_NIGHT)
        version = stored.at[0, "mapping_version"]
        recomputed = fsql.serving_features(
            conn, Night.of(FIRST_NIGHT, spark.calendar), version, spark.features.vocabulary()
        )
        booster, card = registry.load_deployed(conn)
        encoded = warehouse.read_partition(conn, "encoded_features", FIRST_NIGHT)
        scores = warehouse.scores(conn, FIRST_NIGHT)
    pd.testing.assert_frame_equal(stored[recomputed.columns], recomputed, check_exact=True, check_dtype=False)
    here = model_lib.predict(booster, encoded, card)
    assert len(scores) == len(encoded) > 1000
    np.testing.assert_allclose(scores["score"].to_numpy(), here, rtol=0, atol=1e-12)

    # incident nights: the same blocking checks on both engines, from the same warehouse
    duck = _copy(spark, tmp_path / "duckdb_engine")
    for night, sections in ((skewed, {"serving_skew": {"end_shift_hours": -3.0}}), (product_change, {})):
        outcomes = {}
        for name, settings in (("spark", spark), ("duckdb", duck)):
            run = run_night(
                settings.with_overrides(scenario=sections), instance, night, run_config=QUIET, raise_on_error=False
            )
            assert not run.success and "risk_scores" not in materialized(run), (name, night)
            outcomes[name] = failed_errors(run)
        assert outcomes["spark"] == outcomes["duckdb"] and outcomes["spark"], night
        if night == skewed:  # the build rolled back and the night re-run: its day no longer quarantined
            for name, settings in (("spark", spark), ("duckdb", duck)):
                assert run_night(settings, instance, night, run_config=QUIET, raise_on_error=False).success, name

    # the checks' statistics were aggregated by Spark over the lake: the warehouse's, exactly
    factory, source = deployment(spark).engine, deployment(spark).source
    with open_warehouse(duckdb_resource(spark)) as conn:
        for night in (FIRST_NIGHT, product_change):
            on_duckdb = all_statistics(DuckDBEngine(conn), night, spark, source)
            on_spark = all_statistics(factory.open(conn), night, spark, source)
            assert_same_statistics(on_duckdb, on_spark)
        assert len(on_duckdb["unmapped_rows"]) > 0 and on_duckdb["unseen_customers"]["n"].iloc[0] > 0
        # the late-arrival comparison of a night that was scored: yesterday's scores counted by both
        from risk_assets.checks import landing

        now = landing.now_frame(source.transactions(FIRST_NIGHT))
        late = [
            q.statistic(landing.LATE, {"day": FIRST_NIGHT}, frames={"_now": now})
            for q in (DuckDBEngine(conn), factory.open(conn))
        ]
        pd.testing.assert_frame_equal(late[0], late[1], check_dtype=False)
        assert late[0]["scored"].iloc[0] > 1000 and late[0]["rows_now"].iloc[0] > 100

    # every verdict of the blocked night again, from Spark alone: the warehouse's per-night
    # tables hidden (renamed away), each check's body through the Spark engine gives the
    # verdict the nightly run recorded; through the DuckDB engine it cannot be evaluated
    recorded = {
        (e.asset_key.to_user_string(), e.check_name): (e.passed, e.severity.value)
        for e in run.get_asset_check_evaluations()
    }
    hidden = _copy(spark, tmp_path / "hidden")
    with warehouse.connect(hidden.warehouse.duckdb_path, ensure=False) as conn:
        for name in warehouse.PER_NIGHT:
            conn.execute(f'ALTER TABLE "{name}" RENAME TO "_hidden_{name}"')
        night = Night.of(product_change, spark.calendar)
        evaluated, failed_on_duckdb = {}, 0
        for decl in (d for d in CHECKS if d.load is not None and (d.asset, d.name) in recorded):
            verdict, _ = decl.evaluate(Step(factory.open(conn), night, spark, source, CHECKS))
            evaluated[(decl.asset, decl.name)] = (verdict.passed, verdict.severity)
            try:
                decl.evaluate(Step(DuckDBEngine(conn), night, spark, source, CHECKS))
            except Exception:
                failed_on_duckdb += 1
    nightly = {"raw_transactions", "serving_features", "encoded_features"}  # the product-change night ran these
    assert set(evaluated) == {(d.asset, d.name) for d in CHECKS if d.load is not None and d.asset in nightly}
    assert evaluated == {k: recorded[k] for k in evaluated}
    assert failed_on_duckdb >= 12, failed_on_duckdb


def test_lake_sync_commits_the_loaded_history_once(world_copy, tmp_path, monkeypatch, capsys):
    """Switching a warehouse to the Spark engine: `risk-assets lake-sync` commits every
    partition of the per-night tables the warehouse holds (no Spark needed), each holding
    exactly the warehouse's rows; a second run commits nothing."""
    from risk_assets.app import cli
    from risk_assets.engines.spark.lake import Lake
    from risk_assets.settings import to_toml

    settings = _spark_settings(world_copy)
    config = tmp_path / "risk.toml"
    config.write_text(to_toml(settings))
    monkeypatch.setenv("RISK_ASSETS_CONFIG", str(config))
    home = ["--home", str(tmp_path / "home")]
    assert cli.main(["lake-sync", *home]) == 0
    lake = Lake(settings.engine.lake_path)
    with open_warehouse(duckdb_resource(settings)) as conn:
        loaded = [r[0] for r in conn.execute("SELECT DISTINCT partition FROM raw_transactions ORDER BY 1").fetchall()]
        assert lake.partitions("raw_transactions") == loaded and len(loaded) > 300
        total = sum(
            conn.execute(f'SELECT count(DISTINCT partition) FROM "{name}"').fetchall()[0][0]
            for name in warehouse.PER_NIGHT
        )
        day = loaded[100]
        stored = conn.execute("SELECT count(*) FROM raw_transactions WHERE partition = ?", [day]).fetchall()[0][0]
        in_lake = conn.execute(
            "SELECT count(*) FROM read_parquet(?)", [str(lake.partition("raw_transactions", day) / "*.parquet")]
        ).fetchall()[0][0]
    assert stored == in_lake > 0
    assert f"committed {total} partition(s) of {len(loaded)} day(s)" in capsys.readouterr().out
    assert cli.main(["lake-sync", *home]) == 0
    assert "committed 0 partition(s)" in capsys.readouterr().out
    assert not list((lake.root / "_staging").iterdir()) and not list((lake.root / "_trash").glob("*"))


# --------------------------------------------------------------------------- the landing contract on Spark
def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].astype("datetime64[ns]")
        elif out[column].dtype == object:
            out[column] = out[column].map(lambda v: None if v is None or v is pd.NA or v != v else v)
    return out


def _both_engines(factory, settings, day):
    """One landing day through the contract on the driver and on Spark."""
    from risk_assets.core.contract import SOURCE_FILE, split_transactions
    from risk_assets.engines.spark.contract import split_day
    from risk_assets.sources import LandingSource

    source, night, r = LandingSource(settings), Night.of(day, settings.calendar), settings.raw
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        conflicted = warehouse.conflicted_customers(conn)
        out = {}
        try:
            frame = source.transactions(day)
            driver = split_transactions(
                frame,
                night.window,
                max_amount=r.max_amount,
                max_text=r.max_text_length,
                known_customers=warehouse.customer_ids(conn),
                conflicted_customers=conflicted,
                stored_elsewhere=warehouse.stored_elsewhere(conn, day, frame["transaction_id"]),
            )
            out["driver"] = (driver, frame[SOURCE_FILE].value_counts())
        except Exception as exc:
            out["driver"] = exc
        try:
            out["spark"] = split_day(
                factory.open(conn),
                source.data_files(day),
                source.root,
                day,
                night.window,
                max_amount=r.max_amount,
                max_text=r.max_text_length,
                conflicted=conflicted,
            )
        except Exception as exc:
            out["spark"] = exc
    return out["driver"], out["spark"]


def test_the_landing_contract_on_spark_splits_every_row_as_the_driver_does(landing, spark_session, tmp_path):  # noqa: F811
    from risk_assets.core.contract import SOURCE_FILE, ContractError
    from risk_assets.engines.spark.engine import SparkEngineFactory

    settings, root, customers, instance = landing
    engine = SparkEngineFactory("local[2]", str(tmp_path / "lake"))
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        # the rows a re-sent id is compared with
        assert ("raw_transactions", STORED_DAY) in engine.lake().sync(conn)
    stored = pd.read_parquet(root / "transactions" / f"date={STORED_DAY}" / "part-0.parquet")

    # every kind of bad file the landing tests know, nested folders included, plus an unknown customer
    day, rng, first = FIRST_LANDING_DAY + dt.timedelta(days=40), np.random.default_rng(11), None
    kinds = [k for k in FILE_KINDS if k not in FATAL]
    for j, kind in enumerate(kinds):
        content = _file(kind, day, customers, 12, f"s{j}", rng, first, stored)
        first = content if first is None else first
        _write(root / "transactions" / f"date={day}" / PLACES[j % len(PLACES)] / f"part-{j}.parquet", content)
    _write(
        root / "transactions" / f"date={day}" / "stranger.parquet",
        _file("good", day, ["C-nobody"], 3, "x", rng, None, stored),
    )
    driver, spark = _both_engines(engine, settings, day)
    expected, counts = driver
    split, per_file = spark
    assert split.received == expected.received == len(expected.accepted) + len(expected.rejected) > 100
    assert set(expected.reasons) >= {"customer_id: not in customers", "event_ts: not a timestamp"}
    assert any(r.startswith("conflicting duplicate") for r in expected.reasons)
    keys = [SOURCE_FILE, "transaction_id"]
    pd.testing.assert_frame_equal(
        _sorted(split.accepted, keys)[list(expected.accepted.columns)],
        _sorted(expected.accepted, keys),
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(
        _sorted(split.rejected, ["source_file", "source_row"]),
        _sorted(expected.rejected, ["source_file", "source_row"]),
        check_dtype=False,
    )
    assert split.notes == expected.notes
    assert per_file.sort_index().to_dict() == counts.sort_index().to_dict()
    # committed to the lake as the day's partitions
    assert day in engine.lake().partitions("rejected_transactions")

    # the raw asset with [engine] kind = "spark": the day through the contract on Spark, in Dagster
    on_spark = settings.with_overrides(engine={"kind": "spark", "lake_path": str(tmp_path / "lake")})
    result = run_night(on_spark, instance, day, raw_only=True, run_config=QUIET)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["contract_ran_on"].value == "spark executors" and meta["received"].value == expected.received
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name == "rows_reconcile")
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        stored = warehouse.frame(conn, "SELECT * FROM raw_transactions WHERE partition = ?", [day])
        rejected = warehouse.frame(conn, "SELECT * FROM rejected_transactions WHERE partition = ?", [day])
    assert len(stored) == len(expected.accepted) and len(rejected) == len(expected.rejected)
    assert sorted(rejected["reasons"]) == sorted(expected.rejected["reasons"])

    # a file the contract cannot read fails the day naming the same file and column on both
    bad = FIRST_LANDING_DAY + dt.timedelta(days=41)
    _write(
        root / "transactions" / f"date={bad}" / "part-0.parquet",
        _file("good", bad, customers, 5, "g", rng, None, stored),
    )
    _write(
        root / "transactions" / f"date={bad}" / "part-1.parquet",
        _file("missing column", bad, customers, 5, "m", rng, None, stored),
    )
    driver, spark = _both_engines(engine, settings, bad)
    assert isinstance(driver, ContractError) and isinstance(spark, ContractError), (driver, spark)
    assert (spark.file, spark.column, spark.problem) == (driver.file, driver.column, driver.problem)
