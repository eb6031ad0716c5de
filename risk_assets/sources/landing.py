"""The landing folder: parquet files following the landing contract (README)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from risk_assets.core.contract import (
    CUSTOMER_COLUMNS,
    IRREGULARITY_COLUMNS,
    TRANSACTION_COLUMNS,
    ContractError,
    require_columns,
)
from risk_assets.settings import Settings
from risk_assets.sources.base import DayListing, Entry, WriteInProgress, tag

PARTITION_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
"""The strict partition folder name."""
MARKER_FILES = ("_SUCCESS", "_metadata", "_common_metadata", ".DS_Store")
"""Files writers leave next to the data (commit markers, Parquet summary files, Finder)."""
IN_PROGRESS_FOLDERS = ("_temporary", ".spark-staging")
"""Folders an output committer writes into before it commits (Hadoop/Spark)."""


def _skip_reason(name: str) -> str | None:
    """Why a file is not data (None: it is a data file candidate). Names starting with '.'
    or '_' are hidden, the convention Spark, Hive and pyarrow datasets follow."""
    if name in MARKER_FILES:
        return "marker file"
    if name.endswith(".crc"):
        return "checksum file"
    if name.startswith("._"):
        return "macOS resource fork"
    if name.startswith(("_committed_", "_started_")):
        return "commit protocol marker"
    if name.startswith((".", "_")):
        return "hidden file (name starts with '.' or '_')"
    return None


def _looks_like(name: str) -> str:
    """A hint for a malformed partition folder name."""
    value = name.removeprefix("date=")
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%Y-%m-%dT%H:%M:%S"):
        try:
            return f"not in the strict form date=YYYY-MM-DD (looks like {dt.datetime.strptime(value, fmt).date()})"
        except ValueError:
            continue
    if name.startswith("date="):
        return "not a valid date (expected date=YYYY-MM-DD)"
    return "not a partition folder (expected date=YYYY-MM-DD)"


class LandingSource:
    """Parquet files under ``landing_dir`` following the landing contract (README)."""

    name = "landing"

    def __init__(self, settings: Settings):
        self.root = Path(settings.source.landing_dir).resolve()

    @classmethod
    def at(cls, root: Path) -> LandingSource:
        """The source of the landing folder ``root`` (where no settings are at hand: an executor)."""
        source = cls.__new__(cls)
        source.root = Path(root).resolve()
        return source

    def read_file(self, path: Path) -> pd.DataFrame:
        """One data file of a day's transactions, tagged with its file name and row numbers."""
        return self._read(path, TRANSACTION_COLUMNS)

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ContractError(str(path), "(path)", f"resolves outside the landing folder {self.root}")
        return resolved

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def _read(self, path: Path, required: tuple[str, ...]) -> pd.DataFrame:
        path = self._inside(path)
        name = self._rel(path)
        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise ContractError(name, "(file)", f"cannot be read as parquet: {exc}") from exc
        frame = _to_pandas(table, name)
        require_columns(frame, required, name)
        return tag(frame, name)

    def customers(self) -> pd.DataFrame:
        return self._read(self.root / "customers.parquet", CUSTOMER_COLUMNS)

    def irregularities(self) -> pd.DataFrame:
        path = self.root / "irregularities.parquet"
        if not path.exists():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in IRREGULARITY_COLUMNS})
        return self._read(path, IRREGULARITY_COLUMNS)

    def day_dir(self, day: dt.date) -> Path:
        return self.root / "transactions" / f"date={day:%Y-%m-%d}"

    def listing(self, day: dt.date) -> DayListing:
        """The day folder, walked recursively (nested folders such as ``hour=00/`` are
        read): data files, skipped files with the reason, and whether a write is in
        progress (a committer's temporary folder, or ``_started_<id>`` without its
        ``_committed_<id>``; also ``transactions/_temporary`` for the whole table)."""
        folder = self.day_dir(day)
        files, entries, in_progress = [], [], None
        for marker in IN_PROGRESS_FOLDERS:
            top = self.root / "transactions" / marker
            if top.exists():
                in_progress = self._rel(top)
        if not folder.is_dir():
            return DayListing([], [], in_progress)
        seen: set[Path] = set()
        pending = [folder]
        while pending:
            current = self._inside(pending.pop())
            if current in seen:
                continue
            seen.add(current)
            children = sorted(current.iterdir(), key=lambda p: p.name)
            names = {c.name for c in children}
            for child in children:
                rel = self._rel(child)
                if child.is_dir():
                    if child.name.startswith(IN_PROGRESS_FOLDERS):
                        in_progress = in_progress or rel + "/"
                        entries.append(Entry(rel + "/", "skipped", "write in progress (committer's temporary folder)"))
                    elif child.name.startswith((".", "_")):
                        entries.append(Entry(rel + "/", "skipped", "hidden folder (name starts with '.' or '_')"))
                    else:
                        pending.append(child)
                    continue
                why = _skip_reason(child.name)
                if child.name.startswith("_started_") and f"_committed_{child.name[9:]}" not in names:
                    in_progress = in_progress or rel
                    why = "write in progress (started, not committed)"
                if why:
                    entries.append(Entry(rel, "skipped", why))
                elif child.suffix == ".parquet":
                    files.append(self._inside(child))
                    entries.append(Entry(rel, "read", "data file"))
                else:
                    raise ContractError(
                        rel,
                        "(file)",
                        "is neither a .parquet data file nor a known marker; "
                        "move it out of the day folder or prefix its name with '_' to mark it "
                        "as not data",
                    )
        files.sort()
        return DayListing(files, sorted(entries, key=lambda e: e.path), in_progress)

    def transaction_files(self, day: dt.date) -> list[Path]:
        return self.listing(day).files

    def partition_folders(self) -> tuple[list[dt.date], list[Entry]]:
        """Days with a strictly named folder, and every other entry of ``transactions/``:
        malformed names and stray folders or files (``stray``), hidden markers
        (``skipped``)."""
        days, others = [], []
        top = self.root / "transactions"
        if not top.is_dir():
            return [], []
        for entry in sorted(top.iterdir(), key=lambda p: p.name):
            rel = self._rel(entry) + ("/" if entry.is_dir() else "")
            match = PARTITION_FOLDER.fullmatch(entry.name)
            if match and entry.is_dir():
                try:
                    days.append(dt.date.fromisoformat(match.group(1)))
                    continue
                except ValueError:
                    others.append(Entry(rel, "stray", "not a valid date (expected date=YYYY-MM-DD)"))
                    continue
            if entry.name.startswith(IN_PROGRESS_FOLDERS):
                others.append(Entry(rel, "skipped", "write in progress for the whole table; every day waits"))
            elif entry.name.startswith((".", "_")):
                others.append(Entry(rel, "skipped", _skip_reason(entry.name) or "hidden folder"))
            else:
                others.append(Entry(rel, "stray", _looks_like(entry.name)))
        return days, others

    def available_days(self) -> list[dt.date]:
        return self.partition_folders()[0]

    def layout_problems(self) -> list[Entry]:
        return [e for e in self.partition_folders()[1] if e.action == "stray"]

    def data_files(self, day: dt.date) -> list[Path]:
        """The day's data files in reading order (a write still in progress refuses the day)."""
        listing = self.listing(day)
        if listing.in_progress:
            raise WriteInProgress(self._rel(self.day_dir(day)), listing.in_progress)
        return listing.files

    def transactions(self, day: dt.date, read_at: pd.Timestamp | None = None) -> pd.DataFrame:
        frames = [self.read_file(p) for p in self.data_files(day)]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in TRANSACTION_COLUMNS})
        if len({tuple(str(t) for t in f[list(TRANSACTION_COLUMNS)].dtypes) for f in frames}) > 1:
            # Files disagree on types: object keeps every value; the contract coerces
            # each one and rejects (with a reason) what does not fit.
            frames = [f.astype(object) for f in frames]
        return pd.concat(frames, ignore_index=True)


def _to_pandas(table: pa.Table, file: str) -> pd.DataFrame:
    """The table as pandas; a column pandas cannot take is named in the error."""
    try:
        return table.to_pandas()
    except Exception:
        columns = {}
        for name, column in zip(table.column_names, table.columns, strict=True):
            try:
                columns[name] = column.to_pandas()
            except Exception as exc:
                raise ContractError(file, name, f"cannot be converted ({column.type}): {exc}") from exc
        return pd.DataFrame(columns)
