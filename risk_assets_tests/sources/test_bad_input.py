"""Bad input, property-based (issue 7): whatever mix of malformed rows and files a feed
sends, every row is accepted or rejected with a reason, and a file the contract cannot
read stops the partition with a message naming the file and the column.

Two levels:
* the contract (:func:`split_transactions`) on generated batches — many examples, fast;
* the raw asset through Dagster on generated landing folders — files written as parquet,
  read by the landing source, stored in DuckDB, re-counted.

``RISK_ASSETS_SLOW=1`` runs more examples (CI keeps the counts modest).
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk_assets.core.contract import Window, split_transactions
from risk_assets.store import warehouse
from risk_assets_tests.conftest import run_night, run_reference, small_settings

SLOW = os.environ.get("RISK_ASSETS_SLOW") == "1"
WINDOW = Window(pd.Timestamp("2025-03-03"), pd.Timestamp("2025-03-04"))
MAX_AMOUNT, MAX_TEXT = 1e6, 64
KNOWN = {"C1", "C2", "C3"}
STORED = pd.DataFrame(
    [
        {
            "transaction_id": "STORED-1",
            "partition": "2025-03-01",
            "customer_id": "C1",
            "event_ts": pd.Timestamp("2025-03-01 10:00"),
            "amount_cents": 100,
            "category": "groceries",
            "channel": None,
            "source_file": "transactions/date=2025-03-01/part-0.parquet",
        }
    ]
)
HOSTILE = [
    "'); DROP TABLE raw_transactions; --",
    '"; DELETE FROM customers; --',
    "Robert'); DROP TABLE students;--",
    "x' OR '1'='1",
    "raw_transactions",
    "| pipe | table |",
    "NUL\x00inside",
    "emoji 🧾 ünïcödé",
    "${jndi:ldap://x}",
    "\\'; SELECT 1; --",
]


@dataclass(frozen=True)
class Kind:
    """One way a row can break the contract, and the reason it must be rejected with."""

    column: str
    apply: Callable[[dict], dict]
    reason: str


def _set(column: str, value: object) -> Callable[[dict], dict]:
    return lambda row: {**row, column: value}


KINDS: dict[str, Kind] = {
    "null transaction_id": Kind("transaction_id", _set("transaction_id", None), "transaction_id: missing"),
    "null customer_id": Kind("customer_id", _set("customer_id", None), "customer_id: missing"),
    "null event_ts": Kind("event_ts", _set("event_ts", None), "event_ts: missing"),
    "null amount": Kind("amount", _set("amount", None), "amount: missing"),
    "NaN amount": Kind("amount", _set("amount", float("nan")), "amount: missing"),
    "null category": Kind("category", _set("category", None), "category: missing"),
    "int transaction_id": Kind("transaction_id", _set("transaction_id", 12345), "transaction_id: not a string"),
    "float customer_id": Kind("customer_id", _set("customer_id", 3.5), "customer_id: not a string"),
    "text amount": Kind("amount", _set("amount", "12,50"), "amount: not a number"),
    "bool amount": Kind("amount", _set("amount", True), "amount: not a number"),
    "+inf amount": Kind("amount", _set("amount", float("inf")), "amount: above max_amount"),
    "-inf amount": Kind("amount", _set("amount", float("-inf")), "amount: must be > 0"),
    "negative amount": Kind("amount", _set("amount", -0.01), "amount: must be > 0"),
    "zero amount": Kind("amount", _set("amount", 0.0), "amount: must be > 0"),
    "huge amount": Kind("amount", _set("amount", 1e15), "amount: above max_amount"),
    "event_ts before partition": Kind(
        "event_ts", _set("event_ts", WINDOW.start - pd.Timedelta(microseconds=1)), "event_ts: inside partition"
    ),
    "event_ts at partition end": Kind("event_ts", _set("event_ts", WINDOW.end), "event_ts: inside partition"),
    "event_ts aware, outside in UTC": Kind(
        "event_ts", _set("event_ts", pd.Timestamp("2025-03-03 02:00", tz="Asia/Kolkata")), "event_ts: inside partition"
    ),
    "garbage event_ts": Kind("event_ts", _set("event_ts", "yesterday-ish"), "event_ts: not a timestamp"),
    "epoch-number event_ts": Kind("event_ts", _set("event_ts", 1741000000), "event_ts: not a timestamp"),
    "long category": Kind("category", _set("category", "c" * (MAX_TEXT + 1)), "category: str_length"),
    "empty category": Kind("category", _set("category", ""), "category: str_length"),
    "binary category": Kind("category", _set("category", b"\xff\xfe\x00"), "category: not a string (binary)"),
    "surrogate category": Kind("category", _set("category", "bad\udcff"), "category: not valid UTF-8 text"),
    "int channel": Kind("channel", _set("channel", 7), "channel: not a string"),
    "unknown customer": Kind("customer_id", _set("customer_id", "C404"), "customer_id: not in customers"),
    "long customer_id": Kind("customer_id", _set("customer_id", "C" * 200), "customer_id: str_length"),
    "duplicate across partitions": Kind(
        "transaction_id", _set("transaction_id", "STORED-1"), "stored in partition 2025-03-01"
    ),
    "out-of-range event_ts": Kind("event_ts", _set("event_ts", dt.datetime(9999, 12, 31)), "event_ts: out of range"),
    "year-1 text event_ts": Kind("event_ts", _set("event_ts", "0001-01-01T00:00:00+00:00"), "event_ts: out of range"),
    "out-of-range date event_ts": Kind("event_ts", _set("event_ts", dt.date(9999, 1, 1)), "event_ts: out of range"),
    "duration amount": Kind("amount", _set("amount", pd.Timedelta(seconds=3)), "amount: not a number"),
    "int amount beyond int64": Kind("amount", _set("amount", 2**80), "amount: above max_amount"),
    "decimal amount beyond float": Kind("amount", _set("amount", decimal.Decimal("1e400")), "amount: above max_amount"),
    "text amount beyond float": Kind("amount", _set("amount", "1e400"), "amount: above max_amount"),
    "list category": Kind("category", _set("category", ["groceries"]), "category: not a string"),
    "dict channel": Kind("channel", _set("channel", {"online": True}), "channel: not a string"),
}
DUPLICATES = {
    "identical duplicate within batch": "duplicate transaction_id (first at (in memory):0)",
    "conflicting duplicate within batch": "conflicting duplicate transaction_id: values differ",
}
"""Whole-row kinds: the row becomes a copy of an anchor row (identical, or with another amount)."""
assert len(KINDS) >= 20


def _valid_rows() -> st.SearchStrategy[dict]:
    micros = int((WINDOW.end - WINDOW.start) / pd.Timedelta(microseconds=1))
    text = st.one_of(st.text(min_size=1, max_size=MAX_TEXT), st.sampled_from(HOSTILE))
    return st.fixed_dictionaries(
        {
            "customer_id": st.sampled_from(sorted(KNOWN)),
            "event_ts": st.integers(0, micros - 1).map(lambda us: WINDOW.start + pd.Timedelta(microseconds=us)),
            "amount": st.floats(0.01, MAX_AMOUNT, allow_nan=False),
            "category": text,
            "channel": st.one_of(st.none(), text),
        }
    )


@st.composite
def batches(draw) -> tuple[list[dict], list[frozenset[str]]]:
    """Rows and, per row, the kinds of damage done to it (empty: a valid row). Row 0 is
    ANCHOR (only ever copied identically), row 1 TWIN (copies of it conflict)."""
    anchor = {"transaction_id": "ANCHOR", **draw(_valid_rows())}
    twin = {"transaction_id": "TWIN", **draw(_valid_rows()), "amount": 1.0}
    rows, damage = [anchor, twin], [frozenset(), frozenset()]
    for i in range(draw(st.integers(0, 40))):
        whole = draw(st.sampled_from([None] * 8 + sorted(DUPLICATES)))
        if whole == "identical duplicate within batch":
            rows.append(dict(anchor))
            damage.append(frozenset([whole]))
            continue
        if whole == "conflicting duplicate within batch":
            rows.append({**twin, "amount": 2.0})
            damage.append(frozenset([whole]))
            continue
        row = {"transaction_id": f"T{i}", **draw(_valid_rows())}
        kinds = draw(st.sets(st.sampled_from(sorted(KINDS)), max_size=3))
        chosen: dict[str, str] = {}
        for name in sorted(kinds):  # at most one kind per column
            chosen.setdefault(KINDS[name].column, name)
        for name in chosen.values():
            row = KINDS[name].apply(row)
        rows.append(row)
        damage.append(frozenset(chosen.values()))
    if any("conflicting duplicate within batch" in d for d in damage):
        damage[1] = frozenset(["conflicting duplicate within batch"])  # TWIN itself loses its place
    return rows, damage


def _split(rows: list[dict]):
    return split_transactions(
        pd.DataFrame(rows),
        WINDOW,
        max_amount=MAX_AMOUNT,
        max_text=MAX_TEXT,
        known_customers=KNOWN,
        stored_elsewhere=STORED,
    )


@settings(max_examples=400 if SLOW else 60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_every_row_is_accepted_or_rejected_with_its_reasons(batch):
    rows, damage = batch
    split = _split(rows)
    assert split.received == len(rows) == len(split.accepted) + len(split.rejected)

    rejected = {int(r.source_row): r for r in split.rejected.itertuples()}
    for i, kinds in enumerate(damage):
        if not kinds:
            assert i not in rejected, f"valid row {rows[i]!r} rejected: {rejected[i].reasons}"
            continue
        assert i in rejected, f"row damaged by {sorted(kinds)} was accepted: {rows[i]!r}"
        for name in kinds:
            reason = DUPLICATES[name] if name in DUPLICATES else KINDS[name].reason
            assert reason in rejected[i].reasons, (name, rejected[i].reasons)
    for r in split.rejected.itertuples():
        assert r.reasons.strip(), "a rejection without a reason"
        json.loads(r.raw_record)  # the original values survive as JSON

    accepted = split.accepted
    assert accepted["transaction_id"].is_unique
    assert ((accepted["event_ts"] >= WINDOW.start) & (accepted["event_ts"] < WINDOW.end)).all()
    assert (accepted["amount_cents"] > 0).all() and accepted["amount_cents"].dtype == "int64"
    assert accepted["category"].map(lambda v: isinstance(v, str) and 0 < len(v) <= MAX_TEXT).all()


@settings(max_examples=100 if SLOW else 25, deadline=None)
@given(st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=10))
def test_hostile_text_is_accepted_verbatim_and_stored_verbatim(values):
    """SQL-looking, pipe, NUL and non-ASCII strings are data: stored exactly, never executed."""
    rows = [
        {
            "transaction_id": f"H{i}",
            "customer_id": "C1",
            "event_ts": WINDOW.start,
            "amount": 1.0,
            "category": v,
            "channel": v,
        }
        for i, v in enumerate(values)
    ]
    split = _split(rows)
    assert len(split.accepted) == len(values)
    with warehouse.connect(":memory:") as conn:
        warehouse.insert(
            conn,
            "raw_transactions",
            split.accepted.rename(columns={"_source_file": "source_file"}).assign(partition=WINDOW.start.date()),
        )
        stored = [
            r[0] for r in conn.execute("SELECT category FROM raw_transactions ORDER BY transaction_id").fetchall()
        ]
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert sorted(stored) == sorted(values)
    assert set(warehouse.TABLES) <= tables


# --------------------------------------------------------------------------- through Dagster
LANDING_DAYS = itertools.count()
FIRST_LANDING_DAY = dt.date(2025, 3, 1)


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    """A landing folder with 50 customers and one stored day (:data:`STORED_DAY`), loaded
    once; each example writes its own day."""
    from risk_assets.scenario.source import export_landing

    folder = tmp_path_factory.mktemp("landing_world")
    root = folder / "landing"
    export_landing(small_settings(folder, world={"n_customers": 50}), root, [STORED_DAY])
    s = small_settings(folder, world={"n_customers": 50}, source={"kind": "landing", "landing_dir": str(root)})
    with dg.instance_for_test() as instance:
        assert run_reference(s, instance).success
        assert run_night(s, instance, STORED_DAY, raw_only=True).success
        customers = pd.read_parquet(root / "customers.parquet")["customer_id"].tolist()
        yield s, root, customers, instance


STORED_DAY = FIRST_LANDING_DAY - dt.timedelta(days=1)
FILE_KINDS = [
    "good",
    "nulls everywhere",
    "text amounts",
    "text timestamps",
    "aware timestamps",
    "empty",
    "extra columns",
    "binary category",
    "bad amounts",
    "outside partition",
    "long strings",
    "hostile",
    "far timestamps",
    "identical copy of the first file",
    "conflicting copy of the first file",
    "conflict with a stored day",
    "missing column",
    "not parquet",
]
FATAL = {"missing column": "column 'amount' is required", "not parquet": "cannot be read as parquet"}
PLACES = ["", "hour=00/", "hour=13/minute=05/"]
"""Where under the day folder a file is written (nested partition folders are read)."""
MARKERS = [
    "_SUCCESS",
    ".part-0.parquet.crc",
    "._part-0.parquet",
    ".DS_Store",
    "_committed_42",
    "_metadata",
    ".hidden/part-0.parquet",
]
"""Files that are not data: skipped and listed, never read."""
IN_PROGRESS = ["_temporary/0/part-9.parquet", "_started_7"]
STRAY = ["date=2025-13-01", "date=20251202", "tmp_upload"]


def _file(
    kind: str,
    day: dt.date,
    customers: list[str],
    n: int,
    tag: str,
    rng: np.random.Generator,
    first: pd.DataFrame | None,
    stored: pd.DataFrame,
) -> pd.DataFrame | pa.Table | bytes:
    start = pd.Timestamp(day)
    frame = pd.DataFrame(
        {
            "transaction_id": [f"{tag}-{i}" for i in range(n)],
            "customer_id": rng.choice(customers, size=n),
            "event_ts": start + pd.to_timedelta(rng.integers(0, 86_400, size=n), unit="s"),
            "amount": np.round(rng.uniform(1, 500, size=n), 2),
            "category": rng.choice(["groceries", "fuel", "travel"], size=n),
            "channel": rng.choice(["online", "pos"], size=n),
        }
    )
    match kind:
        case "nulls everywhere":
            for column in frame.columns:
                frame.loc[rng.random(n) < 0.3, column] = None
        case "text amounts":
            frame["amount"] = [str(a) if i % 3 else "12,50" for i, a in enumerate(frame["amount"])]
        case "text timestamps":
            frame["event_ts"] = [ts.isoformat() if i % 3 else "not a time" for i, ts in enumerate(frame["event_ts"])]
        case "aware timestamps":
            frame["event_ts"] = frame["event_ts"].dt.tz_localize("UTC").dt.tz_convert("America/New_York")
        case "empty":
            frame = frame.iloc[0:0]
        case "extra columns":
            frame["merchant"] = "m"
            frame["score_hint"] = 0.5
        case "binary category":
            frame["category"] = [b"\xff\xfe" if i % 2 else c.encode() for i, c in enumerate(frame["category"])]
        case "bad amounts":
            frame["amount"] = [[np.nan, np.inf, -np.inf, -5.0, 0.0, 1e15][i % 6] for i in range(n)]
        case "outside partition":
            frame["event_ts"] = frame["event_ts"] + pd.Timedelta(days=1)
        case "long strings":
            frame["category"] = "k" * 500
        case "hostile":
            frame["category"] = [HOSTILE[i % len(HOSTILE)] for i in range(n)]
            frame["channel"] = [HOSTILE[(i + 3) % len(HOSTILE)] for i in range(n)]
        case "far timestamps":  # microsecond parquet timestamps pandas' nanoseconds cannot hold
            far = [dt.datetime(9999, 12, 31) if i % 2 else ts.to_pydatetime() for i, ts in enumerate(frame["event_ts"])]
            return pa.Table.from_pandas(frame.drop(columns="event_ts"), preserve_index=False).append_column(
                "event_ts", pa.array(far, pa.timestamp("us"))
            )
        case "identical copy of the first file":
            return first if first is not None else frame
        case "conflicting copy of the first file":
            return first.assign(amount=first["amount"] * 100) if first is not None and "amount" in first else frame
        case "conflict with a stored day":
            take = stored.head(n)
            return take.assign(event_ts=take["event_ts"] + pd.Timedelta(days=1), amount=take["amount"] * 100)
        case "missing column":
            frame = frame.drop(columns="amount")
        case "not parquet":
            return b"PAR1 this is not a parquet file at all"
    return frame


@st.composite
def landing_days(draw) -> dict:
    """Zero or more files for one day, each of a kind, size and place (0 files: a day
    without data), plus marker files, maybe a write in progress, maybe a stray folder."""
    return {
        "files": draw(
            st.lists(st.tuples(st.sampled_from(FILE_KINDS), st.integers(1, 30), st.sampled_from(PLACES)), max_size=4)
        ),
        "markers": draw(st.sets(st.sampled_from(MARKERS), max_size=3)),
        "in_progress": draw(st.one_of(st.none(), st.none(), st.none(), st.sampled_from(IN_PROGRESS))),
        "stray": draw(st.one_of(st.none(), st.sampled_from(STRAY))),
    }


def _write(path, content) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
        return 0
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
        return content.num_rows
    content.to_parquet(path, index=False)
    return len(content)


@settings(
    max_examples=40 if SLOW else 10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(day_spec=landing_days(), seed=st.integers(0, 2**16))
def test_any_landing_day_reconciles_or_fails_naming_file_and_column(landing, day_spec, seed):
    """Whatever a day folder holds — bad rows, nested folders, marker files, copies that
    agree or conflict, a write still in progress, stray folders beside it — either every
    row is accounted for and every file is in the ledger (read with its rows, or skipped
    with why), or the day fails naming the file or folder and nothing of it is written."""
    s, root, customers, instance = landing
    day = FIRST_LANDING_DAY + dt.timedelta(days=next(LANDING_DAYS))
    folder = root / "transactions" / f"date={day}"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    stored = pd.read_parquet(root / "transactions" / f"date={STORED_DAY}" / "part-0.parquet")
    written, first, first_kind, data_files, fatal = 0, None, None, {}, []
    for j, (kind, n, place) in enumerate(day_spec["files"]):
        content = _file(kind, day, customers, n, f"{day}-f{j}", rng, first, stored)
        rel = f"transactions/date={day}/{place}part-{j}.parquet"
        rows = _write(root / rel, content)
        written += rows
        data_files[rel] = rows
        # what makes the day fail: a fatal kind, or an identical copy of a fatal first file
        effective = first_kind if kind == "identical copy of the first file" and first is not None else kind
        if effective in FATAL:
            fatal.append((rel, effective))
        if first is None and isinstance(content, pd.DataFrame):
            first, first_kind = content, kind
    for marker in day_spec["markers"]:
        _write(folder / marker, b"not data")
    if day_spec["in_progress"]:
        _write(folder / day_spec["in_progress"], b"half written")
    if day_spec["stray"]:
        (root / "transactions" / day_spec["stray"]).mkdir(exist_ok=True)

    result = run_night(s, instance, day, raw_only=True, raise_on_error=False)
    with warehouse.connect(s.warehouse.duckdb_path, read_only=True) as conn:
        loads = conn.execute("SELECT received, accepted, rejected FROM raw_loads WHERE partition = ?", [day]).fetchall()
        accepted = warehouse.count(conn, "raw_transactions", day)
        reasons = [
            r[0]
            for r in conn.execute("SELECT reasons FROM rejected_transactions WHERE partition = ?", [day]).fetchall()
        ]
        files = warehouse.load_files(conn, day)
        verdicts = conn.execute("SELECT check_name, passed FROM raw_verdicts WHERE partition = ?", [day]).fetchall()
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(warehouse.TABLES) <= tables

    if day_spec["in_progress"] or fatal:
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
        description = failure.step_failure_data.user_failure_data.description
        if day_spec["in_progress"]:
            assert "write in progress" in description and day_spec["in_progress"].split("/")[0] in description
        else:
            # the contract stops at the first fatal file it reads (in path order) and names it
            assert any(rel in description and FATAL[kind] in description for rel, kind in fatal), description
        assert "Traceback" not in description and message  # a sentence, not only a stack trace
        # nothing of the day was written
        assert loads == [] and accepted == 0 and reasons == [] and files.empty and verdicts == []
        return
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert loads == [(written, accepted, len(reasons))]
    assert written == accepted + len(reasons)
    assert all(r.strip() for r in reasons)
    read = files[files["action"] == "read"]
    assert dict(zip(read["path"], read["rows"])) == data_files  # every file read, with its rows
    skipped = set(files.loc[files["action"] == "skipped", "path"])
    for marker in day_spec["markers"]:
        top = marker.split("/")[0] + ("/" if "/" in marker else "")
        assert f"transactions/date={day}/{top}" in skipped, (marker, skipped)
    if day_spec["stray"]:
        assert f"transactions/{day_spec['stray']}/" in set(files.loc[files["action"] == "stray", "path"])
    conflicted = any("conflicting duplicate" in r for r in reasons)
    assert ("conflicting_duplicates", not conflicted) in verdicts  # the day is quarantined iff a copy conflicted


def test_a_day_without_any_transactions_completes_and_is_blocked_by_row_volume(world_copy, tmp_path):
    """Zero rows break no contract, so the raw layer accepts the empty day (received 0 =
    0 + 0); the blocking row_volume check is what keeps the night from being scored on
    windows that silently lost a day."""
    from risk_assets.defs.factory import build_definitions
    from risk_assets.defs.jobs import NIGHTLY_JOB
    from risk_assets.scenario.source import export_landing
    from risk_assets_tests.conftest import FIRST_NIGHT, QUIET

    root = tmp_path / "landing"
    export_landing(world_copy(), root, [FIRST_NIGHT])
    for part in (root / "transactions" / f"date={FIRST_NIGHT}").glob("*.parquet"):
        part.unlink()
    s = world_copy(source={"kind": "landing", "landing_dir": str(root)})
    with dg.instance_for_test() as instance:
        result = (
            build_definitions(s)
            .resolve_job_def(NIGHTLY_JOB)
            .execute_in_process(
                instance=instance, partition_key=FIRST_NIGHT.isoformat(), run_config=QUIET, raise_on_error=False
            )
        )
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    volume = checks[("raw_transactions", "row_volume")]
    assert not volume.passed and "no rows were received" in volume.description
    assert checks[("raw_transactions", "rows_reconcile")].passed
    assert ("encoded_features", "drift_bounds") not in checks  # nothing downstream ran
    with warehouse.connect(s.warehouse.duckdb_path, read_only=True) as conn:
        assert conn.execute(
            "SELECT received, accepted, rejected FROM raw_loads WHERE partition = ?", [FIRST_NIGHT]
        ).fetchall() == [(0, 0, 0)]
        assert warehouse.count(conn, "risk_scores", FIRST_NIGHT) == 0
