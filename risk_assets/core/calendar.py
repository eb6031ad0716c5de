"""The business calendar: which days are public holidays where the source lives.

From the ``holidays`` package (offline, per country and subdivision) plus an explicit
list in settings (``calendar.extra_holidays``: a bank's own closing days). Level checks
judge a day against days like it — the same weekday, holidays apart — instead of
against "the recent median" of a week that mixes Sundays with paydays."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from functools import lru_cache


@lru_cache(maxsize=32)
def _country(country: str, subdivision: str | None, years: tuple[int, ...]) -> frozenset[dt.date]:
    import holidays

    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=years))


def holidays_between(calendar, first: dt.date, last: dt.date) -> frozenset[dt.date]:
    """Public holidays in ``first .. last`` under the calendar settings (none configured:
    only the explicit list)."""
    days = {d for d in calendar.extra_holidays if first <= d <= last}
    if calendar.holidays_country:
        years = tuple(range(first.year, last.year + 1))
        days |= {
            d for d in _country(calendar.holidays_country, calendar.holidays_subdivision, years) if first <= d <= last
        }
    return frozenset(days)


def explaining_countries(days: Collection[dt.date], min_days: int = 2) -> list[tuple[str, list[dt.date]]]:
    """The countries whose public holidays (the ``holidays`` package, offline; national, no
    subdivision) hold the most of ``days`` — the quiet days of a history — each with the days
    it explains, best first: most days explained, then fewest other holidays in the same span
    (the tighter fit), then the country code — every country that explains as many. Empty
    unless the best explains at least ``min_days`` and at least half of the days. The
    operator picks: a history's few quiet days rarely single out one country."""
    import holidays

    days = sorted(set(days))
    if len(days) < min_days:
        return []
    years = tuple(range(days[0].year, days[-1].year + 1))
    scored = []
    for code in holidays.list_supported_countries():
        if len(code) != 2:  # the alpha-3 aliases of the same calendars
            continue
        calendar = _country(code, None, years)
        held = [d for d in days if d in calendar]
        if held:
            others = sum(1 for d in calendar if days[0] <= d <= days[-1]) - len(held)
            scored.append((-len(held), others, code, held))
    scored.sort()
    if not scored or len(scored[0][3]) < max(min_days, len(days) / 2):
        return []
    return [(code, held) for n, _, code, held in scored if n == scored[0][0]]
