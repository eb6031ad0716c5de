"""The three production incidents, reproduced on data and caught by the real checks.

Each runs the real nightly job through Dagster on a copy of the small trained world;
the clean nights around them must pass."""

import datetime as dt
import tomllib

import dagster as dg
import pytest

from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import HISTORY_JOB, TRAINING_JOB
from risk_assets.defs.jobs import RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG
from risk_assets.defs.jobs import RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG
from risk_assets.scenario.world import NEW_CATEGORIES
from risk_assets.store import warehouse
from risk_assets_tests.checks.test_statistics import assert_statistics_match_rows
from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, run_night

D = FIRST_NIGHT + dt.timedelta(days=2)  # incident 1: two clean nights run first
N = FIRST_NIGHT  # the first night after the trained world's history: no gap in the look-back


def checks(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def failed_errors(result) -> set[tuple[str, str]]:
    return {k for k, e in checks(result).items() if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR}


def scores_written(settings, day) -> int:
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        return warehouse.count(conn, "risk_scores", day)


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def reingest(settings, instance, first: dt.date, last: dt.date) -> None:
    """Re-read raw days with the scenario switched on (the source changed under us)."""
    build_definitions(settings).resolve_job_def(HISTORY_JOB).execute_in_process(
        instance=instance,
        run_config=QUIET,
        tags={ASSET_PARTITION_RANGE_START_TAG: first.isoformat(), ASSET_PARTITION_RANGE_END_TAG: last.isoformat()},
    )


# ----------------------------------------------------------------------------- incident 1
def test_incident_1_product_change_is_stopped_on_its_first_night(world_copy, instance):
    settings = world_copy(world={"product_change": {"enabled": True, "date": D.isoformat()}})
    for night in (D - dt.timedelta(days=2), D - dt.timedelta(days=1)):
        clean = run_night(settings, instance, night, run_config=QUIET, raise_on_error=False)
        assert clean.success and failed_errors(clean) == set(), night
        assert scores_written(settings, night) > 0

    result = run_night(settings, instance, D, run_config=QUIET, raise_on_error=False)
    assert not result.success  # the night turns red
    failed = failed_errors(result)
    assert ("raw_transactions", "category_coverage") in failed
    assert ("encoded_features", "category_coverage") in failed
    assert "risk_scores" not in materialized(result)
    assert scores_written(settings, D) == 0
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:  # the checks' aggregates = their definitions
        assert_statistics_match_rows(conn, D, settings, tested=False)  # coverage's cells
    evaluation = checks(result)[("raw_transactions", "category_coverage")]
    unseen = evaluation.metadata["unseen_categories"].value
    for name in (*NEW_CATEGORIES, "p2p_payments", "travel_and_lodging"):
        assert name in unseen
    assert evaluation.metadata["suggested_aliases"].value["p2p_payments"] == "money_transfer"
    assert evaluation.metadata["thresholds"].value["max_unmapped_share"] == settings.checks.coverage_max_unmapped_share

    # Remediation: apply the suggested aliases -> a new mapping version -> the night passes.
    # exactly what an operator pastes into the settings file
    aliases = tomllib.loads(evaluation.metadata["suggested_aliases_toml"].value)["mapping"]["aliases"]
    assert aliases == evaluation.metadata["suggested_aliases"].value
    fixed = world_copy(world={"product_change": {"enabled": True, "date": D.isoformat()}}, mapping={"aliases": aliases})
    defs = build_definitions(fixed)
    remap = defs.resolve_job_def(TRAINING_JOB).execute_in_process(
        instance=instance, run_config=QUIET, asset_selection=[dg.AssetKey("category_mapping")]
    )
    new_version = remap.get_asset_materialization_events()[0].materialization.metadata["mapping_version"].value
    assert new_version != evaluation.metadata["mapping_version"].value
    rerun = run_night(fixed, instance, D, run_config=QUIET, raise_on_error=False)
    assert checks(rerun)[("raw_transactions", "category_coverage")].passed
    assert checks(rerun)[("encoded_features", "category_coverage")].passed
    assert scores_written(fixed, D) > 0
    with warehouse.connect(fixed.warehouse.duckdb_path) as conn:
        versions = conn.execute("SELECT DISTINCT mapping_version FROM risk_scores WHERE partition = ?", [D]).fetchall()
    assert versions == [(new_version,)]


# ----------------------------------------------------------------------------- incident 2
def test_incident_2_concentrated_missingness_breaks_the_ceiling_and_the_pattern(world_copy, instance):
    start = N - dt.timedelta(days=6)
    settings = world_copy(
        world={
            "missingness": {"enabled": True, "date": start.isoformat(), "share": 0.12, "concentrate_in": "segment:smb"}
        }
    )
    reingest(settings, instance, start, N - dt.timedelta(days=1))
    result = run_night(settings, instance, N, run_config=QUIET, raise_on_error=False)
    failed = failed_errors(result)
    assert ("encoded_features", "imputation_ceiling") in failed
    assert ("encoded_features", "missingness_pattern") in failed
    assert "risk_scores" not in materialized(result) and scores_written(settings, N) == 0
    ceiling = checks(result)[("encoded_features", "imputation_ceiling")]
    assert ceiling.metadata["worst_feature"].value == "online_share_30d"
    assert ceiling.metadata["rate.online_share_30d"].value > settings.checks.imputation_ceiling
    assert ceiling.metadata["thresholds"].value["ceiling"] == settings.checks.imputation_ceiling
    pattern = checks(result)[("encoded_features", "missingness_pattern")]
    assert "segment=smb" in pattern.description
    # the ledger holds exactly one row per substituted cell
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        ledger = conn.execute("SELECT customer_id, feature FROM imputation_log WHERE partition = ?", [N]).df()
        nulls = conn.execute(
            "SELECT count(*) FROM serving_features WHERE partition = ? AND online_share_30d IS NULL", [N]
        ).fetchall()[0][0]
        assert_statistics_match_rows(conn, N, settings, tested=True)
    assert not ledger.duplicated().any()
    assert (ledger["feature"] == "online_share_30d").sum() == nulls > 0


def test_incident_2_variant_low_rate_but_concentrated_fails_only_the_pattern(world_copy, instance):
    start = N - dt.timedelta(days=20)
    settings = world_copy(
        world={
            "missingness": {
                "enabled": True,
                "date": start.isoformat(),
                "share": 0.015,
                "concentrate_in": "category:gambling",
            }
        }
    )
    reingest(settings, instance, start, N - dt.timedelta(days=1))
    result = run_night(settings, instance, N, run_config=QUIET, raise_on_error=False)
    ceiling = checks(result)[("encoded_features", "imputation_ceiling")]
    rate = ceiling.metadata["rate.online_share_30d"].value
    assert 0.005 < rate < settings.checks.imputation_ceiling
    assert ceiling.passed
    pattern = checks(result)[("encoded_features", "missingness_pattern")]
    assert not pattern.passed and pattern.severity == dg.AssetCheckSeverity.ERROR
    assert "uses:gambling" in pattern.description
    assert "risk_scores" not in materialized(result)


def test_a_night_failing_only_the_imputation_ceiling_writes_no_scores(world_copy, instance):
    """Missing channels spread at random over everyone: no group stands out, so only the
    ceiling fails — and that alone must keep the night from being scored."""
    start = N - dt.timedelta(days=6)
    settings = world_copy(
        world={"missingness": {"enabled": True, "date": start.isoformat(), "share": 0.08, "concentrate_in": "all"}}
    )
    reingest(settings, instance, start, N - dt.timedelta(days=1))
    result = run_night(settings, instance, N, run_config=QUIET, raise_on_error=False)
    pattern = checks(result)[("encoded_features", "missingness_pattern")]
    assert failed_errors(result) == {("encoded_features", "imputation_ceiling")}, pattern.description
    assert not result.success and scores_written(settings, N) == 0


# ----------------------------------------------------------------------------- incident 3
@pytest.mark.parametrize(
    "skew, tolerance, expect",
    [
        ({"end_shift_hours": -3.0}, {}, "mismatch"),
        ({"window_days_offset": 1}, {}, "mismatch"),
        (
            {"end_shift_hours": -1.0},
            {"parity_atol": 1e6, "parity_rtol": 1.0, "parity_categorical_tolerance": 0.05},
            "bias",
        ),
    ],
    ids=["window end 3 hours early", "off by one day", "inside tolerance but one-sided"],
)
def test_incident_3_serving_skew_fails_parity(world_copy, instance, skew, tolerance, expect):
    settings = world_copy(serving_skew=skew, checks=tolerance)
    result = run_night(settings, instance, N, run_config=QUIET, raise_on_error=False)
    parity = checks(result)[("serving_features", "feature_parity")]
    assert not parity.passed and parity.severity == dg.AssetCheckSeverity.ERROR
    assert ("serving_features", "feature_parity") in failed_errors(result)
    assert "risk_scores" not in materialized(result) and scores_written(settings, N) == 0
    meta = parity.metadata
    if expect == "mismatch":
        assert meta["features_with_mismatches"].value > 0
    else:
        assert meta["features_with_mismatches"].value == 0  # every single difference is inside tolerance
        assert meta["features_biased"].value > 0


def test_a_night_blocked_by_any_check_keeps_its_day_out_of_later_nights_until_re_run(world_copy, instance):
    """A day whose own night was blocked — here by parity, a check on the serving features,
    not on the raw layer — never feeds the next night silently: that night is blocked by the
    look-back naming the day and the check, and scores once the day's night is re-run clean."""
    skewed = world_copy(serving_skew={"end_shift_hours": -3.0})
    clean = world_copy()
    blocked = run_night(skewed, instance, N, run_config=QUIET, raise_on_error=False)
    assert ("serving_features", "feature_parity") in failed_errors(blocked)

    after = N + dt.timedelta(days=1)
    next_night = run_night(clean, instance, after, run_config=QUIET, raise_on_error=False)
    assert failed_errors(next_night) == {("serving_features", "lookback_health")}
    health = checks(next_night)[("serving_features", "lookback_health")]
    assert str(N) in health.description and "feature_parity" in health.description
    assert health.metadata["first_quarantined"].value == str(N)
    assert scores_written(clean, after) == 0

    rerun = run_night(clean, instance, N, run_config=QUIET, raise_on_error=False)  # the build rolled back
    assert rerun.success and failed_errors(rerun) == set()
    again = run_night(clean, instance, after, run_config=QUIET, raise_on_error=False)
    assert again.success and failed_errors(again) == set() and scores_written(clean, after) > 0


def test_unmodified_paths_pass_parity(world_copy, instance):
    settings = world_copy()
    result = run_night(settings, instance, N, run_config=QUIET, raise_on_error=False)
    parity = checks(result)[("serving_features", "feature_parity")]
    assert parity.passed and parity.metadata["compared"].value == min(
        settings.checks.parity_sample, parity.metadata["sample"].value
    )
    assert failed_errors(result) == set()
    assert scores_written(settings, N) > 0
    reconcile = checks(result)[("raw_transactions", "rows_reconcile")]
    assert reconcile.passed and reconcile.partition == N.isoformat()
    assert reconcile.metadata["received"].value == reconcile.metadata["stored_accepted"].value > 0


def test_a_gap_in_the_raw_history_blocks_the_night(world_copy, instance):
    settings = world_copy()
    night = FIRST_NIGHT + dt.timedelta(days=2)  # FIRST_NIGHT and the day after were never loaded
    result = run_night(settings, instance, night, run_config=QUIET, raise_on_error=False)
    gap = checks(result)[("serving_features", "lookback_health")]
    assert not gap.passed and gap.metadata["missing_days"].value == 2
    assert gap.metadata["first_missing"].value == FIRST_NIGHT.isoformat()
    assert scores_written(settings, night) == 0
