"""Distribution statistics for the reference profile and the drift checks (pure)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import mannwhitneyu

EPS = 1e-4


def quantile_edges(values: np.ndarray, n_bins: int = 10) -> list[float]:
    """Inner bin edges at reference quantiles (duplicates removed for spiky features)."""
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    if values.size == 0:
        return []
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return sorted({float(e) for e in edges})


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Finite values per bin: ``(-inf, e0], (e0, e1], …, (e_last, inf)`` (the warehouse
    counts the same bins in SQL: :func:`risk_assets.checks.drift.bin_counts`)."""
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(np.asarray(edges), values, side="left"), minlength=len(edges) + 1)


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Share of the finite values per bin (:func:`bin_counts`)."""
    counts = bin_counts(values, edges)
    return counts / max(counts.sum(), 1)


def fold_levels(value_counts: pd.DataFrame, levels: Sequence[str]) -> np.ndarray:
    """Rows per level from ``value, rows`` counts; values outside ``levels`` (and missing
    ones) count as the last level (``__unseen__`` in an encoding vocabulary)."""
    index = {level: i for i, level in enumerate(levels)}
    counts = np.zeros(len(levels), dtype="int64")
    for value, rows in zip(value_counts["value"], value_counts["rows"]):
        counts[index.get(value, len(levels) - 1) if isinstance(value, str) else len(levels) - 1] += int(rows)
    return counts


def level_shares(values: Sequence[str], levels: Sequence[str]) -> np.ndarray:
    """Share of values per level (:func:`fold_levels`)."""
    counts = pd.Series(values, dtype=object).value_counts(dropna=False)
    folded = fold_levels(pd.DataFrame({"value": counts.index, "rows": counts.to_numpy()}), levels)
    return folded / max(folded.sum(), 1)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index between two share vectors."""
    p = np.clip(np.asarray(reference, dtype="float64"), EPS, None)
    q = np.clip(np.asarray(current, dtype="float64"), EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1])."""
    return float(jensenshannon(np.asarray(reference) + 1e-12, np.asarray(current) + 1e-12, base=2))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann–Whitney U statistic over n_pos × n_neg."""
    labels = np.asarray(labels).astype(bool)
    pos, neg = np.asarray(scores)[labels], np.asarray(scores)[~labels]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(mannwhitneyu(pos, neg, alternative="two-sided").statistic / (pos.size * neg.size))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """PR AUC as average precision (step-wise, ties kept together in score order)."""
    labels = np.asarray(labels).astype(bool)
    if labels.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(precision[hits].sum() / hits.sum())


def precision_at(labels: np.ndarray, scores: np.ndarray, share: float) -> float:
    """Precision among the top ``share`` of scores (the review budget)."""
    labels = np.asarray(labels).astype(bool)
    k = max(1, int(round(share * labels.size)))
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return float(labels[order].mean())
