"""The two executions of the feature spec, both compiled from :data:`spec.FEATURES`
(warehouse reads: raw transactions, the category mapping, the customers version valid at
each row's as-of, irregularities).

* :func:`serving_features` — every active customer for one business day; the window
  bounds are one constant row, the scan is pruned to the look-back's partitions.
* :func:`training_features` — point in time over many as-of days (optionally for a
  sample of customers): a range join of transactions against a spine of as-of bounds.
  :func:`insert_training_features` runs the same query straight into the
  ``training_features`` table, labels included, without a trip through pandas.

They differ in how they compute (one constant row vs. a range join over a spine) and
never in what they mean: the aggregate expressions are the same text from the spec.
A nightly parity check (issue 4) recomputes a sample through the training path and
compares it with what serving produced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pandas as pd

from risk_assets.core.features.spec import BOUND_COLUMNS, FEATURES, LOOKBACK_DAYS, FeatureVocabulary
from risk_assets.core.night import Night
from risk_assets.store import warehouse

_TX_AGGS = ",\n    ".join(f"{f.sql} AS {f.name}" for f in FEATURES if f.origin == "transactions")
_SELECT = ", ".join(f"f.{f.name}" if f.origin == "transactions" else f"{f.sql} AS {f.name}" for f in FEATURES)
_MAPPED_TX = """
    SELECT r.customer_id, r.event_ts, r.amount_cents, r.channel, cv.channel IS NOT NULL AS channel_known,
           coalesce(m.canonical, r.category) AS canonical, m.canonical IS NOT NULL AS mapped
    FROM raw_transactions r
    LEFT JOIN (SELECT raw_category, canonical FROM category_mapping WHERE version = $mapping) m
           ON m.raw_category = r.category
    LEFT JOIN (SELECT channel FROM channel_vocabulary WHERE version = $mapping) cv ON cv.channel = r.channel
    WHERE r.partition BETWEEN $first_partition AND $last_partition"""


_VALID_AT_AS_OF = (
    "c.customer_id = f.customer_id AND c.valid_from <= f.as_of AND (c.valid_to IS NULL OR f.as_of < c.valid_to)"
)
"""The customer attributes a feature row reads: the version valid at the row's own as-of —
tonight's for serving, each as-of day's for training (point in time, like a feature store's
dimension tables; ``customer_versions``)."""


def _partition_range(nights: Iterable[Night]) -> tuple[dt.date, dt.date]:
    nights = sorted(nights, key=lambda n: n.day)
    return nights[0].scan_range()[0], nights[-1].scan_range()[1]


def serving_query(
    night: Night,
    mapping_version: str,
    vocabulary: FeatureVocabulary,
) -> tuple[str, dict]:
    """The serving execution for ``night``: its SQL (one row per active customer, no
    ORDER BY) and parameters; the share features count the values ``vocabulary`` names.
    The window bounds are the night's (:meth:`Night.bound_row`)."""
    bounds = night.bound_row()
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
FROM f LEFT JOIN customer_versions c ON {_VALID_AT_AS_OF}"""
    params = {f"b_{c}": bounds[c].to_pydatetime() for c in BOUND_COLUMNS}
    params |= {"mapping": mapping_version, "first_partition": first, "last_partition": last, **vocabulary.params()}
    return sql, params


def serving_features(
    conn: duckdb.DuckDBPyConnection,
    night: Night,
    mapping_version: str,
    vocabulary: FeatureVocabulary,
) -> pd.DataFrame:
    """Features of every active customer as of the end of business day ``night``, as
    pandas ordered by customer (the parity check, tests, the benchmark)."""
    sql, params = serving_query(night, mapping_version, vocabulary)
    return finish(warehouse.frame(conn, f"{sql}\nORDER BY f.customer_id", params))


def write_serving_features(
    conn: duckdb.DuckDBPyConnection,
    night: Night,
    mapping_version: str,
    vocabulary: FeatureVocabulary,
    spec_version: str,
) -> None:
    """Replace the ``serving_features`` partition of ``night`` with the serving
    execution's rows, inside the warehouse (the rows never pass through pandas: the
    round trip cost more than half the query at 300k customers — ``benchmarks/run.py``).
    The same values as :func:`serving_features` (a test compares them)."""
    sql, params = serving_query(night, mapping_version, vocabulary)
    warehouse.replace_partition_from_query(
        conn,
        night.day,
        "serving_features",
        f"SELECT q.*, $spec_version AS spec_version, $mapping AS mapping_version FROM ({sql}) q ORDER BY q.customer_id",
        params | {"spec_version": spec_version},
    )


def finish(frame: pd.DataFrame) -> pd.DataFrame:
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
    chunks = [
        _training_chunk(conn, nights[i : i + chunk_days], mapping_version, vocabulary, customers)
        for i in range(0, len(nights), chunk_days)
    ]
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def _training_chunk(
    conn: duckdb.DuckDBPyConnection,
    nights: Sequence[Night],
    mapping_version: str,
    vocabulary: FeatureVocabulary,
    customers: Sequence[str] | None,
) -> pd.DataFrame:
    with _training_query(conn, nights, mapping_version, vocabulary, customers) as (sql, params):
        return finish(warehouse.frame(conn, f"{sql}\nORDER BY f.as_of, f.customer_id", params))


def spine_frame(nights: Sequence[Night]) -> pd.DataFrame:
    """The ``_spine`` relation of the training execution: one row of bounds per as-of night."""
    return pd.DataFrame([n.bound_row() for n in nights])[list(BOUND_COLUMNS)]


def training_query(
    nights: Sequence[Night], mapping_version: str, vocabulary: FeatureVocabulary, sample: bool = False
) -> tuple[str, dict]:
    """The training execution for one chunk of as-of nights: its SQL (no ORDER BY) and
    parameters. It reads the spine of as-of bounds from ``_spine`` and, with ``sample``,
    only the customers in ``_sample`` (both registered by the engine that runs it)."""
    first, last = _partition_range(nights)
    sample_filter = "AND r.customer_id IN (SELECT customer_id FROM _sample)" if sample else ""
    sql = f"""
