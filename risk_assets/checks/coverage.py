"""Vocabulary coverage: unmapped categories, vanished ones and likely renames/merges
(``category_coverage``, on the raw rows and, blocking, with the scored customers on the
encoded features), and values of another column the training period never saw
(``channel_coverage``)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
from scipy.stats import norm, poisson

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.checks.imputation import encoded_rows
from risk_assets.core.features.encoding import UNSEEN_CATEGORY
from risk_assets.store import registry, warehouse

MIN_EXPECTED = 3.0  # below this many expected rows a vanished category is not news
COLLAPSE_P = 1e-3
SUGGESTION_COLUMNS = ["category", "kind", "replaces", "alias_to", "rows", "missing_rows", "margin", "confidence"]
UNMAPPED_ROWS_CAP = 20_000
"""At most this many rows of each unmapped category reach the alias suggestions (the
first by transaction id; the counts are always exact)."""

# --------------------------------------------------------------------------- statistics
CATEGORY_COUNTS = f"""
    SELECT category, count(*) AS rows, CAST(sum(amount_cents) AS BIGINT) AS amount_cents,
           avg(ln(amount_cents)) AS mean_log
    FROM {warehouse.table("raw_transactions")} WHERE partition = CAST($day AS DATE)
    GROUP BY category ORDER BY category"""
"""Per category of the raw partition: ``rows``, ``amount_cents`` (sum) and ``mean_log``
(mean of ln amount_cents)."""

UNMAPPED_ROWS = f"""
    SELECT transaction_id, category, amount_cents FROM (
        SELECT r.transaction_id, r.category, r.amount_cents,
               row_number() OVER (PARTITION BY r.category ORDER BY r.transaction_id) AS k
        FROM {warehouse.table("raw_transactions")} r
        WHERE r.partition = CAST($day AS DATE) AND r.category NOT IN (
            SELECT raw_category FROM {warehouse.table("category_mapping")} WHERE version = $version)) u
    WHERE k <= $cap ORDER BY category, transaction_id"""
"""The partition's rows whose category the mapping version does not know, at most ``cap``
per category — none on a clean night (the one coverage statistic that returns rows)."""

VALUE_COLUMNS = ("channel",)
"""Raw columns whose values :func:`value_counts` counts (the identifier whitelist)."""

UNSEEN_CUSTOMERS = f"""
    SELECT feature, count(DISTINCT customer_id) AS customers FROM {warehouse.table("imputation_log")}
    WHERE partition = CAST($day AS DATE) AND reason = $reason GROUP BY feature ORDER BY feature"""
"""Customers with an unseen level, per categorical feature."""

CUSTOMERS_WITH = f"""
    SELECT count(DISTINCT customer_id) AS customers FROM {warehouse.table("imputation_log")}
    WHERE partition = CAST($day AS DATE) AND reason = $reason"""
"""Customers with at least one ledger cell of a reason (any feature)."""


def category_counts(q, day) -> pd.DataFrame:
    return q.statistic(CATEGORY_COUNTS, {"day": day})


def unmapped_rows(q, day, mapping_version: str, cap: int = UNMAPPED_ROWS_CAP) -> pd.DataFrame:
    return q.statistic(UNMAPPED_ROWS, {"day": day, "version": mapping_version, "cap": cap})


def value_counts(q, day, column: str) -> pd.DataFrame:
    """Rows per value of one raw column (``value, rows``; missing values as one NULL row)."""
    if column not in VALUE_COLUMNS:
        raise ValueError(f"no value counts for column {column!r}")
    return q.statistic(
        f"""
        SELECT "{column}" AS value, count(*) AS rows FROM {warehouse.table("raw_transactions")}
        WHERE partition = CAST($day AS DATE) GROUP BY "{column}" ORDER BY rows DESC, value""",
        {"day": day},
    )


def customers_with(q, day, reason: str) -> int:
    out = q.statistic(CUSTOMERS_WITH, {"day": day, "reason": reason})
    return int(out["customers"].iloc[0]) if len(out) else 0


def _poisson_p(observed: int, expected: float) -> float:
    """Two-sided Poisson p-value of ``observed`` given ``expected``."""
    if expected <= 0:
        return 1.0 if observed == 0 else 0.0
    return float(min(1.0, 2 * min(poisson.cdf(observed, expected), poisson.sf(observed - 1, expected))))


def night_counts(night: pd.DataFrame, mapping: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From a partition's rows (``transaction_id, category, amount_cents``): the per-category
    counts and the unmapped rows that :func:`category_coverage` judges: the row-level
    definition of :data:`CATEGORY_COUNTS` and :data:`UNMAPPED_ROWS` (uncapped)."""
    logs = np.log(night["amount_cents"].astype("float64"))
    counts = (
        night.assign(log=logs)
        .groupby("category")
        .agg(rows=("log", "size"), amount_cents=("amount_cents", "sum"), mean_log=("log", "mean"))
        .reset_index()
    )
    unmapped = night[~night["category"].isin(set(mapping["raw_category"]))]
    return counts, unmapped.sort_values(["category", "transaction_id"])[["transaction_id", "category", "amount_cents"]]


