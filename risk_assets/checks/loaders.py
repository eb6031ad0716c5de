"""What each check loads: one function per check, from the warehouse to the keyword
arguments of its guard. Plain Python (queries in, plain values out; no Dagster types);
the catalogue (``catalogue.py``) pairs each loader with its guard and its settings.

A loader returns :class:`Inputs`: the guard's arguments, plus extras recorded next to
the verdict (the mapping or model version it was judged against)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from risk_assets.core import model as model_lib
from risk_assets.core.calendar import holidays_between
from risk_assets.core.features.encoding import UNSEEN_CATEGORY
from risk_assets.checks.drift import monitored_features
from risk_assets.checks.imputation import CONTINGENCY_COLUMNS
from risk_assets.checks import Refused
from risk_assets.checks.daily import daily_statistics
from risk_assets.checks.parity import parity_sample
from risk_assets.core.night import Night
from risk_assets.engines import executions as feature_sql
from risk_assets.store import registry
from risk_assets.checks import statistics
from risk_assets.store import warehouse
from risk_assets.engines.executions import ServingSkew
from risk_assets.store.warehouse import NotMaterialised
from risk_assets.settings import Settings
from risk_assets.core.stats import fold_levels
from risk_assets.sources import make_source

VOLUME_HISTORY_DAYS = 120
"""Days of load history ``row_volume`` learns a day's expectation from (eight weeks of
weekdays, and the month starts and ends of four months)."""
AMOUNT_HISTORY_DAYS = 28
"""Days of history ``amount_scale`` takes each category's level from."""


@dataclass
class Inputs:
    args: dict
    extras: dict = field(default_factory=dict)


_SHARED_MODELS: ContextVar[dict | None] = ContextVar("shared_models", default=None)


@contextmanager
def shared_model() -> Iterator[None]:
    """Within the block, the deployed model is parsed once per model folder (the checks of
    one step ask for it several times)."""
    token = _SHARED_MODELS.set({})
    try:
        yield
    finally:
        _SHARED_MODELS.reset(token)


def deployed_model(conn) -> tuple[lgb.Booster, model_lib.ModelCard]:
    entry = registry.deployed_model(conn)
    if entry is None:
        raise NotMaterialised("no deployed model: materialise `risk_model` and `deployed_model` first (training_job)")
    shared = _SHARED_MODELS.get()
    if shared is None:
        return model_lib.load(Path(entry.path))
    if entry.path not in shared:
        shared[entry.path] = model_lib.load(Path(entry.path))
    return shared[entry.path]


# --------------------------------------------------------------------------- raw layer
def reconcile(conn, night: Night, settings: Settings) -> Inputs:
    ledger = warehouse.loads(conn, night.day, night.day)
    row = ledger.iloc[0] if len(ledger) else None
    return Inputs({
        "received": int(row["received"]) if row is not None else None,
        "stored_accepted": warehouse.count(conn, "raw_transactions", night.day),
        "stored_rejected": warehouse.count(conn, "rejected_transactions", night.day),
        "recorded_accepted": int(row["accepted"]) if row is not None else None,
        "recorded_rejected": int(row["rejected"]) if row is not None else None,
    })


def raw_partition(conn, night: Night, settings: Settings) -> Inputs:
    return Inputs({"frame": warehouse.raw_partition(conn, night.day), "window": night.window}, {"partition": night.key})


def rejections(conn, night: Night, settings: Settings) -> Inputs:
    return Inputs({"accepted": warehouse.count(conn, "raw_transactions", night.day),
                   "reasons": warehouse.rejection_reasons(conn, night.day)})


def conflicts(conn, night: Night, settings: Settings) -> Inputs:
    return Inputs({"conflicts": warehouse.conflicts(conn, "transactions", night.day)})


def landing_files(conn, night: Night, settings: Settings) -> Inputs:
    if warehouse.count(conn, "raw_loads", night.day) == 0:
        raise warehouse.NotMaterialised(f"raw_transactions[{night.key}] was never loaded")
    return Inputs({"files": warehouse.load_files(conn, night.day)})


def volume(conn, night: Night, settings: Settings) -> Inputs:
    first = night.days_back(VOLUME_HISTORY_DAYS)
    ledger = warehouse.loads(conn, first, night.day)
    today = ledger[ledger["partition"] == night.day]
    return Inputs({
        "received": int(today["received"].iloc[0]) if len(today) else 0,
        "accepted": int(today["accepted"].iloc[0]) if len(today) else 0,
        "day": night.day,
        "history": ledger.loc[ledger["partition"] != night.day, ["partition", "accepted"]],
        "holidays": holidays_between(settings.calendar, first, night.day),
    })


