"""The night profile (``night_profile``): every categorical column, every value, both
directions, the tails.

The other raw checks look at the night as one population: its volume, its amounts' level,
its most repeated amount. A region's feed lost, a channel's amounts clipped at a field's
limit or one segment's amounts sent in another unit moves none of them much — the total
looks normal while a subpopulation vanished or changed. The profile takes the night apart:
for every value of every categorical column of the transactions (``category``, ``channel``)
and of the customer attributes joined to them (``segment``, ``region``), and for the day as
a whole, one aggregate query counts rows and distinct customers and takes the amounts' low
(5th percentile), median, high tail (95th) and maximum and the share of the most repeated
amount. Exact quantiles (``quantile_disc``: an element of the rows, identical on DuckDB and
Spark), no approximate sketches.

Each statistic is judged **two-sided** against the same statistic on comparable earlier
days that were healthy: the same weekday in recent weeks (a source's Sunday is not its
Monday); a public holiday against the weekday whose recent days are closest to it in size (a
source that closes on holidays looks like its Sundays, one that trades as usual like an
ordinary day). The score is a robust z: the distance from the comparable days' median in units of
their median absolute deviation, floored by the statistic's sampling noise, and it counts
only when the change is also large (``min_ratio``): with a hundred statistics a night a
small z alone fires every night (``docs/checks.md``: the budget and how the thresholds were
calibrated)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from risk_assets.checks import Inputs, Step, Verdict, day_frame, per_partition, volume
from risk_assets.store import registry, warehouse

TRANSACTION_COLUMNS = ("category", "channel")
"""Categorical columns of the raw transactions the profile splits by."""
CUSTOMER_COLUMNS = ("segment", "region")
"""Categorical customer attributes the profile joins to the transactions and splits by."""
DAY = ("day", "all")
"""The (column, value) of the day as a whole."""

HISTORY_DAYS = 63
"""Days of history the profile reads (nine weeks: eight earlier same weekdays)."""
WEEKDAY_WEEKS = 8
"""Earlier same weekdays a statistic's comparable days are taken from."""
MIN_COMPARABLE_DAYS = 4
"""Comparable healthy days a value needs before it is judged."""
MIN_ROWS = 30
"""Rows a value must have (tonight, or typically on its comparable days) before its share
is judged, and rows on both sides before its amounts are."""
TAIL_MIN_ROWS = 100
"""Rows a value needs on both sides before its tails (5th and 95th percentile) are judged:
at least five rows beyond each, so one unusual row does not move them."""
MIN_SCALE = 0.02
"""Floor of a statistic's scale (natural log units): a statistic that never moved on its
comparable days does not turn a 2% step into a huge z."""
TOP_MIN_ROWS = 8
"""Rows the most repeated amount must hold before its share is judged (two equal amounts
on a small day are chance)."""

STATISTICS = {
    "rows_share": "share of the day's rows",
    "customers_share": "share of the day's customers",
    "low": "5th percentile of amounts",
    "median": "median amount",
    "high": "95th percentile of amounts",
    "max": "largest amount",
    "top_share": "share of rows at the most repeated amount",
}
"""What each judged statistic is, in the words a result uses."""

NULL_KEY = "\uffff(null)"
"""Stands for a NULL value where pandas groups and merges on ``value``. Not a NUL character:
numpy drops a string's trailing NULs and pandas hashes strings up to the first NUL, so a
``"\\0"`` stand-in turned into ``""``, merged NULL with an empty value and named it ``''``.
U+FFFF is a noncharacter, never found in text a source delivers."""

# --------------------------------------------------------------------------- statistic


MAPPED = {"category": "coalesce(m.canonical, r.category)"}
"""Transaction columns the profile reads through a vocabulary: a category by its canonical
name in the current mapping version (a raw name the mapping does not know, as delivered).
A rename or a merge that the mapping absorbs is no change of the population; an old and a
new raw name are one value on both sides of the change."""


