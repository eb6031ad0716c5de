"""The raw contract on hand-made batches: every malformed row is rejected with its reason."""

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from risk_assets.core.contract import (
    ContractError,
    Window,
    require_columns,
    split_customers,
    split_irregularities,
    split_transactions,
)

WINDOW = Window(pd.Timestamp("2025-03-03"), pd.Timestamp("2025-03-04"))


def tx(**overrides):
    row = {
        "transaction_id": "T1",
        "customer_id": "C1",
        "event_ts": pd.Timestamp("2025-03-03 12:00"),
        "amount": 10.5,
        "category": "groceries",
        "channel": "online",
    }
    return {**row, **overrides}


def split(rows, stored=None):
    return split_transactions(
        pd.DataFrame(rows),
        WINDOW,
        max_amount=1e6,
        max_text=64,
        known_customers={"C1", "C2"},
        stored_elsewhere=stored,
    )


CASES = [
    (tx(transaction_id=None), "transaction_id: missing"),
    (tx(customer_id=None), "customer_id: missing"),
    (tx(customer_id="C404"), "customer_id: not in customers"),
    (tx(amount=-3.0), "amount: must be > 0"),
    (tx(amount=0.0), "amount: must be > 0"),
    (tx(amount="12,50"), "amount: not a number"),
    (tx(amount=np.inf), "amount: above max_amount"),
    (tx(amount=None), "amount: missing"),
    (tx(event_ts=pd.Timestamp("2025-03-04 00:00")), "event_ts: inside partition"),
    (tx(event_ts=pd.Timestamp("2025-03-02 23:59:59.999999")), "event_ts: inside partition"),
    (tx(event_ts="yesterday-ish"), "event_ts: not a timestamp"),
    (tx(category=None), "category: missing"),
    (tx(category="x" * 65), "category: str_length"),
    (tx(transaction_id=12345), "transaction_id: not a string"),
]


@pytest.mark.parametrize("row, reason", CASES, ids=[c[1] for c in CASES])
def test_each_malformed_row_is_rejected_with_its_reason(row, reason):
    result = split([tx(transaction_id="GOOD", amount=1.0), {**row, "transaction_id": row["transaction_id"]}])
    assert result.received == 2
    assert len(result.accepted) + len(result.rejected) == 2
    assert list(result.accepted["transaction_id"]) == ["GOOD"]
    assert len(result.rejected) == 1
    assert reason in result.rejected.at[0, "reasons"]
    assert result.rejected.at[0, "source_row"] == 1
    assert result.rejected.at[0, "raw_record"].startswith("{")


def test_identical_duplicates_keep_the_first_and_reject_later_copies():
    result = split([tx(), tx(transaction_id="T2"), tx(), tx()])
    assert list(result.accepted["transaction_id"]) == ["T1", "T2"]
    assert list(result.rejected["source_row"]) == [2, 3]
    assert all(r == "duplicate transaction_id (first at (in memory):0)" for r in result.rejected["reasons"])


def test_conflicting_duplicates_reject_every_copy_and_say_what_differs():
    """No tie-break by order: a 'correction' with a 100x amount rejects both copies."""
    result = split([tx(), tx(transaction_id="T2"), tx(amount=1050.0), tx(transaction_id="T3")])
    assert list(result.accepted["transaction_id"]) == ["T2", "T3"]
    assert list(result.rejected["source_row"]) == [0, 2]
    first, second = result.rejected["reasons"]
    assert first == "conflicting duplicate transaction_id: values differ (amount) from the copy at (in memory):2"
    assert second.endswith("from the copy at (in memory):0")


def _stored(**values):
    row = {
        "transaction_id": "T1",
        "partition": "2025-03-02",
        "customer_id": "C1",
        "event_ts": pd.Timestamp("2025-03-03 12:00"),
        "amount_cents": 1050,
        "category": "groceries",
        "channel": "online",
        "source_file": "transactions/date=2025-03-02/part-0.parquet",
    }
    return pd.DataFrame([{**row, **values}])


