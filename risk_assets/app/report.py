"""The per-night HTML report: one self-contained page (plots embedded as PNG, no network)
an operator opens instead of reading check metadata.

It shows the night's status and the checks that failed, each monitored feature's drift
distance against its WARN and ERROR bands, imputation and coverage rates over the last
nights with the blocked attempts marked, the row volume against its expectation, and the
score distribution against validation. Everything comes from the Dagster instance's
check history (every attempt, failed ones included) and the warehouse; plots are drawn
by matplotlib.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from risk_assets.checks.catalogue import CHECKS
from risk_assets.core import model as model_lib
from risk_assets.core.night import Night
from risk_assets.defs.jobs import NIGHTLY_JOB
from risk_assets.settings import Settings
from risk_assets.store import (
    registry,
    warehouse,
)

PARTITION_TAG = "dagster/partition"
BLOCKED, SCORED, NOT_RUN, RUNNING, FAILED = "BLOCKED", "SCORED", "NOT RUN", "RUNNING", "FAILED"


@dataclass
class Attempt:
    """One check result of one run."""

    partition: str
    label: str
    passed: bool
    severity: str
    summary: str
    time: float
    run_id: str
    metadata: dict


@dataclass
class NightStatus:
    night: str
    status: str  # SCORED | BLOCKED | FAILED | RUNNING | NOT RUN
    blocked_by: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    runs: int = 0
    run_id: str | None = None
    attempts_blocked: int = 0
    earlier_blocked_by: list[str] = field(default_factory=list)
    """Blocking checks that stopped earlier runs of the night (a re-run passed them)."""


def _nightly_checks() -> list[dg.AssetCheckKey]:
    return [
        dg.AssetCheckKey(dg.AssetKey(c.asset), c.name)
        for c in CHECKS
        if c.partitioned and c.asset != "realised_performance"
    ]


def attempts(instance: dg.DagsterInstance, nights: list[str]) -> list[Attempt]:
    """Every evaluated result of the nightly checks on ``nights`` (all runs, oldest first)."""
    wanted, out = set(nights), []
    for key in _nightly_checks():
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=5000):
            event = record.event.dagster_event if record.event else None
            data = event.event_specific_data if event else None
            if record.partition not in wanted or data is None or not hasattr(data, "passed"):
                continue
            out.append(
                Attempt(
                    record.partition,
                    f"{key.asset_key.to_user_string()}.{key.name}",
                    bool(data.passed),
                    data.severity.value,
                    data.description or "",
                    record.create_timestamp,
                    record.run_id,
                    {k: getattr(v, "value", v) for k, v in data.metadata.items()},
                )
            )
    return sorted(out, key=lambda a: (a.partition, a.time))


def night_statuses(instance: dg.DagsterInstance, nights: list[str], found: list[Attempt]) -> dict[str, NightStatus]:
    """Each night's latest nightly run: scored, blocked (by which checks) or failed."""
    out = {}
    for night in nights:
        runs = instance.get_runs(dg.RunsFilter(job_name=NIGHTLY_JOB, tags={PARTITION_TAG: night}))
        mine = [a for a in found if a.partition == night]
        blocked_runs = {a.run_id for a in mine if not a.passed and a.severity == "ERROR" and _blocking(a.label)}
        if not runs:
            out[night] = NightStatus(night, NOT_RUN, attempts_blocked=len(blocked_runs))
            continue
        latest = runs[0]  # newest first
        here = [a for a in mine if a.run_id == latest.run_id]
        blocked = sorted({a.label for a in here if not a.passed and a.severity == "ERROR" and _blocking(a.label)})
        warns = sorted({a.label for a in here if not a.passed and a.severity == "WARN"})
        if not latest.is_finished:
            status = RUNNING
        elif latest.status == dg.DagsterRunStatus.SUCCESS:
            status = SCORED
        else:
            status = BLOCKED if blocked else FAILED
        earlier = sorted(
            {
                a.label
                for a in mine
                if a.run_id != latest.run_id
                and a.run_id in blocked_runs
                and not a.passed
                and a.severity == "ERROR"
                and _blocking(a.label)
            }
        )
        out[night] = NightStatus(night, status, blocked, warns, len(runs), latest.run_id, len(blocked_runs), earlier)
    return out


_BLOCKING = {f"{c.asset}.{c.name}": c.blocking for c in CHECKS}


def _blocking(label: str) -> bool:
    return _BLOCKING.get(label, False)


# --------------------------------------------------------------------------- plots
def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _figure(label: str, found: list[Attempt], night: str) -> dict | None:
    latest = [a for a in found if a.label == label and a.partition == night]
    return latest[-1].metadata if latest else None


