"""The raw layer through Dagster, in a temporary DuckDB and instance."""

import datetime as dt

import pandas as pd
import pytest

from risk_assets.scenario.settings import scenario_of
from risk_assets.scenario.source import EmbeddedSource, export_landing
from risk_assets.store import warehouse
from risk_assets_tests.conftest import run_night, run_reference, small_settings

DAYS = [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(4)]


def stored(settings, name, day=None):
    with warehouse.connect(settings.warehouse.duckdb_path, read_only=True) as conn:
        return warehouse.count(conn, name, day)


def test_several_days_reconcile_with_what_the_world_generated(settings, instance):
    run_reference(settings, instance)
    source = EmbeddedSource(settings)
    for day in DAYS:
        result = run_night(settings, instance, day, raw_only=True)
        assert result.success
        assert stored(settings, "raw_transactions", day) == len(source.transactions(day))
        assert stored(settings, "rejected_transactions", day) == 0
        with warehouse.connect(settings.warehouse.duckdb_path) as conn:
            load = conn.execute(
                "SELECT received, accepted, rejected FROM raw_loads WHERE partition = ?", [day]
            ).fetchall()
        assert load == [(len(source.transactions(day)), len(source.transactions(day)), 0)]
    assert stored(settings, "customers") == scenario_of(settings).world.n_customers


def test_rerunning_a_partition_replaces_it(settings, instance):
    run_reference(settings, instance)
    run_night(settings, instance, DAYS[0], raw_only=True)
    first = stored(settings, "raw_transactions", DAYS[0])
    run_night(settings, instance, DAYS[0], raw_only=True)
    assert stored(settings, "raw_transactions", DAYS[0]) == first
    assert stored(settings, "raw_transactions") == first


def test_read_at_cutoff_leaves_late_rows_for_the_rerun(tmp_path, instance):
    day = DAYS[1]
    settings = small_settings(
        tmp_path, world={"late_arrival": {"enabled": True, "date": day.isoformat(), "share": 0.3}}
    )
    run_reference(settings, instance)
    cutoff = {"ops": {"raw_transactions": {"config": {"read_at": f"{day + dt.timedelta(days=1)}T02:30:00"}}}}
    run_night(settings, instance, day, run_config=cutoff, raw_only=True)
    nightly = stored(settings, "raw_transactions", day)
    run_night(settings, instance, day, raw_only=True)
    complete = stored(settings, "raw_transactions", day)
    assert 0.2 * complete < complete - nightly < 0.4 * complete


def _landing_settings(tmp_path):
    root = tmp_path / "landing"
    base = small_settings(tmp_path)
    export_landing(base, root, DAYS[:2])
    return small_settings(tmp_path, source={"kind": "landing", "landing_dir": str(root)}), root


def test_malformed_landing_rows_land_in_rejected_transactions_with_reasons(tmp_path, instance):
    settings, root = _landing_settings(tmp_path)
    day = DAYS[0]
    folder = root / "transactions" / f"date={day}"
    good = pd.read_parquet(folder / "part-0.parquet")
    cid = good.at[0, "customer_id"]
    bad = pd.DataFrame(
        {
            "transaction_id": [None, "B-neg", "B-text", "B-late", good.at[0, "transaction_id"], "B-dup", "B-dup"],
            "customer_id": [cid] * 7,
            "event_ts": [
                "2025-03-01T10:00:00",
                "2025-03-01T10:00:00",
                "2025-03-01T10:00:00",
                "2025-03-02T00:00:00",
                "2025-03-01T11:00:00",
                "2025-03-01T12:00:00",
                "2025-03-01T12:00:00",
            ],
            "amount": ["5", "-2", "lots", "7", "8", "9", "9"],
            "category": ["groceries"] * 7,
            "channel": ["online"] * 7,
        }
    )
    bad.to_parquet(folder / "part-1.parquet", index=False)
    run_reference(settings, instance)
    result = run_night(settings, instance, day, raw_only=True)
    assert result.success
    received = len(good) + len(bad)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["received"].value == received
    assert meta["accepted"].value + meta["rejected"].value == received
    with warehouse.connect(settings.warehouse.duckdb_path, read_only=True) as conn:
        rejected = conn.execute(
            "SELECT source_file, source_row, record_key, reasons FROM rejected_transactions"
            " WHERE partition = ? ORDER BY source_row",
            [day],
        ).df()
    # the first B-dup stays; row 4 re-uses part-0's first id with other values: both copies go
    assert stored(settings, "raw_transactions", day) == len(good) - 1 + 1
    bad_file, good_file = (f"transactions/date={day}/part-{i}.parquet" for i in (1, 0))
    reasons = dict(zip(zip(rejected["source_file"], rejected["source_row"]), rejected["reasons"]))
    assert "transaction_id: missing" in reasons[bad_file, 0]
    assert "amount: must be > 0" in reasons[bad_file, 1]
    assert "amount: not a number" in reasons[bad_file, 2]
    assert "event_ts: inside partition" in reasons[bad_file, 3]
    assert reasons[bad_file, 4].startswith(
        "conflicting duplicate transaction_id: values differ (event_ts, amount"
    ) and reasons[bad_file, 4].endswith(f"from the copy at {good_file}:0")
    assert reasons[good_file, 0].endswith(f"from the copy at {bad_file}:4")
    assert reasons[bad_file, 6] == f"duplicate transaction_id (first at {bad_file}:5)"
    assert len(reasons) == 7


