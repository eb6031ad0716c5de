"""What a load read and what arrived after it: the landing folder's files
(``landing_files``) and last night's rows that came after it was served (``late_arrivals``).

The late-arrival check re-reads yesterday's partition from the source with tonight's
cut-off on the driver (the source is read where it is: a landing folder's files, or the
embedded world); the rows it finds are compared with what the engine stored by one query.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.store import warehouse

# --------------------------------------------------------------------------- statistics
LATE = f"""
    WITH stored AS (
        SELECT transaction_id AS id FROM {warehouse.table("raw_transactions")} WHERE partition = CAST($day AS DATE)
        UNION ALL
        SELECT record_key AS id FROM {warehouse.table("rejected_transactions")} WHERE partition = CAST($day AS DATE)),
    late AS (SELECT n.customer_id FROM _now n
             WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.id IS NOT DISTINCT FROM n.transaction_id)),
    scored AS (SELECT customer_id FROM {warehouse.table("risk_scores")} WHERE partition = CAST($day AS DATE))
    SELECT (SELECT count(*) FROM _now) AS rows_now, (SELECT count(*) FROM late) AS late_rows,
           (SELECT count(DISTINCT customer_id) FROM late WHERE customer_id IN (SELECT customer_id FROM scored))
               AS affected,
           (SELECT count(*) FROM scored) AS scored"""
"""Rows re-read now (``_now``: transaction and customer id) that the engine stored for the
day under no id, accepted or rejected; the scored customers among them."""


def now_frame(rows_now: pd.DataFrame) -> pd.DataFrame:
    """The re-read rows' ids as the contract keys them (text, else missing)."""

    def text(v):
        return v if isinstance(v, str) else None

    return pd.DataFrame(
        {
            "transaction_id": rows_now["transaction_id"].map(text).astype(object),
            "customer_id": rows_now["customer_id"].map(text).astype(object),
        }
    )


def late_counts(rows_now: pd.DataFrame, stored_ids: set, scored: set[str]) -> dict[str, int]:
    """The row-level definition of :data:`LATE`: ``rows_now`` as :func:`now_frame` gives it,
    the day's stored ids (accepted and rejected keys) and scored customers."""
    late = rows_now[~rows_now["transaction_id"].isin(stored_ids)]
    return {
        "rows_now": len(rows_now),
        "late_rows": len(late),
        "affected": len(set(late["customer_id"].dropna()) & scored),
        "scored": len(scored),
    }


# --------------------------------------------------------------------------- guards
def landing_files(files: pd.DataFrame) -> Verdict:
    """What a day's load read from the landing folder and what it did not: data files with
    their rows, skipped files (markers, checksums, hidden files) listed with the reason,
    and stray entries of the landing folder (malformed partition names, folders that fit
    no partition), which fail the check (WARN) with their names until they are cleaned up.
    ``files``: ``path, action, rows, reason`` from the load ledger."""
    read = files[files["action"] == "read"]
    skipped = files[files["action"] == "skipped"]
    stray = files[files["action"] == "stray"]
    figures = {
        "files_read": len(read),
        "rows_read": int(read["rows"].fillna(0).sum()),
        "files_skipped": len(skipped),
        "stray_entries": len(stray),
    }
    head = f"{len(read)} file(s) read ({figures['rows_read']} rows)"
    if len(skipped):
        head += f"; {len(skipped)} skipped: " + ", ".join(
            f"{r.path} ({r.reason})" for r in skipped.head(5).itertuples()
        )
    if len(stray):
        return Verdict(
            False,
            "WARN",
            f"{len(stray)} entr(y/ies) of the landing folder fit no partition and were not "
            "read: " + "; ".join(f"{r.path} — {r.reason}" for r in stray.head(5).itertuples()) + f" ({head})",
            figures,
            tables={"stray": stray, "skipped": skipped},
        )
    return Verdict(True, "WARN", head, figures, tables={"skipped": skipped})


def late_arrivals(
    reconciled: dt.date, loaded: bool, rows_now: int, late_rows: int, affected: int, scored: int, cutoff: str | None
) -> Verdict:
    """Last night re-read with tonight's cut-off: ``late_rows`` of the ``rows_now`` re-read
    were never stored (they arrived after it was served), and ``affected`` of the ``scored``
    customers they belong to were scored on incomplete windows (WARN)."""
    if not loaded:
        return Verdict(
            True,
            "WARN",
            f"nothing to reconcile: {reconciled} was never loaded",
            {"late_rows": 0, "reconciled_partition": str(reconciled)},
        )
    share = late_rows / max(rows_now, 1)
    return Verdict(
        passed=late_rows == 0,
        severity="WARN",
        summary=(
            f"{late_rows} row(s) of {reconciled} arrived after it was served ({share:.2%}); "
            f"{affected} scored customer(s) affected — re-run {reconciled} to refresh"
            if late_rows
            else f"{reconciled}: no late rows by tonight's cut-off"
        ),
        figures={
            "reconciled_partition": str(reconciled),
            "late_rows": late_rows,
            "late_share": share,
            "affected_customers": affected,
            "affected_share": affected / scored if scored else 0.0,
            "cutoff": cutoff or "(all arrived)",
        },
    )


# --------------------------------------------------------------------------- loaders
def load_files(step: Step) -> Inputs:
    if warehouse.count(step.conn, "raw_loads", step.night.day) == 0:
        raise warehouse.NotMaterialised(f"raw_transactions[{step.night.key}] was never loaded")
    return Inputs({"files": warehouse.load_files(step.conn, step.night.day)})


def load_late_rows(step: Step) -> Inputs:
    previous = step.night.previous.day
    ledger = warehouse.loads(step.conn, previous, step.night.day)
    read_at = dict(zip(ledger["partition"], ledger["read_at"]))
    loaded = previous in read_at
    cutoff = read_at.get(step.night.day)
    cutoff = cutoff if isinstance(cutoff, str) and cutoff else None
    counts = {"rows_now": 0, "late_rows": 0, "affected": 0, "scored": 0}
    if loaded:
        rows_now = step.source.transactions(previous, read_at=pd.Timestamp(cutoff) if cutoff else None)
        found = step.statistic(LATE, {"day": previous}, frames={"_now": now_frame(rows_now)})
        counts = {k: int(found[k].iloc[0]) for k in counts}
    return Inputs({"reconciled": previous, "loaded": loaded, "cutoff": cutoff, **counts})
