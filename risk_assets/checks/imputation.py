"""Every substituted cell judged: the per-feature ceiling (``imputation_ceiling``) and
whether missingness is concentrated in a group rather than random (``missingness_pattern``),
both over the imputation ledger."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.core.features.encoding import UNSEEN_CATEGORY
from risk_assets.core.features.spec import BY_NAME, FEATURE_NAMES, FEATURES, WINDOWS
from risk_assets.store import registry, warehouse

# --------------------------------------------------------------------------- statistics
LEDGER_COUNTS = f"""
    SELECT feature, reason, count(*) AS cells, count(DISTINCT customer_id) AS customers
    FROM {warehouse.table("imputation_log")} WHERE partition = CAST($day AS DATE)
    GROUP BY feature, reason ORDER BY feature, reason"""
"""Substituted cells per feature and reason (row-level definition: :func:`ledger_counts`)."""

ENCODED_ROWS = f"""SELECT count(*) AS rows FROM {warehouse.table("encoded_features")}
    WHERE partition = CAST($day AS DATE)"""
"""Customers encoded (and scored) tonight."""


def ledger_cells(q, day) -> pd.DataFrame:
    return q.statistic(LEDGER_COUNTS, {"day": day})


def encoded_rows(q, day) -> int:
    return int(q.statistic(ENCODED_ROWS, {"day": day})["rows"].iloc[0])


def missing_cells(q, night, mapping_version: str) -> pd.DataFrame:
    """Per feature, the ledger's substituted cells and how many of them are coverage's to
    judge (``feature, cells, excused``): an unseen categorical level, or a NULL a feature
    has because the customer's 30-day window holds an unmapped category or a channel the
    training period never saw (``Feature.null_when``;
    :func:`coverage_cells` is its row-level definition)."""
    sql, params = _missingness_sql(night, mapping_version)
    return q.statistic(
        f"""{sql}
        SELECT feature, count(*) AS cells, CAST(sum(CASE WHEN excused THEN 1 ELSE 0 END) AS BIGINT) AS excused
        FROM cells GROUP BY feature ORDER BY feature""",
        params,
    )


def missingness_contingency(q, night, mapping_version: str, min_cells: int) -> pd.DataFrame:
    """For every feature with at least ``min_cells`` cells that are not coverage's, the
    scored customers counted by grouping, group and exposure: ``feature, dimension, grp, n,
    customers, hits`` — ``n`` the customer's transactions in the feature's window
    (``txn_count_<w>d``; the 30-day count for other windows), ``hits`` how many of them
    carry a substituted cell of the feature. Groupings: segment, region and
    ``uses:<category>`` (1 when the 30-day window holds the raw category)."""
    sql, params = _missingness_sql(night, mapping_version)
    enc = warehouse.table("encoded_features")
    return q.statistic(
        f"""{sql},
        tested AS (SELECT feature FROM cells WHERE NOT excused GROUP BY feature HAVING count(*) >= $min_cells),
        hit AS (SELECT DISTINCT feature, customer_id FROM cells WHERE NOT excused),
        base AS (
            SELECT t.feature, c.customer_id, c.segment, c.region,
                   CASE WHEN list_contains($exposure_7d, t.feature) THEN c.txn_count_7d
                        WHEN list_contains($exposure_14d, t.feature) THEN c.txn_count_14d
                        ELSE c.txn_count_30d END AS n,
                   CASE WHEN h.customer_id IS NULL THEN 0 ELSE 1 END AS is_hit
            FROM tested t CROSS JOIN (SELECT customer_id, segment, region, txn_count_7d, txn_count_14d,
                                             txn_count_30d FROM {enc} WHERE partition = CAST($day AS DATE)) c
            LEFT JOIN hit h ON h.feature = t.feature AND h.customer_id = c.customer_id),
        used AS (SELECT DISTINCT customer_id, category FROM win),
        categories AS (SELECT DISTINCT category FROM used)
        SELECT feature, 'segment' AS dimension, segment AS grp, n, count(*) AS customers, sum(is_hit) AS hits
        FROM base GROUP BY feature, segment, n
        UNION ALL
        SELECT feature, 'region' AS dimension, region AS grp, n, count(*) AS customers, sum(is_hit) AS hits
        FROM base GROUP BY feature, region, n
        UNION ALL
        SELECT b.feature, concat('uses:', k.category) AS dimension,
               CASE WHEN u.customer_id IS NULL THEN '0' ELSE '1' END AS grp, b.n,
               count(*) AS customers, sum(b.is_hit) AS hits
        FROM base b CROSS JOIN categories k
        LEFT JOIN used u ON u.customer_id = b.customer_id AND u.category = k.category
        GROUP BY b.feature, k.category, CASE WHEN u.customer_id IS NULL THEN '0' ELSE '1' END, b.n
        ORDER BY feature, dimension, grp, n""",
        params | {"min_cells": int(min_cells)},
    )


def _missingness_sql(night, mapping_version: str) -> tuple[str, dict]:
    first, last = night.scan_range(30)
    raw, ledger = warehouse.table("raw_transactions"), warehouse.table("imputation_log")
    params = {
        "day": night.day,
        "first": first,
        "last": last,
        "start": night.window_start(30),
        "end": night.as_of,
        "version": mapping_version,
        "unseen": UNSEEN_CATEGORY,
        "on_unmapped": [f.name for f in FEATURES if f.null_when == "unmapped_category"],
        "on_channel": [f.name for f in FEATURES if f.null_when == "unknown_channel"],
        **{f"exposure_{w}d": [f.name for f in FEATURES if f.window_days == w] or [""] for w in WINDOWS if w != 30},
    }
    return (
        f"""
        WITH win AS (
            SELECT DISTINCT customer_id, category, channel FROM {raw}
            WHERE partition BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)
              AND event_ts >= CAST($start AS TIMESTAMP) AND event_ts < CAST($end AS TIMESTAMP)),
        unmapped AS (SELECT DISTINCT customer_id FROM win WHERE category NOT IN (
            SELECT raw_category FROM {warehouse.table("category_mapping")} WHERE version = $version)),
        unseen_channel AS (SELECT DISTINCT customer_id FROM win WHERE channel IS NOT NULL AND channel NOT IN (
            SELECT channel FROM {warehouse.table("channel_vocabulary")} WHERE version = $version)),
        cells AS (
            SELECT l.feature, l.customer_id,
                   l.reason = $unseen
                   OR (list_contains($on_unmapped, l.feature) AND m.customer_id IS NOT NULL)
                   OR (list_contains($on_channel, l.feature) AND s.customer_id IS NOT NULL) AS excused
            FROM {ledger} l
            LEFT JOIN unmapped m ON m.customer_id = l.customer_id
            LEFT JOIN unseen_channel s ON s.customer_id = l.customer_id
            WHERE l.partition = CAST($day AS DATE))""",
        params,
    )


# --------------------------------------------------------------------------- guards and row-level definitions


def ledger_counts(ledger: pd.DataFrame) -> pd.DataFrame:
    """``feature, reason, cells, customers`` of ledger rows: the row-level definition of
    :data:`LEDGER_COUNTS`."""
    grouped = ledger.groupby(["feature", "reason"])["customer_id"]
    return pd.DataFrame({"cells": grouped.size(), "customers": grouped.nunique()}).reset_index()


def imputation_ceiling(cells: pd.DataFrame, rows: int, ceiling: float) -> Verdict:
    """Per feature: substituted cells / rows ≤ ceiling. Every feature's rate is reported.
    ``cells``: substituted cells per feature and reason (:func:`ledger_counts`)."""
    counts = cells.groupby("feature")["cells"].sum().reindex(list(FEATURE_NAMES), fill_value=0)
    reasons = (
        cells.pivot_table(index="feature", columns="reason", values="cells", aggfunc="sum", fill_value=0)
        if len(cells)
        else pd.DataFrame()
    )
    rates = counts / rows if rows else counts * 0.0
    table = pd.DataFrame({"feature": counts.index, "cells": counts.to_numpy(), "rate": rates.to_numpy()})
    for reason in reasons.columns:
        table[reason] = reasons[reason].reindex(counts.index, fill_value=0).to_numpy()
    over = table[table["rate"] > ceiling].sort_values("rate", ascending=False)
    worst = table.sort_values("rate", ascending=False).iloc[0]
    return Verdict(
        passed=over.empty,
        severity="ERROR",
        summary=(
            f"{len(over)} feature(s) above the {ceiling:.1%} imputation ceiling"
            + (f": {', '.join(over['feature'])}" if len(over) else "")
            + f"; worst {worst['feature']} at {worst['rate']:.2%}"
        ),
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


CONTINGENCY_COLUMNS = ["feature", "dimension", "grp", "n", "customers", "hits"]
"""Columns of the missingness contingency table (:func:`contingency`)."""


def contingency(
    ledger: pd.DataFrame,
    groups: pd.DataFrame,
    excused: pd.Series | None = None,
    exposure: pd.DataFrame | None = None,
    min_cells: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From the ledger's rows and one row per scored customer, the two small frames
    :func:`missingness_pattern` judges: the row-level definition of :func:`missing_cells`
    and :func:`missingness_contingency`.

    ``excused``: a mask over the ledger of the cells whose cause the coverage checks judge
    (:func:`coverage_cells`). ``groups``: ``customer_id`` plus grouping columns (segment,
    region, ``uses:<category>`` flags). ``exposure``: per customer (same order) the
    transactions in each window (``txn_count_<w>d``)."""
    excused = excused if excused is not None else pd.Series(False, index=ledger.index)
    cells = (
        pd.DataFrame({"feature": ledger["feature"], "excused": excused.to_numpy().astype(int)})
        .groupby("feature")
        .agg(cells=("excused", "size"), excused=("excused", "sum"))
        .reset_index()
    )
    kept = ledger[~excused.to_numpy()]
    sizes = kept.groupby("feature").size()
    customers = groups["customer_id"]
    parts = []
    for feature in sizes.index[sizes >= min_cells]:
        hit = customers.isin(set(kept.loc[kept["feature"] == feature, "customer_id"])).astype(int).to_numpy()
        n = _exposure(exposure, feature, len(customers))
        for col in (c for c in groups.columns if c != "customer_id"):
            frame = pd.DataFrame({"grp": groups[col].astype(str).to_numpy(), "n": n, "hits": hit})
            per = frame.groupby(["grp", "n"]).agg(customers=("hits", "size"), hits=("hits", "sum")).reset_index()
            parts.append(per.assign(feature=feature, dimension=col))
    columns = CONTINGENCY_COLUMNS
    table = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    return cells, table.sort_values(columns[:4]).reset_index(drop=True)


