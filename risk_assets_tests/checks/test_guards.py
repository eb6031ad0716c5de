"""The guards' statistics on small hand-made frames: each must pass clean data and fail dirty data."""

import datetime as dt
import re
import tomllib

import numpy as np
import pandas as pd
import pytest

from risk_assets.checks.coverage import category_coverage, night_counts
from risk_assets.checks.daily import calibrate, daily_drift, daily_statistics
from risk_assets.checks.drift import calibrated_threshold, drift_bounds, monitored_features, onset, profile
from risk_assets.checks.imputation import contingency, imputation_ceiling, ledger_counts, missingness_pattern
from risk_assets.checks.parity import parity
from risk_assets.checks.scores import score_sanity
from risk_assets.checks.volume import row_volume
from risk_assets.core.features.spec import CATEGORICAL, FEATURE_NAMES, NUMERIC

RNG = np.random.default_rng(5)


# --------------------------------------------------------------------------- coverage
def _mapping():
    cats = {
        "groceries": (600, 3.0),
        "travel": (50, 6.0),
        "hotels": (40, 5.6),
        "transfer": (100, 4.5),
        "fuel": (210, 3.5),
    }
    rows = []
    for i, (c, (n, mu)) in enumerate(cats.items()):
        rows.append(
            {
                "raw_category": c,
                "canonical": c,
                "code": i,
                "origin": "training",
                "training_rows": n,
                "training_amount_cents": int(n * np.exp(mu)),
                "training_log_amount_mean": mu,
                "training_log_amount_std": 0.3,
            }
        )
    return pd.DataFrame(rows)


def _night(counts: dict[str, tuple[int, float]]) -> pd.DataFrame:
    rows = []
    for c, (n, mu) in counts.items():
        for i in range(n):
            rows.append({"transaction_id": f"{c}-{i}", "category": c, "amount_cents": int(np.exp(RNG.normal(mu, 0.3)))})
    return pd.DataFrame(rows)


def test_coverage_passes_a_night_of_known_categories():
    night = _night(
        {"groceries": (600, 3.0), "travel": (50, 6.0), "hotels": (40, 5.6), "transfer": (100, 4.5), "fuel": (210, 3.5)}
    )
    outcome = category_coverage(*night_counts(night, _mapping()), _mapping(), 0.005)
    assert outcome.passed and outcome.figures["unmapped_rows"] == 0


def test_channel_coverage_judges_a_day_with_no_rows_without_crashing():
    from risk_assets.checks.coverage import value_coverage

    empty = pd.DataFrame({"value": pd.Series([], dtype=object), "rows": pd.Series([], dtype="int64")})
    verdict = value_coverage(empty, {"online", "atm"}, "channel", 0.005)
    assert verdict.passed and verdict.figures["rows"] == 0 and verdict.figures["unseen_channels"] == "-"


def test_coverage_names_new_categories_and_suggests_rename_and_merge():
    night = _night({"groceries": (600, 3.0), "fuel": (210, 3.5), "p2p": (95, 4.5), "trips": (88, 5.8)})
    outcome = category_coverage(*night_counts(night, _mapping()), _mapping(), 0.005)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert set(outcome.figures["unseen_categories"].split(", ")) == {"p2p", "trips"}
    suggestions = outcome.tables["suggestions"].set_index("category")
    assert suggestions.at["p2p", "kind"] == "rename" and suggestions.at["p2p", "alias_to"] == "transfer"
    assert suggestions.at["trips", "kind"] == "merge" and suggestions.at["trips", "replaces"] == "hotels + travel"
    assert suggestions.at["trips", "alias_to"] == "travel"
    assert outcome.data["suggested_aliases"]["p2p"] == "transfer"
    assert tomllib.loads(outcome.data["suggested_aliases_toml"])["mapping"]["aliases"]["p2p"] == "transfer"
    assert "transfer (vanished)" in outcome.figures["vanished_or_collapsed"]


def test_a_genuinely_new_category_is_marked_for_review():
    night = _night(
        {
            "groceries": (600, 3.0),
            "travel": (50, 6.0),
            "hotels": (40, 5.6),
            "transfer": (100, 4.5),
            "fuel": (210, 3.5),
            "bnpl": (30, 3.4),
        }
    )
    suggestion = category_coverage(*night_counts(night, _mapping()), _mapping(), 0.005).tables["suggestions"].iloc[0]
    assert suggestion["kind"] == "new" and suggestion["confidence"].startswith("weak")


def test_a_merge_is_never_split_into_a_rename_and_a_newcomer_claiming_the_other_half():
    # "trips" holds travel + hotels; "crypto" is new with roughly hotels' volume
    night = _night(
        {"groceries": (600, 3.0), "transfer": (100, 4.5), "fuel": (210, 3.5), "trips": (90, 5.8), "crypto": (40, 5.3)}
    )
    suggestions = (
        category_coverage(*night_counts(night, _mapping()), _mapping(), 0.005)
        .tables["suggestions"]
        .set_index("category")
    )
    assert suggestions.at["trips", "kind"] == "merge" and suggestions.at["trips", "replaces"] == "hotels + travel"
    assert suggestions.at["crypto", "kind"] == "new" and not suggestions.at["crypto", "confidence"].startswith("strong")


def test_case_and_whitespace_variants_are_aliases_of_their_normal_form():
    night = _night(
        {
            "groceries": (580, 3.0),
            "Groceries": (10, 3.0),
            "groceries ": (10, 3.0),
            "travel": (50, 6.0),
            "hotels": (40, 5.6),
            "transfer": (100, 4.5),
            "fuel": (210, 3.5),
        }
    )
    outcome = category_coverage(*night_counts(night, _mapping()), _mapping(), 0.005)
    suggestions = outcome.tables["suggestions"].set_index("category")
    assert suggestions.at["Groceries", "kind"] == "variant" and suggestions.at["Groceries", "alias_to"] == "groceries"
    assert suggestions.at["groceries ", "alias_to"] == "groceries"
    assert outcome.data["suggested_aliases"] == {"Groceries": "groceries", "groceries ": "groceries"}


