"""Window semantics of the feature spec on hand-made transactions at the edges.

Both executions (serving and training) must give the same, hand-computed answers."""

import datetime as dt

import duckdb
import pandas as pd
import pytest

from risk_assets.core.features.mapping import build_mapping, channel_vocabulary
from risk_assets.core.features.spec import FEATURE_NAMES, FeatureVocabulary
from risk_assets.core.night import Night
from risk_assets.engines import executions as fsql
from risk_assets.store import warehouse

VOCAB = FeatureVocabulary()  # the embedded world's names

US = pd.Timedelta(microseconds=1)


def make_db(rows: list[tuple], timezone: str = "UTC", aliases=None) -> tuple[duckdb.DuckDBPyConnection, str]:
    """rows: (customer_id, event_ts naive UTC, amount, category, channel)."""
    conn = duckdb.connect()
    warehouse.ensure_tables(conn)
    customers = pd.DataFrame(
        {
            "customer_id": sorted({r[0] for r in rows}),
            "segment": "retail",
            "region": "north",
            "opened_at": pd.Timestamp("2020-01-01"),
            "source_file": "test",
        }
    )
    warehouse.replace_table(conn, {"customers": customers})
    tx = pd.DataFrame(rows, columns=["customer_id", "event_ts", "amount", "category", "channel"])
    tx["event_ts"] = pd.to_datetime(tx["event_ts"])
    tx["transaction_id"] = [f"T{i}" for i in range(len(tx))]
    tx["amount_cents"] = (tx["amount"] * 100).round().astype("int64")
    tx["source_file"] = "test"
    # partition = business day of the event
    local = tx["event_ts"].dt.tz_localize("UTC").dt.tz_convert(timezone)
    tx["partition"] = local.dt.date
    with warehouse.transaction(conn):
        warehouse.insert(conn, "raw_transactions", tx)
    seen = pd.DataFrame(
        {
            "raw_category": ["groceries", "gambling", "cash_withdrawal", "money_transfer"],
            "rows": 1,
            "amount_cents": 100,
            "log_amount_mean": 4.6,
            "log_amount_std": 0.5,
        }
    )
    channels = pd.DataFrame({"channel": ["atm", "card_present", "online", "transfer"], "rows": 1})
    mapping = build_mapping(seen, aliases or {}, channels)
    with warehouse.transaction(conn):
        warehouse.insert(conn, "category_mapping", mapping)
        warehouse.insert(conn, "channel_vocabulary", channel_vocabulary(mapping.at[0, "version"], channels))
    return conn, mapping.at[0, "version"]


def both_paths(conn, version, day, timezone="UTC") -> pd.DataFrame:
    serving = fsql.serving_features(conn, Night(day, timezone), version, VOCAB).set_index("customer_id")
    training = fsql.training_features(conn, [Night(day, timezone)], version, VOCAB).set_index("customer_id")
    pd.testing.assert_frame_equal(serving, training, check_exact=True)
    return serving


DAY = dt.date(2025, 3, 5)  # a Wednesday
AS_OF = pd.Timestamp("2025-03-06 00:00")


def test_bounds_follow_the_time_contract():
    b = Night(DAY, "UTC").bounds
    assert b["as_of"] == AS_OF
    assert b["start_7"] == AS_OF - pd.Timedelta(days=7)
    assert b["start_30"] == AS_OF - pd.Timedelta(days=30)
    assert b["label_end"] == AS_OF + pd.Timedelta(days=30)


def test_window_edges_are_half_open():
    rows = [
        ("C1", AS_OF, 1000.0, "groceries", "online"),  # exactly at as_of: excluded
        ("C1", AS_OF - US, 1.0, "groceries", "online"),  # last microsecond: in
        ("C1", AS_OF - pd.Timedelta(days=7), 2.0, "groceries", "online"),  # exactly at as_of-7d: in 7d
        ("C1", AS_OF - pd.Timedelta(days=7) - US, 4.0, "groceries", "online"),  # just before: 14d only
        ("C1", AS_OF - pd.Timedelta(days=30), 8.0, "gambling", "online"),  # exactly at as_of-30d: in 30d
        ("C1", AS_OF - pd.Timedelta(days=30) - US, 16.0, "groceries", "online"),  # 90d look-back only
    ]
    conn, version = make_db(rows)
    f = both_paths(conn, version, DAY).loc["C1"]
    assert f["txn_count_7d"] == 2 and f["amount_sum_7d"] == 3.0
    assert f["txn_count_14d"] == 3 and f["amount_sum_14d"] == 7.0
    assert f["txn_count_30d"] == 4 and f["amount_sum_30d"] == 15.0
    assert f["amount_max_30d"] == 8.0 and f["amount_mean_30d"] == 3.75
    assert f["share_gambling_30d"] == 8.0 / 15.0
    assert f["top_category_30d"] == "gambling"
    assert f["days_since_last_txn"] == pytest.approx(1e-6 / 86400, abs=1e-9)
    assert f["count_velocity_7d_30d"] == (2 / 7) / (4 / 30)


