"""Schedule, sensors and alerts: the guards run by themselves and shout when they fail,
when they only warn, and when a night never ran."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import dagster as dg

from risk_assets.app import alerts
from risk_assets.core.night import Night
from risk_assets.defs.jobs import NIGHTLY_JOB, REFERENCE_JOB
from risk_assets.defs.workers import fail_dead_runs
from risk_assets.settings import Settings
from risk_assets.sources import LandingSource

HISTORY_LIMIT = 200

# Statuses of an asset-check execution record, by value (the enum itself is not part of
# Dagster's public API): PLANNED, SUCCEEDED, FAILED.
PLANNED, SUCCEEDED, FAILED = "PLANNED", "SUCCEEDED", "FAILED"


def record_status(record) -> str:
    return record.status.value


def _run_url(settings: Settings, run_id: str | None) -> str | None:
    return f"{settings.alerts.ui_base_url.rstrip('/')}/runs/{run_id}" if run_id else None


def _record(settings: Settings, found: list[alerts.Alert]) -> list[alerts.Alert]:
    return alerts.record(
        settings.alerts.duckdb_path, found, settings.alerts.webhook_url, settings.alerts.webhook_timeout_seconds
    )


def check_alerts(instance: dg.DagsterInstance, check_keys, cursor: dict, settings: Settings):
    """New failed (ERROR or WARN) and did-not-evaluate check executions since ``cursor``.

    Returns (alerts, new cursor). A check whose run is still going stays pending."""
    found, new_cursor = [], dict(cursor)
    for key in check_keys:
        name = key.to_user_string()
        last = cursor.get(name, 0)
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=HISTORY_LIMIT)
        pending = [
            r.id for r in records if r.id > last and record_status(r) == PLANNED and not _finished(instance, r.run_id)
        ]
        for r in sorted(records, key=lambda r: r.id):
            if r.id <= last or r.id in pending:
                continue
            if record_status(r) == FAILED:
                evaluation = r.event.dagster_event.event_specific_data if r.event and r.event.dagster_event else None
                severity = evaluation.severity.value if evaluation else "ERROR"
                reason = evaluation.description if evaluation and evaluation.description else "check failed"
                found.append(
                    alerts.Alert(
                        kind="check_failed",
                        reason=reason,
                        partition=r.partition,
                        asset=key.asset_key.to_user_string(),
                        check_name=key.name,
                        severity=severity,
                        run_id=r.run_id,
                        run_url=_run_url(settings, r.run_id),
                    )
                )
            elif record_status(r) == PLANNED and not _blocked(instance, r.run_id):
                found.append(
                    alerts.Alert(
                        kind="did_not_evaluate",
                        reason="the run ended before this check produced a result",
                        partition=r.partition,
                        asset=key.asset_key.to_user_string(),
                        check_name=key.name,
                        severity="ERROR",
                        run_id=r.run_id,
                        run_url=_run_url(settings, r.run_id),
                    )
                )
        done = [r.id for r in records if r.id > last and r.id not in pending]
        if done:
            new_cursor[name] = min([max(done)] + [p - 1 for p in pending])
    return found, new_cursor


_BLOCKED: dict[str, bool] = {}


def _blocked(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Did a blocking ERROR check stop this run? Then its downstream checks were skipped
    by design (the night_blocked alert covers it); otherwise a PLANNED check crashed."""
    if run_id not in _BLOCKED:
        _BLOCKED[run_id] = any(
            not r.dagster_event.event_specific_data.passed
            and r.dagster_event.event_specific_data.severity == dg.AssetCheckSeverity.ERROR
            for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        )
    return _BLOCKED[run_id]


