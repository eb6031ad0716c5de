"""One home, one world: a warehouse belongs to the Dagster instance that first wrote it.

Runs of another instance (its UI, its daemon, the CLI on another ``--home``) are refused
before a step writes, naming both instances; two homes side by side without a settings
file each get their own warehouse, alerts, models and reports (paths resolve against the
home); a deliberate move is an explicit ``risk-assets adopt``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import REFERENCE_JOB
from risk_assets.defs.resources import instance_identity
from risk_assets.settings import load_settings
from risk_assets.store import warehouse
from risk_assets_tests.conftest import small_settings


def _rows(path: Path, table: str) -> int:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_of_another_instance_is_refused_before_it_writes_and_adopt_hands_the_warehouse_over(tmp_path):
    settings = small_settings(tmp_path)
    path = settings.warehouse.duckdb_path
    with dg.instance_for_test() as first, dg.instance_for_test() as second:
        job = build_definitions(settings).resolve_job_def(REFERENCE_JOB)
        assert job.execute_in_process(instance=first).success
        first_id, first_home = instance_identity(first)
        with duckdb.connect(str(path), read_only=True) as conn:
            assert warehouse.owner(conn)["instance_id"] == first_id
        before = _digest(path)

        refused = job.execute_in_process(instance=second, raise_on_error=False)
        assert not refused.success
        message = str(refused.all_events)
        assert first_home in message and instance_identity(second)[1] in message, message
        assert "risk-assets adopt" in message
        assert _digest(path) == before  # nothing written, not even a claim

        # an ephemeral (in-memory) instance is another instance too, and never owns anything
        assert not job.execute_in_process(raise_on_error=False).success
        assert _digest(path) == before

        with warehouse.connect(path) as conn:
            assert warehouse.hand_over(conn, *instance_identity(second))["instance_id"] == first_id
        assert job.execute_in_process(instance=second).success
        assert not job.execute_in_process(instance=first, raise_on_error=False).success
        with duckdb.connect(str(path), read_only=True) as conn:
            owners = conn.execute("SELECT instance_id, how FROM instance_owner ORDER BY claimed_at").fetchall()
        assert [o[0] for o in owners] == [first_id, instance_identity(second)[0]]
        assert owners[1][1].startswith(f"adopted from {first_home}")


def test_an_instance_keeps_its_id_when_opened_again(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = instance_identity(instance)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as again:
        assert instance_identity(again) == first


def test_without_a_settings_file_every_path_lives_in_the_home(tmp_path, monkeypatch):
    monkeypatch.delenv("RISK_ASSETS_CONFIG", raising=False)
    home = tmp_path / "home"
    settings = load_settings(home=home)
    for path in (
        settings.warehouse.duckdb_path,
        settings.alerts.duckdb_path,
        settings.scoring.models_dir,
        settings.report.dir,
        settings.engine.lake_path,
    ):
        assert Path(path).is_relative_to(home.resolve()), path
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "other"))
    assert load_settings().warehouse.duckdb_path.is_relative_to((tmp_path / "other").resolve())


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "RISK_ASSETS_CONFIG")}
    environ.update(env or {})
    return subprocess.run(
        [str(Path(sys.executable).parent / "risk-assets"), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_homes_side_by_side_never_touch_each_others_files(tmp_path):
    """Through the entry point, from one working directory: two homes with no settings file
    each load into their own warehouse; a shared settings file makes the second home's
    commands refuse (exit 2, naming both instances, the new home not even created) until it
    adopts the warehouse — and then the first home is refused."""
    day = ["--from", "2025-01-01", "--to", "2025-01-01"]
    a, b = tmp_path / "a", tmp_path / "b"
    loaded = _cli("load", "--home", str(a), *day, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    a_files = _files(a / ".risk_assets")
    assert "warehouse.duckdb" in a_files
    assert not (tmp_path / ".risk_assets").exists()  # nothing in the working directory

    loaded = _cli("load", "--home", str(b), *day, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert _files(a / ".risk_assets") == a_files  # b wrote only its own world
    assert (b / ".risk_assets" / "warehouse.duckdb").is_file()
    assert _cli("report", "--home", str(b), "--night", "2025-01-01", cwd=tmp_path).returncode == 2  # never ran
    empty = _cli("alerts", "--home", str(b), "--format", "json", cwd=tmp_path)  # its own, empty alerts
    assert empty.returncode == 0 and json.loads(empty.stdout) == [], empty.stdout
    assert _files(a / ".risk_assets") == a_files

    shared = tmp_path / "shared.toml"
    shared.write_text(f'[warehouse]\nduckdb_path = "{a / ".risk_assets" / "warehouse.duckdb"}"\n')
    c = tmp_path / "c"
    env = {"RISK_ASSETS_CONFIG": str(shared)}
    for command in (["load", *day], ["run", "--night", "2025-01-02"], ["lake-sync"]):
        refused = _cli(*command, "--home", str(c), cwd=tmp_path, env=env)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert str(a) in refused.stderr and str(c) in refused.stderr, refused.stderr
        assert not c.exists()
    c.mkdir()  # an empty instance folder: an instance, but not the warehouse's
    refused = _cli("status", "--home", str(c), cwd=tmp_path, env=env)
    assert refused.returncode == 2 and str(a) in refused.stderr and str(c) in refused.stderr, refused.stderr
    assert _files(a / ".risk_assets") == a_files

    adopted = _cli("adopt", "--home", str(c), cwd=tmp_path, env=env)
    assert adopted.returncode == 0, adopted.stderr
    assert f"it belonged to {a}" in adopted.stdout
    assert _rows(a / ".risk_assets" / "warehouse.duckdb", "instance_owner") == 2
    refused = _cli("load", "--home", str(a), *day, cwd=tmp_path)  # a's own settings: the same warehouse
    assert refused.returncode == 2 and str(c) in refused.stderr, refused.stderr
