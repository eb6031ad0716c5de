"""The code location loads the way `dagster dev` loads it."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_validate_loadable():
    from risk_assets.definitions import defs

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
