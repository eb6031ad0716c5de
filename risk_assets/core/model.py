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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from risk_assets.core import stats
from risk_assets.core.features.encoding import (
    Encoding,
    category_codes,
    fill_numeric,
    fit_fill,
    fit_vocabulary,
    model_matrix,
)
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


def _numeric_reference(values: np.ndarray, day_index: np.ndarray, n_days: int) -> tuple[dict, list[float], list]:
    """One numeric feature's reference (bins, shares, mean, std), its leave-one-day-out
    distances and its daily means, from its encoded training values."""
    edges = stats.quantile_edges(values, N_BINS)
    bins = np.searchsorted(np.asarray(edges), values, side="left")
    counts = np.zeros((n_days, len(edges) + 1))
    np.add.at(counts, (day_index, bins), 1)
    entry = {
        "edges": edges,
        "shares": (counts.sum(0) / counts.sum()).tolist(),
        "mean": float(values.mean()),
        "std": float(values.std()),
    }
    sums = np.bincount(day_index, weights=values, minlength=n_days)
    return entry, _lodo(counts), (sums / counts.sum(1)).tolist()


def _categorical_reference(codes: np.ndarray, day_index: np.ndarray, n_days: int, levels: list[str]):
    """One categorical feature's reference (levels, shares) and its leave-one-day-out
    distances, from its codes in ``levels``."""
    counts = np.zeros((n_days, len(levels)))
    np.add.at(counts, (day_index, codes), 1)
    return {"levels": levels, "shares": (counts.sum(0) / counts.sum()).tolist()}, _lodo(counts, categorical=True)


def _score_summary(val_scores: np.ndarray) -> dict:
    return {
        "quantiles": np.quantile(val_scores, np.linspace(0, 1, 101)).tolist() if len(val_scores) else [],
        "mean": float(np.mean(val_scores)) if len(val_scores) else float("nan"),
    }


def _codes(values, levels: list[str]) -> np.ndarray:
    index = {level: i for i, level in enumerate(levels)}
    return np.array([index.get(v, len(levels) - 1) for v in values])


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
    training day's mean (for the directional monitor). The row-level form of what
    :func:`train` computes column by column."""
    numeric, categorical = {}, {}
    daily: dict = {"as_of": [str(a) for a in sorted(encoded_train["as_of"].unique())], "distance": {}, "mean": {}}
    day_index = encoded_train["as_of"].rank(method="dense").astype(int).to_numpy() - 1
    n_days = len(daily["as_of"])
    for name in NUMERIC:
        values = encoded_train[name].to_numpy(dtype="float64")
        numeric[name], daily["distance"][name], daily["mean"][name] = _numeric_reference(values, day_index, n_days)
    if encoded_valid is not None and len(encoded_valid):
        for as_of, day in encoded_valid.groupby("as_of", sort=True):
            daily["as_of"].append(f"{as_of} (validation)")
            for name in NUMERIC:
                ref = numeric[name]
                shares = stats.bin_shares(day[name].to_numpy(dtype="float64"), ref["edges"])
                daily["distance"][name].append(stats.psi(ref["shares"], shares))
    for name in CATEGORICAL:
        levels = encoding.vocab[name]
        categorical[name], daily["distance"][name] = _categorical_reference(
            _codes(encoded_train[name], levels), day_index, n_days, levels
        )
        if encoded_valid is not None and len(encoded_valid):
            for _, day in encoded_valid.groupby("as_of", sort=True):
                daily["distance"][name].append(
                    stats.js_distance(categorical[name]["shares"], stats.level_shares(day[name], levels))
                )
    return {
        "numeric": numeric,
        "categorical": categorical,
        "daily": daily,
        "validation_scores": _score_summary(val_scores),
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


# --------------------------------------------------------------------------- bounded training
MATRIX_DTYPE = np.float32
"""The training matrix's type: half of float64's memory; LightGBM bins every feature anyway
(the validation metrics of both were measured equal within 0.002 AUC:
``risk_assets_tests/core/test_training.py``)."""
METRICS_SAMPLE_ROWS = 200_000
"""Training rows the training-set metrics are computed on (a seeded sample; the validation
metrics use every validation row)."""


@dataclass
class Split:
    """One split of the training table, read one column at a time (Arrow), every column in
    the same row order: the warehouse streams it (``warehouse.training_split``), so no frame
    of the whole table — strings and all — is ever built."""

    column: Callable[[str], pa.ChunkedArray | pa.Array]
    rows: int

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> Split:
        """A frame already in memory (tests, small tables)."""
        return cls(lambda name: pa.array(frame[name].to_numpy(), from_pandas=True), len(frame))


def _float(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as a writable float64 array, NULL as NaN."""
    out = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    return out if out.flags.writeable else out.copy()


