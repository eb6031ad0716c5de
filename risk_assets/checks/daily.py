"""Slow one-directional change, from independent daily statistics of the raw layer.

Rolling-window features overlap from one night to the next, so their nightly means are
not independent and a CUSUM over them cries wolf. Each raw day, by contrast, is new data.
Three daily statistics describe a day's transactions:

* ``amount_level`` — the mean of ``ln(amount) − the category's training mean ln(amount)``:
  prices moving, independent of tonight's category mix;
* ``online_share`` — the share of rows through the channels the features count as online;
* ``risky_share`` — the share of rows in the cash, transfer and gambling categories.

Each is standardised by its in-control level and spread (per weekday level; between-day
spread plus the day's own sampling error, so a quiet Sunday counts for less), and a
two-sided CUSUM runs over the nights since monitoring began. Thresholds are calibrated
when the model is trained: the calibration days (raw days before and during validation,
never used for anything else by this monitor) are resampled into long in-control
sequences and ``h`` is raised until the measured average run length to a false alarm
reaches the stated target — one WARN in ``warn_arl`` nights, one ERROR in ``error_arl``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from risk_assets.checks import Inputs, Refused, Step, Verdict, day_frame
from risk_assets.settings import Settings
from risk_assets.store import registry, warehouse

STATISTICS: tuple[str, ...] = ("amount_level", "online_share", "risky_share")
SIMULATED_RUNS = 300

# --------------------------------------------------------------------------- statistic
AGGREGATES = f"""
    WITH m AS (SELECT raw_category, canonical FROM {warehouse.table("category_mapping")} WHERE version = $v),
    ref AS (SELECT raw_category, training_log_amount_mean AS mu FROM {warehouse.table("category_mapping")}
            WHERE version = $v AND origin = 'training'),
    cv AS (SELECT channel FROM {warehouse.table("channel_vocabulary")} WHERE version = $v)
    SELECT r.partition, count(ref.mu) AS rows,
           coalesce(sum(ln(r.amount_cents) - ref.mu), 0) AS dev_sum,
           coalesce(sum((ln(r.amount_cents) - ref.mu) * (ln(r.amount_cents) - ref.mu)), 0) AS dev_sq,
           count(*) AS all_rows, count(m.canonical) AS mapped_rows,
           count(m.canonical) FILTER (WHERE list_contains($risky, m.canonical)) AS risky_rows,
           count(cv.channel) AS channel_rows,
           count(cv.channel) FILTER (WHERE list_contains($online, r.channel)) AS online_rows
    FROM {warehouse.table("raw_transactions")} r LEFT JOIN m ON m.raw_category = r.category
    LEFT JOIN ref ON ref.raw_category = r.category LEFT JOIN cv ON cv.channel = r.channel
    WHERE r.partition BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)
    GROUP BY r.partition ORDER BY r.partition"""
"""Per raw partition, the monitor's aggregates, each over the rows it can judge without
duplicating another check's verdict:

* ``rows``, ``dev_sum``, ``dev_sq`` — rows whose raw category is a training category, and
  their ln(amount) minus that category's training mean (renamed and new categories mapped
  by alias have no amount profile of their own);
* ``all_rows``, ``mapped_rows``, ``risky_rows`` — all rows, rows with a mapped category,
  and mapped rows whose canonical category is a cash, transfer or gambling one;