def test_suggested_aliases_are_valid_toml_for_any_name():
    hostile = ["'); DROP TABLE raw_transactions; --", 'quo"te', "back\\slash", "pipe|tab\t", "ünïcödé", "x = 1"]
    night = _night(
        {
            "groceries": (600, 3.0),
            "travel": (50, 6.0),
            "hotels": (40, 5.6),
            "transfer": (100, 4.5),
            "fuel": (210, 3.5),
            **dict.fromkeys(hostile, (8, 3.5)),
        }
    )
    outcome = category_coverage(*night_counts(night, _mapping()), _mapping(), 0.005)
    parsed = tomllib.loads(outcome.data["suggested_aliases_toml"])["mapping"]["aliases"]
    assert parsed == outcome.data["suggested_aliases"] and set(parsed) == set(hostile)


# --------------------------------------------------------------------------- imputation
def _ledger(customers, feature="online_share_30d"):
    return pd.DataFrame(
        {
            "customer_id": customers,
            "feature": feature,
            "reason": "missing_value",
            "original_value": None,
            "substituted_value": "0.4",
        }
    )


def _groups(n=1000):
    ids = [f"C{i}" for i in range(n)]
    return pd.DataFrame(
        {
            "customer_id": ids,
            "segment": np.where(np.arange(n) % 5 == 0, "smb", "retail"),
            "uses:gambling": (np.arange(n) % 10 == 3).astype(np.int8),
        }
    )


def test_imputation_ceiling_reports_every_feature_and_fails_above_it():
    outcome = imputation_ceiling(ledger_counts(_ledger([f"C{i}" for i in range(30)])), rows=1000, ceiling=0.02)
    assert not outcome.passed and outcome.figures["worst_feature"] == "online_share_30d"
    assert outcome.figures["rate.online_share_30d"] == 0.03
    assert all(f"rate.{f}" in outcome.figures for f in FEATURE_NAMES)
    assert imputation_ceiling(ledger_counts(_ledger([f"C{i}" for i in range(20)])), rows=1000, ceiling=0.02).passed


def test_missingness_pattern_fires_on_concentration_but_not_on_random_missingness():
    groups = _groups()
    concentrated = groups.loc[groups["uses:gambling"] == 1, "customer_id"].head(15)  # 1.5%, all in one group
    outcome = missingness_pattern(
        *contingency(_ledger(list(concentrated)), groups, min_cells=5), alpha=0.001, min_lift=3, min_cells=5
    )
    assert not outcome.passed and "uses:gambling=1" in outcome.summary
    random = groups["customer_id"].sample(15, random_state=3)
    assert missingness_pattern(
        *contingency(_ledger(list(random)), groups, min_cells=5), alpha=0.001, min_lift=3, min_cells=5
    ).passed


# --------------------------------------------------------------------------- drift
def _reference(n=4000, days=20):
    from risk_assets.core.features.encoding import fit_encoding
    from risk_assets.core.model import reference_profile

    frame = pd.DataFrame({f: RNG.gamma(2.0, 1.0, n * days) for f in NUMERIC})
    for f in CATEGORICAL:
        frame[f] = RNG.choice(["a", "b", "c"], n * days, p=[0.5, 0.3, 0.2])
    frame["as_of"] = np.repeat(pd.date_range("2025-01-01", periods=days), n)
    enc = fit_encoding(frame)
    return reference_profile(frame, enc, RNG.random(100)), frame


def test_drift_bands_pass_a_fresh_clean_sample_and_catch_a_shift():
    reference, _ = _reference()
    clean = pd.DataFrame({f: RNG.gamma(2.0, 1.0, 4000) for f in NUMERIC})
    for f in CATEGORICAL:
        clean[f] = RNG.choice(["a", "b", "c"], 4000, p=[0.5, 0.3, 0.2])
    assert drift_bounds(profile(clean, reference), reference, 0.05, 0.001).passed
    shifted = clean.copy()
    shifted["amount_sum_30d"] = shifted["amount_sum_30d"] * 1.3
    shifted["segment"] = RNG.choice(["a", "b", "c"], 4000, p=[0.3, 0.3, 0.4])
    outcome = drift_bounds(profile(shifted, reference), reference, 0.05, 0.001)
    assert not outcome.passed and outcome.severity == "ERROR"
    bands = outcome.tables["features"].set_index("feature")["band"]
    assert bands["amount_sum_30d"] == "ERROR" and bands["segment"] == "ERROR"
    assert "tenure_days" not in bands.index  # grows by construction: not monitored
    assert set(bands.index) == set(monitored_features())


def test_drift_bounds_name_where_which_way_and_since_when_a_feature_moved():
    """The reason of a feature out of its band: the bin or level that moved most, the
    direction, and the first of the consecutive nights it was out (read back night by night,
    no further than needed): a shift that began two nights ago says so, not "tonight"."""
    reference, _ = _reference()

    def night(shifted: bool, seed: int) -> dict:
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame({f: rng.gamma(2.0, 1.0, 4000) for f in NUMERIC})
        for f in CATEGORICAL:
            moved = shifted and f == "segment"
            frame[f] = rng.choice(["a", "b", "c"], 4000, p=[0.3, 0.45, 0.25] if moved else [0.5, 0.3, 0.2])
        if shifted:
            frame["amount_sum_30d"] *= 1.3
        return profile(frame, reference)

    day = dt.date(2025, 2, 10)
    history = {day - dt.timedelta(days=k): night(k <= 2, k) for k in range(1, 8)}
    read = []

    def earlier(d):
        read.append(d)
        return history.get(d)

    outcome = drift_bounds(history[day - dt.timedelta(days=1)], reference, 0.05, 0.001, day=day, earlier=earlier)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert outcome.figures["since"] == str(day - dt.timedelta(days=2)), outcome.summary
    assert outcome.figures["onset"] == "sudden" and "since 2025-02-08 (3 nights)" in outcome.summary
    assert re.search(r"segment down \(JS [^)]*\): share in 'a' (49|50)\.\d% → (29|30|31)\.\d%", outcome.summary)
    assert "amount_sum_30d up" in outcome.summary
    assert max(read) == day - dt.timedelta(days=1) and min(read) == day - dt.timedelta(days=3)  # no further
    alone = drift_bounds(history[day - dt.timedelta(days=1)], reference, 0.05, 0.001, day=day)
    assert alone.figures["since"] == str(day) and "tonight" in alone.summary
    # the walk's rule on its own: gradual when the run's first night sat in the WARN band only
    assert onset(5.0, [3.0, 1.5, 0.5, 9.0], warn=1.0, error=4.0) == (2, "gradual")
    assert onset(5.0, [0.5], warn=1.0, error=4.0) == (0, "sudden")
    assert onset(2.0, [], warn=1.0, error=4.0) == (0, "gradual")


