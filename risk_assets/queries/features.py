"""The two executions of the feature spec, both compiled from :data:`spec.FEATURES`
(warehouse reads: raw transactions, the category mapping, customers, irregularities).

* :func:`serving_features` — every active customer for one business day; the window
  bounds are one constant row, the scan is pruned to the look-back's partitions.
* :func:`training_features` — point in time over many as-of days (optionally for a
  sample of customers): a range join of transactions against a spine of as-of bounds.

They differ in how they compute (one constant row vs. a range join over a spine) and
never in what they mean: the aggregate expressions are the same text from the spec.
A nightly parity check (issue 4) recomputes a sample through the training path and
compares it with what serving produced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from risk_assets.features.spec import BOUND_COLUMNS, FEATURES, LOOKBACK_DAYS, FeatureVocabulary
from risk_assets.night import Night
from risk_assets.queries import warehouse

_TX_AGGS = ",\n    ".join(f"{f.sql} AS {f.name}" for f in FEATURES if f.origin == "transactions")
_SELECT = ", ".join(
    f"f.{f.name}" if f.origin == "transactions" else f"{f.sql} AS {f.name}" for f in FEATURES
)
_MAPPED_TX = """
    SELECT r.customer_id, r.event_ts, r.amount_cents, r.channel, cv.channel IS NOT NULL AS channel_known,
           coalesce(m.canonical, r.category) AS canonical, m.canonical IS NOT NULL AS mapped
    FROM raw_transactions r
    LEFT JOIN (SELECT raw_category, canonical FROM category_mapping WHERE version = $mapping) m
           ON m.raw_category = r.category
    LEFT JOIN (SELECT channel FROM channel_vocabulary WHERE version = $mapping) cv ON cv.channel = r.channel
    WHERE r.partition BETWEEN $first_partition AND $last_partition"""


@dataclass(frozen=True)
class ServingSkew:
    """Fault injection for tests and the demo: a serving build whose windows differ.

    ``end_shift_hours`` moves every bound (as_of and window starts) by that many hours;
    ``window_days_offset`` lengthens (or shortens) every window by whole days. Both 0
    in production."""

    end_shift_hours: float = 0.0
    window_days_offset: int = 0

    @property
    def active(self) -> bool:
        return bool(self.end_shift_hours or self.window_days_offset)


def serving_bounds(night: Night, skew: ServingSkew | None = None) -> dict[str, pd.Timestamp]:
    bounds = night.bound_row()
    if skew and skew.active:
        shift = pd.Timedelta(hours=skew.end_shift_hours)
        bounds = {
            k: v + shift - (pd.Timedelta(days=skew.window_days_offset) if k.startswith("start_") else pd.Timedelta(0))
            for k, v in bounds.items()
        }
    return bounds


def _partition_range(nights: Iterable[Night]) -> tuple[dt.date, dt.date]:
    nights = sorted(nights, key=lambda n: n.day)
    return nights[0].scan_range()[0], nights[-1].scan_range()[1]


def serving_features(
    conn: duckdb.DuckDBPyConnection,
    night: Night,
    mapping_version: str,
    vocabulary: FeatureVocabulary,
    skew: ServingSkew | None = None,
) -> pd.DataFrame:
    """Features of every active customer as of the end of business day ``night``; the
    share features count the values ``vocabulary`` names."""
    bounds = serving_bounds(night, skew)
    first, last = night.scan_range()
    b_row = ", ".join(f"$b_{c}::TIMESTAMP AS {c}" for c in BOUND_COLUMNS)
    sql = f"""
WITH b AS (SELECT {b_row}),
t AS ({_MAPPED_TX}
      AND r.event_ts >= (SELECT start_{LOOKBACK_DAYS} FROM b) AND r.event_ts < (SELECT as_of FROM b)),
