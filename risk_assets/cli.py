"""``risk-assets``: the command line (demo, landing export)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
import warnings
from pathlib import Path

DEFAULT_HOME = Path(".dagster_home")


def _use_home(home: Path) -> None:
    """Point Dagster at a persistent, project-local instance (SQLite) before it loads."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # A local SQLite instance; no usage telemetry leaves this machine.
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)


def quiet_dagster_warnings() -> None:
    """Dagster 1.13 warns on every load about the preview/beta/superseded APIs this project
    uses on purpose (partitioned checks, look-back partition mapping, freshness-check
    builders — see docs/dagster-notes.md); they would bury the CLI's own output."""
    import dagster as dg

    for category in (dg.PreviewWarning, dg.BetaWarning, dg.SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def cmd_demo(args: argparse.Namespace) -> int:
    _use_home(Path(args.home))
    import dagster as dg

    quiet_dagster_warnings()
    # Alerts are stored in the alerts table and counted per night in the demo's table;
    # under `dagster dev` they are also logged.
    logging.getLogger("risk_assets.alerts").setLevel(logging.ERROR)

    from risk_assets.demo import run_demo
    from risk_assets.settings import load_settings

    settings = load_settings()
    with dg.DagsterInstance.get() as instance:
        return run_demo(settings, instance, nights=args.nights, out=sys.stdout)


def cmd_audit(args: argparse.Namespace) -> int:
    """Check history from the Dagster instance in $DAGSTER_HOME (or --home)."""
    home = Path(args.home)
    if not home.is_dir():
        print(f"risk-assets audit: no Dagster instance at {home} (run the demo or set DAGSTER_HOME)",
              file=sys.stderr)
        return 2
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    import dagster as dg

    quiet_dagster_warnings()
    from risk_assets.audit import audit_rows, check_keys, filtered
    from risk_assets.defs.factory import build_definitions
    from risk_assets.settings import load_settings

    with dg.DagsterInstance.get() as instance:
        frame = audit_rows(instance, check_keys(build_definitions(load_settings())))
    frame = filtered(frame, args.start, args.end, args.check)
    if args.format == "json":
        print(frame.to_json(orient="records", indent=1))
    elif args.format == "csv":
        print(frame.to_csv(index=False), end="")
    else:
        shown = frame[["partition", "asset", "check", "status", "severity", "blocking", "summary", "run_id"]].copy()
        shown["summary"] = shown["summary"].str.slice(0, 70)
        shown["run_id"] = shown["run_id"].str.slice(0, 8)
        print(shown.to_string(index=False) if len(shown) else "no check executions match")
    return 0


def cmd_export_landing(args: argparse.Namespace) -> int:
    from risk_assets.settings import load_settings
    from risk_assets.scenario.source import export_landing

    settings = load_settings()
    start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    t0 = time.perf_counter()
    export_landing(settings, Path(args.to), _days(start, end))
    print(f"wrote {args.to} ({(end - start).days + 1} days) in {time.perf_counter() - t0:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="risk-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the pipeline end to end on the embedded world")
    demo.add_argument("--home", default=os.environ.get("DAGSTER_HOME", DEFAULT_HOME),
                      help="Dagster instance folder (default: $DAGSTER_HOME or ./.dagster_home)")
    demo.add_argument("--nights", type=int, default=21, help="nightly partitions to run (default: three weeks)")
    demo.set_defaults(func=cmd_demo)

    audit = sub.add_parser("audit", help="check history from the Dagster instance, for audits")
    audit.add_argument("--home", default=os.environ.get("DAGSTER_HOME", DEFAULT_HOME),
                       help="Dagster instance folder (default: $DAGSTER_HOME or ./.dagster_home)")
    audit.add_argument("--from", dest="start", help="first partition (YYYY-MM-DD)")
    audit.add_argument("--to", dest="end", help="last partition (YYYY-MM-DD)")
    audit.add_argument("--check", help="check name, or asset.check")
    audit.add_argument("--format", choices=["table", "csv", "json"], default="table")
    audit.set_defaults(func=cmd_audit)

    export = sub.add_parser("export-landing", help="write the embedded world as landing files")
    export.add_argument("--to", required=True, help="landing folder to write")
    export.add_argument("--start", required=True, help="first day (YYYY-MM-DD)")
    export.add_argument("--end", required=True, help="last day (YYYY-MM-DD)")
    export.set_defaults(func=cmd_export_landing)

    args = parser.parse_args(argv)
    from risk_assets.settings import SettingsError

    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"risk-assets: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