def category_coverage(
    categories: pd.DataFrame, unmapped: pd.DataFrame, mapping: pd.DataFrame, max_unmapped_share: float
) -> Verdict:
    """``categories``: the partition's rows per category (``category, rows,
    amount_cents``); ``unmapped``: rows of the categories the mapping does not know
    (``transaction_id, category, amount_cents``; possibly capped per category — the counts
    come from ``categories``). ``mapping``: the current category mapping with its training
    volumes and amounts."""
    n = int(categories["rows"].sum())
    known = set(mapping["raw_category"])
    counted = categories[~categories["category"].isin(known)]
    unmapped_rows = int(counted["rows"].sum())
    share = unmapped_rows / n if n else 0.0
    amount_share = float(counted["amount_cents"].sum() / categories["amount_cents"].sum()) if n else 0.0

    samples = (
        unmapped.sort_values("transaction_id").groupby("category")["transaction_id"].agg(lambda s: ", ".join(s.head(3)))
    )
    unseen = counted[["category", "rows", "amount_cents"]].sort_values("rows", ascending=False, kind="stable")
    unseen = unseen.assign(sample_ids=unseen["category"].map(samples).fillna("")).reset_index(drop=True)
    unseen["share"] = unseen["rows"] / max(n, 1)
    unseen["mean_amount"] = unseen["amount_cents"] / unseen["rows"] / 100

    # Reference: each canonical category's share of training rows and its mean amount.
    training = mapping[mapping["origin"] == "training"]
    ref = training.groupby("canonical").agg(
        rows=("training_rows", "sum"),
        cents=("training_amount_cents", "sum"),
        log_amount_mean=("training_log_amount_mean", "mean"),
        log_amount_std=("training_log_amount_std", "mean"),
    )
    ref["expected_share"] = ref["rows"] / ref["rows"].sum()
    ref["mean_amount"] = ref["cents"] / ref["rows"].clip(lower=1) / 100
    canonical_of = dict(zip(mapping["raw_category"], mapping["canonical"]))
    observed = categories.groupby(categories["category"].map(canonical_of))["rows"].sum()
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

    suggestions = suggest_aliases(unmapped, dict(zip(counted["category"], counted["rows"])), ref.reset_index())
    aliases = {s["category"]: s["alias_to"] for s in suggestions if s["alias_to"] != "-"}
    passed = share <= max_unmapped_share
    summary = f"{share:.2%} of {n} rows have unmapped categories (threshold {max_unmapped_share:.2%})" + (
        f": {', '.join(unseen['category'])}" if len(unseen) else ""
    )
    return Verdict(
        passed=passed,
        severity="ERROR",
        summary=summary,
        figures={
            "rows": n,
            "unmapped_rows": unmapped_rows,
            "unmapped_share": share,
            "unmapped_amount_share": amount_share,
            "unseen_categories": ", ".join(unseen["category"]) or "-",
            "vanished_or_collapsed": ", ".join(f"{r.canonical} ({r.status})" for r in lost.itertuples()) or "-",
        },
        thresholds={"max_unmapped_share": max_unmapped_share},
        data={"suggested_aliases": aliases, "suggested_aliases_toml": aliases_toml(aliases) if aliases else "-"},
        tables={
            "unseen": unseen[["category", "rows", "share", "mean_amount", "sample_ids"]],
            "lost_categories": lost[["canonical", "status", "expected_rows", "observed_rows", "mean_amount", "p_value"]]
            if len(lost)
            else pd.DataFrame(),
            "suggestions": pd.DataFrame(suggestions, columns=SUGGESTION_COLUMNS),
        },
    )


