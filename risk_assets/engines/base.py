"""The engine protocol (see :mod:`risk_assets.engines`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd

from risk_assets.core.contract import Split
from risk_assets.core.features.spec import FeatureVocabulary
from risk_assets.core.model import ModelCard
from risk_assets.core.night import Night
from risk_assets.settings import RawSettings
from risk_assets.sources import Source
from risk_assets.store.warehouse import StoredIds


@dataclass
class DaySplit:
    """One day through the landing contract: the split, the rows read per file, and where
    the contract ran (``driver`` or ``spark executors``)."""

    split: Split
    per_file: pd.Series
    ran_on: str


class Engine(Protocol):
    """The computations of one step (see the module text). ``conn`` is the warehouse."""

    name: str
    conn: duckdb.DuckDBPyConnection

    def describe(self) -> dict[str, str]:
        """What the step's metadata records about where it computed."""
        ...

    # ------------------------------------------------------------------ statistics
    def statistic(
        self, sql: str, params: Mapping[str, object], frames: Mapping[str, pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """One aggregate query (DuckDB dialect, ``$name`` parameters) over the per-night
        tables; ``frames`` are small relations the query joins (registered by name)."""
        ...

    def rows(self, table: str, day: dt.date, customers: Sequence[str] | None = None) -> pd.DataFrame:
        """One partition's rows on the driver (only ``customers``' rows when given): for
        what deliberately runs in pandas (the Pandera schema checks, the parity sample)."""
        ...

    # ------------------------------------------------------------------ features
    def write_serving(self, night: Night, mapping_version: str, vocabulary: FeatureVocabulary) -> None:
        """Replace the night's ``serving_features`` partition with the serving execution."""
        ...

    def serving_features(self, night: Night, mapping_version: str, vocabulary: FeatureVocabulary) -> pd.DataFrame:
        """The serving execution's rows, ordered by customer (the deployment gate)."""
        ...

    def training_features(
        self,
        nights: Sequence[Night],
        mapping_version: str,
        vocabulary: FeatureVocabulary,
        customers: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The training execution's rows (``customers`` only, when given: the parity sample)."""
        ...

    def insert_training(
        self,
        nights: Sequence[Night],
        mapping_version: str,
        vocabulary: FeatureVocabulary,
        split: str,
        spec_version: str,
    ) -> None:
        """Append the training rows of ``nights`` with labels to ``training_features``."""
        ...

    # ------------------------------------------------------------------ scoring and the contract
    def score(self, encoded: pd.DataFrame, booster: lgb.Booster, card: ModelCard) -> np.ndarray:
        """Scores of the encoded rows, in their order."""
        ...

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
        """One day's source rows through the landing contract."""
        ...

    def published(self, table: str, day: dt.date, rows: int) -> None:
        """Called after the warehouse committed ``rows`` rows of ``table[day]``: an engine
        that reads elsewhere mirrors them (and verifies the count)."""
        ...


class EngineFactory(Protocol):
    """Opens an :class:`Engine` on a step's warehouse connection (a Dagster resource)."""

    name: str

    def open(self, conn: duckdb.DuckDBPyConnection) -> Engine: ...