WITH t AS ({_MAPPED_TX} {sample_filter}),
f AS (
  SELECT t.customer_id, b.as_of,
    {_TX_AGGS}
  FROM _spine b JOIN t ON t.event_ts >= b.start_{LOOKBACK_DAYS} AND t.event_ts < b.as_of
  GROUP BY t.customer_id, b.as_of
)
SELECT f.customer_id, f.as_of, {_SELECT}
FROM f LEFT JOIN customer_versions c ON {_VALID_AT_AS_OF}"""
    return sql, {"mapping": mapping_version, "first_partition": first, "last_partition": last, **vocabulary.params()}


@contextmanager
def _training_query(
    conn: duckdb.DuckDBPyConnection,
    nights: Sequence[Night],
    mapping_version: str,
    vocabulary: FeatureVocabulary,
    customers: Sequence[str] | None,
    labels: bool = False,
) -> Iterator[tuple[str, dict]]:
    """:func:`training_query` with the spine (and the sample) registered in DuckDB while
    it is used. With ``labels`` the spine also carries each night's ``label_end``."""
    spine = spine_frame(nights)
    if labels:
        spine["label_end"] = [n.label_end for n in nights]
    conn.register("_spine", spine)
    if customers is not None:
        conn.register("_sample", pd.DataFrame({"customer_id": list(customers)}, dtype=object))
    try:
        yield training_query(nights, mapping_version, vocabulary, customers is not None)
    finally:
        conn.unregister("_spine")
        if customers is not None:
            conn.unregister("_sample")


_TRAINING_COLUMNS = (
    "customer_id",
    "as_of",
    *(f.name for f in FEATURES),
    "label",
    "split",
    "spec_version",
    "mapping_version",
)


def insert_training_features(
    conn: duckdb.DuckDBPyConnection,
    nights: Sequence[Night],
    mapping_version: str,
    vocabulary: FeatureVocabulary,
    split: str,
    spec_version: str,
    chunk_days: int = TRAINING_CHUNK_DAYS,
    compute: Callable[[Sequence[Night]], pd.DataFrame] | None = None,
) -> None:
    """Append the training rows of ``nights`` to the ``training_features`` table, with
    their labels (1 when the customer has an irregularity in ``[as_of, label_end)``),
    inside the warehouse: the same execution as :func:`training_features`, but the
    rows never pass through pandas (at 300k customers the production spine is 15M rows;
    the round trip through Python objects cost a third of the time and most of the
    memory — ``benchmarks/run.py``). Rows are stored in no particular order (readers
    order them: :func:`warehouse.training_frame`). The caller owns the transaction.

    ``compute``: another engine's training execution of a chunk (the Spark engine's);
    its rows get their labels here, the same way."""
    nights = sorted(nights, key=lambda n: n.day)
    columns = ", ".join(_TRAINING_COLUMNS)
    for i in range(0, len(nights), chunk_days):
        chunk = nights[i : i + chunk_days]
        with _training_query(conn, chunk, mapping_version, vocabulary, None, labels=True) as (sql, params):
            if compute is not None:
                conn.register("_computed", compute(chunk))
                sql, params = "SELECT * FROM _computed", {"mapping": params["mapping"]}
            conn.execute(
                f"""
INSERT INTO {warehouse.table("training_features")} ({columns})
SELECT q.*,
       EXISTS (SELECT 1 FROM irregularities i WHERE i.customer_id = q.customer_id
               AND i.event_ts >= q.as_of AND i.event_ts < s.label_end)::INTEGER AS label,
       $split, $spec_version, $mapping
FROM ({sql}) q JOIN _spine s ON s.as_of = q.as_of""",
                params | {"split": split, "spec_version": spec_version},
            )
            if compute is not None:
                conn.unregister("_computed")
