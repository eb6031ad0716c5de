"""Training, evaluation, persistence and the reference profile of the LightGBM model.

Pure Python (no Dagster). A model is a folder ``<models_dir>/<version>/`` holding
``model.txt`` (LightGBM's text format — never pickle) and ``card.json`` (feature list,
vocabulary, imputation values, spec and mapping versions, metrics, periods and the
reference profile the drift checks compare against). The version is a fingerprint of
the model text, so the same data and settings give the same version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from risk_assets.core import stats
from risk_assets.core.features.encoding import Encoding, encode, model_matrix
from risk_assets.core.features.spec import CATEGORICAL, FEATURE_NAMES, NUMERIC
from risk_assets.settings import TrainingSettings

N_BINS = 10


@dataclass
class ModelCard:
    version: str
    spec_version: str
    mapping_version: str
    features: list[str]
    categorical: list[str]
    encoding: dict
    params: dict
    metrics: dict
    periods: dict
    reference: dict = field(default_factory=dict)
    feature_vocabulary: dict = field(default_factory=dict)
    """The values each share feature counted in training (``FeatureVocabulary.as_dict``)."""
    constant_features: list = field(default_factory=list)
    """Numeric features with one value over the whole training period: they carry no signal."""

    @property
    def enc(self) -> Encoding:
        return Encoding.from_json(self.encoding)


def lgb_params(settings: TrainingSettings) -> dict:
    return {
        "objective": "binary",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": settings.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }


def evaluate(labels: np.ndarray, scores: np.ndarray, review_budget: float) -> dict:
    return {
        "roc_auc": stats.roc_auc(labels, scores),
        "pr_auc": stats.average_precision(labels, scores),
        "precision_at_budget": stats.precision_at(labels, scores, review_budget),
        "base_rate": float(np.mean(labels)),
        "rows": int(len(labels)),
        "positives": int(np.sum(labels)),
    }


def reference_profile(
    encoded_train: pd.DataFrame,
    encoding: Encoding,
    val_scores: np.ndarray,
    encoded_valid: pd.DataFrame | None = None,
) -> dict:
    """Per-feature reference bins/shares, per-day variability and validation scores.

    ``daily.distance`` holds each feature's PSI (numeric) or JS distance (categorical)
    for every training as-of day against the reference built *without* that day
    (leave-one-day-out), followed by every validation as-of day against the full
    reference (out of time, like a serving night). That is the noise a clean night
    shows, and what the drift thresholds are calibrated on. ``daily.mean`` holds each
    training day's mean (for the directional monitor)."""
    numeric, categorical = {}, {}
    daily: dict = {"as_of": [str(a) for a in sorted(encoded_train["as_of"].unique())], "distance": {}, "mean": {}}
    day_index = encoded_train["as_of"].rank(method="dense").astype(int).to_numpy() - 1
    n_days = len(daily["as_of"])
    for name in NUMERIC:
        values = encoded_train[name].to_numpy(dtype="float64")
        edges = stats.quantile_edges(values, N_BINS)
        bins = np.searchsorted(np.asarray(edges), values, side="left")
        counts = np.zeros((n_days, len(edges) + 1))
        np.add.at(counts, (day_index, bins), 1)
        numeric[name] = {
            "edges": edges,
            "shares": (counts.sum(0) / counts.sum()).tolist(),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
        daily["distance"][name] = _lodo(counts)
        sums = np.bincount(day_index, weights=values, minlength=n_days)
        daily["mean"][name] = (sums / counts.sum(1)).tolist()
    if encoded_valid is not None and len(encoded_valid):
        for as_of, day in encoded_valid.groupby("as_of", sort=True):
            daily["as_of"].append(f"{as_of} (validation)")
            for name in NUMERIC:
                ref = numeric[name]
                shares = stats.bin_shares(day[name].to_numpy(dtype="float64"), ref["edges"])
                daily["distance"][name].append(stats.psi(ref["shares"], shares))
    for name in CATEGORICAL:
        levels = encoding.vocab[name]
        index = {level: i for i, level in enumerate(levels)}
        codes = np.array([index.get(v, len(levels) - 1) for v in encoded_train[name]])
        counts = np.zeros((n_days, len(levels)))
        np.add.at(counts, (day_index, codes), 1)
        categorical[name] = {"levels": levels, "shares": (counts.sum(0) / counts.sum()).tolist()}
        daily["distance"][name] = _lodo(counts, categorical=True)
        if encoded_valid is not None and len(encoded_valid):
            for _, day in encoded_valid.groupby("as_of", sort=True):
                daily["distance"][name].append(
                    stats.js_distance(categorical[name]["shares"], stats.level_shares(day[name], levels))
                )
    return {
        "numeric": numeric,
        "categorical": categorical,
        "daily": daily,
        "validation_scores": {
            "quantiles": np.quantile(val_scores, np.linspace(0, 1, 101)).tolist() if len(val_scores) else [],
            "mean": float(np.mean(val_scores)) if len(val_scores) else float("nan"),
        },
    }


def _lodo(counts: np.ndarray, categorical: bool = False) -> list[float]:
    """Distance of each day's shares to the shares of all other days."""
    total = counts.sum(0)
    out = []
    for day in counts:
        rest = total - day
        ref, cur = rest / max(rest.sum(), 1), day / max(day.sum(), 1)
        out.append(stats.js_distance(ref, cur) if categorical else stats.psi(ref, cur))
    return out


def train(
    train_frame: pd.DataFrame,
    valid_frame: pd.DataFrame,
    encoding: Encoding,
    settings: TrainingSettings,
    review_budget: float,
    spec_version: str,
    mapping_version: str,
    feature_vocabulary: dict | None = None,
) -> tuple[lgb.Booster, ModelCard, dict]:
    """Fit on the training frame, evaluate on the later validation frame.

    Returns the booster, its card and the encoding ledgers' sizes (cells substituted
    in training and validation — reported, never hidden)."""
    enc_train, ledger_train = encode(train_frame, encoding)
    enc_valid, ledger_valid = encode(valid_frame, encoding)
    params = lgb_params(settings)
    data = lgb.Dataset(
        model_matrix(enc_train, encoding),
        label=train_frame["label"].to_numpy(),
        categorical_feature=list(CATEGORICAL),
        free_raw_data=True,
    )
    booster = lgb.train(params, data, num_boost_round=settings.num_boost_round)
    val_scores = booster.predict(model_matrix(enc_valid, encoding))
    train_scores = booster.predict(model_matrix(enc_train, encoding))
    metrics = {
        "validation": evaluate(valid_frame["label"].to_numpy(), val_scores, review_budget),
        "training": evaluate(train_frame["label"].to_numpy(), train_scores, review_budget),
        "review_budget": review_budget,
    }
    text = booster.model_to_string()
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    periods = {
        "training_as_of": [str(train_frame["as_of"].min()), str(train_frame["as_of"].max())],
        "validation_as_of": [str(valid_frame["as_of"].min()), str(valid_frame["as_of"].max())],
    }
    card = ModelCard(
        version=version,
        spec_version=spec_version,
        mapping_version=mapping_version,
        features=list(FEATURE_NAMES),
        categorical=list(CATEGORICAL),
        encoding=encoding.to_json(),
        params=params | {"num_boost_round": settings.num_boost_round},
        metrics=metrics,
        periods=periods,
        reference=reference_profile(enc_train, encoding, val_scores, enc_valid),
        feature_vocabulary=feature_vocabulary or {},
        constant_features=constant_features(train_frame),
    )
    ledgers = {"training_cells_substituted": len(ledger_train), "validation_cells_substituted": len(ledger_valid)}
    return booster, card, ledgers


def constant_features(frame: pd.DataFrame) -> list[str]:
    """Numeric features that take a single value (NULLs aside) in ``frame``."""
    return [f for f in NUMERIC if frame[f].nunique(dropna=True) <= 1]


def save(booster: lgb.Booster, card: ModelCard, models_dir: Path) -> Path:
    folder = Path(models_dir) / card.version
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(folder / "model.txt"))
    (folder / "card.json").write_text(json.dumps(asdict(card), indent=1, default=float))
    return folder


def load(folder: Path) -> tuple[lgb.Booster, ModelCard]:
    folder = Path(folder)
    booster = lgb.Booster(model_file=str(folder / "model.txt"))
    card = ModelCard(**json.loads((folder / "card.json").read_text()))
    return booster, card


def predict(booster: lgb.Booster, encoded: pd.DataFrame, card: ModelCard) -> np.ndarray:
    return booster.predict(model_matrix(encoded, card.enc))


def risk_bands(scores: np.ndarray, review_budget: float) -> tuple[np.ndarray, np.ndarray]:
    """Rank 1 = highest score (ties broken by position, i.e. customer_id order).
    Band ``high``: the review budget (top share); ``medium``: the next 3× budget; else ``low``."""
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(scores.size, dtype="int64")
    rank[order] = np.arange(1, scores.size + 1)
    k = max(1, int(np.ceil(review_budget * scores.size))) if scores.size else 0
    band = np.where(rank <= k, "high", np.where(rank <= 4 * k, "medium", "low")).astype(object)
    return rank, band