def test_a_landing_file_missing_a_required_column_fails_naming_file_and_column(tmp_path, instance):
    settings, root = _landing_settings(tmp_path)
    day = DAYS[1]
    folder = root / "transactions" / f"date={day}"
    pd.read_parquet(folder / "part-0.parquet").drop(columns="amount").to_parquet(folder / "part-0.parquet")
    run_reference(settings, instance)
    result = run_night(settings, instance, day, raise_on_error=False, raw_only=True)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    message = failure.user_failure_data.description
    assert "part-0.parquet" in message and "'amount'" in message
    assert stored(settings, "raw_transactions", day) == 0


def test_a_landing_path_outside_the_folder_is_refused(tmp_path, instance):
    settings, root = _landing_settings(tmp_path)
    outside = tmp_path / "elsewhere.parquet"
    pd.read_parquet(root / "transactions" / f"date={DAYS[0]}" / "part-0.parquet").to_parquet(outside)
    (root / "transactions" / f"date={DAYS[0]}" / "link.parquet").symlink_to(outside)
    from risk_assets.core.contract import ContractError
    from risk_assets.sources import LandingSource

    with pytest.raises(ContractError, match="outside the landing folder"):
        LandingSource(settings).transactions(DAYS[0])


def test_a_warehouse_of_an_earlier_version_gets_the_columns_this_version_adds(tmp_path):
    """``raw_verdicts`` gained ``run_id`` and ``result`` (nullable, at the end): a warehouse
    written before them is brought up to date, said in a warning, its rows kept; a table
    whose columns differ otherwise is still refused."""
    path = tmp_path / "old.duckdb"
    old = [c for c in warehouse.COLUMNS["raw_verdicts"] if c not in ("run_id", "result")]
    ddl = ", ".join(f"{c} {warehouse.COLUMN_TYPES['raw_verdicts'][c]}" for c in old)
    import duckdb

    with duckdb.connect(str(path)) as conn:
        conn.execute(f"CREATE TABLE raw_verdicts ({ddl})")
        conn.execute(
            "INSERT INTO raw_verdicts VALUES ('2025-03-03', 'row_volume', true, 'ERROR', 'fine', '2025-03-04', 'v1')"
        )
    added = r"raw_verdicts: added the columns \['run_id', 'result'\]"
    with pytest.warns(UserWarning, match=added), warehouse.connect(path) as conn:
        rows = conn.execute("SELECT check_name, run_id, result FROM raw_verdicts").fetchall()
    assert rows == [("row_volume", None, None)]
    with duckdb.connect(str(path)) as conn:
        conn.execute("ALTER TABLE raw_verdicts DROP COLUMN summary")
    refused = "table raw_verdicts in this warehouse has columns"
    with pytest.raises(RuntimeError, match=refused), warehouse.connect(path):
        pass


