"""The DuckDB warehouse: table definitions, atomic partition writes, and every query
the pipeline runs against its tables (the feature executions are in
:mod:`risk_assets.engines.executions`, the model registry and category mapping in
:mod:`risk_assets.store.registry`).

Functions here take a connection and plain values (dates, ids, frames) and return
frames, sets or numbers — no Dagster types — so a second engine can implement the same
functions. Only identifiers from :data:`TABLES` (and feature names from the spec) are
ever interpolated into SQL; every value travels as a parameter or a registered frame. A partition is replaced with
``DELETE`` + ``INSERT`` inside *one* transaction for all the tables an asset writes,
so a crash leaves the previous partition or the new one, never half of either
(``DuckDBPandasIOManager`` does not give that guarantee).
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from risk_assets.core.contract import CONFLICT
from risk_assets.core.features.spec import FEATURES

_FEATURE_DDL = ", ".join(f"{f.name} {'DOUBLE' if f.kind == 'numeric' else 'VARCHAR'}" for f in FEATURES)

TABLES: dict[str, str] = {
    "instance_owner": """
        instance_id VARCHAR NOT NULL, instance VARCHAR NOT NULL, claimed_at TIMESTAMP NOT NULL,
        how VARCHAR NOT NULL""",
    "customers": """
        customer_id VARCHAR NOT NULL, segment VARCHAR NOT NULL, region VARCHAR NOT NULL,
        opened_at TIMESTAMP NOT NULL, source_file VARCHAR""",
    "customer_versions": """
        customer_id VARCHAR NOT NULL, segment VARCHAR NOT NULL, region VARCHAR NOT NULL,
        opened_at TIMESTAMP NOT NULL, valid_from TIMESTAMP NOT NULL, valid_to TIMESTAMP,
        version VARCHAR NOT NULL""",
    "customer_deliveries": """
        version VARCHAR NOT NULL, valid_from TIMESTAMP NOT NULL, read_at TIMESTAMP NOT NULL,
        source VARCHAR NOT NULL, customers BIGINT NOT NULL, new_customers BIGINT NOT NULL,
        changed_customers BIGINT NOT NULL, dropped_customers BIGINT NOT NULL,
        unchanged_customers BIGINT NOT NULL, changed_share DOUBLE NOT NULL, previous_version VARCHAR,
        superseded BOOLEAN NOT NULL, received VARCHAR""",
    "customer_changes": """
        version VARCHAR NOT NULL, valid_from TIMESTAMP NOT NULL, customer_id VARCHAR NOT NULL,
        change VARCHAR NOT NULL, attribute VARCHAR, old_value VARCHAR, new_value VARCHAR""",
    "rejected_customers": """
        source_file VARCHAR, source_row BIGINT, record_key VARCHAR, reasons VARCHAR,
        raw_record VARCHAR""",
    "irregularities": """
        customer_id VARCHAR NOT NULL, event_ts TIMESTAMP NOT NULL, source_file VARCHAR""",
    "rejected_irregularities": """
        source_file VARCHAR, source_row BIGINT, record_key VARCHAR, reasons VARCHAR,
        raw_record VARCHAR""",
    "raw_transactions": """
        partition DATE NOT NULL, transaction_id VARCHAR NOT NULL, customer_id VARCHAR NOT NULL,
        event_ts TIMESTAMP NOT NULL, amount DOUBLE NOT NULL, amount_cents BIGINT NOT NULL,
        category VARCHAR NOT NULL, channel VARCHAR, source_file VARCHAR""",
    "transaction_ids": """
        partition DATE NOT NULL, id_hash UBIGINT NOT NULL""",
    "rejected_transactions": """
        partition DATE NOT NULL, source_file VARCHAR, source_row BIGINT, record_key VARCHAR,
        reasons VARCHAR NOT NULL, raw_record VARCHAR""",
    "raw_loads": """
        partition DATE NOT NULL, received BIGINT NOT NULL, accepted BIGINT NOT NULL,
        rejected BIGINT NOT NULL, source VARCHAR NOT NULL, read_at VARCHAR,
        loaded_at TIMESTAMP NOT NULL""",
    "raw_load_files": """
        partition DATE NOT NULL, path VARCHAR NOT NULL, action VARCHAR NOT NULL, rows BIGINT,
        reason VARCHAR NOT NULL""",
    "raw_verdicts": """
        partition DATE NOT NULL, check_name VARCHAR NOT NULL, passed BOOLEAN NOT NULL, severity VARCHAR NOT NULL,
        summary VARCHAR NOT NULL, loaded_at TIMESTAMP NOT NULL, settings_version VARCHAR NOT NULL,
        run_id VARCHAR, result VARCHAR""",
    "partition_statistics": """
        statistic VARCHAR NOT NULL, engine VARCHAR NOT NULL, params VARCHAR NOT NULL, partition DATE NOT NULL,
        inputs VARCHAR NOT NULL, computed_at TIMESTAMP NOT NULL, frame BLOB NOT NULL""",
    "night_verdicts": """
        partition DATE NOT NULL, check_name VARCHAR NOT NULL, asset VARCHAR NOT NULL, passed BOOLEAN NOT NULL,
        severity VARCHAR NOT NULL, summary VARCHAR NOT NULL, evaluated_at TIMESTAMP NOT NULL,
        settings_version VARCHAR NOT NULL""",
    "category_mapping": """
        version VARCHAR NOT NULL, raw_category VARCHAR NOT NULL, canonical VARCHAR NOT NULL,
        code INTEGER NOT NULL, origin VARCHAR NOT NULL, training_rows BIGINT,
        training_amount_cents BIGINT, training_log_amount_mean DOUBLE, training_log_amount_std DOUBLE""",
    "category_mapping_history": """
        version VARCHAR NOT NULL, raw_category VARCHAR NOT NULL, canonical VARCHAR NOT NULL,
        code INTEGER NOT NULL, origin VARCHAR NOT NULL, training_rows BIGINT,
        training_amount_cents BIGINT, training_log_amount_mean DOUBLE, training_log_amount_std DOUBLE,
        created_at TIMESTAMP NOT NULL""",
    "channel_vocabulary": """
        version VARCHAR NOT NULL, channel VARCHAR NOT NULL, training_rows BIGINT NOT NULL""",
    "model_registry": """
        version VARCHAR NOT NULL, path VARCHAR NOT NULL, trained_at TIMESTAMP NOT NULL,
        spec_version VARCHAR NOT NULL, mapping_version VARCHAR NOT NULL, roc_auc DOUBLE,
        pr_auc DOUBLE, precision_at_budget DOUBLE, deployed_at TIMESTAMP""",
    "serving_features": f"""
        partition DATE NOT NULL, customer_id VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL,
        {_FEATURE_DDL}, spec_version VARCHAR NOT NULL, mapping_version VARCHAR NOT NULL""",
    "encoded_features": f"""
        partition DATE NOT NULL, customer_id VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL,
        {_FEATURE_DDL}, spec_version VARCHAR NOT NULL, mapping_version VARCHAR NOT NULL,
        model_version VARCHAR NOT NULL""",
    "imputation_log": """
        partition DATE NOT NULL, customer_id VARCHAR NOT NULL, feature VARCHAR NOT NULL,
        reason VARCHAR NOT NULL, original_value VARCHAR, substituted_value VARCHAR NOT NULL,
        spec_version VARCHAR NOT NULL, mapping_version VARCHAR NOT NULL,
        model_version VARCHAR NOT NULL""",
    "training_features": f"""
        customer_id VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, {_FEATURE_DDL},
        label INTEGER NOT NULL, split VARCHAR NOT NULL, spec_version VARCHAR NOT NULL,
        mapping_version VARCHAR NOT NULL""",
    "risk_scores": """
        partition DATE NOT NULL, customer_id VARCHAR NOT NULL, score DOUBLE NOT NULL,
        risk_band VARCHAR NOT NULL, rank BIGINT NOT NULL, model_version VARCHAR NOT NULL,
        spec_version VARCHAR NOT NULL, mapping_version VARCHAR NOT NULL""",
}
"""Every table the project writes: name -> column DDL. The identifier whitelist."""


def _columns(ddl: str) -> list[str]:
    names = []
    for part in ddl.replace("\n", " ").split(","):
        part = part.strip()
        if part:
            names.append(part.split()[0])
    return names


COLUMNS = {name: _columns(ddl) for name, ddl in TABLES.items()}


def _types(ddl: str) -> dict[str, str]:
    return {part.split()[0]: part.split()[1] for part in (p.strip() for p in ddl.replace("\n", " ").split(",")) if part}


COLUMN_TYPES = {name: _types(ddl) for name, ddl in TABLES.items()}


def _nullable(ddl: str) -> set[str]:
    parts = (p.strip() for p in ddl.replace("\n", " ").split(","))
    return {part.split()[0] for part in parts if part and "NOT NULL" not in part}


NULLABLE = {name: _nullable(ddl) for name, ddl in TABLES.items()}

ADDED_COLUMNS: dict[str, set[str]] = {"raw_verdicts": {"run_id", "result"}, "customer_deliveries": {"received"}}
"""Nullable columns a later version appended to a table, which an older warehouse gets on
opening (every other difference from this code's schema is refused)."""
assert all(columns <= NULLABLE[name] for name, columns in ADDED_COLUMNS.items())
"""Table -> column -> DuckDB type: how a copy of a table read back from files is cast."""


def table(name: str) -> str:
    """The quoted identifier of a whitelisted table; anything else is refused."""
    if name not in TABLES:
        raise ValueError(f"{name!r} is not a table of this warehouse")
    return f'"{name}"'


class WarehouseBusy(RuntimeError):
    """The DuckDB file stayed locked by another process for longer than the lock timeout."""


DEFAULT_LOCK_TIMEOUT_SECONDS = 600.0


def open_file(
    path: str | Path,
    read_only: bool = False,
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Connect to a DuckDB file, waiting while another process holds its lock.

    DuckDB lets one process at a time open a file for writing. Runs launched side by
    side (a UI backfill, a re-run during the nightly run, the tests) therefore take turns:
    a refused connection is retried with jittered exponential back-off (50 ms .. 2 s)
    until ``lock_timeout_seconds``; ``on_wait`` hears about the first wait (the steps log
    it), and the timeout raises :class:`WarehouseBusy` naming the file and the holder."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_seconds
    delay, waits = 0.05, 0
    while True:
        try:
            # Same configuration as dagster-duckdb's DuckDBResource: DuckDB refuses a
            # second connection to one file in one process with a different configuration.
            return duckdb.connect(str(path), read_only=read_only, config={"custom_user_agent": "dagster"})
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() + delay > deadline:
                raise WarehouseBusy(
                    f"{path} stayed locked by another process for {lock_timeout_seconds:g} s "
                    f"({waits} retries): {exc}. Raise warehouse.lock_timeout_seconds or limit "
                    "concurrent runs (README: Concurrency)."
                ) from exc
            if waits == 0 and on_wait is not None:
                on_wait(f"{path} is locked by another process; waiting up to {lock_timeout_seconds:g} s: {exc}")
            waits += 1
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)


def connect(
    path: str | Path,
    read_only: bool = False,
    ensure: bool = True,
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """The warehouse: :func:`open_file`, then (unless read-only) its tables created or
    verified against this code's schema."""
    conn = open_file(path, read_only, lock_timeout_seconds, on_wait)
    if ensure and not read_only:
        try:
            ensure_tables(conn)
        except BaseException:
            conn.close()
            raise
    return conn


def _first_customer_version(conn: duckdb.DuckDBPyConnection) -> None:
    """A warehouse whose customers were loaded before versions were kept: its customers
    table becomes the first version, valid from the beginning."""
    if scalar(conn, "SELECT count(*) FROM customer_deliveries") or not scalar(conn, "SELECT count(*) FROM customers"):
        return
    with transaction(conn):
        conn.execute(
            "INSERT INTO customer_versions SELECT customer_id, segment, region, opened_at, ?, NULL, 'migrated' "
            "FROM customers",
            [BEGINNING],
        )
        conn.execute(
            "INSERT INTO customer_deliveries SELECT 'migrated', ?, ?, 'the customers table', count(*), "
            "count(*), 0, 0, 0, 0.0, NULL, FALSE, NULL FROM customers",
            [BEGINNING, pd.Timestamp.now("UTC").tz_localize(None)],
        )


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for name, ddl in TABLES.items():
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table(name)} ({ddl})")
        existing = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND table_schema = current_schema() ORDER BY ordinal_position",
                [name],
            ).fetchall()
        ]
        added = COLUMNS[name][len(existing) :]
        if existing == COLUMNS[name][: len(existing)] and added and set(added) <= ADDED_COLUMNS.get(name, set()):
            # columns this version added to a table (nullable, at the end): added, said
            for column in added:
                conn.execute(f'ALTER TABLE {table(name)} ADD COLUMN "{column}" {COLUMN_TYPES[name][column]}')
            warnings.warn(
                f"warehouse table {name}: added the columns {added} this version records "
                "(an older version of risk_assets will refuse this warehouse from now on)",
                stacklevel=2,
            )
            existing = COLUMNS[name]
        if existing != COLUMNS[name]:
            raise RuntimeError(
                f"table {name} in this warehouse has columns {existing}, but this code writes "
                f"{COLUMNS[name]} (the feature spec changed). Use a new warehouse file or drop "
                f"the table; nothing was written."
            )
    _first_customer_version(conn)


