"""Encoding and imputation, with a ledger row for every cell that was not used as is.

This is the only place in the project that substitutes a value. Categorical features
become ``pd.Categorical(values, categories=vocab)`` with an explicit ``__unseen__`` level
(the vocabulary is fixed at training time and stored with the model); numeric NULLs
become the training median. Each substitution yields one ledger row: customer, feature,
reason, original value, substituted value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from risk_assets.core.features.spec import CATEGORICAL, FEATURE_NAMES, NUMERIC, UNSEEN

LEDGER_COLUMNS = ["customer_id", "feature", "reason", "original_value", "substituted_value"]
MISSING = "missing_value"
UNSEEN_CATEGORY = "unseen_category"


@dataclass(frozen=True)
class Encoding:
    vocab: dict[str, list[str]]
    fill: dict[str, float]

    def to_json(self) -> dict:
        return {"vocab": self.vocab, "fill": self.fill}

    @classmethod
    def from_json(cls, data: dict) -> Encoding:
        return cls(vocab={k: list(v) for k, v in data["vocab"].items()}, fill=dict(data["fill"]))


def fit_vocabulary(levels: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """A categorical feature's vocabulary: the training levels (+ known extra levels), sorted,
    then ``__unseen__``."""
    found = {str(v) for v in levels} | set(extra)
    found.discard(UNSEEN)
    return sorted(found) + [UNSEEN]


def fit_fill(values: np.ndarray) -> float:
    """A numeric feature's fill value: the training median of its non-missing values (0.0
    when it has none)."""
    values = np.asarray(values, dtype="float64")
    present = values[~np.isnan(values)]
    median = float(np.median(present)) if present.size else float("nan")
    return median if np.isfinite(median) else 0.0


def fit_encoding(train: pd.DataFrame, extra_levels: dict[str, list[str]] | None = None) -> Encoding:
    """Vocabulary = training levels (+ known extra levels) + ``__unseen__``; fill = median."""
    vocab = {
        name: fit_vocabulary(train[name].dropna().astype(str), (extra_levels or {}).get(name, []))
        for name in CATEGORICAL
    }
    fill = {name: fit_fill(train[name].astype("float64").to_numpy()) for name in NUMERIC}
    return Encoding(vocab, fill)


def fill_numeric(values: np.ndarray, fill: float) -> int:
    """Column-wise :func:`encode` of a numeric feature, in place (float64, NaN = missing):
    returns the cells substituted (the ledger's count for that feature)."""
    missing = np.isnan(values)
    values[missing] = fill
    return int(missing.sum())


def category_codes(values: pa.Array | pa.ChunkedArray, vocab: list[str]) -> tuple[np.ndarray, int, int]:
    """Column-wise :func:`encode` + :func:`model_matrix` of a categorical feature: each
    value's index in ``vocab`` (a missing or unknown value: ``__unseen__``, the last), and
    the cells substituted as missing and as unseen (the ledger's counts)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    encoded = pc.dictionary_encode(array.cast(pa.string()))
    unseen = len(vocab) - 1
    index = {level: i for i, level in enumerate(vocab[:-1])}
    lookup = np.array([index.get(v, unseen) for v in encoded.dictionary.to_pylist()] + [unseen], dtype="int32")
    positions = encoded.indices.fill_null(len(lookup) - 1).to_numpy(zero_copy_only=False)
    codes = lookup[positions]
    missing = int(array.null_count)
    return codes, missing, int((codes == unseen).sum()) - missing


def encode(frame: pd.DataFrame, encoding: Encoding) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (encoded frame, ledger). The encoded frame has the same rows and keys."""
    out = frame.copy()
    ledgers = []
    for name in NUMERIC:
        values = out[name].astype("float64")
        missing = values.isna().to_numpy()
        if missing.any():
            ledgers.append(
                pd.DataFrame(
                    {
                        "customer_id": out.loc[missing, "customer_id"].to_numpy(),
                        "feature": name,
                        "reason": MISSING,
                        "original_value": None,
                        "substituted_value": repr(encoding.fill[name]),
                    }
                )
            )
        out[name] = values.fillna(encoding.fill[name])  # logged above, cell by cell
    for name in CATEGORICAL:
        values = out[name].astype(object)
        known = values.isin(encoding.vocab[name][:-1]).to_numpy()
        if (~known).any():
            originals = values[~known]
            ledgers.append(
                pd.DataFrame(
                    {
                        "customer_id": out.loc[~known, "customer_id"].to_numpy(),
                        "feature": name,
                        "reason": np.where(originals.isna(), MISSING, UNSEEN_CATEGORY),
                        "original_value": originals.map(lambda v: None if v is None or v != v else str(v)).to_numpy(),
                        "substituted_value": UNSEEN,
                    }
                )
            )
        out[name] = values.where(known, UNSEEN)
    ledger = pd.concat(ledgers, ignore_index=True) if ledgers else pd.DataFrame(columns=LEDGER_COLUMNS)
    return out, ledger[LEDGER_COLUMNS]


def model_matrix(encoded: pd.DataFrame, encoding: Encoding) -> pd.DataFrame:
    """The frame LightGBM sees: features in spec order, categoricals on the fixed vocabulary."""
    matrix = pd.DataFrame(index=encoded.index)
    for name in FEATURE_NAMES:
        if name in encoding.vocab:
            matrix[name] = pd.Categorical(encoded[name], categories=encoding.vocab[name])
        else:
            matrix[name] = encoded[name].astype("float64")
    return matrix


def ledger_rates(ledger: pd.DataFrame, rows: int) -> pd.DataFrame:
    """Per feature and reason: substituted cells and their share of the batch's rows."""
    counts = ledger.groupby(["feature", "reason"]).size().rename("cells").reset_index()
    full = pd.DataFrame({"feature": list(FEATURE_NAMES)})
    counts = full.merge(counts, on="feature", how="left")
    counts["reason"] = counts["reason"].fillna("-")
    counts["cells"] = counts["cells"].fillna(0).astype("int64")
    counts["rate"] = counts["cells"] / rows if rows else 0.0
    return counts
