"""Shared fixtures: a small embedded world in a temporary warehouse and instance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from risk_assets.defs.factory import NIGHTLY_JOB, REFERENCE_JOB, build_definitions
from risk_assets.settings import Settings

SMALL = {"n_customers": 1500}


def small_settings(tmp_path: Path, **sections: dict) -> Settings:
    world = {**SMALL, **sections.pop("world", {})}
    return Settings().with_overrides(
        warehouse={"duckdb_path": str(tmp_path / "warehouse.duckdb")}, world=world, **sections
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return small_settings(tmp_path)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


def run_reference(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return defs.resolve_job_def(REFERENCE_JOB).execute_in_process(instance=instance)


def run_night(
    settings: Settings,
    instance: dg.DagsterInstance,
    day: dt.date,
    raise_on_error: bool = True,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return defs.resolve_job_def(NIGHTLY_JOB).execute_in_process(
        instance=instance,
        partition_key=day.isoformat(),
        raise_on_error=raise_on_error,
        run_config=run_config,
    )
