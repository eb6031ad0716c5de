"""The audit trail read back from the instance's check history."""

import datetime as dt
import json

import dagster as dg
import pytest

from risk_assets.app import cli
from risk_assets.app.audit import audit_rows, check_keys, filtered
from risk_assets.checks.catalogue import declared
from risk_assets.defs.factory import build_definitions
from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, run_night


def test_audit_lists_every_check_of_every_night_with_failures_and_thresholds(world_copy, instance, monkeypatch):
    clean = world_copy()
    run_night(clean, instance, FIRST_NIGHT, run_config=QUIET)
    bad_night = FIRST_NIGHT + dt.timedelta(days=1)
    blocked = world_copy(world={"product_change": {"enabled": True, "date": bad_night.isoformat()}})
    run_night(blocked, instance, bad_night, run_config=QUIET, raise_on_error=False)

    keys = check_keys(build_definitions(clean))
    rows = audit_rows(instance, keys)
    per_night = rows[rows["partition"] == FIRST_NIGHT.isoformat()]
    nightly = {"raw_transactions", "serving_features", "encoded_features", "risk_scores"}
    partitioned_checks = {k for k in keys if "freshness" not in k.name and k.asset_key.to_user_string() in nightly}
    assert not per_night.duplicated(["asset", "check"]).any(), per_night[["asset", "check", "status"]]
    assert set(zip(per_night["asset"], per_night["check"])) == {
        (k.asset_key.to_user_string(), k.name) for k in partitioned_checks
    }
    assert (per_night["status"] == "PASSED").all()
    failed = rows[(rows["partition"] == bad_night.isoformat()) & (rows["status"] == "FAILED")]
    coverage = failed[(failed["check"] == "category_coverage") & (failed["asset"] == "encoded_features")].iloc[0]
    assert coverage["severity"] == "ERROR" and coverage["blocking"]
    assert coverage["thresholds"]["max_unmapped_share"] == 0.005
    assert coverage["figures"]["unmapped_rows"] > 0
    assert coverage["mapping_version"] and coverage["spec_version"] and coverage["settings_version"]
    assert (
        filtered(rows, bad_night.isoformat(), bad_night.isoformat(), "encoded_features.category_coverage").shape[0] == 1
    )


def test_a_check_whose_statistic_raises_fails_alone_naming_the_error(world_copy, instance, monkeypatch):
    """The checks of one asset share a step; a statistic that raises fails its own check
    (ERROR, the error named) and the step's other checks still report."""
    settings = world_copy()

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash inside the drift check")

    monkeypatch.setattr(declared("encoded_features", "drift_bounds"), "guard", crash)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert not result.success  # drift_bounds blocks on ERROR: a check that cannot judge is not a pass
    rows = audit_rows(instance, check_keys(build_definitions(settings)))
    night = rows[(rows["partition"] == FIRST_NIGHT.isoformat()) & (rows["asset"] == "encoded_features")]
    drift = night[night["check"] == "drift_bounds"]
    assert list(drift["status"]) == ["FAILED"] and list(drift["severity"]) == ["ERROR"]
    assert "could not be evaluated: RuntimeError: simulated crash inside the drift check" in drift.iloc[0]["summary"]
    others = night[night["check"] != "drift_bounds"]
    assert len(others) == 5 and set(others["status"]) == {"PASSED"}  # isolated: the siblings were judged


def test_a_run_that_dies_leaves_its_checks_did_not_evaluate(world_copy, instance, monkeypatch):
    """A crash outside any check (here the step's warehouse connection) leaves Dagster's
    planned checks without a result: the audit says DID NOT EVALUATE, never pending."""
    from risk_assets.defs import checks

    settings = world_copy()

    def broken(*args, **kwargs):
        raise OSError("simulated: the warehouse file is gone")

    monkeypatch.setattr(checks, "open_engine", broken)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert not result.success
    rows = audit_rows(instance, check_keys(build_definitions(settings)))
    raw = rows[(rows["partition"] == FIRST_NIGHT.isoformat()) & (rows["asset"] == "raw_transactions")]
    assert len(raw) and set(raw["status"]) == {"DID NOT EVALUATE"}


def test_audit_cli_prints_json_from_dagster_home(world_copy, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    settings = world_copy()
    config = tmp_path / "risk.toml"
    config.write_text(
        f'[warehouse]\nduckdb_path = "{settings.warehouse.duckdb_path}"\n'
        f'[scoring]\nmodels_dir = "{settings.scoring.models_dir}"\n'
        "[training]\nstart = 2025-04-01\nend = 2025-09-15\nvalidation_start = 2025-10-20\nvalidation_end = 2025-11-29\n"
    )
    monkeypatch.setenv("RISK_ASSETS_CONFIG", str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        run_night(settings, instance, FIRST_NIGHT, run_config=QUIET)
    assert cli.main(["audit", "--format", "json", "--from", FIRST_NIGHT.isoformat()]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["check"] for r in rows} >= {"feature_parity", "imputation_ceiling", "drift_bounds", "scores_schema"}
    assert {r["status"] for r in rows} == {"PASSED"}
    assert cli.main(["audit", "--home", str(tmp_path / "nowhere")]) == 2


def test_a_deliberate_override_is_recorded_in_the_audit_trail(world_copy, instance):
    start = FIRST_NIGHT - dt.timedelta(days=6)
    burst = {
        "missingness": {"enabled": True, "date": start.isoformat(), "share": 0.12, "concentrate_in": "segment:smb"}
    }
    from risk_assets_tests.defs.test_incidents import reingest

    red = world_copy(world=burst)
    reingest(red, instance, start, FIRST_NIGHT - dt.timedelta(days=1))
    assert not run_night(red, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False).success
    overridden = world_copy(
        world=burst,
        checks={"imputation_ceiling": 0.5, "missingness_min_cells": 1_000_000},
        override={"by": "j.doe", "reason": "INC-1234 feed outage, reviewed by hand"},
    )
    assert run_night(overridden, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False).success
    rows = audit_rows(instance, check_keys(build_definitions(overridden)))
    ceiling = rows[(rows["check"] == "imputation_ceiling") & (rows["partition"] == FIRST_NIGHT.isoformat())]
    assert list(ceiling["status"]) == ["FAILED", "PASSED"]
    assert list(ceiling["override"]) == ["-", "j.doe: INC-1234 feed outage, reviewed by hand"]
    assert ceiling.iloc[1]["thresholds"]["ceiling"] == 0.5
    assert ceiling.iloc[0]["settings_version"] != ceiling.iloc[1]["settings_version"]


def test_an_override_needs_a_name_and_a_reason():
    from risk_assets.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="override"):
        Settings().with_overrides(override={"by": "j.doe"})
