"""Training features (point in time, with labels), the LightGBM model, the deployment
gate, nightly scores and realised performance."""

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets.checks import Refused, Verdict, daily
from risk_assets.checks.catalogue import declared
from risk_assets.checks.model import deployment_gate
from risk_assets.checks.parity import parity, parity_inputs
from risk_assets.core import model as model_lib
from risk_assets.core.features.spec import NONE, SPEC_VERSION, WINDOWS
from risk_assets.core.night import Night
from risk_assets.defs import render
from risk_assets.defs.checks import check_specs
from risk_assets.defs.resources import daily_partitions, night_of, open_engine
from risk_assets.engines import Engine, EngineFactory
from risk_assets.settings import Settings
from risk_assets.store import registry, warehouse


def training_nights(settings: Settings) -> tuple[list[Night], list[Night]]:
    """The as-of nights of the training spine and of the validation period."""
    t = settings.training

    def every(start, end, step) -> list[Night]:
        first = Night.of(start, settings.calendar)
        return [first.shifted(i) for i in range(0, (end - start).days + 1, step)]

    return (
        every(t.start, t.end, t.asof_step_days),
        every(t.validation_start, t.validation_end, t.validation_step_days),
    )


def _now() -> pd.Timestamp:
    return pd.Timestamp.now("UTC").tz_localize(None)


# --------------------------------------------------------------------------- bodies
def build_training_features(engine: Engine, settings: Settings) -> dict:
    """The training table (features and labels) of the training and validation spines,
    computed by the engine's training execution."""
    conn = engine.conn
    train, valid = training_nights(settings)
    mapping_version = registry.current_mapping_version(conn)
    vocabulary = settings.features.vocabulary()
    absent = vocabulary.absent(set(registry.canonical_levels(conn)), registry.channels(conn, mapping_version))
    if absent:
        raise Refused(
            "training refused: these share features name values the training period never holds "
            "(they could only ever be 0): "
            + "; ".join(f"{f}: {', '.join(v)}" for f, v in absent.items())
            + ". Set [features] to the source's own category and channel names."
        )
    t = settings.training
    loaded = warehouse.loaded_range(conn)
    needed = (t.start - dt.timedelta(days=max(WINDOWS)), t.validation_end)
    if loaded is None or needed[0] < loaded[0] or needed[1] > loaded[1]:
        raise Refused(
            f"training refused: the training period ({t.start} .. {t.end}) and validation period "
            f"({t.validation_start} .. {t.validation_end}) read raw days {needed[0]} .. {needed[1]} (with "
            f"their {max(WINDOWS)}-day feature windows); loaded: "
            + (f"{loaded[0]} .. {loaded[1]}" if loaded else "no raw day yet (risk-assets load)")
            + ". Set [training] start, end, validation_start and validation_end within the loaded history, "
            "then run train again."
        )
    with warehouse.transaction(conn):  # a refusal below rolls back: the previous table stays
        warehouse.clear(conn, "training_features")
        for split, nights in (("train", train), ("validation", valid)):
            engine.insert_training(nights, mapping_version, vocabulary, split, SPEC_VERSION)
        by_split = warehouse.training_summary(conn)
        empty = [split for split in ("train", "validation") if split not in set(by_split["split"])]
        if empty:
            raise Refused(
                f"training refused: no {' and no '.join(empty)} rows — no customer of the loaded raw days "
                f"({loaded[0]} .. {loaded[1]}) is on the as-of days of the training period ({t.start} .. {t.end}) "
                f"or the validation period ({t.validation_start} .. {t.validation_end}). Check [training] and "
                "the customers file, then run train again."
            )
    return {
        "rows": int(by_split["rows"].sum()),
        "by_split": by_split,
        "training_as_of": f"{train[0].key} .. {train[-1].key} every {t.asof_step_days} days",
        "validation_as_of": f"{valid[0].key} .. {valid[-1].key} every {t.validation_step_days} days",
        "training_labels_end": str(Night.of(t.end, settings.calendar).label_end.date()),
        "spec_version": SPEC_VERSION,
        "mapping_version": mapping_version,
        **engine.describe(),
    }


