"""The raw-data contract: Pandera schemas and the accepted/rejected split.

Pure logic, no Dagster. Every input row ends up in exactly one of two frames:
``accepted`` (typed, ready to store) or ``rejected`` (with every reason it broke the
contract and the original values as JSON). Nothing is dropped or repaired silently:
``received == accepted + rejected`` holds by construction and is re-checked after
the write by a blocking asset check.

Structural problems that make a whole file unreadable (a required column missing)
raise :class:`ContractError` naming the file and the column instead.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"

TRANSACTION_COLUMNS = ("transaction_id", "customer_id", "event_ts", "amount", "category", "channel")
CUSTOMER_COLUMNS = ("customer_id", "segment", "region", "opened_at")
IRREGULARITY_COLUMNS = ("customer_id", "event_ts")

REJECTED_COLUMNS = ["source_file", "source_row", "record_key", "reasons", "raw_record"]


class ContractError(ValueError):
    """A file cannot be read under the contract at all (e.g. a required column is missing)."""

    def __init__(self, file: str, column: str, problem: str):
        self.file, self.column, self.problem = file, column, problem
        super().__init__(f"{file}: column {column!r} {problem}")


def require_columns(frame: pd.DataFrame, required: tuple[str, ...], file: str) -> None:
    for column in required:
        if column not in frame.columns:
            raise ContractError(file, column, "is required by the landing contract but missing")


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval ``[start, end)`` (naive timestamps mean UTC)."""

    start: pd.Timestamp
    end: pd.Timestamp

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) UTC"


@dataclass
class Split:
    """Result of validating one batch."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame
    received: int
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def reasons(self) -> dict[str, int]:
        """Rejected-row count per reason (a row with two reasons counts under both)."""
        counts: dict[str, int] = defaultdict(int)
        for reasons in self.rejected["reasons"]:
            for reason in reasons.split("; "):
                counts[reason] += 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- coercion
def _coerce_text(frame: pd.DataFrame, column: str, reasons: dict[int, list[str]]) -> None:
    """Text stays text; a missing value becomes None; anything else is rejected with
    :func:`_text_problem`'s reason. Values of exactly ``str`` are judged all at once (one
    encode of their concatenation: a lone surrogate anywhere sends every value to the
    per-value rule); every other value one by one."""
    values = frame[column].to_numpy(dtype=object)
    exact = np.fromiter((type(v) is str for v in values), dtype=bool, count=len(values))
    try:
        "".join(values[exact]).encode("utf-8")
    except UnicodeEncodeError:
        exact[:] = False
    keep = exact.copy()
    for i in np.flatnonzero(~exact):
        problem = _text_problem(values[i])
        if problem is not None:
            reasons[frame.index[i]].append(f"{column}: {problem}")
        keep[i] = problem is None and isinstance(values[i], str)
    frame[column] = pd.Series(np.where(keep, values, None), index=frame.index, dtype=object)


def _text_problem(value: object) -> str | None:
    """Why ``value`` is not acceptable text (None when it is text or missing)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "not valid UTF-8 text"
        return None
    if isinstance(value, (bytes, bytearray)):
        return "not a string (binary)"
    if _is_missing(value):
        return None
    return "not a string"


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def _coerce_number(frame: pd.DataFrame, column: str, reasons: dict[int, list[str]]) -> None:
    """To float64. Numeric columns of any width convert directly (a value too large for
    a float becomes ±inf and is rejected by the range rules); text is parsed; booleans,
    timestamps, durations, lists and anything else are "not a number"."""
    values = frame[column]
    if values.dtype.kind in "iuf":
        numbers = values.astype("float64")
    elif values.dtype.kind in "mMb" or isinstance(values.dtype, pd.DatetimeTZDtype):
        numbers = pd.Series(np.nan, index=values.index)
    else:
        numbers = pd.Series([_number(v) for v in values], index=values.index, dtype="float64")
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":
        bad = pd.Series(False, index=values.index)  # NaN in, NaN out: missing, not "not a number"
    else:
        bad = numbers.isna() & ~values.map(_is_missing)
    for i in frame.index[bad]:
        reasons[i].append(f"{column}: not a number")
    frame[column] = numbers


def _number(value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or _is_missing(value):
        return np.nan
    if isinstance(value, (int, float, np.integer, np.floating, decimal.Decimal)):
        try:
            return float(value)
        except OverflowError:
            return np.inf if value > 0 else -np.inf
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)  # "1e400" is inf: above max_amount, not "not a number"
    return np.nan