def missingness_pattern(
    cells: pd.DataFrame, contingency: pd.DataFrame, alpha: float, min_lift: float, min_cells: int
) -> Verdict:
    """Is a feature's missingness concentrated in one group, rather than random?

    ``cells``: per feature the ledger's substituted cells and how many of them are
    ``excused`` — their cause is coverage's to judge (:func:`coverage_cells`). They are
    left out — one verdict per cause: a few rows with odd category names, tolerated by
    coverage, must not block this night and the thirty nights their windows still hold them.

    ``contingency``: for every feature with at least ``min_cells`` remaining cells, the
    scored customers per grouping (``dimension``: segment, region, ``uses:<category>``),
    group (``grp``) and exposure ``n`` — the customer's transactions in the feature's
    window — with how many of them carry a substituted cell (``hits``). A value goes
    missing per *transaction*, so a busy customer is more likely to carry a missing cell
    even when missingness is perfectly random; the test is adjusted for that. Under random
    row-level missingness at rate ``p`` a customer with ``n`` transactions has a missing
    cell with probability ``1 − (1 − p)^n`` (``p`` fitted to the night). Per feature and
    grouping, observed cells per group are compared with that expectation (chi-square
    with Bernoulli variances). A pattern is flagged when the test is significant at
    ``alpha`` / number of tests (Bonferroni) *and* the worst group's observed/expected
    ratio is at least ``min_lift`` times that of the rest — so it fires on concentration
    even when the overall rate is under the ceiling, and not on busy customers being busy."""
    excused_cells = int(cells["excused"].sum()) if len(cells) else 0
    remaining = (
        (cells.set_index("feature")["cells"] - cells.set_index("feature")["excused"])
        if len(cells)
        else pd.Series(dtype="int64")
    )
    features = remaining[remaining >= min_cells]
    tests = []
    for feature, table in contingency.groupby("feature", sort=True):
        exposure = table[table["dimension"] == table["dimension"].iloc[0]].groupby("n")[["customers", "hits"]].sum()
        rate = _fitted_rate(
            exposure.index.to_numpy(dtype="float64"),
            exposure["customers"].to_numpy(dtype="float64"),
            float(exposure["hits"].sum()),
        )
        for dimension, rows in table.groupby("dimension", sort=True):
            test = _concentration(rows, rate)
            if test is not None:
                tests.append({"feature": feature, "grouping": dimension, "cells": int(rows["hits"].sum()), **test})
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
        summary=(
            "missingness is concentrated: "
            + "; ".join(
                f"{r.feature} in {r.grouping}={r.group} ({r.cells_in_group}/{r.cells} cells, lift {r.lift:.1f})"
                for r in top.itertuples()
            )
            if len(flagged)
            else f"no concentrated missingness ({len(frame)} tests, "
            f"{len(features)} feature(s) with ≥ {min_cells} cells)"
        ),
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