def test_calibrated_threshold_grows_with_confidence():
    daily = list(RNG.lognormal(-5, 0.3, 30))
    assert calibrated_threshold(daily, 0.05, 20) < calibrated_threshold(daily, 0.001, 20)
    with pytest.raises(ValueError):
        calibrated_threshold(daily[:3], 0.05, 20)


def test_daily_drift_catches_slow_inflation_and_stays_quiet_on_clean_nights():
    """0.4% a day at the default world's volume (≈1,100 rows a day): WARN within 10
    nights, ERROR before amounts are 10% off; clean nights raise nothing."""
    rng = np.random.default_rng(11)

    def days(start, n, drift=0.0, rows=1100):
        out = []
        for i in range(n):
            x = rng.normal(drift * (i + 1), 0.7, rows)
            out.append(
                {
                    "partition": start + dt.timedelta(days=i),
                    "rows": rows,
                    "dev_sum": x.sum(),
                    "dev_sq": (x**2).sum(),
                    "all_rows": rows,
                    "mapped_rows": rows,
                    "risky_rows": rng.binomial(rows, 0.12),
                    "channel_rows": rows,
                    "online_rows": rng.binomial(rows, 0.3),
                }
            )
        return pd.DataFrame(out)

    calibration = calibrate(daily_statistics(days(dt.date(2025, 8, 1), 100)), 0.5, 250, 1000)
    assert calibration["arl_warn"] >= 250 and calibration["arl_error"] >= 1000
    assert calibration["h_error"] > calibration["h_warn"]
    start = dt.date(2025, 12, 1)

    def alarms(drift, n):
        nights = daily_statistics(days(start, n, drift))
        verdicts = [
            daily_drift(nights[nights["partition"] < start + dt.timedelta(days=i)], calibration)
            for i in range(1, n + 1)
        ]
        warn = [i + 1 for i, v in enumerate(verdicts) if not v.passed]
        error = [i + 1 for i, v in enumerate(verdicts) if not v.passed and v.severity == "ERROR"]
        return warn, error

    warn, error = alarms(0.0, 90)  # the targets: <= 5% of clean nights WARN, <= 1 ERROR in 90
    assert len(warn) <= 4 and len(error) <= 1, (warn, error)
    warn, error = alarms(np.log(1.004), 30)
    warn, error = (warn[0] if warn else None), (error[0] if error else None)
    assert warn is not None and warn <= 10
    assert error is not None and 1.004**error < 1.10
    verdict = daily_drift(daily_statistics(days(start, 25, np.log(1.004))), calibration)
    assert verdict.tables["statistics"].iloc[0]["statistic"] == "amount_level"  # the cause on top
    assert "amount_level drifting up" in verdict.summary and "gradual" in verdict.summary
    # the reason dates the change, not the monitored window: clean nights, then a trend, then a step
    clean = days(start, 20)
    trend_start = start + dt.timedelta(days=20)
    trend = days(trend_start, 15, np.log(1.004) * 3)
    verdict = daily_drift(daily_statistics(pd.concat([clean, trend], ignore_index=True)), calibration)
    assert not verdict.passed
    since = dt.date.fromisoformat(verdict.figures["change_point"])
    assert trend_start - dt.timedelta(days=4) <= since <= trend_start + dt.timedelta(days=5), since  # within days
    step = days(start + dt.timedelta(days=35), 1, np.log(1.25))  # every amount 25% up, tonight only
    nights = pd.concat([clean, days(trend_start, 15), step], ignore_index=True)
    verdict = daily_drift(daily_statistics(nights), calibration)
    tonight = str(step["partition"].iloc[0])
    assert not verdict.passed and verdict.figures["change_point"] == tonight
    assert (
        "amount_level drifting up (CUSUM" in verdict.summary and f"sudden, since {tonight} (tonight)" in verdict.summary
    )
    # a night coverage fails on (many unmapped rows) has no risky share: coverage judges it
    uncovered = days(start, 1).assign(mapped_rows=lambda d: d["all_rows"] * 0.9)
    stats = daily_statistics(uncovered, max_unmapped_share=0.005)
    assert "risky_share" not in set(stats["statistic"]) and "amount_level" in set(stats["statistic"])


def _features(n=500):
    frame = pd.DataFrame({"customer_id": [f"C{i}" for i in range(n)]})
    for f in NUMERIC:
        frame[f] = RNG.gamma(2.0, 10.0, n).round(2)
    for f in CATEGORICAL:
        frame[f] = RNG.choice(["a", "b"], n)
    return frame