def train_model(engine: Engine, settings: Settings) -> dict:
    """Train on the training split, validate on the later one, save (LightGBM text +
    card) and register — not deploy."""
    conn = engine.conn
    levels = registry.canonical_levels(conn)
    mapping_version = warehouse.training_mapping_version(conn)
    booster, card, ledgers = model_lib.train(
        warehouse.training_split(conn, "train"),
        warehouse.training_split(conn, "validation"),
        {"top_category_30d": levels + [NONE]},
        settings.training,
        settings.scoring.review_budget,
        SPEC_VERSION,
        mapping_version,
        settings.features.vocabulary().as_dict(),
    )
    card.reference["daily_drift"] = daily.calibration(engine, settings)
    folder = model_lib.save(booster, card, settings.scoring.models_dir)
    val = card.metrics["validation"]
    registry.register_model(
        conn,
        {
            "version": card.version,
            "path": str(folder.resolve()),
            "trained_at": _now(),
            "spec_version": SPEC_VERSION,
            "mapping_version": mapping_version,
            "roc_auc": val["roc_auc"],
            "pr_auc": val["pr_auc"],
            "precision_at_budget": val["precision_at_budget"],
        },
    )
    importance = pd.DataFrame(
        {"feature": booster.feature_name(), "gain": booster.feature_importance("gain")}
    ).sort_values("gain", ascending=False)
    return {
        "model_version": card.version,
        "path": str(folder),
        "validation_roc_auc": val["roc_auc"],
        "validation_pr_auc": val["pr_auc"],
        "validation_precision_at_budget": val["precision_at_budget"],
        "validation_base_rate": val["base_rate"],
        "review_budget": settings.scoring.review_budget,
        "training_rows": card.metrics["training"]["rows"],
        "validation_rows": val["rows"],
        "training_as_of": " .. ".join(card.periods["training_as_of"]),
        "validation_as_of": " .. ".join(card.periods["validation_as_of"]),
        "top_features": importance.head(10),
        "spec_version": SPEC_VERSION,
        "mapping_version": mapping_version,
        **ledgers,
        "feature_vocabulary": card.feature_vocabulary,
        "constant_features": ", ".join(card.constant_features) or "-",
    }


def gate_newest_model(engine: Engine, settings: Settings) -> tuple[Verdict, str]:
    """Judge the newest trained model with the deployment gate (parity re-checked on the
    most recent loaded nights through the engine's serving execution, as serving would
    build it) and promote it if it passes. Returns the verdict and the version serving
    uses now."""
    conn, d = engine.conn, settings.deployment
    entry = registry.newest_model(conn)
    _, card = model_lib.load(Path(entry.path))
    nights = []
    for day in warehouse.recent_loaded_partitions(conn, d.parity_nights):
        outcome = parity(
            **parity_inputs(engine, Night.of(day, settings.calendar), settings, card.mapping_version),
            **declared("serving_features", "feature_parity").thresholds(settings),
        )
        nights.append({"night": str(day), "passed": outcome.passed, "summary": outcome.summary})
    verdict = deployment_gate(
        entry.version,
        card.metrics["validation"],
        card.spec_version,
        SPEC_VERSION,
        nights,
        d.min_validation_roc_auc,
        d.min_precision_lift,
        candidate_vocabulary=card.feature_vocabulary,
        code_vocabulary=settings.features.vocabulary().as_dict(),
        constant_features=card.constant_features,
    )
    if verdict.passed:
        registry.promote(conn, entry.version, _now())
    serving = registry.deployed_model(conn)
    return verdict, serving.version if serving else "no model"