_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


_FIRST_NS, _LAST_NS = pd.Timestamp.min, pd.Timestamp.max
_RANGE = f"out of range (outside {_FIRST_NS:%Y-%m-%d} .. {_LAST_NS:%Y-%m-%d})"


def _coerce_timestamp(frame: pd.DataFrame, column: str, reasons: dict[int, list[str]]) -> None:
    """To naive UTC, nanoseconds. Naive input means UTC (contract); aware input is
    converted. Values of any unit or type that fall outside what a nanosecond timestamp
    can hold (9999-12-31, year 1) are rejected as out of range, never a crash."""
    values = frame[column]
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        out = values.notna() & ((values < _FIRST_NS) | (values > _LAST_NS))
        parsed = values.where(~out).astype("datetime64[ns]")
    else:
        pairs = [_parse_one(v) for v in values]
        out = pd.Series([p is _OUT_OF_RANGE for p in pairs], index=values.index)
        parsed = pd.Series(
            [None if p is _OUT_OF_RANGE else p for p in pairs], index=values.index, dtype="datetime64[ns]"
        )
    for i in frame.index[out]:
        reasons[i].append(f"{column}: {_RANGE}")
    if pd.api.types.is_datetime64_any_dtype(frame[column].dtype):
        bad = parsed.isna() & frame[column].notna() & ~out  # a timestamp column's only missing value is NaT
    else:
        bad = parsed.isna() & ~frame[column].map(_is_missing) & ~out
    for i in frame.index[bad]:
        reasons[i].append(f"{column}: not a timestamp")
    frame[column] = parsed


_OUT_OF_RANGE = object()


def _parse_one(value: object) -> pd.Timestamp | None | object:
    """A timestamp, None (not one), or :data:`_OUT_OF_RANGE`."""
    if _is_missing(value) or isinstance(value, (bool, float, int, np.number, dt.time, dt.timedelta)):
        return None
    try:
        ts = pd.Timestamp(value)
    except pd.errors.OutOfBoundsDatetime:
        return _OUT_OF_RANGE
    except (ValueError, TypeError, OverflowError):
        return None
    if ts is pd.NaT:
        return None
    if ts.tzinfo:
        ts = ts.tz_convert("UTC").tz_localize(None)
    try:
        return ts.as_unit("ns")
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        return _OUT_OF_RANGE


# --------------------------------------------------------------------------- schemas
def _text(max_length: int, nullable: bool = False) -> pa.Column:
    return pa.Column(
        object,
        pa.Check.str_length(min_value=1, max_value=max_length),
        nullable=nullable,
    )


def transaction_schema(window: Window, max_amount: float, max_text: int) -> pa.DataFrameSchema:
    """Row-level contract of one partition's transactions (after type coercion)."""
    return pa.DataFrameSchema(
        {
            "transaction_id": _text(max_text),
            "customer_id": _text(max_text),
            "event_ts": pa.Column(
                "datetime64[ns]",
                pa.Check(
                    lambda s: (s >= window.start) & (s < window.end),
                    name=f"inside partition {window}",
                    element_wise=False,
                ),
                nullable=False,
            ),
            "amount": pa.Column(
                "float64",
                [
                    pa.Check.gt(0),
                    pa.Check(lambda s: s <= max_amount, name=f"above max_amount {max_amount:g}"),
                ],
                nullable=False,
            ),
            "category": _text(max_text),
            "channel": _text(max_text, nullable=True),
        },
        strict=False,
        name="raw_transactions",
    )


def customer_schema(max_text: int) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": _text(max_text),
            "segment": _text(max_text),
            "region": _text(max_text),
            "opened_at": pa.Column("datetime64[ns]", nullable=False),
        },
        name="customers",
    )


def irregularity_schema(max_text: int) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": _text(max_text),
            "event_ts": pa.Column("datetime64[ns]", nullable=False),
        },
        name="irregularities",
    )


_READABLE = {"greater_than(0)": "must be > 0"}


