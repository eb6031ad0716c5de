"""Training features (point in time, with labels), the LightGBM model, the deployment
gate, nightly scores and realised performance."""


import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets.core import model as model_lib
from risk_assets.defs import render
from risk_assets.checks.catalogue import declared
from risk_assets.defs.checks import check_specs
from risk_assets.checks.loaders import daily_aggregates, deployed_model, parity_inputs
from risk_assets.defs.resources import SparkConnectResource, daily_partitions, night_of, open_warehouse
from risk_assets.core.features.encoding import fit_encoding
from risk_assets.core.features.spec import NONE, SPEC_VERSION
from risk_assets.checks import Refused, Verdict
from risk_assets.checks.daily import calibrate, daily_statistics
from risk_assets.checks.model import deployment_gate
from risk_assets.checks.parity import parity
from risk_assets.core.night import Night
from risk_assets.engines import executions as feature_sql
from risk_assets.store import registry
from risk_assets.store import warehouse
from risk_assets.settings import Settings
from risk_assets.sources import make_source


def training_nights(settings: Settings) -> tuple[list[Night], list[Night]]:
    """The as-of nights of the training spine and of the validation period."""
    t = settings.training

    def every(start, end, step) -> list[Night]:
        first = Night.of(start, settings.calendar)
        return [first.shifted(i) for i in range(0, (end - start).days + 1, step)]

    return (every(t.start, t.end, t.asof_step_days),
            every(t.validation_start, t.validation_end, t.validation_step_days))


def _now() -> pd.Timestamp:
    return pd.Timestamp.now("UTC").tz_localize(None)


# --------------------------------------------------------------------------- bodies
def build_training_features(conn: duckdb.DuckDBPyConnection, settings: Settings, engine=None) -> dict:
    """The training table (features and labels) of the training and validation spines;
    the features computed inside the warehouse, or by ``engine`` (the Spark engine)."""
    train, valid = training_nights(settings)
    mapping_version = registry.current_mapping_version(conn)
    vocabulary = settings.features.vocabulary()
    absent = vocabulary.absent(set(registry.canonical_levels(conn)), registry.channels(conn, mapping_version))
    if absent:
        raise Refused("training refused: these share features name values the training period never holds "
                      "(they could only ever be 0): " + "; ".join(f"{f}: {', '.join(v)}" for f, v in absent.items())
                      + ". Set [features] to the source's own category and channel names.")
    with warehouse.transaction(conn):
        conn.execute(f"DELETE FROM {warehouse.table('training_features')}")
        if engine is not None:
            engine.register_lake_views(conn)
        for split, nights in (("train", train), ("validation", valid)):
            compute = None if engine is None else (
                lambda chunk: engine.training_chunk(chunk, mapping_version, vocabulary))
            feature_sql.insert_training_features(conn, nights, mapping_version, vocabulary, split, SPEC_VERSION,
                                                 compute=compute)
    by_split = warehouse.training_summary(conn)
    t = settings.training
    return {
        "rows": int(by_split["rows"].sum()),
        "by_split": by_split,
        "training_as_of": f"{train[0].key} .. {train[-1].key} every {t.asof_step_days} days",
        "validation_as_of": f"{valid[0].key} .. {valid[-1].key} every {t.validation_step_days} days",
        "training_labels_end": str(Night.of(t.end, settings.calendar).label_end.date()),
        "spec_version": SPEC_VERSION,
        "mapping_version": mapping_version,
        "engine": settings.engine.kind,
    }


