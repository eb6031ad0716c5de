"""The alerts store: its own small DuckDB file (sensors write it from the daemon while
runs write the warehouse; DuckDB allows one writing process per file)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from risk_assets.store import warehouse

ALERT_COLUMNS = [
    "alert_id",
    "created_at",
    "kind",
    "partition",
    "asset",
    "check_name",
    "severity",
    "reason",
    "run_id",
    "run_url",
    "webhook_status",
]
_DDL = """CREATE TABLE IF NOT EXISTS alerts (
    alert_id VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, partition VARCHAR,
    asset VARCHAR, check_name VARCHAR, severity VARCHAR, reason VARCHAR NOT NULL, run_id VARCHAR,
    run_url VARCHAR, webhook_status VARCHAR)"""


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    conn = warehouse.open_file(path)  # sensors and runs take turns on the file
    conn.execute(_DDL)
    return conn


def known_ids(conn: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    return {
        r[0] for r in conn.execute("SELECT alert_id FROM alerts WHERE alert_id IN (SELECT unnest(?))", [ids]).fetchall()
    }


def insert(conn: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
    conn.register("_new_alerts", rows[ALERT_COLUMNS])
    try:
        conn.execute(f"INSERT INTO alerts SELECT {', '.join(ALERT_COLUMNS)} FROM _new_alerts")
    finally:
        conn.unregister("_new_alerts")


def read(path: str | Path) -> pd.DataFrame:
    if not Path(path).exists():
        return pd.DataFrame(columns=ALERT_COLUMNS)
    with connect(path) as conn:
        return conn.execute("SELECT * FROM alerts ORDER BY created_at, alert_id").df()
