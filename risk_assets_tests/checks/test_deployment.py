"""The model deployment gate: metrics, feature-spec version and serving/training parity."""

import json
import shutil

import dagster as dg
import pytest

from risk_assets.core.features.spec import SPEC_VERSION
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import TRAINING_JOB
from risk_assets.store import warehouse
from risk_assets_tests.conftest import QUIET


def gate(settings, instance):
    return (
        build_definitions(settings)
        .resolve_job_def(TRAINING_JOB)
        .execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False, asset_selection=[dg.AssetKey("deployed_model")]
        )
    )


def deployed(settings):
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        return [
            r[0] for r in conn.execute("SELECT version FROM model_registry WHERE deployed_at IS NOT NULL").fetchall()
        ]


def as_new_candidate(settings, spec_version: str | None = None):
    """Un-deploy the trained model (a fresh candidate), optionally as if trained on another spec."""
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        version, path = conn.execute("SELECT version, path FROM model_registry").fetchall()[0]
        if spec_version:
            copy = settings.warehouse.duckdb_path.parent / "candidate"
            shutil.copytree(path, copy)
            card = json.loads((copy / "card.json").read_text())
            card["spec_version"] = spec_version
            (copy / "card.json").write_text(json.dumps(card))
            conn.execute("UPDATE model_registry SET path = ? WHERE version = ?", [str(copy), version])
        conn.execute("UPDATE model_registry SET deployed_at = NULL")
    return version


def failure_text(result) -> str:
    return result.get_step_failure_events()[0].step_failure_data.user_failure_data.description


def test_a_good_candidate_is_promoted(world_copy, instance):
    settings = world_copy()
    version = as_new_candidate(settings)
    result = gate(settings, instance)
    assert result.success and deployed(settings) == [version]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["decision"].value == "promoted" and meta["code_spec_version"].value == SPEC_VERSION


def test_parity_failure_refuses_promotion_until_parity_passes_again(world_copy, instance):
    version = as_new_candidate(world_copy())
    skewed = world_copy(serving_skew={"end_shift_hours": -3.0})
    result = gate(skewed, instance)
    assert not result.success and "parity failed" in failure_text(result)
    assert deployed(skewed) == []  # nothing promoted; serving has no model to use
    assert gate(world_copy(), instance).success and deployed(skewed) == [version]


def test_a_model_trained_on_another_feature_spec_is_refused(world_copy, instance):
    settings = world_copy()
    as_new_candidate(settings, spec_version="0ld5pec0000")
    result = gate(settings, instance)
    assert not result.success
    assert "trained on feature spec 0ld5pec0000" in failure_text(result) and "retrain" in failure_text(result)
    assert deployed(settings) == []


@pytest.mark.parametrize("bar", [{"min_validation_roc_auc": 0.99}, {"min_precision_lift": 1000.0}])
def test_weak_validation_metrics_are_refused(world_copy, instance, bar):
    settings = world_copy(deployment=bar)
    as_new_candidate(settings)
    result = gate(settings, instance)
    assert not result.success and "refused" in failure_text(result)