def _finished(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is None or run.is_finished


BLOCKED_BY_TAG = "risk_assets/blocked_by"
"""Run tag naming the blocking checks that stopped a nightly run (shown in the Runs list)."""
REPORT_TAG = "risk_assets/report"


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> tuple[list[str], list[str]]:
    """(blocking checks that failed with ERROR, checks that failed with WARN) of a run,
    as ``asset.check`` labels."""
    errors, warns = set(), set()
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        label = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        (errors if evaluation.severity == dg.AssetCheckSeverity.ERROR else warns).add(label)
    return sorted(errors), sorted(warns)


def run_check_alerts(instance: dg.DagsterInstance, run: dg.DagsterRun, settings: Settings) -> list[alerts.Alert]:
    """A ``check_failed`` alert for every check of ``run`` that failed, ERROR or WARN — the
    alerts the check-alert sensor raises for that run, with the same ids (whichever raises
    an alert first, it is stored once)."""
    found = []
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        found.append(
            alerts.Alert(
                kind="check_failed",
                reason=evaluation.description or "check failed",
                partition=evaluation.partition or run.tags.get("dagster/partition"),
                asset=evaluation.asset_key.to_user_string(),
                check_name=evaluation.check_name,
                severity=evaluation.severity.value,
                run_id=run.run_id,
                run_url=_run_url(settings, run.run_id),
            )
        )
    return found


def night_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, failure: str, settings: Settings) -> alerts.Alert:
    """The alert for a failed nightly run: ``night_blocked`` naming the blocking checks
    that stopped it, or ``run_failed`` with the error when no check did."""
    failed, _ = failed_checks(instance, run.run_id)
    common = {
        "partition": run.tags.get("dagster/partition"),
        "severity": "ERROR",
        "run_id": run.run_id,
        "run_url": _run_url(settings, run.run_id),
    }
    if failed:
        return alerts.Alert(
            kind="night_blocked", reason=f"scores not written; failed: {', '.join(sorted(failed))}", **common
        )
    return alerts.Alert(kind="run_failed", reason=failure, **common)


def after_night(
    instance: dg.DagsterInstance, run: dg.DagsterRun, settings: Settings, failure: str | None = None
) -> list[alerts.Alert]:
    """What happens when a nightly run ends — done by the run-status sensors in
    production, and by the CLI and the demo right after their runs (every step is
    idempotent, so both doing it changes nothing): every failed check of the run alerts
    (``check_failed``, WARN included); a failed run is tagged with the checks that blocked it
    and alerts; the night's report is written and linked from ``risk_scores[night]``.
    Returns the new alerts."""
    raised = run_check_alerts(instance, run, settings)
    if failure is not None:
        blocked, _ = failed_checks(instance, run.run_id)
        if blocked:
            instance.add_run_tags(run.run_id, {BLOCKED_BY_TAG: ", ".join(blocked)})
        raised.append(night_alert(instance, run, failure, settings))
    found = _record(settings, raised)
    night = run.tags.get("dagster/partition")
    if settings.report.after_each_night and night:
        from risk_assets.app import report

        path = report.write_report(settings, instance, night)
        report.link_report(instance, night, path)
        instance.add_run_tags(run.run_id, {REPORT_TAG: str(path)})
    return found


IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class Done:
    """What the instance already holds, as the landing sensor needs it: the raw days loaded
    (materialised ``raw_transactions`` partitions) and a run still going (its id), if any."""

    loaded: frozenset[str] = frozenset()
    busy: str | None = None

    @classmethod
    def of(cls, instance: dg.DagsterInstance) -> Done:
        going = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS), limit=1)
        return cls(
            loaded=frozenset(instance.get_materialized_partitions(dg.AssetKey("raw_transactions"))),
            busy=going[0].run_id if going else None,
        )


def landing_requests(
    source: LandingSource, seen: dict, done: Done = Done()
) -> tuple[list[dg.RunRequest], dict, list[str]]:
    """The next day to run: the oldest landing day whose folder is new or changed since
    ``seen`` (day -> newest mtime of anything under the day folder, marker files included, so
    a late ``_SUCCESS`` counts) — one at a time, and none while a run is going. A day whose
    write is still in progress waits (not stamped, so it is requested once it commits).

    A first tick (``seen`` empty) starts from what ``done`` says was loaded: every day folder
    up to the newest loaded day is taken as it is (no request; a day among them never loaded
    is named in the notes: a backfill is the operator's explicit ``risk-assets run --from
    --to``), so a history just loaded is not requested again day by day. Returns the
    requests, the new cursor and notes (days waiting, days skipped, stray entries)."""
    seen, notes = dict(seen), []
    days, others = source.partition_folders()
    stamps: dict[str, int] = {}
    for day in days:
        listing = source.listing(day)
        if listing.in_progress:
            notes.append(f"{day}: waiting, write in progress ({listing.in_progress})")
            continue
        found = [f.stat().st_mtime_ns for f in source.day_dir(day).rglob("*")]
        if listing.files or found:
            stamps[day.isoformat()] = max(found)
    if not any(key[:1].isdigit() for key in seen) and done.loaded:  # no day seen yet (reference files aside)
        newest = max(done.loaded)
        old = sorted(day for day in stamps if day <= newest)
        seen |= {day: stamps[day] for day in old}
        never = [day for day in old if day not in done.loaded]
        if never:
            notes.append(
                f"{len(never)} day folder(s) up to the newest loaded day {newest} were never loaded and are not "
                f"requested ({never[0]} .. {never[-1]}): backfill them with risk-assets run --from D --to D"
            )
    pending = sorted(day for day, stamp in stamps.items() if seen.get(day) != stamp)
    requests = []
    if pending and done.busy:
        notes.append(f"{len(pending)} day(s) waiting ({pending[0]} first) until run {done.busy} ends")
    elif pending:
        day = pending[0]
        seen[day] = stamps[day]
        requests.append(dg.RunRequest(partition_key=day, run_key=f"{day}:{stamps[day]}", job_name=NIGHTLY_JOB))
        if len(pending) > 1:
            notes.append(f"{len(pending) - 1} more day(s) waiting, one run at a time ({pending[1]} next)")
    notes += [f"not read: {e.path} — {e.reason}" for e in others if e.action == "stray"]
    return requests, seen, notes