def coverage_with_customers(
    categories: pd.DataFrame,
    unmapped: pd.DataFrame,
    mapping: pd.DataFrame,
    customers_with_unseen: int,
    scored_customers: int,
    max_unmapped_share: float,
    max_customer_share: float,
    unseen_by_feature: dict[str, int] | None = None,
) -> Verdict:
    """The row-level coverage verdict, plus the share of scored customers whose features
    hold an unseen level of any categorical feature (category, segment, region; from the
    imputation ledger, one figure per feature): either one fails it."""
    verdict = category_coverage(categories, unmapped, mapping, max_unmapped_share)
    share = customers_with_unseen / scored_customers if scored_customers else 0.0
    verdict.figures |= {"customers_with_unseen": int(customers_with_unseen), "customer_share": share}
    verdict.figures |= {
        f"unseen_share.{f}": n / scored_customers if scored_customers else 0.0
        for f, n in (unseen_by_feature or {}).items()
    }
    verdict.thresholds |= {"max_customer_share": max_customer_share}
    if share > max_customer_share:
        verdict.passed = False
        verdict.summary += f"; {share:.2%} of scored customers have an unseen category"
    return verdict


def value_coverage(counts: pd.DataFrame, vocabulary: set[str], column: str, max_unseen_share: float) -> Verdict:
    """Share of the night's rows whose ``column`` holds a value the training period never
    saw (missing values are not unseen: the missingness checks count those). A new
    channel is a new kind of traffic, never silently "not online". ``counts``: the
    night's rows per value (``value, rows``; missing values as a missing value)."""
    rows = int(counts["rows"].sum())
    present = counts.loc[counts["value"].map(lambda v: isinstance(v, str)).astype(bool)]  # bool: a day with no rows
    unseen = present[~present["value"].isin(vocabulary)].sort_values(["rows", "value"], ascending=[False, True])
    unseen_rows = int(unseen["rows"].sum())
    share = unseen_rows / rows if rows else 0.0
    table = pd.DataFrame({column: unseen["value"].astype(str).to_numpy(), "rows": unseen["rows"].to_numpy()})
    table["share"] = table["rows"] / max(rows, 1)
    return Verdict(
        passed=share <= max_unseen_share,
        severity="ERROR",
        summary=(
            f"{share:.2%} of {rows} rows have a {column} the training period never saw "
            f"(threshold {max_unseen_share:.2%})" + (f": {', '.join(table[column].head(8))}" if len(table) else "")
        ),
        figures={
            "rows": rows,
            "unseen_rows": unseen_rows,
            "unseen_share": share,
            "missing_rows": rows - int(present["rows"].sum()),
            f"unseen_{column}s": ", ".join(table[column]) or "-",
            "vocabulary_size": len(vocabulary),
        },
        thresholds={"max_unseen_share": max_unseen_share},
        tables={"unseen_values": table},
    )


def aliases_toml(aliases: dict[str, str]) -> str:
    """The ``[mapping]`` section that applies ``aliases``, ready to paste: every key and
    value a quoted TOML string (JSON's escapes are TOML's), so any name round-trips."""
    return (
        "[mapping]\naliases = { " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in aliases.items()) + " }"
    )


