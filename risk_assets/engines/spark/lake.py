"""The Parquet lake the Spark engine reads: one folder per table under ``lake_path``.

* ``raw_transactions/partition=YYYY-MM-DD/part-0.parquet`` — each accepted raw partition,
  committed by the raw asset right after the warehouse commit (the landing contract has
  already judged every row: the lake holds exactly the accepted rows, never more);
* ``encoded_features/`` and ``imputation_log/`` — each night's encoded rows and ledger,
  committed by the encoding step after the warehouse commit: the checks' statistics
  (the statistic sections of ``risk_assets/checks/``) are aggregated from them on Spark;
* ``customers/``, ``customer_versions/``, ``customer_changes/``, ``category_mapping/``,
  ``channel_vocabulary/`` — the small reference
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
import pandas as pd

from risk_assets.store import warehouse

RAW = "raw_transactions"
REJECTED = "rejected_transactions"
REFERENCE = ("customers", "customer_versions", "customer_changes", "category_mapping", "channel_vocabulary")
PARTITIONED = warehouse.PER_NIGHT
"""Every per-night table: committed by the step that writes it (after the warehouse), and
read by Spark — the features, the scoring and every check statistic."""


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
            written.append(
                conn.execute(
                    f"COPY (SELECT {columns} FROM {warehouse.table(name)} WHERE partition = $day "
                    f"ORDER BY {order}) TO {_path(folder / 'part-0.parquet')} (FORMAT parquet)",
                    {"day": day},
                ).fetchall()[0][0]
            )

        self.commit(self.partition(name, day), write)
        return int(written[0])

    def read_partition(self, conn: duckdb.DuckDBPyConnection, name: str, day: dt.date, customers=None) -> pd.DataFrame:
        """A committed partition as the warehouse would return it (its columns, in order,
        cast to the warehouse's types; ``customers`` only, when given), read on the driver
        by DuckDB from the lake's files."""
        if name not in PARTITIONED:
            raise ValueError(f"{name!r} is not a table of the lake")
        files = sorted(str(p) for p in self.partition(name, day).glob("*.parquet"))
        types = warehouse.COLUMN_TYPES[name]
        cast = ", ".join(
            "CAST($day AS DATE) AS partition" if c == "partition" else f'CAST("{c}" AS {t}) AS "{c}"'
            for c, t in types.items()
        )
        if not files:  # nothing committed: the empty partition, typed
            empty = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in types.items())
            return warehouse.frame(conn, f"SELECT {empty} WHERE false")
        order = warehouse.partition_order(name)
        if customers is None:
            return warehouse.frame(
                conn, f"SELECT {cast} FROM read_parquet($files){order}", {"day": day, "files": files}
            )
        conn.register("_wanted_ids", pd.DataFrame({"customer_id": list(customers)}, dtype=object))
        try:
            return warehouse.frame(
                conn,
                f"SELECT {cast} FROM read_parquet($files) "
                f"WHERE customer_id IN (SELECT customer_id FROM _wanted_ids){order}",
                {"day": day, "files": files},
            )
        finally:
            conn.unregister("_wanted_ids")

    def commit_reference(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Re-commit the small reference tables from the warehouse."""
        for name in REFERENCE:

            def write(folder: Path, name: str = name) -> None:
                conn.execute(
                    f"COPY (SELECT * FROM {warehouse.table(name)}) TO {_path(folder / 'part-0.parquet')} "
                    "(FORMAT parquet)"
                )

            self.commit(self.table(name), write)

    def sync(self, conn: duckdb.DuckDBPyConnection) -> list[tuple[str, dt.date]]:
        """Commit every partition of a per-night table that the warehouse holds and the lake
        does not (a warehouse that switches to the Spark engine keeps its history); returns
        the (table, day) pairs committed."""
        committed = []
        for name in PARTITIONED:
            have = set(self.partitions(name))
            stored = [
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT partition FROM {warehouse.table(name)} ORDER BY partition"
                ).fetchall()
            ]
            for day in (d for d in stored if d not in have):
                self.commit_partition(conn, name, day)
                committed.append((name, day))
        return committed
