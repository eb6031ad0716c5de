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

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.core.calendar import holidays_between
from risk_assets.store import warehouse

HISTORY_DAYS = 120
"""Days of load history ``row_volume`` learns a day's expectation from (eight weeks of
weekdays, and the month starts and ends of four months)."""
MIN_COMPARABLE_DAYS = 3
"""Same-weekday working days needed before a thin day is judged."""
WEEKDAY_WEEKS = 8
"""Recent weeks the weekday level is taken from."""
MIN_POSITION_DAYS = 2
"""Earlier month starts (or month ends) needed before their own level is learned."""


def month_position(day: dt.date) -> str | None:
    """``month_start`` (the 1st), ``month_end`` (the last weekday of the month) or None:
    the days a source's paydays, billing runs and salary transfers move."""
    if day.day == 1:
        return "month_start"
    last = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    while last.weekday() >= 5:
        last -= dt.timedelta(days=1)
    return "month_end" if day == last else None


def expected_volume(day: dt.date, history: pd.DataFrame, holidays: frozenset[dt.date]) -> tuple[float, int, str]:
    """Accepted rows a day like ``day`` should have: the median of the same weekday in the
    recent weeks (holidays and month starts/ends apart), times the factor the source's
    own earlier month starts (or ends) showed against their weekday — learned from its
    history, so paydays are expected where a source has them and nowhere else.
    Returns (expected, days used, how it was formed)."""
    earlier = history[(history["partition"] < day) & ~history["partition"].isin(holidays)]
    positions = earlier["partition"].map(month_position)
    ordinary = earlier[positions.isna()]
    weekday_of = ordinary["partition"].map(lambda d: d.weekday())
    same = ordinary[weekday_of == day.weekday()].tail(WEEKDAY_WEEKS)
    if len(same) < MIN_COMPARABLE_DAYS:
        return 0.0, len(same), "not enough comparable days"
    expected = float(np.median(same["accepted"]))
    basis = f"same weekday ({day:%A})"
    position = month_position(day)
    if position:
        level = ordinary.groupby(weekday_of)["accepted"].median()
        past = earlier[positions == position]
        ratios = [
            a / level[d.weekday()] for d, a in zip(past["partition"], past["accepted"]) if level.get(d.weekday(), 0) > 0
        ]
        if len(ratios) >= MIN_POSITION_DAYS:
            factor = float(np.median(ratios))
            expected *= factor
            basis += f" × {factor:.2f} for a {position.replace('_', ' ')} (from {len(ratios)} earlier)"
    return expected, len(same), basis


RECUR_WEEKS = 4
"""Weeks before and after a day a year earlier whose same weekday tells whether it was quiet."""