def _schema_reasons(frame: pd.DataFrame, schema: pa.DataFrameSchema, reasons: dict[int, list[str]]) -> None:
    """Validate lazily; attach each failure case to its row."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        # column by column in the frame's order, whatever order the validation found them in
        # (it depends on the columns' dtypes, which differ between one file and a mix of files)
        cases = exc.failure_cases
        position = {c: i for i, c in enumerate(frame.columns)}
        cases = cases.assign(_at=cases["column"].map(position)).sort_values(["_at", "check"], kind="stable")
        for row in cases.itertuples(index=False):
            if pd.isna(row.index):
                raise ContractError("(batch)", str(row.column), f"failed {row.check}") from None
            i, check = int(row.index), str(row.check)
            if check == "not_nullable":
                if any(r.startswith((f"{row.column}: not a ", f"{row.column}: out of range")) for r in reasons[i]):
                    continue  # already explained by the failed type coercion
                check = "missing"
            reasons[i].append(f"{row.column}: {_READABLE.get(check, check)}")


# --------------------------------------------------------------------------- splitting
def _split(
    frame: pd.DataFrame,
    columns: tuple[str, ...],
    reasons: dict[int, list[str]],
    key: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    bad = _rejected_mask(frame, reasons)
    rejected_rows = frame.loc[bad]
    rejected = pd.DataFrame(
        {
            "source_file": rejected_rows[SOURCE_FILE].astype(str),
            "source_row": rejected_rows[SOURCE_ROW].astype("int64"),
            "record_key": rejected_rows[key].map(lambda v: v if isinstance(v, str) else None) if key else None,
            "reasons": ["; ".join(dict.fromkeys(reasons[i])) for i in rejected_rows.index],
            "raw_record": raw_records(rejected_rows, columns),
        },
        columns=REJECTED_COLUMNS,
    )
    accepted = frame.loc[~bad, [*columns, SOURCE_FILE]].reset_index(drop=True)
    return accepted, rejected.reset_index(drop=True)


def _raw_json(original: dict) -> str:
    return json.dumps({k: None if _is_missing(v) else str(v) for k, v in original.items()})


def _prepare(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    frame = frame.reset_index(drop=True).copy()
    for column in columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):  # dictionary-encoded parquet columns
            frame[column] = frame[column].astype(object)
    if SOURCE_FILE not in frame:
        frame[SOURCE_FILE] = "(in memory)"
    if SOURCE_ROW not in frame:
        frame[SOURCE_ROW] = np.arange(len(frame))
    for column in columns:  # the values as received, for the rejected rows' raw_record
        frame[ORIGINAL + column] = frame[column]
    return frame


ORIGINAL = "_original_"
"""Prefix of the columns :func:`_prepare` keeps each received value in (before coercion)."""


def raw_records(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[str]:
    """The received values of ``frame``'s rows as JSON (``raw_record``), from the columns
    :func:`_prepare` kept (converted only for the rows asked: the rejected ones)."""
    if frame.empty:
        return []
    originals = frame[[ORIGINAL + c for c in columns]].set_axis(list(columns), axis=1)
    return [_raw_json(record) for record in originals.to_dict("records")]


def _rejected_mask(frame: pd.DataFrame, reasons: dict[int, list[str]]) -> np.ndarray:
    """Rows with at least one reason."""
    return frame.index.isin([i for i, r in reasons.items() if r])


CONFLICT = "conflicting duplicate"
"""The start of every rejection reason for a copy of a key whose values differ from
another copy's: no copy wins a tie-break, all are rejected, and a blocking check fails."""


def _where(frame: pd.DataFrame, i: int) -> str:
    return f"{frame.at[i, SOURCE_FILE]}:{frame.at[i, SOURCE_ROW]}"


def _differing(a: pd.Series, b: pd.Series) -> list[str]:
    return [c for c in a.index if not (_is_missing(a[c]) and _is_missing(b[c])) and a[c] != b[c]]


def _mark_duplicates(
    frame: pd.DataFrame, key: str, reasons: dict[int, list[str]], what: str, content: list[str]
) -> None:
    """Copies of a key among otherwise-valid rows. Identical copies (every ``content``
    column equal): the first stays, later ones are rejected as duplicates. Copies that
    differ: every copy is rejected as a conflicting duplicate naming the columns that
    differ and where another copy is — nothing is settled by file-name order."""
    clean = frame.loc[~_rejected_mask(frame, reasons), [key, *content]]
    copies = clean[clean[key].duplicated(keep=False)]
    for _, group in copies.groupby(key, sort=False):
        first = group.index[0]
        values = group[content]
        if not any(_differing(values.loc[first], values.loc[j]) for j in group.index[1:]):
            for i in group.index[1:]:
                reasons[i].append(f"duplicate {what} (first at {_where(frame, first)})")
            continue
        for i in group.index:
            other = next(j for j in group.index if j != i and _differing(values.loc[i], values.loc[j]))
            columns = ", ".join(_differing(values.loc[i], values.loc[other]))
            reasons[i].append(f"{CONFLICT} {what}: values differ ({columns}) from the copy at {_where(frame, other)}")


