"""Row volume: a day that arrives empty, or far thinner than usual, is not a quiet day.

A missing file or a stalled export does not break the contract — zero rows are perfectly
valid rows — but every rolling window computed that night would silently shrink."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from risk_assets.guards import Verdict

MIN_HISTORY_DAYS = 7


def row_volume(received: int, accepted: int, recent_accepted: Sequence[int], min_share: float) -> Verdict:
    """``recent_accepted``: accepted rows of the previous loaded days (up to four weeks).

    ERROR when nothing was received, or when fewer rows were accepted than ``min_share``
    of the recent median (weekends run ~30% below weekdays, well inside the default 0.5)."""
    history = np.asarray(recent_accepted, dtype="float64")
    median = float(np.median(history)) if history.size else 0.0
    figures = {"received": received, "accepted": accepted, "recent_days": int(history.size),
               "recent_median_accepted": median, "share_of_median": accepted / median if median else None}
    thresholds = {"min_share_of_median": min_share, "min_history_days": MIN_HISTORY_DAYS}
    if received == 0:
        return Verdict(False, "ERROR", "no rows were received for this day (a missing file or a stalled export?)",
                       figures, thresholds)
    if history.size < MIN_HISTORY_DAYS or median == 0:
        return Verdict(True, "ERROR", f"{accepted} rows accepted; fewer than {MIN_HISTORY_DAYS} earlier days to "
                       "compare with", figures, thresholds)
    share = accepted / median
    return Verdict(
        passed=share >= min_share, severity="ERROR",
        summary=f"{accepted} rows accepted = {share:.0%} of the recent median {median:.0f} "
                f"(at least {min_share:.0%} expected)",
        figures=figures,
        thresholds=thresholds,
    )