def drift_plot(found: list[Attempt], night: str) -> str | None:
    meta = _figure("encoded_features.drift_bounds", found, night)
    table = meta.get("features") if meta else None
    if table is None:
        return None
    rows = pd.DataFrame([r.data for r in table.records])
    rows = rows.sort_values("feature", ascending=False)
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))
    colours = rows["band"].map({"ok": "#4c78a8", "WARN": "#f2a541", "ERROR": "#d62728"}).fillna("#4c78a8")
    ax.barh(y, rows["distance"], color=colours, height=0.6, label="tonight's distance")
    ax.scatter(rows["warn_at"], y, marker="|", s=160, color="#f2a541", label="WARN band")
    ax.scatter(rows["error_at"], y, marker="|", s=160, color="#d62728", label="ERROR band")
    ax.set_yticks(y, [f"{f} ({m})" for f, m in zip(rows["feature"], rows["metric"])], fontsize=8)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("distance to the model's reference profile (PSI numeric, Jensen-Shannon categorical)")
    ax.set_title(f"Drift per feature on {night}")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _history(found: list[Attempt], label: str, figure: str) -> pd.DataFrame:
    rows = [
        {"partition": a.partition, "value": a.metadata.get(figure), "passed": a.passed, "time": a.time}
        for a in found
        if a.label == label and isinstance(a.metadata.get(figure), (int, float))
    ]
    return pd.DataFrame(rows, columns=["partition", "value", "passed", "time"])


def rates_plot(found: list[Attempt], nights: list[str], statuses: dict[str, NightStatus], settings: Settings) -> str:
    series = [
        (
            "encoded_features.imputation_ceiling",
            "worst_rate",
            "worst imputation rate",
            settings.checks.imputation_ceiling,
        ),
        (
            "encoded_features.category_coverage",
            "unmapped_share",
            "unmapped categories",
            settings.checks.coverage_max_unmapped_share,
        ),
        (
            "serving_features.channel_coverage",
            "unseen_share",
            "unseen channels",
            settings.checks.coverage_max_unmapped_share,
        ),
    ]
    x = {n: i for i, n in enumerate(nights)}
    fig, axes = plt.subplots(len(series), 1, figsize=(9, 2.1 * len(series)), sharex=True)
    for ax, (label, figure, title, limit) in zip(axes, series, strict=True):
        _mark_blocked(ax, nights, statuses)
        data = _history(found, label, figure)
        if len(data):
            last = data.sort_values("time").groupby("partition").tail(1)
            ax.plot(
                [x[p] for p in last["partition"]], last["value"], "-o", ms=3, color="#4c78a8", label="latest attempt"
            )
            bad = data[~data["passed"]]
            ax.scatter(
                [x[p] for p in bad["partition"]],
                bad["value"],
                marker="x",
                s=50,
                color="#d62728",
                label="failed attempt",
                zorder=3,
            )
        ax.axhline(limit, ls="--", color="#d62728", lw=1, label=f"threshold {limit:.1%}")
        ax.set_ylabel(title, fontsize=8)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xticks(range(len(nights)), [n[5:] for n in nights], rotation=90, fontsize=7)
    axes[0].set_title(f"Imputation and coverage, {nights[0]} .. {nights[-1]} (shaded: blocked attempts)")
    return _png(fig)


def _mark_blocked(ax, nights: list[str], statuses: dict[str, NightStatus]) -> None:
    for i, n in enumerate(nights):
        s = statuses.get(n)
        if s and (s.status in (BLOCKED, FAILED) or s.attempts_blocked):
            ax.axvspan(
                i - 0.5, i + 0.5, color="#d62728" if s.status in (BLOCKED, FAILED) else "#f7c6c7", alpha=0.25, lw=0
            )


def volume_plot(found: list[Attempt], nights: list[str], statuses: dict[str, NightStatus]) -> str:
    rows = _history(found, "raw_transactions.row_volume", "accepted")
    expected = _history(found, "raw_transactions.row_volume", "expected_accepted")
    x = {n: i for i, n in enumerate(nights)}
    fig, ax = plt.subplots(figsize=(9, 2.8))
    _mark_blocked(ax, nights, statuses)
    if len(rows):
        last = rows.sort_values("time").groupby("partition").tail(1)
        ax.bar([x[p] for p in last["partition"]], last["value"], color="#4c78a8", label="accepted rows")
    if len(expected):
        last = expected.sort_values("time").groupby("partition").tail(1)
        ax.plot(
            [x[p] for p in last["partition"]],
            last["value"],
            "-",
            color="#f2a541",
            lw=2,
            label="expected (same weekday / holiday, recent median)",
        )
    ax.set_xticks(range(len(nights)), [n[5:] for n in nights], rotation=90, fontsize=7)
    ax.set_title("Row volume against its expectation")
    ax.legend(fontsize=7, loc="lower left")
    return _png(fig)