def amount_levels(conn, night: Night, settings: Settings) -> Inputs:
    return Inputs({"night": statistics.category_counts(conn, night.day),
                   "history": warehouse.category_log_amounts(conn, night.days_back(AMOUNT_HISTORY_DAYS),
                                                             night.days_back(1))})


def coverage(conn, night: Night, settings: Settings) -> Inputs:
    version = registry.current_mapping_version(conn)
    return Inputs({"categories": statistics.category_counts(conn, night.day),
                   "unmapped": statistics.unmapped_rows(conn, night.day, version), "mapping": registry.mapping(conn)},
                  {"mapping_version": version})


def channels(conn, night: Night, settings: Settings) -> Inputs:
    version = registry.current_mapping_version(conn)
    return Inputs({"counts": statistics.value_counts(conn, night.day, "channel"),
                   "vocabulary": registry.channels(conn, version), "column": "channel"},
                  {"mapping_version": version})


def late_rows(conn, night: Night, settings: Settings) -> Inputs:
    previous = night.previous.day
    ledger = warehouse.loads(conn, previous, night.day)
    read_at = dict(zip(ledger["partition"], ledger["read_at"]))
    loaded = previous in read_at
    cutoff = read_at.get(night.day)
    cutoff = cutoff if isinstance(cutoff, str) and cutoff else None
    rows_now = (make_source(settings).transactions(previous, read_at=pd.Timestamp(cutoff) if cutoff else None)
                if loaded else pd.DataFrame(columns=["transaction_id", "customer_id"]))
    return Inputs({
        "reconciled": previous, "loaded": loaded, "rows_now": rows_now,
        "stored_ids": warehouse.stored_record_keys(conn, previous) if loaded else set(),
        "scored": warehouse.scored_customers(conn, previous) if loaded else set(),
        "cutoff": cutoff,
    })


# --------------------------------------------------------------------------- serving features
def lookback(conn, night: Night, settings: Settings) -> Inputs:
    """The look-back's load ledger and the raw verdicts recorded with each load; a day
    whose verdicts are missing or older than its latest load is judged now (same guards)."""
    from risk_assets.checks.catalogue import judge_raw_day  # the catalogue imports this module

    expected = night.lookback_partitions
    ledger = warehouse.loads(conn, expected[0], expected[-1])
    verdicts = warehouse.raw_verdicts(conn, expected[0], expected[-1])
    fresh = verdicts.merge(ledger[["partition", "loaded_at"]], on=["partition", "loaded_at"])
    stale = [d for d in ledger["partition"] if d != night.day and d not in set(fresh["partition"])]
    for day in stale:
        fresh = pd.concat([fresh, judge_raw_day(conn, Night.of(day, settings.calendar), settings)], ignore_index=True)
    return Inputs({"expected": expected, "loaded": ledger["partition"].tolist(), "verdicts": fresh,
                   "accepted": {d: f"{settings.override.by}: {settings.override.reason}"
                                for d in settings.override.accept_days}})


def parity_inputs(conn, night: Night, settings: Settings, mapping_version: str,
                  served: pd.DataFrame | None = None, skew: ServingSkew | None = None) -> dict:
    """The parity guard's frames for one night: a seeded sample of the served rows
    (``served``; computed now by the serving path, with ``skew``, when None) and the
    same customers recomputed by the training path. Shared by the nightly parity check
    and the deployment gate."""
    c, vocabulary = settings.checks, settings.features.vocabulary()
    if served is None:
        served = feature_sql.serving_features(conn, night, mapping_version, vocabulary, skew)
    sample = parity_sample(served["customer_id"].to_numpy(), c.parity_sample, c.parity_seed, night.day)
    recomputed = feature_sql.training_features(conn, [night], mapping_version, vocabulary, customers=sample)
    return {"serving": served[served["customer_id"].isin(sample)], "training": recomputed}


def parity(conn, night: Night, settings: Settings) -> Inputs:
    c = settings.checks
    ids = warehouse.serving_customer_ids(conn, night.day)
    # only the sample's stored rows are read, not every customer's
    served = warehouse.serving_rows(conn, night.day, parity_sample(ids, c.parity_sample, c.parity_seed, night.day))
    version = served.at[0, "mapping_version"] if len(served) else registry.current_mapping_version(conn)
    return Inputs(parity_inputs(conn, night, settings, version, served=served),
                  {"mapping_version": version, "weekday": night.weekday})