* ``channel_rows``, ``online_rows`` — rows whose channel is in the mapping version's
  channel vocabulary, and those of them the features count as online (missing and unseen
  channels are the missingness and coverage checks' to judge)."""


def aggregates_of(
    raw: pd.DataFrame, mapping: pd.DataFrame, channels: set[str], online: list[str], risky: list[str]
) -> pd.DataFrame:
    """The row-level definition of :data:`AGGREGATES` over raw rows (``partition, category,
    channel, amount_cents``), one mapping version and its channel vocabulary."""
    canonical = raw["category"].map(dict(zip(mapping["raw_category"], mapping["canonical"])))
    training = mapping[mapping["origin"] == "training"]
    dev = np.log(raw["amount_cents"].astype("float64")) - raw["category"].map(
        dict(zip(training["raw_category"], training["training_log_amount_mean"]))
    )
    known = raw["channel"].isin(channels)
    frame = pd.DataFrame(
        {
            "partition": raw["partition"],
            "dev": dev,
            "mapped": canonical.notna(),
            "risky": canonical.isin(risky),
            "known": known,
            "online": known & raw["channel"].isin(online),
        }
    )
    out = frame.groupby("partition").agg(
        rows=("dev", "count"),
        dev_sum=("dev", "sum"),
        dev_sq=("dev", lambda d: float((d**2).sum())),
        all_rows=("dev", "size"),
        mapped_rows=("mapped", "sum"),
        risky_rows=("risky", "sum"),
        channel_rows=("known", "sum"),
        online_rows=("online", "sum"),
    )
    return out.reset_index()


def aggregates(q, first: dt.date, last: dt.date, mapping_version: str, settings: Settings) -> pd.DataFrame:
    """:data:`AGGREGATES` for partitions ``first .. last`` under ``settings``' share groups."""
    vocabulary = settings.features.vocabulary()
    risky = [*vocabulary.cash, *vocabulary.transfer, *vocabulary.gambling]
    return day_frame(
        q.statistic(
            AGGREGATES,
            {"v": mapping_version, "online": list(vocabulary.online), "risky": risky, "first": first, "last": last},
        )
    )


def calibration(q, settings: Settings) -> dict:
    """The monitor's levels and thresholds from the raw days up to the end of validation
    (computed when a model is trained and stored in its card)."""
    c, last = settings.checks, settings.training.validation_end
    first = last - dt.timedelta(days=c.daily_calibration_days - 1)
    days = aggregates(q, first, last, registry.current_mapping_version(q.conn), settings)
    return calibrate(
        daily_statistics(days, c.coverage_max_unmapped_share), c.daily_k, c.daily_warn_arl, c.daily_error_arl
    )


# --------------------------------------------------------------------------- guard


def daily_statistics(days: pd.DataFrame, max_unmapped_share: float = 1.0) -> pd.DataFrame:
    """``days``: per partition the warehouse's aggregates (``rows, dev_sum, dev_sq`` over
    rows of training categories; ``all_rows, mapped_rows, risky_rows``; ``channel_rows,
    online_rows`` over known channels). Returns ``partition, weekday, statistic, value, se``.

    A night whose unmapped share exceeds ``max_unmapped_share`` (the coverage tolerance)
    has no risky share: vanished and renamed categories would move it, and coverage is
    the check that judges them."""

    def share(part: pd.Series, whole: pd.Series) -> tuple[pd.Series, pd.Series]:
        p = part / whole
        return p, np.sqrt((p * (1 - p)).clip(lower=1e-6) / whole)

    out = []
    amount = days[days["rows"] > 0]
    n = amount["rows"].astype("float64")
    mean = amount["dev_sum"] / n
    var = (amount["dev_sq"] / n - mean**2).clip(lower=0)
    online = days[days["channel_rows"] > 0]
    covered = days[(days["mapped_rows"] > 0) & (1 - days["mapped_rows"] / days["all_rows"] <= max_unmapped_share)]
    for stat, frame, (value, se) in (
        ("amount_level", amount, (mean, np.sqrt(var / n))),
        ("online_share", online, share(online["online_rows"], online["channel_rows"].astype("float64"))),
        ("risky_share", covered, share(covered["risky_rows"], covered["mapped_rows"].astype("float64"))),
    ):
        out.append(
            pd.DataFrame(
                {
                    "partition": frame["partition"].to_numpy(),
                    "statistic": stat,
                    "value": value.to_numpy(),
                    "se": se.to_numpy(),
                }
            )
        )
    frame = pd.concat(out, ignore_index=True)
    frame["weekday"] = [d.weekday() for d in frame["partition"]]
    return frame


def _levels(calibration: pd.DataFrame) -> dict:
    """Per statistic: the in-control level per weekday and the between-day spread."""
    levels = {}
    for stat, g in calibration.groupby("statistic"):
        overall = float(np.average(g["value"], weights=1 / g["se"] ** 2))
        by_day = g.groupby("weekday")["value"].mean()
        counts = g.groupby("weekday").size()
        weekday = {int(d): float(by_day[d]) if counts[d] >= 4 else overall for d in range(7) if d in by_day.index}
        resid = g["value"] - g["weekday"].map(lambda d, level=weekday, fallback=overall: level.get(d, fallback))
        tau2 = max(0.0, float(np.var(resid, ddof=1) - np.mean(g["se"] ** 2))) if len(g) > 2 else 0.0
        levels[stat] = {"overall": overall, "weekday": {str(d): v for d, v in weekday.items()}, "tau": tau2**0.5}
    return levels


def standardise(frame: pd.DataFrame, levels: dict) -> pd.DataFrame:
    """Adds ``z``: (value − weekday level) / sqrt(tau² + se²)."""
    frame = frame[frame["statistic"].isin(list(levels))].copy()
    level = [
        levels[s]["weekday"].get(str(d), levels[s]["overall"]) for s, d in zip(frame["statistic"], frame["weekday"])
    ]
    tau = frame["statistic"].map(lambda s: levels[s]["tau"])
    frame["z"] = (frame["value"] - level) / np.sqrt(tau**2 + frame["se"] ** 2)
    return frame


def cusum(z: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower CUSUM paths of standardised values."""
    up, down = np.zeros(len(z)), np.zeros(len(z))
    s_up = s_down = 0.0
    for i, value in enumerate(z):
        s_up = max(0.0, s_up + value - k)
        s_down = max(0.0, s_down - value - k)
        up[i], down[i] = s_up, s_down
    return up, down


def change_point(path: np.ndarray) -> int:
    """Page's estimate of where a CUSUM path's change began: the first night after the path
    last stood at zero (index into ``path``; 0 when it never did)."""
    zeros = np.flatnonzero(path <= 0.0)
    return int(zeros[-1]) + 1 if len(zeros) else 0


def _fit(design: np.ndarray, y: np.ndarray) -> float:
    """Residual sum of squares of a least-squares fit."""
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(((y - design @ coef) ** 2).sum())


ONSET_BASELINE = 7
"""Nights before Page's estimate that the onset fit reads as the level before the change."""


def onset(z: np.ndarray, path: np.ndarray) -> tuple[int, str]:
    """When the change of one CUSUM side began and how: ``(index, "sudden" | "gradual")``.
    Over the nights from a week before Page's estimate (:func:`change_point`) to tonight, two
    models are fitted, each with its change night searched: a **step** (one level before,
    another after: a unit change, a clipped feed, a lost region) and a **ramp** (flat, then
    rising by the same amount every night: a trend). The better fit names the kind and its
    change night the start; a tie (one night after the change fits both) is a step."""
    n = len(z)
    lo = max(0, change_point(path) - ONSET_BASELINE)
    y, t = z[lo:], np.arange(lo, n, dtype=float)
    if len(y) < 2:
        return lo, "sudden"
    best = {}
    for kind in ("step", "ramp"):
        fits = []
        for tau in range(lo + 1, n):
            after = t >= tau
            column = after.astype(float) if kind == "step" else np.where(after, t - tau + 1, 0.0)
            fits.append((_fit(np.column_stack([np.ones_like(t), column]), y), tau))
        best[kind] = min(fits)
    (step_rss, step_tau), (ramp_rss, ramp_tau) = best["step"], best["ramp"]
    return (step_tau, "sudden") if step_rss <= ramp_rss + 1e-9 else (ramp_tau, "gradual")


def _peak_paths(days: np.ndarray, k: float, horizon: int, rng: np.random.Generator) -> np.ndarray:
    """Resampled in-control sequences of calibration days (rows of ``days``: one day's z
    per statistic): for each run and night, the largest CUSUM so far over statistics and
    sides. The first night it exceeds ``h`` is that run's false alarm."""
    seq = days[rng.integers(0, len(days), size=(SIMULATED_RUNS, horizon))]
    up = np.zeros((SIMULATED_RUNS, days.shape[1]))
    down = np.zeros_like(up)
    peak = np.zeros((SIMULATED_RUNS, horizon))
    for t in range(horizon):
        up = np.maximum(0.0, up + seq[:, t] - k)
        down = np.maximum(0.0, down - seq[:, t] - k)
        peak[:, t] = np.maximum(up.max(axis=1), down.max(axis=1))
    return np.maximum.accumulate(peak, axis=1)


def average_run_length(peaks: np.ndarray, h: float) -> float:
    """Mean nights to the first alarm at threshold ``h`` (runs without one count as the
    whole horizon: a lower bound)."""
    over = peaks > h
    first = np.where(over.any(axis=1), over.argmax(axis=1) + 1, peaks.shape[1])
    return float(first.mean())


def calibrate(calibration: pd.DataFrame, k: float, warn_arl: float, error_arl: float, seed: int = 7) -> dict:
    """Levels and thresholds from the calibration days' statistics (see the module text).
    ``h`` is the smallest on a 0.25 grid whose measured average run length reaches the
    target, on resampled sequences three times as long as the ERROR target."""
    levels = _levels(calibration)
    z = standardise(calibration, levels).pivot(index="partition", columns="statistic", values="z").dropna()
    if len(z) < 20:
        raise ValueError(f"need at least 20 calibration days for the daily drift monitor, got {len(z)}")
    peaks = _peak_paths(z.to_numpy(), k, int(3 * error_arl), np.random.default_rng(seed))
    grid = np.arange(1.0, 40.0, 0.25)
    arls = [average_run_length(peaks, h) for h in grid]

    def first(target: float) -> tuple[float, float]:
        for h, arl in zip(grid, arls):
            if arl >= target:
                return float(h), arl
        return float(grid[-1]), arls[-1]

    (h_warn, arl_warn), (h_error, arl_error) = first(warn_arl), first(error_arl)
    replay = np.array([max(p) for p in [np.maximum(*cusum(z[c].to_numpy(), k)) for c in z.columns]])
    return {
        "k": k,
        "levels": levels,
        "statistics": list(z.columns),
        "calibration_days": len(z),
        "first_day": str(z.index.min()),
        "last_day": str(z.index.max()),
        "h_warn": h_warn,
        "arl_warn": arl_warn,
        "target_arl_warn": warn_arl,
        "h_error": h_error,
        "arl_error": arl_error,
        "target_arl_error": error_arl,
        "calibration_peak_cusum": float(replay.max()),
    }


def daily_drift(nights: pd.DataFrame, calibration: dict) -> Verdict:
    """Two-sided CUSUM of each daily statistic over the monitored nights (``nights``: the
    rows of :func:`daily_statistics`, oldest first) against the calibrated levels: WARN
    above ``h_warn``, ERROR above ``h_error``; the statistic that raised it on top."""
    k, h_warn, h_error = calibration["k"], calibration["h_warn"], calibration["h_error"]
    z = standardise(nights, calibration["levels"])
    rows = []
    for stat, g in z.groupby("statistic", sort=False):
        g = g.sort_values("partition")
        up, down = cusum(g["z"].to_numpy(), k)
        z_side = g["z"].to_numpy() if up[-1] >= down[-1] else -g["z"].to_numpy()
        direction, path = ("up", up) if up[-1] >= down[-1] else ("down", down)
        start, kind = onset(z_side, path)
        rows.append(
            {
                "statistic": stat,
                "nights": len(g),
                "last_value": float(g["value"].iloc[-1]),
                "last_z": float(g["z"].iloc[-1]),
                "cusum_up": float(up[-1]),
                "cusum_down": float(down[-1]),
                "direction": direction,
                "since": str(g["partition"].iloc[start]),
                "nights_since": len(g) - start,
                "onset": kind,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return Verdict(
            True, "WARN", "no monitored night yet", {"nights": 0}, {"k": k, "h_warn": h_warn, "h_error": h_error}
        )
    table["cusum"] = table[["cusum_up", "cusum_down"]].max(axis=1)
    table = table.sort_values("cusum", ascending=False, ignore_index=True)
    errors = table[table["cusum"] > h_error]
    alarms = table[table["cusum"] > h_warn]
    severity = "ERROR" if len(errors) else "WARN"
    nights_seen = int(table["nights"].max())
    return Verdict(
        passed=alarms.empty,
        severity=severity,
        summary=(
            ", ".join(
                f"{r.statistic} drifting {r.direction} (CUSUM {r.cusum:.1f}), {r.onset}, since {r.since}"
                + (" (tonight)" if r.nights_since == 1 else f" ({r.nights_since} nights)")
                for r in alarms.itertuples()
            )
            + f"; {nights_seen} night(s) monitored"
            if len(alarms)
            else f"no one-directional change in the daily statistics over {nights_seen} night(s)"
        ),
        figures={
            "nights": nights_seen,
            "alarms": len(alarms),
            "errors": len(errors),
            "change_point": str(alarms["since"].iloc[0]) if len(alarms) else "-",
            **{f"cusum.{r.statistic}": float(r.cusum) for r in table.itertuples()},
            **{f"value.{r.statistic}": float(r.last_value) for r in table.itertuples()},
        },
        thresholds={
            "k": k,
            "h_warn": h_warn,
            "h_error": h_error,
            "arl_warn": calibration["arl_warn"],
            "arl_error": calibration["arl_error"],
        },
        tables={"statistics": table},
    )


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    """The daily statistics of the nights since the deployed model's drift calibration
    (at most ``checks.daily_nights``), quarantined days left out (their own checks judged
    them; one bad day must not hold the monitor for months)."""
    night, settings = step.night, step.settings
    _, card = step.deployed_model()
    calibrated = card.reference.get("daily_drift")
    if calibrated is None:
        raise Refused(f"model {card.version} has no daily drift calibration: retrain it")
    first = max(
        dt.date.fromisoformat(calibrated["last_day"]) + dt.timedelta(days=1),
        night.days_back(settings.checks.daily_nights - 1),
    )
    days = aggregates(step, first, night.day, registry.current_mapping_version(step.conn), settings)
    verdicts = warehouse.raw_verdicts(step.conn, first, night.day)
    bad = set(verdicts.loc[~verdicts["passed"], "partition"]) - set(settings.override.accept_days)
    days = days[~days["partition"].isin(bad)]
    stats = daily_statistics(days, settings.checks.coverage_max_unmapped_share)
    accepted = list(settings.override.accept_drift)
    return Inputs(
        {"nights": stats[~stats["statistic"].isin(accepted)], "calibration": calibrated},
        {
            "model_version": card.version,
            "quarantined_days_left_out": len(bad),
            "accepted_drift": ", ".join(accepted) or "-",
        },
    )
