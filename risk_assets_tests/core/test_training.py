"""Training within bounded memory: the column-by-column path equals the row-level definitions.

``core.model.train`` never builds a frame of the training table: each split becomes a float32
matrix one column at a time, and the encoding, the ledger counts and the reference profile
are fitted on the way. Each of those is compared here with its row-level definition
(``fit_encoding``, ``encode``, ``reference_profile``), and the model with LightGBM fitted the
way it was before (a float64 frame with pandas categoricals)."""

from __future__ import annotations

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from risk_assets.core import model as model_lib
from risk_assets.core.features.encoding import encode, fit_encoding, model_matrix
from risk_assets.core.features.spec import CATEGORICAL, FEATURE_NAMES, NUMERIC
from risk_assets.settings import TrainingSettings
from risk_assets.store import warehouse

EXTRA = {"top_category_30d": ["groceries", "fuel", "travel", "never_seen_in_training", "(none)"]}


def _frame(rows: int, days: int, seed: int, start: str = "2025-04-01") -> pd.DataFrame:
    """Training rows with signal in a few features, NULLs in numerics and categoricals, a
    constant feature, and a categorical level that only the validation period has."""
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days, rows) * 7, unit="D")
    frame = pd.DataFrame({"customer_id": [f"C{i:06d}" for i in range(rows)], "as_of": as_of})
    for i, name in enumerate(NUMERIC):
        values = rng.lognormal(1.0 + i / 10, 1.0, rows)
        values[rng.random(rows) < 0.03 * (i % 3)] = np.nan
        frame[name] = values
    frame[NUMERIC[-1]] = 1.0  # constant over the period
    frame["segment"] = rng.choice(["retail", "smb", "premium", None], rows, p=[0.6, 0.2, 0.15, 0.05])
    frame["region"] = rng.choice(["north", "south", "east"], rows)
    frame["top_category_30d"] = rng.choice(["groceries", "fuel", "travel", "(none)"], rows)
    logit = -4 + 0.8 * np.log1p(np.nan_to_num(frame[NUMERIC[0]])) + (frame["segment"] == "smb") * 1.2
    logit += (frame["top_category_30d"] == "travel") * 0.9 + rng.normal(0, 0.5, rows)
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return frame.sort_values(["as_of", "customer_id"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def splits():
    train = _frame(30_000, 20, seed=1)
    valid = _frame(8_000, 5, seed=2, start="2025-09-01")
    valid.loc[valid.index[:50], "region"] = "west"  # a level training never saw
    return train, valid


def test_the_column_wise_encoding_ledger_and_reference_equal_their_row_level_definitions(splits):
    train, valid = splits
    settings = TrainingSettings(num_boost_round=20)
    booster, card, ledgers = model_lib.train(
        model_lib.Split.of_frame(train), model_lib.Split.of_frame(valid), EXTRA, settings, 0.02, "s1", "m1"
    )
    encoding = fit_encoding(train, extra_levels=EXTRA)
    assert card.encoding == encoding.to_json()
    enc_train, ledger_train = encode(train, encoding)
    enc_valid, ledger_valid = encode(valid, encoding)
    assert ledgers == {
        "training_cells_substituted": len(ledger_train),
        "validation_cells_substituted": len(ledger_valid),
    }
    assert ledgers["validation_cells_substituted"] > ledgers["training_cells_substituted"] * 0.1 > 0
    assert card.constant_features == model_lib.constant_features(train) == [NUMERIC[-1]]

    val_scores = booster.predict(model_matrix(enc_valid, encoding))
    expected = model_lib.reference_profile(enc_train, encoding, val_scores, enc_valid)
    ours = card.reference
    assert ours["daily"]["as_of"] == expected["daily"]["as_of"]
    for name in NUMERIC:
        assert ours["numeric"][name]["edges"] == expected["numeric"][name]["edges"], name
        np.testing.assert_allclose(ours["numeric"][name]["shares"], expected["numeric"][name]["shares"], rtol=1e-12)
        np.testing.assert_allclose(ours["daily"]["mean"][name], expected["daily"]["mean"][name], rtol=1e-12)
    for name in (*NUMERIC, *CATEGORICAL):
        np.testing.assert_allclose(
            ours["daily"]["distance"][name], expected["daily"]["distance"][name], rtol=1e-9, atol=1e-15, err_msg=name
        )
    for name in CATEGORICAL:
        assert ours["categorical"][name] == expected["categorical"][name]
    np.testing.assert_allclose(
        ours["validation_scores"]["quantiles"], expected["validation_scores"]["quantiles"], rtol=1e-12
    )


def test_the_bounded_model_scores_frames_like_its_matrix_and_matches_the_frame_fit_within_0_002_auc(splits, tmp_path):
    train, valid = splits
    settings = TrainingSettings(num_boost_round=60)
    booster, card, _ = model_lib.train(
        model_lib.Split.of_frame(train), model_lib.Split.of_frame(valid), EXTRA, settings, 0.02, "s1", "m1"
    )
    encoding = card.enc
    enc_valid, _ = encode(valid, encoding)
    # serving scores a frame (pandas categoricals on the stored vocabulary): the same scores
    frame_scores = model_lib.predict(booster, enc_valid, card)
    saved, loaded_card = model_lib.load(model_lib.save(booster, card, tmp_path))
    np.testing.assert_allclose(model_lib.predict(saved, enc_valid, loaded_card), frame_scores, rtol=0, atol=1e-12)
    assert "pandas_categorical:" in (tmp_path / card.version / "model.txt").read_text()

    # the way the model was fitted before: a float64 frame with pandas categoricals
    enc_train, _ = encode(train, encoding)
    before = lgb.train(
        model_lib.lgb_params(settings),
        lgb.Dataset(
            model_matrix(enc_train, encoding), label=train["label"].to_numpy(), categorical_feature=list(CATEGORICAL)
        ),
        num_boost_round=settings.num_boost_round,
    )
    auc_before = model_lib.evaluate(valid["label"].to_numpy(), before.predict(model_matrix(enc_valid, encoding)), 0.02)
    auc_now = card.metrics["validation"]
    assert auc_now["roc_auc"] > 0.7
    assert abs(auc_now["roc_auc"] - auc_before["roc_auc"]) <= 0.002
    np.testing.assert_allclose(
        auc_now["roc_auc"], model_lib.evaluate(valid["label"].to_numpy(), frame_scores, 0.02)["roc_auc"]
    )
    training = card.metrics["training"]
    assert training["rows"] == len(train) and training["positives"] == int(train["label"].sum())
    assert training["metrics_sample_rows"] == min(model_lib.METRICS_SAMPLE_ROWS, len(train))


def test_the_warehouse_streams_a_split_by_whitelisted_columns_only(splits):
    train, valid = splits
    conn = duckdb.connect()
    warehouse.ensure_tables(conn)
    for split, frame in (("train", train), ("validation", valid)):
        warehouse.insert(
            conn,
            "training_features",
            frame.assign(split=split, spec_version="s1", mapping_version="m1")[
                ["customer_id", "as_of", *FEATURE_NAMES, "label", "split", "spec_version", "mapping_version"]
            ],
        )
    read = warehouse.training_split(conn, "train")
    assert read.rows == len(train)
    np.testing.assert_array_equal(read.column("label").to_numpy(), train["label"].to_numpy())
    assert read.column("segment").to_pylist() == [v if isinstance(v, str) else None for v in train["segment"]]
    assert warehouse.training_mapping_version(conn) == "m1"
    with pytest.raises(ValueError, match="not a column"):
        read.column('label" FROM training_features; --')
    with pytest.raises(warehouse.NotMaterialised):
        warehouse.training_split(conn, "holdout")
    # a repeated (as_of, customer_id) would let the column reads disagree on the order: refused
    warehouse.insert(
        conn,
        "training_features",
        train.head(1).assign(split="train", spec_version="s1", mapping_version="m1")[
            ["customer_id", "as_of", *FEATURE_NAMES, "label", "split", "spec_version", "mapping_version"]
        ],
    )
    with pytest.raises(ValueError, match="1 row.s. repeating an .as_of, customer_id."):
        warehouse.training_split(conn, "train")
