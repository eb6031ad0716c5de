"""Helpers shared by the asset modules: partitions, the warehouse connection, metadata."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets import warehouse
from risk_assets.contract import Window
from risk_assets.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=settings.calendar.partitions_start.isoformat(),
        timezone=settings.calendar.timezone,
    )


def partition_day(key: str) -> dt.date:
    return dt.date.fromisoformat(key)


def partition_window(partitions: dg.DailyPartitionsDefinition, key: str) -> Window:
    """The partition's ``[start, end)`` in the business timezone, as naive UTC."""
    tw = partitions.time_window_for_partition_key(key)

    def utc(ts: dt.datetime) -> pd.Timestamp:
        return pd.Timestamp(ts).tz_convert("UTC").tz_localize(None)

    return Window(utc(tw.start), utc(tw.end))


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource plus how long to wait for another process's lock."""

    lock_timeout_seconds: float = warehouse.DEFAULT_LOCK_TIMEOUT_SECONDS


def duckdb_resource(settings: Settings) -> WarehouseResource:
    return WarehouseResource(database=str(settings.warehouse.duckdb_path),
                             lock_timeout_seconds=settings.warehouse.lock_timeout_seconds)


_ENSURED: set[str] = set()
"""Warehouse files whose tables this process has created or verified."""


@contextmanager
def open_warehouse(resource: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse file for one step, closed on success and on error.

    Not ``DuckDBResource.get_connection``: that one gives up on a locked file after a
    fixed un-jittered back-off and leaves the connection open when the step raises.
    Here a file locked by a concurrent run is waited for (:func:`warehouse.open_file`,
    logged) up to the resource's ``lock_timeout_seconds``."""
    timeout = getattr(resource, "lock_timeout_seconds", warehouse.DEFAULT_LOCK_TIMEOUT_SECONDS)
    conn = warehouse.connect(resource.database, ensure=resource.database not in _ENSURED,
                             lock_timeout_seconds=timeout, on_wait=dg.get_dagster_logger().warning)
    _ENSURED.add(resource.database)
    try:
        yield conn
    finally:
        conn.close()


def md_table(frame: pd.DataFrame, max_rows: int = 10) -> dg.MetadataValue:
    """A small markdown table for the UI (first ``max_rows`` rows)."""
    if frame.empty:
        return dg.MetadataValue.md("_none_")
    shown = frame.head(max_rows).copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: f"{v:.4g}")
    shown = shown.astype(str).apply(lambda c: c.str.replace("|", "\\|"))
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    rows = ["| " + " | ".join(r) + " |" for r in shown.itertuples(index=False)]
    more = [f"\n_{len(frame) - max_rows} more rows_"] if len(frame) > max_rows else []
    return dg.MetadataValue.md("\n".join([header, rule, *rows, *more]))


def counts_table(counts: dict[str, int], key: str = "reason") -> pd.DataFrame:
    return pd.DataFrame({key: list(counts), "rows": list(counts.values())})


def check_result(
    outcome, settings: Settings, check_name: str | None = None, asset_key: str | None = None, **extra
) -> dg.AssetCheckResult:
    """An :class:`~risk_assets.guards.Outcome` as a Dagster check result: severity,
    the summary as description, every figure and threshold, offender tables, and the
    settings version."""
    from risk_assets.features.spec import SPEC_VERSION

    metadata = {"summary": outcome.summary, **outcome.metadata, **extra,
                "spec_version": SPEC_VERSION, "settings_version": settings.version()}
    if settings.override.by:
        metadata |= {"override_by": settings.override.by, "override_reason": settings.override.reason}
    for name, table in outcome.tables.items():
        metadata[name] = md_table(table, max_rows=15)
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity[outcome.severity],
        description=outcome.summary,
        metadata=metadata,
    )


def read_partition(conn, table: str, day: dt.date, required: bool = True,
                   columns: list[str] | None = None) -> pd.DataFrame:
    """One partition of a per-customer table, ordered by customer (``columns``: only
    these, spec or table names only); empty is a clear failure when the step cannot go
    on without it."""
    wanted = "*"
    if columns is not None:
        unknown = set(columns) - set(warehouse.COLUMNS[table])
        if unknown:
            raise ValueError(f"{table} has no columns {sorted(unknown)}")
        wanted = ", ".join(f'"{c}"' for c in ["customer_id", *columns])
    frame = warehouse.frame(
        conn, f"SELECT {wanted} FROM {warehouse.table(table)} WHERE partition = ? ORDER BY customer_id", [day]
    )
    if required and frame.empty:
        raise dg.Failure(description=f"{table}[{day}] is empty: materialise it first")
    return frame