def _days(split: Split) -> tuple[np.ndarray, list[pd.Timestamp]]:
    as_of = np.asarray(pc.cast(split.column("as_of"), pa.timestamp("us")).to_numpy(zero_copy_only=False))
    days, index = np.unique(as_of, return_inverse=True)
    return index.astype("int64"), [pd.Timestamp(d) for d in days]


@dataclass
class _Matrix:
    values: np.ndarray
    labels: np.ndarray
    day_index: np.ndarray
    days: list[pd.Timestamp]
    substituted: int


def _matrix(
    split: Split, encoding: Encoding | None, extra_levels: dict[str, list[str]], fit: dict
) -> tuple[_Matrix, Encoding]:
    """The split's model matrix (float32, one column at a time into a Fortran-ordered array)
    and the cells substituted. ``encoding`` None: fit it on this split (the training split),
    and fill ``fit`` with the reference profile's per-feature parts and the constant
    features on the way, while each column is at hand in float64."""
    day_index, days = _days(split)
    matrix = np.empty((split.rows, len(FEATURE_NAMES)), dtype=MATRIX_DTYPE, order="F")
    vocab, fill, substituted = {}, {}, 0
    for name in NUMERIC:
        values = _float(split.column(name))
        if encoding is None:
            fill[name] = fit_fill(values)
            present = ~np.isnan(values)  # constant: one value at most (min = max), no sort of the column
            if not present.any() or np.nanmin(values) == np.nanmax(values):
                fit.setdefault("constant", []).append(name)
        substituted += fill_numeric(values, (encoding.fill if encoding else fill)[name])
        matrix[:, FEATURE_NAMES.index(name)] = values
        if encoding is None:
            fit.setdefault("numeric", {})[name] = _numeric_reference(values, day_index, len(days))
        else:  # a validation day against the reference, out of time like a serving night
            ref = fit["numeric"][name][0]
            fit.setdefault("valid", {})[name] = [
                stats.psi(ref["shares"], stats.bin_shares(values[day_index == i], ref["edges"]))
                for i in range(len(days))
            ]
    for name in CATEGORICAL:
        array = split.column(name)
        if encoding is None:
            vocab[name] = fit_vocabulary(pc.unique(array.drop_null()).to_pylist(), extra_levels.get(name, []))
        levels = (encoding.vocab if encoding else vocab)[name]
        codes, missing, unseen = category_codes(array, levels)
        substituted += missing + unseen
        matrix[:, FEATURE_NAMES.index(name)] = codes
        if encoding is None:
            fit.setdefault("categorical", {})[name] = _categorical_reference(codes, day_index, len(days), levels)
        else:
            ref = fit["categorical"][name][0]
            shares = [np.bincount(codes[day_index == i], minlength=len(levels)) for i in range(len(days))]
            fit.setdefault("valid", {})[name] = [
                stats.js_distance(ref["shares"], counts / max(counts.sum(), 1)) for counts in shares
            ]
    labels = np.asarray(split.column("label").to_numpy(zero_copy_only=False), dtype="int64")
    return _Matrix(matrix, labels, day_index, days, substituted), encoding or Encoding(vocab, fill)


