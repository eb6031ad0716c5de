"""``risk-assets``: the operator's command line.

Every command that runs something runs the project's real jobs against the persistent
Dagster instance in ``--home`` (default ``$DAGSTER_HOME`` or ``./.dagster_home``), so the
UI shows each run. Exit codes: 0 done (every night scored), 1 a night was blocked or a
job failed, 2 a bad argument (the message names the valid choices).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_HOME = Path(".dagster_home")
DEMO_SETTINGS = "demo.toml"
"""Written by ``risk-assets demo`` into its instance folder: the settings the demo ran
with (clock-driven automation stopped). Commands on that home use it unless
``$RISK_ASSETS_CONFIG`` names another file."""


INSTANCE_YAML = """\
# Written by risk-assets: a local SQLite instance. No usage telemetry leaves this machine.
telemetry:
  enabled: false
# The DuckDB warehouse has one writer at a time: runs started by the landing sensor, the
# schedules or the UI queue, and at most one job of this project (tag risk_assets/warehouse)
# runs at once (the daemon dequeues them), instead of waiting on the file's lock.
concurrency:
  runs:
    tag_concurrency_limits:
      - key: risk_assets/warehouse
        limit: 1
  pools:
    default_limit: 1
"""
EARLIER_INSTANCE_YAML = "telemetry:\n  enabled: false\n"
"""What earlier versions wrote: upgraded in place (it is ours, it held nothing else)."""

READING = frozenset({"status", "alerts", "report", "audit", "adopt"})
"""Commands that only read an instance (and ``adopt``, which must not hand a warehouse to a
mistyped folder): a missing ``--home`` is an error for them (a typo must not show an empty
history). The others run jobs and create the home, saying so."""


def _use_home(home: Path, command: str = "") -> Path:
    """Point Dagster at a persistent, project-local instance (SQLite) before it loads."""
    home = home.resolve()
    if not home.is_dir():
        if command == "adopt":
            raise _bad(
                f"no instance folder at {home}: adopt hands the warehouse to an existing instance (a typo must "
                f"not take it); if {home} is meant to be the new home, create it first: mkdir -p {home}"
            )
        if command in READING:
            raise _bad(
                f"no Dagster instance at {home}: give --home (or $DAGSTER_HOME) of an instance that ran, "
                "or create one with risk-assets load (your data) or risk-assets demo"
            )
        print(f"risk-assets {command or ''}: new Dagster instance in {home}".replace("  ", " "), file=sys.stderr)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() == EARLIER_INSTANCE_YAML:
        config.write_text(INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _settings_file(home: Path) -> str | None:
    if os.environ.get("RISK_ASSETS_CONFIG"):
        return os.environ["RISK_ASSETS_CONFIG"]
    demo = home / DEMO_SETTINGS
    return str(demo) if demo.is_file() else None


def quiet_dagster_warnings() -> None:
    """The CLI's output is its own: the preview/beta/superseded-API warnings the project
    accepts on purpose are filtered (see ``risk_assets/defs/known_warnings.py``)."""
    from risk_assets.defs.known_warnings import accept_known_dagster_warnings

    accept_known_dagster_warnings()


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


READS_SOURCE = frozenset({"load", "run"})
"""Commands that read the source's files: its folder must exist before anything starts."""


def _context(args: argparse.Namespace):
    """(settings, instance) for a command working on ``--home``: the settings are read and
    checked first, so a command refused for its settings creates no instance."""
    from risk_assets.settings import load_settings

    path = _settings_file(Path(args.home).resolve())
    settings = load_settings(path, home=Path(args.home).resolve())
    if path:  # the code location's server and every run it launches read the same file
        os.environ["RISK_ASSETS_CONFIG"] = str(Path(path).resolve())
    if args.command in READS_SOURCE:
        _require_source(settings)
    if args.command not in READING and not Path(args.home).is_dir():  # before a new home is created
        _same_world(settings, None, Path(args.home).resolve())
    _use_home(Path(args.home), args.command)
    import dagster as dg

    quiet_dagster_warnings()
    logging.getLogger("risk_assets.app.alerts").setLevel(logging.ERROR)
    # entered for the command's duration (closed by main): the instance is the current one
    # for everything Dagster loads meanwhile, and is disposed when the command ends
    instance = args.exit_stack.enter_context(dg.DagsterInstance.get())
    if args.command != "adopt":
        _same_world(settings, instance)
    return settings, instance


