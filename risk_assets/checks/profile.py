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
Monday), all recent days on a public holiday (a holiday is judged against the whole week's
spread). The score is a robust z: the distance from the comparable days' median in units of
their median absolute deviation, floored by the statistic's sampling noise, and it counts
only when the change is also large (``min_ratio``): with a hundred statistics a night a
small z alone fires every night (``docs/checks.md``: the budget and how the thresholds were
calibrated)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from risk_assets.checks import Inputs, Step, Verdict, day_frame
from risk_assets.core.calendar import holidays_between
from risk_assets.store import warehouse

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
MIN_ROWS = 10
"""Rows a value must have (tonight, or typically on its comparable days) before its shares
are judged (a count's z is exact enough from ten: a value of ten rows vanishing is 4.5
deviations), and rows on both sides before its typical amount is."""
LEVEL_MIN_ROWS = 30
"""Rows a value must have tonight and typically before its typical amount is judged: the
mean log amount of a dozen rows of a mixture (everyday payments and the odd transfer) moved
2–3× on clean days of both test worlds."""
TAIL_MIN_ROWS = 10
"""Rows a tail must typically hold (beyond the comparable days' 5th or 95th percentile
edge) before its share is judged."""
TAIL = 0.05
"""The tails' edges: the amount bins beyond which the comparable days held at most this
share of a value's rows, below and above."""
MIN_SCALE = 0.02
"""Floor of the typical amount's scale (natural log units): a statistic that never moved on
its comparable days does not turn a 2% step into a huge z."""
BINS_PER_UNIT = 20
"""Amount bins per natural-log unit (a bin is a 5% step of the amount): ``floor(ln(cents) *
20)``. No integer amount lies within rounding of a bin edge, so both engines bin alike."""
TOP_MIN_ROWS = 8
"""Rows the most repeated amount must hold before its share is judged (two equal amounts
on a small day are chance)."""

STATISTICS = {
    "rows_share": "share of the day's rows",
    "customers_share": "share of the day's customers",
    "low": "share of its amounts below {edge} (the comparable days' low tail)",
    "level": "typical amount (geometric mean)",
    "high": "share of its amounts of {edge} or more (the comparable days' high tail)",
    "top_share": "share of rows at the most repeated amount",
}
"""What each judged statistic is, in the words a result uses."""

# --------------------------------------------------------------------------- statistic


def _long() -> str:
    joined = (
        "SELECT r.partition, r.customer_id, r.amount_cents, "
        + ", ".join(f"r.{c}" for c in TRANSACTION_COLUMNS)
        + ", "
        + ", ".join(f"c.{c}" for c in CUSTOMER_COLUMNS)
        + f" FROM {warehouse.table('raw_transactions')} r LEFT JOIN {warehouse.table('customers')} c "
        "ON r.customer_id = c.customer_id "
        "WHERE r.partition BETWEEN CAST($first AS DATE) AND CAST($day AS DATE)"
    )
    parts = [f"SELECT partition, '{DAY[0]}' AS col, '{DAY[1]}' AS value, customer_id, amount_cents FROM j"] + [
        f"SELECT partition, '{c}' AS col, CAST({c} AS VARCHAR) AS value, customer_id, amount_cents FROM j"
        for c in (*TRANSACTION_COLUMNS, *CUSTOMER_COLUMNS)
    ]
    return f"j AS ({joined}), melted AS ({' UNION ALL '.join(parts)})"


PROFILE = f"""
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
    ORDER BY p.partition, p.col, p.value NULLS FIRST"""
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