def suggest_aliases(unseen_rows: pd.DataFrame, rows: dict[str, int], volumes: pd.DataFrame) -> list[dict]:
    """One suggestion per unseen category. ``unseen_rows``: the unseen categories' rows
    (their amounts; a capped sample stands for all ``rows[category]`` of a category, its
    log-likelihood scaled up).

    *Renames and merges* explain categories that **vanished** tonight (no rows where the
    training shares expect some): each vanished category, or pair of them, is matched
    one-to-one to the unseen category that best explains it, by log-likelihood of

    * volume — the unseen row count under a Poisson with the rows the vanished
      category (or pair) is missing tonight, and
    * amounts — the unseen rows' log-amounts under the vanished category's training
      distribution (a normal fit; a two-component mixture for a pair), relative to the
      mixture of all categories' distributions.

    A match must beat "genuinely new" (score > 0). Unseen categories left over are *new*:
    the suggestion is the existing category with the closest amount profile, marked
    ``weak`` — mapping a new product onto an old category is an approximation to review.
    ``margin`` is the match's score in nats; ``confidence`` is ``strong`` above 2.

    Before any of that, a name that is a case or whitespace *variant* of a known category
    (``Groceries``, ``groceries ``) is suggested as an alias of it. After the matching, a
    name explained better as the merge of two vanished categories than as the rename of
    one of them is labelled a merge, and the name that had claimed the other half is left
    ``new``: a category that vanished into a merge is never a strong rename target."""
    vol = volumes.set_index("canonical")
    variants = {c: _normalised(c, set(vol.index)) for c in unseen_rows["category"].unique()}
    variants = {c: target for c, target in variants.items() if target is not None}
    unseen_rows = unseen_rows[~unseen_rows["category"].isin(set(variants))]
    deficit = (vol["expected_rows"] - vol["observed_rows"]).clip(lower=0.0)
    vanished = list(vol.index[(vol["observed_rows"] == 0) & (vol["expected_rows"] >= 1)])
    shares = vol["expected_rows"] / vol["expected_rows"].sum()

    def density(x: np.ndarray, names, weights) -> np.ndarray:
        return sum(
            wt * norm.pdf(x, vol.at[c, "log_amount_mean"], max(vol.at[c, "log_amount_std"], 0.1))
            for wt, c in zip(weights, names)
        )

    amounts = {c: np.log(r["amount_cents"].to_numpy(dtype="float64")) for c, r in unseen_rows.groupby("category")}
    volume = {c: max(int(rows.get(c, len(x))), len(x)) for c, x in amounts.items()}

    def amount_loglik(category: str, names: tuple[str, ...]) -> float:
        """Log-likelihood ratio of the category's amounts against "a category like any
        other": the mixture of every category's amount distribution, weighted by its share
        (a capped sample's sum scaled to the category's rows)."""
        x = amounts[category]
        weights = np.array([max(deficit[c], 0.5) for c in names])
        mine = density(x, names, weights / weights.sum())
        anyone = density(x, shares.index, shares.to_numpy())
        total = float(np.sum(np.log(np.maximum(mine, 1e-300)) - np.log(np.maximum(anyone, 1e-300))))
        return total if len(x) == volume[category] else total * volume[category] / len(x)

    hypotheses = [(c,) for c in vanished] + list(itertools.combinations(vanished, 2))
    options: dict[str, list] = {}
    for category in amounts:
        for hyp in hypotheses:
            lam = max(sum(deficit[c] for c in hyp), 0.5)
            n = volume[category]
            score = poisson.logpmf(n, lam) - poisson.logpmf(n, n) + amount_loglik(category, hyp)
            if score > 0:
                options.setdefault(category, []).append((score, hyp))
    chosen = _prefer_merges(_best_assignment(options), options)
    out = [
        {
            "category": c,
            "kind": "variant",
            "replaces": "-",
            "alias_to": target,
            "rows": 0,
            "missing_rows": 0.0,
            "margin": 0.0,
            "confidence": "strong: the same name up to case and spaces",
        }
        for c, target in sorted(variants.items())
    ]
    for category in sorted(amounts):
        if category in chosen:
            score, hyp = chosen[category]
            out.append(
                {
                    "category": category,
                    "kind": "rename" if len(hyp) == 1 else "merge",
                    "replaces": " + ".join(hyp),
                    "alias_to": max(hyp, key=lambda c: vol.at[c, "expected_rows"]),
                    "rows": volume[category],
                    "missing_rows": round(float(sum(deficit[c] for c in hyp)), 1),
                    "margin": round(float(score), 2),
                    "confidence": "strong" if score > 2 else "weak",
                }
            )
        else:
            nearest = max(
                (c for c in vol.index if vol.at[c, "observed_rows"] > 0), key=lambda c: amount_loglik(category, (c,))
            )
            out.append(
                {
                    "category": category,
                    "kind": "new",
                    "replaces": "-",
                    "alias_to": nearest,
                    "rows": volume[category],
                    "missing_rows": 0.0,
                    "margin": round(amount_loglik(category, (nearest,)), 2),
                    "confidence": "weak: new product, closest amount profile; review",
                }
            )
    return out


