"""Quarantine: a day that caused a block never feeds later nights silently. A raw day that
failed a quarantining check, or whose own night was blocked by any other blocking check,
blocks every night whose feature windows read it and is reported (WARN) by the later nights
whose look-back still holds it (``lookback_health``), until it is re-judged
healthy (re-loaded and passing, or its night re-run and passing — after a re-delivery, a new
mapping, a fix) or an override accepts it. The raw verdicts are recorded with each load
(:func:`judge_raw_day`), the night's blocking verdicts with each check step
(:func:`night_record`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import pandas as pd

from risk_assets.checks import CheckDecl, Inputs, Step, Verdict, day_frame
from risk_assets.core.features.spec import WINDOWS
from risk_assets.core.night import Night
from risk_assets.store import warehouse


def raw_day_verdicts(step: Step, checks: Sequence[CheckDecl] | None = None) -> list[tuple[CheckDecl, Verdict, dict]]:
    """The step's (loaded) raw day judged by every quarantining check (``checks``: the
    declarations to pick them from; the step's own by default): each declaration with its
    verdict and the extras its loader recorded (the mapping version it read through)."""
    judged = []
    for decl in (d for d in (checks if checks is not None else step.checks) if d.quarantines):
        inputs = decl.load(step)
        judged.append((decl, decl.judge(inputs.args, step.settings), inputs.extras))
    return judged


def verdict_rows(step: Step, judged: Sequence[tuple[CheckDecl, Verdict, dict]]) -> pd.DataFrame:
    """The ``raw_verdicts`` rows of a judged day (without the run and its full results)."""
    loaded_at = warehouse.loads(step.conn, step.night.day, step.night.day)["loaded_at"]
    return pd.DataFrame(
        [
            {
                "partition": step.night.day,
                "check_name": decl.name,
                # only an ERROR quarantines: a WARN of a quarantining check lets the day feed later nights
                "passed": bool(verdict.passed or verdict.severity != "ERROR"),
                "severity": verdict.severity,
                "summary": verdict.summary,
                "loaded_at": loaded_at.iloc[0] if len(loaded_at) else pd.NaT,
                "settings_version": step.settings.version(),
                "run_id": None,
                "result": None,
            }
            for decl, verdict, _ in judged
        ],
        columns=warehouse.COLUMNS["raw_verdicts"],
    )


def judge_raw_day(step: Step, checks: Sequence[CheckDecl] | None = None) -> pd.DataFrame:
    """The step's (loaded) raw day judged by every quarantining check, as recorded in
    ``raw_verdicts`` (``checks``: the declarations to pick them from; the step's own by
    default)."""
    return verdict_rows(step, raw_day_verdicts(step, checks))


NOT_THE_DAYS_OWN = ("lookback_health", "customer_changes")
"""Blocking checks whose failure is not the day's own: the look-back judges *other* days
(recording it would let one bad day quarantine every later night in a chain), and
``customer_changes`` judges the customers version, which blocks every night it is valid
for by itself — the day's transactions are not at fault."""


def records_night(decl: CheckDecl) -> bool:
    """Whether a check's verdicts on a night are recorded for the later nights' look-back:
    every blocking check but the raw layer's quarantining ones (re-judged with each load, in
    ``raw_verdicts``) and those in :data:`NOT_THE_DAYS_OWN`."""
    return decl.blocking and decl.partitioned and not decl.quarantines and decl.name not in NOT_THE_DAYS_OWN


def night_record(step: Step, results: Sequence[tuple[CheckDecl, bool, str, str]]) -> pd.DataFrame:
    """The rows :func:`~risk_assets.store.warehouse.record_night_verdicts` stores for one
    check step: ``(decl, passed, severity, summary)`` of each evaluated check it records."""
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    return pd.DataFrame(
        [
            {
                "check_name": decl.name,
                "asset": decl.asset,
                # only an ERROR blocks: a WARN of a blocking check lets the night score
                "passed": bool(passed or severity != "ERROR"),
                "severity": severity,
                "summary": summary,
                "evaluated_at": now,
                "settings_version": step.settings.version(),
            }
            for decl, passed, severity, summary in results
            if records_night(decl)
        ],
        columns=["check_name", "asset", "passed", "severity", "summary", "evaluated_at", "settings_version"],
    )


