"""Feature parity (``feature_parity``): a seeded sample of tonight's served rows against the
same customers recomputed by the training execution, row by row — nightly, and in the
deployment gate on the most recent nights."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.core.features.spec import CATEGORICAL, NUMERIC
from risk_assets.core.night import Night
from risk_assets.engines import Engine
from risk_assets.settings import Settings
from risk_assets.store import registry, warehouse

# --------------------------------------------------------------------------- statistic
SERVED_CUSTOMERS = f"""SELECT customer_id FROM {warehouse.table("serving_features")}
    WHERE partition = CAST($day AS DATE) ORDER BY customer_id"""
"""Tonight's served customers, whom the sample is drawn from."""


def parity_sample(ids, size: int, seed: int, day: dt.date) -> list[str]:
    """The night's seeded sample of customer ids: the same night always draws the same
    sample, and every night a new one (so every weekday is covered over time)."""
    rng = np.random.default_rng([seed, day.toordinal()])
    ids = np.asarray(ids, dtype=object)
    n = min(size, len(ids))
    return sorted(rng.choice(ids, size=n, replace=False)) if n else []


def parity(
    serving: pd.DataFrame,
    training: pd.DataFrame,
    atol: float,
    rtol: float,
    bias_alpha: float,
    min_nonzero: int,
    categorical_tolerance: float = 0.0,
) -> Verdict:
    """Fails on any numeric difference beyond ``atol + rtol·|training|``, on a categorical
    feature differing in more than ``categorical_tolerance`` of the rows, on customers
    present on one side only, or on a significant one-sided bias (paired sign test,
    Bonferroni over numeric features) even when every single difference is inside
    tolerance."""
    s = serving.set_index("customer_id")
    t = training.set_index("customer_id")
    only_serving = sorted(set(s.index) - set(t.index))
    only_training = sorted(set(t.index) - set(s.index))
    common = s.index.intersection(t.index).sort_values()
    s, t = s.loc[common], t.loc[common]
    level = bias_alpha / len(NUMERIC)
    rows = []
    for f in NUMERIC:
        a, b = s[f].to_numpy(dtype="float64"), t[f].to_numpy(dtype="float64")
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, a - b)
        mismatch = np.where(both_nan, False, ~(np.abs(diff) <= atol + rtol * np.abs(b)))
        denom = np.abs(a) + np.abs(b)
        smape = np.where(denom > 0, 2 * np.abs(diff) / np.where(denom > 0, denom, 1), 0.0)
        rel = np.abs(diff) / np.maximum(np.abs(b), 1e-12)
        pos, neg = int(np.sum(diff > 0)), int(np.sum(diff < 0))
        p = binomtest(pos, pos + neg, 0.5).pvalue if pos + neg else 1.0
        biased = pos + neg >= min_nonzero and p < level
        rows.append(
            {
                "feature": f,
                "mismatches": int(np.nansum(mismatch)),
                "beyond_tolerance": bool(np.nansum(mismatch)),
                "mismatch_share": float(np.nanmean(mismatch)) if len(a) else 0.0,
                "max_abs_diff": float(np.nanmax(np.abs(diff))) if len(a) else 0.0,
                "max_rel_diff": float(np.nanmax(rel)) if len(a) else 0.0,
                "smape": float(np.nanmean(smape)) if len(a) else 0.0,
                "higher": pos,
                "lower": neg,
                "sign_p_value": float(p),
                "biased": bool(biased),
            }
        )
    for f in CATEGORICAL:
        mismatch = (s[f].astype(str) != t[f].astype(str)).to_numpy()
        share = float(mismatch.mean()) if len(mismatch) else 0.0
        rows.append(
            {
                "feature": f,
                "mismatches": int(mismatch.sum()),
                "beyond_tolerance": share > categorical_tolerance,
                "mismatch_share": share,
                "max_abs_diff": np.nan,
                "max_rel_diff": np.nan,
                "smape": np.nan,
                "higher": 0,
                "lower": 0,
                "sign_p_value": 1.0,
                "biased": False,
            }
        )
    table = pd.DataFrame(rows)
    bad = table[table["beyond_tolerance"] | table["biased"]]
    missing = len(only_serving) + len(only_training)
    passed = bad.empty and missing == 0
    summary = (
        "serving and training paths agree"
        if passed
        else (
            f"{int(table['beyond_tolerance'].sum())} feature(s) differ beyond tolerance, "
            f"{int(table['biased'].sum())} with a one-sided bias, {missing} customer(s) on one side only"
            + (f": {', '.join(bad['feature'].head(8))}" if len(bad) else "")
        )
    )
    return Verdict(
        passed=passed,
        severity="ERROR",
        summary=summary,
        figures={
            "sample": int(len(serving)),
            "compared": int(len(common)),
            "only_in_serving": len(only_serving),
            "only_in_training": len(only_training),
            "features_with_mismatches": int(table["beyond_tolerance"].sum()),
            "features_biased": int(table["biased"].sum()),
            "max_mismatch_share": float(table["mismatch_share"].max()) if len(table) else 0.0,
        },
        thresholds={
            "atol": atol,
            "rtol": rtol,
            "categorical_tolerance": categorical_tolerance,
            "bias_alpha": bias_alpha,
            "bias_level_per_feature": level,
            "min_nonzero": min_nonzero,
        },
        tables={"features": table.sort_values(["beyond_tolerance", "biased", "mismatches"], ascending=False)},
    )


# --------------------------------------------------------------------------- loader
def parity_inputs(
    engine: Engine, night: Night, settings: Settings, mapping_version: str, served: pd.DataFrame | None = None
) -> dict:
    """The parity guard's frames for one night: a seeded sample of the served rows
    (``served``; computed now by the engine's serving execution when None — the deployment
    gate) and the same customers recomputed by its training execution."""
    c, vocabulary = settings.checks, settings.features.vocabulary()
    if served is None:
        served = engine.serving_features(night, mapping_version, vocabulary)
    sample = parity_sample(served["customer_id"].to_numpy(), c.parity_sample, c.parity_seed, night.day)
    recomputed = engine.training_features([night], mapping_version, vocabulary, customers=sample)
    return {"serving": served[served["customer_id"].isin(sample)], "training": recomputed}


def load(step: Step) -> Inputs:
    c, night = step.settings.checks, step.night
    ids = step.statistic(SERVED_CUSTOMERS, {"day": night.day})["customer_id"].to_numpy()
    # only the sample's stored rows are read, not every customer's
    served = step.engine.rows(
        "serving_features", night.day, parity_sample(ids, c.parity_sample, c.parity_seed, night.day)
    )
    version = served.at[0, "mapping_version"] if len(served) else registry.current_mapping_version(step.conn)
    return Inputs(
        parity_inputs(step.engine, night, step.settings, version, served=served),
        {"mapping_version": version, "weekday": night.weekday},
    )