def test_parity_passes_identical_paths_and_catches_mismatch_bias_and_missing_rows():
    serving = _features()
    assert parity(serving, serving.copy(), 1e-9, 1e-9, 0.001, 10).passed
    off = serving.copy()
    off.loc[3, "amount_sum_7d"] += 5
    outcome = parity(off, serving, 1e-9, 1e-9, 0.001, 10)
    assert not outcome.passed and outcome.figures["features_with_mismatches"] == 1
    biased = serving.copy()
    biased["amount_mean_30d"] = biased["amount_mean_30d"] * 0.999  # inside a 1% tolerance, always lower
    outcome = parity(biased, serving, 0.0, 0.01, 0.001, 10)
    assert outcome.figures["features_with_mismatches"] == 0 and outcome.figures["features_biased"] == 1
    assert not outcome.passed
    outcome = parity(serving.iloc[1:], serving, 1e-9, 1e-9, 0.001, 10)
    assert not outcome.passed and outcome.figures["only_in_training"] == 1


# --------------------------------------------------------------------------- scores
def test_score_sanity_warns_on_a_shifted_score_distribution():
    validation = RNG.beta(1, 20, 5000)
    quantiles = list(np.quantile(validation, np.linspace(0, 1, 101)))
    assert score_sanity(RNG.beta(1, 20, 3000), quantiles, 0.25, 0.05).passed
    outcome = score_sanity(RNG.beta(2, 10, 3000), quantiles, 0.25, 0.05)
    assert not outcome.passed and outcome.severity == "WARN"


def _weeks(day, per_weekday=(16_000, 16_500, 15_800, 16_200, 16_100, 11_000, 3_000), weeks=8):
    """Accepted rows of the ``weeks`` weeks before ``day``: a Sunday far below the rest."""
    days = [day - dt.timedelta(days=i) for i in range(1, 7 * weeks + 1)]
    return pd.DataFrame({"partition": days, "accepted": [per_weekday[d.weekday()] for d in days]})


MONDAY, SUNDAY = dt.date(2025, 12, 1), dt.date(2025, 11, 30)
NONE = frozenset()


def test_row_volume_judges_a_day_against_its_own_weekday_and_blocks_empty_or_thin_days():
    assert row_volume(3_000, 3_000, SUNDAY, _weeks(SUNDAY), NONE, 0.5, 0.15).passed  # a quiet Sunday is a Sunday
    empty = row_volume(0, 0, MONDAY, _weeks(MONDAY), NONE, 0.5, 0.15)
    assert not empty.passed and empty.severity == "ERROR" and "no rows were received" in empty.summary
    thin = row_volume(6_000, 6_000, MONDAY, _weeks(MONDAY), NONE, 0.5, 0.15)  # one of two export files missing
    assert not thin.passed and thin.figures["share_of_expected"] < 0.5
    assert "same weekday (Monday)" in thin.summary
    assert not row_volume(500, 0, MONDAY, _weeks(MONDAY), NONE, 0.5, 0.15).passed  # everything was rejected
    assert row_volume(100, 100, MONDAY, _weeks(MONDAY, weeks=2), NONE, 0.5, 0.15).passed  # too little history
    assert not row_volume(0, 0, MONDAY, _weeks(MONDAY, weeks=0), NONE, 0.5, 0.15).passed  # but never an empty day


def test_a_date_that_was_quiet_a_year_earlier_is_judged_as_a_holiday_with_no_country_set():
    """The calendar from the history: 6 January 2025 held a fifth of a Monday's rows, so 6
    January 2026 is a recurring quiet day (judged as a holiday) with no holidays_country;
    an ordinary date, a date a year earlier with too few neighbours loaded, and a thin day
    that is no recurring date are not."""
    from risk_assets.checks.volume import recurring_quiet

    epiphany, later = dt.date(2025, 1, 6), dt.date(2026, 1, 6)
    year = [dt.date(2024, 12, 1) + dt.timedelta(days=i) for i in range(120)]
    loads = pd.DataFrame({"partition": year, "accepted": [3_000 if d.weekday() == 6 else 16_000 for d in year]})
    loads.loc[loads["partition"] == epiphany, "accepted"] = 3_200
    days = [dt.date(2026, 1, 5), later, dt.date(2026, 1, 7)]
    assert recurring_quiet(loads, days, 0.5) == {later: epiphany}
    assert recurring_quiet(loads[loads["partition"] <= epiphany + dt.timedelta(days=7)], days, 0.5) == {
        later: epiphany
    }  # neighbours before and one after: enough
    assert recurring_quiet(loads[(loads["partition"] >= epiphany)].head(1), days, 0.5) == {}  # alone: no judgement
    assert recurring_quiet(loads, [dt.date(2028, 2, 29)], 0.5) == {}
    history = _weeks(later)
    judged = row_volume(3_500, 3_500, later, history, frozenset({later}), 0.5, 0.15, recurring={later: epiphany})
    assert judged.passed and judged.figures["recurring_quiet_day"] == str(epiphany)
    assert "recurring quiet day (its date was as quiet on 2025-01-06)" in judged.summary
    assert not row_volume(3_500, 3_500, later, history, NONE, 0.5, 0.15).passed  # without it: a thin Tuesday


def test_row_volume_is_two_sided_a_day_can_be_too_large():
    normal = row_volume(12_000, 12_000, MONDAY, _weeks(MONDAY), NONE, 0.5, 0.15, 2.0)
    assert normal.passed
    expected = normal.figures["expected_accepted"]
    twice = row_volume(int(expected * 2.3), int(expected * 2.3), MONDAY, _weeks(MONDAY), NONE, 0.5, 0.15, 2.0)
    assert not twice.passed and twice.severity == "ERROR" and twice.summary.startswith("too many rows tonight")
    assert twice.thresholds["max_share_of_expected"] == 2.0 and "delivered twice" in twice.summary
    thin = row_volume(int(expected * 0.3), int(expected * 0.3), MONDAY, _weeks(MONDAY), NONE, 0.5, 0.15, 2.0)
    assert thin.summary.startswith("too few rows tonight")


