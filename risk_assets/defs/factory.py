"""Builds the Definitions for one Settings object (the code location and the tests)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from risk_assets.defs.checks import build_checks
from risk_assets.defs.common import duckdb_resource
from risk_assets.defs.features import build_feature_assets
from risk_assets.defs.model import build_model_assets
from risk_assets.defs.raw import build_raw_assets
from risk_assets.defs.sensors import build_automation
from risk_assets.features.spec import LABEL_HORIZON_DAYS
from risk_assets.settings import Settings

REFERENCE_JOB = "reference_job"
TRAINING_JOB = "training_job"
HISTORY_JOB = "raw_history_job"
PERFORMANCE_JOB = "performance_job"
NIGHTLY_JOB = "nightly_job"


def build_definitions(settings: Settings) -> dg.Definitions:
    assets = build_raw_assets(settings) + build_feature_assets(settings) + build_model_assets(settings)
    # The missed-night alarm: yesterday's risk_scores must exist by the morning deadline.
    # It runs from its own sensor, never inside the nightly job it watches.
    scores = next(a for a in assets if dg.AssetKey("risk_scores") in a.keys)
    freshness = dg.build_time_partition_freshness_checks(
        assets=[scores],
        deadline_cron=settings.alerts.scores_deadline_cron,
        timezone=settings.calendar.timezone,
        severity=dg.AssetCheckSeverity.ERROR,
    )
    freshness_keys = [key for check in freshness for key in check.check_keys]
    reference_job = dg.define_asset_job(
        REFERENCE_JOB,
        selection=dg.AssetSelection.assets("customers", "irregularities"),
        description="Reload customers and irregularity events from the source.",
    )
    nightly_job = dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.assets(
            "raw_transactions", "rejected_transactions", "serving_features",
            "encoded_features", "imputation_log", "risk_scores",
        ) - dg.AssetSelection.checks(*freshness_keys),
        description="One business day: raw layer -> serving features -> encoding -> scores.",
    )
    history_job = dg.define_asset_job(
        HISTORY_JOB,
        selection=dg.AssetSelection.assets("raw_transactions", "rejected_transactions").without_checks(),
        description="Load raw history, one day or a range of days per run (tags "
        "dagster/asset_partition_range_start/end). The nightly checks are per partition and "
        "not part of it; the asset itself fails if a day's rows do not reconcile.",
    )
    training_job = dg.define_asset_job(
        TRAINING_JOB,
        selection=dg.AssetSelection.assets("category_mapping", "training_features", "risk_model", "deployed_model"),
        description="Category mapping, point-in-time training features, the LightGBM model and the "
        "deployment gate.",
    )
    schedules, sensors = build_automation(settings, nightly_job, list(freshness))
    performance_job = dg.define_asset_job(
        PERFORMANCE_JOB,
        selection=dg.AssetSelection.assets("realised_performance"),
        description="Realised performance of a scored night whose 30-day label horizon has passed.",
    )
    @dg.schedule(job=performance_job, cron_schedule="0 6 * * *", name="performance_schedule",
                 execution_timezone=settings.calendar.timezone, default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="Daily at 06:00: the night whose 30-day label horizon has just passed.")
    def performance_schedule(context: dg.ScheduleEvaluationContext):
        night = context.scheduled_execution_time.date() - dt.timedelta(days=LABEL_HORIZON_DAYS + 1)
        if night < settings.calendar.partitions_start:
            return dg.SkipReason(f"{night} is before the first partition")
        return dg.RunRequest(partition_key=night.isoformat(), run_key=night.isoformat())

    schedules.append(performance_schedule)
    return dg.Definitions(
        assets=assets,
        asset_checks=[*build_checks(settings), *freshness],
        schedules=schedules,
        sensors=sensors,
        jobs=[reference_job, history_job, training_job, nightly_job, performance_job],
        resources={"duckdb": duckdb_resource(settings)},
        # DuckDB allows one writing process per file: run every step in-process.
        executor=dg.in_process_executor,
    )