def score_plot(conn, night: Night) -> tuple[str | None, str]:
    """Tonight's score distribution against the deployed model's validation scores."""
    deployed = registry.deployed_model(conn)
    scores = warehouse.scores(conn, night.day)
    if deployed is None:
        return None, "no model deployed"
    _, card = model_lib.load(Path(deployed.path))
    quantiles = np.asarray(card.reference["validation_scores"]["quantiles"])
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(quantiles, np.linspace(0, 1, len(quantiles)), color="#888888", lw=2, label="validation")
    if len(scores):
        values = np.sort(scores["score"].to_numpy())
        ax.plot(
            values,
            np.arange(1, len(values) + 1) / len(values),
            color="#4c78a8",
            lw=1.5,
            label=f"{night.key} ({len(values):,} customers)",
        )
        note = f"{len(values):,} scores written"
    else:
        note = "no scores written for this night"
    ax.set_xscale("log")
    ax.set_xlabel("score")
    ax.set_ylabel("share of customers ≤ score")
    ax.set_title(f"Score distribution vs validation (model {card.version})")
    ax.legend(fontsize=8)
    return _png(fig), note


# --------------------------------------------------------------------------- the page
def _img(data: str | None, alt: str, missing: str) -> str:
    if data is None:
        return f"<p class='muted'>{html.escape(missing)}</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def render(settings: Settings, instance: dg.DagsterInstance, night_key: str) -> str:
    night = Night.of(dt.date.fromisoformat(night_key), settings.calendar)
    nights = [(night.day - dt.timedelta(days=i)).isoformat() for i in range(settings.report.nights - 1, -1, -1)]
    nights = [n for n in nights if n >= settings.calendar.partitions_start.isoformat()]
    found = attempts(instance, nights)
    statuses = night_statuses(instance, nights, found)
    status = statuses[night_key]
    tonight = [a for a in found if a.partition == night_key and a.run_id == status.run_id]
    failed = [a for a in tonight if not a.passed]
    with warehouse.connect(settings.warehouse.duckdb_path, read_only=True) as conn:
        scores_png, scores_note = score_plot(conn, night)
    rows = "".join(
        f"<tr class='{a.severity.lower()}'><td>{html.escape(a.label)}</td><td>{a.severity}</td>"
        f"<td>{'yes' if _blocking(a.label) and a.severity == 'ERROR' else 'no'}</td>"
        f"<td>{html.escape(a.summary)}</td></tr>"
        for a in failed
    )
    headline = {
        SCORED: f"scored ({scores_note})",
        BLOCKED: "BLOCKED — no scores written",
        FAILED: "run failed before a check blocked it",
        NOT_RUN: "never ran",
        RUNNING: "running",
    }[status.status]
    passed = sum(1 for a in tonight if a.passed)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>risk_assets — night {night_key}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
h1 {{ font-size: 1.5em; }}
.status {{ font-size: 1.2em; padding: .4em .8em; border-radius: 4px; display: inline-block; }}
.SCORED {{ background: #dff0d8; }} .BLOCKED, .FAILED {{ background: #f8d7da; }} .muted {{ color: #777; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .3em; text-align: left; vertical-align: top; font-size: .9em; }}
tr.error td:first-child {{ color: #b00; font-weight: bold; }}
tr.warn td:first-child {{ color: #a60; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Night {night_key}</h1>
<p><span class="status {status.status}">{html.escape(headline)}</span></p>
<p>{len(tonight)} check results in the latest run ({passed} passed, {len(failed)} failed); {status.runs} run(s)
of this night, {status.attempts_blocked} blocked{
        (" (earlier attempts by " + html.escape(", ".join(status.earlier_blocked_by)) + ")")
        if status.earlier_blocked_by
        else ""
    }.
Run <code>{html.escape(status.run_id or "-")}</code>.</p>
<h2>Checks that failed</h2>
{
        f"<table><tr><th>check</th><th>severity</th><th>blocks</th><th>why</th></tr>{rows}</table>"
        if failed
        else "<p>none</p>"
    }
<h2>Drift per feature against its bands</h2>
{
        _img(
            drift_plot(found, night_key),
            "drift per feature",
            "drift_bounds did not run on this night (an earlier check blocked it)",
        )
    }
<h2>Imputation and coverage over the last {len(nights)} nights</h2>
{_img(rates_plot(found, nights, statuses, settings), "imputation and coverage rates", "")}
<h2>Volume against its expectation</h2>
{_img(volume_plot(found, nights, statuses), "row volume", "")}
<h2>Scores against validation</h2>
{_img(scores_png, "score distribution", scores_note)}
<p class="muted">Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC from the Dagster instance's check
history and the warehouse {html.escape(str(settings.warehouse.duckdb_path))}; settings {settings.version()}.</p>
</body></html>
"""


def report_path(settings: Settings, night_key: str) -> Path:
    return Path(settings.report.dir) / f"night-{night_key}.html"


def write_report(settings: Settings, instance: dg.DagsterInstance, night_key: str, out: Path | None = None) -> Path:
    path = out or report_path(settings, night_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(settings, instance, night_key), encoding="utf-8")
    return path.resolve()


def link_report(instance: dg.DagsterInstance, night_key: str, path: Path) -> None:
    """The report, linked from the night's ``risk_scores`` partition (an observation: a
    blocked night has no materialisation to hang it on)."""
    instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key="risk_scores",
            partition=night_key,
            metadata={"report": dg.MetadataValue.path(str(path)), "report_url": dg.MetadataValue.url(path.as_uri())},
        )
    )
