"""The Spark engine: the two feature executions and the scoring, on Spark Connect.

The feature SQL is the DuckDB engine's own text (:func:`queries.features.serving_query`,
:func:`queries.features.training_query`) rendered by :mod:`risk_assets.engines.spark.dialect`; the
tables it names are the lake's (:mod:`risk_assets.engines.spark.lake`). Results come back as the
same pandas frames (one row per customer, or per customer and as-of night) that the DuckDB
engine returns, and go through the same ``finish``; what leaves Spark is the per-customer
result, never the transaction history. Scoring applies the LightGBM text model in
``mapInPandas`` batches on the executors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from risk_assets.core.features.encoding import Encoding
from risk_assets.core.features.spec import BOUND_COLUMNS, FEATURE_NAMES, FeatureVocabulary
from risk_assets.core.night import Night
from risk_assets.engines import executions as feature_sql
from risk_assets.engines.spark.dialect import spark_args, to_spark
from risk_assets.engines.spark.lake import NIGHTLY, RAW, REFERENCE, Lake

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


class SparkEngine:
    def __init__(self, session, lake: Lake):
        self.spark = session
        self.lake = lake
        self._statistics_views = False

    # ------------------------------------------------------------------ inputs
    def register_lake_views(self, conn: duckdb.DuckDBPyConnection, nightly: Sequence[str] = ()) -> None:
        """The tables the feature SQL names (and ``nightly`` per-night tables), read from
        the lake (reference tables first re-committed from the warehouse)."""
        self.lake.commit_reference(conn)
        for name in (RAW, *REFERENCE, *nightly):
            if name not in REFERENCE and not self.lake.partitions(name):
                continue  # nothing committed yet: a query over it fails naming the table
            self.spark.read.parquet(str(self.lake.table(name))).createOrReplaceTempView(name)

    def statistics(self, conn: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pd.DataFrame:
        """One check statistic (:mod:`risk_assets.checks.statistics`) aggregated by Spark
        over the lake; the lake views are registered at the first one (per engine)."""
        if not self._statistics_views:
            self.register_lake_views(conn, NIGHTLY)
            self._statistics_views = True
        return self._query(sql, params)

    def _query(self, sql: str, params: dict) -> pd.DataFrame:
        text = to_spark(sql)
        used = {k: v for k, v in spark_args(params).items() if f":{k}" in text}
        return _naive_utc(self.spark.sql(text, args=used).toPandas())

    # ------------------------------------------------------------------ features
    def serving_features(self, conn: duckdb.DuckDBPyConnection, night: Night, mapping_version: str,
                         vocabulary: FeatureVocabulary, skew: feature_sql.ServingSkew | None = None) -> pd.DataFrame:
        """What :func:`queries.features.serving_features` returns, computed by Spark."""
        self.register_lake_views(conn)
        sql, params = feature_sql.serving_query(night, mapping_version, vocabulary, skew)
        return feature_sql.finish(self._query(f"{sql}\nORDER BY f.customer_id", params))

    def training_features(self, conn: duckdb.DuckDBPyConnection, nights: Sequence[Night], mapping_version: str,
                          vocabulary: FeatureVocabulary, customers: Sequence[str] | None = None,
                          chunk_days: int = feature_sql.TRAINING_CHUNK_DAYS) -> pd.DataFrame:
        """What :func:`queries.features.training_features` returns, computed by Spark."""
        self.register_lake_views(conn)
        nights = sorted(nights, key=lambda n: n.day)
        return pd.concat([self.training_chunk(nights[i:i + chunk_days], mapping_version, vocabulary, customers)
                          for i in range(0, len(nights), chunk_days)], ignore_index=True)

    def training_chunk(self, nights: Sequence[Night], mapping_version: str, vocabulary: FeatureVocabulary,
                       customers: Sequence[str] | None = None) -> pd.DataFrame:
        """One chunk of as-of nights (the lake views registered by the caller)."""
        spine = feature_sql.spine_frame(nights)
        self.spark.createDataFrame(spine.astype(str)).selectExpr(
            *(f"CAST({c} AS TIMESTAMP) AS {c}" for c in BOUND_COLUMNS)).createOrReplaceTempView("_spine")
        if customers is not None:
            self.spark.createDataFrame(pd.DataFrame({"customer_id": list(customers)})).createOrReplaceTempView(
                "_sample")
        sql, params = feature_sql.training_query(nights, mapping_version, vocabulary, customers is not None)
        return feature_sql.finish(self._query(f"{sql}\nORDER BY f.as_of, f.customer_id", params))

    # ------------------------------------------------------------------ scoring
    def score(self, encoded: pd.DataFrame, model_text: str, encoding: Encoding) -> np.ndarray:
        """Scores of the encoded rows (in their order), predicted on the executors."""
        rows = self.spark.createDataFrame(encoded[["customer_id", *FEATURE_NAMES]])
        enc = encoding.to_json()

        def predict(batches):
            import lightgbm as lgb

            from risk_assets.core.features.encoding import Encoding, model_matrix

            booster, encoding = lgb.Booster(model_str=model_text), Encoding.from_json(enc)
            for batch in batches:
                yield pd.DataFrame({"customer_id": batch["customer_id"],
                                    "score": booster.predict(model_matrix(batch, encoding))})

        scored = rows.mapInPandas(predict, "customer_id string, score double").toPandas()
        return scored.set_index("customer_id")["score"].reindex(encoded["customer_id"]).to_numpy()
