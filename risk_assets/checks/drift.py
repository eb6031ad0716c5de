"""Drift bounds (``drift_bounds``): calibrated WARN/ERROR bands of each feature's distance
to the model's reference profile.

Slow one-directional change is watched on independent daily statistics of the raw layer
(:mod:`risk_assets.checks.daily`), not on the overlapping windows of these features."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.core import stats
from risk_assets.core.features.spec import BY_NAME, CATEGORICAL, NUMERIC
from risk_assets.store import warehouse
from risk_assets.store.warehouse import NotMaterialised

# --------------------------------------------------------------------------- statistics
_MAX_DOUBLE = float(np.finfo("float64").max)
"""``-max <= v <= max`` holds for finite numbers only: NULL, NaN and ±inf fail it on both
engines (both order NaN above every number)."""


def _feature(name: str) -> str:
    if name not in BY_NAME:
        raise ValueError(f"{name!r} is not a feature of the spec")
    return f'"{name}"'


def bin_counts(q, day: dt.date, edges: dict[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """Per numeric feature, the encoded partition's finite values counted in the bins
    ``(-inf, e0], (e0, e1], …, (e_last, inf)`` — numpy's ``searchsorted(side="left")``,
    as the reference profile was counted at training (:func:`risk_assets.core.stats.bin_counts`;
    row-level definition: :func:`profile`)."""
    if not edges:
        return {}
    params: dict[str, object] = {"day": day, "max": _MAX_DOUBLE}
    parts = []
    for i, (name, feature_edges) in enumerate(edges.items()):
        column = _feature(name)
        above = []
        for k, edge in enumerate(feature_edges):
            params[f"e{i}_{k}"] = float(edge)
            above.append(f"CASE WHEN {column} > $e{i}_{k} THEN 1 ELSE 0 END")
        parts.append(f"""
            SELECT {i} AS f, {" + ".join(above) or "0"} AS bin, count(*) AS rows
            FROM {warehouse.table("encoded_features")}
            WHERE partition = CAST($day AS DATE) AND {column} >= -$max AND {column} <= $max
            GROUP BY 2""")
    rows = q.statistic(" UNION ALL ".join(parts), params)
    out = {}
    for i, (name, feature_edges) in enumerate(edges.items()):
        mine = rows[rows["f"] == i]
        counts = np.zeros(len(feature_edges) + 1, dtype="int64")
        counts[mine["bin"].to_numpy(dtype="int64")] = mine["rows"].to_numpy(dtype="int64")
        out[name] = counts
    return out


def level_counts(q, day: dt.date, features: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Per categorical feature, rows per value of the encoded partition (``value, rows``)."""
    if not features:
        return {}
    parts = [
        f"""SELECT {i} AS f, {_feature(name)} AS value, count(*) AS rows
                 FROM {warehouse.table("encoded_features")} WHERE partition = CAST($day AS DATE) GROUP BY 2"""
        for i, name in enumerate(features)
    ]
    rows = q.statistic(" UNION ALL ".join(parts), {"day": day})
    return {name: rows.loc[rows["f"] == i, ["value", "rows"]].reset_index(drop=True) for i, name in enumerate(features)}


# --------------------------------------------------------------------------- guard and row-level definition


def monitored_features() -> list[str]:
    return [f for f in (*NUMERIC, *CATEGORICAL) if BY_NAME[f].drift]


def calibrated_threshold(daily_distances: list[float], alpha: float, n_features: int) -> float:
    """Distance a clean night exceeds with probability ``alpha / n_features``.

    Fitted (log-normal) to the reference days' distances: training days left out one
    at a time, and validation days, which lie later in time like a serving night. With
    Bonferroni across features the nightly family-wise false-alarm rate is at most
    ``alpha`` if the fit holds; the measured rate is in the README."""
    logs = np.log(np.asarray(daily_distances, dtype="float64") + 1e-9)
    if logs.size < 5:
        raise ValueError(f"need at least 5 reference days to calibrate, got {logs.size}")
    z = norm.ppf(1.0 - alpha / n_features)
    return float(np.exp(logs.mean() + z * logs.std(ddof=1)))


