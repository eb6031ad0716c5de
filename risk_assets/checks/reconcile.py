"""Rows accounted for: ``received = accepted + rejected`` (``rows_reconcile``).

Declared three times in the catalogue: on the customers and irregularities (judged inside
their assets, on what they stored) and on every raw day (from the load ledger and the rows
the engine holds).
"""

from __future__ import annotations

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.store import warehouse

# --------------------------------------------------------------------------- statistic
STORED_ROWS = f"""
    SELECT (SELECT count(*) FROM {warehouse.table("raw_transactions")} WHERE partition = CAST($day AS DATE))
               AS accepted,
           (SELECT count(*) FROM {warehouse.table("rejected_transactions")} WHERE partition = CAST($day AS DATE))
               AS rejected"""
"""Rows stored for the day, accepted and rejected (their row-level definition: ``len``)."""


def stored_rows(q, day) -> tuple[int, int]:
    """(accepted, rejected) rows the engine holds for ``day``."""
    out = q.statistic(STORED_ROWS, {"day": day})
    return int(out["accepted"].iloc[0]), int(out["rejected"].iloc[0])


# --------------------------------------------------------------------------- guard
def rows_reconcile(
    received: int | None,
    stored_accepted: int,
    stored_rejected: int,
    recorded_accepted: int | None = None,
    recorded_rejected: int | None = None,
) -> Verdict:
    """``received = accepted + rejected``: the rows the source handed over against the rows
    stored (and, when the load recorded them, against the recorded split). ``received``
    None: no load was recorded for the partition."""
    figures = {
        "received": received or 0,
        "stored_accepted": stored_accepted,
        "stored_rejected": stored_rejected,
        "unaccounted": (received or 0) - stored_accepted - stored_rejected,
    }
    if received is None:
        return Verdict(False, "ERROR", "no load recorded for this partition", figures)
    recorded = (recorded_accepted + recorded_rejected) if recorded_accepted is not None else received
    passed = received == stored_accepted + stored_rejected == recorded
    return Verdict(
        passed=passed,
        severity="ERROR",
        summary=(
            f"received {received} = {stored_accepted} accepted + {stored_rejected} rejected"
            if passed
            else f"received {received} but stored {stored_accepted} accepted + {stored_rejected} rejected: rows "
            "were lost or duplicated between source and warehouse"
        ),
        figures=figures,
    )


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    ledger = warehouse.loads(step.conn, step.night.day, step.night.day)
    row = ledger.iloc[0] if len(ledger) else None
    accepted, rejected = stored_rows(step, step.night.day)
    return Inputs(
        {
            "received": int(row["received"]) if row is not None else None,
            "stored_accepted": accepted,
            "stored_rejected": rejected,
            "recorded_accepted": int(row["accepted"]) if row is not None else None,
            "recorded_rejected": int(row["rejected"]) if row is not None else None,
        }
    )
