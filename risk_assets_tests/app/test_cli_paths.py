"""Every operator command through its entry point, as a user types it: a subprocess
``risk-assets …`` on a landing folder the CLI exported, with its exit code and output —
the paths a new user walks (load, train, run, status, alerts, report, audit, lake-sync,
export-landing, ui), the bad arguments they type (exit 2 naming the valid choice), and the
failures they meet (the reason printed, never only "see the UI", never a traceback)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from risk_assets.scenario.worlds import landing_settings
from risk_assets.settings import to_toml
from risk_assets_tests.app.test_ui import _free_port, wait_until_up

CLI = str(Path(sys.executable).with_name("risk-assets"))
HISTORY = (dt.date(2025, 1, 1), dt.date(2025, 8, 31))
NIGHTS = (dt.date(2025, 9, 1), dt.date(2025, 9, 2))
TRAINING = {  # validation up to the day before the first night, as a team retrains
    "start": "2025-04-01",
    "end": "2025-07-01",
    "asof_step_days": 8,
    "validation_start": "2025-08-10",
    "validation_end": "2025-08-31",
    "validation_step_days": 4,
    "num_boost_round": 40,
}


def cli(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    return done


def settings_file(folder: Path, landing: Path | None = None, **sections) -> Path:
    """A user's settings file: the landing source (``folder/landing`` unless ``landing``), the
    warehouse, models, alerts and reports in ``folder``, and the sections given."""
    settings = landing_settings(
        folder,
        "embedded",
        4000,
        sections.pop("training", {}),
        landing,
        report={"dir": str(folder / "reports")},
        **sections,
    )
    path = folder / "risk_assets.toml"
    path.write_text(to_toml(settings))
    return path


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's folder holding a landing folder written by ``export-landing`` (history and
    two nights after it) and the environment the commands run with."""
    folder = tmp_path_factory.mktemp("user")
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "RISK_ASSETS_CONFIG")}
    env["RISK_ASSETS_CONFIG"] = str(settings_file(folder))
    landing = folder / "landing"
    done = cli("export-landing", "--out", str(landing), "--from", str(HISTORY[0]), "--to", str(NIGHTS[-1]), env=env)
    assert done.returncode == 0, done.stderr
    assert (landing / "transactions" / f"date={NIGHTS[-1]}").is_dir() and (landing / "customers.parquet").is_file()
    return folder, env


def test_export_landing_refuses_bad_arguments_naming_the_valid_choice(user, tmp_path):
    _, env = user
    reversed_range = cli(
        "export-landing", "--out", str(tmp_path / "x"), "--from", "2025-02-01", "--to", "2025-01-01", env=env
    )
    assert reversed_range.returncode == 2 and "--to 2025-01-01 is before --from 2025-02-01" in reversed_range.stderr
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    to_file = cli("export-landing", "--out", str(a_file), "--from", "2025-01-01", "--to", "2025-01-01", env=env)
    assert to_file.returncode == 2 and "is a file: give a folder" in to_file.stderr
    old_spelling = cli(
        "export-landing", "--out", str(tmp_path / "x"), "--start", "2025-01-01", "--end", "2025-01-02", env=env
    )
    assert old_spelling.returncode == 2 and "--from" in old_spelling.stderr  # one spelling: --from/--to everywhere
    assert not (tmp_path / "x").exists()