def test_a_public_holiday_is_judged_as_a_holiday_and_kept_out_of_the_expectation():
    christmas = dt.date(2025, 12, 25)  # a Thursday
    history = _weeks(christmas)
    quiet = row_volume(4_000, 4_000, christmas, history, frozenset({christmas}), 0.5, 0.15)
    assert quiet.passed and quiet.figures["holiday"]
    assert not row_volume(4_000, 4_000, christmas, history, NONE, 0.5, 0.15).passed  # the same day, no calendar
    assert not row_volume(1_000, 1_000, christmas, history, frozenset({christmas}), 0.5, 0.15).passed
    # an earlier holiday in the history does not drag the expectation down
    assumption = christmas - dt.timedelta(days=7)
    history.loc[history["partition"] == assumption, "accepted"] = 100
    assert (
        row_volume(16_000, 16_000, christmas, history, frozenset({assumption}), 0.5, 0.15).figures["expected_accepted"]
        == 16_200
    )


# --------------------------------------------------------------------------- a day that blocked its night
def _lookback(days: int = 5):
    expected = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    verdicts = pd.DataFrame({"partition": expected, "check_name": "rows_reconcile", "passed": True, "summary": "ok"})
    return expected, verdicts


def test_a_day_whose_own_night_was_blocked_quarantines_the_later_nights_until_re_judged():
    from risk_assets.checks.lookback import lookback_health

    expected, verdicts = _lookback()
    sick_day = expected[2]
    blocked = pd.DataFrame(
        {
            "partition": [sick_day, expected[1]],
            "check_name": ["drift_bounds", "feature_parity"],
            "passed": [False, True],
            "summary": ["amount_30d: PSI 0.41 (limit 0.25)", "serving and training paths agree"],
        }
    )
    verdict = lookback_health(expected, expected, verdicts, {}, blocked)
    assert not verdict.passed and verdict.severity == "ERROR"
    assert str(sick_day) in verdict.summary and "drift_bounds" in verdict.summary and "PSI 0.41" in verdict.summary
    assert verdict.figures["quarantined_days"] == 1 and verdict.figures["first_quarantined"] == str(sick_day)
    # re-judged healthy: its night re-run and passing
    healed = blocked.assign(passed=True)
    assert lookback_health(expected, expected, verdicts, {}, healed).passed
    # accepted by an override with a name and a reason
    waived = lookback_health(expected, expected, verdicts, {sick_day: "ops: accepted"}, blocked)
    assert waived.passed and waived.figures["accepted_days"] == 1
    # tonight's own verdicts are not the look-back's business
    assert lookback_health(expected[:3], expected[:3], verdicts, {}, blocked).passed


def test_a_quarantined_day_blocks_only_while_a_feature_window_reads_it():
    """Quarantine in proportion: a day inside the 30-day windows blocks; an older one is read
    only by days_since_last_txn and is reported with the customers it reaches (WARN)."""
    from risk_assets.checks.lookback import lookback_health

    expected, verdicts = _lookback(90)
    tonight = expected[-1]
    last = pd.DataFrame({"partition": expected[:-1], "customers": 10})  # 10 customers last seen on each day
    for back, severity in ((29, "ERROR"), (30, "WARN"), (60, "WARN")):
        day = tonight - dt.timedelta(days=back)
        sick = verdicts.assign(passed=verdicts["partition"] != day, summary="row_volume: 45% of a normal Friday")
        verdict = lookback_health(expected, expected, sick, {}, None, last)
        assert not verdict.passed and verdict.severity == severity, (back, verdict.summary)
        if severity == "WARN":
            assert verdict.figures["customers_exposed"] == 10 and "read only by days_since_last_txn" in verdict.summary
            assert f"10 of {10 * 89} customers" in verdict.summary and str(day) in verdict.summary
    healthy = lookback_health(expected, expected, verdicts, {}, None, last)
    assert healthy.passed and healthy.severity == "ERROR"  # a blocking check, passing
    # both: the one inside a window blocks, and the old one is still named
    both = verdicts.assign(passed=~verdicts["partition"].isin([tonight - dt.timedelta(days=5), expected[3]]))
    verdict = lookback_health(expected, expected, both, {}, None, last)
    assert verdict.severity == "ERROR" and str(expected[3]) in verdict.summary


def test_which_blocking_checks_a_night_records_for_the_look_back():
    from risk_assets.checks.catalogue import CHECKS
    from risk_assets.checks.lookback import records_night

    recorded = {d.name for d in CHECKS if records_night(d)}
    assert {"feature_parity", "drift_bounds", "imputation_ceiling", "category_coverage"} <= recorded
    assert "lookback_health" not in recorded  # it judges other days: no chain of quarantines
    assert not any(d.quarantines for d in CHECKS if records_night(d))  # those are re-judged with each load
    assert all(d.blocking for d in CHECKS if records_night(d))


def test_amount_pileup_fails_when_one_amount_holds_far_more_rows_than_usual():
    from risk_assets.checks.amounts import amount_pileup

    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(11)]
    usual = pd.DataFrame({"partition": days[:10], "rows": 1000, "top_rows": 4, "top_cents": 1000})
    clean = pd.concat(
        [usual, pd.DataFrame({"partition": [days[10]], "rows": [980], "top_rows": [5], "top_cents": [2000]})]
    )
    assert amount_pileup(clean, days[10], 4.0).passed
    clipped = clean.assign(top_rows=lambda d: d["top_rows"].where(d["partition"] < days[10], 50), top_cents=99999)
    verdict = amount_pileup(clipped, days[10], 4.0)
    assert not verdict.passed and verdict.severity == "ERROR"
    assert "pile up at 999.99 tonight" in verdict.summary and verdict.figures["top_rows"] == 50
    assert verdict.figures["factor"] > 10
    # a tiny day: its top value seen 3 times is a large share, but chance
    tiny = pd.concat(
        [usual, pd.DataFrame({"partition": [days[10]], "rows": [11], "top_rows": [3], "top_cents": [500]})]
    )
    assert amount_pileup(tiny, days[10], 4.0).passed