def _same_world(settings, instance, home: Path | None = None) -> None:
    """One home, one world: a command refuses a warehouse that another Dagster instance
    owns (exit 2, naming both) before it reads or writes anything. The runs check it again
    when they start (the resource's set-up), so the UI and the daemon are held to it too. A
    warehouse busy with a run is left to that check (a reading command must not wait)."""
    from risk_assets.defs.resources import instance_identity
    from risk_assets.store import warehouse

    path = Path(settings.warehouse.duckdb_path)
    if not path.is_file():
        return
    try:
        conn = warehouse.open_file(path, read_only=True, lock_timeout_seconds=5.0)
    except warehouse.WarehouseBusy:
        print(
            f"risk-assets: {path} is busy with a run; its owner is checked when this command's runs start",
            file=sys.stderr,
        )
        return
    try:
        who = instance_identity(instance) if instance is not None else ("none yet", f"{home} (not created)")
        warehouse.check_owner(warehouse.owner(conn), *who, path)
    except warehouse.OtherInstance as exc:
        raise _bad(str(exc)) from None
    finally:
        conn.close()


def _console():
    """Rich console at least 120 columns wide (a pipe would make it 80)."""
    import shutil

    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=max(shutil.get_terminal_size((140, 40)).columns, 140))


# --------------------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    home = _use_home(Path(args.home), args.command)
    import dagster as dg

    quiet_dagster_warnings()
    logging.getLogger("risk_assets.app.alerts").setLevel(logging.ERROR)
    from risk_assets.app.demo import run_demo, write_demo_settings
    from risk_assets.settings import load_settings

    settings = load_settings(home=home)  # $RISK_ASSETS_CONFIG or the defaults (in the home)
    if args.customers:
        settings = settings.with_overrides(scenario={"world": {"n_customers": args.customers}})
    settings = load_settings(write_demo_settings(home, settings))
    with dg.DagsterInstance.get() as instance:
        _same_world(settings, instance)
        return run_demo(settings, instance, nights=args.nights, out=sys.stdout)


def cmd_ui(args: argparse.Namespace) -> int:
    """``dagster dev`` on 127.0.0.1 for the instance in ``--home`` (and its demo settings)."""
    home = _use_home(Path(args.home), args.command)
    env = dict(os.environ)
    config = _settings_file(home)
    if config:
        env["RISK_ASSETS_CONFIG"] = config
    from risk_assets.app.launch import LOCATION, MODULE

    # the code location by name, from any folder (a user's own holds no pyproject.toml): the
    # name the CLI's runs carry, so the UI lists and re-executes them under their job
    workspace = home / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_module:\n      module_name: {MODULE}\n      location_name: {LOCATION}\n"
    )
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "dev",
        "-h",
        "127.0.0.1",
        "-p",
        str(args.port),
        "-w",
        str(workspace),
    ]
    print(f"DAGSTER_HOME={home} {'RISK_ASSETS_CONFIG=' + config + ' ' if config else ''}{' '.join(command)}")
    return _serve(command, env)


UI_STOP_SECONDS = 30
"""How long ``dagster dev`` and its children get to stop before they are killed."""


