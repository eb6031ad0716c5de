"""The DuckDB engine: every computation inside the warehouse file (the embedded default).

The feature executions are :mod:`risk_assets.engines.executions`, run on the warehouse
connection; statistics are the check families' aggregate queries, run as they are written;
the landing contract runs on the driver (:func:`risk_assets.core.contract.split_transactions`),
and scoring in this process.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd

from risk_assets.core import model as model_lib
from risk_assets.core.contract import SOURCE_FILE, split_transactions
from risk_assets.core.features.spec import SPEC_VERSION, FeatureVocabulary
from risk_assets.core.model import ModelCard
from risk_assets.core.night import Night
from risk_assets.engines import executions
from risk_assets.engines.base import DaySplit
from risk_assets.settings import RawSettings
from risk_assets.sources import Source
from risk_assets.store import warehouse
from risk_assets.store.warehouse import StoredIds


def used_params(sql: str, params: Mapping[str, object]) -> dict[str, object]:
    """The parameters a query's text names (``$name``): DuckDB refuses unused ones."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.conn = conn

    def describe(self) -> dict[str, str]:
        return {"engine": self.name}

    # ------------------------------------------------------------------ statistics
    def statistic(
        self, sql: str, params: Mapping[str, object], frames: Mapping[str, pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        frames = dict(frames or {})
        for name, frame in frames.items():
            self.conn.register(name, frame)
        try:
            return warehouse.frame(self.conn, sql, used_params(sql, params))
        finally:
            for name in frames:
                self.conn.unregister(name)

    def rows(self, table: str, day: dt.date, customers: Sequence[str] | None = None) -> pd.DataFrame:
        return warehouse.partition_rows(self.conn, table, day, customers)

    # ------------------------------------------------------------------ features
    def write_serving(self, night: Night, mapping_version: str, vocabulary: FeatureVocabulary) -> None:
        executions.write_serving_features(self.conn, night, mapping_version, vocabulary, SPEC_VERSION)

    def serving_features(self, night: Night, mapping_version: str, vocabulary: FeatureVocabulary) -> pd.DataFrame:
        return executions.serving_features(self.conn, night, mapping_version, vocabulary)

    def training_features(
        self,
        nights: Sequence[Night],
        mapping_version: str,
        vocabulary: FeatureVocabulary,
        customers: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        return executions.training_features(self.conn, nights, mapping_version, vocabulary, customers=customers)

    def insert_training(
        self,
        nights: Sequence[Night],
        mapping_version: str,
        vocabulary: FeatureVocabulary,
        split: str,
        spec_version: str,
    ) -> None:
        executions.insert_training_features(self.conn, nights, mapping_version, vocabulary, split, spec_version)

    # ------------------------------------------------------------------ scoring and the contract
    def score(self, encoded: pd.DataFrame, booster: lgb.Booster, card: ModelCard) -> np.ndarray:
        return model_lib.predict(booster, encoded, card)

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
        frame = source.transactions(night.day, read_at=cutoff)
        split = split_transactions(
            frame,
            night.window,
            max_amount=raw.max_amount,
            max_text=raw.max_text_length,
            known_customers=known,
            stored_elsewhere=warehouse.stored_elsewhere(self.conn, night.day, frame["transaction_id"], stored),
            conflicted_customers=conflicted,
        )
        per_file = frame[SOURCE_FILE].value_counts() if len(frame) else pd.Series(dtype="int64")
        return DaySplit(split, per_file, "driver")

    def published(self, table: str, day: dt.date, rows: int) -> None:
        """Nothing to mirror: this engine reads the warehouse itself."""


class DuckDBEngineFactory:
    name = "duckdb"

    def open(self, conn: duckdb.DuckDBPyConnection) -> DuckDBEngine:
        return DuckDBEngine(conn)
