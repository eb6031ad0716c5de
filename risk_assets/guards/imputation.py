"""Imputation ceiling and missingness pattern, both over the imputation ledger."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2

from risk_assets.features.encoding import UNSEEN_CATEGORY
from risk_assets.features.spec import BY_NAME, FEATURE_NAMES, FEATURES
from risk_assets.guards import Verdict


def imputation_ceiling(ledger: pd.DataFrame, rows: int, ceiling: float) -> Verdict:
    """Per feature: substituted cells / rows ≤ ceiling. Every feature's rate is reported."""
    counts = ledger.groupby("feature").size().reindex(list(FEATURE_NAMES), fill_value=0)
    reasons = ledger.groupby(["feature", "reason"]).size().unstack(fill_value=0) if len(ledger) else pd.DataFrame()
    rates = counts / rows if rows else counts * 0.0
    table = pd.DataFrame({"feature": counts.index, "cells": counts.to_numpy(), "rate": rates.to_numpy()})
    for reason in reasons.columns:
        table[reason] = reasons[reason].reindex(counts.index, fill_value=0).to_numpy()
    over = table[table["rate"] > ceiling].sort_values("rate", ascending=False)
    worst = table.sort_values("rate", ascending=False).iloc[0]
    return Verdict(
        passed=over.empty,
        severity="ERROR",
        summary=(f"{len(over)} feature(s) above the {ceiling:.1%} imputation ceiling"
                 + (f": {', '.join(over['feature'])}" if len(over) else "")
                 + f"; worst {worst['feature']} at {worst['rate']:.2%}"),
        figures={
            "rows": rows,
            "features_over_ceiling": len(over),
            "substituted_cells": int(counts.sum()),
            "worst_feature": str(worst["feature"]),
            "worst_rate": float(worst["rate"]),
            **{f"rate.{f}": float(r) for f, r in zip(table["feature"], table["rate"])},
        },
        thresholds={"ceiling": ceiling},
        tables={"rates": table.sort_values("rate", ascending=False)},
    )


def coverage_cells(ledger: pd.DataFrame, unmapped_customers: set[str], unseen_channel_customers: set[str]) -> pd.Series:
    """The ledger cells whose cause is coverage's to judge: unseen categorical levels, and
    NULLs a feature has *because* the customer's window holds an unmapped category or a
    channel the training period never saw (``Feature.null_when``)."""
    cause = ledger["feature"].map({f.name: f.null_when for f in FEATURES})
    unmapped = (cause == "unmapped_category") & ledger["customer_id"].isin(unmapped_customers)
    unseen_channel = (cause == "unknown_channel") & ledger["customer_id"].isin(unseen_channel_customers)
    return (ledger["reason"] == UNSEEN_CATEGORY) | unmapped | unseen_channel


