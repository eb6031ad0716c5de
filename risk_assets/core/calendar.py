"""The business calendar: which days are public holidays where the source lives.

From the ``holidays`` package (offline, per country and subdivision) plus an explicit
list in settings (``calendar.extra_holidays``: a bank's own closing days). Level checks
judge a day against days like it — the same weekday, holidays apart — instead of
against "the recent median" of a week that mixes Sundays with paydays."""

from __future__ import annotations

import datetime as dt
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
