"""Resources and partitions shared by every definition: the warehouse connection, the
engine that opens on it (a plain :class:`~risk_assets.engines.EngineFactory` handed to the
steps as a Dagster resource, chosen once per deployment by ``factory.py``), and the daily
partitions of the business calendar."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from risk_assets.core.night import Night
from risk_assets.defs.workers import record_host
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


INSTANCE_ID_KEY = "risk_assets/instance_id"
"""Key of the instance's id in its key-value store (the run storage: SQLite or PostgreSQL,
so every process of one deployment — webserver, daemon, run workers — reads the same id)."""


def instance_identity(instance: dg.DagsterInstance) -> tuple[str, str]:
    """``(id, description)`` of a Dagster instance: a random id kept in the instance's own
    storage on first use, and its folder (``$DAGSTER_HOME``) for messages. An ephemeral
    instance (in memory) gets a fresh id each time: it can never own a warehouse."""
    storage = instance.run_storage
    found = storage.get_cursor_values({INSTANCE_ID_KEY}).get(INSTANCE_ID_KEY)
    if found is None:
        found = uuid.uuid4().hex[:12]
        if not instance.is_ephemeral:
            storage.set_cursor_values({INSTANCE_ID_KEY: found})
            # two processes of a new instance may both have made one: the stored one counts
            found = storage.get_cursor_values({INSTANCE_ID_KEY}).get(INSTANCE_ID_KEY, found)
    where = "an ephemeral (in-memory) instance" if instance.is_ephemeral else instance.root_directory
    return found, where


def claim_warehouse(instance: dg.DagsterInstance, path: str, lock_timeout_seconds: float) -> bool:
    """Before anything of a run writes the warehouse: it belongs to ``instance`` (claimed on
    its first write) or the run stops, naming both instances (one home, one world). An
    ephemeral instance claims nothing (a warehouse it wrote stays free for a real one)."""
    instance_id, where = instance_identity(instance)
    conn = warehouse.connect(path, lock_timeout_seconds=lock_timeout_seconds, on_wait=dg.get_dagster_logger().warning)
    try:
        if instance.is_ephemeral:
            warehouse.check_owner(warehouse.owner(conn), instance_id, where, path)
            return False
        return warehouse.claim(conn, instance_id, where, path)
    finally:
        conn.close()


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource plus how long to wait for another process's lock, and the
    check that the warehouse belongs to the run's instance (at the resource's set-up, so
    before any step of the run writes)."""

    lock_timeout_seconds: float = warehouse.DEFAULT_LOCK_TIMEOUT_SECONDS

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.instance is not None:  # once per run (per step process), never cached across runs
            claim_warehouse(context.instance, self.database, self.lock_timeout_seconds)
            _ENSURED.add(self.database)
            if context.run is not None:
                record_host(context.instance, context.run.run_id)  # so a dead run process is found


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
