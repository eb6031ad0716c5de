"""The operator's work as functions: load raw days, train, run nights in order, read the
status of the last nights. The CLI (``risk-assets``) calls these; each launches the
project's real jobs as runs of the ``risk_assets`` code location on a persistent Dagster
instance (:mod:`risk_assets.app.launch`), so every run shows in the UI under its job and
can be re-executed there, and after every night does what the run-status sensors do in
production (:func:`risk_assets.defs.sensors.after_night`: tag, alert, report)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from risk_assets.app import launch, report
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import HISTORY_JOB, NIGHTLY_JOB, REFERENCE_JOB, TRAINING_JOB, range_tags
from risk_assets.defs.sensors import after_night, failed_checks
from risk_assets.scenario.settings import scenario_of
from risk_assets.scenario.source import export_landing
from risk_assets.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
PARTITION_TAG = "dagster/partition"


class BadArgument(ValueError):
    """An argument the operator must correct; the message names the valid choices."""


def parse_day(value: str, what: str) -> dt.date:
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadArgument(f"{what} {value!r} is not a date in the form YYYY-MM-DD") from None


def valid_nights(settings: Settings) -> tuple[dt.date, dt.date]:
    """The first and last partition the nightly job can run (up to yesterday, business time)."""
    from zoneinfo import ZoneInfo

    today = dt.datetime.now(ZoneInfo(settings.calendar.timezone)).date()
    return settings.calendar.partitions_start, today - dt.timedelta(days=1)


def nights_between(settings: Settings, first: dt.date, last: dt.date) -> list[dt.date]:
    lo, hi = valid_nights(settings)
    if last < first:
        raise BadArgument(f"--to {last} is before --from {first}")
    for day in (first, last):
        if not lo <= day <= hi:
            raise BadArgument(f"night {day} is not a partition: valid nights are {lo} .. {hi}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass
class NightOutcome:
    night: dt.date
    scored: bool
    run_id: str
    blocked_by: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    received: int | None = None
    scored_customers: int | None = None
    error: str | None = None
    new_alerts: int = 0
    report: str | None = None


@dataclass
class History:
    """What a load left in the warehouse for a range of days: days with a load, rows
    (received = accepted + rejected), and each quarantined day with the failed raw checks
    (check, summary)."""

    days: int
    loaded: int
    received: int
    accepted: int
    rejected: int
    quarantined: dict[dt.date, list[tuple[str, str]]]


RUN_TIMEOUT_SECONDS = 24 * 3600
"""How long a command waits for a run it launched (a run whose process died unnoticed)."""


class Operator:
    """The operator's commands. Its runs are launched in the ``risk_assets`` code location
    (:mod:`risk_assets.app.launch`): the UI lists them under their job and can re-execute
    them. Use it as a context manager: the code location's server lives as long as it."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance):
        self.settings, self.instance = settings, instance
        self.defs = build_definitions(settings)
        self._stack = contextlib.ExitStack()
        self._workspace = None

    def __enter__(self) -> Operator:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def execute(
        self, job: str, partition_key: str | None = None, tags: dict | None = None, run_config: dict | None = None
    ) -> launch.LaunchedRun:
        """Launch ``job`` (one partition, or the range ``tags`` name) and wait for it."""
        if self._workspace is None:
            self._workspace = self._stack.enter_context(launch.code_location(self.instance))
        tags = {**(tags or {}), **({PARTITION_TAG: partition_key} if partition_key else {})}
        run_id = launch.launch(self._workspace, self.instance, job, tags, run_config or QUIET)
        return launch.wait(self.instance, run_id, RUN_TIMEOUT_SECONDS)

    def load(self, first: dt.date, last: dt.date, reference: bool = True) -> list[launch.LaunchedRun]:
        """Reference data (unless ``reference`` is False), then the raw days ``first .. last``
        in one run."""
        results = [self.execute(REFERENCE_JOB)] if reference else []
        if results and not results[0].success:
            return results
        return results + [self.execute(HISTORY_JOB, tags=range_tags(first, last))]

    def history(self, first: dt.date, last: dt.date) -> History:
        """The load ledger and the raw layer's recorded verdicts of ``first .. last``."""
        from risk_assets.defs.resources import duckdb_resource, open_warehouse
        from risk_assets.store import warehouse

        with open_warehouse(duckdb_resource(self.settings)) as conn:
            loads = warehouse.loads(conn, first, last)
            verdicts = warehouse.raw_verdicts(conn, first, last)
        failed = verdicts[~verdicts["passed"].astype(bool)]
        quarantined: dict[dt.date, list[tuple[str, str]]] = {}
        for row in failed.itertuples():
            quarantined.setdefault(row.partition, []).append((row.check_name, row.summary))
        return History(
            days=(last - first).days + 1,
            loaded=len(loads),
            received=int(loads["received"].sum()),
            accepted=int(loads["accepted"].sum()),
            rejected=int(loads["rejected"].sum()),
            quarantined=dict(sorted(quarantined.items())),
        )

    def loaded(self) -> tuple[dt.date, dt.date] | None:
        """The first and last raw day loaded (None: none yet)."""
        from risk_assets.defs.resources import duckdb_resource, open_warehouse
        from risk_assets.store import warehouse

        with open_warehouse(duckdb_resource(self.settings)) as conn:
            return warehouse.loaded_range(conn)

    def nights_run(self) -> list[dt.date]:
        """Every night a nightly run exists for in this instance, in order."""
        keys = {r.tags.get("dagster/partition") for r in self.instance.get_runs(dg.RunsFilter(job_name=NIGHTLY_JOB))}
        return sorted(dt.date.fromisoformat(k) for k in keys if k)

    @staticmethod
    def failure(result: dg.ExecuteInProcessResult | launch.LaunchedRun) -> str:
        """Why a run failed: the first failed step's message (a refusal's or an error's)."""
        return _failure_message(result)

    def train(self) -> launch.LaunchedRun:
        return self.execute(TRAINING_JOB)

    def night(self, night: dt.date) -> NightOutcome:
        """One nightly run (nights run in order: a night's look-back reads the ones before
        it), then what production's run-status sensors do."""
        result = self.execute(NIGHTLY_JOB, partition_key=night.isoformat())
        run = self.instance.get_run_by_id(result.run_id)
        failure = None if result.success else _failure_message(result)
        new = after_night(self.instance, run, self.settings, failure=failure)
        errors, warns = failed_checks(self.instance, result.run_id)
        meta = {
            e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()
        }
        raw, scores = meta.get("raw_transactions", {}), meta.get("risk_scores", {})
        return NightOutcome(
            night=night,
            scored="risk_scores" in meta,
            run_id=result.run_id,
            blocked_by=errors,
            warnings=warns,
            received=raw["received"].value if "received" in raw else None,
            scored_customers=scores["scored_customers"].value if "scored_customers" in scores else None,
            error=failure if not errors else None,
            new_alerts=len(new),
            report=str(report.report_path(self.settings, night.isoformat())),
        )

    def status(self, last: int, until: dt.date | None = None) -> list[report.NightStatus]:
        end = until or valid_nights(self.settings)[1]
        keys = [(end - dt.timedelta(days=i)).isoformat() for i in range(last - 1, -1, -1)]
        keys = [k for k in keys if k >= self.settings.calendar.partitions_start.isoformat()]
        found = report.attempts(self.instance, keys)
        statuses = report.night_statuses(self.instance, keys, found)
        return [statuses[k] for k in keys]

    def latest_night_run(self) -> dt.date | None:
        runs = self.instance.get_runs(dg.RunsFilter(job_name=NIGHTLY_JOB), limit=1)
        key = runs[0].tags.get("dagster/partition") if runs else None
        return dt.date.fromisoformat(key) if key else None


