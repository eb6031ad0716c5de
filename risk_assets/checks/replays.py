"""Replayed rows: the same event delivered again under a fresh id (``replayed_rows``).

The landing contract rejects a repeated *id*; a feed that re-sends part of a day under new
ids passes it — every row is valid — and every window counts those customers' activity
twice. Such copies agree in every field but the id: customer, time to the second, amount
to the cent, category and channel. Real events rarely do (two identical purchases in the
same second), so the share of rows that repeat another row of the night is near zero on a
clean day and equals the re-sent share on a replayed one, whatever the day's size."""

from __future__ import annotations

import pandas as pd

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.store import warehouse

CONTENT = ("customer_id", "event_ts", "amount_cents", "category", "channel")
"""The fields a replayed row repeats (all but the id and the file it came in)."""

# --------------------------------------------------------------------------- statistics
_GROUPS = f"""
    SELECT customer_id, event_ts, amount_cents, category, channel, count(*) AS copies,
           min(transaction_id) AS first_id, max(transaction_id) AS last_id
    FROM {warehouse.table("raw_transactions")} WHERE partition = CAST($day AS DATE)
    GROUP BY customer_id, event_ts, amount_cents, category, channel"""

REPLAYS = f"""
    SELECT count(*) AS events, coalesce(sum(copies), 0) AS rows, coalesce(sum(copies - 1), 0) AS replayed,
           coalesce(max(copies), 0) AS max_copies
    FROM ({_GROUPS}) g"""
"""Tonight's accepted rows, their distinct events and the copies beyond the first."""

REPLAY_EXAMPLES = f"""
    SELECT customer_id, event_ts, amount_cents, category, channel, copies, first_id, last_id
    FROM ({_GROUPS}) g WHERE copies > 1
    ORDER BY copies DESC, customer_id, event_ts, amount_cents, category LIMIT 20"""
"""The most repeated events (at most 20), with two of their ids."""


def replays_of(raw: pd.DataFrame) -> dict[str, int]:
    """The row-level definition of :data:`REPLAYS` over the night's accepted rows."""
    copies = raw.groupby(list(CONTENT), dropna=False).size()
    return {
        "events": len(copies),
        "rows": int(copies.sum()),
        "replayed": int((copies - 1).sum()),
        "max_copies": int(copies.max()) if len(copies) else 0,
    }


# --------------------------------------------------------------------------- guard
def replayed_rows(summary: pd.DataFrame, examples: pd.DataFrame, max_replayed_share: float) -> Verdict:
    """ERROR when more than ``max_replayed_share`` of the night's accepted rows repeat
    another row in every field but the id. ``summary``: one row of :data:`REPLAYS`."""
    row = summary.iloc[0]
    rows, replayed = int(row["rows"]), int(row["replayed"])
    share = replayed / rows if rows else 0.0
    passed = share <= max_replayed_share
    return Verdict(
        passed=passed,
        severity="ERROR",
        summary=(
            f"{replayed} of {rows} rows ({share:.2%}) repeat another row of tonight in every field but the id "
            f"({', '.join(CONTENT)}; up to {int(row['max_copies'])} copies) — a file re-sent under fresh ids? "
            f"At most {max_replayed_share:.2%}; have the source re-deliver the day without the copies"
            if not passed
            else f"{replayed} of {rows} rows ({share:.2%}) repeat another row of tonight "
            f"(at most {max_replayed_share:.2%})"
        ),
        figures={"rows": rows, "replayed": replayed, "replayed_share": share, "max_copies": int(row["max_copies"])},
        thresholds={"max_replayed_share": max_replayed_share},
        tables={"examples": examples},
    )


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    day = {"day": step.night.day}
    return Inputs({"summary": step.statistic(REPLAYS, day), "examples": step.statistic(REPLAY_EXAMPLES, day)})
