"""Production rehearsed: the topology a team deploys, started the way ``deploy/`` says.

``deploy/serve start`` runs dagster-daemon and dagster-webserver (127.0.0.1) on the
PostgreSQL instance of ``deploy/postgres/dagster.yaml`` (its run queue, the default run
launcher: each run a process of its own). The warehouse holds the loaded history and a
deployed model (the embedded world through the landing source); then days land, as a
source delivers them:

1. a clean day: the landing sensor requests it, the queue launches it, it scores and its
   report is written (night_report_sensor);
2. a day cut short: requested, blocked (row_volume), with its ``night_blocked`` and
   ``check_failed`` alerts (blocked_night_sensor, check_alerts_sensor); ``status`` and
   ``audit`` read both nights back from PostgreSQL; the source re-delivers it whole, the
   sensor sees the change and the night scores;
3. a clean day whose run is going when the daemon's whole process group is killed (the
   daemon, the code server that launched the run, the run's process: a crash, the OOM
   killer): nobody is left to notice, the run stays STARTED (and would hold the queue's
   one-writer slot for ever); the daemon restarted, the landing sensor finds the dead
   process and marks the run failed, the night holds no scores, and the next launch of the
   night scores it.

Everything is waited for with a bound; the processes are stopped by their ids
(``deploy/serve stop``). Needs a PostgreSQL server (``.ci/run`` starts one).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from risk_assets.defs.jobs import NIGHTLY_JOB
from risk_assets.defs.workers import HOST_TAG, alive, run_pid
from risk_assets.settings import to_toml
from risk_assets_tests.app.test_ui import _free_port, _graphql
from risk_assets_tests.conftest import FIRST_NIGHT

SERVE = Path(__file__).resolve().parents[2] / "deploy" / "serve"
CLI = str(Path(sys.executable).with_name("risk-assets"))
CLEAN, SHORT, KILLED = (FIRST_NIGHT + dt.timedelta(days=i) for i in range(3))
POLL = 10
"""The landing sensor's interval here (automation.landing_poll_seconds; 60 by default)."""

SENSOR = """
{ sensorOrError(sensorSelector: {repositoryLocationName: "risk_assets", repositoryName: "__repository__",
                                 sensorName: "landing_sensor"}) {
    __typename ... on Sensor { sensorState { status } } } }"""


def _wait(what: str, seconds: float, probe, logs: Path, instance: dg.DagsterInstance | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(2)
    runs = [
        f"{r.run_id[:8]} {r.job_name} {r.tags.get('dagster/partition')} {r.status.value}"
        for r in (instance.get_runs(limit=10) if instance is not None else [])
    ]
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    pytest.fail(f"not within {seconds:g} s: {what}\nruns: {runs}\n{tails}")


def _night_run(instance: dg.DagsterInstance, night: dt.date, statuses) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(job_name=NIGHTLY_JOB, tags={"dagster/partition": night.isoformat()}))
    return next((r for r in runs if r.status in statuses), None)


def _deliver(world: Path, landing: Path, day: dt.date, keep: float = 1.0) -> None:
    """Land one day of the world's files as a source does: written aside (``keep`` of its
    rows), then moved into place in one rename."""
    staging = landing.parent / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    name = f"date={day:%Y-%m-%d}"
    shutil.copytree(world / "landing" / "transactions" / name, staging)
    folder = landing / "transactions" / name
    folder.parent.mkdir(exist_ok=True)
    for file in staging.glob("*.parquet"):
        frame = pd.read_parquet(file)
        frame.iloc[: int(len(frame) * keep)].to_parquet(file, index=False)
    if folder.exists():  # a re-delivery replaces the folder: the old one moved away first
        os.rename(folder, landing.parent / f"replaced-{time.monotonic_ns()}")
    os.rename(staging, folder)


def _scores(path: Path, night: dt.date) -> int:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute("SELECT count(*) FROM risk_scores WHERE partition = ?", [night]).fetchone()[0]