# --------------------------------------------------------------------------- night profile
def _profile_days(last: dt.date, n_days: int = 63, change=None, every=None, mapping=None):
    """``n_days`` synthetic raw days ending ``last`` (about 2,000 rows a day, four regions,
    two channels, lognormal amounts), each through the profile's row-level definition;
    ``change(raw, customers) -> raw`` rewrites the last day, ``every`` the days before it."""
    from risk_assets.checks.profile import profile_of

    rng = np.random.default_rng(11)
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(3000)],
            "segment": rng.choice(["retail", "smb"], 3000, p=[0.7, 0.3]),
            "region": rng.choice(["north", "south", "east", "west"], 3000, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    frames = []
    for i in range(n_days):
        day = last - dt.timedelta(days=n_days - 1 - i)
        n = int(rng.poisson(1200 if day.weekday() == 6 else 2000))
        raw = pd.DataFrame(
            {
                "partition": day,
                "customer_id": rng.choice(customers["customer_id"], n),
                "amount_cents": np.exp(rng.normal(8.0, 1.0, n)).round().astype("int64") + 1,
                "category": rng.choice(["groceries", "fuel", "travel"], n, p=[0.6, 0.3, 0.1]),
                "channel": rng.choice(["online", "card"], n, p=[0.45, 0.55]),
            }
        )
        rewrite = change if day == last else every
        frames.append(rewrite(raw, customers) if rewrite is not None else raw)
    raw = pd.concat(frames, ignore_index=True)
    return profile_of(raw, customers, mapping)


def _judge_profile(days, last, **kw):
    from risk_assets.checks.profile import night_profile

    healthy = sorted(set(days["partition"]) - {last})
    return night_profile(
        days, last, healthy, kw.pop("holidays", frozenset()), max_z=7.0, warn_z=5.0, min_ratio=1.5, **kw
    )


def _profile_mapping(aliases: dict[str, str]) -> pd.DataFrame:
    known = ["groceries", "fuel", "travel"]
    return pd.DataFrame({"raw_category": [*known, *aliases], "canonical": [*known, *aliases.values()]})


def test_a_holiday_is_judged_as_the_weekday_it_looks_like():
    """A source that closes on Sundays and holidays: fuel stations shut (fuel absent) and a
    third of the rows. A holiday on a Wednesday is such a day. Against every day (or its own
    Wednesday) fuel "vanished"; against the Sundays it resembles, nothing changed. A holiday
    that trades as usual is still judged as an ordinary day, and a fault on it still blocks."""
    last = dt.date(2026, 3, 4)  # a Wednesday

    def closed(raw, customers):
        keep = (raw["category"] != "fuel") & (np.random.default_rng(len(raw)).random(len(raw)) < 0.6)
        return raw[keep.to_numpy()]

    def sundays(raw, customers):
        return closed(raw, customers) if raw["partition"].iloc[0].weekday() == 6 else raw

    days = _profile_days(last, change=closed, every=sundays)
    as_wednesday = _judge_profile(days, last)
    assert not as_wednesday.passed and "fuel" in as_wednesday.summary
    holiday = _judge_profile(days, last, holidays=frozenset({last}))
    assert holiday.passed, holiday.summary
    assert holiday.figures["judged_as_weekday"] == "Sunday" and holiday.figures["holiday"]

    open_as_usual = _judge_profile(_profile_days(last, every=sundays), last, holidays=frozenset({last}))
    assert open_as_usual.passed and open_as_usual.figures["judged_as_weekday"] != "Sunday"

    def lose_south(raw, customers):
        south = raw["customer_id"].isin(customers.loc[customers["region"] == "south", "customer_id"])
        return raw[~south.to_numpy() | (np.random.default_rng(1).random(len(raw)) < 0.2)]

    faulty = _judge_profile(_profile_days(last, change=lose_south, every=sundays), last, holidays=frozenset({last}))
    assert not faulty.passed and faulty.figures["value"] == "south"


def test_night_profile_reads_categories_through_the_mapping_so_an_absorbed_rename_is_no_change():
    """'fuel' renamed 'petrol' from tonight. As delivered, fuel vanished (and petrol is new);
    through a mapping that aliases petrol to fuel, the population is unchanged and passes."""
    last = dt.date(2026, 3, 4)

    def rename(raw, customers):
        return raw.assign(category=raw["category"].replace({"fuel": "petrol"}))

    as_delivered = _judge_profile(_profile_days(last, change=rename), last)
    assert not as_delivered.passed and as_delivered.figures["value"] == "fuel" and "vanished" in as_delivered.summary
    mapped = _judge_profile(_profile_days(last, change=rename, mapping=_profile_mapping({"petrol": "fuel"})), last)
    assert mapped.passed, mapped.summary
    judged = mapped.tables["statistics"]
    assert "petrol" not in set(judged["value"]) and "fuel" in set(judged.loc[judged["col"] == "category", "value"])


def test_a_lasting_merge_is_accepted_by_restarting_the_values_baseline_and_said():
    """travel merged into fuel from ``start`` (mapped onto fuel: fuel's share up 1.3x, travel
    gone). Blocked every night after, as a lasting change would be for nine weeks; restarting
    the two values' baselines at ``start`` passes, says so, and leaves the other values
    judged; a restart dated after a night does not apply to it."""
    last = dt.date(2026, 3, 4)

    def merge(raw, customers):
        return raw.assign(category=raw["category"].replace({"travel": "fuel"}))

    days = _profile_days(last, change=merge)
    blocked = _judge_profile(days, last)
    assert not blocked.passed and blocked.figures["value"] == "travel" and "vanished" in blocked.summary

    restart = {"category=travel": last, "category=fuel": last}
    accepted = _judge_profile(days, last, baseline_from=restart)
    assert accepted.passed, accepted.summary
    assert accepted.figures["baseline_restarts"] == {k: str(d) for k, d in sorted(restart.items())}
    assert "baseline restarted by override: category=fuel from 2026-03-04" in accepted.summary
    judged = accepted.tables["statistics"]
    assert set(judged.loc[judged["col"] == "category", "value"]) == {"groceries"}  # still watched
    assert {"region", "channel", "segment"} <= set(judged["col"])

    # a restart naming no value the profile reads (a typo, a raw name the mapping renames) is said
    typo = _judge_profile(days, last, baseline_from={"category=Travel": last})
    assert not typo.passed and typo.figures["baseline_restarts_matching_nothing"] == ["category=Travel"]
    assert "category=Travel name no value the profile read" in typo.summary

    whole = _judge_profile(days, last, baseline_from={"category": last})
    assert whole.passed and "category" not in set(whole.tables["statistics"]["col"])
    later = _judge_profile(days, last, baseline_from={"category": last + dt.timedelta(days=1)})
    assert not later.passed and later.figures["baseline_restarts"] == {}


def test_a_profile_restart_is_an_override_with_a_known_column():
    from pydantic import ValidationError

    from risk_assets.checks.profile import CUSTOMER_COLUMNS, DAY, TRANSACTION_COLUMNS
    from risk_assets.settings import OverrideSettings

    ok = OverrideSettings(
        by="a", reason="b", profile_baseline_from={"category=fuel": "2026-03-04", "day": "2026-03-01"}
    )
    assert ok.profile_baseline_from["category=fuel"] == dt.date(2026, 3, 4)
    for column in (DAY[0], *TRANSACTION_COLUMNS, *CUSTOMER_COLUMNS):  # every column the profile splits by
        OverrideSettings(by="a", reason="b", profile_baseline_from={column: "2026-03-04"})
    with pytest.raises(ValidationError, match="not 'column' or 'column=value'"):
        OverrideSettings(by="a", reason="b", profile_baseline_from={"amount": "2026-03-04"})
    with pytest.raises(ValidationError, match="need 'by' and 'reason'"):
        OverrideSettings(profile_baseline_from={"category": "2026-03-04"})


def test_night_profile_passes_a_clean_day_and_judges_every_column():
    last = dt.date(2026, 3, 4)
    verdict = _judge_profile(_profile_days(last), last)
    assert verdict.passed, verdict.summary
    judged = set(verdict.tables["statistics"]["col"])
    assert {"day", "category", "channel", "segment", "region"} <= judged
    assert verdict.figures["comparable_days"] == 8  # the same weekday of 8 weeks
    assert verdict.figures["window_days"] == 56  # the spread: every day of them
    assert verdict.figures["max_abs_z"] < 4.5


def test_night_profile_blocks_a_lost_subpopulation_naming_column_value_direction_and_tonight():
    """80% of one region's rows lost (a feed of one region cut): the day's volume drops only
    by 16%, every global check would pass; the region's share falls 5-fold."""
    last = dt.date(2026, 3, 4)

    def lose(raw, customers):
        south = raw["customer_id"].isin(customers.loc[customers["region"] == "south", "customer_id"])
        keep = ~south | (np.random.default_rng(1).random(len(raw)) < 0.2)
        return raw[keep]

    verdict = _judge_profile(_profile_days(last, change=lose), last)
    assert not verdict.passed and verdict.severity == "ERROR"
    assert verdict.figures["column"] == "region" and verdict.figures["value"] == "south"
    assert verdict.figures["direction"] == "down" and verdict.figures["since"] == str(last)
    assert "region = 'south'" in verdict.summary and "down" in verdict.summary and "tonight" in verdict.summary


def test_night_profile_is_two_sided_and_sees_one_values_unit_and_a_vanished_value():
    last = dt.date(2026, 3, 4)

    def double(raw, customers):  # one channel's rows delivered twice over
        online = raw[raw["channel"] == "online"]
        return pd.concat([raw, online, online], ignore_index=True)

    up = _judge_profile(_profile_days(last, change=double), last)
    assert not up.passed and up.severity == "ERROR"
    online = up.tables["statistics"].query("col == 'channel' and value == 'online' and statistic == 'rows_share'")
    assert (
        online["large"].item()
        and online["z"].item() > 7
        and "channel = 'online': share of the day's rows up" in up.summary
    )

    def unit(raw, customers):  # travel's amounts sent in another unit (x100)
        travel = raw["category"] == "travel"
        return raw.assign(amount_cents=raw["amount_cents"].where(~travel, raw["amount_cents"] * 100))

    scaled = _judge_profile(_profile_days(last, change=unit), last)
    assert not scaled.passed and scaled.figures["value"] == "travel" and scaled.figures["direction"] == "up"
    assert scaled.figures["statistic"] in {"low", "median", "high"}

    def vanish(raw, customers):
        return raw[raw["category"] != "fuel"]

    gone = _judge_profile(_profile_days(last, change=vanish), last)
    assert not gone.passed and gone.figures["value"] == "fuel" and "vanished" in gone.summary


def test_night_profile_keeps_a_null_value_apart_from_an_empty_one():
    """Every day a few channels arrive empty ('') and a few NULL; tonight the NULLs burst.
    The verdict names the NULL value as None, never as '' (numpy drops trailing NUL
    characters and pandas hashes strings up to the first NUL, so a NUL stand-in for NULL
    once merged the two and named the burst '')."""
    last = dt.date(2026, 3, 4)

    def blank_and_null(raw, share):
        raw = raw.copy()
        rng = np.random.default_rng(len(raw))
        draw = rng.random(len(raw))
        raw.loc[draw < 0.03, "channel"] = ""
        raw.loc[(draw >= 0.03) & (draw < 0.03 + share), "channel"] = None
        return raw

    days = _profile_days(
        last, change=lambda raw, _: blank_and_null(raw, 0.4), every=lambda raw, _: blank_and_null(raw, 0.03)
    )
    tonight = days[(days["partition"] == last) & (days["col"] == "channel")]
    assert set(tonight["value"].map(repr)) == {"'online'", "'card'", "''", "None"}
    verdict = _judge_profile(days, last)
    assert not verdict.passed and verdict.figures["column"] == "channel"
    assert verdict.figures["value"] is None and "channel = None" in verdict.summary
    shown = verdict.tables["statistics"]
    assert {"''", "None"} <= set(shown.loc[shown["col"] == "channel", "value"].map(repr))


def test_night_profile_sees_a_clipped_tail_while_the_median_holds():
    last = dt.date(2026, 3, 4)

    def clip(raw, customers):
        limit = int(np.quantile(raw["amount_cents"], 0.95))
        return raw.assign(amount_cents=raw["amount_cents"].clip(upper=limit))

    verdict = _judge_profile(_profile_days(last, change=clip), last)
    assert not verdict.passed and verdict.severity == "ERROR"
    assert verdict.figures["statistic"] == "top_share" and verdict.figures["direction"] == "up"


def test_night_profile_judges_the_top_amount_by_the_noise_of_its_count():
    """At production size a value's amounts rarely repeat: its most repeated amount holds a
    handful of rows, 5 on most days. Nine one night is chance (a pooled MAD of such counts is
    near zero, and judging them by it blocked 14 clean nights of 608 at 1M customers); forty
    — amounts piling up at one value — is not, nor twenty where no amount ever repeated."""
    last = dt.date(2026, 3, 4)

    def repeated(top: int):
        def rewrite(raw, customers):
            rng = np.random.default_rng(len(raw) + top)
            amounts = rng.permutation(len(raw)).astype("int64") * 7 + 1000  # every amount once
            amounts[:top] = amounts[0]  # ... but one, held by ``top`` rows
            return raw.assign(amount_cents=amounts)

        return rewrite

    def usual(raw, customers):
        return repeated(6 if len(raw) % 5 == 0 else 5)(raw, customers)

    chance = _judge_profile(_profile_days(last, change=repeated(9), every=usual), last)
    assert chance.passed, chance.summary
    shown = chance.tables["statistics"]
    top = shown[(shown["col"] == "day") & (shown["statistic"] == "top_share")].iloc[0]
    assert top["ratio"] > 1.5 and 0 < top["z"] < 2  # it moved 1.8×, by about one count's noise

    piled = _judge_profile(_profile_days(last, change=repeated(40), every=usual), last)
    assert not piled.passed and piled.severity == "ERROR"
    assert piled.figures["statistic"] == "top_share" and piled.figures["direction"] == "up"
    shown = piled.tables["statistics"]
    day = shown[(shown["col"] == "day") & (shown["statistic"] == "top_share")].iloc[0]
    assert day["z"] > 7 and day["ratio"] > 7  # 40 rows where 5 are usual: about 8 deviations
    assert "rows tonight, typically" in piled.summary and " of " in piled.summary, piled.summary

    # where amounts never repeat (a top count of 1), 20 rows at one amount are far beyond chance
    unique = _judge_profile(_profile_days(last, change=repeated(20), every=repeated(1)), last)
    assert not unique.passed and unique.figures["statistic"] == "top_share", unique.summary


def test_night_profile_dates_a_change_that_began_nights_ago_and_ignores_unhealthy_baselines():
    from risk_assets.checks.profile import night_profile

    last = dt.date(2026, 3, 4)
    start = last - dt.timedelta(days=2)

    days = _profile_days(last)
    north = days["col"].eq("region") & days["value"].eq("north") & (days["partition"] >= start)
    # the change on the last three days: north's rows and customers down 4-fold
    days.loc[north, ["rows", "customers"]] = (days.loc[north, ["rows", "customers"]] // 4).to_numpy()
    healthy = [d for d in sorted(set(days["partition"])) if d < start]  # the two nights before were blocked
    verdict = night_profile(days, last, healthy, frozenset(), max_z=7.0, warn_z=5.0, min_ratio=1.5)
    assert not verdict.passed and verdict.figures["value"] == "north"
    assert verdict.figures["since"] == str(start), verdict.summary
    assert f"since {start}" in verdict.summary


def test_amount_scale_states_the_factor_the_direction_and_since_when():
    from risk_assets.checks.amounts import amount_scale

    rng = np.random.default_rng(2)
    days = [dt.date(2026, 2, 1) + dt.timedelta(days=i) for i in range(29)]
    cats = {"groceries": 8.0, "fuel": 8.5, "travel": 10.0}

    def frame(unit_from=None):
        rows = [
            {
                "partition": d,
                "category": c,
                "rows": 40,
                "mean_log": mu + rng.normal(0, 0.05) + (np.log(100) if unit_from and d >= unit_from else 0.0),
            }
            for d in days
            for c, mu in cats.items()
        ]
        f = pd.DataFrame(rows)
        return f[f["partition"] == days[-1]][["category", "rows", "mean_log"]], f[f["partition"] < days[-1]]

    assert amount_scale(*frame(), max_amount_factor=4.0).passed
    tonight = amount_scale(*frame(unit_from=days[-1]), max_amount_factor=4.0)
    assert not tonight.passed and tonight.figures["direction"] == "up" and tonight.figures["since"] == "tonight"
    assert "since tonight; every category" in tonight.summary and tonight.figures["factor"] > 50
    earlier = amount_scale(*frame(unit_from=days[-4]), max_amount_factor=4.0)
    assert not earlier.passed and earlier.figures["since"] == str(days[-4]), earlier.summary


def test_night_profile_level_blocks_a_large_change_at_a_smaller_z():
    from risk_assets.checks.profile import level

    z = np.array([7.5, 5.0, 5.0, 4.5, 3.0, -4.5])
    ratio = np.array([1.6, 1.6, 0.25, 3.5, 0.2, 1 / 3.2])
    assert level(z, ratio, max_z=7.0, warn_z=5.0, large_ratio=3.0, large_z=4.0).tolist() == [
        "ERROR",  # far out, a moderate change
        "",  # a moderate change at a moderate z: chance among many statistics
        "ERROR",  # a value down to a quarter, z 5
        "ERROR",  # up 3.5x, z 4.5
        "",  # down to a fifth, but within noise (a small value)
        "ERROR",  # either direction
    ]