def train_model(conn: duckdb.DuckDBPyConnection, settings: Settings) -> dict:
    """Train on the training split, validate on the later one, save (LightGBM text +
    card) and register — not deploy."""
    frame = warehouse.training_frame(conn)
    levels = registry.canonical_levels(conn)
    mapping_version = frame.at[0, "mapping_version"]
    train, valid = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    encoding = fit_encoding(train, extra_levels={"top_category_30d": levels + [NONE]})
    booster, card, ledgers = model_lib.train(train, valid, encoding, settings.training,
                                             settings.scoring.review_budget, SPEC_VERSION, mapping_version,
                                             settings.features.vocabulary().as_dict())
    card.reference["daily_drift"] = calibrate_daily_drift(conn, settings)
    folder = model_lib.save(booster, card, settings.scoring.models_dir)
    val = card.metrics["validation"]
    registry.register_model(conn, {
        "version": card.version, "path": str(folder.resolve()), "trained_at": _now(), "spec_version": SPEC_VERSION,
        "mapping_version": mapping_version, "roc_auc": val["roc_auc"], "pr_auc": val["pr_auc"],
        "precision_at_budget": val["precision_at_budget"]})
    importance = pd.DataFrame({"feature": booster.feature_name(),
                               "gain": booster.feature_importance("gain")}).sort_values("gain", ascending=False)
    return {
        "model_version": card.version, "path": str(folder),
        "validation_roc_auc": val["roc_auc"], "validation_pr_auc": val["pr_auc"],
        "validation_precision_at_budget": val["precision_at_budget"], "validation_base_rate": val["base_rate"],
        "review_budget": settings.scoring.review_budget, "training_rows": card.metrics["training"]["rows"],
        "validation_rows": val["rows"], "training_as_of": " .. ".join(card.periods["training_as_of"]),
        "validation_as_of": " .. ".join(card.periods["validation_as_of"]), "top_features": importance.head(10),
        "spec_version": SPEC_VERSION, "mapping_version": mapping_version, **ledgers,
        "feature_vocabulary": card.feature_vocabulary,
        "constant_features": ", ".join(card.constant_features) or "-",
    }


def calibrate_daily_drift(conn: duckdb.DuckDBPyConnection, settings: Settings) -> dict:
    """The daily drift monitor's levels and thresholds, from the raw days up to the end of
    validation (stored in the model card; see :mod:`risk_assets.checks.daily`)."""
    c, last = settings.checks, settings.training.validation_end
    first = last - dt.timedelta(days=c.daily_calibration_days - 1)
    days = daily_statistics(daily_aggregates(conn, first, last, settings), c.coverage_max_unmapped_share)
    return calibrate(days, c.daily_k, c.daily_warn_arl, c.daily_error_arl)


