"""Every operator command through its entry point, as a user types it: a subprocess
``risk-assets …`` on a landing folder the CLI exported, with its exit code and output —
the README's own-data steps verbatim, the other commands a user walks (status, alerts,
report, audit, lake-sync, export-landing, ui), the bad arguments they type (exit 2 naming
the valid choice), and the failures they meet (the reason printed, never only "see the UI",
never a traceback)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from risk_assets.settings import Settings, to_toml
from risk_assets_tests.app.test_ui import _free_port, _graphql, wait_until_up

CLI = str(Path(sys.executable).with_name("risk-assets"))
README = Path(__file__).resolve().parents[2] / "README.md"
HISTORY = (dt.date(2025, 1, 1), dt.date(2025, 8, 31))
NIGHTS = (dt.date(2025, 9, 1), dt.date(2025, 9, 2))
"""What the README's own-data steps load and run."""
LATER = dt.date(2025, 9, 3)
"""A night after them, blocked and re-run from the UI."""


def cli(*args: str, env: dict, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    return done


def readme_block(marker: str) -> str:
    """The fenced block after ``<!-- marker`` in the README, as written there."""
    text = README.read_text()
    after = text[text.index(f"<!-- {marker}") :]
    body = after[after.index("```") :]
    body = body[body.index("\n") + 1 :]
    return body[: body.index("```")]


def run_readme_commands(folder: Path, env: dict) -> subprocess.CompletedProcess:
    """The README's own-data commands, verbatim, as a bash script in ``folder``."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("own-data-commands")],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def user_env() -> dict[str, str]:
    """A user's environment: no instance or settings chosen yet, ``risk-assets`` on the PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "RISK_ASSETS_CONFIG")}
    env["PATH"] = f"{Path(CLI).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's folder holding a landing folder written by ``export-landing`` (history and
    two nights after it, 4,000 customers) and the environment the commands run with."""
    folder = tmp_path_factory.mktemp("user")
    env = user_env()
    export = folder / "export.toml"
    export.write_text(to_toml(Settings().with_overrides(scenario={"world": {"n_customers": 4000}})))
    landing = folder / "landing"
    days = ["--from", str(HISTORY[0]), "--to", str(LATER)]
    done = cli("export-landing", "--out", str(landing), *days, env={**env, "RISK_ASSETS_CONFIG": str(export)})
    assert done.returncode == 0, done.stderr
    assert (landing / "transactions" / f"date={NIGHTS[-1]}").is_dir() and (landing / "customers.parquet").is_file()
    return folder, env


def test_export_landing_refuses_bad_arguments_naming_the_valid_choice(user, tmp_path):
    _, env = user
    out = str(tmp_path / "x")
    reversed_range = cli("export-landing", "--out", out, "--from", "2025-02-01", "--to", "2025-01-01", env=env)
    assert reversed_range.returncode == 2 and "--to 2025-01-01 is before --from 2025-02-01" in reversed_range.stderr
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    to_file = cli("export-landing", "--out", str(a_file), "--from", "2025-01-01", "--to", "2025-01-01", env=env)
    assert to_file.returncode == 2 and "is a file: give a folder" in to_file.stderr
    old_spelling = cli("export-landing", "--out", out, "--start", "2025-01-01", "--end", "2025-01-02", env=env)
    assert old_spelling.returncode == 2 and "--from" in old_spelling.stderr  # one spelling: --from/--to everywhere
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def walked(user):
    """The README's "Your own data, step by step", verbatim: its settings file written and
    its commands run as a script in the user's folder (on the landing folder export-landing
    wrote). Returns (folder, env, the script's completed process)."""
    folder, env = user
    (folder / "risk_assets.toml").write_text(readme_block("own-data-settings"))
    steps = run_readme_commands(folder, env)
    return folder, env, steps


def test_the_readmes_own_data_steps_then_every_command(walked):
    """The README's steps pass and say what they did; then every other command on the
    instance they made, the bad arguments a user types and the failures they meet."""
    folder, env, steps = walked
    settings = readme_block("own-data-settings")
    config = {**env, "RISK_ASSETS_CONFIG": str(folder / "risk_assets.toml")}
    home = ["--home", str(folder / ".dagster_home")]
    elsewhere = ["--home", str(folder / "no_such_home")]

    # reading commands on a home that does not exist: an error, nothing created
    for command in (["status"], ["alerts"], ["audit"], ["report", "--night", str(NIGHTS[0])]):
        done = cli(*command, *elsewhere, env=config, cwd=folder)
        assert done.returncode == 2 and "no Dagster instance at" in done.stderr, (command, done.stderr)
    # a landing folder that does not exist is a setting to fix, refused before anything is created
    (folder / "nope.toml").write_text(settings.replace('landing_dir = "landing"', 'landing_dir = "nope"', 1))
    nope = {**env, "RISK_ASSETS_CONFIG": str(folder / "nope.toml")}
    done = cli("load", "--from", str(HISTORY[0]), "--to", str(HISTORY[1]), *elsewhere, env=nope, cwd=folder)
    assert done.returncode == 2 and f"source.landing_dir {folder / 'nope'} is not a folder" in done.stderr, done.stderr
    assert not (folder / "no_such_home").exists()

    out = steps.stdout
    assert steps.returncode == 0 and "Traceback" not in out + steps.stderr, out + steps.stderr[-3000:]
    assert "new Dagster instance in" in steps.stderr
    assert "reference_job: ok" in out and "history_job: ok" in out
    days = (HISTORY[1] - HISTORY[0]).days + 1
    line = next(x for x in out.splitlines() if x.startswith("loaded "))
    assert f"loaded {HISTORY[0]} .. {HISTORY[1]}: {days} of {days} day(s)" in line
    received, accepted, rejected = (
        int(x.replace(",", "")) for x in _numbers_after(line, "received", "accepted", "rejected")
    )
    assert received == accepted + rejected and accepted > 0
    assert "validation ROC AUC" in out and "deployment gate:" in out and "calendar: no holidays_country set" in out
    assert "2 night(s): 2 scored, 0 blocked or failed" in out
    assert out.count("SCORED") == 2  # status --last 2
    instance_yaml = yaml.safe_load((folder / ".dagster_home" / "dagster.yaml").read_text())  # one writer at a time
    assert {"key": "risk_assets/warehouse", "limit": 1} in instance_yaml["concurrency"]["runs"][
        "tag_concurrency_limits"
    ]

    # the other commands on the same instance
    assert cli("alerts", "--format", "json", *home, env=config, cwd=folder).returncode == 0
    done = cli("report", "--night", str(NIGHTS[0]), *home, env=config, cwd=folder)
    assert done.returncode == 0 and Path(done.stdout.strip()).is_file()
    never = cli("report", "--night", "2025-08-01", *home, env=config, cwd=folder)
    assert never.returncode == 2 and "never ran" in never.stderr and f"{NIGHTS[0]} .. {NIGHTS[1]}" in never.stderr
    backwards = cli("audit", "--from", str(NIGHTS[1]), "--to", str(NIGHTS[0]), *home, env=config, cwd=folder)
    assert backwards.returncode == 2 and "is before --from" in backwards.stderr
    both = ["--from", str(NIGHTS[0]), "--to", str(NIGHTS[1])]
    done = cli("audit", *both, "--format", "json", *home, env=config, cwd=folder)
    assert done.returncode == 0
    nightly = [r for r in json.loads(done.stdout) if r["partition"] != "-"]  # "-": the model's checks
    assert {r["partition"] for r in nightly} == {str(n) for n in NIGHTS}
    assert all(r["status"] != "FAILED" for r in nightly)
    narrow = cli("audit", *both, *home, env={**config, "COLUMNS": "80"}, cwd=folder)  # an 80-column terminal
    assert narrow.returncode == 0 and max(map(len, narrow.stdout.splitlines())) <= 80, narrow.stdout
    assert f"{NIGHTS[0]}  serving_features.lookback_health  PASSED ERROR blocking" in narrow.stdout
    done = cli("lake-sync", *home, env=config, cwd=folder)  # once, when switching to the Spark engine
    assert done.returncode == 0 and "committed" in done.stdout, done.stdout + done.stderr

    # train with periods outside the loaded history: refused, naming both, never "see the UI"
    (folder / "untrained.toml").write_text(settings.split("[training]")[0])  # the default periods
    untrained = {**env, "RISK_ASSETS_CONFIG": str(folder / "untrained.toml")}
    done = cli("train", *home, env=untrained, cwd=folder)
    assert done.returncode == 1
    assert "training refused: the training period" in done.stdout and "Set [training]" in done.stdout, done.stdout
    assert (
        f"loaded: {HISTORY[0]} .. {NIGHTS[1]}" in done.stdout and "see the run in the UI" not in done.stdout
    )  # the nights too


def test_the_readmes_own_data_steps_on_the_second_world(tmp_path):
    """The same README steps on a source that is not the embedded world: the alpine world
    (its own category, channel, segment and region names, Sunday closures, Austrian public
    holidays, Europe/Vienna) exported by ``export-landing``. The settings block is the
    README's with the edits it asks a user to make — their source's names under
    ``[features]``, their timezone, the ``holidays_country`` that ``load`` suggests — and the
    commands run verbatim."""
    from risk_assets.scenario.worlds import WORLDS

    env = user_env()
    alpine = WORLDS["alpine"]
    export = tmp_path / "export.toml"
    export.write_text(
        to_toml(
            Settings().with_overrides(
                scenario={"world": {"profile": "alpine", "n_customers": 4000}},
                calendar={"timezone": alpine["calendar"]["timezone"]},
            )
        )
    )
    days = ["--from", str(HISTORY[0]), "--to", str(NIGHTS[1])]
    done = cli(
        "export-landing", "--out", str(tmp_path / "landing"), *days, env={**env, "RISK_ASSETS_CONFIG": str(export)}
    )
    assert done.returncode == 0, done.stderr

    settings = readme_block("own-data-settings")
    edits = {
        'timezone = "UTC"': f'timezone = "{alpine["calendar"]["timezone"]}"',
        '# holidays_country = "DE"': f'holidays_country = "{alpine["calendar"]["holidays_country"]}"',
        **{
            f"{key} = {json.dumps(value)}": f"{key} = {json.dumps(alpine['features'][key])}"
            for key, value in tomllib.loads(settings)["features"].items()
        },
    }
    for old, new in edits.items():
        assert settings.count(old) == 1, old  # the README still says it this way
        settings = settings.replace(old, new)
    assert tomllib.loads(settings)["features"] == alpine["features"]
    (tmp_path / "risk_assets.toml").write_text(settings)
    steps = run_readme_commands(tmp_path, env)
    out = steps.stdout
    assert steps.returncode == 0 and "Traceback" not in out + steps.stderr, out + steps.stderr[-3000:]
    line = next(x for x in out.splitlines() if x.startswith("loaded "))
    received, accepted, rejected = (
        int(x.replace(",", "")) for x in _numbers_after(line, "received", "accepted", "rejected")
    )
    assert received == accepted + rejected and accepted > 0
    assert "calendar: public holidays of AT" in out  # train states the calendar it judged the history with
    assert "2 night(s): 2 scored, 0 blocked or failed" in out
    assert out.count("SCORED") == 2


def test_a_demo_homes_settings_reach_the_runs_the_cli_launches(tmp_path, monkeypatch, capsys):
    """A command on a demo's home reads its demo.toml — and so must the code location's server
    and the runs the command launches: the file is handed on in RISK_ASSETS_CONFIG."""
    from risk_assets.app import cli as cli_module
    from risk_assets.app.cli import DEMO_SETTINGS

    home = tmp_path / "home"
    home.mkdir()
    (home / DEMO_SETTINGS).write_text(to_toml(Settings().with_overrides(scenario={"world": {"n_customers": 321}})))
    monkeypatch.delenv("RISK_ASSETS_CONFIG", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert cli_module.main(["status", "--home", str(home)]) == 0
    assert "no nightly run in this instance yet" in capsys.readouterr().out
    assert os.environ["RISK_ASSETS_CONFIG"] == str(home / DEMO_SETTINGS)


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


REEXECUTE = """
mutation($parent: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parent, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
JOB_RUNS = """
{ pipelineOrError(params: {pipelineName: "nightly_job", repositoryName: "__repository__",
                           repositoryLocationName: "risk_assets"}) {
    __typename ... on Pipeline { runs { runId status tags { key value } } } } }"""


def test_a_night_the_cli_blocked_is_re_executed_from_the_ui_after_its_remediation(walked, tmp_path):
    """Runs the CLI starts belong to the code location: the UI lists them under nightly_job
    (Jobs → nightly_job → Runs) and re-executes one — here a night blocked by a day cut short,
    after the day was delivered again — and the re-execution scores it."""
    import shutil

    import duckdb

    folder, env, steps = walked
    assert steps.returncode == 0, steps.stdout + steps.stderr[-3000:]
    config = {
        **env,
        "RISK_ASSETS_CONFIG": str(folder / "risk_assets.toml"),
        "DAGSTER_HOME": str(folder / ".dagster_home"),
    }
    day = folder / "landing" / "transactions" / f"date={LATER}"
    shutil.copytree(day, tmp_path / "delivered")
    for file in day.glob("*.parquet"):  # the source cut the day short
        frame = pd.read_parquet(file)
        frame.iloc[: len(frame) // 4].to_parquet(file, index=False)
    blocked = cli("run", "--night", str(LATER), env=config, cwd=folder)
    assert blocked.returncode == 1 and "BLOCKED by" in blocked.stdout and "row_volume" in blocked.stdout
    run_id = blocked.stdout.split("run ")[-1].split()[0]
    shutil.rmtree(day)
    shutil.copytree(tmp_path / "delivered", day)  # the remediation: the day delivered again

    port = _free_port()
    ui = subprocess.Popen(
        [CLI, "ui", "--port", str(port)], env=config, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_until_up(port, ui, seconds=240)
        listed = _graphql(port, JOB_RUNS)["pipelineOrError"]
        assert listed["__typename"] == "Pipeline", listed
        runs = {r["runId"]: r["status"] for r in listed["runs"]}
        assert len(runs) == 3 and any(r.startswith(run_id) and s == "FAILURE" for r, s in runs.items()), runs
        parent = next(r for r in runs if r.startswith(run_id))
        launched = _graphql(port, REEXECUTE, {"parent": parent})["launchRunReexecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        child = launched["run"]["runId"]
        deadline = time.monotonic() + 300  # queued; dagster dev's daemon starts it
        status = None
        while time.monotonic() < deadline:
            status = _graphql(port, f'{{ runOrError(runId: "{child}") {{ ... on Run {{ status }} }} }}')["runOrError"]
            if status.get("status") in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(2)
        assert status and status["status"] == "SUCCESS", status
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=90)
    with duckdb.connect(str(folder / ".risk_assets" / "warehouse.duckdb"), read_only=True) as conn:
        scored = conn.execute("SELECT count(*) FROM risk_scores WHERE partition = ?", [LATER]).fetchone()[0]
    assert scored > 0