STORED_COLUMNS = (
    "transaction_id",
    "partition",
    "customer_id",
    "event_ts",
    "amount_cents",
    "category",
    "channel",
    "source_file",
)
"""What :func:`split_transactions` needs of a transaction already stored in another partition."""

_COMPARED = ["customer_id", "event_ts", "amount_cents", "category", "channel"]


def _mark_stored_elsewhere(frame: pd.DataFrame, stored: pd.DataFrame, reasons: dict[int, list[str]]) -> None:
    """Rows whose id is already stored in another partition: an identical row is a plain
    duplicate; a row whose values differ is a conflicting duplicate naming the stored
    partition and file (a row with its own problems is only called a duplicate)."""
    if stored.empty:
        return
    stored = stored.drop_duplicates("transaction_id").set_index("transaction_id")
    hits = frame.index[frame["transaction_id"].isin(stored.index)]
    for i in hits:
        tx = frame.at[i, "transaction_id"]
        there = stored.loc[tx]
        where = f"partition {there['partition']}"
        if reasons[i]:
            reasons[i].append(f"duplicate of transaction already stored in {where}")
            continue
        mine = pd.Series(
            {c: frame.at[i, c] for c in _COMPARED if c != "amount_cents"}
            | {"amount_cents": int(round(frame.at[i, "amount"] * 100.0))}
        )[_COMPARED]
        theirs = pd.Series({c: there[c] for c in _COMPARED})
        theirs["event_ts"] = pd.Timestamp(theirs["event_ts"])
        differ = _differing(mine, theirs)
        if differ:
            reasons[i].append(
                f"{CONFLICT} transaction_id: values differ ({', '.join(differ)}) from the row stored "
                f"in {where} (from {there['source_file']})"
            )
        else:
            reasons[i].append(f"duplicate of transaction already stored in {where}")


def check_transaction_rows(
    frame: pd.DataFrame, window: Window, *, max_amount: float, max_text: int
) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """The row-level rules of :func:`split_transactions` (types, ranges, text, the
    partition window): the typed frame and each row's reasons so far. Needs nothing but
    the rows themselves, so an engine can apply it to each file where the file is."""
    frame = _prepare(frame, TRANSACTION_COLUMNS)
    reasons: dict[int, list[str]] = defaultdict(list)
    for column in ("transaction_id", "customer_id", "category", "channel"):
        _coerce_text(frame, column, reasons)
    _coerce_number(frame, "amount", reasons)
    _coerce_timestamp(frame, "event_ts", reasons)
    _schema_reasons(frame, transaction_schema(window, max_amount, max_text), reasons)
    return frame, reasons


def member_of(values: pd.Series, known: set[str] | pd.Index) -> pd.Series:
    """Whether each value is in ``known``. A unique :class:`pandas.Index` (a load's customer
    ids, built once) answers by its own hash table; a set is hashed again on every call."""
    if isinstance(known, pd.Index):
        return pd.Series(known.get_indexer(values) >= 0, index=values.index)
    return values.isin(known)


def mark_customers(frame: pd.DataFrame, reasons: dict[int, list[str]], known: pd.Series, conflicted: pd.Series) -> None:
    """Rows whose customer is not in the customers table (``known``: a mask over the
    frame); ``conflicted``: the customer's own rows were rejected as conflicting copies."""
    unknown = ~known.to_numpy(dtype=bool) & frame["customer_id"].notna().to_numpy()
    conflicted = conflicted.to_numpy(dtype=bool)
    for i in frame.index[unknown & conflicted]:
        reasons[i].append(f"customer_id: its customer rows are {CONFLICT}s (rejected from customers)")
    for i in frame.index[unknown & ~conflicted]:
        reasons[i].append("customer_id: not in customers")


def mark_copies(frame: pd.DataFrame, reasons: dict[int, list[str]], stored_elsewhere: pd.DataFrame | None) -> None:
    """Copies of a transaction id: against rows stored in other partitions, and within the
    batch (in the frame's order: files in listing order, rows in file order). Every copy
    of an id must be in ``frame``; other ids may be elsewhere."""
    if stored_elsewhere is not None:
        _mark_stored_elsewhere(frame, stored_elsewhere, reasons)
    _mark_duplicates(
        frame, "transaction_id", reasons, "transaction_id", ["customer_id", "event_ts", "amount", "category", "channel"]
    )