def _fitted_rate(n: np.ndarray, customers: np.ndarray, target: float) -> float:
    """The row-level rate ``p`` at which the expected number of customers with a missing
    cell, ``sum(customers * (1 - (1 - p)^n))``, equals the observed one (bisection)."""
    n = n.clip(min=0)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        p = (lo + hi) / 2
        if (customers * (1 - (1 - p) ** n)).sum() < target:
            lo = p
        else:
            hi = p
    return (lo + hi) / 2


def _concentration(rows: pd.DataFrame, rate: float) -> dict | None:
    """Observed against expected missing cells per group (``grp, n, customers, hits`` of
    one grouping): chi-square with Bernoulli variances (df = groups − 1), and the worst
    group's observed/expected ratio against the rest's."""
    q = 1 - (1 - rate) ** rows["n"].to_numpy(dtype="float64").clip(min=0)
    m = rows["customers"].to_numpy(dtype="float64")
    frame = pd.DataFrame(
        {"g": rows["grp"].to_numpy(), "o": rows["hits"].to_numpy(dtype="float64"), "e": m * q, "v": m * q * (1 - q)}
    )
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
    return {
        "group": worst,
        "cells_in_group": int(per.at[worst, "o"]),
        "expected_in_group": float(per.at[worst, "e"]),
        "group_ratio": float(ratio[worst]),
        "outside_ratio": float(rest),
        "lift": float(ratio[worst] / rest) if rest > 0 else float("inf"),
        "p_value": p,
    }


