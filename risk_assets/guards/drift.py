"""Drift bounds (calibrated WARN/ERROR bands) and the directional CUSUM monitor."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from risk_assets import stats
from risk_assets.features.spec import BY_NAME, CATEGORICAL, NUMERIC
from risk_assets.guards import Verdict


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


def distance(encoded: pd.DataFrame, feature: str, reference: dict) -> float:
    if feature in reference["numeric"]:
        ref = reference["numeric"][feature]
        return stats.psi(ref["shares"], stats.bin_shares(encoded[feature].to_numpy(dtype="float64"), ref["edges"]))
    ref = reference["categorical"][feature]
    return stats.js_distance(ref["shares"], stats.level_shares(encoded[feature], ref["levels"]))


def drift_bounds(encoded: pd.DataFrame, reference: dict, warn_alpha: float, error_alpha: float) -> Verdict:
    features = monitored_features()
    rows = []
    for f in features:
        daily = reference["daily"]["distance"][f]
        warn = calibrated_threshold(daily, warn_alpha, len(features))
        error = calibrated_threshold(daily, error_alpha, len(features))
        d = distance(encoded, f, reference)
        band = "ERROR" if d > error else "WARN" if d > warn else "ok"
        rows.append({"feature": f, "metric": "PSI" if f in reference["numeric"] else "JS",
                     "distance": d, "warn_at": warn, "error_at": error, "band": band,
                     "reference_days": len(daily)})
    table = pd.DataFrame(rows).sort_values("distance", key=lambda s: -s / pd.DataFrame(rows)["error_at"])
    errors, warns = table[table["band"] == "ERROR"], table[table["band"] == "WARN"]
    passed = errors.empty and warns.empty
    severity = "WARN" if len(warns) and errors.empty else "ERROR"
    worst = (errors if len(errors) else warns if len(warns) else table.head(1))
    return Verdict(
        passed=passed,
        severity=severity,
        summary=(f"{len(errors)} feature(s) beyond the ERROR band, {len(warns)} in the WARN band"
                 + (f": {', '.join(worst['feature'])}" if not passed else "")),
        figures={
            "features_monitored": len(features),
            "error_band": len(errors),
            "warn_band": len(warns),
            **{f"distance.{r['feature']}": float(r["distance"]) for r in rows},
        },
        thresholds={"warn_alpha_per_night": warn_alpha, "error_alpha_per_night": error_alpha},
        data={"calibration": "log-normal fit to leave-one-day-out training-day and out-of-time validation-day "
              "distances, Bonferroni across features; per-feature bands in the features table"},
        tables={"features": table},
    )


def cusum(z: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided upper and lower CUSUM paths of standardised values."""
    up, down = np.zeros(len(z)), np.zeros(len(z))
    s_up = s_down = 0.0
    for i, value in enumerate(z):
        s_up = max(0.0, s_up + value - k)
        s_down = max(0.0, s_down - value - k)
        up[i], down[i] = s_up, s_down
    return up, down


def drift_direction(nightly_means: pd.DataFrame, reference: dict, k: float, h: float) -> Verdict:
    """Does a feature's nightly mean keep moving one way, even inside the drift bands?

    ``nightly_means``: one row per night (``partition`` sorted), one column per numeric
    feature. Consecutive nights share most of a rolling window, so each feature is
    sampled once per window length (every 7th night for a 7-day feature, every 30th for
    a 30-day one, counting back from tonight) to keep the points roughly independent.
    Each point is standardised by the training period's spread of daily means; a
    CUSUM above ``h`` (slack ``k``) in either direction raises a WARN."""
    rows = []
    nightly_means = nightly_means.reset_index(drop=True)
    for f in monitored_features():
        if f not in reference["numeric"] or f not in nightly_means or nightly_means.empty:
            continue
        daily = np.asarray(reference["daily"]["mean"][f])
        sigma = daily.std(ddof=1) if daily.size > 1 else 0.0
        if not np.isfinite(sigma) or sigma == 0:
            continue
        step = BY_NAME[f].window_days or 1
        picked = nightly_means.iloc[::-1].iloc[::step].iloc[::-1]
        z = (picked[f].to_numpy(dtype="float64") - daily.mean()) / sigma
        up, down = cusum(z, k)
        rows.append({"feature": f, "every_nth_night": step, "points": len(z), "last_z": float(z[-1]),
                     "cusum_up": float(up[-1]), "cusum_down": float(down[-1])})
    table = pd.DataFrame(rows)
    alarms = table[(table["cusum_up"] > h) | (table["cusum_down"] > h)] if len(table) else table
    return Verdict(
        passed=alarms.empty,
        severity="WARN",
        summary=(f"{len(alarms)} feature(s) drifting one way: " + ", ".join(
            f"{r.feature} ({'up' if r.cusum_up > h else 'down'})" for r in alarms.itertuples())
            if len(alarms) else f"no one-sided drift over {len(nightly_means)} night(s)"),
        figures={"alarms": len(alarms), "nights": len(nightly_means),
                 "nights_from": str(nightly_means["partition"].min()) if len(nightly_means) else "-"},
        thresholds={"k": k, "h": h},
        # the feature that raised the alarm on top, whichever way it drifts
        tables={"cusum": table.assign(_worst=table[["cusum_up", "cusum_down"]].max(axis=1))
                .sort_values("_worst", ascending=False).drop(columns="_worst") if len(table) else table},
    )