def score_night(engine: Engine, night: Night, settings: Settings) -> tuple[Verdict, Verdict, pd.DataFrame, dict]:
    """Score the night's encoded customers with the deployed model, on the engine.
    Returns the two pre-write verdicts (schema, sanity), the scores and their metadata;
    writes nothing."""
    conn = engine.conn
    booster, card = registry.load_deployed(conn)
    encoded = warehouse.read_partition(conn, "encoded_features", night.day)
    if set(encoded["model_version"]) != {card.version}:
        raise warehouse.NotMaterialised(
            f"encoded_features[{night.key}] was encoded for model {sorted(set(encoded['model_version']))}, "
            f"the deployed model is {card.version}: re-materialise encoded_features"
        )
    scores = engine.score(encoded, booster, card)
    rank, band = model_lib.risk_bands(scores, settings.scoring.review_budget)
    out = pd.DataFrame(
        {
            "customer_id": encoded["customer_id"],
            "score": scores,
            "risk_band": band,
            "rank": rank,
            "model_version": card.version,
            "spec_version": encoded["spec_version"],
            "mapping_version": encoded["mapping_version"],
        }
    )
    schema = declared("risk_scores", "scores_schema").judge(
        {"frame": out, "expected_customers": len(encoded)}, settings
    )
    sanity = declared("risk_scores", "score_sanity").judge(
        {
            "scores": scores,
            "validation_quantiles": card.reference["validation_scores"]["quantiles"],
            "validation_mean": card.reference["validation_scores"].get("mean"),
        },
        settings,
    )
    meta = {
        "scored_customers": len(out),
        "high_band": int((band == "high").sum()),
        "mean_score": float(np.mean(scores)),
        "p99_score": float(np.quantile(scores, 0.99)),
        "model_version": card.version,
        "spec_version": SPEC_VERSION,
        "mapping_version": str(out.at[0, "mapping_version"]),
        **engine.describe(),
    }
    return schema, sanity, out, meta


def measure_realised(engine: Engine, night: Night, settings: Settings) -> tuple[Verdict, dict]:
    """How the night's scores did against the irregularities of its label horizon (the
    night's scores read through the engine: one row per customer, judged on the driver)."""
    conn = engine.conn
    scores = engine.rows("risk_scores", night.day)[["customer_id", "score", "model_version"]]
    if scores.empty:
        raise warehouse.NotMaterialised(f"risk_scores[{night.key}] is empty: the night was never scored")
    hit = warehouse.irregular_customers(conn, night.as_of, night.label_end)
    version = scores.at[0, "model_version"]
    _, card = model_lib.load(Path(registry.model_path(conn, version)))
    realised = model_lib.evaluate(
        scores["customer_id"].isin(hit).to_numpy(), scores["score"].to_numpy(), settings.scoring.review_budget
    )
    verdict = declared("realised_performance", "realised_vs_validation").judge(
        {"realised": realised, "validation": card.metrics["validation"]}, settings
    )
    meta = {
        "realised_roc_auc": realised["roc_auc"],
        "realised_pr_auc": realised["pr_auc"],
        "realised_precision_at_budget": realised["precision_at_budget"],
        "base_rate": realised["base_rate"],
        "scored_customers": realised["rows"],
        "positives": realised["positives"],
        "label_horizon_end": str(night.label_end),
        "model_version": card.version,
    }
    return verdict, meta