def category_usage(window: pd.DataFrame, customers: pd.Series) -> pd.DataFrame:
    """``uses:<category>`` flags per customer from (customer_id, category) rows."""
    usage = pd.crosstab(window["customer_id"], window["category"]) > 0
    usage.columns = [f"uses:{c}" for c in usage.columns]
    return usage.reindex(customers, fill_value=False).reset_index(drop=True).astype(np.int8)


# --------------------------------------------------------------------------- loaders
def load_ledger(step: Step) -> Inputs:
    day = step.night.day
    return Inputs({"cells": ledger_cells(step, day), "rows": encoded_rows(step, day)})


def load_missingness(step: Step) -> Inputs:
    """The ledger's cells per feature (with those coverage judges) and, for the features
    with enough of the rest, the contingency of customers by group and exposure — both
    aggregated by the engine; a night without substituted cells reads nothing else."""
    min_cells = step.settings.checks.missingness_min_cells
    none = pd.DataFrame(columns=CONTINGENCY_COLUMNS)
    if ledger_cells(step, step.night.day).empty:
        return Inputs({"cells": pd.DataFrame(columns=["feature", "cells", "excused"]), "contingency": none})
    version = registry.current_mapping_version(step.conn)
    cells = missing_cells(step, step.night, version)
    tested = (cells["cells"] - cells["excused"] >= min_cells).any()
    table = missingness_contingency(step, step.night, version, min_cells) if tested else none
    return Inputs({"cells": cells, "contingency": table})
