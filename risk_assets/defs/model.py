"""Training features (point in time, with labels), the LightGBM model, and nightly scores."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets import model as model_lib
from risk_assets import warehouse
from risk_assets.defs.common import (
    check_result,
    daily_partitions,
    md_table,
    open_warehouse,
    partition_day,
    read_partition,
)
from risk_assets.defs.features import current_mapping_version, sample_parity
from risk_assets.defs.features import deployed_model as load_deployed_model
from risk_assets.features import sql as feature_sql
from risk_assets.features.encoding import fit_encoding
from risk_assets.features.spec import LABEL_HORIZON_DAYS, NONE, SPEC_VERSION, window_bounds
from risk_assets.guards import Outcome
from risk_assets.guards.schemas import scores_schema
from risk_assets.guards.scores import score_sanity
from risk_assets.settings import Settings


def _days(start: dt.date, end: dt.date, step: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(0, (end - start).days + 1, step)]


def training_days(settings: Settings) -> tuple[list[dt.date], list[dt.date]]:
    t = settings.training
    return _days(t.start, t.end, t.asof_step_days), _days(t.validation_start, t.validation_end, t.validation_step_days)


def build_model_assets(settings: Settings) -> list:
    partitions = daily_partitions(settings)
    tz = settings.calendar.timezone

    @dg.asset(
        group_name="training",
        kinds={"duckdb"},
        code_version=SPEC_VERSION,
        deps=["raw_transactions", "customers", "irregularities", "category_mapping"],
        description="Point-in-time features for (active customer, as-of day) pairs over the training "
        "and validation periods, with labels (irregularity within 30 days after as_of).",
    )
    def training_features(duckdb: DuckDBResource) -> dg.MaterializeResult:
        train_days, valid_days = training_days(settings)
        with open_warehouse(duckdb) as conn:
            mapping_version = current_mapping_version(conn)
            frames = []
            for split, days in (("train", train_days), ("validation", valid_days)):
                frame = feature_sql.training_features(conn, days, tz, mapping_version)
                frame["label"] = feature_sql.labels(conn, frame, tz)
                frames.append(frame.assign(split=split))
            frame = pd.concat(frames, ignore_index=True).assign(
                spec_version=SPEC_VERSION, mapping_version=mapping_version
            )
            warehouse.replace_table(conn, {"training_features": frame})
        by_split = frame.groupby("split").agg(rows=("label", "size"), positives=("label", "sum"),
                                              as_of_days=("as_of", "nunique")).reset_index()
        labels_end = settings.training.end + dt.timedelta(days=LABEL_HORIZON_DAYS)
        return dg.MaterializeResult(
            metadata={
                "rows": len(frame),
                "by_split": md_table(by_split),
                "training_as_of": f"{train_days[0]} .. {train_days[-1]} every {settings.training.asof_step_days} days",
                "validation_as_of": f"{valid_days[0]} .. {valid_days[-1]} every {settings.training.validation_step_days} days",
                "training_labels_end": labels_end.isoformat(),
                "spec_version": SPEC_VERSION,
                "mapping_version": mapping_version,
            }
        )

    @dg.asset(
        group_name="training",
        kinds={"lightgbm"},
        code_version="1",
        deps=[training_features],
        description="LightGBM binary classifier, validated on the later held-out period; saved as "
        "LightGBM text plus a JSON card (features, vocabulary, versions, reference profile). "
        "Registered, not deployed: `deployed_model` decides.",
    )
    def risk_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        with open_warehouse(duckdb) as conn:
            frame = conn.execute("SELECT * FROM training_features ORDER BY as_of, customer_id").df()
            if frame.empty:
                raise dg.Failure(description="training_features is empty: materialise it first")
            levels = [r[0] for r in conn.execute("SELECT DISTINCT canonical FROM category_mapping").fetchall()]
            mapping_version = frame.at[0, "mapping_version"]
            train, valid = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
            encoding = fit_encoding(train, extra_levels={"top_category_30d": levels + [NONE]})
            booster, card, ledgers = model_lib.train(
                train, valid, encoding, settings.training, settings.scoring.review_budget,
                SPEC_VERSION, mapping_version,
            )
            folder = model_lib.save(booster, card, settings.scoring.models_dir)
            now = pd.Timestamp.now("UTC").tz_localize(None)
            val = card.metrics["validation"]
            with warehouse.transaction(conn):
                conn.execute("DELETE FROM model_registry WHERE version = ?", [card.version])
                warehouse.insert(conn, "model_registry", pd.DataFrame([{
                    "version": card.version, "path": str(folder.resolve()), "trained_at": now,
                    "spec_version": SPEC_VERSION, "mapping_version": mapping_version,
                    "roc_auc": val["roc_auc"], "pr_auc": val["pr_auc"],
                    "precision_at_budget": val["precision_at_budget"], "deployed_at": None,
                }]))
        importance = pd.DataFrame({"feature": booster.feature_name(),
                                   "gain": booster.feature_importance("gain")}).sort_values("gain", ascending=False)
        context.log.info(f"model {card.version}: validation ROC AUC {val['roc_auc']:.3f}")
        return dg.MaterializeResult(
            metadata={
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
                "top_features": md_table(importance.head(10)),
                "spec_version": SPEC_VERSION,
                "mapping_version": mapping_version,
                **ledgers,
            }
        )

    @dg.asset(
        group_name="training",
        kinds={"lightgbm"},
        code_version=SPEC_VERSION,
        deps=[risk_model],
        description="The deployment gate. Promotes the newest trained model only if its validation "
        "metrics meet the settings, it was trained on the feature spec the code computes now, and "
        "serving and training paths agree on the most recent loaded nights. Serving always uses "
        "the deployed model; a refused model leaves the previous one in place.",
    )
    def deployed_model(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        d = settings.deployment
        with open_warehouse(duckdb) as conn:
            rows = conn.execute("SELECT version, path FROM model_registry ORDER BY trained_at DESC, version LIMIT 1").fetchall()
            if not rows:
                raise dg.Failure(description="no trained model: materialise `risk_model` first")
            version, path = rows[0]
            _, card = model_lib.load(path)
            nights = [r[0] for r in conn.execute(
                "SELECT partition FROM raw_loads ORDER BY partition DESC LIMIT ?", [d.parity_nights]).fetchall()]
            parity_results = []
            for night in nights:
                outcome = sample_parity(conn, settings, night, card.mapping_version)
                parity_results.append({"night": str(night), "passed": outcome.passed, "summary": outcome.summary})
            val = card.metrics["validation"]
            lift = val["precision_at_budget"] / val["base_rate"] if val["base_rate"] else 0.0
            reasons = []
            if val["roc_auc"] < d.min_validation_roc_auc:
                reasons.append(f"validation ROC AUC {val['roc_auc']:.3f} < {d.min_validation_roc_auc}")
            if lift < d.min_precision_lift:
                reasons.append(f"precision lift {lift:.2f} < {d.min_precision_lift}")
            if card.spec_version != SPEC_VERSION:
                reasons.append(f"trained on feature spec {card.spec_version}, the code computes {SPEC_VERSION}: retrain")
            if not nights:
                reasons.append("no loaded night to verify serving/training parity on")
            reasons += [f"parity failed on {r['night']}: {r['summary']}" for r in parity_results if not r["passed"]]
            meta = {
                "candidate_version": version, "validation_roc_auc": val["roc_auc"], "precision_lift": lift,
                "candidate_spec_version": card.spec_version, "code_spec_version": SPEC_VERSION,
                "parity_nights": md_table(pd.DataFrame(parity_results)),
                "min_validation_roc_auc": d.min_validation_roc_auc, "min_precision_lift": d.min_precision_lift,
            }
            if reasons:
                current = conn.execute("SELECT version FROM model_registry WHERE deployed_at IS NOT NULL "
                                       "ORDER BY deployed_at DESC LIMIT 1").fetchall()
                raise dg.Failure(
                    description=f"model {version} refused: " + "; ".join(reasons)
                    + f". Serving keeps {current[0][0] if current else 'no model'}.",
                    metadata=meta | {"still_deployed": current[0][0] if current else "-"},
                )
            conn.execute("UPDATE model_registry SET deployed_at = ? WHERE version = ?",
                         [pd.Timestamp.now("UTC").tz_localize(None), version])
        context.log.info(f"model {version} promoted")
        return dg.MaterializeResult(metadata=meta | {"model_version": version, "decision": "promoted"})

    @dg.asset(
        group_name="scores",
        kinds={"duckdb"},
        code_version=SPEC_VERSION,
        partitions_def=partitions,
        deps=["encoded_features", deployed_model],
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec("scores_schema", asset="risk_scores", blocking=True, partitions_def=partitions,
                              description="One row per encoded customer, score in [0, 1], unique ranks, "
                              "versions present. Evaluated before the write: a failing night writes nothing."),
            dg.AssetCheckSpec("score_sanity", asset="risk_scores", partitions_def=partitions,
                              description="Score distribution vs the validation scores (WARN)."),
        ],
        description="One score per active customer for night P: score, rank, risk band and the "
        "model, feature-spec and mapping versions that produced it. Written only after every "
        "upstream blocking check and its own schema check passed.",
    )
    def risk_scores(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        day = partition_day(context.partition_key)
        with open_warehouse(duckdb) as conn:
            booster, card = load_deployed_model(conn)
            encoded = read_partition(conn, "encoded_features", day)
            if set(encoded["model_version"]) != {card.version}:
                raise dg.Failure(description=f"encoded_features[{day}] was encoded for model "
                                 f"{sorted(set(encoded['model_version']))}, the deployed model is {card.version}")
            scores = model_lib.predict(booster, encoded, card)
            rank, band = model_lib.risk_bands(scores, settings.scoring.review_budget)
            out = pd.DataFrame({
                "customer_id": encoded["customer_id"], "score": scores, "risk_band": band, "rank": rank,
                "model_version": card.version, "spec_version": encoded["spec_version"],
                "mapping_version": encoded["mapping_version"],
            })
            schema = scores_schema(out, len(encoded))
            c = settings.checks
            sanity = score_sanity(scores, card.reference["validation_scores"]["quantiles"], c.score_psi_warn,
                                  c.high_band_max_share)
            yield check_result(schema, settings, check_name="scores_schema")
            yield check_result(sanity, settings, check_name="score_sanity")
            if not schema.passed:
                context.log.error(f"risk_scores[{day}] not written: {schema.summary}")
                return
            warehouse.replace_partition(conn, day, {"risk_scores": out})
        yield dg.MaterializeResult(
            metadata={
                "scored_customers": len(out),
                "high_band": int((band == "high").sum()),
                "mean_score": float(np.mean(scores)),
                "p99_score": float(np.quantile(scores, 0.99)),
                "model_version": card.version,
                "spec_version": SPEC_VERSION,
                "mapping_version": str(out.at[0, "mapping_version"]),
            }
        )

    @dg.asset(
        group_name="scores",
        kinds={"duckdb"},
        code_version="1",
        partitions_def=partitions,
        deps=[risk_scores, "irregularities"],
        output_required=False,
        check_specs=[dg.AssetCheckSpec("realised_vs_validation", asset="realised_performance",
                                       partitions_def=partitions,
                                       description="Realised ROC AUC and precision vs the model's validation "
                                       "figures (WARN).")],
        description="How night P's scores did, once its 30-day label horizon has passed: realised ROC AUC "
        "and precision at the review budget from the irregularities — the loop from validation metrics "
        "to production performance.",
    )
    def realised_performance(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        day = partition_day(context.partition_key)
        bounds = window_bounds(day, tz)
        now = pd.Timestamp.now("UTC").tz_localize(None)
        if bounds["label_end"] > now:
            context.log.info(f"{day}: label horizon ends {bounds['label_end']} (UTC); nothing to measure yet")
            return
        with open_warehouse(duckdb) as conn:
            scores = read_partition(conn, "risk_scores", day)
            hit = {r[0] for r in conn.execute(
                "SELECT DISTINCT customer_id FROM irregularities WHERE event_ts >= ? AND event_ts < ?",
                [bounds["as_of"], bounds["label_end"]]).fetchall()}
            path = conn.execute("SELECT path FROM model_registry WHERE version = ?",
                                [scores.at[0, "model_version"]]).fetchall()[0][0]
        _, card = model_lib.load(path)
        labels = scores["customer_id"].isin(hit).to_numpy()
        realised = model_lib.evaluate(labels, scores["score"].to_numpy(), settings.scoring.review_budget)
        validation = card.metrics["validation"]
        drop = validation["roc_auc"] - realised["roc_auc"]
        limit = settings.checks.realised_auc_drop_warn
        yield check_result(Outcome(
            passed=bool(drop <= limit), severity="WARN",
            summary=f"realised ROC AUC {realised['roc_auc']:.3f} vs validation {validation['roc_auc']:.3f}"
            + (f": {drop:.3f} below, more than {limit}" if drop > limit else ""),
            metadata={"realised_roc_auc": realised["roc_auc"], "validation_roc_auc": validation["roc_auc"],
                      "realised_precision_at_budget": realised["precision_at_budget"],
                      "validation_precision_at_budget": validation["precision_at_budget"],
                      "auc_drop_warn_at": limit, "positives": realised["positives"]},
        ), settings, check_name="realised_vs_validation", model_version=card.version)
        yield dg.MaterializeResult(metadata={
            "realised_roc_auc": realised["roc_auc"], "realised_pr_auc": realised["pr_auc"],
            "realised_precision_at_budget": realised["precision_at_budget"], "base_rate": realised["base_rate"],
            "scored_customers": realised["rows"], "positives": realised["positives"],
            "label_horizon_end": str(bounds["label_end"]), "model_version": card.version,
        })

    return [training_features, risk_model, deployed_model, risk_scores, realised_performance]
