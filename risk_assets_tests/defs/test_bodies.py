"""Asset bodies, check bodies and the domain decisions, called directly — no Dagster
execution: a warehouse file, the embedded source and plain function calls."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from risk_assets.checks import Step
from risk_assets.checks.catalogue import CHECKS, declared
from risk_assets.checks.model import deployment_gate, realised_vs_validation
from risk_assets.checks.parity import parity_sample
from risk_assets.core.night import Night
from risk_assets.defs.factory import deployment
from risk_assets.defs.raw import load_customers, load_raw_days
from risk_assets.engines import DuckDBEngine
from risk_assets.scenario.settings import scenario_of
from risk_assets.settings import SettingsError
from risk_assets.store import warehouse
from risk_assets_tests.conftest import small_settings

DAY = dt.date(2025, 3, 12)


def evaluate(decl, conn, night, settings):
    """A check's body on the warehouse, without Dagster."""
    return decl.evaluate(Step(DuckDBEngine(conn), night, settings, deployment(settings).source, CHECKS))


@pytest.fixture
def loaded(tmp_path):
    """The raw layer of two weeks, written by the asset bodies themselves."""
    settings = small_settings(tmp_path)
    source = deployment(settings).source
    nights = [Night.of(DAY - dt.timedelta(days=i), settings.calendar) for i in range(13, -1, -1)]
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        meta, verdict, conflicts = load_customers(conn, source, settings)
        assert verdict.passed and conflicts.passed and meta["received"] == scenario_of(settings).world.n_customers
        meta = load_raw_days(DuckDBEngine(conn), source, nights, settings)
        assert meta["partitions"] == 14 and meta["received"] == meta["accepted"] + meta["rejected"] > 0
        yield settings, conn


def test_the_rows_reconcile_body_passes_a_clean_day_and_catches_a_lost_row(loaded):
    settings, conn = loaded
    decl = declared("raw_transactions", "rows_reconcile")
    night = Night.of(DAY, settings.calendar)
    verdict, _ = evaluate(decl, conn, night, settings)
    assert verdict.passed and verdict.figures["unaccounted"] == 0
    conn.execute(
        "DELETE FROM raw_transactions WHERE transaction_id = "
        "(SELECT min(transaction_id) FROM raw_transactions WHERE partition = ?)",
        [DAY],
    )
    verdict, _ = evaluate(decl, conn, night, settings)
    assert not verdict.passed and verdict.severity == "ERROR" and verdict.figures["unaccounted"] == 1


def test_the_lookback_and_volume_bodies_judge_the_loaded_ledger(loaded):
    settings, conn = loaded
    night = Night.of(DAY, settings.calendar)
    lookback, _ = evaluate(declared("serving_features", "lookback_health"), conn, night, settings)
    assert not lookback.passed  # only 14 of the look-back's days were loaded
    assert lookback.figures["missing_days"] == len(night.lookback_partitions) - 14
    assert lookback.figures["quarantined_days"] == 0 and lookback.figures["unjudged_days"] == 0
    volume, _ = evaluate(declared("raw_transactions", "row_volume"), conn, night, settings)
    assert volume.passed and volume.thresholds["min_share_of_expected"] == settings.checks.min_volume_share
    assert volume.figures["comparable_days"] == 1  # a Wednesday a week before: too little to judge a thin day
    scale, _ = evaluate(declared("raw_transactions", "amount_scale"), conn, night, settings)
    assert scale.passed and 0.8 < scale.figures["factor"] < 1.25


def test_thresholds_come_from_the_settings_the_catalogue_names(tmp_path):
    settings = small_settings(tmp_path, checks={"imputation_ceiling": 0.07})
    decl = declared("encoded_features", "imputation_ceiling")
    assert decl.thresholds(settings) == {"ceiling": 0.07}

    def ledger(cells: int) -> pd.DataFrame:
        return pd.DataFrame(
            {"feature": ["online_share_30d"], "reason": "missing_value", "cells": cells, "customers": cells}
        )

    assert decl.judge({"cells": ledger(7), "rows": 100}, settings).passed  # 7% at a 7% ceiling
    over = decl.judge({"cells": ledger(8), "rows": 100}, settings)
    assert not over.passed and over.thresholds == {"ceiling": 0.07}
    assert (
        declared("encoded_features", "imputation_ceiling")
        .judge({"cells": ledger(3), "rows": 100}, small_settings(tmp_path))
        .passed
        is False
    )


VALIDATION = {"roc_auc": 0.80, "precision_at_budget": 0.30, "base_rate": 0.03}
GOOD_PARITY = [{"night": "2025-12-01", "passed": True, "summary": "serving and training paths agree"}]


def gate(**changes):
    args = {
        "candidate": "m1",
        "validation": VALIDATION,
        "candidate_spec_version": "s1",
        "code_spec_version": "s1",
        "parity_nights": GOOD_PARITY,
        "min_validation_roc_auc": 0.7,
        "min_precision_lift": 2.0,
    }
    return deployment_gate(**(args | changes))