# --------------------------------------------------------------------------- statistic
LAST_DAYS = f"""
    SELECT last_day AS partition, count(*) AS customers FROM (
        SELECT customer_id, max(partition) AS last_day FROM {warehouse.table("raw_transactions")}
        WHERE partition BETWEEN CAST($first AS DATE) AND CAST($day AS DATE) GROUP BY customer_id
    ) last_days GROUP BY last_day ORDER BY last_day"""
"""Customers by the day of their last transaction from ``first`` up to the night: those whose
``days_since_last_txn`` a day reads (a day that is nobody's last transaction feeds no
feature once it is older than every window)."""


def last_days_of(raw: pd.DataFrame) -> pd.DataFrame:
    """The row-level definition of :data:`LAST_DAYS` over raw rows (``partition, customer_id``)."""
    last = raw.groupby("customer_id")["partition"].max()
    out = last.value_counts().rename("customers").rename_axis("partition").reset_index()
    return out.sort_values("partition").reset_index(drop=True)


def last_days(q, first: dt.date, day: dt.date) -> pd.DataFrame:
    frame = day_frame(q.statistic(LAST_DAYS, {"first": first, "day": day}))
    frame["customers"] = frame["customers"].astype("int64")
    return frame


# --------------------------------------------------------------------------- guard
WINDOW_DAYS = max(WINDOWS)
"""The longest feature window: a quarantined day older than it feeds no windowed feature,
only ``days_since_last_txn`` (the look-back's long tail)."""


def unhealthy(verdicts: pd.DataFrame, blocked: pd.DataFrame | None, earlier: list[dt.date]) -> dict[dt.date, list[str]]:
    """The earlier days that failed a quarantining check on their latest load, or whose own
    night is still blocked: day -> why."""
    failed = verdicts[~verdicts["passed"].astype(bool) & verdicts["partition"].isin(earlier)]
    sick = {d: list(g["check_name"] + ": " + g["summary"]) for d, g in failed.groupby("partition")}
    if blocked is not None and len(blocked):
        night_failed = blocked[~blocked["passed"].astype(bool) & blocked["partition"].isin(earlier)]
        for d, g in night_failed.groupby("partition"):
            sick.setdefault(d, []).extend(
                f"blocked its own night: {c}: {s}" for c, s in zip(g["check_name"], g["summary"])
            )
    return dict(sorted(sick.items()))


