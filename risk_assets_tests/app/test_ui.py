"""The Dagster UI serves our asset graph, checks and check history (over GraphQL)."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, TRAINED_OVERRIDES, run_night

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def wait_until_up(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(
                    "webserver did not come up: "
                    + (proc.stdout.read().decode() if proc.poll() is not None else "timeout")
                )
            time.sleep(1)


def _toml(settings_dir: Path) -> str:
    t = TRAINED_OVERRIDES["training"]
    return (
        f'[warehouse]\nduckdb_path = "{settings_dir / "warehouse.duckdb"}"\n'
        f'[scoring]\nmodels_dir = "{settings_dir / "models"}"\n'
        f'[alerts]\nduckdb_path = "{settings_dir / "alerts.duckdb"}"\n'
        f"[scenario.world]\nn_customers = {TRAINED_OVERRIDES['world']['n_customers']}\n"
        "[training]\n" + "".join(f"{k} = {v if isinstance(v, int) else v}\n" for k, v in t.items())
    )


def test_webserver_on_localhost_shows_graph_checks_and_history(world_copy, tmp_path, monkeypatch):
    settings = world_copy()
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config = tmp_path / "risk.toml"
    config.write_text(_toml(world_copy.folder))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert run_night(settings, instance, FIRST_NIGHT, run_config=QUIET).success

    with webserver(home, config) as port:
        nodes = _graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
        keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert {"raw_transactions", "serving_features", "encoded_features", "imputation_log", "risk_scores"} <= keys

        def blocking_flags(asset: str) -> dict[str, bool]:
            checks = _graphql(
                port,
                """
                query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
                  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } } }""",
                {"key": {"path": [asset]}},
            )
            return {c["name"]: c["blocking"] for c in checks["assetNodeOrError"]["assetChecksOrError"]["checks"]}

        names = blocking_flags("encoded_features")
        assert names["imputation_ceiling"] is True and names["daily_drift"] is True
        assert {"missingness_pattern", "drift_bounds", "category_coverage", "encoded_schema"} <= set(names)
        raw_names = blocking_flags("raw_transactions")
        assert raw_names["late_arrivals"] is False and raw_names["row_volume"] is True

        history = _graphql(
            port,
            """
            query { assetCheckExecutions(
                assetKey: {path: ["encoded_features"]}, checkName: "imputation_ceiling", limit: 5) {
              runId status partition evaluation { severity success description } } }""",
        )["assetCheckExecutions"]
        assert len(history) == 1
        [execution] = history
        assert execution["status"] == "SUCCEEDED" and execution["partition"] == FIRST_NIGHT.isoformat()
        assert execution["evaluation"]["success"] is True and execution["evaluation"]["severity"] == "ERROR"


@contextlib.contextmanager
def webserver(home, config):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "RISK_ASSETS_CONFIG": str(config)}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(ROOT / "workspace.yaml"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
