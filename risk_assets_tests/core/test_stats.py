import itertools

import numpy as np
import pandas as pd
import pytest

from risk_assets.core import stats
from risk_assets.core.features.encoding import MISSING, UNSEEN_CATEGORY, Encoding, encode, fit_encoding, model_matrix
from risk_assets.core.features.spec import CATEGORICAL, FEATURE_NAMES, NUMERIC, UNSEEN


def brute_force_auc(labels, scores):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.2
    scores = np.round(rng.random(200) + 0.3 * labels, 2)  # with ties
    assert stats.roc_auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))


def test_average_precision_and_precision_at_budget_by_hand():
    labels = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    assert stats.average_precision(labels, scores) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert stats.precision_at(labels, scores, 0.4) == 0.5


def test_psi_and_js_are_zero_for_identical_and_grow_with_shift():
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    assert stats.psi(ref, ref) == 0.0 and stats.js_distance(ref, ref) == pytest.approx(0.0, abs=1e-6)
    small, big = np.array([0.3, 0.25, 0.25, 0.2]), np.array([0.7, 0.1, 0.1, 0.1])
    assert 0 < stats.psi(ref, small) < stats.psi(ref, big)
    assert 0 < stats.js_distance(ref, small) < stats.js_distance(ref, big) <= 1


def test_bins_use_reference_quantiles():
    values = np.arange(100.0)
    edges = stats.quantile_edges(values, 4)
    assert stats.bin_shares(values, edges) == pytest.approx([0.25, 0.25, 0.25, 0.25], abs=0.01)


def _frame(**overrides):
    base = {name: [1.0, 2.0, 3.0] for name in NUMERIC} | {name: ["a", "b", "a"] for name in CATEGORICAL}
    return pd.DataFrame({"customer_id": ["C1", "C2", "C3"], **base, **overrides})


def test_encoding_logs_every_substitution_with_original_values():
    enc = fit_encoding(_frame())
    assert enc.vocab["segment"] == ["a", "b", UNSEEN] and enc.fill["tenure_days"] == 2.0
    frame = _frame(segment=["a", "zzz", None], tenure_days=[np.nan, 5.0, np.nan])
    encoded, ledger = encode(frame, enc)
    assert list(encoded["segment"]) == ["a", UNSEEN, UNSEEN]
    assert list(encoded["tenure_days"]) == [2.0, 5.0, 2.0]
    rows = {(r.customer_id, r.feature): r for r in ledger.itertuples()}
    assert len(ledger) == 4
    assert rows[("C2", "segment")].reason == UNSEEN_CATEGORY and rows[("C2", "segment")].original_value == "zzz"
    assert rows[("C3", "segment")].reason == MISSING and rows[("C3", "segment")].original_value is None
    assert rows[("C1", "tenure_days")].substituted_value == "2.0"
    matrix = model_matrix(encoded, enc)
    assert list(matrix.columns) == list(FEATURE_NAMES)
    assert list(matrix["segment"].cat.categories) == enc.vocab["segment"]
    assert Encoding.from_json(enc.to_json()) == enc


def test_clean_frames_leave_an_empty_ledger():
    enc = fit_encoding(_frame())
    encoded, ledger = encode(_frame(), enc)
    assert ledger.empty and list(ledger.columns)[:3] == ["customer_id", "feature", "reason"]


def test_level_shares_count_unknown_and_missing_values_as_the_last_level():
    levels = ["a", "b", "__unseen__"]
    values = ["a", "b", "b", "zzz", None, float("nan"), "__unseen__", "a"]
    # by hand: a=2, b=2, and zzz, None, NaN, __unseen__ in the last level
    np.testing.assert_array_equal(stats.level_shares(values, levels), np.array([2, 2, 4]) / 8)
    np.testing.assert_array_equal(stats.level_shares([], levels), np.zeros(3))