def _failure_message(result: dg.ExecuteInProcessResult | launch.LaunchedRun) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_failure_data:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            if data.error:
                return data.error.message.strip().splitlines()[0]
    for event in result.all_events:  # no step failed: the run itself (its process died, it was canceled)
        if event.event_type_value in ("RUN_FAILURE", "RUN_CANCELED") and event.message:
            return event.message.strip().splitlines()[0]
    return "run failed without a step failure or a run-failure message (see the run's logs in the UI)"


def build_landing_world(
    settings: Settings,
    instance,
    history: tuple[dt.date, dt.date],
    last_day: dt.date,
    quiet: dict | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> None:
    """Export the world's landing files up to ``last_day``, then load reference data and
    the raw ``history`` and train (and deploy) a model, all through the landing source."""
    first, history_end = history
    days = [first + dt.timedelta(days=i) for i in range((last_day - first).days + 1)]
    export_landing(settings, Path(settings.source.landing_dir), days)
    defs = build_definitions(settings)
    for job, tags in ((REFERENCE_JOB, None), (HISTORY_JOB, range_tags(first, history_end)), (TRAINING_JOB, None)):
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, run_config=quiet, tags=tags, raise_on_error=False
        )
        say(f"{scenario_of(settings).world.profile}: {job} {'ok' if result.success else 'FAILED'}")
        if not result.success:
            raise RuntimeError(f"{scenario_of(settings).world.profile}: {job} failed")
