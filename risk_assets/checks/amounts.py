"""Amounts on the recent scale (``amount_scale``): a unit change moves every category's
amounts by one factor, which the result states. And amounts that pile up at one value
(``amount_pileup``): a source that clips every amount at a field's limit, or fills a lost
amount with a constant, moves no median — the tail is gone and one value holds it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from risk_assets.checks import Inputs, Step, Verdict, day_frame, per_partition
from risk_assets.store import warehouse

HISTORY_DAYS = 28
"""Days of history ``amount_scale`` takes each category's level from."""

# --------------------------------------------------------------------------- statistic
LEVELS = per_partition(f"""
    SELECT partition, category, count(*) AS rows, avg(ln(amount_cents)) AS mean_log
    FROM {warehouse.table("raw_transactions")}
    WHERE partition BETWEEN CAST($first AS DATE) AND CAST($day AS DATE)
    GROUP BY partition, category ORDER BY partition, category""")
"""Per raw day and category: rows and the mean of ln(amount_cents)."""


def levels_of(raw: pd.DataFrame) -> pd.DataFrame:
    """The row-level definition of :data:`LEVELS` over raw rows (``partition, category,
    amount_cents``)."""
    logs = np.log(raw["amount_cents"].astype("float64"))
    return (
        raw.assign(log=logs)
        .groupby(["partition", "category"])
        .agg(rows=("log", "size"), mean_log=("log", "mean"))
        .reset_index()
    )


def levels(q, first, day) -> pd.DataFrame:
    return day_frame(q.statistic(LEVELS, {"first": first, "day": day}))


TOP_AMOUNTS = per_partition(f"""
    SELECT partition, rows, top_rows, top_cents FROM (
        SELECT partition, amount_cents AS top_cents, n AS top_rows, sum(n) OVER (PARTITION BY partition) AS rows,
               row_number() OVER (PARTITION BY partition ORDER BY n DESC, amount_cents DESC) AS r
        FROM (
            SELECT partition, amount_cents, count(*) AS n FROM {warehouse.table("raw_transactions")}
            WHERE partition BETWEEN CAST($first AS DATE) AND CAST($day AS DATE)
            GROUP BY partition, amount_cents
        ) counted
    ) ranked WHERE r = 1 ORDER BY partition""")
"""Per raw day: its rows and its most repeated amount (in cents) with the rows holding it
(ties: the larger amount)."""


def top_amounts_of(raw: pd.DataFrame) -> pd.DataFrame:
    """The row-level definition of :data:`TOP_AMOUNTS` over raw rows (``partition, amount_cents``)."""
    counts = raw.groupby(["partition", "amount_cents"]).size().rename("top_rows").reset_index()
    counts = counts.sort_values(["partition", "top_rows", "amount_cents"], ascending=[True, False, False])
    top = counts.groupby("partition").head(1).rename(columns={"amount_cents": "top_cents"})
    rows = raw.groupby("partition").size().rename("rows").reset_index()
    return rows.merge(top, on="partition")[["partition", "rows", "top_rows", "top_cents"]].reset_index(drop=True)


def top_amounts(q, first, day) -> pd.DataFrame:
    return day_frame(q.statistic(TOP_AMOUNTS, {"first": first, "day": day}))


# --------------------------------------------------------------------------- guard
MIN_CATEGORY_ROWS = 5
"""Rows a category needs tonight to take part in the amount-scale comparison."""


MIN_REFERENCE_DAYS = 5
"""Earlier days a category needs before its level is known."""


def _night_factor(tonight: pd.DataFrame, history: pd.DataFrame) -> tuple[float | None, pd.DataFrame]:
    """The median factor over categories of one night (``category, rows, mean_log``) against
    ``history``'s per-category median daily mean, and the per-category table."""
    tonight = tonight.set_index("category")[["rows", "mean_log"]]
    tonight = tonight[tonight["rows"] >= MIN_CATEGORY_ROWS]
    usable = history[history["rows"] >= 3]
    reference = usable.groupby("category")["mean_log"].median()
    days = usable.groupby("category")["partition"].nunique()
    reference = reference[days.reindex(reference.index).fillna(0) >= MIN_REFERENCE_DAYS]
    common = tonight.index.intersection(reference.index)
    table = pd.DataFrame(
        {
            "category": common,
            "rows": tonight.loc[common, "rows"].to_numpy(),
            "factor": np.exp(tonight.loc[common, "mean_log"] - reference.loc[common]).to_numpy(),
        }
    )
    if table.empty:
        return None, table
    return float(np.exp(np.median(np.log(table["factor"])))), table


ONSET_NIGHTS = 7
"""Earlier nights examined for the start of an out-of-scale run."""


def _onset(history: pd.DataFrame, off) -> object:
    """The first of the consecutive days before tonight whose own factor (against the days
    before it) was also off the scale in the same direction; None: tonight."""
    start = None
    for day in sorted(history["partition"].unique(), reverse=True)[:ONSET_NIGHTS]:
        before = history[history["partition"] < day]
        factor, _ = _night_factor(history[history["partition"] == day], before)
        if factor is None or not off(factor):
            break
        start = day
    return start


