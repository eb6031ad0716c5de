"""The checks: one module per family, each holding side by side what its checks load
(the *loader*), the statistic they compute (the *SQL* both engines run, and the row-level
definition it is held equal to in the tests) and the pure *guard* that judges it. The
catalogue (:mod:`.catalogue`) is the one table that declares every check.

No Dagster here: a loader reads through a :class:`Step` (the engine, the source, the
settings of one night), a guard takes plain frames and numbers and returns a
:class:`Verdict`; the Dagster layer (``risk_assets/defs/``) renders verdicts into check
results once.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import pandas as pd

from risk_assets.core import model as model_lib
from risk_assets.core.night import Night
from risk_assets.engines import Engine
from risk_assets.settings import Settings
from risk_assets.sources import Source
from risk_assets.store import registry

Scalar = int | float | str | bool | None


@dataclass
class Verdict:
    """What a guard found, as separate typed fields.

    * ``figures`` — what was measured (counts, rates, names): scalars, one metadata entry
      each, so the UI plots the numeric ones night by night;
    * ``thresholds`` — the limits the verdict was judged against, exactly as used;
    * ``data`` — structured findings (e.g. suggested aliases as a mapping), JSON;
    * ``tables`` — offender tables as frames (the UI shows their first rows);
    * ``summary`` — one sentence for the operator."""

    passed: bool
    severity: Literal["ERROR", "WARN"]
    summary: str
    figures: dict[str, Scalar] = field(default_factory=dict)
    thresholds: dict[str, Scalar] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


class Refused(ValueError):
    """A step declines to go on for a stated domain reason (the message names it)."""


@dataclass
class Inputs:
    """What a loader hands its guard: the keyword arguments, plus extras recorded next to
    the verdict (the mapping or model version it was judged against)."""

    args: dict
    extras: dict = field(default_factory=dict)


class Step:
    """What the checks of one step read through, for one night: the engine that holds the
    per-night tables (``conn`` is the warehouse, for ledgers and the registry), the source,
    the settings, and the check declarations (the look-back re-judges a day with the
    quarantining ones). Each statistic and the deployed model are computed once per step
    and every caller gets its own copy: the checks of one asset share their reads."""

    def __init__(
        self,
        engine: Engine,
        night: Night,
        settings: Settings,
        source: Source,
        checks: Sequence[CheckDecl] = (),
        _shared: dict | None = None,
    ):
        self.engine, self.night, self.settings, self.source, self.checks = engine, night, settings, source, checks
        self._shared = _shared if _shared is not None else {"statistics": {}, "models": {}}

    @property
    def conn(self):
        return self.engine.conn

    def on(self, night: Night) -> Step:
        """The same step for another night (caches shared: their keys name the night)."""
        return Step(self.engine, night, self.settings, self.source, self.checks, self._shared)

    def statistic(
        self, sql: str, params: Mapping[str, object], frames: Mapping[str, pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """One aggregate query on the engine (computed once per step unless ``frames``)."""
        if frames:
            return self.engine.statistic(sql, params, frames)
        cache, key = self._shared["statistics"], (sql, repr(sorted(params.items(), key=lambda kv: kv[0])))
        if key not in cache:
            cache[key] = self.engine.statistic(sql, params)
        return cache[key].copy()

    def deployed_model(self) -> tuple[lgb.Booster, model_lib.ModelCard]:
        """The model serving uses, parsed once per step."""
        entry = registry.deployed_model(self.conn)
        models = self._shared["models"]
        key = entry.path if entry is not None else None
        if key not in models:
            models[key] = registry.load_deployed(self.conn)
        return models[key]


Loader = Callable[[Step], Inputs]


@dataclass(eq=False)
class CheckDecl:
    """One row of the catalogue (:mod:`.catalogue`)."""

    name: str
    asset: str
    guard: Callable[..., Verdict]
    """The pure statistic that judges the check."""
    description: str
    load: Loader | None = None
    """``load(step) -> Inputs``; None: evaluated inside its asset."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """Guard keyword -> dotted settings path (e.g. ``"checks.imputation_ceiling"``)."""
    blocking: bool = True
    severity: Literal["ERROR", "WARN", "WARN or ERROR"] = "ERROR"
    """The severity policy (the guard's verdict carries the severity of each result)."""
    partitioned: bool = True
    deps: tuple[str, ...] = ()
    """Other assets the check reads (shown as lineage in the UI)."""
    quarantines: bool = False
    """A raw day that fails this check is quarantined: judged again at every load and
    recorded in ``raw_verdicts``, it blocks the nights whose look-back reads it."""

    @property
    def label(self) -> str:
        return f"{self.asset}.{self.name}"

    def thresholds(self, settings: Settings) -> dict:
        """The guard's threshold arguments, read from ``settings``."""
        return {kw: functools.reduce(getattr, path.split("."), settings) for kw, path in self.settings.items()}

    def judge(self, args: Mapping, settings: Settings) -> Verdict:
        """Run the guard on loaded (or in-memory) inputs with the configured thresholds."""
        return self.guard(**args, **self.thresholds(settings))

    def evaluate(self, step: Step) -> tuple[Verdict, dict]:
        """The check's body: its loader reads through the step, its guard judges with the
        configured thresholds. Returns the verdict and the extras to record with it (the
        versions serving uses now included)."""
        inputs = self.load(step)
        return self.judge(inputs.args, step.settings), registry.serving_versions(step.conn) | inputs.extras


def day_frame(frame: pd.DataFrame, column: str = "partition") -> pd.DataFrame:
    """``column`` as ``datetime.date`` values (a statistic's day, whatever engine returned it)."""
    frame[column] = [
        d if isinstance(d, dt.date) and not isinstance(d, dt.datetime) else pd.Timestamp(d).date()
        for d in frame[column]
    ]
    return frame
