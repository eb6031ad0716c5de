"""Category coverage: unmapped categories, vanished ones, and likely renames/merges."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy.stats import poisson

from risk_assets.guards import Outcome

MIN_EXPECTED = 3.0  # below this many expected rows a vanished category is not news
COLLAPSE_P = 1e-3


def _poisson_p(observed: int, expected: float) -> float:
    """Two-sided Poisson p-value of ``observed`` given ``expected``."""
    if expected <= 0:
        return 1.0 if observed == 0 else 0.0
    return float(min(1.0, 2 * min(poisson.cdf(observed, expected), poisson.sf(observed - 1, expected))))


def category_coverage(night: pd.DataFrame, mapping: pd.DataFrame, max_unmapped_share: float) -> Outcome:
    """``night``: the partition's rows (transaction_id, category, amount_cents).
    ``mapping``: the current category mapping with its training volumes."""
    n = len(night)
    known = set(mapping["raw_category"])
    unmapped = night[~night["category"].isin(known)]
    share = len(unmapped) / n if n else 0.0
    amount_share = float(unmapped["amount_cents"].sum() / night["amount_cents"].sum()) if n else 0.0

    unseen = (
        unmapped.groupby("category")
        .agg(rows=("transaction_id", "size"), amount_cents=("amount_cents", "sum"),
             sample_ids=("transaction_id", lambda s: ", ".join(sorted(s)[:3])))
        .reset_index()
        .sort_values("rows", ascending=False)
    )
    unseen["share"] = unseen["rows"] / max(n, 1)
    unseen["mean_amount"] = unseen["amount_cents"] / unseen["rows"] / 100

    # Reference: each canonical category's share of training rows and its mean amount.
    training = mapping[mapping["origin"] == "training"]
    ref = training.groupby("canonical").agg(rows=("training_rows", "sum"), cents=("training_amount_cents", "sum"))
    ref["expected_share"] = ref["rows"] / ref["rows"].sum()
    ref["mean_amount"] = ref["cents"] / ref["rows"].clip(lower=1) / 100
    canonical_of = dict(zip(mapping["raw_category"], mapping["canonical"]))
    observed = night["category"].map(canonical_of).value_counts()
    ref["expected_rows"] = ref["expected_share"] * n
    ref["observed_rows"] = observed.reindex(ref.index).fillna(0).astype(int)
    ref["p_value"] = [_poisson_p(o, e) for o, e in zip(ref["observed_rows"], ref["expected_rows"])]
    lost = ref[
        (ref["expected_rows"] >= MIN_EXPECTED)
        & (ref["observed_rows"] < 0.5 * ref["expected_rows"])
        & (ref["p_value"] < COLLAPSE_P)
    ].copy()
    lost["status"] = np.where(lost["observed_rows"] == 0, "vanished", "collapsed")
    lost["lost_rows"] = lost["expected_rows"] - lost["observed_rows"]
    lost = lost.reset_index()

    suggestions = suggest_aliases(unseen, lost)
    aliases = {s["category"]: s["alias_to"] for s in suggestions}
    toml = "[mapping]\naliases = { " + ", ".join(f'{k} = "{v}"' for k, v in aliases.items()) + " }" if aliases else ""
    passed = share <= max_unmapped_share
    summary = (
        f"{share:.2%} of {n} rows have unmapped categories (threshold {max_unmapped_share:.2%})"
        + (f": {', '.join(unseen['category'])}" if len(unseen) else "")
    )
    return Outcome(
        passed=passed,
        severity="ERROR",
        summary=summary,
        metadata={
            "rows": n,
            "unmapped_rows": len(unmapped),
            "unmapped_share": share,
            "unmapped_amount_share": amount_share,
            "threshold_unmapped_share": max_unmapped_share,
            "unseen_categories": ", ".join(unseen["category"]) or "-",
            "vanished_or_collapsed": ", ".join(f"{r.canonical} ({r.status})" for r in lost.itertuples()) or "-",
            "suggested_aliases": toml or "-",
        },
        tables={
            "unseen": unseen[["category", "rows", "share", "mean_amount", "sample_ids"]],
            "vanished_or_collapsed": lost[["canonical", "status", "expected_rows", "observed_rows", "mean_amount", "p_value"]]
            if len(lost) else pd.DataFrame(),
            "suggestions": pd.DataFrame(suggestions),
        },
    )


def suggest_aliases(unseen: pd.DataFrame, lost: pd.DataFrame, min_p: float = 1e-3) -> list[dict]:
    """Match each unseen category to the vanished/collapsed categories whose lost volume
    and amount profile it explains best: one category (a rename) or two (a merge).

    Plausible when the unseen count fits the lost volume (Poisson p ≥ ``min_p``) and the
    mean amounts are within a factor of two. Merges map onto the larger of the two."""
    candidates = []
    rows = list(lost.itertuples())
    hypotheses = [(r,) for r in rows] + list(itertools.combinations(rows, 2))
    for u in unseen.itertuples():
        for hyp in hypotheses:
            expected = sum(h.lost_rows for h in hyp)
            mean = sum(h.lost_rows * h.mean_amount for h in hyp) / expected
            p = _poisson_p(int(u.rows), expected)
            ratio = abs(math.log(max(u.mean_amount, 1e-9) / max(mean, 1e-9)))
            if p >= min_p and ratio <= math.log(2):
                fit = math.log(p) - 2 * ratio - 0.5 * (len(hyp) - 1)  # prefer simple explanations
                candidates.append((fit, u.category, hyp, p, ratio))
    taken: set[str] = set()
    done: set[str] = set()
    out = []
    for fit, category, hyp, p, ratio in sorted(candidates, key=lambda c: -c[0]):
        names = [h.canonical for h in hyp]
        if category in done or taken & set(names):
            continue
        done.add(category)
        taken |= set(names)
        target = max(hyp, key=lambda h: h.lost_rows).canonical
        out.append({
            "category": category,
            "kind": "rename" if len(hyp) == 1 else "merge",
            "replaces": " + ".join(names),
            "alias_to": target,
            "volume_p_value": round(p, 4),
            "amount_ratio": round(math.exp(ratio), 3),
        })
    return out
