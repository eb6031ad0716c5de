"""Raw-layer guards: rows accounted for, rejections, late data, and a complete look-back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

from risk_assets.guards import Verdict


def rows_reconcile(received: int | None, stored_accepted: int, stored_rejected: int,
                   recorded_accepted: int | None = None, recorded_rejected: int | None = None) -> Verdict:
    """``received = accepted + rejected``: the rows the source handed over against the rows
    stored (and, when the load recorded them, against the recorded split). ``received``
    None: no load was recorded for the partition."""
    figures = {"received": received or 0, "stored_accepted": stored_accepted, "stored_rejected": stored_rejected,
               "unaccounted": (received or 0) - stored_accepted - stored_rejected}
    if received is None:
        return Verdict(False, "ERROR", "no load recorded for this partition", figures)
    recorded = (recorded_accepted + recorded_rejected) if recorded_accepted is not None else received
    passed = received == stored_accepted + stored_rejected == recorded
    return Verdict(
        passed=passed, severity="ERROR",
        summary=(f"received {received} = {stored_accepted} accepted + {stored_rejected} rejected" if passed else
                 f"received {received} but stored {stored_accepted} accepted + {stored_rejected} rejected: rows "
                 "were lost or duplicated between source and warehouse"),
        figures=figures,
    )


def rejection_rate(accepted: int, reasons: pd.DataFrame, max_rejected_share: float) -> Verdict:
    """Share of received rows the contract rejected. ``reasons``: ``reasons, rows``."""
    rejected = int(reasons["rows"].sum()) if len(reasons) else 0
    total = accepted + rejected
    share = rejected / total if total else 0.0
    return Verdict(
        passed=share <= max_rejected_share, severity="ERROR",
        summary=f"{rejected} of {total} rows rejected ({share:.2%}, threshold {max_rejected_share:.2%})",
        figures={"accepted": accepted, "rejected": rejected, "rejected_share": share},
        thresholds={"max_rejected_share": max_rejected_share},
        tables={"reasons": reasons},
    )


def late_arrivals(reconciled: dt.date, loaded: bool, rows_now: pd.DataFrame, stored_ids: set[str],
                  scored: set[str], cutoff: str | None) -> Verdict:
    """Last night re-read with tonight's cut-off: rows that arrived after it was served
    (``rows_now`` minus ``stored_ids``), and the scored customers they belong to (WARN)."""
    if not loaded:
        return Verdict(True, "WARN", f"nothing to reconcile: {reconciled} was never loaded",
                       {"late_rows": 0, "reconciled_partition": str(reconciled)})
    late = rows_now[~rows_now["transaction_id"].isin(stored_ids)]
    affected = set(late["customer_id"]) & scored
    share = len(late) / max(len(rows_now), 1)
    return Verdict(
        passed=late.empty, severity="WARN",
        summary=(f"{len(late)} row(s) of {reconciled} arrived after it was served ({share:.2%}); "
                 f"{len(affected)} scored customer(s) affected — re-run {reconciled} to refresh"
                 if len(late) else f"{reconciled}: no late rows by tonight's cut-off"),
        figures={"reconciled_partition": str(reconciled), "late_rows": len(late), "late_share": share,
                 "affected_customers": len(affected),
                 "affected_share": len(affected) / len(scored) if scored else 0.0,
                 "cutoff": cutoff or "(all arrived)"},
    )


def lookback_complete(expected: list[dt.date], loaded: Iterable[dt.date]) -> Verdict:
    """Every raw partition of the look-back has been loaded (a gap shrinks every window)."""
    loaded = set(loaded)
    missing = [d for d in expected if d not in loaded]
    return Verdict(
        passed=not missing, severity="ERROR",
        summary=(f"{len(missing)} of {len(expected)} look-back day(s) never loaded: "
                 + ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else ""))
        if missing else f"all {len(expected)} look-back days loaded ({expected[0]} .. {expected[-1]})",
        figures={"lookback_days": len(expected), "missing_days": len(missing),
                 "first_missing": str(missing[0]) if missing else "-"},
    )
