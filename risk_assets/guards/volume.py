"""Row volume: a day that arrives empty, or far thinner than days like it, is not a quiet day.

A missing file or a stalled export does not break the contract — zero rows are perfectly
valid rows — but every rolling window computed that night would silently shrink. "Days
like it" are the same weekday in recent weeks, public holidays apart: a source whose
shops close on Sundays, or whose Christmas is a third of a Thursday, is judged against
its own rhythm, not against one median of the whole month."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from risk_assets.guards import Verdict

MIN_COMPARABLE_DAYS = 3
"""Same-weekday working days needed before a thin day is judged."""


def expected_volume(day: dt.date, history: pd.DataFrame, holidays: frozenset[dt.date]) -> tuple[float, int, str]:
    """Median accepted rows of the comparable earlier days: the same weekday, not a
    holiday. Returns (median, days used, basis)."""
    earlier = history[(history["partition"] < day) & ~history["partition"].isin(holidays)]
    same = earlier[[d.weekday() == day.weekday() for d in earlier["partition"]]]
    if len(same) >= MIN_COMPARABLE_DAYS:
        return float(np.median(same["accepted"])), len(same), f"same weekday ({day:%A})"
    return 0.0, len(same), "not enough comparable days"


def row_volume(received: int, accepted: int, day: dt.date, history: pd.DataFrame, holidays: frozenset[dt.date],
               min_share: float, holiday_min_share: float) -> Verdict:
    """``history``: ``partition, accepted`` of earlier loaded days (a few weeks).

    ERROR when nothing was received, or when fewer rows were accepted than ``min_share``
    of the same weekday's recent median — ``holiday_min_share`` of it on a public
    holiday (a holiday is quiet by nature; a truncated ordinary day is not)."""
    holiday = day in holidays
    expected, days, basis = expected_volume(day, history, holidays)
    share_needed = holiday_min_share if holiday else min_share
    figures = {"received": received, "accepted": accepted, "comparable_days": days, "expected_accepted": expected,
               "share_of_expected": accepted / expected if expected else None, "holiday": holiday,
               "expectation": basis}
    thresholds = {"min_share_of_expected": share_needed, "min_comparable_days": MIN_COMPARABLE_DAYS}
    if received == 0:
        return Verdict(False, "ERROR", "no rows were received for this day (a missing file or a stalled export?)",
                       figures, thresholds)
    if expected == 0:
        return Verdict(True, "ERROR", f"{accepted} rows accepted; fewer than {MIN_COMPARABLE_DAYS} comparable earlier "
                       "days to judge a thin day against", figures, thresholds)
    share = accepted / expected
    return Verdict(
        passed=share >= share_needed, severity="ERROR",
        summary=f"{accepted} rows accepted = {share:.0%} of the {basis} median {expected:.0f}"
                + (" on a public holiday" if holiday else "") + f" (at least {share_needed:.0%} expected)",
        figures=figures, thresholds=thresholds,
    )
