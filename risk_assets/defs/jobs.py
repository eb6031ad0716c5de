"""The jobs, by name. ``raw_history_job`` takes a partition range through Dagster's
documented backfill tags (:data:`RANGE_START_TAG`, :data:`RANGE_END_TAG`)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from risk_assets.store import warehouse

REFERENCE_JOB = "reference_job"
TRAINING_JOB = "training_job"
HISTORY_JOB = "raw_history_job"
PERFORMANCE_JOB = "performance_job"
NIGHTLY_JOB = "nightly_job"

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
"""Run tags that make one run cover a range of partitions (Dagster's single-run backfills)."""

WAREHOUSE_TAG = "risk_assets/warehouse"
"""On every job: the DuckDB warehouse has one writer at a time, so a run queue limits runs
with this tag to one (``deploy/postgres/dagster.yaml``) instead of letting them wait on the
file lock."""
_TAGS = {WAREHOUSE_TAG: "duckdb"}


def range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}


def build_jobs(freshness_keys: list[dg.AssetCheckKey]) -> dict[str, dg.UnresolvedAssetJobDefinition]:
    return {
        REFERENCE_JOB: dg.define_asset_job(
            REFERENCE_JOB,
            tags=_TAGS,
            selection=dg.AssetSelection.assets("customers", "irregularities"),
            description="Reload customers and irregularity events from the source.",
        ),
        HISTORY_JOB: dg.define_asset_job(
            HISTORY_JOB,
            tags=_TAGS,
            selection=dg.AssetSelection.assets("raw_transactions", "rejected_transactions").without_checks(),
            description="Load raw history, one day or a range of days per run (tags "
            f"{RANGE_START_TAG}/{RANGE_END_TAG.rsplit('_', 1)[-1]}). The nightly checks are per partition and "
            "not part of it; the asset itself fails if a day's rows do not reconcile.",
        ),
        TRAINING_JOB: dg.define_asset_job(
            TRAINING_JOB,
            tags=_TAGS,
            selection=dg.AssetSelection.assets("category_mapping", "training_features", "risk_model", "deployed_model"),
            description="Category mapping, point-in-time training features, the LightGBM model and the "
            "deployment gate.",
        ),
        NIGHTLY_JOB: dg.define_asset_job(
            NIGHTLY_JOB,
            tags=_TAGS,
            # the nightly assets are the per-night tables, one asset each
            selection=dg.AssetSelection.assets(*warehouse.PER_NIGHT) - dg.AssetSelection.checks(*freshness_keys),
            description="One business day: raw layer -> serving features -> encoding -> scores.",
        ),
        PERFORMANCE_JOB: dg.define_asset_job(
            PERFORMANCE_JOB,
            tags=_TAGS,
            selection=dg.AssetSelection.assets("realised_performance"),
            description="Realised performance of a scored night whose 30-day label horizon has passed.",
        ),
    }