def profile_of(raw: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """The row-level definition of :data:`PROFILE` over raw rows (``partition, customer_id,
    amount_cents`` and the transaction columns) and the customers (``customer_id`` and the
    customer columns)."""
    joined = raw.merge(customers[["customer_id", *CUSTOMER_COLUMNS]], on="customer_id", how="left")
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


def profile(q, first: dt.date, day: dt.date) -> pd.DataFrame:
    """:data:`PROFILE` on an engine, integers as integers (Spark returns exact quantiles as
    doubles), the value None where the column is NULL."""
    frame = day_frame(q.statistic(PROFILE, {"first": first, "day": day}))
    for column in PROFILE_COLUMNS[3:]:
        frame[column] = frame[column].astype("int64")
    frame["value"] = frame["value"].astype(object).where(frame["value"].notna(), None)
    return frame


HISTOGRAM = f"""
    WITH {_long()}
    SELECT partition, col, value, CAST(floor(ln(greatest(amount_cents, 1)) * {BINS_PER_UNIT}) AS BIGINT) AS bin,
           count(*) AS rows
    FROM melted GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3 NULLS FIRST, 4"""
"""Per raw day, per categorical column and value (and the day as a whole): rows per amount
bin of :data:`BINS_PER_UNIT` per natural-log unit — the amount distribution the typical
amount and the tails are judged on."""

HISTOGRAM_COLUMNS = ("partition", "col", "value", "bin", "rows")


def histogram_of(raw: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """The row-level definition of :data:`HISTOGRAM` (same inputs as :func:`profile_of`)."""
    joined = raw.merge(customers[["customer_id", *CUSTOMER_COLUMNS]], on="customer_id", how="left")
    bins = np.floor(np.log(np.maximum(joined["amount_cents"].to_numpy(dtype="float64"), 1.0)) * BINS_PER_UNIT)
    frames = []
    for col in (DAY[0], *TRANSACTION_COLUMNS, *CUSTOMER_COLUMNS):
        values = pd.Series(DAY[1], index=joined.index) if col == DAY[0] else joined[col]
        frames.append(
            pd.DataFrame(
                {
                    "partition": joined["partition"],
                    "col": col,
                    "value": values.astype(object).where(values.notna(), "\0"),
                    "bin": bins.astype("int64"),
                }
            )
        )
    long = pd.concat(frames, ignore_index=True)
    out = long.groupby(["partition", "col", "value", "bin"], sort=False).size().rename("rows").reset_index()
    out["null_first"] = out["value"] != "\0"
    out = out.sort_values(["partition", "col", "null_first", "value", "bin"]).drop(columns="null_first")
    out["value"] = out["value"].where(out["value"] != "\0", None)
    return out.reset_index(drop=True)[list(HISTOGRAM_COLUMNS)]


def histogram(q, first: dt.date, day: dt.date) -> pd.DataFrame:
    """:data:`HISTOGRAM` on an engine, integers as integers, the value None where NULL."""
    frame = day_frame(q.statistic(HISTOGRAM, {"first": first, "day": day}))
    for column in ("bin", "rows"):
        frame[column] = frame[column].astype("int64")
    frame["value"] = frame["value"].astype(object).where(frame["value"].notna(), None)
    return frame[list(HISTOGRAM_COLUMNS)]


# --------------------------------------------------------------------------- guard
SHARES = ("rows_share", "customers_share", "low", "high", "top_share")
"""The statistics that are a count out of a total (judged on the count)."""
JUDGED = (*SHARES, "level")
"""The statistics judged. Quantiles are in the profile but not judged: a quantile that sits
where a value's amounts are sparse (between everyday payments and the rare transfer) jumps
from one clean day to the next, while the share of amounts beyond a fixed edge moves as
counts do. A day's (or a value's) maximum is a single row: shown, not judged."""


def tails(bins: pd.DataFrame, window: list[dt.date]) -> pd.DataFrame:
    """Per (col, value), the tails' edges from the ``window`` days' pooled amount bins: ``lo``,
    the lowest bin whose lower neighbours held at most :data:`TAIL` of the rows, and ``hi``,
    the lowest bin from which on at most :data:`TAIL` were held."""
    pooled = bins[bins["partition"].isin(window)].groupby(["col", "value", "bin"], dropna=False)["rows"].sum()
    pooled = pooled.reset_index().sort_values(["col", "value", "bin"])
    if pooled.empty:
        return pd.DataFrame(columns=["col", "value", "lo", "hi"])
    group = pooled.groupby(["col", "value"], dropna=False)["rows"]
    total = group.transform("sum")
    below = (group.cumsum() - pooled["rows"]) / total  # share in the bins below this one
    from_here = 1.0 - below  # share in this bin and above
    lo = pooled[below <= TAIL].groupby(["col", "value"], dropna=False)["bin"].max().rename("lo")
    hi = pooled[from_here <= TAIL].groupby(["col", "value"], dropna=False)["bin"].min().rename("hi")
    return pd.concat([lo, hi], axis=1).reset_index()


def statistics(days: pd.DataFrame, bins: pd.DataFrame, window: list[dt.date]) -> pd.DataFrame:
    """The judged statistics of each (day, column, value), with the tails' edges of the
    ``window`` days: ``partition, col, value, rows, statistic, k, n, x`` — a share is ``k``
    of ``n`` (``x`` its log); the typical amount is ``x``, the mean natural log of the
    amounts (from the bins' centres)."""
    totals = days[days["col"] == DAY[0]].set_index("partition")[["rows", "customers"]]
    d = days.join(totals, on="partition", rsuffix="_day")
    b = bins.assign(value=bins["value"].fillna("\0"))
    edges = tails(b, window)
    b = b.merge(edges, on=["col", "value"], how="left")
    centre = (b["bin"] + 0.5) / BINS_PER_UNIT
    b = b.assign(
        low_rows=np.where(b["bin"] < b["lo"].astype(float).fillna(-np.inf), b["rows"], 0),  # no edge: no tail
        high_rows=np.where(b["bin"] >= b["hi"].astype(float).fillna(np.inf), b["rows"], 0),
        log_sum=b["rows"] * centre,
    )
    amounts = b.groupby(["partition", "col", "value"], dropna=False).agg(
        low=("low_rows", "sum"),
        high=("high_rows", "sum"),
        log_sum=("log_sum", "sum"),
        lo=("lo", "first"),
        hi=("hi", "first"),
    )
    d = d.assign(value=d["value"].fillna("\0")).join(amounts, on=["partition", "col", "value"])
    counts = {
        "rows_share": (d["rows"], d["rows_day"]),
        "customers_share": (d["customers"], d["customers_day"]),
        "low": (d["low"], d["rows"]),
        "high": (d["high"], d["rows"]),
        "top_share": (d["top_rows"], d["rows"]),
    }
    keep = ["partition", "col", "value", "rows", "rows_day", "top_rows", "lo", "hi"]
    frames = []
    for name, (k, n) in counts.items():
        part = d[keep].assign(statistic=name, k=k.astype(float), n=n.astype(float))
        part["x"] = np.log(np.maximum(part["k"], 0.5) / part["n"])
        if name in ("rows_share", "customers_share"):
            part = part[part["col"] != DAY[0]]
        frames.append(part)
    frames.append(d[keep].assign(statistic="level", k=np.nan, n=d["rows"].astype(float), x=d["log_sum"] / d["rows"]))
    out = pd.concat(frames, ignore_index=True)
    out["value"] = out["value"].replace("\0", None)
    return out


def comparable_days(day: dt.date, earlier: list[dt.date], holidays: frozenset[dt.date]) -> list[dt.date]:
    """The earlier healthy days a statistic of ``day`` is compared with: the ordinary days
    (public holidays apart) of the last :data:`WEEKDAY_WEEKS` weeks. :func:`judge` centres an
    ordinary day on its own weekday among them and a holiday on all of them."""
    return [d for d in earlier if d not in holidays and 0 < (day - d).days <= 7 * WEEKDAY_WEEKS]


def deviance(k, n, p) -> np.ndarray:
    """Signed root of the binomial deviance of ``k`` out of ``n`` against the share ``p``:
    about a standard normal deviate even for small counts (a log share's z is not: ten
    expected rows falling to two is 2.6 deviations, not 4.5)."""
    k, n, p = (np.asarray(v, dtype=float) for v in (k, n, p))
    mu = n * p
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(k > 0, k * np.log(k / mu), 0.0)
        b = np.where(n - k > 0, (n - k) * np.log((n - k) / (n - mu)), 0.0)
    return np.sign(k - mu) * np.sqrt(np.maximum(2.0 * (a + b), 0.0))


def judge(
    stats: pd.DataFrame, day: dt.date, window: list[dt.date], min_ratio: float, holiday: bool = False
) -> pd.DataFrame:
    """Each judged statistic of ``day`` against the healthy ``window`` days. The centre is
    the median of the same weekday's days (of every day on a holiday). A share is judged on
    its count: the signed deviance of tonight's ``k`` of ``n`` against the centre share,
    divided by the overdispersion the window days show (each day's own deviance from its
    weekday's centre; their robust spread, never below the binomial's). The typical amount is
    a robust z: the distance in units of the pooled median absolute deviation (each day's in
    units of its sampling noise, brought back to tonight's size; floored). ``z`` (signed) and
    ``ratio`` (tonight over the centre, as a factor); a value present on the comparable days
    but absent tonight has lost its share (its count is 0)."""
    stats = stats[stats["statistic"].isin(JUDGED)]
    key = ["col", "value", "statistic"]
    stats = stats.assign(value=stats["value"].fillna("\0"))
    ref = stats[stats["partition"].isin(window)].copy()
    tonight = stats[stats["partition"] == day]
    ref["weekday"] = [d.weekday() for d in ref["partition"]]
    ref["centre"] = ref.groupby([*key, "weekday"])["x"].transform("median")
    centre = ref.groupby(key)["x"].transform("median") if holiday else ref["centre"]
    share = ref["statistic"].isin(SHARES).to_numpy()
    ref["deviation"] = np.where(
        share,
        np.abs(deviance(ref["k"], ref["n"], np.exp(centre))),
        (ref["x"] - centre).abs() * np.sqrt(ref["rows"]),
    )
    same = ref if holiday else ref[ref["weekday"] == day.weekday()]
    grouped = same.groupby(key)
    summary = (
        pd.DataFrame(
            {
                "median": grouped["x"].median(),
                "days": grouped["x"].size(),
                "ref_rows": grouped["rows"].median(),
                "ref_k": grouped["k"].median(),
                "ref_n": grouped["n"].median(),
            }
        )
        .join(ref.groupby(key)["deviation"].median().rename("mad"))
        .reset_index()
    )
    columns = [*key, "x", "rows", "top_rows", "k", "n", "lo", "hi"]
    table = summary.merge(tonight[columns], on=key, how="outer")
    day_n = tonight.loc[tonight["statistic"] == "rows_share", "n"]
    day_n = float(day_n.max()) if len(day_n) else 0.0
    customers_n = tonight.loc[tonight["statistic"] == "customers_share", "n"]
    customers_n = float(customers_n.max()) if len(customers_n) else 0.0
    lost = table["x"].isna() & table["statistic"].isin(["rows_share", "customers_share"]) & table["median"].notna()
    table.loc[lost, "k"] = 0.0
    table.loc[lost, "n"] = np.where(table.loc[lost, "statistic"] == "rows_share", day_n, customers_n)
    table.loc[lost, "rows"] = 0
    for column in ("rows", "ref_rows", "top_rows", "days"):
        table[column] = table[column].fillna(0)
    share = table["statistic"].isin(SHARES).to_numpy()
    p = np.exp(table["median"].to_numpy(dtype=float))
    dispersion = np.maximum(1.4826 * table["mad"].fillna(0).to_numpy(dtype=float), 1.0)
    size = np.sqrt(np.maximum(table["ref_rows"], 1.0))
    scale = np.maximum(1.4826 * table["mad"].fillna(0) / size, MIN_SCALE)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_share = deviance(table["k"].fillna(0), table["n"].fillna(0), np.minimum(p, 1.0)) / dispersion
        z_level = (table["x"] - table["median"]) / scale
    table["z"] = np.where(share, z_share, z_level)
    table["scale"] = np.where(share, dispersion, scale)
    # a share's change as a factor (a count of 0 as half a row); the typical amount's as one
    observed = np.log(np.maximum(table["k"].fillna(0), 0.5) / np.maximum(table["n"].fillna(0), 1.0))
    table["x"] = np.where(share, observed, table["x"])
    table["ratio"] = np.exp(table["x"] - table["median"])
    table["expected"] = np.where(share, table["n"].fillna(0) * np.minimum(p, 1.0), np.nan)
    judged = table["days"] >= MIN_COMPARABLE_DAYS
    counted = table["statistic"].isin(["rows_share", "customers_share"])
    judged &= np.where(
        counted,
        np.maximum(table["rows"], table["ref_rows"]) >= MIN_ROWS,
        (table["rows"] >= MIN_ROWS) & (table["ref_rows"] >= MIN_ROWS),
    )
    amount = table["statistic"] == "level"
    judged &= ~amount | ((table["rows"] >= LEVEL_MIN_ROWS) & (table["ref_rows"] >= LEVEL_MIN_ROWS))
    tails = table["statistic"].isin(["low", "high"])
    judged &= ~tails | (table["ref_k"].fillna(0) >= TAIL_MIN_ROWS)
    judged &= (table["statistic"] != "top_share") | (table["top_rows"] >= TOP_MIN_ROWS)
    table["judged"] = judged & table["z"].notna() & np.isfinite(table["z"])
    table["large"] = table["judged"] & (np.abs(np.log(table["ratio"])) >= np.log(min_ratio))
    table["value"] = table["value"].replace("\0", None)
    return table


def level(z, ratio, max_z: float, warn_z: float, large_ratio: float, large_z: float) -> np.ndarray:
    """The verdict of statistics that moved by at least ``min_ratio`` (``z``, ``ratio``
    arrays): "ERROR", "WARN" or "" — the one rule the check and its calibration share."""
    z, change = np.abs(np.asarray(z, dtype=float)), np.abs(np.log(np.asarray(ratio, dtype=float)))
    error = (z > max_z) | ((change >= np.log(large_ratio)) & (z > large_z))
    return np.where(error, "ERROR", np.where(z > warn_z, "WARN", ""))


def _edge(row) -> str:
    """A tail's edge as an amount (the bin's lower bound, in the source's currency units)."""
    b = row["lo"] if row["statistic"] == "low" else row["hi"]
    return f"{np.exp(b / BINS_PER_UNIT) / 100:,.2f}" if pd.notna(b) else "?"


def _what(row) -> str:
    subject = "the day" if row["col"] == DAY[0] else f"{row['col']} = {row['value']!r}"
    direction = "up" if row["z"] > 0 else "down"
    lost = row["statistic"] == "rows_share" and row["rows"] == 0
    if lost:
        return f"{subject} vanished (typically {row['ref_rows']:.0f} rows)"
    what = STATISTICS[row["statistic"]].format(edge=_edge(row))
    if row["statistic"] in SHARES:
        counted = f"{row['k']:.0f} of {row['n']:.0f} tonight, {row['expected']:.1f} expected"
    else:
        counted = f"{row['rows']:.0f} rows tonight, typically {row['ref_rows']:.0f}"
    return f"{subject}: {what} {direction} {row['ratio']:.2g}× (z {row['z']:+.1f}; {counted})"


def night_profile(
    days: pd.DataFrame,
    bins: pd.DataFrame,
    day: dt.date,
    healthy: list[dt.date],
    holidays: frozenset[dt.date],
    max_z: float,
    warn_z: float,
    min_ratio: float,
    large_ratio: float = 3.0,
    large_z: float = 4.0,
) -> Verdict:
    """ERROR when any statistic of any value (or of the day) is more than ``max_z``
    deviations from its comparable healthy days *and* moved by at least ``min_ratio`` (either
    way) — or more than ``large_z`` deviations when it moved by ``large_ratio`` or more (a
    value losing most of its rows is an incident at a smaller z: on clean days no statistic
    ever moved that far); WARN from ``warn_z``. The reason names the column, the value, the
    statistic, the direction and since when the statistic is out of its band (tonight, or the
    first of the consecutive nights before it that were out too), sudden or gradual.

    ``days``: rows of :data:`PROFILE` and ``bins`` of :data:`HISTOGRAM` for tonight and
    earlier days; ``healthy``: the earlier days a baseline may use (loaded, not quarantined,
    not blocked)."""
    reference = comparable_days(day, [d for d in healthy if d < day], holidays)
    stats = statistics(days, bins, reference)
    holiday = day in holidays
    centre_days = reference if holiday else [d for d in reference if d.weekday() == day.weekday()]
    thresholds = {
        "max_z": max_z,
        "warn_z": warn_z,
        "min_ratio": min_ratio,
        "large_ratio": large_ratio,
        "large_z": large_z,
        "min_comparable_days": MIN_COMPARABLE_DAYS,
        "min_rows": MIN_ROWS,
        "tail_min_rows": TAIL_MIN_ROWS,
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
        since = _onsets(days, bins, day, worst.head(3), healthy, holidays, warn_z, min_ratio)
    figures = {
        "statistics_judged": int(len(judged)),
        "values_judged": int(judged.groupby(["col", "value"], dropna=False).ngroups),
        "window_days": len(reference),
        "comparable_days": len(centre_days),
        "holiday": day in holidays,
        "errors": int(len(errors)),
        "warnings": int(len(warns)),
        "max_abs_z": float(judged["z"].abs().max()) if len(judged) else None,
    }
    shown = table.loc[
        table["judged"],
        [
            "col",
            "value",
            "statistic",
            "rows",
            "ref_rows",
            "k",
            "n",
            "expected",
            "x",
            "median",
            "scale",
            "z",
            "ratio",
            "large",
        ],
    ].copy()
    shown = shown.assign(abs_z=shown["z"].abs()).sort_values("abs_z", ascending=False).drop(columns="abs_z").head(40)
    tables = {"statistics": shown, "tonight": _tonight(days, day)}
    if len(worst):
        first = worst.iloc[0]
        figures |= {"column": first["col"], "value": first["value"], "statistic": first["statistic"]}
        figures["direction"] = "up" if first["z"] > 0 else "down"
        start, kind = since.get(0, (day, "sudden"))
        figures |= {"since": str(start), "onset": kind}

        def said(i: int, row) -> str:
            start, kind = since.get(i, (day, "sudden"))
            when = f"{kind}, tonight ({day})" if start == day else f"{kind}, since {start}"
            return f"{_what(row)}, {when}"

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
        )
        return Verdict(
            passed=False,
            severity="ERROR" if len(errors) else "WARN",
            summary=summary,
            figures=figures,
            thresholds=thresholds,
            tables=tables,
        )
    return Verdict(
        passed=True,
        severity="ERROR",
        summary=(
            f"{figures['statistics_judged']} statistics of {figures['values_judged']} values within their band "
            f"(largest |z| {figures['max_abs_z'] or 0:.1f}; {len(centre_days)} comparable healthy days)"
            if len(judged)
            else f"fewer than {MIN_COMPARABLE_DAYS} comparable healthy days: nothing judged yet"
        ),
        figures=figures,
        thresholds=thresholds,
        tables=tables,
    )


def _tonight(days: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Tonight's profile as an operator reads it: per value, rows, customers, and the low,
    median, high and largest amount (currency units) with the most repeated amount's rows."""
    out = days[days["partition"] == day].drop(columns="partition").copy()
    for name in ("low", "median", "high", "max"):
        out[name] = out.pop(f"{name}_cents") / 100
    return out.reset_index(drop=True)


ONSET_NIGHTS = 7
"""Earlier nights examined for the start of an out-of-band run."""


def _onsets(days, bins, day, worst, healthy, holidays, warn_z, min_ratio) -> dict[int, tuple[dt.date, str]]:
    """For each listed statistic, the first of the consecutive days up to tonight on which it
    was out of its band (each earlier day judged against its own comparable days) — and
    "sudden" when on that first day it had already moved by at least half of tonight's
    change, "gradual" when it crept out."""
    out = {}
    for i, (_, row) in enumerate(worst.iterrows()):
        start, first_change = day, abs(np.log(row["ratio"]))
        mine = (days["col"] == row["col"]) & (
            (days["value"] == row["value"]) | (days["value"].isna() & (row["value"] is None))
        )
        mine |= days["col"] == DAY[0]  # the day's totals: every share's denominator
        mine_bins = (bins["col"] == row["col"]) & (
            (bins["value"] == row["value"]) | (bins["value"].isna() & (row["value"] is None))
        )
        for back in range(1, ONSET_NIGHTS + 1):
            earlier = day - dt.timedelta(days=back)
            if not (days["partition"] == earlier).any():
                break
            window = comparable_days(earlier, [d for d in healthy if d < earlier], holidays)
            stats = statistics(days[mine], bins[mine_bins], window)
            stats = stats[(stats["col"] == row["col"]) & (stats["statistic"] == row["statistic"])]
            table = judge(stats, earlier, window, min_ratio, earlier in holidays)
            hit = table[table["large"] & (table["z"].abs() > warn_z) & (np.sign(table["z"]) == np.sign(row["z"]))]
            if hit.empty:
                break
            start, first_change = earlier, float(np.abs(np.log(hit["ratio"].iloc[0])))
        change = abs(np.log(row["ratio"]))
        out[i] = (start, "sudden" if first_change >= change / 2 else "gradual")
    return out


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    """Tonight's and the recent days' profile and amount bins, and which earlier days may
    serve as a baseline: loaded, passing the raw layer's recorded verdicts, their night not
    blocked."""
    night = step.night
    first = night.days_back(HISTORY_DAYS)
    days = profile(step, first, night.day)
    bins = histogram(step, first, night.day)
    verdicts = warehouse.raw_verdicts(step.conn, first, night.day - dt.timedelta(days=1))
    blocked = warehouse.night_verdicts(step.conn, first, night.day - dt.timedelta(days=1))
    sick = set(verdicts.loc[~verdicts["passed"], "partition"]) | set(blocked.loc[~blocked["passed"], "partition"])
    loaded = sorted(set(days["partition"]) - {night.day})
    return Inputs(
        {
            "days": days,
            "bins": bins,
            "day": night.day,
            "healthy": [d for d in loaded if d not in sick],
            "holidays": holidays_between(step.settings.calendar, first, night.day),
        }
    )
