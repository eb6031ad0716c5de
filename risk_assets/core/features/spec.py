"""The feature spec: every model feature declared once.

Each feature is one SQL aggregate over the transaction rows ``t`` of a customer inside
a look-back, with the window bounds in a relation ``b``:

* ``t``: ``customer_id, event_ts, amount_cents, channel, channel_known, canonical, mapped``
  (``channel_known``: the channel is in the training period's channel vocabulary) — the
  category after the category mapping, or the raw name itself when the mapping has no
  entry for it (``mapped`` false). Encoding then turns such a name into ``__unseen__``
  and logs the original;
* ``b``: ``as_of, start_7, start_14, start_30, start_90`` (naive UTC timestamps).

The time contract (``docs/time-contract.md``): partition ``P`` describes a customer as
of ``as_of = (P + 1 day) 00:00`` in the business timezone; a ``w``-day window is
``[as_of − w calendar days, as_of)``. :class:`risk_assets.core.night.Night` computes these
bounds once, in Python, for both executions (:mod:`risk_assets.engines.executions`).

Definitions where a denominator is zero (documented here, not imputed):

* means and maxima over an empty window are 0;
* amount/count velocity ratios are 1.0 (no change) when the 30-day value is 0;
* shares are 0.0 when the 30-day amount is 0;
* a category share is **NULL** when the window holds an unmapped category (the share
  cannot be known), and ``online_share_30d`` is **NULL** when the window holds a
  transaction whose channel is missing or not in the channel vocabulary (an unseen
  channel is never silently "not online"). NULLs are never filled here: encoding imputes them
  and writes every one to the imputation ledger.

A customer is *active* on ``P`` when it has at least one accepted transaction in the
90-day look-back; scores and training rows exist for active customers only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

WINDOWS: tuple[int, ...] = (7, 14, 30)
LOOKBACK_DAYS = 90
LABEL_HORIZON_DAYS = 30
UNSEEN = "__unseen__"
NONE = "__none__"
SHARE_GROUPS: tuple[str, ...] = ("cash", "transfer", "gambling")


@dataclass(frozen=True)
class FeatureVocabulary:
    """Which of the source's values the share features count: canonical categories per
    share group, and the channels that count as online. They reach the SQL as parameters
    (``$share_cash`` …, ``$online_channels``), so the spec's text — and ``SPEC_VERSION`` —
    does not depend on one source's names; the model card records the vocabulary a model
    was trained with. Defaults: the embedded world's names."""

    cash: tuple[str, ...] = ("cash_withdrawal",)
    transfer: tuple[str, ...] = ("money_transfer",)
    gambling: tuple[str, ...] = ("gambling",)
    online: tuple[str, ...] = ("online", "transfer")

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Feature group -> the values it names (``share_<group>_30d`` and ``online_share_30d``)."""
        return {**{f"share_{g}_30d": getattr(self, g) for g in SHARE_GROUPS}, "online_share_30d": self.online}

    def params(self) -> dict[str, list[str]]:
        return {**{f"share_{g}": list(getattr(self, g)) for g in SHARE_GROUPS}, "online_channels": list(self.online)}

    def as_dict(self) -> dict[str, list[str]]:
        return {g: list(getattr(self, g)) for g in (*SHARE_GROUPS, "online")}

    def absent(self, categories: set[str], channels: set[str]) -> dict[str, list[str]]:
        """Per feature, the values it names that the training data never holds (a feature
        that can only ever be 0)."""
        out = {}
        for feature, values in self.groups().items():
            known = channels if feature == "online_share_30d" else categories
            missing = [v for v in values if v not in known]
            if missing:
                out[feature] = missing
        return out


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Literal["numeric", "categorical"]
    sql: str
    description: str
    origin: Literal["transactions", "customer"] = "transactions"
    window_days: int | None = None
    drift: bool = True
    """Watched by the drift checks. Off only for features that move by construction."""
    null_when: Literal["unmapped_category", "unknown_channel"] | None = None
    """Why the feature can be NULL: its window holds an unmapped category (the coverage
    check judges that cause) or a missing/unseen channel."""


def _in30(cond: str = "") -> str:
    return "t.event_ts >= b.start_30" + (f" AND {cond}" if cond else "")


def _window_features(w: int) -> list[Feature]:
    f = f"t.event_ts >= b.start_{w}"
    return [
        Feature(
            f"txn_count_{w}d",
            "numeric",
            f"count(*) FILTER (WHERE {f})",
            f"transactions in the last {w} days",
            window_days=w,
        ),
        Feature(
            f"amount_sum_{w}d",
            "numeric",
            f"coalesce(sum(t.amount_cents) FILTER (WHERE {f}), 0) / 100.0",
            f"amount in the last {w} days (exact cents, divided at the end)",
            window_days=w,
        ),
        Feature(
            f"amount_mean_{w}d",
            "numeric",
            f"coalesce(sum(t.amount_cents) FILTER (WHERE {f}) / count(*) FILTER (WHERE {f}), 0) / 100.0",
            f"mean amount in the last {w} days; 0 without transactions",
            window_days=w,
        ),
        Feature(
            f"amount_max_{w}d",
            "numeric",
            f"coalesce(max(t.amount_cents) FILTER (WHERE {f}), 0) / 100.0",
            f"largest amount in the last {w} days; 0 without transactions",
            window_days=w,
        ),
    ]


def _share(name: str) -> Feature:
    total = f"sum(t.amount_cents) FILTER (WHERE {_in30()})"
    part = f"coalesce(sum(t.amount_cents) FILTER (WHERE {_in30(f'list_contains($share_{name}, t.canonical)')}), 0)"
    unseen = f"count(*) FILTER (WHERE {_in30('NOT t.mapped')})"
    return Feature(
        f"share_{name}_30d",
        "numeric",
        f"CASE WHEN {unseen} > 0 THEN NULL WHEN coalesce({total}, 0) = 0 THEN 0.0 ELSE {part} / {total} END",
        f"share of 30-day amount in the {name} categories (settings: features.{name}_categories); "
        "NULL if the window has an unmapped category",
        window_days=30,
        null_when="unmapped_category",
    )


def _ratio(name: str, short: str, long: str, what: str) -> Feature:
    return Feature(
        name,
        "numeric",
        f"CASE WHEN ({long}) = 0 THEN 1.0 ELSE (({short}) / 7.0) / (({long}) / 30.0) END",
        f"7-day vs 30-day daily {what}; 1.0 when the 30-day value is 0",
        window_days=30,
    )


def _features() -> tuple[Feature, ...]:
    features: list[Feature] = []
    for w in WINDOWS:
        features += _window_features(w)
    features += [_share(name) for name in SHARE_GROUPS]
    total = f"sum(t.amount_cents) FILTER (WHERE {_in30()})"
    online = f"coalesce(sum(t.amount_cents) FILTER (WHERE {_in30('list_contains($online_channels, t.channel)')}), 0)"
    unknown = f"count(*) FILTER (WHERE {_in30('NOT t.channel_known')})"
    c7, c30 = "count(*) FILTER (WHERE t.event_ts >= b.start_7)", f"count(*) FILTER (WHERE {_in30()})"
    s7 = "coalesce(sum(t.amount_cents) FILTER (WHERE t.event_ts >= b.start_7), 0)"
    s30 = f"coalesce({total}, 0)"
    features += [
        Feature(
            "online_share_30d",
            "numeric",
            f"CASE WHEN {unknown} > 0 THEN NULL WHEN {s30} = 0 THEN 0.0 ELSE {online} / {total} END",
            "share of 30-day amount through the online channels (settings: features.online_channels); NULL "
            "if the window holds a missing channel or one the training period never saw",
            window_days=30,
            null_when="unknown_channel",
        ),
        _ratio("count_velocity_7d_30d", c7, c30, "transaction count"),
        _ratio("amount_velocity_7d_30d", s7, s30, "amount"),
        Feature(
            "days_since_last_txn",
            "numeric",
            "(epoch_us(any_value(b.as_of)) - epoch_us(max(t.event_ts))) / 86400e6",
            "days between the last transaction and as_of (within the 90-day look-back)",
            window_days=LOOKBACK_DAYS,
        ),
        # Written without count(DISTINCT) and first(... ORDER BY ...): those aggregates
        # make DuckDB give up its parallel hash aggregation and cost 8x the rest of the
        # query together (benchmarks/run.py); list_distinct and arg_max compute the same.
        Feature(
            "n_categories_30d",
            "numeric",
            f"coalesce(len(list_distinct(list(t.canonical) FILTER (WHERE {_in30()}))), 0)",
            "distinct canonical categories in the last 30 days",
            window_days=30,
        ),
        Feature(
            "top_category_30d",
            "categorical",
            f"coalesce(arg_max(t.canonical, (t.amount_cents, t.event_ts, t.canonical)) "
            f"FILTER (WHERE {_in30()}), '{NONE}')",
            f"category of the largest transaction in the last 30 days (the latest among equal "
            f"amounts, then the alphabetically last); '{NONE}' without transactions",
            window_days=30,
        ),
        Feature("segment", "categorical", "c.segment", "customer segment", origin="customer"),
        Feature("region", "categorical", "c.region", "customer region", origin="customer"),
        Feature(
            "tenure_days",
            "numeric",
            "(epoch_us(f.as_of) - epoch_us(c.opened_at)) / 86400e6",
            "days since the account was opened (grows every night: not drift-monitored)",
            origin="customer",
            drift=False,
        ),
    ]
    return tuple(features)


FEATURES: tuple[Feature, ...] = _features()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
NUMERIC: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "numeric")
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "categorical")
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}

SPEC_VERSION: str = hashlib.sha256(
    repr([(f.name, f.kind, f.sql, f.origin) for f in FEATURES] + [WINDOWS, LOOKBACK_DAYS, LABEL_HORIZON_DAYS]).encode()
).hexdigest()[:12]
"""Fingerprint of every feature's definition; changes whenever a window or formula does."""


BOUND_COLUMNS: tuple[str, ...] = ("as_of", *(f"start_{w}" for w in (*WINDOWS, LOOKBACK_DAYS)))
"""Columns of the bounds relation ``b`` every aggregate reads (built by ``Night.bound_row``)."""