def _long() -> str:
    joined = (
        "SELECT r.partition, r.customer_id, r.amount_cents, "
        + ", ".join(f"{MAPPED.get(c, f'r.{c}')} AS {c}" for c in TRANSACTION_COLUMNS)
        + ", "
        + ", ".join(f"c.{c}" for c in CUSTOMER_COLUMNS)
        + f" FROM {warehouse.table('raw_transactions')} r LEFT JOIN {warehouse.table('customers')} c "
        "ON r.customer_id = c.customer_id "
        f"LEFT JOIN {warehouse.table('category_mapping')} m "
        "ON m.raw_category = r.category AND m.version = CAST($version AS VARCHAR) "
        "WHERE r.partition BETWEEN CAST($first AS DATE) AND CAST($day AS DATE)"
    )
    parts = [f"SELECT partition, '{DAY[0]}' AS col, '{DAY[1]}' AS value, customer_id, amount_cents FROM j"] + [
        f"SELECT partition, '{c}' AS col, CAST({c} AS VARCHAR) AS value, customer_id, amount_cents FROM j"
        for c in (*TRANSACTION_COLUMNS, *CUSTOMER_COLUMNS)
    ]
    return f"j AS ({joined}), melted AS ({' UNION ALL '.join(parts)})"


PROFILE = per_partition(f"""
    WITH {_long()},
    profile AS (
        SELECT partition, col, value, count(*) AS rows, count(DISTINCT customer_id) AS customers,
               quantile_disc(amount_cents, 0.05) AS low_cents, quantile_disc(amount_cents, 0.5) AS median_cents,
               quantile_disc(amount_cents, 0.95) AS high_cents, max(amount_cents) AS max_cents
        FROM melted GROUP BY partition, col, value
    ),
    top AS (
        SELECT partition, col, value, max(n) AS top_rows FROM (
            SELECT partition, col, value, amount_cents, count(*) AS n FROM melted
            GROUP BY partition, col, value, amount_cents
        ) counted GROUP BY partition, col, value
    )
    SELECT p.partition, p.col, p.value, p.rows, p.customers, p.low_cents, p.median_cents, p.high_cents,
           p.max_cents, t.top_rows
    FROM profile p JOIN top t ON p.partition = t.partition AND p.col = t.col
        AND coalesce(p.value, '') = coalesce(t.value, '') AND (p.value IS NULL) = (t.value IS NULL)
    ORDER BY p.partition, p.col, p.value NULLS FIRST""")
"""Per raw day, per categorical column and value (and the day as a whole): rows, distinct
customers, the exact 5th/50th/95th percentile and the maximum of ``amount_cents``, and the
rows holding the most repeated amount."""

PROFILE_COLUMNS = (
    "partition",
    "col",
    "value",
    "rows",
    "customers",
    "low_cents",
    "median_cents",
    "high_cents",
    "max_cents",
    "top_rows",
)


def profile_of(raw: pd.DataFrame, customers: pd.DataFrame, mapping: pd.DataFrame | None = None) -> pd.DataFrame:
    """The row-level definition of :data:`PROFILE` over raw rows (``partition, customer_id,
    amount_cents`` and the transaction columns), the customers (``customer_id`` and the
    customer columns) and the current category mapping (``raw_category, canonical``; None:
    no mapping yet, categories as delivered)."""
    joined = raw.merge(customers[["customer_id", *CUSTOMER_COLUMNS]], on="customer_id", how="left")
    if mapping is not None:
        canonical = dict(zip(mapping["raw_category"], mapping["canonical"]))
        joined["category"] = [canonical.get(c, c) for c in joined["category"]]
    frames = []
    for col in (DAY[0], *TRANSACTION_COLUMNS, *CUSTOMER_COLUMNS):
        values = pd.Series(DAY[1], index=joined.index) if col == DAY[0] else joined[col]
        part = joined[["partition", "customer_id", "amount_cents"]].assign(col=col, value=values.astype(object))
        part["value"] = part["value"].where(part["value"].notna(), None)
        frames.append(part)
    long = pd.concat(frames, ignore_index=True)
    long["key"] = long["value"].map(lambda v: ("", True) if v is None else (v, False))
    rows = []
    for (partition, col, key), g in long.groupby(["partition", "col", "key"], sort=False):
        amounts = g["amount_cents"].to_numpy()
        low, median, high = np.quantile(amounts, [0.05, 0.5, 0.95], method="inverted_cdf")
        rows.append(
            {
                "partition": partition,
                "col": col,
                "value": None if key[1] else key[0],
                "rows": len(g),
                "customers": g["customer_id"].nunique(),
                "low_cents": int(low),
                "median_cents": int(median),
                "high_cents": int(high),
                "max_cents": int(amounts.max()),
                "top_rows": int(pd.Series(amounts).value_counts().max()),
            }
        )
    out = pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))
    out["null_first"] = out["value"].notna()
    out = out.sort_values(["partition", "col", "null_first", "value"]).drop(columns="null_first")
    return out.reset_index(drop=True)


