"""Where raw rows come from: the embedded world or a landing folder of parquet files.

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
from risk_assets.settings import Settings
from risk_assets.world import World


class Source(Protocol):
    name: str

    def customers(self) -> pd.DataFrame: ...

    def irregularities(self) -> pd.DataFrame: ...

    def transactions(self, day: dt.date, read_at: pd.Timestamp | None = None) -> pd.DataFrame: ...


def _tag(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[SOURCE_FILE] = file
    frame[SOURCE_ROW] = range(len(frame))
    return frame


class EmbeddedSource:
    """The synthetic world as if it were a source system."""

    name = "embedded"

    def __init__(self, settings: Settings):
        self.world = World(settings.world, settings.calendar.timezone)

    def customers(self) -> pd.DataFrame:
        return _tag(self.world.customers(), "embedded:customers")

    def irregularities(self) -> pd.DataFrame:
        return _tag(self.world.irregularities(), "embedded:irregularities")

    def transactions(self, day: dt.date, read_at: pd.Timestamp | None = None) -> pd.DataFrame:
        """``read_at`` (naive UTC): only rows that had arrived by then (late data)."""
        frame = self.world.transactions(day)
        if read_at is not None:
            frame = frame[frame["arrival_ts"] <= read_at]
        return _tag(frame.drop(columns="arrival_ts").reset_index(drop=True), f"embedded:{day}")


class LandingSource:
    """Parquet files under ``landing_dir`` following the landing contract (README)."""

    name = "landing"

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
        return _tag(frame, str(path.relative_to(self.root)))

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


_EMBEDDED: dict[str, EmbeddedSource] = {}


def make_source(settings: Settings) -> Source:
    """The configured source. Embedded worlds are shared per settings version within a
    process (the raw asset and the late-arrival check read the same world; generating
    300k customers again costs ~0.3 s); a landing folder is re-listed every time."""
    if settings.source.kind != "embedded":
        return LandingSource(settings)
    key = settings.version()
    if key not in _EMBEDDED:
        _EMBEDDED.clear()  # one world at a time
        _EMBEDDED[key] = EmbeddedSource(settings)
    return _EMBEDDED[key]


def export_landing(settings: Settings, root: Path, days: list[dt.date]) -> None:
    """Write the embedded world in the landing layout (an example of the contract)."""
    world = World(settings.world, settings.calendar.timezone)
    root.mkdir(parents=True, exist_ok=True)
    world.customers().to_parquet(root / "customers.parquet", index=False)
    world.irregularities().to_parquet(root / "irregularities.parquet", index=False)
    for day in days:
        folder = root / "transactions" / f"date={day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = world.transactions(day).drop(columns="arrival_ts")
        frame.to_parquet(folder / "part-0.parquet", index=False)