def test_a_users_data_through_every_command(user, tmp_path):
    folder, env = user
    home = ["--home", str(tmp_path / "home")]

    # reading commands on a home that does not exist: an error, nothing created
    for command in (["status"], ["alerts"], ["audit"], ["report", "--night", str(NIGHTS[0])]):
        done = cli(*command, *home, env=env)
        assert done.returncode == 2 and "no Dagster instance at" in done.stderr, (command, done.stderr)
    assert not (tmp_path / "home").exists()

    # a landing folder that does not exist is a setting to fix
    missing = {
        **env,
        "RISK_ASSETS_CONFIG": str(settings_file(tmp_path, tmp_path / "nope")),
    }
    done = cli("load", "--from", str(HISTORY[0]), "--to", str(HISTORY[1]), *home, env=missing)
    assert done.returncode == 2 and "source.landing_dir" in done.stderr and "is not a folder" in done.stderr
    assert not (tmp_path / "home").exists()  # refused before anything was created

    # load: the history's summary (rows received = accepted + rejected, quarantined days)
    done = cli("load", "--from", str(HISTORY[0]), "--to", str(HISTORY[1]), *home, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "new Dagster instance in" in done.stderr
    assert "reference_job: ok" in done.stdout and "history_job: ok" in done.stdout
    instance_yaml = yaml.safe_load((tmp_path / "home" / "dagster.yaml").read_text())  # one writer at a time
    assert {"key": "risk_assets/warehouse", "limit": 1} in instance_yaml["concurrency"]["runs"][
        "tag_concurrency_limits"
    ]
    days = (HISTORY[1] - HISTORY[0]).days + 1
    line = next(x for x in done.stdout.splitlines() if x.startswith("loaded "))
    assert f"{days} of {days} day(s)" in line
    received, accepted, rejected = (
        int(x.replace(",", "")) for x in _numbers_after(line, "received", "accepted", "rejected")
    )
    assert received == accepted + rejected and accepted > 0

    # train with the default periods, which lie outside this history: refused, and why
    done = cli("train", *home, env=env)
    assert done.returncode == 1
    assert "training refused: the training period" in done.stdout and "Set [training]" in done.stdout, done.stdout
    assert "loaded: 2025-01-01 .. 2025-08-31" in done.stdout
    assert "see the run in the UI" not in done.stdout

    # train with periods inside the history: the validation figures and the gate's decision
    env = {**env, "RISK_ASSETS_CONFIG": str(settings_file(folder, training=TRAINING))}
    done = cli("train", *home, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation ROC AUC" in done.stdout and "deployment gate:" in done.stdout

    # run two nights; status, alerts, report, audit read them back
    done = cli("run", "--from", str(NIGHTS[0]), "--to", str(NIGHTS[1]), *home, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 night(s): 2 scored, 0 blocked or failed" in done.stdout
    done = cli("status", "--last", "2", *home, env=env)
    assert done.returncode == 0 and done.stdout.count("SCORED") == 2, done.stdout
    assert cli("alerts", "--format", "json", *home, env=env).returncode == 0
    done = cli("report", "--night", str(NIGHTS[0]), *home, env=env)
    assert done.returncode == 0 and Path(done.stdout.strip()).is_file()
    never = cli("report", "--night", "2025-08-01", *home, env=env)
    assert never.returncode == 2 and "never ran" in never.stderr and f"{NIGHTS[0]} .. {NIGHTS[1]}" in never.stderr
    backwards = cli("audit", "--from", str(NIGHTS[1]), "--to", str(NIGHTS[0]), *home, env=env)
    assert backwards.returncode == 2 and "is before --from" in backwards.stderr
    done = cli("audit", "--from", str(NIGHTS[0]), "--to", str(NIGHTS[1]), "--format", "json", *home, env=env)
    assert done.returncode == 0
    rows = json.loads(done.stdout)
    nightly = [r for r in rows if r["partition"] != "-"]  # "-": the model's checks, not partitioned
    assert {r["partition"] for r in nightly} == {str(n) for n in NIGHTS}
    assert all(r["status"] != "FAILED" for r in nightly)

    # lake-sync: the loaded days committed to the Spark engine's lake (once, when switching)
    done = cli("lake-sync", *home, env=env)
    assert done.returncode == 0 and "committed" in done.stdout, done.stdout + done.stderr


def _numbers_after(line: str, *words: str) -> list[str]:
    tokens = line.replace(";", " ").split()
    return [tokens[tokens.index(word) + 1] for word in words]


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), at this moment."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ui_stops_with_every_process_it_started(user, tmp_path):
    _, env = user
    port = _free_port()
    proc = subprocess.Popen(
        [CLI, "ui", "--port", str(port), "--home", str(tmp_path / "home")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(port, proc)
        started = _descendants(proc.pid)
        assert len(started) >= 2  # dagster dev and the webserver (and the daemon, code servers)
        proc.send_signal(signal.SIGTERM)  # how a supervisor, or `kill`, stops it
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in started if _alive(p)], "processes left running after risk-assets ui stopped"
        output = proc.stdout.read().decode()
        assert "stopped dagster dev and its processes" in output
    finally:
        if proc.poll() is None:
            proc.kill()
