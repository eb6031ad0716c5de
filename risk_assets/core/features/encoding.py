"""Encoding and imputation, with a ledger row for every cell that was not used as is.

This is the only place in the project that substitutes a value. Categorical features
become ``pd.Categorical(values, categories=vocab)`` with an explicit ``__unseen__`` level
(the vocabulary is fixed at training time and stored with the model); numeric NULLs
become the training median. Each substitution yields one ledger row: customer, feature,
reason, original value, substituted value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

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


def fit_encoding(train: pd.DataFrame, extra_levels: dict[str, list[str]] | None = None) -> Encoding:
    """Vocabulary = training levels (+ known extra levels) + ``__unseen__``; fill = median."""
    vocab = {}
    for name in CATEGORICAL:
        levels = set(train[name].dropna().astype(str)) | set((extra_levels or {}).get(name, []))
        levels.discard(UNSEEN)
        vocab[name] = sorted(levels) + [UNSEEN]
    fill = {}
    for name in NUMERIC:
        median = train[name].astype("float64").median()
        fill[name] = float(median) if np.isfinite(median) else 0.0
    return Encoding(vocab, fill)


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
