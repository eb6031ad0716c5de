"""The raw contract on hand-made batches: every malformed row is rejected with its reason."""

import numpy as np
import pandas as pd
import pytest

from risk_assets.contract import ContractError, Window, require_columns, split_customers, split_transactions

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


def test_duplicates_keep_the_first_and_reject_later_copies():
    result = split([tx(), tx(amount=2.0), tx(transaction_id="T2"), tx()])
    assert list(result.accepted["transaction_id"]) == ["T1", "T2"]
    assert result.accepted.loc[0, "amount"] == 10.5
    assert list(result.rejected["source_row"]) == [1, 3]
    assert all("duplicate transaction_id" in r for r in result.rejected["reasons"])


def test_ids_stored_in_another_partition_are_rejected_as_duplicates():
    result = split([tx(), tx(transaction_id="T2")], stored={"T1": "2025-03-02"})
    assert list(result.accepted["transaction_id"]) == ["T2"]
    assert "already stored in partition 2025-03-02" in result.rejected.at[0, "reasons"]


def test_naive_means_utc_and_aware_is_converted():
    result = split([
        tx(transaction_id="A", event_ts="2025-03-03T23:30:00"),
        tx(transaction_id="B", event_ts="2025-03-04T00:30:00+01:00"),  # 23:30 UTC
        tx(transaction_id="C", event_ts="2025-03-03T23:30:00-01:00"),  # 00:30 UTC next day
    ])
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
        pd.DataFrame({c: pd.Series(dtype=object) for c in tx()}), WINDOW,
        max_amount=1e6, max_text=64, known_customers={"C1"},
    )
    assert (result.received, len(result.accepted), len(result.rejected)) == (0, 0, 0)


def test_missing_required_column_names_file_and_column():
    with pytest.raises(ContractError) as err:
        require_columns(pd.DataFrame({"transaction_id": []}), ("transaction_id", "amount"), "day/part-0.parquet")
    assert "day/part-0.parquet" in str(err.value) and "'amount'" in str(err.value)


def test_customer_duplicates_and_missing_fields_are_rejected():
    frame = pd.DataFrame({
        "customer_id": ["C1", "C1", None, "C3"],
        "segment": ["retail", "retail", "smb", None],
        "region": ["north"] * 4,
        "opened_at": pd.to_datetime(["2020-01-01"] * 4),
    })
    result = split_customers(frame, max_text=64)
    assert list(result.accepted["customer_id"]) == ["C1"]
    assert len(result.rejected) == 3