def profile(q, first: dt.date, day: dt.date, mapping_version: str | None) -> pd.DataFrame:
    """:data:`PROFILE` on an engine, integers as integers (Spark returns exact quantiles as
    doubles), the value None where the column is NULL; categories by their canonical name in
    ``mapping_version`` (None: no mapping yet, as delivered)."""
    frame = day_frame(q.statistic(PROFILE, {"first": first, "day": day, "version": mapping_version or ""}))
    for column in PROFILE_COLUMNS[3:]:
        frame[column] = frame[column].astype("int64")
    frame["value"] = frame["value"].astype(object).where(frame["value"].notna(), None)
    return frame


# --------------------------------------------------------------------------- guard
def statistics(days: pd.DataFrame) -> pd.DataFrame:
    """The judged statistics of each (day, column, value), natural logs (a share or an
    amount moving by a factor moves its log by the factor's log, whatever its size):
    ``partition, col, value, rows, statistic, x``."""
    totals = days[days["col"] == DAY[0]].set_index("partition")[["rows", "customers"]]
    d = days.join(totals, on="partition", rsuffix="_day")
    logs = {
        "rows_share": np.log(d["rows"] / d["rows_day"]),
        "customers_share": np.log(d["customers"] / d["customers_day"]),
        "low": np.log(d["low_cents"]),
        "median": np.log(d["median_cents"]),
        "high": np.log(d["high_cents"]),
        "max": np.log(d["max_cents"]),
        "top_share": np.log(d["top_rows"] / d["rows"]),
    }
    frames = []
    for name, x in logs.items():
        part = d[["partition", "col", "value", "rows", "rows_day", "top_rows"]].assign(statistic=name, x=x)
        if name.endswith("_share") and name != "top_share":
            part = part[part["col"] != DAY[0]]
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def comparable_days(day: dt.date, earlier: list[dt.date], holidays: frozenset[dt.date]) -> list[dt.date]:
    """The earlier healthy days a statistic of ``day`` is compared with: the ordinary days
    (public holidays apart) of the last :data:`WEEKDAY_WEEKS` weeks. :func:`judge` centres an
    ordinary day on its own weekday among them and a holiday on the weekday it looks like."""
    return [d for d in earlier if d not in holidays and 0 < (day - d).days <= 7 * WEEKDAY_WEEKS]


JUDGED = ("rows_share", "customers_share", "low", "median", "high", "top_share")
"""The statistics judged. A day's (or a value's) maximum is a single row: shown in the
profile, not judged — a tail clipped at a limit shows as amounts piling up at it
(``top_share``) and as a lower high tail."""


def like_weekday(stats: pd.DataFrame, day: dt.date, window: list[dt.date]) -> int:
    """The weekday a public holiday is judged as: the one whose recent days' size (rows, the
    median over the ``window``) is closest to the holiday's own, on a log scale. A source that
    closes on holidays looks like its Sundays (the same shops shut, the same values absent);
    one that trades as usual looks like an ordinary day. Tonight's own weekday when the window
    has no day of it."""
    rows = stats[(stats["col"] == DAY[0]) & (stats["statistic"] == "median")][["partition", "rows"]]
    tonight = rows.loc[rows["partition"] == day, "rows"]
    earlier = rows[rows["partition"].isin(window)]
    if tonight.empty or earlier.empty:
        return day.weekday()
    sizes = earlier.groupby([d.weekday() for d in earlier["partition"]])["rows"].median()
    distance = (np.log(sizes.astype(float)) - np.log(max(float(tonight.iloc[0]), 1.0))).abs()
    return int(distance.idxmin())