def test_a_loads_id_index_finds_the_rows_a_scan_of_every_stored_id_finds(tmp_path):
    """A load of many days looks up each day's transaction ids in an in-memory index of
    hashes (``StoredIds``), and a one-night load in the warehouse's ``transaction_ids``,
    instead of scanning every stored id: for days stored before the load, days the load
    writes, a day written again, ids held in two partitions, unknown and missing ids, the
    rows found are the scan's."""
    import numpy as np

    def rows(day: dt.date, ids: list[str], category: str = "a") -> pd.DataFrame:
        return pd.DataFrame(
            {
                "transaction_id": ids,
                "customer_id": "C1",
                "event_ts": pd.Timestamp(day) + pd.Timedelta(hours=12),
                "amount": 1.5,
                "amount_cents": 150,
                "category": category,
                "channel": None,
                "source_file": f"{day}.parquet",
            }
        )

    days = [dt.date(2025, 3, d) for d in range(1, 6)]
    rng = np.random.default_rng(3)
    pool = [f"T{i}" for i in range(400)]
    pick = {d: list(rng.choice(pool, size=120, replace=False)) for d in days}
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        for d in days[:2]:  # stored before the load
            warehouse.replace_partition(conn, d, {"raw_transactions": rows(d, pick[d])})
        index = warehouse.StoredIds(conn)
        probes = pd.Series([*pool[:300], "unknown", None, *pick[days[0]][:5]])

        def same(day: dt.date) -> None:
            key = ["transaction_id", "partition"]
            expected = warehouse.scan_elsewhere(conn, day, probes).sort_values(key, ignore_index=True)
            found = warehouse.stored_elsewhere(conn, day, probes, index).sort_values(key, ignore_index=True)
            pd.testing.assert_frame_equal(found, expected)
            assert warehouse.index_complete(conn)  # the warehouse's own index, as a one-night load reads it
            indexed = warehouse.stored_elsewhere(conn, day, probes).sort_values(key, ignore_index=True)
            pd.testing.assert_frame_equal(indexed, expected)
            assert len(expected) > 0

        for d in days[1:]:  # the load: day 2 written again with other ids, then days 3..5
            same(d)
            ids = pick[d] if d != days[1] else list(rng.choice(pool, size=90, replace=False))
            warehouse.replace_partition(conn, d, {"raw_transactions": rows(d, ids, category="b")})
            index.written(conn, d)
            for other in days:
                same(other)


def test_the_warehouse_id_index_is_built_for_an_older_warehouse_and_a_row_written_around_it_is_seen(tmp_path):
    """A warehouse from before ``transaction_ids`` gets its stored ids indexed by its first
    load, said in a warning. A row written into ``raw_transactions`` around ``insert`` (not through the
    warehouse's writers) leaves the index short: the copy check then scans every stored id, and
    still finds it, and the next load rebuilds the index (as for an id changed in place in the
    newest partition)."""
    path = tmp_path / "w.duckdb"
    day, other = dt.date(2025, 3, 1), dt.date(2025, 3, 2)
    frame = pd.DataFrame(
        {
            "transaction_id": ["T1", "T2"],
            "customer_id": "C1",
            "event_ts": pd.Timestamp(day),
            "amount": 1.5,
            "amount_cents": 150,
            "category": "a",
            "channel": None,
            "source_file": "f",
        }
    )
    with warehouse.connect(path) as conn:
        warehouse.replace_partition(conn, day, {"raw_transactions": frame})
        conn.execute("DROP TABLE transaction_ids")
    with warehouse.connect(path) as conn:
        assert not warehouse.index_complete(conn)  # an empty index: never read
        with pytest.warns(UserWarning, match="indexed the 2 stored transaction ids"):
            assert warehouse.heal_id_index(conn)  # what the first load does
        assert warehouse.index_complete(conn)
        found = warehouse.stored_elsewhere(conn, other, pd.Series(["T2", "T9"]))
        assert found["transaction_id"].tolist() == ["T2"] and found["partition"].tolist() == [str(day)]
        conn.execute(
            "INSERT INTO raw_transactions SELECT DATE '2025-03-03', 'T9', 'C1', TIMESTAMP '2025-03-03', 1.5, 150, "
            "'a', NULL, 'f'"
        )
        assert not warehouse.index_complete(conn)
        found = warehouse.stored_elsewhere(conn, other, pd.Series(["T2", "T9"]))
        assert sorted(found["transaction_id"]) == ["T2", "T9"]
        # the next load heals the index first; an id changed in place is seen the same way
        with pytest.warns(UserWarning, match="did not hold one row per stored transaction"):
            assert warehouse.heal_id_index(conn)
        assert warehouse.index_complete(conn) and not warehouse.heal_id_index(conn)
        conn.execute("UPDATE raw_transactions SET transaction_id = 'T7' WHERE transaction_id = 'T9'")
        with pytest.warns(UserWarning, match="1 id"):
            assert warehouse.heal_id_index(conn)
        found = warehouse.stored_elsewhere(conn, other, pd.Series(["T7", "T9"]))
        assert found["transaction_id"].tolist() == ["T7"]
