"""Fault injection the production path never carries: a serving build whose windows differ
from the spec (incident 3: training/serving skew).

The scenario wraps the configured engine (:class:`SkewedServing`): its serving execution
runs on a :class:`SkewedNight` — the same night with every window bound moved — while the
training execution, which the parity check and the deployment gate recompute with, keeps
the spec's bounds. Production code sees an ordinary :class:`~risk_assets.engines.Engine`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from risk_assets.core.features.spec import FeatureVocabulary
from risk_assets.core.night import Night
from risk_assets.engines import Engine, EngineFactory
from risk_assets.scenario.settings import ServingSkewSettings


@dataclass(frozen=True)
class SkewedNight(Night):
    """A night whose window bounds are off: ``end_shift_hours`` moves every bound (as_of
    and window starts) by that many hours; ``window_days_offset`` lengthens (or shortens)
    every window by whole days."""

    end_shift_hours: float = 0.0
    window_days_offset: int = 0

    def bound_row(self) -> dict[str, pd.Timestamp]:
        shift, longer = pd.Timedelta(hours=self.end_shift_hours), pd.Timedelta(days=self.window_days_offset)
        return {
            k: v + shift - (longer if k.startswith("start_") else pd.Timedelta(0))
            for k, v in super().bound_row().items()
        }


def describe(skew: ServingSkewSettings) -> str:
    return (
        f"serving build skewed: window bounds {skew.end_shift_hours:+g} h, windows {skew.window_days_offset:+d} day(s)"
    )


class SkewedServing:
    """An engine whose serving execution is skewed (everything else is the inner engine's)."""

    def __init__(self, inner: Engine, skew: ServingSkewSettings):
        self.inner, self.skew = inner, skew

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def _skewed(self, night: Night) -> SkewedNight:
        return SkewedNight(
            night.day, night.timezone, night.first_partition, self.skew.end_shift_hours, self.skew.window_days_offset
        )

    def describe(self) -> dict[str, str]:
        return self.inner.describe() | {"fault": describe(self.skew)}

    def write_serving(self, night: Night, mapping_version: str, vocabulary: FeatureVocabulary) -> None:
        self.inner.write_serving(self._skewed(night), mapping_version, vocabulary)

    def serving_features(self, night: Night, mapping_version: str, vocabulary: FeatureVocabulary) -> pd.DataFrame:
        return self.inner.serving_features(self._skewed(night), mapping_version, vocabulary)


class SkewedServingFactory:
    def __init__(self, inner: EngineFactory, skew: ServingSkewSettings):
        self.inner, self.skew = inner, skew
        self.name = inner.name

    def open(self, conn: duckdb.DuckDBPyConnection) -> SkewedServing:
        return SkewedServing(self.inner.open(conn), self.skew)


def active(skew: ServingSkewSettings) -> bool:
    return bool(skew.end_shift_hours or skew.window_days_offset)
