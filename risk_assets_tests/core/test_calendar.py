"""The business calendar: public holidays, and the country that explains a history's quiet days."""

from __future__ import annotations

import datetime as dt

from risk_assets.core.calendar import explaining_countries, holidays_between
from risk_assets.settings import Settings

D = dt.date


def test_the_country_whose_holidays_explain_the_quiet_days_of_a_history():
    quiet = [D(2025, 8, 15), D(2025, 10, 26), D(2025, 11, 1), D(2025, 12, 8), D(2025, 7, 3)]  # 7-3: a cut-off export
    found = explaining_countries(quiet)
    assert found[0] == ("AT", [D(2025, 8, 15), D(2025, 10, 26), D(2025, 11, 1), D(2025, 12, 8)])
    assert all(len(code) == 2 for code, _ in found)  # alpha-2 codes, the settings' spelling
    # the suggestion is what the settings accept, and it then judges those days as holidays
    calendar = Settings().with_overrides(calendar={"holidays_country": found[0][0]}).calendar
    assert set(found[0][1]) <= holidays_between(calendar, D(2025, 7, 1), D(2025, 12, 31))


def test_no_country_is_suggested_for_days_no_calendar_explains():
    assert explaining_countries([D(2025, 3, 4), D(2025, 3, 5), D(2025, 3, 12)]) == []
    assert explaining_countries([D(2025, 12, 25)]) == []  # one day is no evidence
    # more than half must be explained: two holidays among five ordinary days are not a calendar
    ordinary = [D(2025, 3, 4), D(2025, 3, 5), D(2025, 3, 12), D(2025, 6, 17), D(2025, 9, 9)]
    assert explaining_countries([D(2025, 12, 25), D(2025, 12, 26), *ordinary]) == []