def test_ids_stored_in_another_partition_are_rejected_as_duplicates():
    result = split([tx(), tx(transaction_id="T2")], stored=_stored())
    assert list(result.accepted["transaction_id"]) == ["T2"]
    assert result.rejected.at[0, "reasons"] == "duplicate of transaction already stored in partition 2025-03-02"


def test_ids_stored_in_another_partition_with_other_values_are_conflicts_naming_the_file():
    result = split([tx(category="fuel")], stored=_stored())
    assert result.rejected.at[0, "reasons"] == (
        "conflicting duplicate transaction_id: values differ (category) from the row stored in partition "
        "2025-03-02 (from transactions/date=2025-03-02/part-0.parquet)"
    )


def test_naive_means_utc_and_aware_is_converted():
    result = split(
        [
            tx(transaction_id="A", event_ts="2025-03-03T23:30:00"),
            tx(transaction_id="B", event_ts="2025-03-04T00:30:00+01:00"),  # 23:30 UTC
            tx(transaction_id="C", event_ts="2025-03-03T23:30:00-01:00"),  # 00:30 UTC next day
        ]
    )
    assert list(result.accepted["transaction_id"]) == ["A", "B"]
    assert result.accepted["event_ts"].dt.tz is None
    assert "inside partition" in result.rejected.at[0, "reasons"]


def test_amounts_are_stored_as_exact_cents_and_sub_cent_rounding_is_counted():
    result = split([tx(amount=10.1), tx(transaction_id="T2", amount=3.0071)])
    assert list(result.accepted["amount_cents"]) == [1010, 301]
    assert result.notes["sub_cent_amounts_rounded"] == 1


def test_a_row_with_several_problems_lists_them_all():
    result = split([tx(transaction_id=None, amount=-1.0, category=None)])
    reasons = result.rejected.at[0, "reasons"]
    for expected in ("transaction_id: missing", "amount: must be > 0", "category: missing"):
        assert expected in reasons
    assert result.reasons["amount: must be > 0"] == 1


def test_empty_batch_is_fine():
    result = split_transactions(
        pd.DataFrame({c: pd.Series(dtype=object) for c in tx()}),
        WINDOW,
        max_amount=1e6,
        max_text=64,
        known_customers={"C1"},
    )
    assert (result.received, len(result.accepted), len(result.rejected)) == (0, 0, 0)


def test_missing_required_column_names_file_and_column():
    with pytest.raises(ContractError) as err:
        require_columns(pd.DataFrame({"transaction_id": []}), ("transaction_id", "amount"), "day/part-0.parquet")
    assert "day/part-0.parquet" in str(err.value) and "'amount'" in str(err.value)


def test_customer_duplicates_and_missing_fields_are_rejected():
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", None, "C3"],
            "segment": ["retail", "retail", "smb", None],
            "region": ["north"] * 4,
            "opened_at": pd.to_datetime(["2020-01-01"] * 4),
        }
    )
    result = split_customers(frame, max_text=64)
    assert list(result.accepted["customer_id"]) == ["C1"]
    assert len(result.rejected) == 3


def test_conflicting_customer_rows_are_all_rejected_and_their_transactions_say_why():
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C1"],
            "segment": ["retail", "retail", "smb"],
            "region": ["north"] * 3,
            "opened_at": pd.to_datetime(["2020-01-01"] * 3),
        }
    )
    result = split_customers(frame, max_text=64)
    assert list(result.accepted["customer_id"]) == ["C2"]
    assert all(
        r.startswith("conflicting duplicate customer_id: values differ (segment)") for r in result.rejected["reasons"]
    )
    txs = split_transactions(
        pd.DataFrame([tx(customer_id="C1")]),
        WINDOW,
        max_amount=1e6,
        max_text=64,
        known_customers={"C2"},
        conflicted_customers={"C1"},
    )
    assert "its customer rows are conflicting duplicates" in txs.rejected.at[0, "reasons"]


def test_identical_irregularities_are_counted_duplicates():
    frame = pd.DataFrame(
        {"customer_id": ["C1", "C1", "C1"], "event_ts": pd.to_datetime(["2025-01-01", "2025-01-01", "2025-01-02"])}
    )
    result = split_irregularities(frame, max_text=64, known_customers={"C1"})
    assert len(result.accepted) == 2 and result.rejected["reasons"].tolist() == [
        "duplicate irregularity (first at (in memory):0)"
    ]


