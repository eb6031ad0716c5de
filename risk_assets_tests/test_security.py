"""Security (issue 7): localhost UI, no pickle, SQL values as parameters and identifiers
from a whitelist, a landing reader that stays in its folder, settings that refuse nonsense."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import NIGHTLY_JOB, TRAINING_JOB
from risk_assets.scenario.source import export_landing
from risk_assets.settings import Settings, SettingsError, settings_from_mapping
from risk_assets.store import warehouse
from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, shared_home
from risk_assets_tests.sources.test_bad_input import HOSTILE

ROOT = Path(__file__).resolve().parents[1]


def test_every_ui_command_in_the_docs_binds_to_localhost():
    blocks = re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    commands = [
        line
        for block in blocks
        for line in block.splitlines()
        if re.search(r"dagster(-webserver)? dev|dagster-webserver |\bdg dev", line)
    ]
    assert commands, "the README shows how to start the UI"
    for line in commands:
        assert re.search(r"(-h|--host) 127\.0\.0\.1\b", line), line
    for path in (
        ROOT / "README.md",
        ROOT / "workspace.yaml",
        ROOT / "pyproject.toml",
        *ROOT.glob("risk_assets/**/*.py"),
    ):
        assert "0.0.0.0" not in path.read_text(), path


PICKLERS = {"pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve"}


def test_no_module_pickles_or_unpickles_anything():
    offenders = []
    for path in sorted((ROOT / "risk_assets").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name.split(".")[0] for a in node.names] + [getattr(node, "module", None) or ""]
                offenders += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in PICKLERS]
            elif isinstance(node, ast.Attribute) and node.attr in {"to_pickle", "read_pickle"}:
                offenders.append(f"{path.name}: .{node.attr}")
            elif isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                offenders.append(f"{path.name}: allow_pickle=")
    assert offenders == []


def test_saved_models_are_lightgbm_text_and_json_only(trained_world):
    files = [p for p in (trained_world / "models").rglob("*") if p.is_file()]
    assert files
    assert {p.suffix for p in files} <= {".txt", ".json"}, files
    for model in (p for p in files if p.suffix == ".txt"):
        assert model.read_text().startswith("tree\nversion=")


@given(
    st.one_of(
        st.text(max_size=60),
        st.sampled_from(HOSTILE),
        st.sampled_from(list(warehouse.TABLES)).map(lambda t: f'{t}"; DROP TABLE {t}; --'),
    )
)
def test_only_whitelisted_identifiers_reach_sql(name):
    if name in warehouse.TABLES:
        assert warehouse.table(name) == f'"{name}"'
    else:
        with pytest.raises(ValueError, match="is not a table of this warehouse"):
            warehouse.table(name)


def _tables_and_counts(path: Path) -> dict[str, int]:
    with warehouse.connect(path, read_only=True) as conn:
        return {name: warehouse.count(conn, name) for name in warehouse.TABLES}


def test_hostile_category_names_and_sql_looking_settings_are_only_ever_data(world_copy, tmp_path):
    """A night whose feed carries SQL-looking, pipe, NUL and non-ASCII category names,
    run with settings whose free-text values look like SQL and table names: the night
    is processed (and blocked by the coverage check, as new categories should be), the
    names are stored verbatim, every table survives, and mapping one of them by an alias
    in settings stores the alias verbatim too."""
    night = FIRST_NIGHT
    embedded = world_copy()
    root = tmp_path / "landing"
    export_landing(embedded, root, [night])
    [part] = (root / "transactions" / f"date={night}").glob("*.parquet")
    frame = pd.read_parquet(part)
    hostile_rows = frame.index[:: max(len(frame) // 40, 1)][: 4 * len(HOSTILE)]
    frame.loc[hostile_rows, "category"] = [HOSTILE[i % len(HOSTILE)] for i in range(len(hostile_rows))]
    frame.to_parquet(part, index=False)
    sql_ish = {"by": 'risk_scores"; DROP TABLE risk_scores; --', "reason": "'); DELETE FROM raw_loads; --"}
    settings = world_copy(source={"kind": "landing", "landing_dir": str(root)}, override=sql_ish)
    path = settings.warehouse.duckdb_path
    before = _tables_and_counts(path)

    with dg.instance_for_test(temp_dir=shared_home(world_copy.folder)) as instance:
        result = (
            build_definitions(settings)
            .resolve_job_def(NIGHTLY_JOB)
            .execute_in_process(
                instance=instance, partition_key=night.isoformat(), run_config=QUIET, raise_on_error=False
            )
        )
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    coverage = checks[("encoded_features", "category_coverage")]
    assert not coverage.passed and not result.success  # new categories block the night, as they should
    assert coverage.metadata["override_by"].value == sql_ish["by"]
    after = _tables_and_counts(path)
    assert after.keys() == before.keys()
    assert after["customers"] == before["customers"] and after["model_registry"] == before["model_registry"]
    with warehouse.connect(path, read_only=True) as conn:
        stored = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT category FROM raw_transactions WHERE partition = ?", [night]
            ).fetchall()
        }
    assert set(HOSTILE) <= stored

    aliased = world_copy(mapping={"aliases": {HOSTILE[0]: "groceries"}})
    with dg.instance_for_test(temp_dir=shared_home(world_copy.folder)) as instance:
        mapping_job = build_definitions(aliased).resolve_job_def(TRAINING_JOB)
        assert mapping_job.execute_in_process(
            instance=instance, run_config=QUIET, asset_selection=[dg.AssetKey("category_mapping")]
        ).success
    with warehouse.connect(path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT canonical, origin FROM category_mapping WHERE raw_category = ?", [HOSTILE[0]]
        ).fetchall()
    assert rows == [("groceries", "alias")]
    assert _tables_and_counts(path).keys() == before.keys()


NONSENSE = [
    ({"checks": {"imputation_ceiling": 1.5}}, "checks.imputation_ceiling"),
    ({"checks": {"imputation_ceiling": -0.02}}, "checks.imputation_ceiling"),
    ({"checks": {"max_rejected_share": 2}}, "checks.max_rejected_share"),
    ({"checks": {"drift_warn_alpha": -0.05}}, "checks.drift_warn_alpha"),
    ({"checks": {"drift_warn_alpha": 0.001, "drift_error_alpha": 0.05}}, "drift_error_alpha must be smaller"),
    ({"checks": {"daily_warn_arl": -4}}, "checks.daily_warn_arl"),
    ({"checks": {"parity_atol": -1e-9}}, "checks.parity_atol"),
    ({"checks": {"parity_sample": 0}}, "checks.parity_sample"),
    ({"checks": {"missingness_min_lift": 0.5}}, "checks.missingness_min_lift"),
    ({"checks": {"imputation_ceilling": 0.02}}, "checks.imputation_ceilling"),
    ({"no_such_section": {}}, "no_such_section"),
    ({"raw": {"max_amount": -1}}, "raw.max_amount"),
    ({"warehouse": {"lock_timeout_seconds": 0}}, "warehouse.lock_timeout_seconds"),
    ({"scoring": {"review_budget": 1.5}}, "scoring.review_budget"),
    ({"alerts": {"webhook_url": "file:///etc/passwd"}}, "alerts.webhook_url"),
    ({"alerts": {"ui_base_url": "javascript:alert(1)"}}, "alerts.ui_base_url"),
    ({"override": {"by": "me"}}, "needs both 'by' and 'reason'"),
    ({"calendar": {"timezone": "Europe/Nowhere"}}, "calendar.timezone"),
    ({"scenario": {"world": {"n_customers": "many"}}}, "scenario.world.n_customers"),
]


@pytest.mark.parametrize("data, named", NONSENSE, ids=[n for _, n in NONSENSE])
def test_settings_refuse_nonsense_naming_the_key(data, named):
    from risk_assets.scenario.settings import scenario_of

    with pytest.raises(SettingsError) as err:
        scenario_of(settings_from_mapping(data, origin="test.toml"))  # [scenario] is the scenario's to read
    assert named in str(err.value)


def test_every_share_and_threshold_in_settings_refuses_negative_values():
    """Walks the settings model (nested sections too): no number whose lower bound is zero
    or more accepts -1."""
    refused = 0

    def walk(model, path: tuple[str, ...]):
        nonlocal refused
        for field_name, field in getattr(model, "model_fields", {}).items():
            if hasattr(field.annotation, "model_fields"):
                walk(field.annotation, (*path, field_name))
                continue
            bounds = [
                m
                for m in field.metadata
                if getattr(m, "ge", getattr(m, "gt", None)) is not None
                and getattr(m, "ge", getattr(m, "gt", None)) >= 0
            ]
            if field.annotation not in (float, int) or not bounds:
                continue
            data: dict = {field_name: -1}
            for part in reversed(path):
                data = {part: data}
            with pytest.raises(SettingsError, match=".".join((*path, field_name))):
                settings_from_mapping(data, origin="test.toml")
            refused += 1

    walk(Settings, ())
    assert refused >= 25