def _index_stored_ids(conn: duckdb.DuckDBPyConnection, why: str = "") -> None:
    """(Re)build ``transaction_ids`` from the stored rows (see :func:`heal_id_index`)."""
    with transaction(conn):
        conn.execute("DELETE FROM transaction_ids")
        conn.execute(f"INSERT INTO transaction_ids {_ID_HASHES} FROM raw_transactions")
    rows = scalar(conn, "SELECT count(*) FROM transaction_ids")
    if rows:
        warnings.warn(f"warehouse: indexed the {rows} stored transaction ids (transaction_ids){why}", stacklevel=3)


def heal_id_index(conn: duckdb.DuckDBPyConnection) -> bool:
    """Rebuild ``transaction_ids`` when it does not match the stored rows: a different row
    count (a warehouse written before the index existed, rows written around :func:`insert`,
    a build cut short), or the newest partition's
    ids hashed otherwise than :data:`ID_HASH` hashes them now (an id changed in place, a
    changed hash function). Run once per raw load, before the index is read. Returns whether
    it rebuilt (with a warning)."""
    if index_complete(conn):
        newest = scalar(conn, "SELECT max(partition) FROM raw_transactions")
        if newest is None:
            return False
        stale = scalar(
            conn,
            f"SELECT count(*) FROM (SELECT {ID_HASH} AS h FROM raw_transactions WHERE partition = $p "
            "EXCEPT ALL SELECT id_hash FROM transaction_ids WHERE partition = $p)",
            {"p": newest},
        )
        if not stale:
            return False
        why = f": {stale} id(s) of {newest} did not match the index"
    else:
        why = ": the index did not hold one row per stored transaction"
    _index_stored_ids(conn, why)
    return True