def _serve(command: list[str], env: dict) -> int:
    """Run ``command`` in a process group of its own until it ends, or until this process
    is interrupted or terminated: then the whole group (``dagster dev``, its webserver, daemon
    and code servers) is stopped — asked, then killed after :data:`UI_STOP_SECONDS` — so no
    child is left serving the port."""
    import signal

    proc = subprocess.Popen(command, env=env, start_new_session=True)

    class Stop(Exception):
        pass

    def on_signal(signum, frame):
        raise Stop(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    try:
        return proc.wait()
    except (KeyboardInterrupt, Stop):
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # stopping already: further signals wait
            signal.signal(sig, signal.SIG_IGN)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in dagster dev's own terminal sends
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=UI_STOP_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
        proc.wait()
        print("risk-assets ui: stopped dagster dev and its processes", file=sys.stderr)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_load(args: argparse.Namespace) -> int:
    from risk_assets.app.operations import Operator, parse_day

    first, last = parse_day(args.start, "--from"), parse_day(args.end, "--to")
    if last < first:
        raise _bad(f"--to {last} is before --from {first}")
    settings, instance = _context(args)
    if first < settings.calendar.partitions_start:
        raise _bad(f"--from {first} is before the first partition {settings.calendar.partitions_start}")
    t0 = time.perf_counter()
    operator = args.exit_stack.enter_context(Operator(settings, instance))
    results = operator.load(first, last, reference=not args.no_reference)
    for result in results:
        line = f"{result.dagster_run.job_name}: {'ok' if result.success else 'FAILED'} (run {result.run_id})"
        print(line if result.success else f"{line}: {operator.failure(result)}")
    if not all(r.success for r in results):
        print("load failed: fix the cause above and run the same command again (days already loaded are re-read)")
        return 1
    summary = operator.history(first, last)
    print(
        f"loaded {first} .. {last}: {summary.loaded} of {summary.days} day(s) in "
        f"{time.perf_counter() - t0:.0f}s; rows received {summary.received:,} = accepted {summary.accepted:,} "
        f"+ rejected {summary.rejected:,}"
    )
    if summary.quarantined:
        print(
            f"{len(summary.quarantined)} day(s) quarantined by the raw checks (a night whose feature "
            "windows read one is blocked; an older one is reported as a WARN):"
        )
        for day, reasons in summary.quarantined.items():
            print(f"  {day}  " + "; ".join(f"{check}: {why}" for check, why in reasons))
        _holiday_hint(settings, summary.quarantined)
        days = list(summary.quarantined)
        listed = ", ".join(f'"{d}"' for d in days)
        print(
            "  re-deliver a day and re-load it: risk-assets load --no-reference --from D --to D\n"
            "  or accept the days as they are, in the settings file:\n"
            f"    [override]\n    accept_days = [{listed}]\n"
            '    by = "your name"\n    reason = "why they are right"'
        )
    return 0


def _calendar_line(settings, operator) -> None:
    """At training: the holidays the level checks use, and the quiet days of the loaded
    history they leave unexplained (with the country that would explain them)."""
    loaded = operator.loaded()
    if loaded is None:
        return
    summary = operator.history(*loaded)
    country, extra = settings.calendar.holidays_country, len(settings.calendar.extra_holidays)
    print(
        f"calendar: {'public holidays of ' + country if country else 'no holidays_country set'}"
        + (f", {extra} extra holiday(s)" if extra else "")
        + f"; history {loaded[0]} .. {loaded[1]}: {len(summary.quarantined)} quarantined day(s)"
    )
    _holiday_hint(settings, summary.quarantined)


def _holiday_hint(settings, quarantined: dict) -> None:
    """Quiet days (too few rows for their weekday) that are public holidays somewhere: the
    ``calendar.holidays_country`` setting that would have judged them as holidays."""
    from risk_assets.core.calendar import explaining_countries, holidays_between

    quiet = [
        day
        for day, reasons in quarantined.items()
        if any(check == "row_volume" and why.startswith("too few") for check, why in reasons)
    ]
    if not quiet:
        return
    known = holidays_between(settings.calendar, min(quiet), max(quiet))
    unexplained = [d for d in quiet if d not in known]
    if not unexplained:  # holidays of the configured calendar, and still too quiet for one
        return
    found = explaining_countries(unexplained)
    if not found:
        print(f"  {len(quiet)} of them are quiet days no country's public holidays explain (calendar.extra_holidays?)")
        return
    code, held = found[0]
    print(
        f"  {len(held)} of the {len(unexplained)} quiet day(s) are public holidays in {code}"
        + (f" (as in {', '.join(c for c, _ in found[1:5])})" if len(found) > 1 else "")
        + f": {', '.join(map(str, held[:6]))}{' …' if len(held) > 6 else ''} — set [calendar] holidays_country = "
        f'"{code}" (or yours) and re-load those days'
    )


def _require_source(settings) -> None:
    """A landing folder that does not exist is a setting to fix, not a parquet error."""
    if settings.source.kind == "landing" and not Path(settings.source.landing_dir).is_dir():
        raise _bad(
            f"source.landing_dir {settings.source.landing_dir} is not a folder: set it in the settings file "
            f"({os.environ.get('RISK_ASSETS_CONFIG') or 'RISK_ASSETS_CONFIG is not set'})"
        )


def cmd_train(args: argparse.Namespace) -> int:
    from risk_assets.app.operations import Operator

    settings, instance = _context(args)
    operator = args.exit_stack.enter_context(Operator(settings, instance))
    result = operator.train()
    _calendar_line(settings, operator)
    meta = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    model = meta.get("risk_model", {})
    if model:
        print(
            f"model {model.get('model_version')}: validation ROC AUC {model.get('validation_roc_auc', 0):.3f}, "
            f"precision in top {model.get('review_budget', 0):.0%} {model.get('validation_precision_at_budget', 0):.3f}"
        )
    gate = meta.get("deployed_model")
    if result.success and gate:
        print(f"deployment gate: {gate.get('decision')} — serving {gate.get('model_version')}")
        return 0
    print(f"training or the deployment gate failed: {Operator.failure(result)} (run {result.run_id})")
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    """One night, or a range in order, with a progress bar and a summary."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from risk_assets.app.operations import Operator, nights_between, parse_day

    if args.night and (args.start or args.end):
        raise _bad("give --night, or --from and --to, not both")
    if not args.night and not (args.start and args.end):
        raise _bad("give --night D, or --from D --to D")
    first = parse_day(args.night or args.start, "--night" if args.night else "--from")
    last = parse_day(args.night or args.end, "--night" if args.night else "--to")
    settings, instance = _context(args)
    nights = nights_between(settings, first, last)
    console = _console()
    operator = args.exit_stack.enter_context(Operator(settings, instance))
    outcomes = []
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("nights"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=True, disable=len(nights) == 1) as progress:
        task = progress.add_task("nightly_job", total=len(nights))
        for night in nights:
            progress.update(task, description=f"nightly_job {night}")
            outcome = operator.night(night)
            outcomes.append(outcome)
            console.print(_outcome_line(outcome))
            progress.advance(task)
    scored = sum(o.scored for o in outcomes)
    blocked = [o for o in outcomes if not o.scored]
    console.print(
        f"{len(outcomes)} night(s): {scored} scored, {len(blocked)} blocked or failed"
        + (f" ({', '.join(str(o.night) for o in blocked)})" if blocked else "")
        + f"; reports in {settings.report.dir}"
    )
    return 1 if blocked else 0


def _outcome_line(o) -> str:
    what = (
        f"[green]scored {o.scored_customers:,}[/green]"
        if o.scored
        else f"[red]BLOCKED[/red] by {', '.join(o.blocked_by)}"
        if o.blocked_by
        else f"[red]FAILED[/red]: {o.error}"
    )
    warn = f"  WARN: {', '.join(o.warnings)}" if o.warnings else ""
    return f"{o.night}  {o.received if o.received is not None else '-':>7} rows  {what}{warn}  run {o.run_id[:8]}"


def cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from risk_assets.app.operations import Operator, parse_day

    until = parse_day(args.until, "--until") if args.until else None
    if args.last < 1:
        raise _bad("--last must be at least 1")
    settings, instance = _context(args)
    operator = args.exit_stack.enter_context(Operator(settings, instance))
    until = until or operator.latest_night_run()
    if until is None:
        print("no nightly run in this instance yet (risk-assets run --night D)")
        return 0
    rows = operator.status(args.last, until)
    table = Table(title=f"last {len(rows)} nights up to {until}", show_lines=False)
    for column in ("night", "status", "blocked by", "WARN", "runs", "earlier attempts blocked by"):
        table.add_column(column, overflow="fold", no_wrap=column in ("night", "status", "runs"))
    colour = {"SCORED": "green", "BLOCKED": "red", "FAILED": "red", "NOT RUN": "yellow", "RUNNING": "cyan"}
    for r in rows:  # one check per line: names stay whole
        table.add_row(
            r.night,
            f"[{colour[r.status]}]{r.status}[/]",
            "\n".join(r.blocked_by) or "-",
            "\n".join(r.warnings) or "-",
            str(r.runs),
            "\n".join(r.earlier_blocked_by) or "-",
        )
    _console().print(table)
    return 1 if any(r.status in ("BLOCKED", "FAILED") for r in rows) else 0


ALERT_KINDS = ("check_failed", "night_blocked", "run_failed", "did_not_evaluate", "landing_layout")


def cmd_alerts(args: argparse.Namespace) -> int:
    from rich.table import Table

    from risk_assets.app import alerts
    from risk_assets.app.operations import parse_day

    since = parse_day(args.since, "--since") if args.since else None
    if args.kind and args.kind not in ALERT_KINDS:
        raise _bad(f"--kind {args.kind!r} is not an alert kind; valid: {', '.join(ALERT_KINDS)}")
    settings, _ = _context(args)
    frame = alerts.read(settings.alerts.duckdb_path)  # json and csv stay machine-readable when empty
    if frame.empty and args.format == "table":
        print(f"no alerts in {settings.alerts.duckdb_path}")
        return 0
    if args.kind:
        frame = frame[frame["kind"] == args.kind]
    if since:
        frame = frame[frame["partition"].fillna("") >= since.isoformat()]
    frame = frame.sort_values(["created_at", "alert_id"])
    if args.format == "json":
        print(frame.assign(created_at=frame["created_at"].astype(str)).to_json(orient="records", indent=1))
        return 0
    if args.format == "csv":
        print(frame.to_csv(index=False), end="")
        return 0
    table = Table(title=f"{len(frame)} alert(s) in {settings.alerts.duckdb_path}")
    for column in ("created (UTC)", "kind", "night", "check", "severity", "reason"):
        table.add_column(column, overflow="fold")
    for r in frame.itertuples():
        check = f"{r.asset}.{r.check_name}" if r.check_name else (r.asset or "-")
        table.add_row(str(r.created_at)[:19], r.kind, r.partition or "-", check, r.severity or "-", r.reason)
    _console().print(table)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from risk_assets.app import report
    from risk_assets.app.operations import Operator, parse_day

    night = parse_day(args.night, "--night")
    settings, instance = _context(args)
    if night < settings.calendar.partitions_start:
        raise _bad(f"--night {night} is before the first partition {settings.calendar.partitions_start}")
    ran = Operator(settings, instance).nights_run()
    if night not in ran:
        raise _bad(
            f"--night {night} never ran in this instance; "
            + (f"nights run: {ran[0]} .. {ran[-1]} ({len(ran)}; risk-assets status)" if ran else "no night ran yet")
        )
    path = report.write_report(settings, instance, night.isoformat(), Path(args.out) if args.out else None)
    print(path)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Check history from the Dagster instance in $DAGSTER_HOME (or --home)."""
    from risk_assets.app.operations import parse_day

    start = parse_day(args.start, "--from").isoformat() if args.start else None
    end = parse_day(args.end, "--to").isoformat() if args.end else None
    if start and end and end < start:
        raise _bad(f"--to {end} is before --from {start}")
    settings, instance = _context(args)
    from risk_assets.app.audit import audit_rows, check_keys, filtered
    from risk_assets.defs.factory import build_definitions

    keys = check_keys(build_definitions(settings))
    if args.check:
        names = sorted({k.name for k in keys} | {f"{k.asset_key.to_user_string()}.{k.name}" for k in keys})
        if args.check not in names:
            raise _bad(f"--check {args.check!r} is not a check; valid: {', '.join(names)}")
    frame = filtered(audit_rows(instance, keys), start, end, args.check)
    if args.format == "json":
        print(json.dumps(frame.to_dict(orient="records"), indent=1, default=str))
    elif args.format == "csv":
        flat = frame.assign(figures=frame["figures"].map(json.dumps), thresholds=frame["thresholds"].map(json.dumps))
        print(flat.to_csv(index=False), end="")
    else:
        _audit_table(frame, wide=args.wide)
    return 0


def _audit_table(frame, wide: bool) -> None:
    from rich.table import Table

    if frame.empty:
        print("no check executions match")
        return
    table = Table(show_lines=not wide, expand=not wide)
    columns = ["night", "check", "result", "time (UTC)", "summary", "thresholds", "override", "model / mapping", "run"]
    for column in columns:
        table.add_column(
            column,
            overflow="fold",
            no_wrap=wide,
            min_width=10 if column == "check" else None,
            ratio=4 if column == "summary" else 1,
        )
    for r in frame.itertuples():
        result = f"{r.status} {r.severity}" + (" blocking" if r.blocking else "")
        table.add_row(
            r.partition,
            f"{r.asset}.{r.check}",
            result,
            r.time.replace("T", " ")[:19],
            r.summary,
            ", ".join(f"{k}={v}" for k, v in r.thresholds.items()) or "-",
            r.override,
            f"{r.model_version or '-'} / {r.mapping_version or '-'}",
            r.run_id[:8],
        )
    console = _console()
    if wide:
        console.width = 10_000
    elif _terminal_width() < AUDIT_TABLE_WIDTH:
        _audit_cards(frame)  # a table this narrow would split check names and values mid-token
        return
    console.print(table)


AUDIT_TABLE_WIDTH = 140
"""Columns the audit table needs; a narrower terminal gets one block per result instead."""


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((AUDIT_TABLE_WIDTH, 40)).columns


def _audit_cards(frame) -> None:
    """One block per check result for a narrow terminal: a heading line, then the summary,
    thresholds and versions, wrapped at spaces to the terminal's width."""
    import textwrap

    width = max(_terminal_width(), 40)
    for r in frame.itertuples():
        result = f"{r.status} {r.severity}" + (" blocking" if r.blocking else "")
        print(f"{r.partition}  {r.asset}.{r.check}  {result}")
        versions = f"model / mapping {r.model_version or '-'} / {r.mapping_version or '-'}"
        thresholds = ", ".join(f"{k}={v}" for k, v in r.thresholds.items()) or "-"
        lines = (
            ("at", f"{r.time.replace('T', ' ')[:19]} UTC, run {r.run_id[:8]}, {versions}"),
            ("summary", r.summary),
            ("thresholds", thresholds),
            ("override", r.override),
        )
        for label, text in lines:
            print(
                textwrap.fill(
                    f"{label}: {text}",
                    width,
                    initial_indent="  ",
                    subsequent_indent="    ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
        print()


def cmd_lake_sync(args: argparse.Namespace) -> int:
    """Commit every loaded raw day the Spark engine's lake lacks (switching engine)."""
    from risk_assets.defs.resources import duckdb_resource, open_warehouse
    from risk_assets.engines.spark.lake import Lake

    settings, _ = _context(args)
    lake = Lake(settings.engine.lake_path)
    with open_warehouse(duckdb_resource(settings)) as conn:
        committed = lake.sync(conn)
        lake.commit_reference(conn)
    days = sorted({d for _, d in committed})
    print(
        f"lake {lake.root}: committed {len(committed)} partition(s) of {len(days)} day(s)"
        + (f" ({days[0]} .. {days[-1]})" if days else " (it already held every partition the warehouse holds)")
        + f'; the pipeline reads the lake with [engine] kind = "spark" (now: {settings.engine.kind!r})'
    )
    return 0


def cmd_adopt(args: argparse.Namespace) -> int:
    """Hand the warehouse of this home's settings over to this home's instance."""
    from risk_assets.defs.resources import instance_identity
    from risk_assets.store import warehouse

    settings, instance = _context(args)
    path = Path(settings.warehouse.duckdb_path)
    if not path.is_file():
        raise _bad(f"no warehouse at {path} (the settings' warehouse.duckdb_path): nothing to adopt")
    instance_id, where = instance_identity(instance)
    with warehouse.connect(path, lock_timeout_seconds=settings.warehouse.lock_timeout_seconds) as conn:
        previous = warehouse.owner(conn)
        if previous is not None and previous["instance_id"] == instance_id:
            print(f"{path} already belongs to the instance at {where} (id {instance_id}): nothing changed")
            return 0
        warehouse.hand_over(conn, instance_id, where)
    print(
        f"{path} now belongs to the instance at {where} (id {instance_id})"
        + (
            f"; it belonged to {previous['instance']} (id {previous['instance_id']}), which can no longer write it"
            if previous
            else ""
        )
    )
    return 0


def cmd_export_landing(args: argparse.Namespace) -> int:
    from risk_assets.app.operations import parse_day
    from risk_assets.scenario.source import export_landing
    from risk_assets.settings import load_settings

    start, end = parse_day(args.start, "--from"), parse_day(args.end, "--to")
    if end < start:
        raise _bad(f"--to {end} is before --from {start}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise _bad(f"--out {out} is a file: give a folder (it is created if missing)")
    settings = load_settings()
    t0 = time.perf_counter()
    export_landing(settings, out, _days(start, end))
    print(f"wrote {out} ({(end - start).days + 1} days) in {time.perf_counter() - t0:.1f}s")
    return 0


def _bad(message: str) -> Exception:
    from risk_assets.app.operations import BadArgument

    return BadArgument(message)


def _home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        default=os.environ.get("DAGSTER_HOME", DEFAULT_HOME),
        help="Dagster instance folder (default: $DAGSTER_HOME or ./.dagster_home)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="risk-assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the pipeline end to end on the embedded world")
    _home(demo)
    demo.add_argument("--nights", type=int, default=21, help="nightly partitions to run (default: three weeks)")
    demo.add_argument("--customers", type=int, help="size of the embedded world (default: its settings, 20,000)")
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser("ui", help="open the Dagster UI on 127.0.0.1 for this instance")
    _home(ui)
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    load = sub.add_parser("load", help="load reference data and the raw days of a range")
    _home(load)
    load.add_argument("--from", dest="start", required=True, help="first day (YYYY-MM-DD)")
    load.add_argument("--to", dest="end", required=True, help="last day (YYYY-MM-DD)")
    load.add_argument("--no-reference", action="store_true", help="do not reload customers and irregularities")
    load.set_defaults(func=cmd_load)

    train = sub.add_parser("train", help="category mapping, training features, model and deployment gate")
    _home(train)
    train.set_defaults(func=cmd_train)

    run = sub.add_parser("run", help="run one night, or a range of nights in order (re-running a night replaces it)")
    _home(run)
    run.add_argument("--night", help="one night (YYYY-MM-DD)")
    run.add_argument("--from", dest="start", help="first night of a range")
    run.add_argument("--to", dest="end", help="last night of a range")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="one screen: the last nights, scored or blocked by which checks")
    _home(status)
    status.add_argument("--last", type=int, default=14, help="how many nights (default 14)")
    status.add_argument("--until", help="last night shown (default: the newest night run)")
    status.set_defaults(func=cmd_status)

    alerts = sub.add_parser("alerts", help="the alerts table")
    _home(alerts)
    alerts.add_argument("--kind", help=f"only this kind ({', '.join(ALERT_KINDS)})")
    alerts.add_argument("--since", help="only nights from this day (YYYY-MM-DD)")
    alerts.add_argument("--format", choices=["table", "csv", "json"], default="table")
    alerts.set_defaults(func=cmd_alerts)

    report = sub.add_parser("report", help="write a night's HTML report (self-contained, opens offline)")
    _home(report)
    report.add_argument("--night", required=True, help="the night (YYYY-MM-DD)")
    report.add_argument("--out", help="file to write (default: report.dir/night-D.html)")
    report.set_defaults(func=cmd_report)

    audit = sub.add_parser("audit", help="check history from the Dagster instance, for audits")
    _home(audit)
    audit.add_argument("--from", dest="start", help="first partition (YYYY-MM-DD)")
    audit.add_argument("--to", dest="end", help="last partition (YYYY-MM-DD)")
    audit.add_argument("--check", help="check name, or asset.check")
    audit.add_argument("--format", choices=["table", "csv", "json"], default="table")
    audit.add_argument("--wide", action="store_true", help="one line per result, nothing wrapped")
    audit.set_defaults(func=cmd_audit)

    lake = sub.add_parser(
        "lake-sync",
        help="commit the loaded raw days to the Spark engine's lake "
        "([engine] lake_path) — once, when switching to the Spark engine",
    )
    _home(lake)
    lake.set_defaults(func=cmd_lake_sync)

    adopt = sub.add_parser(
        "adopt",
        help="hand the settings' warehouse over to this instance (after moving or restoring a home); "
        "the instance it belonged to can no longer write it",
    )
    _home(adopt)
    adopt.set_defaults(func=cmd_adopt)

    export = sub.add_parser("export-landing", help="write the embedded world as landing files")
    export.add_argument("--out", required=True, help="landing folder to write")
    export.add_argument("--from", dest="start", required=True, help="first day (YYYY-MM-DD)")
    export.add_argument("--to", dest="end", required=True, help="last day (YYYY-MM-DD)")
    export.set_defaults(func=cmd_export_landing)

    args = parser.parse_args(argv)
    if getattr(args, "home", None):  # a quoted "~/x" means the user's folder, as Dagster reads it
        args.home = str(Path(args.home).expanduser())
    quiet_dagster_warnings()
    from risk_assets.app.operations import BadArgument
    from risk_assets.settings import SettingsError

    try:
        with contextlib.ExitStack() as args.exit_stack:
            return args.func(args)
    except (SettingsError, BadArgument) as exc:
        print(f"risk-assets {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # never a traceback for an operator; RISK_ASSETS_DEBUG=1 shows it
        if os.environ.get("RISK_ASSETS_DEBUG") == "1":
            raise
        print(
            f"risk-assets {args.command}: failed: {type(exc).__name__}: {exc} "
            "(RISK_ASSETS_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