def test_the_deployment_gate_promotes_a_good_candidate():
    verdict = gate()
    assert verdict.passed and verdict.summary == "model m1 promoted" and verdict.figures["precision_lift"] == 10.0


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"validation": VALIDATION | {"roc_auc": 0.6}}, "validation ROC AUC 0.600 < 0.7"),
        ({"validation": VALIDATION | {"precision_at_budget": 0.05}}, "precision lift 1.67 < 2.0"),
        ({"candidate_spec_version": "s0"}, "trained on feature spec s0, the code computes s1: retrain"),
        ({"parity_nights": []}, "no loaded night to verify serving/training parity on"),
        (
            {
                "parity_nights": GOOD_PARITY
                + [{"night": "2025-12-02", "passed": False, "summary": "1 feature(s) differ"}]
            },
            "parity failed on 2025-12-02: 1 feature(s) differ",
        ),
    ],
)
def test_the_deployment_gate_refuses_naming_every_reason(changes, reason):
    verdict = gate(**changes)
    assert not verdict.passed and reason in verdict.data["reasons"] and reason in verdict.summary


def test_realised_performance_warns_only_beyond_the_allowed_drop():
    validation = {"roc_auc": 0.80, "precision_at_budget": 0.3}
    realised = {"roc_auc": 0.77, "precision_at_budget": 0.25, "positives": 40}
    assert realised_vs_validation(realised, validation, 0.05).passed
    worse = realised_vs_validation(realised | {"roc_auc": 0.70}, validation, 0.05)
    assert not worse.passed and worse.severity == "WARN" and "0.100 below" in worse.summary


def test_the_parity_sample_is_seeded_per_night_and_never_larger_than_the_night():
    ids = [f"c{i:04d}" for i in range(5000)]
    a = parity_sample(ids, 2000, 11, dt.date(2025, 12, 1))
    assert a == parity_sample(ids, 2000, 11, dt.date(2025, 12, 1)) and len(a) == 2000 and a == sorted(a)
    assert a != parity_sample(ids, 2000, 11, dt.date(2025, 12, 2))
    assert parity_sample(ids[:10], 2000, 11, dt.date(2025, 12, 1)) == ids[:10]
    assert parity_sample([], 2000, 11, dt.date(2025, 12, 1)) == []


# --------------------------------------------------------------------------- Night
def test_a_night_knows_its_bounds_across_dst():
    night = Night(dt.date(2025, 3, 9), "America/New_York")  # DST starts that day
    assert night.window.start == pd.Timestamp("2025-03-09 05:00") and night.window.end == pd.Timestamp(
        "2025-03-10 04:00"
    )
    assert night.as_of == night.window.end
    assert night.bounds["start_7"] == pd.Timestamp("2025-03-03 05:00")  # 7 calendar days, 7x24h - 1h
    assert night.label_end == pd.Timestamp("2025-04-09 04:00")
    assert Night.from_as_of(night.as_of, "America/New_York").day == night.day


def test_a_nights_lookback_starts_at_the_first_partition():
    assert len(Night(dt.date(2025, 12, 1)).lookback_partitions) == 91
    early = Night(dt.date(2025, 1, 10), "UTC", dt.date(2025, 1, 1))
    assert early.lookback_partitions[0] == dt.date(2025, 1, 1) and len(early.lookback_partitions) == 10
    assert early.scan_range(30) == (dt.date(2024, 12, 10), dt.date(2025, 1, 11))


def test_the_label_horizon_schedule_picks_the_night_whose_labels_just_ended():
    from risk_assets.settings import Settings

    night = Night.horizon_passed(dt.date(2026, 9, 10), Settings().calendar)
    assert night.day == dt.date(2026, 8, 10) and night.label_end <= pd.Timestamp("2026-09-10")


# --------------------------------------------------------------------------- scenario apart
def test_a_production_settings_file_cannot_switch_on_a_fault(tmp_path):
    from risk_assets.defs.factory import build_definitions
    from risk_assets.settings import load_settings

    cfg = tmp_path / "prod.toml"
    cfg.write_text('[source]\nkind = "landing"\n[scenario.serving_skew]\nend_shift_hours = -3\n')
    with pytest.raises(SettingsError, match="scenario.serving_skew"):
        build_definitions(load_settings(cfg))
    cfg.write_text('[source]\nkind = "landing"\n[scenario.world.product_change]\nenabled = true\n')
    with pytest.raises(SettingsError, match="scenario.world.product_change"):
        build_definitions(load_settings(cfg))


def test_the_serving_fault_is_the_scenarios_wrapping_of_the_engine_not_a_property_of_any_source():
    from risk_assets.scenario.faults import SkewedServingFactory
    from risk_assets.settings import Settings
    from risk_assets.sources import Source

    assert "serving_skew" not in Source.__annotations__ and "fault" not in " ".join(Source.__dict__)
    skewed = deployment(Settings().with_overrides(scenario={"serving_skew": {"end_shift_hours": -3.0}}))
    assert isinstance(skewed.engine, SkewedServingFactory) and skewed.engine.skew.end_shift_hours == -3.0
    assert not hasattr(skewed.source, "serving_skew")
    assert type(deployment(Settings()).engine).__name__ == "DuckDBEngineFactory"
    landing = deployment(Settings().with_overrides(source={"kind": "landing", "landing_dir": "/tmp/nowhere"}))
    assert type(landing.engine).__name__ == "DuckDBEngineFactory"