f AS (
  SELECT t.customer_id, any_value(b.as_of) AS as_of,
    {_TX_AGGS}
  FROM t CROSS JOIN b
  GROUP BY t.customer_id
)
SELECT f.customer_id, f.as_of, {_SELECT}
FROM f LEFT JOIN customers c ON c.customer_id = f.customer_id
ORDER BY f.customer_id"""
    params = {f"b_{c}": bounds[c].to_pydatetime() for c in BOUND_COLUMNS}
    params |= {"mapping": mapping_version, "first_partition": first, "last_partition": last, **vocabulary.params()}
    return _finish(warehouse.frame(conn, sql, params))


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """One dtype per column whichever path produced it (counts become float64 like the
    tables that store them)."""
    frame["as_of"] = frame["as_of"].astype("datetime64[ns]")
    for f in FEATURES:
        if f.kind == "numeric":
            frame[f.name] = frame[f.name].astype("float64")
        else:
            frame[f.name] = frame[f.name].astype(object)
    return frame


TRAINING_CHUNK_DAYS = 8
"""As-of days computed per query. One query over a long spine builds one hash table for
every (customer, as-of day) group at once — at 300k customers x 61 days that is ~15M
groups, which spills and more than doubles the time; chunks keep time linear and
memory bounded (``benchmarks/run.py``)."""


def training_features(
    conn: duckdb.DuckDBPyConnection,
    nights: Sequence[Night],
    mapping_version: str,
    vocabulary: FeatureVocabulary,
    customers: Sequence[str] | None = None,
    chunk_days: int = TRAINING_CHUNK_DAYS,
) -> pd.DataFrame:
    """Point-in-time features for every (active customer, as-of night) pair, ordered by
    as-of day then customer.

    ``customers``: restrict to these ids (the parity sample); all active otherwise."""
    nights = sorted(nights, key=lambda n: n.day)
    chunks = [_training_chunk(conn, nights[i:i + chunk_days], mapping_version, vocabulary, customers)
              for i in range(0, len(nights), chunk_days)]
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def _training_chunk(
    conn: duckdb.DuckDBPyConnection,
    nights: Sequence[Night],
    mapping_version: str,
    vocabulary: FeatureVocabulary,
    customers: Sequence[str] | None,
) -> pd.DataFrame:
    spine = pd.DataFrame([n.bound_row() for n in nights])[list(BOUND_COLUMNS)]
    first, last = _partition_range(nights)
    conn.register("_spine", spine)
    sample_filter = ""
    if customers is not None:
        conn.register("_sample", pd.DataFrame({"customer_id": list(customers)}, dtype=object))
        sample_filter = "AND r.customer_id IN (SELECT customer_id FROM _sample)"
    sql = f"""
WITH t AS ({_MAPPED_TX} {sample_filter}),
f AS (
  SELECT t.customer_id, b.as_of,
    {_TX_AGGS}
  FROM _spine b JOIN t ON t.event_ts >= b.start_{LOOKBACK_DAYS} AND t.event_ts < b.as_of
  GROUP BY t.customer_id, b.as_of
)
SELECT f.customer_id, f.as_of, {_SELECT}
FROM f LEFT JOIN customers c ON c.customer_id = f.customer_id
ORDER BY f.as_of, f.customer_id"""
    try:
        return _finish(warehouse.frame(
            conn, sql, {"mapping": mapping_version, "first_partition": first, "last_partition": last,
                        **vocabulary.params()}
        ))
    finally:
        conn.unregister("_spine")
        if customers is not None:
            conn.unregister("_sample")


def labels(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame, timezone: str) -> pd.Series:
    """1 when the customer has an irregularity in ``[as_of, as_of + 30 days)``."""
    keys = frame[["customer_id", "as_of"]].copy()
    label_end = {a: Night.from_as_of(a, timezone).label_end for a in keys["as_of"].unique()}
    keys["label_end"] = keys["as_of"].map(label_end)
    keys["_row"] = range(len(keys))
    conn.register("_keys", keys)
    try:
        hit = conn.execute(
            """SELECT k._row FROM _keys k
               WHERE EXISTS (SELECT 1 FROM irregularities i WHERE i.customer_id = k.customer_id
                             AND i.event_ts >= k.as_of AND i.event_ts < k.label_end)"""
        ).df()["_row"]
    finally:
        conn.unregister("_keys")
    result = pd.Series(0, index=frame.index, dtype="int64")
    result.iloc[hit.to_numpy()] = 1
    return result
