"""Drift bounds (``drift_bounds``): calibrated WARN/ERROR bands of each feature's distance
to the model's reference profile.

Slow one-directional change is watched on independent daily statistics of the raw layer
(:mod:`risk_assets.checks.daily`), not on the overlapping windows of these features."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

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
ONSET_NIGHTS = 30
"""Earlier nights examined for the start of a feature's out-of-band run (the longest
feature window: a change older than that has filled every window)."""


def moved(counts: np.ndarray, feature: str, reference: dict) -> dict:
    """Where a feature's distribution moved and which way: for a numeric feature, the bin
    whose share changed most and the direction of the whole distribution (mass moved to
    higher bins: up); for a categorical one, the level whose share changed most (up: it
    gained)."""
    ref = np.asarray(reference["numeric" if feature in reference["numeric"] else "categorical"][feature]["shares"])
    now = np.asarray(counts, dtype="float64") / max(float(np.sum(counts)), 1.0)
    k = int(np.argmax(np.abs(now - ref)))
    if feature in reference["numeric"]:
        edges = list(reference["numeric"][feature]["edges"])
        # mass above each edge, tonight against the reference: positive when it moved up
        shift = float(np.sum(np.cumsum(ref)[:-1] - np.cumsum(now)[:-1]))
        lo = "-inf" if k == 0 else f"{edges[k - 1]:.4g}"
        hi = "inf" if k == len(edges) else f"{edges[k]:.4g}"
        where = f"({lo}, {hi}]"
        direction = "up" if shift > 0 else "down"
    else:
        where = f"{reference['categorical'][feature]['levels'][k]!r}"
        direction = "up" if now[k] > ref[k] else "down"
    return {"direction": direction, "where": where, "share_then": float(ref[k]), "share_now": float(now[k])}


def onset(tonight: float, earlier: Iterable[float], warn: float, error: float) -> tuple[int, str]:
    """When a feature's out-of-band run began: ``earlier`` yields its distance on the nights
    before tonight, newest first (read only as far as needed). Returns (nights back: 0 is
    tonight; "sudden" when the run's first night was already beyond the ERROR band, else
    "gradual")."""
    back, first = 0, tonight
    for d in earlier:
        if not d > warn:
            break
        back, first = back + 1, d
    return back, "sudden" if first > error else "gradual"


def drift_bounds(
    counts: dict[str, np.ndarray],
    reference: dict,
    warn_alpha: float,
    error_alpha: float,
    min_psi: float = 0.0,
    min_js: float = 0.0,
    day: dt.date | None = None,
    earlier: Callable[[dt.date], dict[str, np.ndarray] | None] | None = None,
) -> Verdict:
    """``counts``: per monitored feature, tonight's rows per bin or level (:func:`profile`).

    Per monitored feature, tonight's distance to the reference against calibrated WARN
    and ERROR bands. A band is never below a materiality floor (``min_psi`` for numeric,
    ``min_js`` for categorical features; ERROR: 2.5× that): a stable population makes the
    calibrated band so tight that a one-point shift of a category share crosses it —
    detectable, but nothing an operator should act on.

    The reason of a feature out of its band says where it moved (the bin or level whose
    share changed most, from → to), which way, and since when: ``earlier(d)`` gives an
    earlier night's counts (None: not there), read back night by night while the feature was
    out of its WARN band, up to :data:`ONSET_NIGHTS` — sudden when that first night was
    already beyond the ERROR band, gradual otherwise."""
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
    said, first = [], {}
    if not passed:
        nights = _Earlier(day, earlier)
        for _, r in worst.head(3).iterrows():
            f = r["feature"]
            m = moved(counts[f], f, reference)
            back, kind = onset(
                r["distance"], (distance(c[f], f, reference) for c in nights), r["warn_at"], r["error_at"]
            )
            since = day - dt.timedelta(days=back) if day is not None else None
            when = "tonight" if back == 0 else f"since {since} ({back + 1} nights)"
            band = r["error_at"] if r["band"] == "ERROR" else r["warn_at"]
            said.append(
                f"{f} {m['direction']} ({r['metric']} {r['distance']:.3g}, band {band:.3g}): "
                f"share in {m['where']} {m['share_then']:.1%} → {m['share_now']:.1%}, {kind}, {when}"
            )
            if not first:
                first = {"feature": f, "direction": m["direction"], "where": m["where"], "onset": kind}
                first["since"] = str(since) if since is not None else "tonight"
    return Verdict(
        passed=passed,
        severity=severity,
        summary=(
            f"{len(errors)} feature(s) beyond the ERROR band, {len(warns)} in the WARN band"
            + (f": {'; '.join(said)}" if said else "")
            + (f" (+{len(worst) - 3} more)" if said and len(worst) > 3 else "")
        ),
        figures={
            "features_monitored": len(features),
            "error_band": len(errors),
            "warn_band": len(warns),
            **first,
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


class _Earlier:
    """The earlier nights' counts, newest first, read once each and only as far as a
    feature's walk back goes (up to :data:`ONSET_NIGHTS`, until a night is not there)."""

    def __init__(self, day: dt.date | None, earlier):
        self.day, self.earlier, self.read = day, earlier, []
        self.ended = day is None or earlier is None

    def __iter__(self):
        for back in range(1, ONSET_NIGHTS + 1):
            if back > len(self.read):
                if self.ended:
                    return
                counts = self.earlier(self.day - dt.timedelta(days=back))
                if counts is None:
                    self.ended = True
                    return
                self.read.append(counts)
            yield self.read[back - 1]


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    _, card = step.deployed_model()
    reference = card.reference
    monitored = monitored_features()
    day = step.night.day
    counts = _counts(step, day, reference, monitored)
    if not sum(int(c.sum()) for c in counts.values()):
        raise NotMaterialised(f"encoded_features[{day}] is empty: materialise it first")

    def earlier(d: dt.date) -> dict[str, np.ndarray] | None:
        """An earlier night's counts (None: not encoded), read only when a feature out of its
        band is walked back to its change point."""
        before = _counts(step, d, reference, monitored)
        return before if sum(int(c.sum()) for c in before.values()) else None

    inputs = {"counts": counts, "reference": reference, "day": day, "earlier": earlier}
    return Inputs(inputs, {"model_version": card.version})


def _counts(q, day: dt.date, reference: dict, monitored: list[str]) -> dict[str, np.ndarray]:
    counts = bin_counts(q, day, {f: reference["numeric"][f]["edges"] for f in monitored if f in reference["numeric"]})
    levels = level_counts(q, day, [f for f in monitored if f in reference["categorical"]])
    return counts | {f: stats.fold_levels(v, reference["categorical"][f]["levels"]) for f, v in levels.items()}
