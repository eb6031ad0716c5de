"""Score sanity (WARN): tonight's score distribution against the validation scores."""

from __future__ import annotations

import numpy as np

from risk_assets.checks import Verdict
from risk_assets.core import stats


def score_sanity(
    scores: np.ndarray,
    validation_quantiles: list[float],
    psi_warn: float,
    high_band_max_share: float,
    validation_mean: float | None = None,
) -> Verdict:
    """``validation_mean``: the validation scores' mean as stored in the model card (the
    quantiles' mean is only an approximation of it, used for cards that lack it)."""
    q = np.asarray(validation_quantiles)
    edges = list(q[1:-1])
    ref = np.full(len(edges) + 1, 1.0 / (len(edges) + 1))
    value = stats.psi(ref, stats.bin_shares(scores, edges))
    p98 = float(np.interp(0.98, np.linspace(0, 1, len(q)), q))
    high_share = float(np.mean(scores >= p98)) if len(scores) else 0.0
    problems = []
    if value > psi_warn:
        problems.append(f"score PSI {value:.3f} > {psi_warn}")
    if high_share > high_band_max_share:
        problems.append(f"{high_share:.1%} of customers score above the validation p98 (> {high_band_max_share:.0%})")
    return Verdict(
        passed=not problems,
        severity="WARN",
        summary="; ".join(problems) or f"score distribution in line with validation (PSI {value:.3f})",
        figures={
            "score_psi": value,
            "share_above_validation_p98": high_share,
            "mean_score": float(np.mean(scores)) if len(scores) else 0.0,
            "validation_mean_score": float(validation_mean) if validation_mean is not None else float(np.mean(q)),
        },
        thresholds={"psi_warn": psi_warn, "high_share_warn": high_band_max_share},
    )
