"""Builds the Definitions for one Settings object (the code location and the tests).

This is where a deployment is chosen, once: the source (the landing folder, or the
embedded world with the scenario's faults) and the engine (``[engine] kind``) become the
``source`` and ``engine`` resources every step receives — the way Dagster's
``project_fully_featured`` picks resources per deployment, so that no asset or check body
asks which one it runs on.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from risk_assets.defs.checks import build_checks
from risk_assets.defs.features import build_feature_assets
from risk_assets.defs.jobs import NIGHTLY_JOB, PERFORMANCE_JOB, REFERENCE_JOB, build_jobs
from risk_assets.defs.model import build_model_assets
from risk_assets.defs.raw import build_raw_assets
from risk_assets.defs.resources import duckdb_resource
from risk_assets.defs.sensors import build_automation
from risk_assets.engines import EngineFactory, engine_factory
from risk_assets.scenario import source as embedded
from risk_assets.scenario.settings import check_faults
from risk_assets.settings import Settings
from risk_assets.sources import LandingSource, Source


@dataclass(frozen=True)
class Deployment:
    """Where the rows come from and where the computations run."""

    source: Source
    engine: EngineFactory


def deployment(settings: Settings) -> Deployment:
    """The configured source and engine (the embedded world injects its faults here)."""
    check_faults(settings)
    engine = engine_factory(settings)
    if settings.source.kind == "embedded":
        return Deployment(*embedded.deployment(settings, engine))
    return Deployment(LandingSource(settings), engine)


def build_definitions(settings: Settings) -> dg.Definitions:
    chosen = deployment(settings)
    assets = build_raw_assets(settings) + build_feature_assets(settings) + build_model_assets(settings)
    # The missed-night alarm: yesterday's risk_scores must exist by the morning deadline.
    # It runs from its own sensor, never inside the nightly job it watches.
    scores = next(a for a in assets if dg.AssetKey("risk_scores") in a.keys)
    freshness = list(
        dg.build_time_partition_freshness_checks(
            assets=[scores],
            deadline_cron=settings.alerts.scores_deadline_cron,
            timezone=settings.calendar.timezone,
            severity=dg.AssetCheckSeverity.ERROR,
        )
    )
    jobs = build_jobs([key for check in freshness for key in check.check_keys])
    schedules, sensors = build_automation(
        settings, jobs[NIGHTLY_JOB], jobs[PERFORMANCE_JOB], freshness, reference_job=jobs[REFERENCE_JOB]
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=[*build_checks(settings), *freshness],
        schedules=schedules,
        sensors=sensors,
        jobs=list(jobs.values()),
        resources={"duckdb": duckdb_resource(settings), "engine": chosen.engine, "source": chosen.source},
        # DuckDB allows one writing process per file: run every step in-process.
        executor=dg.in_process_executor,
    )
