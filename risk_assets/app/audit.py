"""The audit trail: every check execution recorded in the Dagster instance, as rows.

A check whose run crashed before it produced a result stays PLANNED in Dagster's
history; here it reads "DID NOT EVALUATE", never "pending" — or "SKIPPED (blocked)" when a
blocking check of its run stopped it on purpose."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from risk_assets.defs.render import RESERVED
from risk_assets.defs.sensors import FAILED, PLANNED, SUCCEEDED, _blocked, record_status

AUDIT_COLUMNS = [
    "partition",
    "asset",
    "check",
    "status",
    "severity",
    "blocking",
    "summary",
    "figures",
    "thresholds",
    "override",
    "run_id",
    "time",
    "spec_version",
    "mapping_version",
    "model_version",
    "settings_version",
]
_LIMIT = 100_000


def _status(instance: dg.DagsterInstance, record) -> str:
    status = record_status(record)
    if status == SUCCEEDED:
        return "PASSED"
    if status == FAILED:
        return "FAILED"
    if status == PLANNED:
        run = instance.get_run_by_id(record.run_id)
        if run is not None and not run.is_finished:
            return "RUNNING"
        # a blocking check stopped the run before this one: skipped by design, not a crash
        return "SKIPPED (blocked)" if _blocked(instance, record.run_id) else "DID NOT EVALUATE"
    return status


def _plain(value) -> object:
    value = value.value if hasattr(value, "value") else value
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return None  # tables and markdown stay in the UI


def audit_rows(instance: dg.DagsterInstance, checks: dict[dg.AssetCheckKey, bool]) -> pd.DataFrame:
    """``checks``: every check key of the code location and whether it blocks."""
    rows = []
    for key, blocking in checks.items():
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=_LIMIT):
            evaluation = None
            if record.event is not None and record.event.dagster_event is not None:
                data = record.event.dagster_event.event_specific_data
                evaluation = data if hasattr(data, "passed") else None
            raw = dict(evaluation.metadata) if evaluation else {}
            thresholds = raw.pop("thresholds", None)
            # figures: the result's scalar entries (tables and JSON data stay in the UI)
            metadata = {k: _plain(v) for k, v in raw.items()}
            metadata = {k: v for k, v in metadata.items() if v is not None}
            versions = {
                v: metadata.get(v) for v in ("spec_version", "mapping_version", "model_version", "settings_version")
            }
            summary = metadata.get("summary") or (evaluation.description if evaluation else None)
            by, why = metadata.get("override_by"), metadata.get("override_reason")
            figures = {k: v for k, v in metadata.items() if k not in RESERVED}
            rows.append(
                {
                    "partition": record.partition or "-",
                    "asset": key.asset_key.to_user_string(),
                    "check": key.name,
                    "status": _status(instance, record),
                    "severity": evaluation.severity.value if evaluation else "-",
                    "blocking": blocking,
                    "summary": summary or "-",
                    "figures": dict(sorted(figures.items())),
                    "thresholds": dict(sorted((thresholds.value if thresholds is not None else {}).items())),
                    "override": f"{by}: {why}" if by else "-",
                    "run_id": record.run_id,
                    "time": dt.datetime.fromtimestamp(record.create_timestamp, dt.UTC).isoformat(timespec="seconds"),
                    **versions,
                }
            )
    frame = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    # a result that never evaluated carries no metadata: it was judged under its run's versions
    for column in ("spec_version", "mapping_version", "model_version", "settings_version"):
        frame[column] = frame[column].fillna(frame.groupby("run_id")[column].transform("first"))
    # stable: by partition, then when the result was recorded (a re-run follows the attempt it replaced)
    return frame.sort_values(["partition", "time", "asset", "check"], kind="stable").reset_index(drop=True)


def filtered(frame: pd.DataFrame, start: str | None, end: str | None, check: str | None) -> pd.DataFrame:
    keep = pd.Series(True, index=frame.index)
    partitioned = frame["partition"] != "-"
    if start:
        keep &= ~partitioned | (frame["partition"] >= start)
    if end:
        keep &= ~partitioned | (frame["partition"] <= end)
    if check:
        keep &= (frame["check"] == check) | (frame["asset"] + "." + frame["check"] == check)
    return frame[keep]


def check_keys(defs: dg.Definitions) -> dict[dg.AssetCheckKey, bool]:
    graph = defs.resolve_asset_graph()
    return {
        key: graph.get_check_spec(key).blocking
        for key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())
    }
