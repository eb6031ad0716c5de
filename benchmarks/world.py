"""A trained embedded world in a folder, for the benchmark scripts."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from risk_assets.core.features.spec import LOOKBACK_DAYS
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import HISTORY_JOB, REFERENCE_JOB, TRAINING_JOB
from risk_assets.defs.jobs import RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG
from risk_assets.defs.jobs import RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG
from risk_assets.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
FIRST_NIGHT = dt.date(2025, 8, 1)
"""The first night after the raw history (the default world's incidents start in August 2026)."""


def training_near(night: dt.date, world_start: dt.date = dt.date(2025, 1, 1)) -> dict:
    """A small model trained shortly before ``night`` (up to nine as-of days, 100 rounds),
    with validation days whose 30-day labels are in the world: enough to score with, cheap
    to build at 300k customers. The production spine is measured separately.

    No as-of day earlier than a full 90-day look-back after the world's start: a truncated
    look-back makes early training days look different from every later night (fewer
    active customers, shorter gaps), which the directional drift monitor rightly flags."""
    end = night - dt.timedelta(days=45)
    start = max(end - dt.timedelta(days=96), world_start + dt.timedelta(days=LOOKBACK_DAYS + 1))
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "asof_step_days": 12,
        "validation_start": (night - dt.timedelta(days=14)).isoformat(),
        "validation_end": (night - dt.timedelta(days=1)).isoformat(),
        "validation_step_days": 3,
        "num_boost_round": 100,
    }


def home(folder: Path) -> str:
    """The Dagster home of a benchmark world: the process that builds it and every process
    that runs its nights open the same instance (a warehouse belongs to one instance)."""
    path = Path(folder) / "dagster_home"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def settings_for(folder: Path, customers: int, night: dt.date = FIRST_NIGHT) -> Settings:
    return Settings().with_overrides(
        warehouse={"duckdb_path": str(folder / "warehouse.duckdb")},
        scoring={"models_dir": str(folder / "models")},
        scenario={"world": {"n_customers": customers}},
        training=training_near(night),
    )


def build(
    settings: Settings,
    instance: dg.DagsterInstance,
    say: Callable[[str], None] = print,
    night: dt.date = FIRST_NIGHT,
    train: bool = True,
) -> dict[str, float]:
    """Customers, raw history from the first partition up to the day before ``night``,
    and (``train``) mapping and model."""
    defs = build_definitions(settings)
    timings = {}
    for label, job, tags in (
        ("reference", REFERENCE_JOB, {}),
        (
            "raw_history",
            HISTORY_JOB,
            {
                ASSET_PARTITION_RANGE_START_TAG: settings.calendar.partitions_start.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: (night - dt.timedelta(days=1)).isoformat(),
            },
        ),
        *([("training", TRAINING_JOB, {})] if train else []),
    ):
        t0 = time.perf_counter()
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=QUIET, tags=tags)
        timings[label] = round(time.perf_counter() - t0, 2)
        say(f"{label}: {timings[label]} s ({'ok' if result.success else 'FAILED'})")
        if not result.success:
            raise RuntimeError(f"building the benchmark world failed in {job}")
    return timings