def judge(
    stats: pd.DataFrame, day: dt.date, window: list[dt.date], min_ratio: float, holiday: bool = False
) -> pd.DataFrame:
    """Each judged statistic of ``day`` against the healthy ``window`` days: the centre is
    the median of the same weekday's days (on a public holiday, of the weekday it looks like:
    :func:`like_weekday`); the scale is the
    median absolute deviation of every window day from its own weekday's median (pooled over
    the weekdays: eight same-weekday points alone give an unstable spread), floored by the
    statistic's sampling noise. ``z`` (robust, signed) and ``ratio`` (tonight over the centre,
    as a factor). A value present on the comparable days but absent tonight has lost its
    share: it is judged at half a row's share (an upper bound)."""
    weekday = like_weekday(stats, day, window) if holiday else day.weekday()
    stats = stats[stats["statistic"].isin(JUDGED)]
    key = ["col", "value", "statistic"]
    stats = stats.assign(value=stats["value"].fillna(NULL_KEY))
    ref = stats[stats["partition"].isin(window)].copy()
    tonight = stats[stats["partition"] == day]
    ref["weekday"] = [d.weekday() for d in ref["partition"]]
    ref["centre"] = ref.groupby([*key, "weekday"])["x"].transform("median")
    # each deviation in units of its day's sampling noise (1/sqrt(rows)): a small day (a
    # Sunday) spreads more, and tonight's scale is the pooled spread at tonight's size
    ref["deviation"] = (ref["x"] - ref["centre"]).abs() * np.sqrt(ref["rows"])
    same = ref[ref["weekday"] == weekday]
    grouped = same.groupby(key)
    summary = (
        pd.DataFrame(
            {
                "median": grouped["x"].median(),
                "days": grouped["x"].size(),
                "ref_rows": grouped["rows"].median(),
                "ref_top_rows": grouped["top_rows"].median(),
            }
        )
        .join(ref.groupby(key)["deviation"].median().rename("mad"))
        .reset_index()
    )
    table = summary.merge(tonight[[*key, "x", "rows", "top_rows"]], on=key, how="outer")
    day_rows = tonight.loc[tonight["col"] == DAY[0], "rows"]
    day_rows = int(day_rows.max()) if len(day_rows) else 0
    lost = table["x"].isna() & table["statistic"].eq("rows_share") & table["median"].notna()
    table.loc[lost, "x"] = np.log(0.5 / max(day_rows, 1))
    table.loc[lost, "rows"] = 0
    for column in ("rows", "ref_rows", "top_rows", "ref_top_rows", "days"):
        table[column] = table[column].fillna(0)
    share = table["statistic"].isin(["rows_share", "customers_share"]).to_numpy()
    # sampling noise of a log share: about 1/sqrt(expected rows)
    noise = np.where(share, 1.0 / np.sqrt(np.maximum(table["ref_rows"], 1.0)), MIN_SCALE)
    noise = np.where(table["statistic"] == "top_share", _top_count_noise(table), noise)
    size = np.sqrt(np.maximum(table["ref_rows"], 1.0))
    table["scale"] = np.maximum(1.4826 * table["mad"].fillna(0) / size, noise)
    table["z"] = (table["x"] - table["median"]) / table["scale"]
    table["ratio"] = np.exp(table["x"] - table["median"])
    judged = table["days"] >= MIN_COMPARABLE_DAYS
    judged &= np.where(
        share,
        np.maximum(table["rows"], table["ref_rows"]) >= MIN_ROWS,
        (table["rows"] >= MIN_ROWS) & (table["ref_rows"] >= MIN_ROWS),
    )
    tails = table["statistic"].isin(["low", "high"])
    judged &= ~tails | ((table["rows"] >= TAIL_MIN_ROWS) & (table["ref_rows"] >= TAIL_MIN_ROWS))
    judged &= (table["statistic"] != "top_share") | (table["top_rows"] >= TOP_MIN_ROWS)
    table["judged"] = judged & table["z"].notna()
    table["large"] = table["judged"] & (np.abs(np.log(table["ratio"])) >= np.log(min_ratio))
    table["value"] = table["value"].replace(NULL_KEY, None)
    return table