def missingness_pattern(
    ledger: pd.DataFrame,
    groups: pd.DataFrame,
    alpha: float,
    min_lift: float,
    min_cells: int,
    excused: pd.Series | None = None,
    exposure: pd.DataFrame | None = None,
) -> Verdict:
    """Is a feature's missingness concentrated in one group, rather than random?

    ``excused``: a mask over the ledger of the cells whose cause the coverage checks
    judge (:func:`coverage_cells`). They are left out — one verdict per cause: a few rows
    with odd category names, tolerated by coverage, must not block this night and the
    thirty nights their windows still hold them.

    ``groups``: one row per scored customer (``customer_id`` plus grouping columns —
    segment, region and ``uses:<category>`` flags). ``exposure``: per customer (same
    order) the transactions in each window (``txn_count_<w>d``). A value goes missing per
    *transaction*, so a busy customer is more likely to carry a missing cell even when
    missingness is perfectly random; the test is adjusted for that. Under random
    row-level missingness at rate ``p`` a customer with ``n`` transactions in the
    feature's window has a missing cell with probability ``1 − (1 − p)^n`` (``p`` fitted
    to the night). For every feature with at least ``min_cells`` substituted cells and
    every grouping, observed cells per group are compared with that expectation
    (chi-square with Bernoulli variances). A pattern is flagged when the test is
    significant at ``alpha`` / number of tests (Bonferroni) *and* the worst group's
    observed/expected ratio is at least ``min_lift`` times that of the rest — so it fires
    on concentration even when the overall rate is under the ceiling, and not on busy
    customers being busy."""
    excused_cells = int(excused.sum()) if excused is not None else 0
    if excused is not None:
        ledger = ledger[~excused.to_numpy()]
    customers = groups["customer_id"]
    grouping_cols = [c for c in groups.columns if c != "customer_id"]
    features = ledger.groupby("feature").size()
    features = features[features >= min_cells]
    tests = []
    for feature in features.index:
        hit = customers.isin(set(ledger.loc[ledger["feature"] == feature, "customer_id"])).to_numpy()
        expected = _expected_missing(hit, _exposure(exposure, feature, len(customers)))
        for col in grouping_cols:
            values = groups[col].astype(str).to_numpy()
            test = _concentration(values, hit, expected)
            if test is not None:
                tests.append({"feature": feature, "grouping": col, "cells": int(hit.sum()), **test})
    frame = pd.DataFrame(tests)
    n_tests = max(len(frame), 1)
    level = alpha / n_tests
    if len(frame):
        frame["flagged"] = (frame["p_value"] < level) & (frame["lift"] >= min_lift)
        frame = frame.sort_values(["flagged", "p_value"], ascending=[False, True])
    flagged = frame[frame["flagged"]] if len(frame) else frame
    top = flagged.drop_duplicates("feature") if len(flagged) else flagged
    return Verdict(
        passed=flagged.empty,
        severity="ERROR",
        summary=("missingness is concentrated: " + "; ".join(
            f"{r.feature} in {r.grouping}={r.group} ({r.cells_in_group}/{r.cells} cells, lift {r.lift:.1f})"
            for r in top.itertuples()) if len(flagged) else
            f"no concentrated missingness ({len(frame)} tests, {len(features)} feature(s) with ≥ {min_cells} cells)"),
        figures={
            "tests": len(frame),
            "bonferroni_level": level,
            "flagged": len(flagged),
            "features_tested": len(features),
            "cells_left_to_coverage": excused_cells,
        },
        thresholds={"alpha": alpha, "min_lift": min_lift, "min_cells": min_cells},
        tables={"concentration_tests": frame.head(20) if len(frame) else pd.DataFrame()},
    )


def _exposure(exposure: pd.DataFrame | None, feature: str, n: int) -> np.ndarray:
    """Transactions of each customer in the feature's window (1 each without exposure)."""
    column = f"txn_count_{BY_NAME[feature].window_days}d"
    if exposure is None or column not in exposure:
        column = "txn_count_30d"
    if exposure is None or column not in exposure:
        return np.ones(n)
    return exposure[column].to_numpy(dtype="float64").clip(min=0)


def _expected_missing(hit: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Each customer's probability of a missing cell under random row-level missingness,
    with the rate ``p`` fitted so that the expected total equals the observed one."""
    target = hit.sum()
    lo, hi = 0.0, 1.0
    for _ in range(60):
        p = (lo + hi) / 2
        if (1 - (1 - p) ** n).sum() < target:
            lo = p
        else:
            hi = p
    return 1 - (1 - (lo + hi) / 2) ** n


def _concentration(values: np.ndarray, hit: np.ndarray, expected: np.ndarray) -> dict | None:
    """Observed against expected missing cells per group: chi-square with Bernoulli
    variances (df = groups − 1), and the worst group's observed/expected ratio against
    the rest's."""
    frame = pd.DataFrame({"g": values, "o": hit.astype(float), "e": expected, "v": expected * (1 - expected)})
    per = frame.groupby("g")[["o", "e", "v"]].sum()
    per = per[per["v"] > 0]
    if len(per) < 2:
        return None
    stat = float((((per["o"] - per["e"]) ** 2) / per["v"]).sum())
    p = float(chi2.sf(stat, len(per) - 1))
    ratio = per["o"] / per["e"]
    worst = ratio.idxmax()
    rest_o, rest_e = per["o"].sum() - per.at[worst, "o"], per["e"].sum() - per.at[worst, "e"]
    rest = rest_o / rest_e if rest_e > 0 else 0.0
    return {"group": worst, "cells_in_group": int(per.at[worst, "o"]), "expected_in_group": float(per.at[worst, "e"]),
            "group_ratio": float(ratio[worst]), "outside_ratio": float(rest),
            "lift": float(ratio[worst] / rest) if rest > 0 else float("inf"), "p_value": p}


def category_usage(window: pd.DataFrame, customers: pd.Series) -> pd.DataFrame:
    """``uses:<category>`` flags per customer from (customer_id, category) rows."""
    usage = pd.crosstab(window["customer_id"], window["category"]) > 0
    usage.columns = [f"uses:{c}" for c in usage.columns]
    return usage.reindex(customers, fill_value=False).reset_index(drop=True).astype(np.int8)