# --------------------------------------------------------------------------- factory
def build_model_assets(settings: Settings) -> list:
    partitions = daily_partitions(settings)

    @dg.asset(
        group_name="training",
        kinds={"duckdb"},
        code_version=SPEC_VERSION,
        deps=["raw_transactions", "customers", "irregularities", "category_mapping"],
        description="Point-in-time features for (active customer, as-of day) pairs over the training "
        "and validation periods, with labels (irregularity within 30 days after as_of).",
    )
    def training_features(duckdb: DuckDBResource, engine: dg.ResourceParam[EngineFactory]) -> dg.MaterializeResult:
        with render.clear_failure(), open_engine(duckdb, engine) as opened:
            return dg.MaterializeResult(metadata=render.metadata(build_training_features(opened, settings)))

    @dg.asset(
        group_name="training",
        kinds={"lightgbm"},
        code_version="1",
        deps=[training_features],
        description="LightGBM binary classifier, validated on the later held-out period; saved as "
        "LightGBM text plus a JSON card (features, vocabulary, versions, reference profile). "
        "Registered, not deployed: `deployed_model` decides.",
    )
    def risk_model(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, engine: dg.ResourceParam[EngineFactory]
    ) -> dg.MaterializeResult:
        with render.clear_failure(), open_engine(duckdb, engine) as opened:
            meta = train_model(opened, settings)
        context.log.info(f"model {meta['model_version']}: validation ROC AUC {meta['validation_roc_auc']:.3f}")
        return dg.MaterializeResult(metadata=render.metadata(meta))

    @dg.asset(
        name="deployed_model",
        group_name="training",
        kinds={"lightgbm"},
        code_version=SPEC_VERSION,
        deps=[risk_model],
        description="The deployment gate. Promotes the newest trained model only if its validation "
        "metrics meet the settings, it was trained on the feature spec the code computes now, and "
        "serving and training paths agree on the most recent loaded nights. Serving always uses "
        "the deployed model; a refused model leaves the previous one in place.",
    )
    def deployed_model_asset(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, engine: dg.ResourceParam[EngineFactory]
    ) -> dg.MaterializeResult:
        with render.clear_failure(), open_engine(duckdb, engine) as opened:
            verdict, serving = gate_newest_model(opened, settings)
        meta = render.check_metadata(verdict, settings)
        if not verdict.passed:
            raise dg.Failure(
                description=f"{verdict.summary}. Serving keeps {serving}.", metadata=meta | {"still_deployed": serving}
            )
        context.log.info(verdict.summary)
        return dg.MaterializeResult(metadata=meta | {"model_version": serving, "decision": "promoted"})

    @dg.asset(
        group_name="scores",
        kinds={"duckdb"},
        code_version=SPEC_VERSION,
        partitions_def=partitions,
        deps=["encoded_features", deployed_model_asset],
        output_required=False,
        check_specs=check_specs("risk_scores", settings),
        description="One score per active customer for night P: score, rank, risk band and the "
        "model, feature-spec and mapping versions that produced it. Written only after every "
        "upstream blocking check and its own schema check passed.",
    )
    def risk_scores(context: dg.AssetExecutionContext, duckdb: DuckDBResource, engine: dg.ResourceParam[EngineFactory]):
        night = night_of(context, settings)
        with render.clear_failure(), open_engine(duckdb, engine) as opened:
            conn = opened.conn
            schema, sanity, out, meta = score_night(opened, night, settings)
            versions = registry.serving_versions(conn) | {"mapping_version": meta.get("mapping_version", "-")}
            yield render.check_result(schema, settings, check_name="scores_schema", versions=versions)
            yield render.check_result(sanity, settings, check_name="score_sanity", versions=versions)
            if not schema.passed:
                context.log.error(f"risk_scores[{night.key}] not written: {schema.summary}")
                return
            warehouse.replace_partition(conn, night.day, {"risk_scores": out})
            opened.published("risk_scores", night.day, len(out))
        yield dg.MaterializeResult(metadata=render.metadata(meta))

    @dg.asset(
        group_name="scores",
        kinds={"duckdb"},
        code_version="1",
        partitions_def=partitions,
        deps=[risk_scores, "irregularities"],
        output_required=False,
        check_specs=check_specs("realised_performance", settings),
        description="How night P's scores did, once its 30-day label horizon has passed: realised ROC AUC "
        "and precision at the review budget from the irregularities — the loop from validation metrics "
        "to production performance.",
    )
    def realised_performance(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, engine: dg.ResourceParam[EngineFactory]
    ):
        night = night_of(context, settings)
        if night.label_end > _now():
            context.log.info(f"{night.key}: label horizon ends {night.label_end} (UTC); nothing to measure yet")
            return
        with render.clear_failure(), open_engine(duckdb, engine) as opened:
            verdict, meta = measure_realised(opened, night, settings)
            versions = registry.serving_versions(opened.conn) | {"model_version": meta["model_version"]}
        yield render.check_result(verdict, settings, check_name="realised_vs_validation", versions=versions)
        yield dg.MaterializeResult(metadata=render.metadata(meta))

    return [training_features, risk_model, deployed_model_asset, risk_scores, realised_performance]
