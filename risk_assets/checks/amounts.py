"""Amounts on the recent scale (``amount_scale``): a unit change moves every category's
amounts by one factor, which the result states."""

from __future__ import annotations

import numpy as np
import pandas as pd

from risk_assets.checks import Inputs, Step, Verdict, day_frame
from risk_assets.store import warehouse

HISTORY_DAYS = 28
"""Days of history ``amount_scale`` takes each category's level from."""

# --------------------------------------------------------------------------- statistic
LEVELS = f"""
    SELECT partition, category, count(*) AS rows, avg(ln(amount_cents)) AS mean_log
    FROM {warehouse.table("raw_transactions")}
    WHERE partition BETWEEN CAST($first AS DATE) AND CAST($day AS DATE)
    GROUP BY partition, category ORDER BY partition, category"""
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


# --------------------------------------------------------------------------- guard
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
    table = pd.DataFrame(
        {
            "category": common,
            "rows": tonight.loc[common, "rows"].to_numpy(),
            "factor": np.exp(tonight.loc[common, "mean_log"] - reference.loc[common]).to_numpy(),
        }
    )
    figures = {"categories_compared": len(common), "history_days": int(history["partition"].nunique())}
    thresholds = {"max_amount_factor": max_amount_factor, "min_category_rows": MIN_CATEGORY_ROWS}
    if table.empty:
        return Verdict(
            True,
            "ERROR",
            "no category with enough rows tonight and history to compare amounts with",
            figures | {"factor": None},
            thresholds,
        )
    factor = float(np.exp(np.median(np.log(table["factor"]))))
    figures["factor"] = factor
    off = factor > max_amount_factor or factor < 1 / max_amount_factor
    words = f"{factor:.3g}× larger" if factor >= 1 else f"{1 / factor:.3g}× smaller"
    return Verdict(
        passed=not off,
        severity="ERROR",
        summary=(
            f"amounts look {words} than in the recent days (median over {len(table)} categories; a unit change?)"
            if off
            else f"amounts on the recent scale (factor {factor:.2f} over {len(table)} categories)"
        ),
        figures=figures,
        thresholds=thresholds,
        tables={"categories": table.sort_values("rows", ascending=False)},
    )


# --------------------------------------------------------------------------- loader
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
