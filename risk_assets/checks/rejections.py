"""What the landing contract rejected: the share of rejected rows (``rejection_rate``) and
copies of one id that disagree (``conflicting_duplicates``, on transactions and customers)."""

from __future__ import annotations

import pandas as pd

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.checks.reconcile import stored_rows
from risk_assets.core.contract import CONFLICT
from risk_assets.store import warehouse

# --------------------------------------------------------------------------- statistics
REASONS = f"""
    SELECT reasons, count(*) AS rows, min(record_key) AS example FROM {warehouse.table("rejected_transactions")}
    WHERE partition = CAST($day AS DATE) GROUP BY reasons ORDER BY rows DESC, reasons"""
"""Rejected rows per distinct reason text, with an example id."""

CONFLICTS = f"""
    SELECT record_key, source_file, source_row, reasons FROM {warehouse.table("rejected_transactions")}
    WHERE partition = CAST($day AS DATE) AND strpos(reasons, $conflict) > 0
    ORDER BY record_key, source_file, source_row"""
"""The day's rejected copies of conflicting duplicates (few: one row per copy)."""


def reasons_of(rejected: pd.DataFrame) -> pd.DataFrame:
    """The row-level definition of :data:`REASONS` over the day's rejected rows."""
    out = (
        rejected.groupby("reasons").agg(rows=("reasons", "size"), example=("record_key", "min")).reset_index()
        if len(rejected)
        else pd.DataFrame(columns=["reasons", "rows", "example"])
    )
    return out.sort_values(["rows", "reasons"], ascending=[False, True], ignore_index=True)


# --------------------------------------------------------------------------- guards
def reason_kinds(reasons: pd.DataFrame) -> pd.DataFrame:
    """Rejections grouped by kind of reason (``duplicate transaction_id``, ``amount: must
    be > 0`` …) with an example record, not one group per distinct message: a row's
    reasons are split, and the details that differ per row (which file and row a
    duplicate first appeared at, which partition holds it) are left out of the kind."""
    if reasons.empty:
        return pd.DataFrame(columns=["kind", "rows", "example"])
    parts = reasons.assign(kind=reasons["reasons"].str.split("; ")).explode("kind")
    parts["kind"] = (
        parts["kind"]
        .str.replace(r"\s*\(first at [^)]*\)", "", regex=True)
        .str.replace(r" from the copy at .*$", " from another copy", regex=True)
        .str.replace(r"in partition \S+( \(from .*\))?$", "in another partition", regex=True)
    )
    return (
        parts.groupby("kind")
        .agg(rows=("rows", "sum"), example=("example", "first"))
        .reset_index()
        .sort_values(["rows", "kind"], ascending=[False, True], ignore_index=True)
    )


def rejection_rate(accepted: int, reasons: pd.DataFrame, max_rejected_share: float) -> Verdict:
    """Share of received rows the contract rejected. ``reasons``: ``reasons, rows, example``
    per distinct reason text; the table groups them by kind."""
    rejected = int(reasons["rows"].sum()) if len(reasons) else 0
    total = accepted + rejected
    share = rejected / total if total else 0.0
    return Verdict(
        passed=share <= max_rejected_share,
        severity="ERROR",
        summary=f"{rejected} of {total} rows rejected ({share:.2%}, threshold {max_rejected_share:.2%})",
        figures={"accepted": accepted, "rejected": rejected, "rejected_share": share},
        thresholds={"max_rejected_share": max_rejected_share},
        tables={"reasons": reason_kinds(reasons)},
    )


def conflicting_duplicates(conflicts: pd.DataFrame, what: str = "transaction_id") -> Verdict:
    """Copies of one key whose values differ — within a file, across files or against a
    row stored in another partition — were all rejected (no tie-break by file order).
    They fail the check, blocking, with the ids, files and what differs.
    ``conflicts``: ``record_key, source_file, source_row, reasons``."""
    ids = conflicts["record_key"].dropna().unique()
    files = sorted(set(conflicts["source_file"].dropna()))
    return Verdict(
        passed=conflicts.empty,
        severity="ERROR",
        summary=(
            f"no conflicting duplicates of {what}"
            if conflicts.empty
            else f"{len(ids)} {what}(s) arrived more than once with different values ({len(conflicts)} copies, "
            f"all rejected) in {', '.join(files[:3])}{' …' if len(files) > 3 else ''}: "
            f"{', '.join(map(str, ids[:5]))}{' …' if len(ids) > 5 else ''} — the source must say which "
            "copy is right; fix it and re-load"
        ),
        figures={"conflicting_ids": len(ids), "rejected_copies": len(conflicts)},
        data={"ids": [str(i) for i in ids[:100]]},
        tables={"conflicts": conflicts.head(50)},
    )


# --------------------------------------------------------------------------- loaders
def load_rejections(step: Step) -> Inputs:
    accepted, _ = stored_rows(step, step.night.day)
    return Inputs({"accepted": accepted, "reasons": step.statistic(REASONS, {"day": step.night.day})})


def load_conflicts(step: Step) -> Inputs:
    return Inputs({"conflicts": step.statistic(CONFLICTS, {"day": step.night.day, "conflict": CONFLICT})})
