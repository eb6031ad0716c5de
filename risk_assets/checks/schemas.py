"""Pandera schemas of the stored tables (``raw_schema``, ``encoded_schema``, and
``scores_schema`` before the scores are written), validated lazily; failures summarised.

Pandera validates rows in pandas: these checks deliberately read their partition's rows
on the driver, through :meth:`risk_assets.engines.Engine.rows` (the lake's copy on Spark),
and say so in ``docs/scaling.md``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.core.contract import Window, transaction_schema
from risk_assets.core.features.spec import CATEGORICAL, NUMERIC
from risk_assets.store.warehouse import NotMaterialised


def _validate(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> Verdict:
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.copy()
        cases["column"] = cases["column"].fillna("(table)").astype(str)
        summary = (
            cases.groupby(["column", "check"])
            .agg(
                failures=("failure_case", "size"),
                examples=("failure_case", lambda s: ", ".join(map(str, s.head(3)))),
            )
            .reset_index()
            .sort_values("failures", ascending=False)
        )
        return Verdict(
            passed=False,
            severity="ERROR",
            summary=f"{schema.name}: {len(cases)} failure case(s) in {len(summary)} rule(s): "
            + "; ".join(f"{r.column} {r.check}" for r in summary.head(5).itertuples()),
            figures={"rows": len(frame), "failure_cases": len(cases), "rules_failed": len(summary)},
            tables={"failures": summary},
        )
    return Verdict(True, "ERROR", f"{schema.name}: {len(frame)} rows valid", {"rows": len(frame), "failure_cases": 0})


def raw_schema(frame: pd.DataFrame, window: Window, max_amount: float, max_text: int) -> Verdict:
    schema = transaction_schema(window, max_amount, max_text)
    schema = schema.update_columns({"transaction_id": {"unique": True}}).add_columns(
        {
            "amount_cents": pa.Column("int64", pa.Check.gt(0)),
        }
    )
    return _validate(frame, schema)


def encoded_schema(frame: pd.DataFrame, vocab: dict[str, list[str]], model_version: str) -> Verdict:
    columns = {
        "customer_id": pa.Column(object, unique=True, nullable=False),
        "model_version": pa.Column(object, pa.Check.isin([model_version]), nullable=False),
        "spec_version": pa.Column(object, nullable=False),
        "mapping_version": pa.Column(object, nullable=False),
    }
    for f in NUMERIC:
        columns[f] = pa.Column("float64", pa.Check(lambda s: np.isfinite(s), name="finite"), nullable=False)
    for f in CATEGORICAL:
        columns[f] = pa.Column(object, pa.Check.isin(vocab[f]), nullable=False)
    return _validate(frame, pa.DataFrameSchema(columns, name="encoded_features"))


def scores_schema(frame: pd.DataFrame, expected_customers: int) -> Verdict:
    schema = pa.DataFrameSchema(
        {
            "customer_id": pa.Column(object, unique=True, nullable=False),
            "score": pa.Column("float64", pa.Check.in_range(0.0, 1.0), nullable=False),
            "risk_band": pa.Column(object, pa.Check.isin(["high", "medium", "low"]), nullable=False),
            "rank": pa.Column("int64", [pa.Check.ge(1), pa.Check.le(max(expected_customers, 1))], unique=True),
            "model_version": pa.Column(object, nullable=False),
            "spec_version": pa.Column(object, nullable=False),
            "mapping_version": pa.Column(object, nullable=False),
        },
        checks=[
            pa.Check(
                lambda df: len(df) == expected_customers, name=f"one row per encoded customer ({expected_customers})"
            )
        ],
        name="risk_scores",
    )
    return _validate(frame, schema)


# --------------------------------------------------------------------------- loaders
def load_raw(step: Step) -> Inputs:
    return Inputs(
        {"frame": step.engine.rows("raw_transactions", step.night.day), "window": step.night.window},
        {"partition": step.night.key},
    )


def load_encoded(step: Step) -> Inputs:
    _, card = step.deployed_model()
    frame = step.engine.rows("encoded_features", step.night.day)
    if frame.empty:
        raise NotMaterialised(f"encoded_features[{step.night.day}] is empty: materialise it first")
    return Inputs(
        {"frame": frame, "vocab": card.enc.vocab, "model_version": card.version}, {"model_version": card.version}
    )