def amount_scale(night: pd.DataFrame, history: pd.DataFrame, max_amount_factor: float) -> Verdict:
    """Are tonight's amounts on the same scale as the recent days'? Per category, the
    night's mean log-amount against the median of its recent daily means; the median of
    those differences over categories is the night's factor. A unit change (cents sent as
    euros, ×100) moves every category at once and states its factor; a category's own mix
    moving does not.

    ``night``: ``category, rows, mean_log`` (mean ln amount_cents) of tonight's rows;
    ``history``: the same per ``partition`` of earlier days."""
    factor, table = _night_factor(night, history)
    figures = {"categories_compared": len(table), "history_days": int(history["partition"].nunique())}
    thresholds = {"max_amount_factor": max_amount_factor, "min_category_rows": MIN_CATEGORY_ROWS}
    if table.empty:
        return Verdict(
            True,
            "ERROR",
            "no category with enough rows tonight and history to compare amounts with",
            figures | {"factor": None},
            thresholds,
        )
    figures["factor"] = factor
    up = factor >= 1

    def off_scale(f: float) -> bool:
        return (f > max_amount_factor) if up else (f < 1 / max_amount_factor)

    off = off_scale(factor)
    words = f"{factor:.3g}× larger" if up else f"{1 / factor:.3g}× smaller"
    when = ""
    if off:
        start = _onset(history, off_scale)
        figures |= {"direction": "up" if up else "down", "since": str(start) if start else "tonight"}
        moved = table[(table["factor"] > max_amount_factor) if up else (table["factor"] < 1 / max_amount_factor)]
        figures["categories_off_scale"] = len(moved)
        when = "since tonight" if start is None else f"since {start}"
        share = (
            f"{len(moved)} of {len(table)} categories off the scale" if len(moved) < len(table) else "every category"
        )
        when += f"; {share}"
    return Verdict(
        passed=not off,
        severity="ERROR",
        summary=(
            f"amounts look {words} than in the recent days (median over {len(table)} categories; a unit "
            f"change?), {when}"
            if off
            else f"amounts on the recent scale (factor {factor:.2f} over {len(table)} categories)"
        ),
        figures=figures,
        thresholds=thresholds,
        tables={"categories": table.sort_values("rows", ascending=False)},
    )


PILEUP_MIN_ROWS = 8
"""Rows one amount must hold tonight before a pile-up is judged (a small day's top value
repeating twice is chance)."""


def amount_pileup(days: pd.DataFrame, day, max_pileup_factor: float) -> Verdict:
    """Does one amount hold far more of tonight's rows than the most repeated amount of the
    recent days held of theirs? ERROR when tonight's top amount holds at least
    :data:`PILEUP_MIN_ROWS` rows and a share over ``max_pileup_factor`` times the recent
    days' median top share. ``days``: rows of :data:`TOP_AMOUNTS` (tonight and earlier)."""
    tonight = days[days["partition"] == day]
    recent = days[days["partition"] < day]
    thresholds = {"max_pileup_factor": max_pileup_factor, "min_rows": PILEUP_MIN_ROWS}
    if tonight.empty or int(tonight["rows"].iloc[0]) == 0:
        return Verdict(
            True, "ERROR", "no rows tonight: nothing piles up (row_volume judges an empty day)", {}, thresholds
        )
    row = tonight.iloc[0]
    rows, top, cents = int(row["rows"]), int(row["top_rows"]), int(row["top_cents"])
    share = top / rows
    baseline = float((recent["top_rows"] / recent["rows"]).median()) if len(recent) else 0.0
    factor = share / baseline if baseline > 0 else float("inf")
    piled = top >= PILEUP_MIN_ROWS and len(recent) >= MIN_REFERENCE_DAYS and factor > max_pileup_factor
    figures = {
        "rows": rows,
        "top_amount": cents / 100,
        "top_rows": top,
        "top_share": share,
        "recent_top_share": baseline,
        "factor": factor if np.isfinite(factor) else None,
        "recent_days": len(recent),
    }
    return Verdict(
        passed=not piled,
        severity="ERROR",
        summary=(
            f"amounts pile up at {cents / 100:.2f} tonight: {top} of {rows} rows ({share:.1%}), {factor:.1f}× the "
            f"recent days' most repeated amount ({baseline:.2%}, median of {len(recent)} days) — amounts clipped "
            f"at a limit or filled with a constant? (at most {max_pileup_factor:.0f}×)"
            if piled
            else f"tonight's most repeated amount {cents / 100:.2f} holds {top} of {rows} rows ({share:.1%}; "
            f"recent days {baseline:.2%})"
        ),
        figures=figures,
        thresholds=thresholds,
        tables={"days": days.assign(top_amount=days["top_cents"] / 100).drop(columns="top_cents")},
    )


# --------------------------------------------------------------------------- loader
def load_pileup(step: Step) -> Inputs:
    night = step.night
    return Inputs({"days": top_amounts(step, night.days_back(HISTORY_DAYS), night.day), "day": night.day})


def load(step: Step) -> Inputs:
    night = step.night
    found = levels(step, night.days_back(HISTORY_DAYS), night.day)
    tonight = found["partition"] == night.day
    return Inputs(
        {
            "night": found.loc[tonight, ["category", "rows", "mean_log"]].reset_index(drop=True),
            "history": found.loc[~tonight].reset_index(drop=True),
        }
    )