def gate_newest_model(conn: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[Verdict, str]:
    """Judge the newest trained model with the deployment gate (parity re-checked on the
    most recent loaded nights through the serving path as the source builds it) and
    promote it if it passes. Returns the verdict and the version serving uses now."""
    d = settings.deployment
    entry = registry.newest_model(conn)
    _, card = model_lib.load(Path(entry.path))
    skew = make_source(settings).serving_skew
    nights = []
    for day in warehouse.recent_loaded_partitions(conn, d.parity_nights):
        outcome = parity(**parity_inputs(conn, Night.of(day, settings.calendar), settings, card.mapping_version,
                                         skew=skew),
                         **declared("serving_features", "feature_parity").thresholds(settings))
        nights.append({"night": str(day), "passed": outcome.passed, "summary": outcome.summary})
    verdict = deployment_gate(entry.version, card.metrics["validation"], card.spec_version, SPEC_VERSION, nights,
                              d.min_validation_roc_auc, d.min_precision_lift,
                              candidate_vocabulary=card.feature_vocabulary,
                              code_vocabulary=settings.features.vocabulary().as_dict(),
                              constant_features=card.constant_features)
    if verdict.passed:
        registry.promote(conn, entry.version, _now())
    serving = registry.deployed_model(conn)
    return verdict, serving.version if serving else "no model"


def score_night(conn: duckdb.DuckDBPyConnection, night: Night, settings: Settings, engine=None
                ) -> tuple[Verdict, Verdict, pd.DataFrame, dict]:
    """Score the night's encoded customers with the deployed model (here, or on the
    executors of ``engine``, the Spark engine). Returns the two pre-write verdicts
    (schema, sanity), the scores and their metadata; writes nothing."""
    booster, card = deployed_model(conn)
    encoded = warehouse.read_partition(conn, "encoded_features", night.day)
    if set(encoded["model_version"]) != {card.version}:
        raise warehouse.NotMaterialised(
            f"encoded_features[{night.key}] was encoded for model {sorted(set(encoded['model_version']))}, "
            f"the deployed model is {card.version}: re-materialise encoded_features")
    if engine is None:
        scores = model_lib.predict(booster, encoded, card)
    else:
        scores = engine.score(encoded, booster.model_to_string(), card.enc)
    rank, band = model_lib.risk_bands(scores, settings.scoring.review_budget)
    out = pd.DataFrame({
        "customer_id": encoded["customer_id"], "score": scores, "risk_band": band, "rank": rank,
        "model_version": card.version, "spec_version": encoded["spec_version"],
        "mapping_version": encoded["mapping_version"],
    })
    schema = declared("risk_scores", "scores_schema").judge({"frame": out, "expected_customers": len(encoded)},
                                                            settings)
    sanity = declared("risk_scores", "score_sanity").judge(
        {"scores": scores, "validation_quantiles": card.reference["validation_scores"]["quantiles"],
         "validation_mean": card.reference["validation_scores"].get("mean")}, settings)
    meta = {"scored_customers": len(out), "high_band": int((band == "high").sum()),
            "mean_score": float(np.mean(scores)), "p99_score": float(np.quantile(scores, 0.99)),
            "model_version": card.version, "spec_version": SPEC_VERSION,
            "mapping_version": str(out.at[0, "mapping_version"]), "engine": settings.engine.kind}
    return schema, sanity, out, meta


def measure_realised(conn: duckdb.DuckDBPyConnection, night: Night, settings: Settings) -> tuple[Verdict, dict]:
    """How the night's scores did against the irregularities of its label horizon."""
    scores = warehouse.scores(conn, night.day)
    if scores.empty:
        raise warehouse.NotMaterialised(f"risk_scores[{night.key}] is empty: the night was never scored")
    hit = warehouse.irregular_customers(conn, night.as_of, night.label_end)
    version = scores.at[0, "model_version"]
    _, card = model_lib.load(Path(registry.model_path(conn, version)))
    realised = model_lib.evaluate(scores["customer_id"].isin(hit).to_numpy(), scores["score"].to_numpy(),
                                  settings.scoring.review_budget)
    verdict = declared("realised_performance", "realised_vs_validation").judge(
        {"realised": realised, "validation": card.metrics["validation"]}, settings)
    meta = {"realised_roc_auc": realised["roc_auc"], "realised_pr_auc": realised["pr_auc"],
            "realised_precision_at_budget": realised["precision_at_budget"], "base_rate": realised["base_rate"],
            "scored_customers": realised["rows"], "positives": realised["positives"],
            "label_horizon_end": str(night.label_end), "model_version": card.version}
    return verdict, meta


# --------------------------------------------------------------------------- factory
def build_model_assets(settings: Settings) -> list:
    partitions = daily_partitions(settings)

    @dg.asset(group_name="training", kinds={"duckdb"}, code_version=SPEC_VERSION,
              deps=["raw_transactions", "customers", "irregularities", "category_mapping"],
              description="Point-in-time features for (active customer, as-of day) pairs over the training "
              "and validation periods, with labels (irregularity within 30 days after as_of).")
    def training_features(duckdb: DuckDBResource, spark: SparkConnectResource) -> dg.MaterializeResult:
        engine = spark.engine() if settings.engine.kind == "spark" else None
        with render.clear_failure(), open_warehouse(duckdb) as conn:
            return dg.MaterializeResult(metadata=render.metadata(build_training_features(conn, settings, engine)))

    @dg.asset(group_name="training", kinds={"lightgbm"}, code_version="1", deps=[training_features],
              description="LightGBM binary classifier, validated on the later held-out period; saved as "
              "LightGBM text plus a JSON card (features, vocabulary, versions, reference profile). "
              "Registered, not deployed: `deployed_model` decides.")
    def risk_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        with render.clear_failure(), open_warehouse(duckdb) as conn:
            meta = train_model(conn, settings)
        context.log.info(f"model {meta['model_version']}: validation ROC AUC {meta['validation_roc_auc']:.3f}")
        return dg.MaterializeResult(metadata=render.metadata(meta))

    @dg.asset(name="deployed_model", group_name="training", kinds={"lightgbm"}, code_version=SPEC_VERSION,
              deps=[risk_model], description="The deployment gate. Promotes the newest trained model only if its validation "
              "metrics meet the settings, it was trained on the feature spec the code computes now, and "
              "serving and training paths agree on the most recent loaded nights. Serving always uses "
              "the deployed model; a refused model leaves the previous one in place.")
    def deployed_model_asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        with render.clear_failure(), open_warehouse(duckdb) as conn:
            verdict, serving = gate_newest_model(conn, settings)
        meta = render.check_metadata(verdict, settings)
        if not verdict.passed:
            raise dg.Failure(description=f"{verdict.summary}. Serving keeps {serving}.",
                             metadata=meta | {"still_deployed": serving})
        context.log.info(verdict.summary)
        return dg.MaterializeResult(metadata=meta | {"model_version": serving, "decision": "promoted"})

    @dg.asset(group_name="scores", kinds={"duckdb"}, code_version=SPEC_VERSION, partitions_def=partitions,
              deps=["encoded_features", deployed_model_asset], output_required=False,
              check_specs=check_specs("risk_scores", settings),
              description="One score per active customer for night P: score, rank, risk band and the "
              "model, feature-spec and mapping versions that produced it. Written only after every "
              "upstream blocking check and its own schema check passed.")
    def risk_scores(context: dg.AssetExecutionContext, duckdb: DuckDBResource, spark: SparkConnectResource):
        night = night_of(context, settings)
        engine = spark.engine() if settings.engine.kind == "spark" else None
        with render.clear_failure(), open_warehouse(duckdb) as conn:
            schema, sanity, out, meta = score_night(conn, night, settings, engine)
            versions = registry.serving_versions(conn) | {"mapping_version": meta.get("mapping_version", "-")}
            yield render.check_result(schema, settings, check_name="scores_schema", versions=versions)
            yield render.check_result(sanity, settings, check_name="score_sanity", versions=versions)
            if not schema.passed:
                context.log.error(f"risk_scores[{night.key}] not written: {schema.summary}")
                return
            warehouse.replace_partition(conn, night.day, {"risk_scores": out})
        yield dg.MaterializeResult(metadata=render.metadata(meta))

    @dg.asset(group_name="scores", kinds={"duckdb"}, code_version="1", partitions_def=partitions,
              deps=[risk_scores, "irregularities"], output_required=False,
              check_specs=check_specs("realised_performance", settings),
              description="How night P's scores did, once its 30-day label horizon has passed: realised ROC AUC "
              "and precision at the review budget from the irregularities — the loop from validation metrics "
              "to production performance.")
    def realised_performance(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        night = night_of(context, settings)
        if night.label_end > _now():
            context.log.info(f"{night.key}: label horizon ends {night.label_end} (UTC); nothing to measure yet")
            return
        with render.clear_failure(), open_warehouse(duckdb) as conn:
            verdict, meta = measure_realised(conn, night, settings)
            versions = registry.serving_versions(conn) | {"model_version": meta["model_version"]}
        yield render.check_result(verdict, settings, check_name="realised_vs_validation", versions=versions)
        yield dg.MaterializeResult(metadata=render.metadata(meta))

    return [training_features, risk_model, deployed_model_asset, risk_scores, realised_performance]