def cents(amount: pd.Series) -> pd.Series:
    """Whole cents of accepted amounts (round half to even, as numpy rounds)."""
    return np.round(amount * 100.0).astype("int64")


def sub_cent(amount: pd.Series) -> np.ndarray:
    """Amounts with a fraction of a cent (rounded by :func:`cents`; counted in the notes)."""
    scaled = amount.to_numpy(dtype="float64") * 100.0
    return np.abs(scaled - np.round(scaled)) > 1e-6


def finish_transactions(frame: pd.DataFrame, reasons: dict[int, list[str]], received: int) -> Split:
    """The accepted and rejected frames of checked rows."""
    accepted, rejected = _split(frame, TRANSACTION_COLUMNS, reasons, "transaction_id")
    accepted["amount_cents"] = cents(accepted["amount"])
    return Split(
        accepted, rejected, received, notes={"sub_cent_amounts_rounded": int(sub_cent(accepted["amount"]).sum())}
    )


def split_transactions(
    frame: pd.DataFrame,
    window: Window,
    *,
    max_amount: float,
    max_text: int,
    known_customers: set[str] | pd.Index | None,
    stored_elsewhere: pd.DataFrame | None = None,
    conflicted_customers: set[str] | None = None,
) -> Split:
    """Validate one partition's raw transactions.

    ``known_customers``: ids in the customers table, a set or a unique index (``None``
    skips that rule).
    ``stored_elsewhere``: rows (:data:`STORED_COLUMNS`) already stored in *other*
    partitions under this batch's ids; a copy is rejected as a duplicate, or as a
    conflicting duplicate when its values differ. ``conflicted_customers``: ids whose
    customer rows conflict (rejected from customers), named as such.

    The rules run in three steps an engine may also run apart (the Spark engine:
    :mod:`risk_assets.engines.spark.contract`): :func:`check_transaction_rows` per row,
    :func:`mark_customers`, :func:`mark_copies` per transaction id, then
    :func:`finish_transactions`.
    """
    received = len(frame)
    frame, reasons = check_transaction_rows(frame, window, max_amount=max_amount, max_text=max_text)
    if known_customers is not None:
        mark_customers(
            frame,
            reasons,
            member_of(frame["customer_id"], known_customers),
            frame["customer_id"].isin(conflicted_customers or set()),
        )
    mark_copies(frame, reasons, stored_elsewhere)
    return finish_transactions(frame, reasons, received)


def split_customers(frame: pd.DataFrame, *, max_text: int) -> Split:
    received = len(frame)
    frame = _prepare(frame, CUSTOMER_COLUMNS)
    reasons: dict[int, list[str]] = defaultdict(list)
    for column in ("customer_id", "segment", "region"):
        _coerce_text(frame, column, reasons)
    _coerce_timestamp(frame, "opened_at", reasons)
    _schema_reasons(frame, customer_schema(max_text), reasons)
    _mark_duplicates(frame, "customer_id", reasons, "customer_id", ["segment", "region", "opened_at"])
    accepted, rejected = _split(frame, CUSTOMER_COLUMNS, reasons, "customer_id")
    return Split(accepted, rejected, received)


def split_irregularities(frame: pd.DataFrame, *, max_text: int, known_customers: set[str]) -> Split:
    received = len(frame)
    frame = _prepare(frame, IRREGULARITY_COLUMNS)
    reasons: dict[int, list[str]] = defaultdict(list)
    _coerce_text(frame, "customer_id", reasons)
    _coerce_timestamp(frame, "event_ts", reasons)
    _schema_reasons(frame, irregularity_schema(max_text), reasons)
    unknown = ~frame["customer_id"].isin(known_customers) & frame["customer_id"].notna()
    for i in frame.index[unknown]:
        reasons[i].append("customer_id: not in customers")
    # An irregularity is identified by all its columns, so copies are identical by
    # definition: later ones are rejected as duplicates (counted), never a conflict.
    frame["_event"] = frame["customer_id"].astype(str) + " @ " + frame["event_ts"].astype(str)
    _mark_duplicates(frame, "_event", reasons, "irregularity", ["customer_id", "event_ts"])
    accepted, rejected = _split(frame, IRREGULARITY_COLUMNS, reasons, "customer_id")
    return Split(accepted, rejected, received)
