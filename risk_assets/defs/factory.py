"""Builds the Definitions for one Settings object (the code location and the tests)."""

from __future__ import annotations

import dagster as dg

from risk_assets.defs.common import duckdb_resource
from risk_assets.defs.raw import build_raw_assets
from risk_assets.settings import Settings

REFERENCE_JOB = "reference_job"
NIGHTLY_JOB = "nightly_job"


def build_definitions(settings: Settings) -> dg.Definitions:
    raw_assets = build_raw_assets(settings)
    reference_job = dg.define_asset_job(
        REFERENCE_JOB,
        selection=dg.AssetSelection.assets("customers", "irregularities"),
        description="Reload customers and irregularity events from the source.",
    )
    nightly_job = dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.assets("raw_transactions", "rejected_transactions"),
        description="One business day: raw layer (grows into features, checks and scores).",
    )
    return dg.Definitions(
        assets=raw_assets,
        jobs=[reference_job, nightly_job],
        resources={"duckdb": duckdb_resource(settings)},
        # DuckDB allows one writing process per file: run every step in-process.
        executor=dg.in_process_executor,
    )