def profile(encoded: pd.DataFrame, reference: dict) -> dict[str, np.ndarray]:
    """The night's counts per bin (numeric) or level (categorical) of each monitored
    feature, from a frame of encoded rows: the row-level definition of :func:`bin_counts`
    and :func:`level_counts`."""
    out = {}
    for f in monitored_features():
        if f in reference["numeric"]:
            out[f] = stats.bin_counts(encoded[f].to_numpy(dtype="float64"), reference["numeric"][f]["edges"])
        else:
            counts = encoded[f].value_counts(dropna=False)
            out[f] = stats.fold_levels(
                pd.DataFrame({"value": counts.index, "rows": counts.to_numpy()}), reference["categorical"][f]["levels"]
            )
    return out


def distance(counts: np.ndarray, feature: str, reference: dict) -> float:
    """PSI (numeric) or Jensen-Shannon distance (categorical) of one feature's counts."""
    shares = np.asarray(counts, dtype="float64") / max(float(np.sum(counts)), 1.0)
    if feature in reference["numeric"]:
        return stats.psi(reference["numeric"][feature]["shares"], shares)
    return stats.js_distance(reference["categorical"][feature]["shares"], shares)


ERROR_FLOOR_FACTOR = 2.5
"""The ERROR band's materiality floor, as a multiple of the WARN band's."""


def drift_bounds(
    counts: dict[str, np.ndarray],
    reference: dict,
    warn_alpha: float,
    error_alpha: float,
    min_psi: float = 0.0,
    min_js: float = 0.0,
) -> Verdict:
    """``counts``: per monitored feature, tonight's rows per bin or level (:func:`profile`).

    Per monitored feature, tonight's distance to the reference against calibrated WARN
    and ERROR bands. A band is never below a materiality floor (``min_psi`` for numeric,
    ``min_js`` for categorical features; ERROR: 2.5× that): a stable population makes the
    calibrated band so tight that a one-point shift of a category share crosses it —
    detectable, but nothing an operator should act on."""
    features = monitored_features()
    rows = []
    for f in features:
        daily = reference["daily"]["distance"][f]
        floor = min_psi if f in reference["numeric"] else min_js
        warn = max(calibrated_threshold(daily, warn_alpha, len(features)), floor)
        error = max(calibrated_threshold(daily, error_alpha, len(features)), ERROR_FLOOR_FACTOR * floor, warn)
        d = distance(counts[f], f, reference)
        band = "ERROR" if d > error else "WARN" if d > warn else "ok"
        rows.append(
            {
                "feature": f,
                "metric": "PSI" if f in reference["numeric"] else "JS",
                "distance": d,
                "warn_at": warn,
                "error_at": error,
                "band": band,
                "reference_days": len(daily),
            }
        )
    table = pd.DataFrame(rows).sort_values("distance", key=lambda s: -s / pd.DataFrame(rows)["error_at"])
    errors, warns = table[table["band"] == "ERROR"], table[table["band"] == "WARN"]
    passed = errors.empty and warns.empty
    severity = "WARN" if len(warns) and errors.empty else "ERROR"
    worst = errors if len(errors) else warns if len(warns) else table.head(1)
    return Verdict(
        passed=passed,
        severity=severity,
        summary=(
            f"{len(errors)} feature(s) beyond the ERROR band, {len(warns)} in the WARN band"
            + (f": {', '.join(worst['feature'])}" if not passed else "")
        ),
        figures={
            "features_monitored": len(features),
            "error_band": len(errors),
            "warn_band": len(warns),
            **{f"distance.{r['feature']}": float(r["distance"]) for r in rows},
        },
        thresholds={
            "warn_alpha_per_night": warn_alpha,
            "error_alpha_per_night": error_alpha,
            "min_psi": min_psi,
            "min_js": min_js,
            "error_floor_factor": ERROR_FLOOR_FACTOR,
        },
        data={
            "calibration": "log-normal fit to leave-one-day-out training-day and out-of-time validation-day "
            "distances, Bonferroni across features; per-feature bands in the features table"
        },
        tables={"features": table},
    )


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    _, card = step.deployed_model()
    reference = card.reference
    monitored = monitored_features()
    day = step.night.day
    counts = bin_counts(
        step, day, {f: reference["numeric"][f]["edges"] for f in monitored if f in reference["numeric"]}
    )
    levels = level_counts(step, day, [f for f in monitored if f in reference["categorical"]])
    counts |= {f: stats.fold_levels(v, reference["categorical"][f]["levels"]) for f, v in levels.items()}
    if not sum(int(c.sum()) for c in counts.values()):
        raise NotMaterialised(f"encoded_features[{day}] is empty: materialise it first")
    return Inputs({"counts": counts, "reference": reference}, {"model_version": card.version})