def _profile_of(fit: dict, val_scores: np.ndarray) -> dict:
    """:func:`reference_profile` from the per-column parts ``_matrix`` collected."""
    daily: dict = {"as_of": [], "distance": {}, "mean": {}}
    numeric, categorical = {}, {}
    for name in NUMERIC:
        numeric[name], daily["distance"][name], daily["mean"][name] = fit["numeric"][name]
        daily["distance"][name] = daily["distance"][name] + fit["valid"][name]
    for name in CATEGORICAL:
        categorical[name], daily["distance"][name] = fit["categorical"][name]
        daily["distance"][name] = daily["distance"][name] + fit["valid"][name]
    summary = _score_summary(val_scores)
    return {"numeric": numeric, "categorical": categorical, "daily": daily, "validation_scores": summary}


def train(
    train_split: Split,
    valid_split: Split,
    extra_levels: dict[str, list[str]],
    settings: TrainingSettings,
    review_budget: float,
    spec_version: str,
    mapping_version: str,
    feature_vocabulary: dict | None = None,
) -> tuple[lgb.Booster, ModelCard, dict]:
    """Fit on the training split, evaluate on the later validation split — within bounded
    memory: each split becomes a float32 matrix one column at a time (no frame of the
    table, no copy of it), the encoding and the reference profile are fitted on the way,
    LightGBM bins the matrix and the matrix is dropped; the training-set metrics use a seeded
    sample of :data:`METRICS_SAMPLE_ROWS` rows.

    Returns the booster, its card and the encoding ledgers' sizes (cells substituted
    in training and validation — reported, never hidden)."""
    fit: dict = {}
    tr, encoding = _matrix(train_split, None, extra_levels, fit)
    params = lgb_params(settings)
    data = lgb.Dataset(
        tr.values,
        label=tr.labels,
        feature_name=list(FEATURE_NAMES),
        categorical_feature=list(CATEGORICAL),
        free_raw_data=True,
    )
    booster = lgb.train(params, data, num_boost_round=settings.num_boost_round)
    # a frame scored later (serving) maps its categories like the matrix did
    booster.pandas_categorical = [encoding.vocab[name] for name in FEATURE_NAMES if name in CATEGORICAL]
    rng = np.random.default_rng(settings.seed)
    sample = np.sort(rng.choice(train_split.rows, size=min(METRICS_SAMPLE_ROWS, train_split.rows), replace=False))
    train_scores = booster.predict(tr.values[sample])
    train_labels = tr.labels[sample]
    tr_rows, tr_positives, tr_days, tr_substituted = len(tr.labels), int(tr.labels.sum()), tr.days, tr.substituted
    del data, tr  # the training matrix, before the validation one is built
    va, _ = _matrix(valid_split, encoding, extra_levels, fit)
    val_scores = booster.predict(va.values)
    training = evaluate(train_labels, train_scores, review_budget) | {
        "rows": tr_rows,
        "positives": tr_positives,
        "base_rate": tr_positives / max(tr_rows, 1),
        "metrics_sample_rows": int(len(sample)),
    }
    metrics = {
        "validation": evaluate(va.labels, val_scores, review_budget),
        "training": training,
        "review_budget": review_budget,
    }
    text = booster.model_to_string()
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    periods = {
        "training_as_of": [str(tr_days[0]), str(tr_days[-1])],
        "validation_as_of": [str(va.days[0]), str(va.days[-1])],
    }
    reference = _profile_of(fit, val_scores)
    reference["daily"]["as_of"] = [str(d) for d in tr_days] + [f"{d} (validation)" for d in va.days]
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
        reference=reference,
        feature_vocabulary=feature_vocabulary or {},
        constant_features=fit.get("constant", []),
    )
    ledgers = {"training_cells_substituted": tr_substituted, "validation_cells_substituted": va.substituted}
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