def _top_count_noise(table: pd.DataFrame) -> np.ndarray:
    """The sampling noise of ``top_share``, in its own (log) units, for each row of ``table``.

    The rows at the most repeated amount are a count: a handful on a large day at production
    size (5 one day, 9 the next is chance, and a pooled MAD of such counts is often zero). Its
    noise is the Poisson one, on the square-root scale where it is constant: tonight's count
    ``k`` against the count the comparable days' share expects at tonight's size, ``λ``, is
    ``2(√k − √λ)`` deviations. The log-unit noise returned makes the statistic's z exactly that
    when the pooled spread is smaller; ``1/√λ`` where the two counts are equal (its limit).
    A usual 5 reaching 9 is 1.5 deviations; 40 rows piled at one amount are 8.2, and a usual
    1 reaching 20 is 6.9."""
    expected = np.exp(table["median"].to_numpy(dtype=float)) * table["rows"].to_numpy(dtype=float)
    expected = np.maximum(np.nan_to_num(expected, nan=1.0), 1e-9)
    count = table["top_rows"].to_numpy(dtype=float)
    roots = 2.0 * (np.sqrt(count) - np.sqrt(expected))
    change = np.abs(table["x"].to_numpy(dtype=float) - table["median"].to_numpy(dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = np.where(np.abs(roots) > 1e-9, change / np.abs(roots), 1.0 / np.sqrt(np.maximum(expected, 1.0)))
    return np.where(np.isfinite(noise) & (noise > 0), noise, 1.0 / np.sqrt(np.maximum(expected, 1.0)))


def level(z, ratio, max_z: float, warn_z: float, large_ratio: float, large_z: float) -> np.ndarray:
    """The verdict of statistics that moved by at least ``min_ratio`` (``z``, ``ratio``
    arrays): "ERROR", "WARN" or "" — the one rule the check and its calibration share."""
    z, change = np.abs(np.asarray(z, dtype=float)), np.abs(np.log(np.asarray(ratio, dtype=float)))
    error = (z > max_z) | ((change >= np.log(large_ratio)) & (z > large_z))
    return np.where(error, "ERROR", np.where(z > warn_z, "WARN", ""))


def _what(row) -> str:
    subject = "the day" if row["col"] == DAY[0] else f"{row['col']} = {row['value']!r}"
    direction = "up" if row["z"] > 0 else "down"
    lost = row["statistic"] == "rows_share" and row["rows"] == 0
    if lost:
        return f"{subject} vanished (typically {row['ref_rows']:.0f} rows)"
    if row["statistic"] == "top_share":  # the count the statistic moves with
        counts = f"{row['top_rows']:.0f} of {row['rows']:.0f} rows tonight, typically {row['ref_top_rows']:.0f}"
        counts += f" of {row['ref_rows']:.0f}"
    else:
        counts = f"{row['rows']:.0f} rows tonight, typically {row['ref_rows']:.0f}"
    return f"{subject}: {STATISTICS[row['statistic']]} {direction} {row['ratio']:.2g}× (z {row['z']:+.1f}; {counts})"


def night_profile(
    days: pd.DataFrame,
    day: dt.date,
    healthy: list[dt.date],
    holidays: frozenset[dt.date],
    max_z: float,
    warn_z: float,
    min_ratio: float,
    large_ratio: float = 3.0,
    large_z: float = 4.0,
    baseline_from: dict[str, dt.date] | None = None,
    mapping_version: str | None = None,
) -> Verdict:
    """ERROR when any statistic of any value (or of the day) is more than ``max_z`` robust
    deviations from its comparable healthy days *and* moved by at least ``min_ratio`` (either
    way) — or more than ``large_z`` deviations when it moved by ``large_ratio`` or more (a
    value losing most of its rows is an incident at a smaller z: on clean days no statistic
    ever moved that far); WARN from ``warn_z``. The reason names the column, the value, the statistic, the
    direction and since when the statistic is out of its band (tonight, or the first of the
    consecutive nights before it that were out too).

    ``days``: rows of :data:`PROFILE` for tonight and earlier days; ``healthy``: the earlier
    days a baseline may use (loaded, not quarantined, not blocked); ``baseline_from``: the
    override's restarts (``"column"`` or ``"column=value"`` to the first day of a lasting
    change; those in force tonight drop the earlier days from that column's or value's
    baseline); ``mapping_version``: the category mapping the categories were read through
    (named in the figures)."""
    restarts = {k: d for k, d in (baseline_from or {}).items() if d <= day}
    stats = statistics(days)
    unmatched = sorted(k for k in restarts if not restart_matches(stats, k).any())
    stats = restart_baselines(stats, day, restarts)
    reference = comparable_days(day, [d for d in healthy if d < day], holidays)
    holiday = day in holidays
    weekday = like_weekday(stats, day, reference) if holiday else day.weekday()
    centre_days = [d for d in reference if d.weekday() == weekday]
    thresholds = {
        "max_z": max_z,
        "warn_z": warn_z,
        "min_ratio": min_ratio,
        "large_ratio": large_ratio,
        "large_z": large_z,
        "min_comparable_days": MIN_COMPARABLE_DAYS,
        "min_rows": MIN_ROWS,
    }
    if not (days["partition"] == day).any():
        return Verdict(
            True, "ERROR", "no rows tonight: nothing to profile (row_volume judges an empty day)", {}, thresholds
        )
    table = judge(stats, day, reference, min_ratio, holiday)
    judged = table[table["judged"]]
    # the statistics out of their band, the largest change first (a subpopulation's own
    # change before the day's statistics it moves: a 100x unit on a tenth of the rows moves the
    # day's tail 20x)
    large = table[table["large"]].assign(abs_z=lambda t: t["z"].abs(), change=lambda t: np.log(t["ratio"]).abs())
    large = large.sort_values(["change", "abs_z"], ascending=False)
    error = level(large["z"], large["ratio"], max_z, warn_z, large_ratio, large_z) == "ERROR"
    errors = large[error]
    warns = large[~error & (large["abs_z"] > warn_z)]
    worst = errors if len(errors) else warns
    since = {}
    if len(worst):
        since = _onsets(stats, day, worst.head(3), healthy, holidays, warn_z, min_ratio)
    figures = {
        "statistics_judged": int(len(judged)),
        "values_judged": int(judged.groupby(["col", "value"], dropna=False).ngroups),
        "window_days": len(reference),
        "comparable_days": len(centre_days),
        "holiday": day in holidays,
        "judged_as_weekday": WEEKDAYS[weekday],
        "errors": int(len(errors)),
        "warnings": int(len(warns)),
        "max_abs_z": float(judged["z"].abs().max()) if len(judged) else None,
        "category_mapping_version": mapping_version,
        "baseline_restarts": {k: str(d) for k, d in sorted(restarts.items())},
        "baseline_restarts_matching_nothing": unmatched,
    }
    restarted = (
        "; baseline restarted by override: " + ", ".join(f"{k} from {d}" for k, d in sorted(restarts.items()))
        if restarts
        else ""
    )
    if unmatched:  # a typo, or a raw category name the mapping reads as its canonical one
        restarted += (
            f"; the override's restart(s) {', '.join(unmatched)} name no value the profile read "
            "(categories are read by their canonical name in the mapping): nothing restarted for them"
        )
    if mapping_version is None and (days["col"] == "category").any():
        restarted += "; categories as delivered (no category mapping yet)"
    shown = table.loc[
        table["judged"],
        ["col", "value", "statistic", "rows", "ref_rows", "x", "median", "scale", "z", "ratio", "large"],
    ].copy()
    shown = shown.assign(abs_z=shown["z"].abs()).sort_values("abs_z", ascending=False).drop(columns="abs_z").head(40)
    if len(worst):
        first = worst.iloc[0]
        figures |= {"column": first["col"], "value": first["value"], "statistic": first["statistic"]}
        figures["direction"] = "up" if first["z"] > 0 else "down"
        figures["since"] = str(since.get(0, day))

        def said(i: int, row) -> str:
            start = since.get(i, day)
            when = "tonight" if start == day else f"since {start}"
            return f"{_what(row)}, {when}" + (f" ({day})" if start == day else "")

        listed = "; ".join(said(i, row) for i, (_, row) in enumerate(worst.head(3).iterrows()))
        more = f" (+{len(worst) - 3} more)" if len(worst) > 3 else ""
        summary = (
            f"{len(worst)} statistic(s) of the night profile out of their band: {listed}{more} — against "
            f"{len(centre_days)} comparable healthy day(s); "
            + (
                f"ERROR from |z| > {max_z:g} and a change of at least {min_ratio:g}×, or |z| > {large_z:g} and "
                f"{large_ratio:g}×"
                if len(errors)
                else f"WARN from |z| > {warn_z:g} and a change of at least {min_ratio:g}×"
            )
            + restarted
        )
        return Verdict(
            passed=False,
            severity="ERROR" if len(errors) else "WARN",
            summary=summary,
            figures=figures,
            thresholds=thresholds,
            tables={"statistics": shown},
        )
    return Verdict(
        passed=True,
        severity="ERROR",
        summary=(
            f"{figures['statistics_judged']} statistics of {figures['values_judged']} values within their band "
            f"(largest |z| {figures['max_abs_z'] or 0:.1f}; {len(centre_days)} comparable healthy days)"
            if len(judged)
            else f"fewer than {MIN_COMPARABLE_DAYS} comparable healthy days: nothing judged yet"
        )
        + restarted,
        figures=figures,
        thresholds=thresholds,
        tables={"statistics": shown},
    )


def restart_matches(stats: pd.DataFrame, key: str) -> np.ndarray:
    """The rows of ``stats`` a restart key names: a column (``"column"``) or one value of it
    (``"column=value"``)."""
    column, has_value, value = key.partition("=")
    matches = (stats["col"] == column).to_numpy()
    if has_value:
        matches &= (stats["value"] == value).to_numpy()
    return matches


def restart_baselines(stats: pd.DataFrame, day: dt.date, restarts: dict[str, dt.date]) -> pd.DataFrame:
    """``stats`` without the days before each restart of its column or value (tonight, on
    or after the restart, is kept)."""
    keep = np.ones(len(stats), dtype=bool)
    for key, start in restarts.items():
        keep &= ~(restart_matches(stats, key) & (stats["partition"] < start).to_numpy())
    return stats[keep]


ONSET_NIGHTS = 7
"""Earlier nights examined for the start of an out-of-band run."""


def _onsets(stats, day, worst, healthy, holidays, warn_z, min_ratio) -> dict[int, dt.date]:
    """For each listed statistic, the first of the consecutive days up to tonight on which it
    was out of its band (each earlier day judged against its own comparable days)."""
    out = {}
    for i, (_, row) in enumerate(worst.iterrows()):
        start = day
        for back in range(1, ONSET_NIGHTS + 1):
            earlier = day - dt.timedelta(days=back)
            if not (stats["partition"] == earlier).any():
                break
            mine = stats[
                (stats["col"] == row["col"])
                & (stats["statistic"] == row["statistic"])
                & ((stats["value"] == row["value"]) | (stats["value"].isna() & (row["value"] is None)))
            ]
            table = judge(
                pd.concat([mine[mine["partition"] < earlier], mine[mine["partition"] == earlier]]),
                earlier,
                comparable_days(earlier, [d for d in healthy if d < earlier], holidays),
                min_ratio,
                earlier in holidays,
            )
            hit = table[table["large"] & (table["z"].abs() > warn_z) & (np.sign(table["z"]) == np.sign(row["z"]))]
            if hit.empty:
                break
            start = earlier
        out[i] = start
    return out


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    """Tonight's and the recent days' profile, and which earlier days may serve as a
    baseline: loaded, passing the raw layer's recorded verdicts, their night not blocked."""
    night = step.night
    first = night.days_back(HISTORY_DAYS)
    # the history's first load comes before any training: no mapping yet (named in the result)
    mapped = warehouse.scalar(step.conn, f"SELECT count(*) FROM {warehouse.table('category_mapping')}")
    version = registry.current_mapping_version(step.conn) if mapped else None
    days = profile(step, first, night.day, version)
    verdicts = warehouse.raw_verdicts(step.conn, first, night.day - dt.timedelta(days=1))
    blocked = warehouse.night_verdicts(step.conn, first, night.day - dt.timedelta(days=1))
    sick = set(verdicts.loc[~verdicts["passed"], "partition"]) | set(blocked.loc[~blocked["passed"], "partition"])
    loaded = sorted(set(days["partition"]) - {night.day})
    return Inputs(
        {
            "days": days,
            "day": night.day,
            "healthy": [d for d in loaded if d not in sick],
            "holidays": volume.holidays(step, first, night.day)[0],
            "baseline_from": dict(step.settings.override.profile_baseline_from),
            "mapping_version": version,
        }
    )
