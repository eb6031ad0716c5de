"""Where raw rows come from: a landing folder of parquet files, or the embedded world
(:mod:`risk_assets.scenario.source`).

Both sources hand back plain frames plus two bookkeeping columns, ``_source_file``
and ``_source_row``, so every rejected row can be traced to its file and line. A file
that cannot be read under the contract raises :class:`ContractError` naming it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow.parquet as pq

from risk_assets.contract import (
    CUSTOMER_COLUMNS,
    IRREGULARITY_COLUMNS,
    SOURCE_FILE,
    SOURCE_ROW,
    TRANSACTION_COLUMNS,
    ContractError,
    require_columns,
)
from risk_assets.queries.features import ServingSkew
from risk_assets.settings import Settings


class Source(Protocol):
    name: str
    serving_skew: ServingSkew | None
    """Fault injection for the serving build (incident 3): only the embedded world's
    scenario sets one; every real source has None."""

    def customers(self) -> pd.DataFrame: ...

    def irregularities(self) -> pd.DataFrame: ...

    def transactions(self, day: dt.date, read_at: pd.Timestamp | None = None) -> pd.DataFrame: ...


def tag(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[SOURCE_FILE] = file
    frame[SOURCE_ROW] = range(len(frame))
    return frame


class LandingSource:
    """Parquet files under ``landing_dir`` following the landing contract (README)."""

    name = "landing"
    serving_skew = None

    def __init__(self, settings: Settings):
        self.root = Path(settings.source.landing_dir).resolve()

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ContractError(str(path), "(path)", f"resolves outside the landing folder {self.root}")
        return resolved

    def _read(self, path: Path, required: tuple[str, ...]) -> pd.DataFrame:
        path = self._inside(path)
        try:
            frame = pq.read_table(path).to_pandas()
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise ContractError(str(path), "(file)", f"cannot be read as parquet: {exc}") from exc
        require_columns(frame, required, str(path))
        return tag(frame, str(path.relative_to(self.root)))

    def customers(self) -> pd.DataFrame:
        return self._read(self.root / "customers.parquet", CUSTOMER_COLUMNS)

    def irregularities(self) -> pd.DataFrame:
        path = self.root / "irregularities.parquet"
        if not path.exists():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in IRREGULARITY_COLUMNS})
        return self._read(path, IRREGULARITY_COLUMNS)

    def day_dir(self, day: dt.date) -> Path:
        return self.root / "transactions" / f"date={day:%Y-%m-%d}"

    def transaction_files(self, day: dt.date) -> list[Path]:
        folder = self.day_dir(day)
        return sorted(self._inside(p) for p in folder.glob("*.parquet")) if folder.is_dir() else []

    def available_days(self) -> list[dt.date]:
        days = []
        for folder in sorted((self.root / "transactions").glob("date=*")):
            try:
                days.append(dt.date.fromisoformat(folder.name.removeprefix("date=")))
            except ValueError:
                continue  # not a partition folder; the sensor lists these as ignored
        return days

    def transactions(self, day: dt.date, read_at: pd.Timestamp | None = None) -> pd.DataFrame:
        frames = [self._read(p, TRANSACTION_COLUMNS) for p in self.transaction_files(day)]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in TRANSACTION_COLUMNS})
        if len({tuple(str(t) for t in f[list(TRANSACTION_COLUMNS)].dtypes) for f in frames}) > 1:
            # Files disagree on types: object keeps every value; the contract coerces
            # each one and rejects (with a reason) what does not fit.
            frames = [f.astype(object) for f in frames]
        return pd.concat(frames, ignore_index=True)


def make_source(settings: Settings) -> Source:
    """The configured source. The embedded world is built by :mod:`risk_assets.scenario`
    (shared per settings version within a process); a landing folder is re-listed every
    time."""
    if settings.source.kind == "embedded":
        from risk_assets.scenario.source import embedded_source

        return embedded_source(settings)
    return LandingSource(settings)