OUT_OF_RANGE = [
    dt.datetime(9999, 12, 31),
    dt.datetime(1, 1, 1),
    dt.date(9999, 12, 31),
    "9999-12-31T00:00:00",
    "0001-01-01T00:00:00+00:00",
]


@pytest.mark.parametrize("value", OUT_OF_RANGE, ids=[str(v) for v in OUT_OF_RANGE])
def test_timestamps_outside_the_nanosecond_range_are_rejected_not_a_crash(value):
    result = split([tx(transaction_id="GOOD"), tx(transaction_id="FAR", event_ts=value)])
    assert list(result.accepted["transaction_id"]) == ["GOOD"]
    assert result.rejected.at[0, "reasons"] == "event_ts: out of range (outside 1677-09-21 .. 2262-04-11)"


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_out_of_range_timestamps_in_a_parquet_column_of_any_unit(unit, tmp_path):
    path = tmp_path / "part-0.parquet"
    table = pa.table(
        {
            "transaction_id": ["GOOD", "FAR"],
            "customer_id": ["C1", "C1"],
            "event_ts": pa.array([dt.datetime(2025, 3, 3, 1), dt.datetime(9999, 12, 31)], pa.timestamp(unit, tz="UTC")),
            "amount": [1.0, 1.0],
            "category": ["a", "a"],
            "channel": ["x", "x"],
        }
    )
    pq.write_table(table, path)
    result = split(pq.read_table(path).to_pandas())
    assert list(result.accepted["transaction_id"]) == ["GOOD"]
    assert "out of range" in result.rejected.at[0, "reasons"]


NOT_NUMBERS = [pd.Timedelta(seconds=1), dt.datetime(2025, 1, 1), [1.0], {"a": 1}, b"1", True]


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=[type(v).__name__ for v in NOT_NUMBERS])
def test_amounts_of_other_types_are_not_numbers(value):
    result = split([tx(transaction_id="GOOD"), tx(transaction_id="ODD", amount=value)])
    assert list(result.accepted["transaction_id"]) == ["GOOD"]
    assert result.rejected.at[0, "reasons"] == "amount: not a number"


@pytest.mark.parametrize("value", [2**70, decimal.Decimal("1e400"), np.uint64(2**64 - 1), "1e400"])
def test_numbers_too_large_for_a_float_are_above_max_amount(value):
    result = split([tx(amount=value)])
    assert "amount: above max_amount" in result.rejected.at[0, "reasons"]


def test_text_judged_at_once_is_text_judged_value_by_value():
    """The contract judges a column of plain strings in one pass; any other value (a str
    subclass, bytes, a number, a missing value), or a lone surrogate anywhere in the
    column, goes through the per-value rule: the reasons and the stored values are the
    per-value rule's, whichever path a value took."""
    from risk_assets.core.contract import _text_problem

    values = ["groceries", np.str_("fuel"), None, float("nan"), b"raw", 7, "", "x" * 300, "bad\udcff", "rent"]
    for column in (values, [v for v in values if v != "bad\udcff"]):
        rows = [tx(transaction_id=f"T{i}", category=v) for i, v in enumerate(column)]
        result = split_transactions(pd.DataFrame(rows), WINDOW, max_amount=1e6, max_text=256, known_customers=None)
        expected = {}
        for i, v in enumerate(column):
            problem = _text_problem(v)
            if problem is not None:  # not stored: the schema finds it missing, unless "not a ..." said why
                expected[f"T{i}"] = f"category: {problem}" + (
                    "" if problem.startswith("not a ") else "; category: missing"
                )
            elif not isinstance(v, str):
                expected[f"T{i}"] = "category: missing"
            elif not 1 <= len(v) <= 256:
                expected[f"T{i}"] = "category: str_length(1, 256)"
        found = dict(zip(result.rejected["record_key"], result.rejected["reasons"]))
        assert found == expected
        assert list(result.accepted["category"]) == [v for i, v in enumerate(column) if f"T{i}" not in expected]
        assert all(type(v) in (str, np.str_) for v in result.accepted["category"])
