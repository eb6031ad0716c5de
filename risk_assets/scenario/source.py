"""The embedded world as a source system, its deployment (the source, and the configured
engine with the scenario's faults injected), and its export in the landing layout."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from risk_assets.engines import EngineFactory
from risk_assets.scenario.faults import SkewedServingFactory, active
from risk_assets.scenario.settings import scenario_of
from risk_assets.scenario.world import World
from risk_assets.settings import Settings
from risk_assets.sources import DayListing, Entry, tag


class EmbeddedSource:
    """The synthetic world as if it were a source system (its own faults — the product
    change, the missingness burst, late data — are in the rows it hands over)."""

    name = "embedded"

    def __init__(self, settings: Settings):
        self.world = World(scenario_of(settings).world, settings.calendar.timezone)

    def customers(self) -> pd.DataFrame:
        return tag(self.world.customers(), "embedded:customers")

    def irregularities(self) -> pd.DataFrame:
        return tag(self.world.irregularities(), "embedded:irregularities")

    def transactions(self, day: dt.date, read_at: pd.Timestamp | None = None) -> pd.DataFrame:
        """``read_at`` (naive UTC): only rows that had arrived by then (late data)."""
        frame = self.world.transactions(day)
        if read_at is not None:
            frame = frame[frame["arrival_ts"] <= read_at]
        return tag(frame.drop(columns="arrival_ts").reset_index(drop=True), f"embedded:{day}")

    def listing(self, day: dt.date) -> DayListing:
        return DayListing()  # no files: the rows come from the generator

    def layout_problems(self) -> list[Entry]:
        return []


_EMBEDDED: dict[str, EmbeddedSource] = {}


def embedded_source(settings: Settings) -> EmbeddedSource:
    """Shared per settings version within a process: the raw asset and the late-arrival
    check read the same world, and generating 300k customers again costs ~0.3 s."""
    key = settings.version()
    if key not in _EMBEDDED:
        _EMBEDDED.clear()  # one world at a time
        _EMBEDDED[key] = EmbeddedSource(settings)
    return _EMBEDDED[key]


def deployment(settings: Settings, engine: EngineFactory) -> tuple[EmbeddedSource, EngineFactory]:
    """The embedded world as a deployment: its source, and ``engine`` with the scenario's
    serving-skew fault injected when it is switched on."""
    skew = scenario_of(settings).serving_skew
    return embedded_source(settings), SkewedServingFactory(engine, skew) if active(skew) else engine


def export_landing(settings: Settings, root: Path, days: list[dt.date]) -> None:
    """Write the embedded world in the landing layout (an example of the contract)."""
    world = World(scenario_of(settings).world, settings.calendar.timezone)
    root.mkdir(parents=True, exist_ok=True)
    world.customers().to_parquet(root / "customers.parquet", index=False)
    world.irregularities().to_parquet(root / "irregularities.parquet", index=False)
    for day in days:
        folder = root / "transactions" / f"date={day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = world.transactions(day).drop(columns="arrival_ts")
        frame.to_parquet(folder / "part-0.parquet", index=False)
