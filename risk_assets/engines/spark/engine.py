"""The Spark engine: the two feature executions and the scoring, on Spark Connect.

The feature SQL is the DuckDB engine's own text (:func:`risk_assets.engines.executions.serving_query`,
:func:`risk_assets.engines.executions.training_query`) rendered by :mod:`risk_assets.engines.spark.dialect`; the
tables it names are the lake's (:mod:`risk_assets.engines.spark.lake`). Results come back as the
same pandas frames (one row per customer, or per customer and as-of night) that the DuckDB
engine returns, and go through the same ``finish``; what leaves Spark is the per-customer
result, never the transaction history. Scoring applies the LightGBM text model in
``mapInPandas`` batches on the executors.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from risk_assets.core.features.spec import BOUND_COLUMNS, FEATURE_NAMES, SPEC_VERSION, FeatureVocabulary
from risk_assets.core.night import Night
from risk_assets.engines import executions
from risk_assets.engines.base import DaySplit
from risk_assets.engines.duckdb_engine import DuckDBEngine
from risk_assets.engines.spark.contract import split_day as split_on_spark
from risk_assets.engines.spark.dialect import spark_args, to_spark
from risk_assets.engines.spark.lake import PARTITIONED, RAW, REFERENCE, REJECTED, Lake
from risk_assets.settings import RawSettings
from risk_assets.sources import LandingSource, Source
from risk_assets.store import warehouse
from risk_assets.store.warehouse import StoredIds

SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # DuckDB's semantics for the spec's arithmetic: x / 0 is NULL, not an error (every
    # zero denominator of the spec is handled by a CASE first; this keeps Spark from
    # raising inside a branch it would not take)
    "spark.sql.ansi.enabled": "false",
}
_SESSIONS: dict[str, object] = {}


LOCAL_DRIVER_MEMORY = "6g"
"""Heap of a local Connect server (``local[N]``): Spark's default 1 GB runs out at 300k
customers (``benchmarks/spark_engine.py``). ``PYSPARK_SUBMIT_ARGS`` overrides it."""


def connect(remote: str):
    """A Spark Connect session (one per address and process). ``local[N]`` starts a local
    Connect server — Java 17 on the PATH — whose Python workers run this interpreter."""
    if remote not in _SESSIONS:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if remote.startswith("local"):
            os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--driver-memory {LOCAL_DRIVER_MEMORY} pyspark-shell")
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.remote(remote)
        for key, value in SESSION_CONF.items():
            builder = builder.config(key, value)
        _SESSIONS[remote] = builder.getOrCreate()
    return _SESSIONS[remote]


def _naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


class SparkEngine(DuckDBEngine):
    """The engine protocol on Spark Connect: what grows with the data is computed by Spark
    over the lake; the warehouse (``conn``) stays the system of record, each per-night table
    mirrored into the lake as it is written (:meth:`published`)."""

    name = "spark"

    def __init__(self, conn: duckdb.DuckDBPyConnection, session, lake: Lake, remote: str = "?"):
        super().__init__(conn)
        self.spark = session
        self.lake = lake
        self.remote = remote
        self._views = False
        self._in_lake: set[tuple[str, dt.date]] = set()
        """Partitions this engine committed to the lake itself (the contract on Spark)."""

    def describe(self) -> dict[str, str]:
        return {"engine": self.name, "spark_remote": self.remote, "lake": str(self.lake.root)}

    # ------------------------------------------------------------------ inputs
    def register_views(self) -> None:
        """Every lake table as a temporary view of its name (the small reference tables
        first re-committed from the warehouse); a per-night table with nothing committed
        yet is an empty view of the warehouse's columns (a history before the first scored
        night has no scores, and a query over them counts none)."""
        self.lake.commit_reference(self.conn)
        for name in (*REFERENCE, *PARTITIONED):
            if name not in REFERENCE and not self.lake.partitions(name):
                columns = ", ".join(
                    f"CAST(NULL AS {_SPARK_TYPES[t]}) AS `{c}`" for c, t in warehouse.COLUMN_TYPES[name].items()
                )
                self.spark.sql(f"SELECT {columns} WHERE false").createOrReplaceTempView(name)
                continue
            self.spark.read.parquet(str(self.lake.table(name))).createOrReplaceTempView(name)
        self._views = True

    def statistic(
        self, sql: str, params: Mapping[str, object], frames: Mapping[str, pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """One check statistic aggregated by Spark over the lake (the lake views are
        registered at the first one of this engine)."""
        if not self._views:
            self.register_views()
        for name, frame in (frames or {}).items():
            self.spark.createDataFrame(frame, _schema(frame)).createOrReplaceTempView(name)
        return self._query(sql, params)

    def _query(self, sql: str, params: Mapping[str, object]) -> pd.DataFrame:
        text = to_spark(sql)
        used = {k: v for k, v in spark_args(params).items() if f":{k}" in text}
        return _naive_utc(self.spark.sql(text, args=used).toPandas())

    def rows(self, table: str, day: dt.date, customers: Sequence[str] | None = None) -> pd.DataFrame:
        """The lake's copy of the partition, read on the driver (DuckDB reads the Parquet
        files and casts every column to the warehouse's type, so the frame is the one the
        DuckDB engine gives)."""
        return self.lake.read_partition(self.conn, table, day, customers)

    # ------------------------------------------------------------------ features
    def write_serving(self, night: Night, mapping_version: str, vocabulary: FeatureVocabulary) -> None:
        frame = self.serving_features(night, mapping_version, vocabulary)
        warehouse.replace_partition(
            self.conn,
            night.day,
            {"serving_features": frame.assign(spec_version=SPEC_VERSION, mapping_version=mapping_version)},
        )

    def serving_features(self, night: Night, mapping_version: str, vocabulary: FeatureVocabulary) -> pd.DataFrame:
        self.register_views()
        sql, params = executions.serving_query(night, mapping_version, vocabulary)
        return executions.finish(self._query(f"{sql}\nORDER BY f.customer_id", params))

    def training_features(
        self,
        nights: Sequence[Night],
        mapping_version: str,
        vocabulary: FeatureVocabulary,
        customers: Sequence[str] | None = None,
        chunk_days: int = executions.TRAINING_CHUNK_DAYS,
    ) -> pd.DataFrame:
        self.register_views()
        nights = sorted(nights, key=lambda n: n.day)
        return pd.concat(
            [
                self.training_chunk(nights[i : i + chunk_days], mapping_version, vocabulary, customers)
                for i in range(0, len(nights), chunk_days)
            ],
            ignore_index=True,
        )

    def training_chunk(
        self,
        nights: Sequence[Night],
        mapping_version: str,
        vocabulary: FeatureVocabulary,
        customers: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """One chunk of as-of nights (the lake views registered by the caller)."""
        spine = executions.spine_frame(nights)
        self.spark.createDataFrame(spine.astype(str)).selectExpr(
            *(f"CAST({c} AS TIMESTAMP) AS {c}" for c in BOUND_COLUMNS)
        ).createOrReplaceTempView("_spine")
        if customers is not None:
            self.spark.createDataFrame(
                pd.DataFrame({"customer_id": list(customers)}), "customer_id string"
            ).createOrReplaceTempView("_sample")
        sql, params = executions.training_query(nights, mapping_version, vocabulary, customers is not None)
        return executions.finish(self._query(f"{sql}\nORDER BY f.as_of, f.customer_id", params))

    def insert_training(
        self,
        nights: Sequence[Night],
        mapping_version: str,
        vocabulary: FeatureVocabulary,
        split: str,
        spec_version: str,
    ) -> None:
        """Spark computes each chunk's features; the warehouse appends them with their
        labels (the irregularities it holds), as the DuckDB engine does."""
        self.register_views()
        executions.insert_training_features(
            self.conn,
            nights,
            mapping_version,
            vocabulary,
            split,
            spec_version,
            compute=lambda chunk: self.training_chunk(chunk, mapping_version, vocabulary),
        )

    # ------------------------------------------------------------------ scoring and the contract
    def score(self, encoded: pd.DataFrame, booster, card) -> np.ndarray:
        """Scores of the encoded rows (in their order), predicted on the executors."""
        rows = self.spark.createDataFrame(encoded[["customer_id", *FEATURE_NAMES]])
        model_text, enc = booster.model_to_string(), card.enc.to_json()

        def predict(batches):
            import lightgbm as lgb

            from risk_assets.core.features.encoding import Encoding, model_matrix

            booster, encoding = lgb.Booster(model_str=model_text), Encoding.from_json(enc)
            for batch in batches:
                yield pd.DataFrame(
                    {"customer_id": batch["customer_id"], "score": booster.predict(model_matrix(batch, encoding))}
                )

        scored = rows.mapInPandas(predict, "customer_id string, score double").toPandas()
        return scored.set_index("customer_id")["score"].reindex(encoded["customer_id"]).to_numpy()

    def split_day(
        self,
        source: Source,
        night: Night,
        raw: RawSettings,
        known: set[str] | pd.Index,
        conflicted: set[str],
        cutoff: pd.Timestamp | None,
        stored: StoredIds | None = None,
    ) -> DaySplit:
        """A landing folder's day runs through the contract on the executors, which commit
        the accepted and rejected rows to the lake; other sources (the embedded world has no
        files) are split on the driver and mirrored by :meth:`published`."""
        if not isinstance(source, LandingSource):
            return super().split_day(source, night, raw, known, conflicted, cutoff, stored)
        split, per_file = split_on_spark(
            self,
            source.data_files(night.day),
            source.root,
            night.day,
            night.window,
            max_amount=raw.max_amount,
            max_text=raw.max_text_length,
            conflicted=conflicted,
        )
        self._in_lake |= {(RAW, night.day), (REJECTED, night.day)}
        self._views = False  # the day's folders were swapped: re-read them at the next statistic
        return DaySplit(split, per_file, "spark executors")

    def published(self, table: str, day: dt.date, rows: int) -> None:
        """Mirror the warehouse's new partition into the lake (unless this engine wrote it
        there itself) and verify that the copy holds every row."""
        if (table, day) in self._in_lake:
            return
        if self.lake.commit_partition(self.conn, table, day) != rows:
            raise RuntimeError(f"{table}[{day}]: the lake copy does not hold the {rows} rows written")
        self._views = False  # a new partition: re-read the table's folder at the next statistic


_SPARK_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "DOUBLE": "double",
    "DATE": "date",
    "TIMESTAMP": "timestamp_ntz",
    "BOOLEAN": "boolean",
}
"""The warehouse's column types as Spark's (an empty view of a table not committed yet)."""


def _schema(frame: pd.DataFrame) -> str:
    """A Spark schema for a small frame the statistics join (strings and numbers)."""
    kinds = {"i": "bigint", "u": "bigint", "f": "double", "b": "boolean"}
    return ", ".join(f"`{c}` {kinds.get(frame[c].dtype.kind, 'string')}" for c in frame.columns)


class SparkEngineFactory:
    """Opens a :class:`SparkEngine` on a step's warehouse connection; the Spark Connect
    session is made at the first step that needs one (one per address and process)."""

    name = "spark"

    def __init__(self, remote: str, lake_path: str):
        self.remote, self.lake_path = remote, lake_path

    def lake(self) -> Lake:
        return Lake(Path(self.lake_path))

    def open(self, conn: duckdb.DuckDBPyConnection) -> SparkEngine:
        return SparkEngine(conn, connect(self.remote), self.lake(), self.remote)
