"""Resources and partitions shared by every definition: the warehouse connection, the
engine that opens on it (a plain :class:`~risk_assets.engines.EngineFactory` handed to the
steps as a Dagster resource, chosen once per deployment by ``factory.py``), and the daily
partitions of the business calendar."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from risk_assets.core.night import Night
from risk_assets.engines import Engine, EngineFactory
from risk_assets.settings import Settings
from risk_assets.store import warehouse


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=settings.calendar.partitions_start.isoformat(),
        timezone=settings.calendar.timezone,
    )


def night_of(context, settings: Settings) -> Night:
    """The night of a partitioned step."""
    return Night.of(context.partition_key, settings.calendar)


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource plus how long to wait for another process's lock."""

    lock_timeout_seconds: float = warehouse.DEFAULT_LOCK_TIMEOUT_SECONDS


def duckdb_resource(settings: Settings) -> WarehouseResource:
    return WarehouseResource(
        database=str(settings.warehouse.duckdb_path), lock_timeout_seconds=settings.warehouse.lock_timeout_seconds
    )


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
    conn = warehouse.connect(
        resource.database,
        ensure=resource.database not in _ENSURED,
        lock_timeout_seconds=timeout,
        on_wait=dg.get_dagster_logger().warning,
    )
    _ENSURED.add(resource.database)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def open_engine(resource: DuckDBResource, engine: EngineFactory) -> Iterator[Engine]:
    """The step's engine on a fresh warehouse connection (:func:`open_warehouse`)."""
    with open_warehouse(resource) as conn:
        yield engine.open(conn)