def _normalised(name: str, known: set[str]) -> str | None:
    """The known category ``name`` is a case/whitespace variant of (None: it is not)."""
    key = " ".join(str(name).split()).casefold()
    matches = [k for k in known if " ".join(str(k).split()).casefold() == key and k != name]
    return matches[0] if len(matches) == 1 else None


def _prefer_merges(chosen: dict[str, tuple], options: dict[str, list]) -> dict[str, tuple]:
    """Where a name renamed one vanished category but explains better as that category
    merged with another one, which a second name claimed as a rename, the first becomes
    the merge and the second is left unmatched (new)."""
    chosen = dict(chosen)
    for name, (score, hyp) in sorted(chosen.items()):
        if len(hyp) != 1 or name not in chosen:
            continue
        merges = [(s, h) for s, h in options.get(name, []) if len(h) == 2 and hyp[0] in h and s > score]
        for merge_score, pair in sorted(merges, reverse=True):
            other = next(c for c in pair if c != hyp[0])
            rivals = [n for n, (_, h) in chosen.items() if n != name and h == (other,)]
            free = not any(other in h for n, (_, h) in chosen.items() if n != name and n not in rivals)
            if free:
                for rival in rivals:
                    del chosen[rival]
                chosen[name] = (merge_score, pair)
                break
    return chosen


def _best_assignment(options: dict[str, list]) -> dict[str, tuple]:
    """Exhaustive search (a handful of names and vanished categories) for the highest
    total score in which no vanished category is claimed twice; a name may stay unmatched."""
    names = sorted(options)
    best: tuple[float, dict] = (0.0, {})

    def search(i: int, total: float, claimed: frozenset, chosen: dict) -> None:
        nonlocal best
        if i == len(names):
            if total > best[0]:
                best = (total, dict(chosen))
            return
        search(i + 1, total, claimed, chosen)  # leave this name unmatched
        for score, hyp in options[names[i]]:
            if claimed & set(hyp):
                continue
            chosen[names[i]] = (score, hyp)
            search(i + 1, total + score, claimed | set(hyp), chosen)
            del chosen[names[i]]

    search(0, 0.0, frozenset(), {})
    return best[1]


# --------------------------------------------------------------------------- loaders
def load_categories(step: Step) -> Inputs:
    version = registry.current_mapping_version(step.conn)
    day = step.night.day
    return Inputs(
        {
            "categories": category_counts(step, day),
            "unmapped": unmapped_rows(step, day, version),
            "mapping": registry.mapping(step.conn),
        },
        {"mapping_version": version},
    )


def load_channels(step: Step) -> Inputs:
    version = registry.current_mapping_version(step.conn)
    return Inputs(
        {
            "counts": value_counts(step, step.night.day, "channel"),
            "vocabulary": registry.channels(step.conn, version),
            "column": "channel",
        },
        {"mapping_version": version},
    )


def load_categories_and_customers(step: Step) -> Inputs:
    day = step.night.day
    base = load_categories(step)
    unseen = step.statistic(UNSEEN_CUSTOMERS, {"day": day, "reason": UNSEEN_CATEGORY})
    return Inputs(
        base.args
        | {
            "customers_with_unseen": customers_with(step, day, UNSEEN_CATEGORY),
            "scored_customers": encoded_rows(step, day),
            "unseen_by_feature": {f: int(n) for f, n in zip(unseen["feature"], unseen["customers"])},
        },
        base.extras,
    )
