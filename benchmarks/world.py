"""A trained embedded world in a folder, for the benchmark scripts."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from risk_assets.defs.factory import HISTORY_JOB, REFERENCE_JOB, TRAINING_JOB, build_definitions
from risk_assets.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
FIRST_NIGHT = dt.date(2025, 8, 1)
TRAINING = {"start": "2025-04-01", "end": "2025-05-31", "asof_step_days": 8,
            "validation_start": "2025-07-01", "validation_end": "2025-07-15", "validation_step_days": 3,
            "num_boost_round": 100}


def settings_for(folder: Path, customers: int) -> Settings:
    return Settings().with_overrides(
        warehouse={"duckdb_path": str(folder / "warehouse.duckdb")},
        scoring={"models_dir": str(folder / "models")},
        world={"n_customers": customers},
        training=TRAINING,
    )


def build(settings: Settings, instance: dg.DagsterInstance, say: Callable[[str], None] = print) -> dict[str, float]:
    """Customers, raw history up to the night before FIRST_NIGHT, mapping and model."""
    defs = build_definitions(settings)
    timings = {}
    for label, job, tags in (
        ("reference", REFERENCE_JOB, {}),
        ("raw_history", HISTORY_JOB, {ASSET_PARTITION_RANGE_START_TAG: "2025-01-01",
                                      ASSET_PARTITION_RANGE_END_TAG: (FIRST_NIGHT - dt.timedelta(days=1)).isoformat()}),
        ("training", TRAINING_JOB, {}),
    ):
        t0 = time.perf_counter()
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=QUIET, tags=tags)
        timings[label] = round(time.perf_counter() - t0, 2)
        say(f"{label}: {timings[label]} s ({'ok' if result.success else 'FAILED'})")
    return timings
