"""Raw-layer guards: rows accounted for, rejections, late data, and a complete look-back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from risk_assets.checks import Verdict


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


def reason_kinds(reasons: pd.DataFrame) -> pd.DataFrame:
    """Rejections grouped by kind of reason (``duplicate transaction_id``, ``amount: must
    be > 0`` …) with an example record, not one group per distinct message: a row's
    reasons are split, and the details that differ per row (which file and row a
    duplicate first appeared at, which partition holds it) are left out of the kind."""
    if reasons.empty:
        return pd.DataFrame(columns=["kind", "rows", "example"])
    parts = reasons.assign(kind=reasons["reasons"].str.split("; ")).explode("kind")
    parts["kind"] = (parts["kind"].str.replace(r"\s*\(first at [^)]*\)", "", regex=True)
                     .str.replace(r" from the copy at .*$", " from another copy", regex=True)
                     .str.replace(r"in partition \S+( \(from .*\))?$", "in another partition", regex=True))
    return (parts.groupby("kind").agg(rows=("rows", "sum"), example=("example", "first")).reset_index()
            .sort_values(["rows", "kind"], ascending=[False, True], ignore_index=True))


def rejection_rate(accepted: int, reasons: pd.DataFrame, max_rejected_share: float) -> Verdict:
    """Share of received rows the contract rejected. ``reasons``: ``reasons, rows, example``
    per distinct reason text; the table groups them by kind."""
    rejected = int(reasons["rows"].sum()) if len(reasons) else 0
    total = accepted + rejected
    share = rejected / total if total else 0.0
    return Verdict(
        passed=share <= max_rejected_share, severity="ERROR",
        summary=f"{rejected} of {total} rows rejected ({share:.2%}, threshold {max_rejected_share:.2%})",
        figures={"accepted": accepted, "rejected": rejected, "rejected_share": share},
        thresholds={"max_rejected_share": max_rejected_share},
        tables={"reasons": reason_kinds(reasons)},
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


MIN_CATEGORY_ROWS = 5
"""Rows a category needs tonight to take part in the amount-scale comparison."""
MIN_REFERENCE_DAYS = 5
"""Earlier days a category needs before its level is known."""


def amount_scale(night: pd.DataFrame, history: pd.DataFrame, max_amount_factor: float) -> Verdict:
    """Are tonight's amounts on the same scale as the recent days'? Per category, the
    night's mean log-amount against the median of its recent daily means; the median of
    those differences over categories is the night's factor. A unit change (cents sent as
    euros, ×100) moves every category at once and states its factor; a category's own mix
    moving does not.

    ``night``: ``category, rows, mean_log`` (mean ln amount_cents) of tonight's rows;
    ``history``: the same per ``partition`` of earlier days."""
    tonight = night.set_index("category")[["rows", "mean_log"]]
    tonight = tonight[tonight["rows"] >= MIN_CATEGORY_ROWS]
    usable = history[history["rows"] >= 3]
    reference = usable.groupby("category")["mean_log"].median()
    days = usable.groupby("category")["partition"].nunique()
    reference = reference[days.reindex(reference.index).fillna(0) >= MIN_REFERENCE_DAYS]
    common = tonight.index.intersection(reference.index)
    table = pd.DataFrame({"category": common, "rows": tonight.loc[common, "rows"].to_numpy(),
                          "factor": np.exp(tonight.loc[common, "mean_log"] - reference.loc[common]).to_numpy()})
    figures = {"categories_compared": len(common), "history_days": int(history["partition"].nunique())}
    thresholds = {"max_amount_factor": max_amount_factor, "min_category_rows": MIN_CATEGORY_ROWS}
    if table.empty:
        return Verdict(True, "ERROR", "no category with enough rows tonight and history to compare amounts with",
                       figures | {"factor": None}, thresholds)
    factor = float(np.exp(np.median(np.log(table["factor"]))))
    figures["factor"] = factor
    off = factor > max_amount_factor or factor < 1 / max_amount_factor
    words = (f"{factor:.3g}× larger" if factor >= 1 else f"{1 / factor:.3g}× smaller")
    return Verdict(
        passed=not off, severity="ERROR",
        summary=(f"amounts look {words} than in the recent days (median over {len(table)} categories; "
                 f"a unit change?)" if off else f"amounts on the recent scale (factor {factor:.2f} over "
                 f"{len(table)} categories)"),
        figures=figures, thresholds=thresholds, tables={"categories": table.sort_values("rows", ascending=False)},
    )



def lookback_health(expected: list[dt.date], loaded: Iterable[dt.date], verdicts: pd.DataFrame,
                    accepted: dict[dt.date, str]) -> Verdict:
    """Every raw partition of the night's look-back was loaded *and* passed the raw
    layer's blocking checks on its latest load (``verdicts``: ``partition, check_name, passed,
    summary``; a day without verdicts has not been judged). A day that failed is
    quarantined: the nights whose windows read it are blocked, naming the day and the
    check, until it is re-loaded and passes, or ``accepted`` (an override with a name and
    a reason) takes it as it is."""
    loaded = set(loaded)
    tonight = expected[-1]
    missing = [d for d in expected if d not in loaded]
    earlier = [d for d in expected[:-1] if d in loaded]
    failed = verdicts[~verdicts["passed"] & verdicts["partition"].isin(earlier)]
    judged = set(verdicts["partition"])
    unjudged = [d for d in earlier if d not in judged]
    sick = {d: list(g["check_name"] + ": " + g["summary"]) for d, g in failed.groupby("partition")}
    waived = {d: accepted[d] for d in sorted(sick) if d in accepted}
    quarantined = {d: why for d, why in sorted(sick.items()) if d not in accepted}
    table = pd.DataFrame([{"partition": str(d), "problem": "; ".join(why), "accepted_by_override": d in waived}
                          for d, why in sorted(sick.items())] + [
        {"partition": str(d), "problem": "never loaded", "accepted_by_override": False} for d in missing] + [
        {"partition": str(d), "problem": "loaded but never judged", "accepted_by_override": False} for d in unjudged])
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(expected)} look-back day(s) never loaded: "
                        + ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else ""))
    if quarantined:
        problems.append(f"{len(quarantined)} quarantined day(s) in the look-back: " + "; ".join(
            f"{d} ({', '.join(why)})" for d, why in list(quarantined.items())[:5]))
    if unjudged:
        problems.append(f"{len(unjudged)} day(s) loaded but never judged: " + ", ".join(map(str, unjudged[:5])))
    return Verdict(
        passed=not problems, severity="ERROR",
        summary="; ".join(problems) if problems else (
            f"all {len(expected)} look-back days loaded and healthy ({expected[0]} .. {tonight})"
            + (f"; {len(waived)} accepted by override" if waived else "")),
        figures={"lookback_days": len(expected), "missing_days": len(missing),
                 "first_missing": str(missing[0]) if missing else "-", "quarantined_days": len(quarantined),
                 "first_quarantined": str(next(iter(quarantined))) if quarantined else "-",
                 "accepted_days": len(waived), "unjudged_days": len(unjudged)},
        tables={"unhealthy_days": table},
    )


def conflicting_duplicates(conflicts: pd.DataFrame, what: str = "transaction_id") -> Verdict:
    """Copies of one key whose values differ — within a file, across files or against a
    row stored in another partition — were all rejected (no tie-break by file order).
    They fail the check, blocking, with the ids, files and what differs.
    ``conflicts``: ``record_key, source_file, source_row, reasons``."""
    ids = conflicts["record_key"].dropna().unique()
    files = sorted(set(conflicts["source_file"].dropna()))
    return Verdict(
        passed=conflicts.empty, severity="ERROR",
        summary=(f"no conflicting duplicates of {what}" if conflicts.empty else
                 f"{len(ids)} {what}(s) arrived more than once with different values ({len(conflicts)} copies, "
                 f"all rejected) in {', '.join(files[:3])}{' …' if len(files) > 3 else ''}: "
                 f"{', '.join(map(str, ids[:5]))}{' …' if len(ids) > 5 else ''} — the source must say which "
                 "copy is right; fix it and re-load"),
        figures={"conflicting_ids": len(ids), "rejected_copies": len(conflicts)},
        data={"ids": [str(i) for i in ids[:100]]},
        tables={"conflicts": conflicts.head(50)},
    )


def landing_files(files: pd.DataFrame) -> Verdict:
    """What a day's load read from the landing folder and what it did not: data files with
    their rows, skipped files (markers, checksums, hidden files) listed with the reason,
    and stray entries of the landing folder (malformed partition names, folders that fit
    no partition), which fail the check (WARN) with their names until they are cleaned up.
    ``files``: ``path, action, rows, reason`` from the load ledger."""
    read = files[files["action"] == "read"]
    skipped = files[files["action"] == "skipped"]
    stray = files[files["action"] == "stray"]
    figures = {"files_read": len(read), "rows_read": int(read["rows"].fillna(0).sum()),
               "files_skipped": len(skipped), "stray_entries": len(stray)}
    head = f"{len(read)} file(s) read ({figures['rows_read']} rows)"
    if len(skipped):
        head += f"; {len(skipped)} skipped: " + ", ".join(f"{r.path} ({r.reason})" for r in skipped.head(5).itertuples())
    if len(stray):
        return Verdict(False, "WARN", f"{len(stray)} entr(y/ies) of the landing folder fit no partition and were not "
                       "read: " + "; ".join(f"{r.path} — {r.reason}" for r in stray.head(5).itertuples())
                       + f" ({head})", figures, tables={"stray": stray, "skipped": skipped})
    return Verdict(True, "WARN", head, figures, tables={"skipped": skipped})
