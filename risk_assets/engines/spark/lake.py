"""The Parquet lake the Spark engine reads: one folder per table under ``lake_path``.

* ``raw_transactions/partition=YYYY-MM-DD/part-0.parquet`` — each accepted raw partition,
  committed by the raw asset right after the warehouse commit (the landing contract has
  already judged every row: the lake holds exactly the accepted rows, never more);
* ``encoded_features/`` and ``imputation_log/`` — each night's encoded rows and ledger,
  committed by the encoding step after the warehouse commit: the checks' statistics
  (:mod:`risk_assets.checks.statistics`) are aggregated from them on Spark;
* ``customers/``, ``category_mapping/``, ``channel_vocabulary/`` — the small reference
  tables, re-committed before each Spark computation.

Commit protocol (a folder, local or mounted): the new files are written into
``_staging/<id>/`` at the lake's root (outside every table), then the old folder is renamed
into ``_trash/<id>/``, the staging folder
renamed into its place, and the trash deleted. A crash leaves the old partition or the new
one in place (and leftovers only under ``_staging``/``_trash``); a reader listing the table
in the instant between the two renames sees neither, which the pipeline never does (Dagster
runs the reading step after the committing one). Object stores have no atomic rename:
there, use a table format whose commit is one atomic write of its log (README: Delta Lake
or Apache Iceberg catalogs plug in as the lake).
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb

from risk_assets.store import warehouse

RAW = "raw_transactions"
REFERENCE = ("customers", "category_mapping", "channel_vocabulary")
NIGHTLY = ("encoded_features", "imputation_log")
"""Per-night tables the checks' statistics read on Spark (committed by the encoding step)."""
REJECTED = "rejected_transactions"
PARTITIONED = (RAW, REJECTED, *NIGHTLY)


def _path(path: Path) -> str:
    """A file name as a SQL string literal (COPY takes no parameter for it)."""
    return "'" + str(path).replace("'", "''") + "'"


class Lake:
    def __init__(self, root: Path):
        self.root = Path(root)

    def table(self, name: str) -> Path:
        warehouse.table(name)  # whitelisted names only
        return self.root / name

    def partition(self, name: str, day: dt.date) -> Path:
        return self.table(name) / f"partition={day.isoformat()}"

    def partitions(self, name: str) -> list[dt.date]:
        folder = self.table(name)
        if not folder.is_dir():
            return []
        return sorted(dt.date.fromisoformat(p.name.split("=", 1)[1]) for p in folder.glob("partition=*"))

    def commit(self, target: Path, write: Callable[[Path], None]) -> None:
        """Replace folder ``target`` by what ``write`` puts into a fresh staging folder."""
        staging = self.root / "_staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            write(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        trash = None
        if target.exists():
            trash = self.root / "_trash" / uuid.uuid4().hex
            trash.parent.mkdir(parents=True, exist_ok=True)
            target.rename(trash)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def commit_partition(self, conn: duckdb.DuckDBPyConnection, name: str, day: dt.date) -> int:
        """Copy the warehouse's rows of one partition of ``name`` into the lake; returns
        the rows the copy wrote."""
        if name not in PARTITIONED:
            raise ValueError(f"{name!r} is not a table of the lake")
        written = []
        columns = ", ".join(f'"{c}"' for c in warehouse.COLUMNS[name] if c != "partition")
        order = {RAW: "customer_id, event_ts", REJECTED: "source_file, source_row"}.get(name, "customer_id")

        def write(folder: Path) -> None:
            written.append(conn.execute(f"COPY (SELECT {columns} FROM {warehouse.table(name)} WHERE partition = $day "
                         f"ORDER BY {order}) TO {_path(folder / 'part-0.parquet')} (FORMAT parquet)",
                         {"day": day}).fetchall()[0][0])

        self.commit(self.partition(name, day), write)
        return int(written[0])

    def commit_raw_partition(self, conn: duckdb.DuckDBPyConnection, day: dt.date) -> int:
        """Copy the warehouse's accepted rows of ``day`` into the lake."""
        return self.commit_partition(conn, RAW, day)

    def commit_reference(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Re-commit the small reference tables from the warehouse."""
        for name in REFERENCE:
            def write(folder: Path, name: str = name) -> None:
                conn.execute(f"COPY (SELECT * FROM {warehouse.table(name)}) TO {_path(folder / 'part-0.parquet')} "
                             "(FORMAT parquet)")

            self.commit(self.table(name), write)

    def sync_raw(self, conn: duckdb.DuckDBPyConnection) -> list[dt.date]:
        """Commit every loaded raw partition the lake does not hold yet (a warehouse that
        switches to the Spark engine keeps its history); returns the days committed."""
        have = set(self.partitions(RAW))
        loaded = [r[0] for r in conn.execute(
            f"SELECT DISTINCT partition FROM {warehouse.table('raw_loads')} ORDER BY partition").fetchall()]
        missing = [d for d in loaded if d not in have]
        for day in missing:
            self.commit_raw_partition(conn, day)
        return missing