# --------------------------------------------------------------------------- encoded features
def encoded(conn, night: Night, settings: Settings) -> Inputs:
    _, card = deployed_model(conn)
    return Inputs({"frame": warehouse.read_partition(conn, "encoded_features", night.day),
                   "vocab": card.enc.vocab, "model_version": card.version}, {"model_version": card.version})


def coverage_and_customers(conn, night: Night, settings: Settings) -> Inputs:
    cells = statistics.ledger_counts(conn, night.day)
    unseen = cells[cells["reason"] == UNSEEN_CATEGORY]
    base = coverage(conn, night, settings)
    return Inputs(base.args | {
        "customers_with_unseen": statistics.customers_with(conn, night.day, UNSEEN_CATEGORY),
        "scored_customers": warehouse.count(conn, "encoded_features", night.day),
        "unseen_by_feature": {f: int(n) for f, n in zip(unseen["feature"], unseen["customers"])},
    }, base.extras)


def ledger(conn, night: Night, settings: Settings) -> Inputs:
    return Inputs({"cells": statistics.ledger_counts(conn, night.day),
                   "rows": warehouse.count(conn, "encoded_features", night.day)})


def missingness(conn, night: Night, settings: Settings) -> Inputs:
    """The ledger's cells per feature (with those coverage judges) and, for the features
    with enough of the rest, the contingency of customers by group and exposure — both
    aggregated by the engine; a night without substituted cells reads nothing else."""
    min_cells = settings.checks.missingness_min_cells
    none = pd.DataFrame(columns=CONTINGENCY_COLUMNS)
    if statistics.ledger_counts(conn, night.day).empty:
        return Inputs({"cells": pd.DataFrame(columns=["feature", "cells", "excused"]), "contingency": none})
    version = registry.current_mapping_version(conn)
    cells = statistics.missing_cells(conn, night, version)
    tested = (cells["cells"] - cells["excused"] >= min_cells).any()
    table = statistics.missingness_contingency(conn, night, version, min_cells) if tested else none
    return Inputs({"cells": cells, "contingency": table})


def drift_counts(conn, night: Night, settings: Settings) -> Inputs:
    _, card = deployed_model(conn)
    reference = card.reference
    monitored = monitored_features()
    counts = statistics.bin_counts(conn, night.day, {f: reference["numeric"][f]["edges"]
                                                     for f in monitored if f in reference["numeric"]})
    levels = statistics.level_counts(conn, night.day, [f for f in monitored if f in reference["categorical"]])
    counts |= {f: fold_levels(v, reference["categorical"][f]["levels"]) for f, v in levels.items()}
    if not sum(int(c.sum()) for c in counts.values()):
        raise NotMaterialised(f"encoded_features[{night.day}] is empty: materialise it first")
    return Inputs({"counts": counts, "reference": reference}, {"model_version": card.version})


def daily_aggregates(conn, first, last, settings: Settings) -> pd.DataFrame:
    vocabulary = settings.features.vocabulary()
    risky = [*vocabulary.cash, *vocabulary.transfer, *vocabulary.gambling]
    return warehouse.daily_aggregates(conn, first, last, registry.current_mapping_version(conn),
                                      list(vocabulary.online), risky)


def daily_history(conn, night: Night, settings: Settings) -> Inputs:
    """The daily statistics of the nights since the deployed model's drift calibration
    (at most ``checks.daily_nights``), quarantined days left out (their own checks judged
    them; one bad day must not hold the monitor for months)."""
    _, card = deployed_model(conn)
    calibration = card.reference.get("daily_drift")
    if calibration is None:
        raise Refused(f"model {card.version} has no daily drift calibration: retrain it")
    first = max(dt.date.fromisoformat(calibration["last_day"]) + dt.timedelta(days=1),
                night.days_back(settings.checks.daily_nights - 1))
    days = daily_aggregates(conn, first, night.day, settings)
    verdicts = warehouse.raw_verdicts(conn, first, night.day)
    bad = set(verdicts.loc[~verdicts["passed"], "partition"]) - set(settings.override.accept_days)
    days = days[~days["partition"].isin(bad)]
    stats = daily_statistics(days, settings.checks.coverage_max_unmapped_share)
    accepted = list(settings.override.accept_drift)
    return Inputs({"nights": stats[~stats["statistic"].isin(accepted)], "calibration": calibration},
                  {"model_version": card.version, "quarantined_days_left_out": len(bad),
                   "accepted_drift": ", ".join(accepted) or "-"})