REFERENCE_FILES = ("customers.parquet", "irregularities.parquet")
"""The landing folder's reference files the landing sensor watches."""


def reference_request(
    source: LandingSource, seen: dict[str, str], done: Done, calendar, day_requested: bool
) -> tuple[dg.RunRequest | None, dict[str, str], str | None]:
    """Reference data is a nightly input: when a reference file changed since ``seen``
    (modification time and size), a ``reference_job`` run re-reads it — the customers as a
    new version valid from the as-of of the night after the newest loaded day (the night
    that would first read it), and only if its content changed. The first sight of a file is
    stamped, not requested (the history load read it). While a run is going, or when this
    tick requests a day (its nightly run re-reads a changed customers file itself), the
    change waits, unstamped, for a later tick. Returns (the request or None, the new cursor,
    a note)."""
    seen, changed, stamps = dict(seen), [], {}
    for name in REFERENCE_FILES:
        path = source.root / name
        if not path.exists():
            continue
        info = path.stat()
        key = f"reference:{name}"
        stamps[key] = f"{info.st_mtime_ns}:{info.st_size}"
        if seen.get(key) is None:
            seen[key] = stamps[key]
        elif seen[key] != stamps[key]:
            changed.append(name)
    if not changed:
        return None, seen, None
    if done.busy or day_requested:
        why = f"run {done.busy} ends" if done.busy else "tonight's day has run"
        return None, seen, f"{', '.join(changed)} changed: re-read once {why}"
    for name in changed:
        seen[f"reference:{name}"] = stamps[f"reference:{name}"]
    if not done.loaded:
        return None, seen, f"{', '.join(changed)} changed; no day is loaded yet: the history load reads it"
    night = Night.of(max(done.loaded), calendar)
    valid_from = Night(night.day + dt.timedelta(days=1), calendar.timezone).as_of
    request = dg.RunRequest(
        job_name=REFERENCE_JOB,
        run_key=f"reference:{':'.join(seen[f'reference:{n}'] for n in changed)}",
        run_config={"ops": {"customers": {"config": {"valid_from": valid_from.isoformat(), "only_if_changed": True}}}},
        tags={"risk_assets/reference_changed": ", ".join(changed)},
    )
    return request, seen, f"{', '.join(changed)} changed: re-read, valid from {valid_from} (UTC)"


def landing_tick(
    source: LandingSource, seen: dict, instance: dg.DagsterInstance, settings: Settings, reference: bool = True
) -> tuple[list[dg.RunRequest], dict, list[str]]:
    """One tick of the landing sensor: the next day (:func:`landing_requests`), else a
    changed reference file (:func:`reference_request`, when ``reference``)."""
    done = Done.of(instance)
    requests, seen, notes = landing_requests(source, seen, done)
    if reference:
        reread, seen, note = reference_request(source, seen, done, settings.calendar, bool(requests))
        requests += [reread] if reread is not None else []
        notes += [note] if note else []
    return requests, seen, notes