def test_weekend_days_count_as_calendar_days():
    saturday = pd.Timestamp("2025-03-01 12:00")  # within 7 days of as_of (Thu 00:00)
    sunday = pd.Timestamp("2025-03-02 12:00")
    conn, version = make_db([("C1", saturday, 5.0, "groceries", "atm"), ("C1", sunday, 6.0, "groceries", "atm")])
    f = both_paths(conn, version, DAY).loc["C1"]
    assert f["txn_count_7d"] == 2 and f["amount_sum_7d"] == 11.0


def test_dst_change_in_a_non_utc_business_timezone():
    tz = "America/New_York"
    day = dt.date(2025, 3, 9)  # clocks spring forward: a 23-hour business day
    b = Night(day, tz).bounds
    assert b["as_of"] == pd.Timestamp("2025-03-10 04:00")  # 00:00 EDT
    assert b["start_7"] == pd.Timestamp("2025-03-03 05:00")  # 00:00 EST, 7 calendar days before
    rows = [
        ("C1", pd.Timestamp("2025-03-03 05:00"), 1.0, "groceries", "online"),  # 00:00 EST: in
        ("C1", pd.Timestamp("2025-03-03 04:59:59.999999"), 2.0, "groceries", "online"),  # 23:59 the day before
        ("C1", pd.Timestamp("2025-03-10 03:59:59"), 4.0, "groceries", "online"),  # 23:59:59 EDT on day: in
        ("C1", pd.Timestamp("2025-03-10 04:00"), 8.0, "groceries", "online"),  # next business day
    ]
    conn, version = make_db(rows, timezone=tz)
    f = both_paths(conn, version, day, tz).loc["C1"]
    assert f["txn_count_7d"] == 2 and f["amount_sum_7d"] == 5.0
    assert f["txn_count_14d"] == 3


def test_zero_denominators_have_one_definition_and_nulls_mark_the_unknown():
    conn, version = make_db(
        [
            ("C1", AS_OF - pd.Timedelta(days=40), 5.0, "groceries", "online"),  # active, nothing in 30d
            ("C2", AS_OF - pd.Timedelta(days=1), 5.0, "brand_new_category", "online"),
            ("C3", AS_OF - pd.Timedelta(days=1), 5.0, "groceries", None),
        ]
    )
    f = both_paths(conn, version, DAY)
    c1 = f.loc["C1"]
    assert c1["txn_count_30d"] == 0 and c1["amount_mean_30d"] == 0.0 and c1["amount_max_30d"] == 0.0
    assert c1["count_velocity_7d_30d"] == 1.0 and c1["share_cash_30d"] == 0.0
    assert c1["top_category_30d"] == "__none__"
    # an unmapped category keeps its raw name here; encoding turns it into __unseen__
    assert pd.isna(f.loc["C2", "share_cash_30d"]) and f.loc["C2", "top_category_30d"] == "brand_new_category"
    assert pd.isna(f.loc["C3", "online_share_30d"]) and f.loc["C3", "share_cash_30d"] == 0.0


