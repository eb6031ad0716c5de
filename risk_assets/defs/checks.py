"""The check factory: every row of the catalogue with a loader becomes one partitioned
``@asset_check``; rows evaluated inside their asset become that asset's check specs.

The body of every check is :func:`evaluate` — load, judge, return the verdict — a plain
function that tests call without Dagster. ERROR results of blocking checks stop every
downstream step of the run, so a bad night never reaches ``risk_scores``."""


import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from risk_assets.defs import render
from risk_assets.defs.catalogue import CHECKS, CheckDecl, in_asset
from risk_assets.defs.resources import daily_partitions, night_of, open_warehouse
from risk_assets.guards import Verdict
from risk_assets.night import Night
from risk_assets.queries import registry
from risk_assets.settings import Settings


def evaluate(decl: CheckDecl, conn: duckdb.DuckDBPyConnection, night: Night, settings: Settings) -> tuple[Verdict, dict]:
    """One check on one night (:meth:`CheckDecl.evaluate`): load, judge, return the
    verdict and the extras to record with it."""
    verdict, extras = decl.evaluate(conn, night, settings)
    return verdict, registry.serving_versions(conn) | extras


def _asset_check(decl: CheckDecl, settings: Settings, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(name=decl.name, asset=decl.asset, partitions_def=partitions, blocking=decl.blocking,
                    description=decl.description, additional_deps=list(decl.deps))
    def _check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with render.clear_failure(), open_warehouse(duckdb) as conn:
            verdict, extras = evaluate(decl, conn, night_of(context, settings), settings)
        return render.check_result(verdict, settings, versions=extras)

    return _check


def build_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    partitions = daily_partitions(settings)
    return [_asset_check(decl, settings, partitions) for decl in CHECKS if decl.load is not None]


def check_specs(asset: str, settings: Settings) -> list[dg.AssetCheckSpec]:
    """Specs of the checks ``asset`` evaluates itself (it yields their results)."""
    partitions = daily_partitions(settings)
    return [dg.AssetCheckSpec(d.name, asset=d.asset, blocking=d.blocking, description=d.description,
                              partitions_def=partitions if d.partitioned else None)
            for d in in_asset(asset)]
