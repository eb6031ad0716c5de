"""Raw -> features -> model -> scores, through Dagster, on the small trained world."""

import datetime as dt

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from risk_assets.core import model as model_lib
from risk_assets.core.features.encoding import MISSING, UNSEEN_CATEGORY
from risk_assets.core.features.spec import FEATURE_NAMES, LABEL_HORIZON_DAYS, SPEC_VERSION, FeatureVocabulary
from risk_assets.core.night import Night
from risk_assets.engines import executions as fsql
from risk_assets.scenario.world import NEW_CATEGORIES, emitted_category_names
from risk_assets.settings import SettingsError
from risk_assets.store import warehouse
from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, run_night, trained_settings

VOCAB = FeatureVocabulary()  # the embedded world's names


def query(settings, sql, params=None) -> pd.DataFrame:
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        return conn.execute(sql, params or []).df()


def materialized(result, key):
    return {
        m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()
    }[key]


def test_validation_period_is_strictly_after_training_labels_end(trained_world):
    settings = trained_settings(trained_world)
    split = query(
        settings,
        "SELECT split, min(as_of) AS first, max(as_of) AS last, count(*) AS n, "
        "sum(label) AS positives FROM training_features GROUP BY split",
    ).set_index("split")
    labels_end = split.at["train", "last"] + pd.Timedelta(days=LABEL_HORIZON_DAYS)
    assert split.at["validation", "first"] > labels_end
    assert split.at["train", "positives"] > 0 and split.at["validation", "positives"] > 0


def test_settings_refuse_a_leaking_validation_period():
    from risk_assets.settings import Settings

    with pytest.raises(SettingsError, match="training: .*validation_start"):
        Settings().with_overrides(training={"end": "2026-06-15", "validation_start": "2026-07-01"})


def test_model_is_lightgbm_text_with_its_card_and_metrics(trained_world):
    settings = trained_settings(trained_world)
    [(path, version, auc)] = query(settings, "SELECT path, version, roc_auc FROM model_registry").itertuples(
        index=False
    )
    files = sorted(p.name for p in (trained_world / "models" / version).iterdir())
    assert files == ["card.json", "model.txt"]
    booster = lgb.Booster(model_file=f"{path}/model.txt")
    assert booster.feature_name() == list(FEATURE_NAMES)
    _, card = model_lib.load(path)
    assert card.spec_version == SPEC_VERSION and card.version == version
    assert card.encoding["vocab"]["top_category_30d"][-1] == "__unseen__"
    assert set(card.metrics["validation"]) >= {"roc_auc", "pr_auc", "precision_at_budget"}
    assert 0.6 < auc <= 1.0
    assert set(card.reference["daily"]["distance"]) == set(FEATURE_NAMES)


def test_a_night_scores_every_active_customer_once_with_versions(world_copy, instance):
    settings = world_copy()
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET)
    assert result.success
    b = Night(FIRST_NIGHT, settings.calendar.timezone).bounds
    active = query(
        settings,
        "SELECT count(DISTINCT customer_id) FROM raw_transactions WHERE event_ts >= ? AND event_ts < ?",
        [b["start_90"], b["as_of"]],
    ).iloc[0, 0]
    scores = query(settings, "SELECT * FROM risk_scores WHERE partition = ?", [FIRST_NIGHT])
    assert len(scores) == active > 1000
    assert scores["customer_id"].is_unique
    assert scores["score"].between(0, 1).all()
    assert scores[["model_version", "spec_version", "mapping_version"]].notna().all().all()
    assert (scores["spec_version"] == SPEC_VERSION).all()
    assert sorted(scores["rank"]) == list(range(1, active + 1))
    assert (scores["risk_band"] == "high").sum() == int(np.ceil(settings.scoring.review_budget * active))
    meta = materialized(result, "risk_scores")
    assert meta["scored_customers"].value == active
    # deterministic: the same inputs give the same scores
    run_night(settings, instance, FIRST_NIGHT, run_config=QUIET)
    again = query(settings, "SELECT * FROM risk_scores WHERE partition = ?", [FIRST_NIGHT])
    pd.testing.assert_frame_equal(scores, again)


def test_both_paths_agree_on_a_sample_of_the_embedded_world(world_copy, instance):
    settings = world_copy()
    tz = settings.calendar.timezone
    days = [FIRST_NIGHT - dt.timedelta(days=d) for d in (30, 17, 3)]  # different weekdays
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        version = conn.execute("SELECT DISTINCT version FROM category_mapping").fetchall()[0][0]
        for day in days:
            serving = fsql.serving_features(conn, Night(day, tz), version, VOCAB)
            sample = serving["customer_id"].sample(300, random_state=1).sort_values().tolist()
            training = fsql.training_features(conn, [Night(day, tz)], version, VOCAB, customers=sample)
            expected = serving[serving["customer_id"].isin(sample)].reset_index(drop=True)
            pd.testing.assert_frame_equal(expected, training.reset_index(drop=True), check_exact=True)


