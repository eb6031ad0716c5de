"""The check factory: the catalogue rows with a loader become Dagster asset checks — one
``@multi_asset_check`` step per asset, so a night pays Dagster's step overhead and a
warehouse connection once per asset instead of once per check; rows evaluated inside
their asset become that asset's check specs.

Each check still records its own result, severity and blocking flag, and a check that
cannot be evaluated (its statistic raises, or an input is missing) yields a failed
result naming the error for that check alone: the other checks of the step still run.
The body of every check is :meth:`CheckDecl.evaluate` — load through a
:class:`~risk_assets.checks.Step`, judge, return the verdict — a plain method that tests
call without Dagster. ERROR results of blocking checks stop every
downstream step of the run, so a bad night never reaches ``risk_scores``."""

from collections.abc import Iterator
from itertools import groupby

import dagster as dg
from dagster_duckdb import DuckDBResource

from risk_assets.checks import CheckDecl, Refused, Step, lookback
from risk_assets.checks.catalogue import CHECKS, in_asset
from risk_assets.defs import render
from risk_assets.defs.resources import daily_partitions, night_of, open_engine
from risk_assets.engines import EngineFactory
from risk_assets.settings import Settings
from risk_assets.sources import Source
from risk_assets.store import registry, warehouse
from risk_assets.store.warehouse import NotMaterialised


def not_evaluated(decl: CheckDecl, exc: BaseException) -> dg.AssetCheckResult:
    """The failed result of a check whose inputs or statistic raised: ERROR, with the
    error named — never a silent pass, and never taking the step's other checks down."""
    known = isinstance(exc, (NotMaterialised, Refused))  # a sentence already: no exception type needed
    summary = f"could not be evaluated: {exc}" if known else f"could not be evaluated: {type(exc).__name__}: {exc}"
    return dg.AssetCheckResult(
        check_name=decl.name,
        asset_key=decl.asset,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=summary,
        metadata={"summary": summary, "error": type(exc).__name__},
    )


def _recorded(decl: CheckDecl, recorded: dict[str, str], versions: dict) -> dg.AssetCheckResult | None:
    """The result the raw load of this run recorded for ``decl`` (None: none, or one that
    cannot be read back — the check is then evaluated here)."""
    if not (decl.quarantines and decl.name in recorded):
        return None
    try:
        return render.recorded_check_result(recorded[decl.name], decl.name, decl.asset, versions)
    except Exception:  # not swallowed: the check step evaluates the check and reports
        return None


def evaluate_step(
    decls: list[CheckDecl], step: Step, recorded: dict[str, str] | None = None
) -> Iterator[dg.AssetCheckResult]:
    """The selected checks of one asset on one night, each isolated from the others
    (they share the step's statistics and model: computed once). A quarantining check the
    raw load of this run already judged (``recorded``: check name -> stored result) is
    shown as recorded, not evaluated again. The blocking verdicts are recorded for the later
    nights' look-back (a day that blocked its night is quarantined)."""
    outcomes = []
    recorded = recorded or {}
    versions = registry.serving_versions(step.conn) if any(d.name in recorded for d in decls) else {}
    for decl in decls:
        shown = _recorded(decl, recorded, versions)
        if shown is not None:
            severity = "ERROR" if shown.severity == dg.AssetCheckSeverity.ERROR else "WARN"
            outcomes.append((decl, shown.passed, severity, shown.description))
            yield shown
            continue
        try:
            verdict, extras = decl.evaluate(step)
        except Exception as exc:
            result = not_evaluated(decl, exc)
            outcomes.append((decl, False, "ERROR", result.description))
            yield result
            continue
        outcomes.append((decl, verdict.passed, verdict.severity, verdict.summary))
        if decl.quarantines:
            extras = extras | {render.EVALUATED_IN: "by this check step"}
        yield render.check_result(verdict, step.settings, check_name=decl.name, asset_key=decl.asset, versions=extras)
    warehouse.record_night_verdicts(step.conn, step.night.day, lookback.night_record(step, outcomes))


def _spec(decl: CheckDecl, partitions: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        decl.name,
        asset=decl.asset,
        blocking=decl.blocking,
        description=decl.description,
        additional_deps=list(decl.deps),
        partitions_def=partitions,
    )


def _asset_checks(
    asset: str, decls: list[CheckDecl], settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
    by_key = {dg.AssetCheckKey(dg.AssetKey(asset), d.name): d for d in decls}

    @dg.multi_asset_check(
        name=f"{asset}_checks",
        specs=[_spec(d, partitions) for d in decls],
        can_subset=True,
        description=f"The nightly checks of {asset}, evaluated in one step.",
    )
    def _checks(
        context: dg.AssetCheckExecutionContext,
        duckdb: DuckDBResource,
        engine: dg.ResourceParam[EngineFactory],
        source: dg.ResourceParam[Source],
    ):
        selected = [d for k, d in by_key.items() if k in context.selected_asset_check_keys]  # catalogue order
        with open_engine(duckdb, engine) as opened:
            step = Step(opened, night_of(context, settings), settings, source, CHECKS)
            recorded = warehouse.raw_results(opened.conn, step.night.day, context.run.run_id, settings.version())
            yield from evaluate_step(selected, step, recorded)

    return _checks


def build_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    partitions = daily_partitions(settings)
    loaded = sorted((d for d in CHECKS if d.load is not None), key=lambda d: d.asset)
    return [
        _asset_checks(asset, list(decls), settings, partitions)
        for asset, decls in groupby(loaded, key=lambda d: d.asset)
    ]


def check_specs(asset: str, settings: Settings) -> list[dg.AssetCheckSpec]:
    """Specs of the checks ``asset`` evaluates itself (it yields their results)."""
    partitions = daily_partitions(settings)
    return [
        dg.AssetCheckSpec(
            d.name,
            asset=d.asset,
            blocking=d.blocking,
            description=d.description,
            partitions_def=partitions if d.partitioned else None,
        )
        for d in in_asset(asset)
    ]