def year_before(day: dt.date) -> dt.date | None:
    """The same date a year earlier (None for 29 February)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return None


def recurring_quiet(loads: pd.DataFrame, days: list[dt.date], share: float) -> dict[dt.date, dt.date]:
    """Of ``days``, those whose same date a year earlier was a quiet day of the source — it
    accepted fewer rows than ``share`` of the median of its weekday in the :data:`RECUR_WEEKS`
    weeks before and after it (those the loads hold, at least two) — with that earlier day.
    A day that was quiet on its date last year is a holiday or a closing day of the source's
    own calendar, whatever country is (or is not) configured. ``loads``: ``partition,
    accepted`` of the loaded days a year earlier."""
    accepted = dict(zip(loads["partition"], loads["accepted"]))
    out = {}
    for day in days:
        earlier = year_before(day)
        if earlier is None or earlier not in accepted:
            continue
        around = [earlier + dt.timedelta(weeks=w) for w in range(-RECUR_WEEKS, RECUR_WEEKS + 1) if w]
        neighbours = [accepted[d] for d in around if d in accepted]
        if len(neighbours) >= 2 and accepted[earlier] < share * float(np.median(neighbours)):
            out[day] = earlier
    return out


def holidays(step: Step, first: dt.date, last: dt.date) -> tuple[frozenset[dt.date], dict[dt.date, dt.date]]:
    """The holidays the level checks judge ``first .. last`` with: the configured calendar's
    (``calendar.holidays_country``, ``extra_holidays``) — or, with no country configured, the
    source's recurring quiet days (:func:`recurring_quiet`, at ``checks.min_volume_share``).
    A country's calendar, once set, is the better one: a movable holiday last year (Easter
    Monday) would make its date an ordinary weekday judged as a holiday this year. Returns
    (all of them, the recurring ones -> the quiet day a year earlier)."""
    configured = holidays_between(step.settings.calendar, first, last)
    if step.settings.calendar.holidays_country:
        return configured, {}
    back = year_before(first) or first - dt.timedelta(days=365)
    loads = warehouse.loads(
        step.conn, back - dt.timedelta(weeks=RECUR_WEEKS), last - dt.timedelta(days=365 - 7 * RECUR_WEEKS)
    )
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    recurring = recurring_quiet(loads, [d for d in days if d not in configured], step.settings.checks.min_volume_share)
    return configured | frozenset(recurring), recurring


def row_volume(
    received: int,
    accepted: int,
    day: dt.date,
    history: pd.DataFrame,
    holidays: frozenset[dt.date],
    min_share: float,
    holiday_min_share: float,
    max_share: float = float("inf"),
    recurring: dict[dt.date, dt.date] | None = None,
) -> Verdict:
    """``history``: ``partition, accepted`` of earlier loaded days (a few months).

    ERROR when nothing was received, or when fewer rows were accepted than ``min_share``
    of the same weekday's recent median — ``holiday_min_share`` of it on a public
    holiday (a holiday is quiet by nature; a truncated ordinary day is not) — or more than
    ``max_share`` times it: two-sided, a day re-sent whole is as wrong as a day half lost."""
    holiday = day in holidays
    expected, days, basis = expected_volume(day, history, holidays)
    share_needed = holiday_min_share if holiday else min_share
    figures = {
        "received": received,
        "accepted": accepted,
        "comparable_days": days,
        "expected_accepted": expected,
        "share_of_expected": accepted / expected if expected else None,
        "holiday": holiday,
        "recurring_quiet_day": str((recurring or {})[day]) if day in (recurring or {}) else "-",
        "expectation": basis,
    }
    thresholds = {
        "min_share_of_expected": share_needed,
        "max_share_of_expected": max_share,
        "min_comparable_days": MIN_COMPARABLE_DAYS,
    }
    if received == 0:
        return Verdict(
            False,
            "ERROR",
            "no rows were received for this day (a missing file or a stalled export?)",
            figures,
            thresholds,
        )
    if expected == 0:
        return Verdict(
            True,
            "ERROR",
            f"{accepted} rows accepted; fewer than {MIN_COMPARABLE_DAYS} comparable earlier "
            "days to judge a thin day against",
            figures,
            thresholds,
        )
    share = accepted / expected
    direction = "too few" if share < share_needed else "too many" if share > max_share else None
    return Verdict(
        passed=direction is None,
        severity="ERROR",
        summary=(f"{direction} rows tonight: " if direction else "")
        + f"{accepted} rows accepted = {share:.0%} of the {basis} median {expected:.0f}"
        + (
            f" on a recurring quiet day (its date was as quiet on {(recurring or {})[day]})"
            if day in (recurring or {})
            else " on a public holiday"
            if holiday
            else ""
        )
        + f" (expected {share_needed:.0%} .. {max_share:.0%})"
        + (" — a file delivered twice, or another feed mixed in?" if direction == "too many" else ""),
        figures=figures,
        thresholds=thresholds,
    )


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    """The load ledger of the recent days (the accepted rows each load recorded)."""
    night = step.night
    first = night.days_back(HISTORY_DAYS)
    ledger = warehouse.loads(step.conn, first, night.day)
    today = ledger[ledger["partition"] == night.day]
    known, recurring = holidays(step, first, night.day)
    return Inputs(
        {
            "received": int(today["received"].iloc[0]) if len(today) else 0,
            "accepted": int(today["accepted"].iloc[0]) if len(today) else 0,
            "day": night.day,
            "history": ledger.loc[ledger["partition"] != night.day, ["partition", "accepted"]],
            "holidays": known,
            "recurring": recurring,
        }
    )