def layout_alerts(source: LandingSource) -> list[alerts.Alert]:
    """One alert per stray entry of the landing folder (alert ids are stable, so an
    entry alerts once however many ticks see it)."""
    return [
        alerts.Alert(
            kind="landing_layout",
            reason=f"{e.path} fits no partition and is not read: {e.reason}",
            asset=f"landing:{e.path}",
            severity="WARN",
        )
        for e in source.layout_problems()
    ]


def build_automation(
    settings: Settings, nightly_job, performance_job, asset_checks: list, reference_job=None
) -> tuple[list, list]:
    """Returns (schedules, sensors). The clock-driven ones (schedules, freshness) start as
    ``automation.clock_running`` says; the event-driven ones always run."""
    clock = dg.DefaultScheduleStatus.RUNNING if settings.automation.clock_running else dg.DefaultScheduleStatus.STOPPED
    nightly = dg.build_schedule_from_partitioned_job(
        nightly_job,
        name="nightly_schedule",
        hour_of_day=2,
        minute_of_hour=30,
        description="Every night at 02:30 business time: yesterday's partition, raw to scores.",
        default_status=clock,
    )

    @dg.sensor(
        name="check_alerts_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts on every failed check — WARN included, which no run-failure "
        "sensor sees — and on checks that did not evaluate because their run crashed.",
    )
    def check_alerts_sensor(context: dg.SensorEvaluationContext):
        keys = sorted(context.repository_def.asset_graph.asset_check_keys, key=lambda k: k.to_user_string())
        found, cursor = check_alerts(context.instance, keys, json.loads(context.cursor or "{}"), settings)
        new = _record(settings, found)
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(f"{len(new)} new alert(s)") if new else dg.SkipReason("no new failed checks")

    @dg.run_failure_sensor(
        name="blocked_night_sensor",
        monitored_jobs=[nightly_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One alert per failed nightly run: which blocking checks stopped it, "
        "or the error if it crashed. Tags the run with the blocking checks "
        f"({BLOCKED_BY_TAG}) and writes the night's report.",
    )
    def blocked_night_sensor(context: dg.RunFailureSensorContext):
        message = context.failure_event.message if context.failure_event else "run failed"
        after_night(context.instance, context.dagster_run, settings, failure=message)

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="night_report_sensor",
        monitored_jobs=[nightly_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Writes the report of every scored night and links it from risk_scores[night].",
    )
    def night_report_sensor(context: dg.RunStatusSensorContext):
        after_night(context.instance, context.dagster_run, settings)

    @dg.sensor(
        name="landing_sensor",
        jobs=[nightly_job, *([reference_job] if reference_job is not None else [])],
        minimum_interval_seconds=settings.automation.landing_poll_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Landing source: requests the next day's partition when its files arrive or change — "
        "in order, one run at a time; a first tick after a history load requests nothing already loaded — and "
        "a re-read of the reference data (customers, irregularities) when their files change.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext):
        for note in fail_dead_runs(context.instance):  # a dead run would hold every later night back
            context.log.error(note)
        if settings.source.kind != "landing":
            return dg.SkipReason("source is the embedded world; nothing lands")
        source = LandingSource(settings)
        cursor = json.loads(context.cursor or "{}")
        requests, seen, notes = landing_tick(source, cursor, context.instance, settings, reference_job is not None)
        for note in notes:
            context.log.warning(note)
        _record(settings, layout_alerts(source))
        context.update_cursor(json.dumps(seen))
        return requests or dg.SkipReason("no new landing files" + (f"; {'; '.join(notes)}" if notes else ""))

    @dg.schedule(
        job=performance_job,
        cron_schedule="0 6 * * *",
        name="performance_schedule",
        execution_timezone=settings.calendar.timezone,
        default_status=clock,
        description="Daily at 06:00: the night whose 30-day label horizon has just passed.",
    )
    def performance_schedule(context: dg.ScheduleEvaluationContext):
        night = Night.horizon_passed(context.scheduled_execution_time.date(), settings.calendar)
        if night.day < settings.calendar.partitions_start:
            return dg.SkipReason(f"{night.key} is before the first partition")
        return dg.RunRequest(partition_key=night.key, run_key=night.key)

    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=asset_checks,
        name="freshness_sensor",
        default_status=dg.DefaultSensorStatus(clock.value),
    )
    return [nightly, performance_schedule], [
        check_alerts_sensor,
        blocked_night_sensor,
        night_report_sensor,
        landing_sensor,
        freshness_sensor,
    ]
