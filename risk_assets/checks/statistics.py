"""The checks' statistics as aggregate queries: only small frames reach Python.

A check never needs a partition's rows, only counts over them: rows per category and
their amounts, rows per channel, substituted cells per feature, rows per drift bin or
categorical level. Each is one query here, written once in DuckDB's dialect and run by
the engine that holds the tables — the warehouse by default, or Spark over the Parquet
lake when a check step runs inside :func:`on_engine` (``[engine] kind = "spark"``; the
text is rendered by :mod:`risk_assets.engines.spark.dialect` like the feature SQL). What comes
back is one row per category, channel, feature or bin, whatever the partition's size;
the guards (``risk_assets/guards/``) judge those frames.

The one query whose size grows with the data, :func:`unmapped_rows`, returns the rows of
categories the mapping does not know — none on a clean night — capped per category.

Values travel as parameters; identifiers are table names from the warehouse whitelist
and feature names from the spec.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import duckdb
import numpy as np
import pandas as pd

from risk_assets.core.features.spec import BY_NAME
from risk_assets.store import warehouse

UNMAPPED_ROWS_CAP = 20_000
"""At most this many rows of each unmapped category reach the alias suggestions (the
first by transaction id; the counts are always exact)."""

_ENGINE: ContextVar[object | None] = ContextVar("statistics_engine", default=None)
_SHARED: ContextVar[dict | None] = ContextVar("shared_statistics", default=None)


@contextmanager
def on_engine(engine) -> Iterator[None]:
    """Within the block, statistics are computed by ``engine`` (an object with
    ``statistics(conn, sql, params) -> DataFrame``, e.g. the Spark engine) instead of the
    warehouse connection."""
    token = _ENGINE.set(engine)
    try:
        yield
    finally:
        _ENGINE.reset(token)


@contextmanager
def shared() -> Iterator[None]:
    """Within the block, each statistic is computed once and every caller gets its own
    copy (the checks of one step ask for the same counts: coverage and amount levels both
    read the category counts, three checks the ledger's). Only for blocks that do not
    write the tables they read."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def run(conn: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pd.DataFrame:
    """One statistic query on the current engine."""
    params = {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}  # the ones this text uses
    cache, key = _SHARED.get(), (sql, repr(sorted(params.items())))
    if cache is not None and key in cache:
        return cache[key].copy()
    engine = _ENGINE.get()
    out = warehouse.frame(conn, sql, params) if engine is None else engine.statistics(conn, sql, params)
    if cache is not None:
        cache[key] = out.copy()
    return out


_MAX_DOUBLE = float(np.finfo("float64").max)
"""``-max <= v <= max`` holds for finite numbers only: NULL, NaN and ±inf fail it on both
engines (both order NaN above every number)."""


# --------------------------------------------------------------------------- raw layer
def category_counts(conn: duckdb.DuckDBPyConnection, day: dt.date) -> pd.DataFrame:
    """Per category of the raw partition: ``rows``, ``amount_cents`` (sum) and
    ``mean_log`` (mean of ln amount_cents)."""
    return run(conn, f"""
        SELECT category, count(*) AS rows, CAST(sum(amount_cents) AS BIGINT) AS amount_cents,
               avg(ln(amount_cents)) AS mean_log
        FROM {warehouse.table('raw_transactions')} WHERE partition = CAST($day AS DATE)
        GROUP BY category ORDER BY category""", {"day": day})


def unmapped_rows(conn: duckdb.DuckDBPyConnection, day: dt.date, mapping_version: str,
                  cap: int = UNMAPPED_ROWS_CAP) -> pd.DataFrame:
    """The partition's rows whose category the mapping version does not know
    (``transaction_id, category, amount_cents``), at most ``cap`` per category."""
    return run(conn, f"""
        SELECT transaction_id, category, amount_cents FROM (
            SELECT r.transaction_id, r.category, r.amount_cents,
                   row_number() OVER (PARTITION BY r.category ORDER BY r.transaction_id) AS k
            FROM {warehouse.table('raw_transactions')} r
            WHERE r.partition = CAST($day AS DATE) AND r.category NOT IN (
                SELECT raw_category FROM {warehouse.table('category_mapping')} WHERE version = $version)) u
        WHERE k <= $cap ORDER BY category, transaction_id""", {"day": day, "version": mapping_version, "cap": cap})


VALUE_COLUMNS = ("channel",)


def value_counts(conn: duckdb.DuckDBPyConnection, day: dt.date, column: str) -> pd.DataFrame:
    """Rows per value of one raw column (``value, rows``; missing values as one NULL row)."""
    if column not in VALUE_COLUMNS:
        raise ValueError(f"no value counts for column {column!r}")
    return run(conn, f"""
        SELECT "{column}" AS value, count(*) AS rows FROM {warehouse.table('raw_transactions')}
        WHERE partition = CAST($day AS DATE) GROUP BY "{column}" ORDER BY rows DESC, value""", {"day": day})


# --------------------------------------------------------------------------- imputation ledger
def ledger_counts(conn: duckdb.DuckDBPyConnection, day: dt.date) -> pd.DataFrame:
    """Substituted cells per feature and reason (``feature, reason, cells, customers``)."""
    return run(conn, f"""
        SELECT feature, reason, count(*) AS cells, count(DISTINCT customer_id) AS customers
        FROM {warehouse.table('imputation_log')} WHERE partition = CAST($day AS DATE)
        GROUP BY feature, reason ORDER BY feature, reason""", {"day": day})


def customers_with(conn: duckdb.DuckDBPyConnection, day: dt.date, reason: str) -> int:
    """Customers with at least one ledger cell of ``reason`` (any feature)."""
    out = run(conn, f"""
        SELECT count(DISTINCT customer_id) AS customers FROM {warehouse.table('imputation_log')}
        WHERE partition = CAST($day AS DATE) AND reason = $reason""", {"day": day, "reason": reason})
    return int(out["customers"].iloc[0]) if len(out) else 0


# --------------------------------------------------------------------------- drift profile
def _feature(name: str) -> str:
    if name not in BY_NAME:
        raise ValueError(f"{name!r} is not a feature of the spec")
    return f'"{name}"'


def bin_counts(conn: duckdb.DuckDBPyConnection, day: dt.date, edges: dict[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """Per numeric feature, the encoded partition's finite values counted in the bins
    ``(-inf, e0], (e0, e1], …, (e_last, inf)`` — numpy's ``searchsorted(side="left")``,
    as the reference profile was counted at training (:func:`risk_assets.core.stats.bin_counts`)."""
    if not edges:
        return {}
    params: dict[str, object] = {"day": day, "max": _MAX_DOUBLE}
    parts = []
    for i, (name, feature_edges) in enumerate(edges.items()):
        column = _feature(name)
        above = []
        for k, edge in enumerate(feature_edges):
            params[f"e{i}_{k}"] = float(edge)
            above.append(f"CASE WHEN {column} > $e{i}_{k} THEN 1 ELSE 0 END")
        parts.append(f"""
            SELECT {i} AS f, {' + '.join(above) or '0'} AS bin, count(*) AS rows
            FROM {warehouse.table('encoded_features')}
            WHERE partition = CAST($day AS DATE) AND {column} >= -$max AND {column} <= $max
            GROUP BY 2""")
    rows = run(conn, " UNION ALL ".join(parts), params)
    out = {}
    for i, (name, feature_edges) in enumerate(edges.items()):
        mine = rows[rows["f"] == i]
        counts = np.zeros(len(feature_edges) + 1, dtype="int64")
        counts[mine["bin"].to_numpy(dtype="int64")] = mine["rows"].to_numpy(dtype="int64")
        out[name] = counts
    return out


def level_counts(conn: duckdb.DuckDBPyConnection, day: dt.date, features: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Per categorical feature, rows per value of the encoded partition (``value, rows``)."""
    if not features:
        return {}
    parts = [f"""SELECT {i} AS f, {_feature(name)} AS value, count(*) AS rows
                 FROM {warehouse.table('encoded_features')} WHERE partition = CAST($day AS DATE) GROUP BY 2"""
             for i, name in enumerate(features)]
    rows = run(conn, " UNION ALL ".join(parts), {"day": day})
    return {name: rows.loc[rows["f"] == i, ["value", "rows"]].reset_index(drop=True)
            for i, name in enumerate(features)}


# --------------------------------------------------------------------------- missingness
def missing_cells(conn: duckdb.DuckDBPyConnection, night, mapping_version: str) -> pd.DataFrame:
    """Per feature, the ledger's substituted cells and how many of them are coverage's to
    judge (``feature, cells, excused``): an unseen categorical level, or a NULL a feature
    has because the customer's 30-day window holds an unmapped category or a channel the
    training period never saw (``Feature.null_when``;
    :func:`risk_assets.checks.imputation.coverage_cells`)."""
    sql, params = _missingness_sql(night, mapping_version)
    return run(conn, f"""{sql}
        SELECT feature, count(*) AS cells, CAST(sum(CASE WHEN excused THEN 1 ELSE 0 END) AS BIGINT) AS excused
        FROM cells GROUP BY feature ORDER BY feature""", params)


def missingness_contingency(conn: duckdb.DuckDBPyConnection, night, mapping_version: str,
                            min_cells: int) -> pd.DataFrame:
    """For every feature with at least ``min_cells`` cells that are not coverage's, the
    scored customers counted by grouping, group and exposure: ``feature, dimension, grp, n,
    customers, hits`` — ``n`` the customer's transactions in the feature's window
    (``txn_count_<w>d``; the 30-day count for other windows), ``hits`` how many of them
    carry a substituted cell of the feature. Groupings: segment, region and
    ``uses:<category>`` (1 when the 30-day window holds the raw category)."""
    sql, params = _missingness_sql(night, mapping_version)
    enc = warehouse.table("encoded_features")
    return run(conn, f"""{sql},
        tested AS (SELECT feature FROM cells WHERE NOT excused GROUP BY feature HAVING count(*) >= $min_cells),
        hit AS (SELECT DISTINCT feature, customer_id FROM cells WHERE NOT excused),
        base AS (
            SELECT t.feature, c.customer_id, c.segment, c.region,
                   CASE WHEN list_contains($exposure_7d, t.feature) THEN c.txn_count_7d
                        WHEN list_contains($exposure_14d, t.feature) THEN c.txn_count_14d
                        ELSE c.txn_count_30d END AS n,
                   CASE WHEN h.customer_id IS NULL THEN 0 ELSE 1 END AS is_hit
            FROM tested t CROSS JOIN (SELECT customer_id, segment, region, txn_count_7d, txn_count_14d,
                                             txn_count_30d FROM {enc} WHERE partition = CAST($day AS DATE)) c
            LEFT JOIN hit h ON h.feature = t.feature AND h.customer_id = c.customer_id),
        used AS (SELECT DISTINCT customer_id, category FROM win),
        categories AS (SELECT DISTINCT category FROM used)
        SELECT feature, 'segment' AS dimension, segment AS grp, n, count(*) AS customers, sum(is_hit) AS hits
        FROM base GROUP BY feature, segment, n
        UNION ALL
        SELECT feature, 'region' AS dimension, region AS grp, n, count(*) AS customers, sum(is_hit) AS hits
        FROM base GROUP BY feature, region, n
        UNION ALL
        SELECT b.feature, concat('uses:', k.category) AS dimension,
               CASE WHEN u.customer_id IS NULL THEN '0' ELSE '1' END AS grp, b.n,
               count(*) AS customers, sum(b.is_hit) AS hits
        FROM base b CROSS JOIN categories k
        LEFT JOIN used u ON u.customer_id = b.customer_id AND u.category = k.category
        GROUP BY b.feature, k.category, CASE WHEN u.customer_id IS NULL THEN '0' ELSE '1' END, b.n
        ORDER BY feature, dimension, grp, n""", params | {"min_cells": int(min_cells)})


def _missingness_sql(night, mapping_version: str) -> tuple[str, dict]:
    from risk_assets.core.features.encoding import UNSEEN_CATEGORY
    from risk_assets.core.features.spec import FEATURES, WINDOWS

    first, last = night.scan_range(30)
    raw, ledger = warehouse.table("raw_transactions"), warehouse.table("imputation_log")
    params = {
        "day": night.day, "first": first, "last": last, "start": night.window_start(30), "end": night.as_of,
        "version": mapping_version, "unseen": UNSEEN_CATEGORY,
        "on_unmapped": [f.name for f in FEATURES if f.null_when == "unmapped_category"],
        "on_channel": [f.name for f in FEATURES if f.null_when == "unknown_channel"],
        **{f"exposure_{w}d": [f.name for f in FEATURES if f.window_days == w] or [""] for w in WINDOWS if w != 30},
    }
    return f"""
        WITH win AS (
            SELECT DISTINCT customer_id, category, channel FROM {raw}
            WHERE partition BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)
              AND event_ts >= CAST($start AS TIMESTAMP) AND event_ts < CAST($end AS TIMESTAMP)),
        unmapped AS (SELECT DISTINCT customer_id FROM win WHERE category NOT IN (
            SELECT raw_category FROM {warehouse.table('category_mapping')} WHERE version = $version)),
        unseen_channel AS (SELECT DISTINCT customer_id FROM win WHERE channel IS NOT NULL AND channel NOT IN (
            SELECT channel FROM {warehouse.table('channel_vocabulary')} WHERE version = $version)),
        cells AS (
            SELECT l.feature, l.customer_id,
                   l.reason = $unseen
                   OR (list_contains($on_unmapped, l.feature) AND m.customer_id IS NOT NULL)
                   OR (list_contains($on_channel, l.feature) AND s.customer_id IS NOT NULL) AS excused
            FROM {ledger} l
            LEFT JOIN unmapped m ON m.customer_id = l.customer_id
            LEFT JOIN unseen_channel s ON s.customer_id = l.customer_id
            WHERE l.partition = CAST($day AS DATE))""", params
