"""Settings of the embedded world: its size and shape, and the incidents it can inject.

The ``[scenario]`` section of a settings file (``[scenario.world]``,
``[scenario.world.product_change]``, ``[scenario.serving_skew]`` …). Production
settings (:mod:`risk_assets.settings`) hold it as one opaque section; :func:`scenario_of`
validates and reads it, and :func:`check_faults` refuses an enabled fault together with a
non-embedded source.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from risk_assets.settings import Settings, SettingsError

Share = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductChangeSettings(_Section):
    """Incident 1: from ``date`` on, the source emits new categories, renames one and
    merges two (see :mod:`risk_assets.scenario.world`)."""

    enabled: bool = False
    date: dt.date = dt.date(2026, 8, 10)


class MissingnessSettings(_Section):
    """Incident 2: from ``date`` for ``days`` days, ``share`` of the day's rows lose
    their ``channel``, concentrated in ``concentrate_in`` (``segment:NAME``,
    ``category:NAME`` or ``all``)."""

    enabled: bool = False
    date: dt.date = dt.date(2026, 8, 14)
    days: PositiveInt = 3650
    share: Share = 0.12
    concentrate_in: str = "segment:smb"

    @field_validator("concentrate_in")
    @classmethod
    def _target_form(cls, value: str) -> str:
        if value != "all" and not (value.startswith("segment:") or value.startswith("category:")):
            raise ValueError("must be 'all', 'segment:NAME' or 'category:NAME'")
        return value


class LateArrivalSettings(_Section):
    """From ``date`` on, ``share`` of each day's transactions arrive the next day at
    noon UTC, after the nightly run has read the partition."""

    enabled: bool = False
    date: dt.date = dt.date(2026, 8, 18)
    share: Share = 0.05


class ServingSkewSettings(_Section):
    """Fault injection: a serving build whose windows differ from the spec (incident 3).
    Both 0 in production; the demo and tests switch them on."""

    end_shift_hours: Annotated[float, Field(ge=-48.0, le=48.0)] = 0.0
    window_days_offset: Annotated[int, Field(ge=-3, le=3)] = 0


class WorldSettings(_Section):
    """The embedded synthetic world (deterministic from ``seed``)."""

    profile: Literal["embedded", "alpine"] = "embedded"
    """Which source the world imitates: ``embedded`` (the default) or ``alpine``, a second
    source that differs on purpose (names, rhythm, paydays, holidays, growth)."""
    seed: int = 20250101
    n_customers: PositiveInt = 20_000
    start: dt.date = dt.date(2025, 1, 1)
    """First day with transactions."""
    horizon: dt.date = dt.date(2027, 6, 30)
    """Irregularity events are simulated up to this day."""
    mean_daily_transactions: Annotated[float, Field(gt=0.0, le=50.0)] = 0.055
    """Average transactions per customer per day (10M over 20 months at 300k customers)."""
    irregularity_rate_per_year: Annotated[float, Field(gt=0.0, le=5.0)] = 0.30
    product_change: ProductChangeSettings = ProductChangeSettings()
    missingness: MissingnessSettings = MissingnessSettings()
    late_arrival: LateArrivalSettings = LateArrivalSettings()

    @model_validator(mode="after")
    def _ordered(self) -> WorldSettings:
        if self.horizon <= self.start:
            raise ValueError("horizon must be after start")
        return self


class ScenarioSettings(_Section):
    """The embedded world and the faults it injects (all off by default)."""

    world: WorldSettings = WorldSettings()
    serving_skew: ServingSkewSettings = ServingSkewSettings()

    def faults(self) -> list[str]:
        """The fault knobs switched on, by settings key (empty in a clean world)."""
        w, on = self.world, []
        for name in ("product_change", "missingness", "late_arrival"):
            if getattr(w, name).enabled:
                on.append(f"scenario.world.{name}")
        if self.serving_skew.end_shift_hours or self.serving_skew.window_days_offset:
            on.append("scenario.serving_skew")
        return on


def scenario_of(settings: Settings) -> ScenarioSettings:
    """The ``[scenario]`` section of ``settings``, validated (defaults where it is silent);
    a bad key or value is a :class:`SettingsError` naming it (``scenario.world.…``)."""
    return _validated(json.dumps(settings.scenario, sort_keys=True, default=str))


@functools.lru_cache(maxsize=16)
def _validated(section: str) -> ScenarioSettings:
    try:
        return ScenarioSettings.model_validate(json.loads(section))
    except ValidationError as exc:
        problems = [f"scenario.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None


def check_faults(settings: Settings) -> ScenarioSettings:
    """:func:`scenario_of`, refusing a fault switched on with any other source than the
    embedded world (a landing source has nothing to inject it into)."""
    scenario = scenario_of(settings)
    faults = scenario.faults()
    if faults and settings.source.kind != "embedded":
        raise SettingsError(
            f"invalid settings:\n  (root): {', '.join(faults)} switch(es) on fault injection, "
            f"which exists only in the embedded world; source.kind is {settings.source.kind!r}"
        )
    return scenario