def test_an_unseen_channel_is_unknown_not_offline_and_the_shares_follow_the_vocabulary():
    conn, version = make_db(
        [
            ("C1", AS_OF - pd.Timedelta(days=2), 10.0, "groceries", "online"),
            ("C1", AS_OF - pd.Timedelta(days=3), 30.0, "groceries", "card_present"),
            ("C2", AS_OF - pd.Timedelta(days=2), 10.0, "groceries", "online"),
            ("C2", AS_OF - pd.Timedelta(days=3), 30.0, "gambling", "wallet_pay"),  # a channel training never saw
        ]
    )
    f = both_paths(conn, version, DAY)
    assert f.loc["C1", "online_share_30d"] == 0.25
    assert pd.isna(f.loc["C2", "online_share_30d"])  # unknown, never "not online"
    # another source's names: the same spec counts what the vocabulary names
    other = FeatureVocabulary(cash=("groceries",), gambling=("gambling",), online=("card_present",))
    served = fsql.serving_features(conn, Night(DAY), version, other).set_index("customer_id")
    trained = fsql.training_features(conn, [Night(DAY)], version, other).set_index("customer_id")
    pd.testing.assert_frame_equal(served, trained, check_exact=True)
    assert served.loc["C1", "share_cash_30d"] == 1.0 and served.loc["C1", "online_share_30d"] == 0.75
    assert served.loc["C2", "share_gambling_30d"] == 0.75
    assert other.absent({"groceries", "gambling"}, {"card_present"}) == {"share_transfer_30d": ["money_transfer"]}


def test_an_alias_maps_a_renamed_category_onto_its_canonical():
    rows = [("C1", AS_OF - pd.Timedelta(days=1), 5.0, "p2p_payments", "transfer")]
    conn, version = make_db(rows, aliases={"p2p_payments": "money_transfer"})
    f = both_paths(conn, version, DAY).loc["C1"]
    assert f["share_transfer_30d"] == 1.0 and f["top_category_30d"] == "money_transfer"


def test_money_sums_are_exact():
    rows = [("C1", AS_OF - pd.Timedelta(hours=i + 1), 0.1, "groceries", "online") for i in range(10)]
    conn, version = make_db(rows)
    f = both_paths(conn, version, DAY).loc["C1"]
    assert f["amount_sum_7d"] == 1.0  # 10 × 0.1 in floating point would be 0.9999999999999999


def test_only_active_customers_appear():
    conn, version = make_db(
        [
            ("C1", AS_OF - pd.Timedelta(days=89), 5.0, "groceries", "online"),
            ("C2", AS_OF - pd.Timedelta(days=91), 5.0, "groceries", "online"),
        ]
    )
    f = both_paths(conn, version, DAY)
    assert list(f.index) == ["C1"]
    assert set(FEATURE_NAMES) <= set(f.columns)


def test_top_category_ties_and_distinct_categories():
    """Largest amount wins; among equal amounts the latest; among equal amount and time
    the alphabetically last. Distinct categories count only the 30-day window (0 when empty)."""
    t = AS_OF - pd.Timedelta(days=2)
    conn, version = make_db(
        [
            ("C1", t, 50.0, "gambling", "online"),
            ("C1", t - pd.Timedelta(hours=1), 50.0, "groceries", "online"),  # same amount, earlier
            ("C1", t - pd.Timedelta(days=3), 10.0, "groceries", "online"),
            ("C2", t, 20.0, "cash_withdrawal", "pos"),
            ("C2", t, 20.0, "money_transfer", "transfer"),  # same amount, same time
            ("C2", AS_OF - pd.Timedelta(days=45), 99.0, "gambling", "online"),  # outside 30 days
            ("C3", AS_OF - pd.Timedelta(days=45), 99.0, "gambling", "online"),  # nothing in 30 days
        ]
    )
    f = both_paths(conn, version, DAY)
    assert f.loc["C1", "top_category_30d"] == "gambling" and f.loc["C1", "n_categories_30d"] == 2
    assert f.loc["C2", "top_category_30d"] == "money_transfer" and f.loc["C2", "n_categories_30d"] == 2
    assert f.loc["C3", "top_category_30d"] == "__none__" and f.loc["C3", "n_categories_30d"] == 0


def test_training_features_in_chunks_equal_one_query_over_the_whole_spine():
    rows = [
        (f"C{i % 7}", AS_OF - pd.Timedelta(hours=13 * i), 1.0 + i, ["groceries", "gambling"][i % 2], "online")
        for i in range(120)
    ]
    conn, version = make_db(rows)
    days = [DAY - dt.timedelta(days=d) for d in (0, 3, 9, 20, 41, 55)]
    whole = fsql.training_features(conn, [Night(d) for d in days], version, VOCAB, chunk_days=len(days))
    chunked = fsql.training_features(conn, [Night(d) for d in days], version, VOCAB, chunk_days=4)
    assert len(whole) > 20 and whole["as_of"].nunique() == len(days)
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
