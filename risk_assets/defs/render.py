"""Rendering to Dagster, in one place: verdicts into check results, plain metadata into
metadata values, missing inputs into clear failures.

Bodies (assets, checks) return plain Python — a :class:`~risk_assets.checks.Verdict`,
a dict of metadata — and know nothing of Dagster's types; the factories call these."""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import contextmanager

import dagster as dg
import numpy as np
import pandas as pd

from risk_assets.checks import Refused, Verdict
from risk_assets.core.features.spec import SPEC_VERSION
from risk_assets.settings import Settings
from risk_assets.store.warehouse import NotMaterialised

TABLE_ROWS = 25
"""Rows of an offender table kept in a result (the guard's full table stays in memory)."""

RESERVED = (
    "summary",
    "thresholds",
    "spec_version",
    "settings_version",
    "mapping_version",
    "model_version",
    "override_by",
    "override_reason",
    "evaluated_in",
)
"""Metadata keys every check result may carry besides a verdict's own figures."""

_TYPES = {"i": "int", "u": "int", "f": "float", "b": "bool"}


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def table(frame: pd.DataFrame, max_rows: int = TABLE_ROWS) -> dg.MetadataValue:
    """A frame as a structured table (typed columns, first ``max_rows`` rows): the UI
    shows it as a table and readers get records back, never markdown."""
    shown = frame.head(max_rows)
    schema = dg.TableSchema(
        columns=[dg.TableColumn(str(c), _TYPES.get(shown[c].dtype.kind, "string")) for c in shown.columns]
    )
    records = [dg.TableRecord({str(k): _cell(v) for k, v in row.items()}) for row in shown.to_dict(orient="records")]
    return dg.MetadataValue.table(records=records, schema=schema)


def value(v) -> object:
    """One plain metadata value: frames as tables, mappings and lists as JSON."""
    if isinstance(v, pd.DataFrame):
        return table(v)
    if isinstance(v, (dict, list, tuple)):
        return dg.MetadataValue.json(_jsonable(v))
    if isinstance(v, np.generic):
        return v.item()
    return v


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return _cell(v) if not isinstance(v, (dict, list)) else v


def metadata(values: Mapping[str, object]) -> dict[str, object]:
    return {k: value(v) for k, v in values.items()}


def check_metadata(verdict: Verdict, settings: Settings, versions: Mapping[str, str] | None = None) -> dict:
    """Figures as their own entries (numbers plot night by night), ``thresholds`` as one
    JSON entry, structured data as JSON, tables as tables, then the versions and any
    deliberate override."""
    keys = [*verdict.figures, *verdict.data, *verdict.tables]
    clash = {k for k in keys if keys.count(k) > 1 or k in RESERVED}
    if clash:
        raise ValueError(f"verdict keys {sorted(clash)} are used twice or reserved")
    out = {
        "summary": verdict.summary,
        **{k: value(v) for k, v in verdict.figures.items() if v is not None},
        "thresholds": dg.MetadataValue.json(_jsonable(verdict.thresholds)),
    }
    out |= {k: value(v) for k, v in verdict.data.items()}
    out |= {k: table(v) for k, v in verdict.tables.items()}
    out |= {**(versions or {}), "spec_version": SPEC_VERSION, "settings_version": settings.version()}
    if settings.override.by:
        out |= {"override_by": settings.override.by, "override_reason": settings.override.reason}
    return out


def check_result(
    verdict: Verdict,
    settings: Settings,
    check_name: str | None = None,
    asset_key: str | None = None,
    versions: Mapping[str, str] | None = None,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity[verdict.severity],
        description=verdict.summary,
        metadata=check_metadata(verdict, settings, versions),
    )


EVALUATED_IN = "evaluated_in"
"""Where a raw check's verdict was computed: with the raw load (recorded once, shown by the
check step of the same run) or by the check step itself."""


def stored_result(verdict: Verdict, settings: Settings, extras: Mapping[str, str]) -> str:
    """A check result as the raw load records it (``raw_verdicts.result``): Dagster's own
    JSON serialization of the verdict, severity and rendered metadata — never pickle."""
    return dg.serialize_value(
        {
            "passed": bool(verdict.passed),
            "severity": verdict.severity,
            "description": verdict.summary,
            "metadata": check_metadata(verdict, settings, extras),
        }
    )


def recorded_check_result(
    stored: str, check_name: str, asset_key: str, versions: Mapping[str, str]
) -> dg.AssetCheckResult:
    """The check result the raw load of this run recorded (:func:`stored_result`), with the
    versions serving uses now (the loader's own extras win) and where it was evaluated."""
    result = dg.deserialize_value(stored, dict)
    metadata = {**versions, **result["metadata"], EVALUATED_IN: "with the raw load of this run"}
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=result["passed"],
        severity=dg.AssetCheckSeverity[result["severity"]],
        description=result["description"],
        metadata=metadata,
    )


@contextmanager
def clear_failure():
    """Inside a step: an input that is not materialised, or a refusal, fails the step
    with its sentence (not a stack trace)."""
    try:
        yield
    except (NotMaterialised, Refused) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
