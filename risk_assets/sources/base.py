"""The source interface: what the pipeline asks of wherever raw rows come from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import pandas as pd

from risk_assets.core.contract import SOURCE_FILE, SOURCE_ROW, ContractError

Action = Literal["read", "skipped", "stray"]


@dataclass(frozen=True)
class Entry:
    """One thing found in the landing folder that is not simply read: a skipped marker
    file, a stray folder — or, with ``action="read"``, a data file. Recorded per load in
    the ``raw_load_files`` ledger."""

    path: str
    """Relative to the landing folder."""
    action: Action
    reason: str


class WriteInProgress(ContractError):
    """The day's folder shows an export that has not committed: nothing of it is loaded."""

    def __init__(self, folder: str, marker: str):
        super().__init__(
            folder,
            "(folder)",
            f"holds a write in progress ({marker}); nothing of the day is "
            "loaded until the export commits — re-run the day then",
        )


@dataclass(frozen=True)
class DayListing:
    files: list[Path] = field(default_factory=list)
    """Data files to read, sorted."""
    entries: list[Entry] = field(default_factory=list)
    """Everything found, files read included, each with what was done and why."""
    in_progress: str | None = None
    """Why the day is mid-write (a marker's path), or None."""


class Source(Protocol):
    name: str

    def customers(self) -> pd.DataFrame: ...

    def irregularities(self) -> pd.DataFrame: ...

    def transactions(self, day: dt.date, read_at: pd.Timestamp | None = None) -> pd.DataFrame: ...

    def listing(self, day: dt.date) -> DayListing:
        """What the day's data is made of (files read and skipped); empty for sources
        without files."""
        ...

    def layout_problems(self) -> list[Entry]:
        """Entries of the source that fit no partition (malformed or stray folders)."""
        ...


def tag(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[SOURCE_FILE] = file
    frame[SOURCE_ROW] = range(len(frame))
    return frame
