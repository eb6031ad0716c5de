"""One business night, and every time bound that follows from it.

The time contract (``docs/time-contract.md``): daily partitions ``P`` in the business
timezone; ``raw_transactions[P]`` holds events in ``[P 00:00, P+1 00:00)`` local time;
partition ``P`` describes a customer *as of* ``(P + 1 day) 00:00`` local; a ``w``-day
window is ``[as_of − w calendar days, as_of)``; the label looks ``LABEL_HORIZON_DAYS``
ahead of ``as_of``. :class:`Night` computes these once; every asset, check, query and
the demo use it. Timestamps are naive UTC, like the stored ``event_ts``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo

import pandas as pd

from risk_assets.core.contract import Window
from risk_assets.core.features.spec import BOUND_COLUMNS, LABEL_HORIZON_DAYS, LOOKBACK_DAYS, WINDOWS


def _utc(local: dt.datetime) -> pd.Timestamp:
    return pd.Timestamp(local).tz_convert("UTC").tz_localize(None)


@dataclass(frozen=True)
class Night:
    """Business day ``day`` in ``timezone``; ``first_partition`` is the calendar's first
    partition (look-backs never reach before it)."""

    day: dt.date
    timezone: str = "UTC"
    first_partition: dt.date | None = None

    @classmethod
    def of(cls, key: str | dt.date, calendar) -> Night:
        """From a partition key (``YYYY-MM-DD``) or a date and the calendar settings."""
        day = key if isinstance(key, dt.date) else dt.date.fromisoformat(key)
        return cls(day, calendar.timezone, calendar.partitions_start)

    @classmethod
    def horizon_passed(cls, today: dt.date, calendar) -> Night:
        """The night whose label horizon ended with ``today`` began (its labels are known)."""
        return cls.of(today - dt.timedelta(days=LABEL_HORIZON_DAYS + 1), calendar)

    @classmethod
    def from_as_of(cls, as_of: pd.Timestamp, timezone: str) -> Night:
        """The night whose ``as_of`` (naive UTC) this is."""
        local = pd.Timestamp(as_of).tz_localize("UTC").tz_convert(timezone)
        return cls(local.date() - dt.timedelta(days=1), timezone)

    # ------------------------------------------------------------------ identity
    @property
    def key(self) -> str:
        return self.day.isoformat()

    @property
    def weekday(self) -> str:
        return self.day.strftime("%A")

    def shifted(self, days: int) -> Night:
        return Night(self.day + dt.timedelta(days=days), self.timezone, self.first_partition)

    @property
    def previous(self) -> Night:
        return self.shifted(-1)

    # ------------------------------------------------------------------ bounds
    def _midnight(self, day: dt.date) -> pd.Timestamp:
        return _utc(dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(self.timezone)))

    @property
    def window(self) -> Window:
        """The partition's own events: ``[P 00:00, P+1 00:00)`` local, as naive UTC."""
        return Window(self._midnight(self.day), self._midnight(self.day + dt.timedelta(days=1)))

    @property
    def as_of(self) -> pd.Timestamp:
        return self._midnight(self.day + dt.timedelta(days=1))

    def window_start(self, days: int) -> pd.Timestamp:
        """Start of the ``days``-day window ending at ``as_of`` (calendar days, DST-aware:
        across a DST change a 7-day window is 7×24 h ± 1 h of UTC time)."""
        return self._midnight(self.day + dt.timedelta(days=1 - days))

    @property
    def labels_known_after(self) -> dt.date:
        """The last calendar day inside the night's label horizon."""
        return self.day + dt.timedelta(days=LABEL_HORIZON_DAYS)

    def morning_after(self, at: dt.time) -> dt.datetime:
        """The next day at ``at`` (e.g. the 02:30 nightly read), naive like the run config."""
        return dt.datetime.combine(self.day + dt.timedelta(days=1), at)

    @property
    def label_end(self) -> pd.Timestamp:
        return self._midnight(self.day + dt.timedelta(days=1 + LABEL_HORIZON_DAYS))

    @cached_property
    def bounds(self) -> dict[str, pd.Timestamp]:
        """``as_of``, ``start_<w>`` for every window and the look-back, and ``label_end``."""
        out = {"as_of": self.as_of}
        for w in (*WINDOWS, LOOKBACK_DAYS):
            out[f"start_{w}"] = self.window_start(w)
        out["label_end"] = self.label_end
        return out

    def bound_row(self) -> dict[str, pd.Timestamp]:
        """The bounds relation ``b`` the feature spec's SQL reads (``spec.BOUND_COLUMNS``)."""
        return {c: self.bounds[c] for c in BOUND_COLUMNS}

    # ------------------------------------------------------------------ partitions
    def days_back(self, days: int) -> dt.date:
        return self.day - dt.timedelta(days=days)

    def scan_range(self, days: int = LOOKBACK_DAYS) -> tuple[dt.date, dt.date]:
        """Raw partitions a query over the ``days``-day window reads: one spare day on
        each side (partitions are business days, ``event_ts`` is UTC)."""
        return self.day - dt.timedelta(days=days + 1), self.day + dt.timedelta(days=1)

    @property
    def lookback_partitions(self) -> list[dt.date]:
        """Every raw partition the look-back reads, from the calendar's first one on."""
        first = self.day - dt.timedelta(days=LOOKBACK_DAYS)
        if self.first_partition is not None:
            first = max(first, self.first_partition)
        return [first + dt.timedelta(days=i) for i in range((self.day - first).days + 1)]