@pytest.mark.parametrize("landing_world", ["embedded"], indirect=True)
def test_daemon_and_webserver_on_postgres_run_the_nights_the_landing_sensor_requests(
    landing_world, landing_copy, postgres_home, tmp_path
):
    world = landing_world[1]
    settings = landing_copy(
        report={"dir": str(tmp_path / "reports")},
        alerts={"duckdb_path": str(tmp_path / "alerts.duckdb"), "ui_base_url": "http://127.0.0.1:3000"},
        automation={"clock_running": False, "landing_poll_seconds": POLL},
    )
    landing = Path(settings.source.landing_dir)
    assert not (landing / "transactions").exists()  # the history is loaded; nothing has landed since
    config = tmp_path / "risk_assets.toml"
    config.write_text(to_toml(settings))
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(postgres_home),
        "RISK_ASSETS_CONFIG": str(config),
        "RISK_ASSETS_PORT": str(port),
        "RISK_ASSETS_BIN": str(Path(sys.executable).parent),
    }
    logs = postgres_home / "processes"
    started = subprocess.run([str(SERVE), "start"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"

            def sensor_running():
                try:
                    found = _graphql(port, SENSOR)["sensorOrError"]
                except OSError:
                    return None
                return found.get("sensorState", {}).get("status") == "RUNNING"

            _wait("the webserver serving the landing sensor, RUNNING", 180, sensor_running, logs)

            # 1. a clean day lands: requested by the sensor, launched from the queue, scored, reported
            _deliver(world, landing, CLEAN)
            clean = _wait(
                f"{CLEAN} scored",
                420,
                lambda: _night_run(instance, CLEAN, [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]),
                logs,
            )
            assert clean.status == dg.DagsterRunStatus.SUCCESS
            assert clean.tags.get("dagster/sensor_name") == "landing_sensor"
            assert _wait("its report", 120, lambda: (tmp_path / "reports" / f"night-{CLEAN}.html").is_file(), logs)

            # 2. a day cut short: blocked, alerted
            _deliver(world, landing, SHORT, keep=0.3)
            short = _wait(
                f"{SHORT} finished",
                420,
                lambda: _night_run(instance, SHORT, [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]),
                logs,
            )
            assert short.status == dg.DagsterRunStatus.FAILURE
            assert short.tags.get("dagster/sensor_name") == "landing_sensor"
            assert short.tags.get(HOST_TAG)

            def alerts_of_short():
                done = subprocess.run(
                    [CLI, "alerts", "--format", "json", "--since", str(SHORT)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                kinds = {a["kind"] for a in json.loads(done.stdout or "[]")} if done.returncode == 0 else set()
                return {"night_blocked", "check_failed"} <= kinds and json.loads(done.stdout)

            found = _wait("night_blocked and check_failed alerts", 180, alerts_of_short, logs)
            blocked = next(a for a in found if a["kind"] == "night_blocked")
            assert blocked["partition"] == SHORT.isoformat() and "row_volume" in blocked["reason"], blocked
            assert _scores(settings.warehouse.duckdb_path, SHORT) == 0

            status = subprocess.run([CLI, "status"], env=env, capture_output=True, text=True, timeout=120)
            assert status.returncode == 1, status.stderr  # 1: a night shown was blocked
            assert str(CLEAN) in status.stdout and str(SHORT) in status.stdout and "row_volume" in status.stdout
            audit = subprocess.run(
                [CLI, "audit", "--format", "json", "--from", str(CLEAN), "--to", str(SHORT)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert audit.returncode == 0, audit.stderr
            verdicts = json.loads(audit.stdout)
            assert {v["partition"] for v in verdicts} == {str(CLEAN), str(SHORT)}
            assert any(
                v["partition"] == str(SHORT) and v["check"] == "row_volume" and v["status"] == "FAILED"
                for v in verdicts
            )

            # the source re-delivers the day whole: the sensor sees the folder change and the night scores
            _deliver(world, landing, SHORT)
            _wait(
                f"{SHORT} re-delivered and scored",
                300,
                lambda: _night_run(instance, SHORT, [dg.DagsterRunStatus.SUCCESS]),
                logs,
                instance,
            )

            # 3. a clean day whose run process is killed mid-night
            _deliver(world, landing, KILLED)

            def killed_running():
                run = _night_run(instance, KILLED, [dg.DagsterRunStatus.STARTED])
                pid = run and run_pid(instance, run.run_id)
                if not pid:
                    return None
                steps = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                return (run, pid) if steps and HOST_TAG in run.tags else None

            run, pid = _wait(f"the run of {KILLED} started, a step going", 300, killed_running, logs, instance)
            # the machine loses the daemon mid-night: its process group — the daemon, the code
            # server that launched the run, the run's own process — killed at once (SIGKILL: no
            # handler runs). Nobody is left to notice the run: it stays STARTED.
            daemon = int((logs / "daemon.pid").read_text())
            os.killpg(daemon, signal.SIGKILL)
            _wait("the daemon's group gone", 30, lambda: not alive(pid) and not alive(daemon), logs)
            time.sleep(3)
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
            assert _scores(settings.warehouse.duckdb_path, KILLED) == 0  # the night holds no scores
            # the daemon restarted (the webserver kept serving): the landing sensor finds the dead run
            restarted = subprocess.run([str(SERVE), "start"], env=env, capture_output=True, text=True, timeout=60)
            assert restarted.returncode == 0 and "webserver: already running" in restarted.stdout, restarted.stdout
            failed = _wait(
                "the dead run marked failed by the landing sensor",
                240,
                lambda: _night_run(instance, KILLED, [dg.DagsterRunStatus.FAILURE]),
                logs,
                instance,
            )
            assert failed.run_id == run.run_id
            [event] = [r.dagster_event for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
            assert f"pid {pid}" in event.message and "is gone" in event.message, event.message
            assert _scores(settings.warehouse.duckdb_path, KILLED) == 0

            rerun = subprocess.run(
                [CLI, "run", "--night", str(KILLED)], env=env, capture_output=True, text=True, timeout=600
            )
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
            assert _scores(settings.warehouse.duckdb_path, KILLED) > 0
            with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as conn:
                received, accepted, rejected = conn.execute(
                    "SELECT sum(received), sum(accepted), sum(rejected) FROM raw_loads WHERE partition = ?", [KILLED]
                ).fetchone()
                assert received == accepted + rejected and accepted > 0
    finally:
        stopped = subprocess.run([str(SERVE), "stop"], env=env, capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        for name in ("daemon", "webserver"):
            assert not (logs / f"{name}.pid").exists()