def lookback_health(
    expected: list[dt.date],
    loaded: Iterable[dt.date],
    verdicts: pd.DataFrame,
    accepted: dict[dt.date, str],
    blocked: pd.DataFrame | None = None,
    last: pd.DataFrame | None = None,
    window_days: int = WINDOW_DAYS,
) -> Verdict:
    """Every raw partition of the night's look-back was loaded *and* passed the raw
    layer's blocking checks on its latest load (``verdicts``: ``partition, check_name, passed,
    summary``; a day without verdicts has not been judged). A day that failed is
    quarantined: the nights whose windows read it are blocked, naming the day and the
    check, until it is re-loaded and passes, or ``accepted`` (an override with a name and
    a reason) takes it as it is. ``blocked`` (``partition, check_name, passed, summary``: the
    latest verdict of each recorded blocking check of earlier nights) quarantines a day whose
    own night was blocked, whichever check blocked it, until that night is re-run and passes.

    In proportion: a quarantined day inside a feature window (the last ``window_days``) blocks
    (ERROR); one older than every window feeds only ``days_since_last_txn`` — of the customers
    whose last transaction it holds (``last``: customers by the day of their last transaction,
    :data:`LAST_DAYS`) — and is reported with that share (WARN): the night scores."""
    loaded = set(loaded)
    tonight = expected[-1]
    missing = [d for d in expected if d not in loaded]
    earlier = [d for d in expected[:-1] if d in loaded]
    judged = set(verdicts["partition"])
    unjudged = [d for d in earlier if d not in judged]
    sick = unhealthy(verdicts, blocked, earlier)
    waived = {d: accepted[d] for d in sorted(sick) if d in accepted}
    quarantined = {d: why for d, why in sorted(sick.items()) if d not in accepted}
    oldest_read = tonight - dt.timedelta(days=window_days - 1)  # the first day of the longest window
    outside = {d: why for d, why in quarantined.items() if d < oldest_read}
    quarantined = {d: why for d, why in quarantined.items() if d >= oldest_read}
    last = last if last is not None else pd.DataFrame({"partition": [], "customers": []})
    exposed = int(last.loc[last["partition"].isin(outside), "customers"].sum())
    everyone = int(last["customers"].sum())
    table = pd.DataFrame(
        [
            {
                "partition": str(d),
                "problem": "; ".join(why),
                "accepted_by_override": d in waived,
                "inside_a_window": d >= oldest_read,
                "last_transaction_of": int(last.loc[last["partition"] == d, "customers"].sum()),
            }
            for d, why in sorted(sick.items())
        ]
        + [{"partition": str(d), "problem": "never loaded", "accepted_by_override": False} for d in missing]
        + [{"partition": str(d), "problem": "loaded but never judged", "accepted_by_override": False} for d in unjudged]
    )
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} of {len(expected)} look-back day(s) never loaded: "
            + ", ".join(map(str, missing[:10]))
            + (" …" if len(missing) > 10 else "")
        )
    if quarantined:
        problems.append(
            f"{len(quarantined)} quarantined day(s) in the look-back: "
            + "; ".join(f"{d} ({', '.join(why)})" for d, why in list(quarantined.items())[:5])
        )
    if unjudged:
        problems.append(f"{len(unjudged)} day(s) loaded but never judged: " + ", ".join(map(str, unjudged[:5])))
    notes = []
    if outside:
        notes.append(
            f"{len(outside)} quarantined day(s) older than every feature window ({window_days} days), read only by "
            f"days_since_last_txn: "
            + "; ".join(f"{d} ({', '.join(why)})" for d, why in list(outside.items())[:3])
            + (" …" if len(outside) > 3 else "")
            + f" — the last transaction of {exposed} of {everyone} customers ({exposed / max(everyone, 1):.2%})"
        )
    return Verdict(
        passed=not problems and not notes,
        severity="WARN" if notes and not problems else "ERROR",
        summary="; ".join(problems + notes)
        if problems or notes
        else (
            f"all {len(expected)} look-back days loaded and healthy ({expected[0]} .. {tonight})"
            + (f"; {len(waived)} accepted by override" if waived else "")
        ),
        figures={
            "lookback_days": len(expected),
            "missing_days": len(missing),
            "first_missing": str(missing[0]) if missing else "-",
            "quarantined_days": len(quarantined),
            "first_quarantined": str(next(iter(quarantined))) if quarantined else "-",
            "accepted_days": len(waived),
            "unjudged_days": len(unjudged),
            "quarantined_outside_windows": len(outside),
            "customers_exposed": exposed,
            "customers_exposed_share": exposed / max(everyone, 1),
        },
        thresholds={"window_days": window_days},
        tables={"unhealthy_days": table},
    )


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    """The look-back's load ledger, the raw verdicts recorded with each load (a day whose
    verdicts are missing or older than its latest load is judged now, same guards) and the
    earlier nights' recorded blocking verdicts."""
    night, settings = step.night, step.settings
    expected = night.lookback_partitions
    ledger = warehouse.loads(step.conn, expected[0], expected[-1])
    verdicts = warehouse.raw_verdicts(step.conn, expected[0], expected[-1])
    blocked = warehouse.night_verdicts(step.conn, expected[0], night.day - dt.timedelta(days=1))
    fresh = verdicts.merge(ledger[["partition", "loaded_at"]], on=["partition", "loaded_at"])
    stale = [d for d in ledger["partition"] if d != night.day and d not in set(fresh["partition"])]
    for day in stale:
        fresh = pd.concat([fresh, judge_raw_day(step.on(Night.of(day, settings.calendar)))], ignore_index=True)
    earlier = [d for d in ledger["partition"] if d != night.day]
    old = [d for d in unhealthy(fresh, blocked, earlier) if d < night.day - dt.timedelta(days=WINDOW_DAYS - 1)]
    return Inputs(
        {
            "expected": expected,
            "loaded": ledger["partition"].tolist(),
            "verdicts": fresh,
            "blocked": blocked,
            # who an old quarantined day still reaches (read only when there is one)
            "last": last_days(step, expected[0], night.day) if old else None,
            "accepted": dict.fromkeys(
                settings.override.accept_days, f"{settings.override.by}: {settings.override.reason}"
            ),
        }
    )