def test_unseen_categories_are_encoded_and_written_to_the_ledger(world_copy, instance):
    settings = world_copy(world={"product_change": {"enabled": True, "date": FIRST_NIGHT.isoformat()}})
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    ledger = query(settings, "SELECT * FROM imputation_log WHERE partition = ?", [FIRST_NIGHT])
    unseen = ledger[ledger["reason"] == UNSEEN_CATEGORY]
    assert len(unseen) > 0
    assert set(unseen["feature"]) == {"top_category_30d"}
    new_names = set(emitted_category_names(True)) - set(emitted_category_names(False))
    assert new_names == {"p2p_payments", "travel_and_lodging", *NEW_CATEGORIES}
    assert set(unseen["original_value"]) <= new_names
    assert set(unseen["original_value"]) & set(NEW_CATEGORIES)
    assert (unseen["substituted_value"] == "__unseen__").all()
    # shares are unknowable with an unseen category in the window: missing -> imputed, logged
    missing = ledger[ledger["reason"] == MISSING]
    assert {"share_cash_30d", "share_transfer_30d", "share_gambling_30d"} <= set(missing["feature"])
    encoded = query(
        settings, "SELECT customer_id, top_category_30d FROM encoded_features WHERE partition = ?", [FIRST_NIGHT]
    )
    unseen_rows = encoded[encoded["top_category_30d"] == "__unseen__"]["customer_id"]
    assert set(unseen_rows) == set(unseen["customer_id"])
    meta = materialized(result, "encoded_features")
    assert meta["substituted_cells"].value == len(ledger)
    per_feature = ledger.groupby("feature").size()
    rows = meta["rows"].value
    for feature in FEATURE_NAMES:
        assert meta[f"substituted_rate.{feature}"].value == pytest.approx(per_feature.get(feature, 0) / rows)
    assert materialized(result, "imputation_log")["ledger_rows"].value == len(ledger)


def test_missing_values_are_imputed_with_the_training_median_and_logged(world_copy, instance):
    settings = world_copy(
        world={
            "missingness": {
                "enabled": True,
                "date": (FIRST_NIGHT - dt.timedelta(days=6)).isoformat(),
                "share": 0.12,
                "concentrate_in": "segment:smb",
            }
        }
    )
    for d in range(6, 0, -1):  # the burst's earlier days re-read with the scenario on (raw layer only:
        # their nights would block on the burst and keep the days out of this night's look-back)
        run_night(settings, instance, FIRST_NIGHT - dt.timedelta(days=d), run_config=QUIET, raw_only=True)
    run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    ledger = query(
        settings, "SELECT * FROM imputation_log WHERE partition = ? AND feature = 'online_share_30d'", [FIRST_NIGHT]
    )
    path = query(settings, "SELECT path FROM model_registry").iloc[0, 0]
    _, card = model_lib.load(path)
    assert len(ledger) > 0
    assert (ledger["reason"] == MISSING).all()
    assert ledger["original_value"].isna().all()
    assert (ledger["substituted_value"].astype(float) == card.encoding["fill"]["online_share_30d"]).all()
    served = query(
        settings,
        "SELECT customer_id FROM serving_features WHERE partition = ? AND online_share_30d IS NULL",
        [FIRST_NIGHT],
    )
    assert set(served["customer_id"]) == set(ledger["customer_id"])
    segments = query(
        settings,
        "SELECT segment FROM customers WHERE customer_id IN (SELECT customer_id FROM imputation_log "
        "WHERE partition = ? AND feature = 'online_share_30d')",
        [FIRST_NIGHT],
    )
    assert (segments["segment"] == "smb").all()


def test_the_raw_checks_are_evaluated_once_a_night_with_the_load(world_copy, instance):
    """The quarantining raw checks judge a night once, with its load: the check step of the
    same run shows the recorded results (said in ``evaluated_in``) and they are what the
    checks evaluate to. A run of the check step alone evaluates them itself."""
    import dagster as dg

    from risk_assets.checks import Step
    from risk_assets.checks.catalogue import CHECKS
    from risk_assets.defs.factory import build_definitions
    from risk_assets.engines import DuckDBEngine
    from risk_assets.scenario.source import EmbeddedSource

    settings = world_copy()
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET)
    assert result.success
    quarantining = [d for d in CHECKS if d.quarantines]
    shown = {
        e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey("raw_transactions")
    }
    recorded = query(
        settings, "SELECT check_name, summary, run_id FROM raw_verdicts WHERE partition = ?", [FIRST_NIGHT]
    ).set_index("check_name")
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        step = Step(
            DuckDBEngine(conn),
            Night(FIRST_NIGHT, settings.calendar.timezone),
            settings,
            EmbeddedSource(settings),
            CHECKS,
        )
        for decl in quarantining:
            verdict, _ = decl.evaluate(step)
            check = shown[decl.name]
            assert check.metadata["evaluated_in"].value == "with the raw load of this run", decl.name
            assert recorded.loc[decl.name, "run_id"] == result.run_id
            assert (
                check.passed == verdict.passed
                and check.description == verdict.summary == recorded.loc[decl.name, "summary"]
            )
            for name, value in verdict.figures.items():
                if value is not None:
                    assert check.metadata[name].value == pytest.approx(value), (decl.name, name)
    # the check step in a run of its own (no load in it): evaluated there, same verdicts
    job = build_definitions(settings).resolve_job_def("nightly_job")
    alone = job.get_subset(
        asset_selection=set(),
        asset_check_selection={dg.AssetCheckKey(dg.AssetKey("raw_transactions"), d.name) for d in quarantining},
    ).execute_in_process(instance=instance, partition_key=FIRST_NIGHT.isoformat(), run_config=QUIET)
    again = {e.check_name: e for e in alone.get_asset_check_evaluations()}
    assert set(again) == {d.name for d in quarantining}
    for name, check in again.items():
        assert check.metadata["evaluated_in"].value == "by this check step"
        assert (check.passed, check.description) == (shown[name].passed, shown[name].description)
