"""The code location loads the way `dagster dev` loads it."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_validate_loadable():
    from risk_assets.definitions import defs

    # as in a code server: a live instance (an earlier test's instance may still be the
    # process's current defs-state storage, held by a dead weak reference)
    with dg.instance_for_test():
        dg.Definitions.validate_loadable(defs)
        graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"customers", "irregularities", "raw_transactions", "rejected_transactions"} <= keys


def test_pyproject_and_workspace_point_at_the_same_module():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert pyproject["tool"]["dagster"]["module_name"] == module == "risk_assets.definitions"


def test_dagster_cli_loads_the_workspace_target(tmp_path):
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or shutil.which("dagster")
    assert dagster, "the dagster CLI is installed with the project"
    result = subprocess.run(
        [dagster, "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env={"DAGSTER_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "risk_assets" in result.stdout + result.stderr


def test_dagster_dg_cli_loads_the_project():
    """`dg check defs` / `dg list defs` find the same definitions through [tool.dg]."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    dg_cli = Path(sys.executable).with_name("dg")
    env = {**__import__("os").environ, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    checked = subprocess.run(
        [str(dg_cli), "check", "defs"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0 and "All definitions loaded successfully" in checked.stdout + checked.stderr, (
        checked.stdout + checked.stderr
    )
    listed = subprocess.run(
        [str(dg_cli), "list", "defs", "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    assert "nightly_job" in listed.stdout and "risk_scores" in listed.stdout and "landing_sensor" in listed.stdout