ID_HASH = "md5_number_lower(transaction_id)"
"""The 64-bit hash of a transaction id the indexes hold: the lower half of its MD5, a
standard function, so an index written by one DuckDB version is read right by the next
(DuckDB's own ``hash`` may change between versions)."""
_ID_HASHES = f"SELECT partition, {ID_HASH} AS id_hash"
"""The index row of a stored transaction: its partition and :data:`ID_HASH`."""


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert(conn: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    columns = COLUMNS[name]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame for {name} lacks columns {missing}")
    if frame.empty:
        return
    view = f"_incoming_{name}"
    conn.register(view, frame[columns])
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        conn.execute(f"INSERT INTO {table(name)} ({cols}) SELECT {cols} FROM {view}")
        if name == "raw_transactions":  # every stored id in the index, with the rows (see stored_elsewhere)
            conn.execute(f"INSERT INTO transaction_ids {_ID_HASHES} FROM {view}")
    finally:
        conn.unregister(view)


def replace_partition(conn: duckdb.DuckDBPyConnection, partition: dt.date, frames: Mapping[str, pd.DataFrame]) -> None:
    """Atomically replace one partition in several tables (one transaction)."""
    with transaction(conn):
        for name, frame in frames.items():
            conn.execute(f"DELETE FROM {table(name)} WHERE partition = ?", [partition])
            if name == "raw_transactions":
                conn.execute("DELETE FROM transaction_ids WHERE partition = ?", [partition])
            insert(conn, name, frame.assign(partition=partition))


def replace_partition_from_query(
    conn: duckdb.DuckDBPyConnection, partition: dt.date, name: str, sql: str, params: Mapping
) -> None:
    """Atomically replace one partition of ``name`` with the rows of a query (which
    names the table's columns but ``partition``): computed and written inside the
    warehouse, never through pandas."""
    columns = [c for c in COLUMNS[name] if c != "partition"]
    cols = ", ".join(f'"{c}"' for c in columns)
    with transaction(conn):
        conn.execute(f"DELETE FROM {table(name)} WHERE partition = $partition", {"partition": partition})
        conn.execute(
            f"INSERT INTO {table(name)} ({cols}, partition) SELECT {cols}, $partition FROM ({sql})",
            {**params, "partition": partition},
        )


def null_cells(conn: duckdb.DuckDBPyConnection, name: str, partition: dt.date, columns: list[str]) -> dict[str, int]:
    """NULL cells per column of one partition (``columns``: table columns only)."""
    unknown = set(columns) - set(COLUMNS[name])
    if unknown:
        raise ValueError(f"{name} has no columns {sorted(unknown)}")
    counts = conn.execute(
        "SELECT " + ", ".join(f'count(*) - count("{c}")' for c in columns) + f" FROM {table(name)} WHERE partition = ?",
        [partition],
    ).fetchall()[0]
    return dict(zip(columns, (int(v) for v in counts)))


def clear(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    """Delete every row of an (unpartitioned) table; the caller owns the transaction."""
    conn.execute(f"DELETE FROM {table(name)}")


def replace_table(conn: duckdb.DuckDBPyConnection, frames: Mapping[str, pd.DataFrame]) -> None:
    """Atomically replace whole (unpartitioned) tables (one transaction)."""
    with transaction(conn):
        for name, frame in frames.items():
            conn.execute(f"DELETE FROM {table(name)}")
            insert(conn, name, frame)


def frame(conn: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> pd.DataFrame:
    """A query's rows as pandas, through Arrow: two to three times faster than ``.df()``
    on the wide per-customer tables (Arrow converts each repeated string once). Columns
    and dtypes are those ``.df()`` gives (DATE as ``datetime64[us]``)."""
    out = conn.sql(sql, params=params).to_arrow_table().to_pandas(date_as_object=False)
    for column in out.columns:
        if out[column].dtype == "datetime64[ms]":
            out[column] = out[column].astype("datetime64[us]")
    return out


def scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None):
    """First value of a query. Uses ``fetchall``: DuckDB 2 refuses further work on a
    connection whose last result was only partly fetched (``fetchone``)."""
    rows = conn.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def count(conn: duckdb.DuckDBPyConnection, name: str, partition: dt.date | None = None) -> int:
    if partition is None:
        return scalar(conn, f"SELECT count(*) FROM {table(name)}")
    return scalar(conn, f"SELECT count(*) FROM {table(name)} WHERE partition = ?", [partition])


# =========================================================================== reads and writes
class NotMaterialised(LookupError):
    """A step needs rows another asset has not written yet (the message says which)."""


PER_NIGHT = (
    "raw_transactions",
    "rejected_transactions",
    "serving_features",
    "encoded_features",
    "imputation_log",
    "risk_scores",
)
"""The per-night tables whose size grows with the data: what an engine computes over
(the others are ledgers, reference data and the registry)."""


def read_partition(
    conn: duckdb.DuckDBPyConnection, name: str, day: dt.date, required: bool = True, columns: list[str] | None = None
) -> pd.DataFrame:
    """One partition of a per-customer table, ordered by customer (``columns``: only
    these, table columns only); empty is :class:`NotMaterialised` when ``required``."""
    wanted = "*"
    if columns is not None:
        unknown = set(columns) - set(COLUMNS[name])
        if unknown:
            raise ValueError(f"{name} has no columns {sorted(unknown)}")
        wanted = ", ".join(f'"{c}"' for c in ["customer_id", *columns])
    out = frame(conn, f"SELECT {wanted} FROM {table(name)} WHERE partition = ? ORDER BY customer_id", [day])
    if required and out.empty:
        raise NotMaterialised(f"{name}[{day}] is empty: materialise it first")
    return out


def partition_order(name: str, prefix: str = "") -> str:
    """How :func:`partition_rows` orders a table's rows (raw rows: as stored)."""
    keys = {"raw_transactions": [], "rejected_transactions": ["source_file", "source_row"]}.get(name, ["customer_id"])
    return (" ORDER BY " + ", ".join(prefix + k for k in keys)) if keys else ""


def partition_rows(
    conn: duckdb.DuckDBPyConnection, name: str, day: dt.date, customers: Sequence[str] | None = None
) -> pd.DataFrame:
    """Every column of one partition of a per-night table (only ``customers``' rows when
    given), per-customer tables ordered by customer."""
    if name not in PER_NIGHT:
        raise ValueError(f"{name!r} is not a per-night table")
    order = partition_order(name, "t.")
    if customers is None:
        return frame(conn, f"SELECT t.* FROM {table(name)} t WHERE t.partition = ?{order}", [day])
    conn.register("_wanted_ids", pd.DataFrame({"customer_id": list(customers)}, dtype=object))
    try:
        return frame(
            conn,
            f"SELECT t.* FROM {table(name)} t JOIN _wanted_ids USING (customer_id) WHERE t.partition = ?{order}",
            [day],
        )
    finally:
        conn.unregister("_wanted_ids")


# --------------------------------------------------------------------------- raw layer
BEGINNING = pd.Timestamp("1900-01-01")
"""``valid_from`` of the first customers version: valid for every day of the history."""


def customers_valid_at(conn: duckdb.DuckDBPyConnection, at: pd.Timestamp) -> pd.DataFrame:
    """The customer attributes valid at ``at`` (naive UTC): the version with
    ``valid_from <= at < valid_to`` of each customer."""
    return frame(
        conn,
        "SELECT customer_id, segment, region, opened_at, version, valid_from FROM customer_versions "
        "WHERE valid_from <= ? AND (valid_to IS NULL OR ? < valid_to) ORDER BY customer_id",
        [at, at],
    )


def attribute_counts(conn: duckdb.DuckDBPyConnection, at: pd.Timestamp) -> pd.DataFrame:
    """Customers per value of ``segment`` and ``region`` in the version valid at ``at``
    (``attribute, value, customers``): the aggregate of :func:`customers_valid_at` that
    :func:`risk_assets.core.reference.value_counts` defines row by row."""
    valid = "FROM customer_versions WHERE valid_from <= ? AND (valid_to IS NULL OR ? < valid_to)"
    return frame(
        conn,
        f"SELECT 'segment' AS attribute, segment AS value, count(*) AS customers {valid} AND segment IS NOT NULL "
        f"GROUP BY segment UNION ALL SELECT 'region', region, count(*) {valid} AND region IS NOT NULL GROUP BY region "
        "ORDER BY 1, 2",
        [at, at, at, at],
    )


def customer_deliveries(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every customers delivery read, oldest first (``superseded``: a later delivery took
    over from the same time on)."""
    return frame(conn, "SELECT * FROM customer_deliveries ORDER BY read_at, valid_from")


def latest_customer_delivery(conn: duckdb.DuckDBPyConnection) -> dict | None:
    """The delivery the customers table holds (the last one read that is not superseded)."""
    found = frame(
        conn, "SELECT * FROM customer_deliveries WHERE NOT superseded ORDER BY valid_from DESC, read_at DESC LIMIT 1"
    )
    return None if found.empty else found.iloc[0].to_dict()


def delivery_valid_at(conn: duckdb.DuckDBPyConnection, at: pd.Timestamp) -> dict | None:
    """The (not superseded) delivery whose version is valid at ``at``."""
    found = frame(
        conn,
        "SELECT * FROM customer_deliveries WHERE NOT superseded AND valid_from <= ? "
        "ORDER BY valid_from DESC, read_at DESC LIMIT 1",
        [at],
    )
    return None if found.empty else found.iloc[0].to_dict()


def customer_changes(conn: duckdb.DuckDBPyConnection, version: str, valid_from: pd.Timestamp) -> pd.DataFrame:
    return frame(
        conn,
        "SELECT customer_id, change, attribute, old_value, new_value FROM customer_changes "
        "WHERE version = ? AND valid_from = ? ORDER BY customer_id, attribute",
        [version, valid_from],
    )


def record_customer_version(
    conn: duckdb.DuckDBPyConnection,
    customers: pd.DataFrame,
    delivery: dict,
    changes: pd.DataFrame,
) -> None:
    """Store a customers delivery as the version valid from ``delivery["valid_from"]`` on:
    versions that started at or after it are superseded (the latest delivery wins from that
    time on), the versions valid then end there, and the delivery, its rows and its changes
    are recorded. The caller owns the transaction."""
    start = delivery["valid_from"]
    conn.execute("UPDATE customer_deliveries SET superseded = TRUE WHERE valid_from >= ? AND NOT superseded", [start])
    conn.execute("DELETE FROM customer_versions WHERE valid_from >= ?", [start])
    conn.execute(
        "UPDATE customer_versions SET valid_to = ? WHERE valid_from < ? AND (valid_to IS NULL OR valid_to > ?)",
        [start, start, start],
    )
    insert(
        conn,
        "customer_versions",
        customers.assign(valid_from=start, valid_to=pd.NaT, version=delivery["version"]),
    )
    insert(conn, "customer_deliveries", pd.DataFrame([{**delivery, "superseded": False}]))
    insert(conn, "customer_changes", changes.assign(version=delivery["version"], valid_from=start))


def note_received(conn: duckdb.DuckDBPyConnection, delivery: Mapping, received: str) -> None:
    """Record the fingerprint of the customers file as received (``received``) with the
    ``delivery`` whose version it holds (a :func:`latest_customer_delivery` row), so that the
    next nightly re-read of the same file is recognised without being judged again."""
    conn.execute(
        "UPDATE customer_deliveries SET received = ? WHERE version = ? AND valid_from = ? AND read_at = ? "
        "AND NOT superseded",
        [received, delivery["version"], delivery["valid_from"], delivery["read_at"]],
    )


def customer_ids(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT customer_id FROM customers").fetchall()}


_STORED_ELSEWHERE = """SELECT r.transaction_id, CAST(r.partition AS VARCHAR) AS partition, r.customer_id, r.event_ts,
       r.amount_cents, r.category, r.channel, r.source_file FROM raw_transactions r
JOIN (SELECT DISTINCT transaction_id FROM _batch_ids) b USING (transaction_id)
WHERE r.partition <> $day"""


def _batch(ids: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"transaction_id": [v if isinstance(v, str) else None for v in ids]}, dtype=object)


def stored_elsewhere(
    conn: duckdb.DuckDBPyConnection, day: dt.date, ids: pd.Series, index: StoredIds | None = None
) -> pd.DataFrame:
    """The rows (:data:`~risk_assets.core.contract.STORED_COLUMNS`) stored in *other*
    partitions under this batch's transaction ids, read only from the partitions that hold one
    of them: found in ``index`` (a load of many days keeps one in memory), or else in the
    warehouse's narrow index ``transaction_ids`` (one 64-bit hash per stored id, written with
    the rows; at 1M customers its scan takes a tenth of a scan of every stored id). A hash
    collision only adds a partition to read: the rows are matched on the id itself."""
    if index is not None:
        return index.elsewhere(conn, day, ids)
    if not index_complete(conn):
        return scan_elsewhere(conn, day, ids)
    batch = _batch(ids)  # the partitions that hold one of these ids, from the narrow index
    conn.register("_batch_ids", batch)
    try:
        holding = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT t.partition FROM transaction_ids t SEMI JOIN "
                f"(SELECT {ID_HASH} AS h FROM _batch_ids WHERE transaction_id IS NOT NULL) b "
                "ON t.id_hash = b.h WHERE t.partition <> $day ORDER BY 1",
                {"day": day},
            ).fetchall()
        ]
    finally:
        conn.unregister("_batch_ids")
    return _rows_in(conn, day, batch, holding)


def scan_elsewhere(conn: duckdb.DuckDBPyConnection, day: dt.date, ids: pd.Series) -> pd.DataFrame:
    """:func:`stored_elsewhere` by one scan of every stored id: the definition the indexes
    are held to, and what a warehouse whose index is not whole gets."""
    conn.register("_batch_ids", _batch(ids))
    try:
        return conn.execute(_STORED_ELSEWHERE, {"day": day}).df()
    finally:
        conn.unregister("_batch_ids")


def index_complete(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``transaction_ids`` holds one row per stored transaction (every writer of
    ``raw_transactions`` goes through :func:`insert`; a row written around it shows here, and
    the copy check then scans every stored id instead)."""
    if not has_table(conn, "transaction_ids"):  # read-only, older than the index
        return False
    indexed, stored = conn.execute(
        "SELECT (SELECT count(*) FROM transaction_ids), (SELECT count(*) FROM raw_transactions)"
    ).fetchall()[0]
    return indexed == stored


def _rows_in(conn: duckdb.DuckDBPyConnection, day: dt.date, batch: pd.DataFrame, holding: list) -> pd.DataFrame:
    """:data:`_STORED_ELSEWHERE` read only from the partitions ``holding`` (constants, so that
    the scan skips every other partition: an IN over a subquery would not)."""
    where = (
        " AND r.partition IN (" + ", ".join(f"$p{i}" for i in range(len(holding))) + ")" if holding else " AND false"
    )
    conn.register("_batch_ids", batch)
    try:
        return conn.execute(_STORED_ELSEWHERE + where, {"day": day, **{f"p{i}": d for i, d in enumerate(holding)}}).df()
    finally:
        conn.unregister("_batch_ids")


class StoredIds:
    """Which partition holds each stored transaction id, as the 64-bit :data:`ID_HASH` of the
    id, kept in memory for the days of one load (sorted runs, merged as they grow: 12 bytes
    per id; read from ``transaction_ids`` when that is whole). Without it each day's copy
    check would query every stored id, and a history load slows down with every day it has
    loaded; with it, a day's ids are found by binary search and the rows read from the few
    partitions that hold a match. Exact: a hash collision only adds a partition to read, and
    the rows are matched on the id itself."""

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        source = (  # the narrow index when it is whole: no string hashed
            "SELECT id_hash AS h, partition FROM transaction_ids"
            if index_complete(conn)
            else f"SELECT {ID_HASH} AS h, partition FROM raw_transactions"
        )
        found = conn.sql(source).to_arrow_table()
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._held: set[dt.date] = set()
        if found.num_rows:
            days = found.column("partition").to_numpy().astype("datetime64[D]").astype("int32")
            self._add(found.column("h").to_numpy().astype("uint64"), days)
            self._held = {dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in np.unique(days)}

    def _add(self, hashes: np.ndarray, days: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        self._runs.append((hashes[order], days[order]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (h2, d2), (h1, d1) = self._runs.pop(), self._runs.pop()
            hashes, days = np.concatenate([h1, h2]), np.concatenate([d1, d2])
            order = np.argsort(hashes, kind="stable")
            self._runs.append((hashes[order], days[order]))

    @staticmethod
    def _hashes(conn: duckdb.DuckDBPyConnection, ids: pd.DataFrame) -> np.ndarray:
        conn.register("_hashed_ids", ids)
        try:
            out = conn.sql(f"SELECT {ID_HASH} AS h FROM _hashed_ids WHERE transaction_id IS NOT NULL")
            return out.to_arrow_table().column("h").to_numpy().astype("uint64")
        finally:
            conn.unregister("_hashed_ids")

    def written(self, conn: duckdb.DuckDBPyConnection, day: dt.date) -> None:
        """``day``'s partition was (re)written: it now holds the ids stored there."""
        number = (day - dt.date(1970, 1, 1)).days
        if day in self._held:  # a day this load already saw (a re-load): drop its old ids first
            runs, self._runs = self._runs, []
            for hashes, days in runs:
                keep = days != number
                if keep.any():
                    self._add(hashes[keep], days[keep])
        found = conn.sql(f"SELECT {ID_HASH} AS h FROM raw_transactions WHERE partition = $day", params={"day": day})
        hashes = found.to_arrow_table().column("h").to_numpy().astype("uint64")
        if len(hashes):
            self._add(hashes, np.full(len(hashes), number, dtype="int32"))
        self._held.add(day)

    def partitions_holding(self, hashes: np.ndarray, day: dt.date) -> list[dt.date]:
        """The partitions other than ``day`` that hold one of ``hashes``."""
        number, found = (day - dt.date(1970, 1, 1)).days, set()
        hashes = np.unique(hashes)  # sorted: each binary search starts where the previous one ended
        for run, days in self._runs:
            if not len(run):
                continue
            at = np.searchsorted(run, hashes, "left")
            hit = at < len(run)
            hit[hit] = run[at[hit]] == hashes[hit]
            for a in at[hit]:  # matches are copies (or collisions): few
                b = a
                while b < len(run) and run[b] == run[a]:
                    if days[b] != number:
                        found.add(int(days[b]))
                    b += 1
        return sorted(dt.date(1970, 1, 1) + dt.timedelta(days=d) for d in found)

    def elsewhere(self, conn: duckdb.DuckDBPyConnection, day: dt.date, ids: pd.Series) -> pd.DataFrame:
        """What :func:`stored_elsewhere` returns, reading only the partitions that hold a match."""
        batch = _batch(ids)
        return _rows_in(conn, day, batch, self.partitions_holding(self._hashes(conn, batch), day))


def conflicted_customers(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Customer ids whose rows in the source conflict (every copy rejected)."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT record_key FROM rejected_customers WHERE starts_with(reasons, ?) "
            "AND record_key IS NOT NULL",
            [CONFLICT],
        ).fetchall()
    }


def conflicts(conn: duckdb.DuckDBPyConnection, name: str, day: dt.date | None = None) -> pd.DataFrame:
    """``record_key, source_file, source_row, reasons`` of the conflicting duplicates
    rejected from ``rejected_<name>`` (one partition of it for transactions)."""
    where = "WHERE position(? IN reasons) > 0" + (" AND partition = ?" if day is not None else "")
    params = [CONFLICT] + ([day] if day is not None else [])
    return conn.execute(
        f"SELECT record_key, source_file, source_row, reasons FROM {table('rejected_' + name)} {where} "
        "ORDER BY record_key, source_file, source_row",
        params,
    ).df()


def load_files(conn: duckdb.DuckDBPyConnection, day: dt.date) -> pd.DataFrame:
    """The file ledger of the partition's latest load: ``path, action, rows, reason``."""
    return conn.execute(
        "SELECT path, action, rows, reason FROM raw_load_files WHERE partition = ? ORDER BY action, path", [day]
    ).df()


def window_categories(
    conn: duckdb.DuckDBPyConnection, start: pd.Timestamp, end: pd.Timestamp, first: dt.date, last: dt.date
) -> pd.DataFrame:
    """Distinct (customer_id, category, channel) with an event in ``[start, end)``,
    scanning partitions ``first .. last``."""
    return conn.execute(
        "SELECT DISTINCT customer_id, category, channel FROM raw_transactions WHERE event_ts >= ? "
        "AND event_ts < ? AND partition BETWEEN ? AND ?",
        [start, end, first, last],
    ).df()


def _dated(conn: duckdb.DuckDBPyConnection, sql: str, params: list | dict) -> pd.DataFrame:
    """A query's rows with its ``partition`` column as ``datetime.date`` values."""
    out = conn.execute(sql, params).df()
    out["partition"] = pd.to_datetime(out["partition"]).dt.date
    return out


def loads(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The load ledger ``raw_loads`` for partitions ``first .. last``, by partition."""
    return _dated(
        conn,
        "SELECT partition, received, accepted, rejected, read_at, loaded_at FROM raw_loads "
        "WHERE partition BETWEEN ? AND ? ORDER BY partition",
        [first, last],
    )


def raw_verdicts(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The raw layer's recorded verdicts (``partition, check_name, passed, summary, loaded_at``)."""
    return _dated(
        conn,
        "SELECT partition, check_name, passed, summary, loaded_at FROM raw_verdicts "
        "WHERE partition BETWEEN ? AND ? ORDER BY partition, check_name",
        [first, last],
    )


def raw_results(conn: duckdb.DuckDBPyConnection, day: dt.date, run_id: str, settings_version: str) -> dict[str, str]:
    """Check name -> the full result the raw load of run ``run_id`` recorded for ``day``
    under settings ``settings_version`` (serialized; empty: recorded by another run)."""
    rows = conn.execute(
        "SELECT check_name, result FROM raw_verdicts WHERE partition = ? AND run_id = ? AND settings_version = ? "
        "AND result IS NOT NULL",
        [day, run_id, settings_version],
    ).fetchall()
    return dict(rows)


def record_night_verdicts(conn: duckdb.DuckDBPyConnection, partition: dt.date, verdicts: pd.DataFrame) -> None:
    """Replace the recorded verdicts of ``verdicts``' checks on one night (one transaction):
    the latest evaluation of each blocking check is what a later night's look-back reads."""
    if verdicts.empty:
        return
    with transaction(conn):
        for name in verdicts["check_name"].unique():
            conn.execute(
                f"DELETE FROM {table('night_verdicts')} WHERE partition = ? AND check_name = ?", [partition, name]
            )
        insert(conn, "night_verdicts", verdicts.assign(partition=partition))


def night_verdicts(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The latest recorded verdict of each blocking night check (``partition, check_name,
    asset, passed, summary, evaluated_at``) for nights ``first .. last``."""
    return _dated(
        conn,
        f"SELECT partition, check_name, asset, passed, summary, evaluated_at FROM {table('night_verdicts')} "
        "WHERE partition BETWEEN ? AND ? ORDER BY partition, check_name",
        [first, last],
    )


def loaded_range(conn: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date] | None:
    """The first and last raw day loaded (None: none yet)."""
    first, last = conn.execute(f"SELECT min(partition), max(partition) FROM {table('raw_loads')}").fetchone()
    return (first, last) if first is not None else None


def recent_loaded_partitions(conn: duckdb.DuckDBPyConnection, limit: int) -> list[dt.date]:
    return [
        r[0]
        for r in conn.execute("SELECT partition FROM raw_loads ORDER BY partition DESC LIMIT ?", [limit]).fetchall()
    ]


def irregular_customers(conn: duckdb.DuckDBPyConnection, start: pd.Timestamp, end: pd.Timestamp) -> set[str]:
    """Customers with an irregularity event in ``[start, end)``."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT customer_id FROM irregularities WHERE event_ts >= ? AND event_ts < ?", [start, end]
        ).fetchall()
    }


# --------------------------------------------------------------------------- features
def imputation_ledger(conn: duckdb.DuckDBPyConnection, day: dt.date) -> pd.DataFrame:
    return conn.execute("SELECT * FROM imputation_log WHERE partition = ?", [day]).df()


def customer_groups(conn: duckdb.DuckDBPyConnection, day: dt.date) -> pd.DataFrame:
    """``customer_id, segment, region`` of the night's encoded customers."""
    return conn.execute(
        "SELECT customer_id, segment, region FROM encoded_features WHERE partition = ? ORDER BY customer_id", [day]
    ).df()


def training_summary(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Rows, positive labels and as-of days of the training table, per split."""
    return frame(
        conn,
        """
        SELECT split, count(*) AS rows, sum(label)::BIGINT AS positives, count(DISTINCT as_of) AS as_of_days
        FROM training_features GROUP BY split ORDER BY split""",
    )


TRAINING_COLUMNS = frozenset({*(f.name for f in FEATURES), "label", "as_of", "customer_id"})
"""The columns :func:`training_split` reads (whitelisted identifiers)."""


def training_split(conn: duckdb.DuckDBPyConnection, split: str):
    """One split of ``training_features`` read one column at a time as Arrow, every column in
    the order ``as_of, customer_id`` (:class:`risk_assets.core.model.Split`): training never
    builds a frame of the whole table."""
    from risk_assets.core.model import Split

    [(rows, keys)] = conn.execute(
        "SELECT count(*), count(DISTINCT (as_of, customer_id)) FROM training_features WHERE split = ?", [split]
    ).fetchall()
    if not rows:
        raise NotMaterialised(f"training_features has no {split!r} rows: materialise it first")
    if keys != rows:  # each column is its own ordered read: a tie would shuffle rows across columns
        raise ValueError(
            f"training_features' {split!r} split has {rows - keys} row(s) repeating an (as_of, customer_id): "
            "its columns cannot be read one at a time in one order; rebuild training_features"
        )

    def column(name: str):
        if name not in TRAINING_COLUMNS:
            raise ValueError(f"{name!r} is not a column of training_features")
        return (
            conn.sql(
                f'SELECT "{name}" FROM training_features WHERE split = ? ORDER BY as_of, customer_id', params=[split]
            )
            .to_arrow_table()
            .column(0)
        )

    return Split(column, int(rows))


def training_mapping_version(conn: duckdb.DuckDBPyConnection) -> str:
    versions = [r[0] for r in conn.execute("SELECT DISTINCT mapping_version FROM training_features").fetchall()]
    if not versions:
        raise NotMaterialised("training_features is empty: materialise it first")
    if len(versions) > 1:
        raise ValueError(f"training_features mixes mapping versions {sorted(versions)}: rebuild it")
    return versions[0]


def training_frame(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    out = conn.execute("SELECT * FROM training_features ORDER BY as_of, customer_id").df()
    if out.empty:
        raise NotMaterialised("training_features is empty: materialise it first")
    return out


# --------------------------------------------------------------------------- scores
def scores(conn: duckdb.DuckDBPyConnection, day: dt.date) -> pd.DataFrame:
    """``customer_id, score, model_version`` of a scored night (empty when not scored)."""
    return conn.execute(
        "SELECT customer_id, score, model_version FROM risk_scores WHERE partition = ? ORDER BY customer_id", [day]
    ).df()


# --------------------------------------------------------------------------- statistics kept
def has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the warehouse holds ``name`` (a read-only connection to an older warehouse may not)."""
    table(name)  # whitelisted
    return bool(scalar(conn, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]))


def _content(name: str) -> str:
    """Rows and a sum of a hash of every column: another content, another value (a 64-bit
    hash per row, summed exactly)."""
    cols = ", ".join(f'"{c}"' for c in COLUMNS[name])
    return f"count(*), CAST(sum(hash({cols})) AS VARCHAR)"


def partition_contents(conn: duckdb.DuckDBPyConnection, name: str, first: dt.date, last: dt.date) -> dict:
    """Each partition of ``name`` from ``first`` to ``last`` that holds rows -> a fingerprint of
    its content (a partition written again with other rows gets another)."""
    rows = conn.execute(
        f"SELECT partition, {_content(name)} FROM {table(name)} WHERE partition BETWEEN ? AND ? GROUP BY partition",
        [first, last],
    ).fetchall()
    return {p: f"{n}:{h}" for p, n, h in rows}


def table_content(conn: duckdb.DuckDBPyConnection, name: str) -> str:
    """A fingerprint of the whole content of ``name``."""
    n, h = conn.execute(f"SELECT {_content(name)} FROM {table(name)}").fetchall()[0]
    return f"{n}:{h}"


def stored_statistics(
    conn: duckdb.DuckDBPyConnection, statistic: str, engine: str, params: str, days: Sequence[dt.date]
) -> dict[dt.date, tuple[str, bytes]]:
    """The kept rows of one per-partition statistic: partition -> (the fingerprint of the
    inputs it was computed from, its rows as Arrow IPC bytes)."""
    if not days:
        return {}
    found = conn.execute(
        "SELECT partition, inputs, frame FROM partition_statistics WHERE statistic = ? AND engine = ? "
        "AND params = ? AND partition BETWEEN ? AND ?",
        [statistic, engine, params, min(days), max(days)],
    ).fetchall()
    wanted = set(days)
    return {p: (inputs, bytes(blob)) for p, inputs, blob in found if p in wanted}


def store_statistics(conn: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
    """Keep computed per-partition statistics (``partition_statistics`` rows), replacing the
    entries of the same statistic, engine, parameters and partition; one transaction."""
    if rows.empty:
        return
    keys = rows[["statistic", "engine", "params", "partition"]]
    conn.register("_replaced_statistics", keys)
    try:
        with transaction(conn):
            conn.execute(
                "DELETE FROM partition_statistics s USING _replaced_statistics r WHERE s.statistic = r.statistic "
                "AND s.engine = r.engine AND s.params = r.params AND s.partition = r.partition"
            )
            insert(conn, "partition_statistics", rows)
    finally:
        conn.unregister("_replaced_statistics")


# --------------------------------------------------------------------------- ownership
class OtherInstance(RuntimeError):
    """The warehouse belongs to another Dagster instance (one home, one world)."""


def owner(conn: duckdb.DuckDBPyConnection) -> dict | None:
    """The Dagster instance this warehouse belongs to (the latest claim), or None (also for a
    warehouse written before owners were recorded, whose first write claims it)."""
    if not scalar(conn, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'instance_owner'"):
        return None
    row = conn.execute(
        "SELECT instance_id, instance, claimed_at, how FROM instance_owner ORDER BY claimed_at DESC LIMIT 1"
    ).fetchone()
    return None if row is None else dict(zip(("instance_id", "instance", "claimed_at", "how"), row, strict=True))


def check_owner(owned: dict | None, instance_id: str, instance: str, path: str | Path) -> None:
    """Raise :class:`OtherInstance` naming both instances when ``owned`` is another's."""
    if owned is not None and owned["instance_id"] != instance_id:
        raise OtherInstance(
            f"the warehouse {path} belongs to the Dagster instance at {owned['instance']} "
            f"(id {owned['instance_id']}, since {owned['claimed_at']:%Y-%m-%d %H:%M}), "
            f"not to this one at {instance} (id {instance_id}): refused before reading or "
            "writing anything. Give this instance its own warehouse (warehouse.duckdb_path in "
            "its settings file; with no settings file the default warehouse lives in the "
            "instance folder), or, if the warehouse moved to this instance on purpose (a "
            "restore, a new home), hand it over: risk-assets adopt --home <this instance folder>"
        )


def claim(conn: duckdb.DuckDBPyConnection, instance_id: str, instance: str, path: str | Path) -> bool:
    """Record ``instance_id`` as the warehouse's owner on its first write; refuse another
    (:class:`OtherInstance`). True when this call made the claim."""
    check_owner(owner(conn), instance_id, instance, path)
    with transaction(conn):
        if scalar(conn, "SELECT count(*) FROM instance_owner"):
            return False
        conn.execute(
            "INSERT INTO instance_owner VALUES (?, ?, ?, 'first write')",
            [instance_id, instance, pd.Timestamp.now("UTC").tz_localize(None)],
        )
    return True


def copy_unowned(source: str | Path, target: str | Path) -> None:
    """Copy the warehouse file ``source`` (and its write-ahead log) to ``target`` for another
    instance — a trial replay, a test: the copy belongs to nobody until its first write
    claims it; the original keeps its owner."""
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", ".wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
        else:
            Path(f"{target}{suffix}").unlink(missing_ok=True)  # never another file's log
    with connect(target, ensure=False) as conn:
        if owner(conn) is not None:
            conn.execute("DELETE FROM instance_owner")


def hand_over(conn: duckdb.DuckDBPyConnection, instance_id: str, instance: str) -> dict | None:
    """Make ``instance_id`` the owner (kept as a new claim: the history of owners stays);
    returns the previous owner."""
    previous = owner(conn)
    conn.execute(
        "INSERT INTO instance_owner VALUES (?, ?, ?, ?)",
        [
            instance_id,
            instance,
            pd.Timestamp.now("UTC").tz_localize(None),
            "adopted" + (f" from {previous['instance']} ({previous['instance_id']})" if previous else ""),
        ],
    )
    return previous
