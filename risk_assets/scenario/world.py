"""The embedded synthetic world: customers, transactions and irregularity events.

Pure Python (numpy/pandas), deterministic from ``WorldSettings.seed``. Every day is
generated independently from ``(seed, day)``, so any partition can be produced without
generating the others and the world scales to 300k customers without holding 20
months in memory.

The hidden risk process: each customer has a latent hazard of *irregularity events*.
Before most events (80%) the customer's behaviour ramps up over 25–60 days: more
transactions, larger amounts, more money moving through cash, transfers and
gambling. That ramp is what a model on 7/14/30-day windows can learn; the remaining
20% of events have no visible precursor, which keeps the problem honest.

Scenario knobs (all off by default, see ``risk_assets.scenario.settings``):

* product change — from its date the source renames ``money_transfer`` to
  ``p2p_payments``, merges ``travel`` and ``hotels`` into ``travel_and_lodging`` and
  introduces ``bnpl`` (30% of retail) and ``crypto`` (40% of gambling and a share of
  risky activity);
* missingness — ``channel`` is null for a share of rows concentrated in one segment
  or category;
* late arrival — a share of each day's rows arrives the next day at noon UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from risk_assets.scenario.settings import WorldSettings

BASE_CATEGORIES: tuple[str, ...] = (
    "groceries",
    "restaurants",
    "fuel",
    "utilities",
    "retail",
    "travel",
    "hotels",
    "entertainment",
    "online_services",
    "cash_withdrawal",
    "money_transfer",
    "gambling",
)
RISKY_CATEGORIES: tuple[str, ...] = ("cash_withdrawal", "money_transfer", "gambling")
_BASE_WEIGHTS = np.array([22, 14, 9, 6, 16, 3, 2, 7, 8, 6, 5, 2], dtype=float)
_RISKY_WEIGHTS = np.array([0.45, 0.35, 0.20])
_AMOUNT_FACTOR = np.array([1.0, 0.8, 1.2, 2.5, 1.6, 10.0, 7.0, 1.0, 0.6, 2.5, 4.0, 1.5])

# Product change (incident 1): what the source emits from the change date on.
RENAMED = {"money_transfer": "p2p_payments"}
MERGED = {"travel": "travel_and_lodging", "hotels": "travel_and_lodging"}
NEW_CATEGORIES: tuple[str, ...] = ("bnpl", "crypto")

SEGMENTS = ("retail", "premium", "smb", "student")
_SEGMENT_P = np.array([0.60, 0.15, 0.15, 0.10])
_SEGMENT_RATE = np.array([1.0, 1.3, 1.8, 0.8])
_SEGMENT_AMOUNT = np.array([1.0, 2.2, 2.8, 0.5])
_SEGMENT_HAZARD = np.array([1.0, 0.6, 1.2, 1.8])
REGIONS = ("north", "south", "east", "west", "central")
CHANNELS = ("card_present", "online", "atm", "transfer")

# Monday..Sunday: weekends visibly lower.
WEEKDAY_FACTOR = np.array([1.08, 1.05, 1.05, 1.10, 1.22, 0.82, 0.68])
WEEKDAY_FACTOR = WEEKDAY_FACTOR / WEEKDAY_FACTOR.mean()
# Local hour-of-day profile of transactions.
_HOUR_P = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.5, 6, 7, 6.5, 6, 6, 6.5, 7, 7.5, 7, 6, 4.5, 3, 1.8])
_HOUR_P = _HOUR_P / _HOUR_P.sum()

_PRECURSOR_SHARE = 0.8


@dataclass(frozen=True)
class Profile:
    """What makes a world look like one source rather than another: its vocabulary, its
    weekly and monthly rhythm, its public holidays, how its customer base grows and how
    channels follow categories. Two profiles exist: the embedded world, and ``alpine``,
    a second source that differs from it on purpose (see :data:`ALPINE`)."""

    name: str
    categories: tuple[str, ...]
    weights: np.ndarray
    amount_factor: np.ndarray
    risky: tuple[str, ...]
    risky_weights: np.ndarray
    segments: tuple[str, ...]
    segment_p: np.ndarray
    segment_rate: np.ndarray
    segment_amount: np.ndarray
    segment_hazard: np.ndarray
    regions: tuple[str, ...]
    region_p: tuple[float, ...]
    channels: tuple[str, ...]
    weekday_factor: np.ndarray
    renamed: dict
    merged: dict
    new_categories: tuple[str, ...]
    new_from: dict
    """new category -> (existing category it takes rows from, share of those rows)."""
    amount_scale: float = 28.0
    opened_before_share: float = 0.85
    opened_within_days: int = 18 * 30
    holidays: tuple[str, str | None] | None = None
    """(country, subdivision) for the ``holidays`` package: volume drops on public holidays."""
    holiday_factor: float = 1.0
    payday_factor: float = 1.0
    """Volume multiplier on the last weekday of the month and the 1st (salaries arrive)."""
    customer_prefix: str = "C"
    transaction_prefix: str = "TX"
    timezone: str = "UTC"
    """The business timezone a deployment of this source would use."""


EMBEDDED = Profile(
    name="embedded",
    categories=BASE_CATEGORIES,
    weights=_BASE_WEIGHTS,
    amount_factor=_AMOUNT_FACTOR,
    risky=RISKY_CATEGORIES,
    risky_weights=_RISKY_WEIGHTS,
    segments=SEGMENTS,
    segment_p=_SEGMENT_P,
    segment_rate=_SEGMENT_RATE,
    segment_amount=_SEGMENT_AMOUNT,
    segment_hazard=_SEGMENT_HAZARD,
    regions=REGIONS,
    region_p=(0.24, 0.22, 0.2, 0.18, 0.16),
    channels=CHANNELS,
    weekday_factor=WEEKDAY_FACTOR,
    renamed=RENAMED,
    merged=MERGED,
    new_categories=NEW_CATEGORIES,
    new_from={"bnpl": ("retail", 0.30), "crypto": ("gambling", 0.40)},
)

_ALPINE_WEEKDAY = np.array([1.02, 1.0, 1.0, 1.04, 1.30, 1.12, 0.22])  # shops close on Sundays
ALPINE = Profile(
    name="alpine",
    categories=(
        "supermarket",
        "gastronomy",
        "petrol",
        "energy_bill",
        "fashion",
        "pharmacy",
        "travel_agency",
        "streaming",
        "atm_cash",
        "sepa_transfer",
        "sports_betting",
        "insurance",
    ),
    weights=np.array([26, 11, 8, 5, 12, 6, 4, 6, 9, 7, 3, 3], dtype=float),
    amount_factor=np.array([0.9, 0.9, 1.5, 3.0, 2.0, 0.7, 12.0, 0.4, 3.0, 5.0, 1.2, 4.0]),
    risky=("atm_cash", "sepa_transfer", "sports_betting"),
    risky_weights=np.array([0.40, 0.40, 0.20]),
    segments=("private", "business", "youth", "senior"),
    segment_p=np.array([0.55, 0.12, 0.13, 0.20]),
    segment_rate=np.array([1.0, 2.2, 0.9, 0.6]),
    segment_amount=np.array([1.0, 3.5, 0.4, 0.9]),
    segment_hazard=np.array([1.0, 1.4, 1.6, 0.5]),
    regions=("wien", "tirol", "steiermark", "salzburg"),
    region_p=(0.40, 0.20, 0.25, 0.15),
    channels=("pos", "ecommerce", "atm", "sepa", "mobile_wallet"),
    weekday_factor=_ALPINE_WEEKDAY / _ALPINE_WEEKDAY.mean(),
    renamed={"sepa_transfer": "instant_payment"},
    merged={"travel_agency": "leisure", "streaming": "leisure"},
    new_categories=("pay_later", "crypto_exchange"),
    new_from={"pay_later": ("fashion", 0.35), "crypto_exchange": ("sports_betting", 0.45)},
    amount_scale=41.0,
    opened_before_share=0.55,
    opened_within_days=900,
    holidays=("AT", None),
    holiday_factor=0.3,
    payday_factor=1.45,
    customer_prefix="K-",
    transaction_prefix="AT",
    timezone="Europe/Vienna",
)
PROFILES: dict[str, Profile] = {p.name: p for p in (EMBEDDED, ALPINE)}


def emitted_category_names(product_change: bool, profile: Profile = EMBEDDED) -> list[str]:
    """Category strings the source emits before (False) or after (True) the change."""
    if not product_change:
        return list(profile.categories)
    names = [profile.renamed.get(c, profile.merged.get(c, c)) for c in profile.categories]
    return list(dict.fromkeys(names + list(profile.new_categories)))


@dataclass(frozen=True)
class _Customers:
    ids: np.ndarray
    segment: np.ndarray  # int index into SEGMENTS
    region: np.ndarray
    opened_day: np.ndarray  # days since world.start (may be negative)
    opened_at: np.ndarray  # datetime64[s] UTC
    rate: np.ndarray
    amount_scale: np.ndarray
    pref_cum: np.ndarray  # (n, len(BASE_CATEGORIES)) cumulative preference


@dataclass(frozen=True)
class _Events:
    customer: np.ndarray
    day: np.ndarray  # days since world.start
    seconds: np.ndarray
    ramp_days: np.ndarray
    strength: np.ndarray


class World:
    """A deterministic synthetic world; cheap to construct, lazy to generate."""

    def __init__(self, settings: WorldSettings, timezone: str = "UTC"):
        self.settings = settings
        self.tz = ZoneInfo(timezone)
        self.profile = PROFILES[settings.profile]

    @cached_property
    def _holidays(self) -> set[dt.date]:
        p = self.profile
        if p.holidays is None:
            return set()
        import holidays

        years = range(self.settings.start.year, self.settings.horizon.year + 1)
        return set(holidays.country_holidays(p.holidays[0], subdiv=p.holidays[1], years=years))

    def day_factor(self, day: dt.date) -> float:
        """Volume multiplier of a calendar day: public holidays and paydays (1.0 when the
        profile has neither, so the embedded world's draws are unchanged)."""
        p = self.profile
        if day in self._holidays:
            return p.holiday_factor
        last = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        while last.weekday() >= 5:
            last -= dt.timedelta(days=1)
        return p.payday_factor if day in (last, day.replace(day=1)) else 1.0

    # ------------------------------------------------------------------ customers
    @cached_property
    def _customers(self) -> _Customers:
        s, p = self.settings, self.profile
        rng = np.random.default_rng([s.seed, 1])
        n = s.n_customers
        segment = rng.choice(len(p.segments), size=n, p=p.segment_p)
        region = rng.choice(len(p.regions), size=n, p=list(p.region_p))
        # Most accounts exist before the world starts, the rest open during it (the embedded
        # world: 85% before, 15% in its first 18 months; alpine grows for 2.5 years).
        before = rng.random(n) < p.opened_before_share
        opened_day = np.where(before, -rng.integers(30, 8 * 365, size=n), rng.integers(0, p.opened_within_days, size=n))
        opened_at = (
            np.datetime64(s.start, "s")
            + opened_day.astype("timedelta64[D]").astype("timedelta64[s]")
            + rng.integers(8 * 3600, 20 * 3600, size=n).astype("timedelta64[s]")
        )
        rate = s.mean_daily_transactions * p.segment_rate[segment] * rng.lognormal(-0.32, 0.8, n)
        rate = rate * (s.mean_daily_transactions / max(rate.mean(), 1e-12))
        amount_scale = p.amount_scale * p.segment_amount[segment] * rng.lognormal(0.0, 0.45, n)
        prefs = rng.dirichlet(p.weights * 1.5, size=n)
        ids = np.char.add(p.customer_prefix, np.char.zfill(np.arange(1, n + 1).astype(str), 7))
        return _Customers(
            ids=ids,
            segment=segment,
            region=region,
            opened_day=opened_day,
            opened_at=opened_at,
            rate=rate,
            amount_scale=amount_scale,
            pref_cum=np.cumsum(prefs, axis=1),
        )

    def customers(self) -> pd.DataFrame:
        c = self._customers
        return pd.DataFrame(
            {
                "customer_id": c.ids.astype(object),
                "segment": np.array(self.profile.segments, dtype=object)[c.segment],
                "region": np.array(self.profile.regions, dtype=object)[c.region],
                "opened_at": pd.to_datetime(c.opened_at),
            }
        )

    # ------------------------------------------------------------------ risk events
    @cached_property
    def _events(self) -> _Events:
        s = self.settings
        c = self._customers
        rng = np.random.default_rng([s.seed, 2])
        n_days = (s.horizon - s.start).days
        hazard = (
            s.irregularity_rate_per_year
            / 365.0
            * self.profile.segment_hazard[c.segment]
            * rng.lognormal(-0.72, 1.2, c.ids.size)
        )
        # Busier customers carry a little more risk (a static signal).
        hazard = hazard * (c.rate / c.rate.mean()) ** 0.3
        counts = rng.poisson(hazard * n_days)
        customer = np.repeat(np.arange(c.ids.size), counts)
        day = rng.integers(0, n_days, size=customer.size)
        # No event before the account exists (+30 days of history).
        day = np.maximum(day, c.opened_day[customer] + 30)
        keep = day < n_days
        customer, day = customer[keep], day[keep]
        m = customer.size
        strength = np.where(rng.random(m) < _PRECURSOR_SHARE, rng.uniform(1.5, 5.0, m), 0.0)
        order = np.lexsort((day, customer))
        return _Events(
            customer=customer[order],
            day=day[order],
            seconds=rng.integers(0, 86_400, size=m)[order],
            ramp_days=rng.integers(25, 61, size=m)[order],
            strength=strength[order],
        )

    def irregularities(self) -> pd.DataFrame:
        e = self._events
        ts = (
            np.datetime64(self.settings.start, "s")
            + e.day.astype("timedelta64[D]").astype("timedelta64[s]")
            + e.seconds.astype("timedelta64[s]")
        )
        return pd.DataFrame(
            {
                "customer_id": self._customers.ids[e.customer].astype(object),
                "event_ts": pd.to_datetime(ts),
            }
        )

    def _ramp(self, day_index: int) -> np.ndarray:
        """Per-customer precursor intensity on a day (0 = normal behaviour)."""
        e = self._events
        ramp = np.zeros(self._customers.ids.size)
        active = (e.day - e.ramp_days <= day_index) & (day_index < e.day) & (e.strength > 0)
        if active.any():
            progress = 1.0 - (e.day[active] - day_index) / e.ramp_days[active]
            np.maximum.at(ramp, e.customer[active], e.strength[active] * (0.3 + 0.7 * progress))
        return ramp

    # ------------------------------------------------------------------ transactions
    def transactions(self, day: dt.date) -> pd.DataFrame:
        """All transactions whose business-local date is ``day``.

        Columns: transaction_id, customer_id, event_ts (naive UTC), amount, category,
        channel, arrival_ts (naive UTC, when the row reaches the source).
        """
        s, p = self.settings, self.profile
        c = self._customers
        day_index = (day - s.start).days
        columns = ["transaction_id", "customer_id", "event_ts", "amount", "category", "channel"]
        if day_index < 0:
            return pd.DataFrame({k: pd.Series(dtype=object) for k in columns + ["arrival_ts"]})
        rng = np.random.default_rng([s.seed, 3, day_index])
        ramp = self._ramp(day_index)
        rate = c.rate * p.weekday_factor[day.weekday()] * (1.0 + ramp) * (c.opened_day <= day_index)
        factor = self.day_factor(day)
        if factor != 1.0:
            rate = rate * factor
        counts = rng.poisson(rate)
        who = np.repeat(np.arange(c.ids.size), counts)
        n = who.size
        r = ramp[who]

        # Categories: the customer's own mix, or risky money movement under a ramp.
        risky_p = np.clip(0.22 * r, 0.0, 0.8)
        u = rng.random(n)
        own = (c.pref_cum[who] < u[:, None]).sum(axis=1)
        own = np.minimum(own, len(p.categories) - 1)
        risky = np.array([p.categories.index(x) for x in p.risky])[rng.choice(len(p.risky), size=n, p=p.risky_weights)]
        cat_idx = np.where(rng.random(n) < risky_p, risky, own)
        amount = c.amount_scale[who] * p.amount_factor[cat_idx] * rng.lognormal(0.0, 0.7, n) * (1.0 + 0.45 * r)
        amount = np.round(np.maximum(amount, 0.5), 2)
        category = np.array(p.categories, dtype=object)[cat_idx]
        channel = self._channels(rng, category)

        pc = s.product_change
        if pc.enabled and day >= pc.date:
            category, channel = self._product_change(rng, category, channel, r)

        # Timestamps: local hour profile, converted to naive UTC.
        seconds = rng.choice(24, size=n, p=_HOUR_P) * 3600 + rng.integers(0, 3600, size=n)
        local = pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s")
        event_ts = (
            pd.DatetimeIndex(local)
            .tz_localize(self.tz, nonexistent="shift_forward", ambiguous=np.ones(n, dtype=bool))
            .tz_convert("UTC")
            .tz_localize(None)
        )

        mi = s.missingness
        if mi.enabled and mi.date <= day < mi.date + dt.timedelta(days=mi.days):
            target = self._missingness_target(mi.concentrate_in, who, category)
            share_in_target = target.mean() if n else 0.0
            prob = min(1.0, mi.share / share_in_target) if share_in_target > 0 else 0.0
            channel[target & (rng.random(n) < prob)] = None

        arrival = event_ts + pd.to_timedelta(rng.integers(60, 3600, size=n), unit="s")
        la = s.late_arrival
        if la.enabled and day >= la.date:
            late = rng.random(n) < la.share
            next_noon = pd.Timestamp(day + dt.timedelta(days=1)) + pd.Timedelta(hours=12)
            late_at = next_noon + pd.to_timedelta(rng.integers(0, 6 * 3600, size=n), unit="s")
            arrival = pd.DatetimeIndex(np.where(late, late_at, arrival))

        frame = pd.DataFrame(
            {
                "customer_id": c.ids[who].astype(object),
                "event_ts": event_ts,
                "amount": amount,
                "category": category,
                "channel": channel,
                "arrival_ts": arrival,
            }
        ).sort_values(["event_ts", "customer_id"], kind="stable", ignore_index=True)
        frame.insert(
            0,
            "transaction_id",
            [f"{p.transaction_prefix}{day:%Y%m%d}{i:07d}" for i in range(len(frame))],
        )
        return frame

    def _missingness_target(self, spec: str, who: np.ndarray, category: np.ndarray) -> np.ndarray:
        if spec == "all":
            return np.ones(who.size, dtype=bool)
        kind, name = spec.split(":", 1)
        if kind == "segment":
            return np.array(self.profile.segments, dtype=object)[self._customers.segment[who]] == name
        if kind == "region":
            return np.array(self.profile.regions, dtype=object)[self._customers.region[who]] == name
        return category == name

    def _channels(self, rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
        n = category.size
        if self.profile.name == "embedded":
            channel = np.where(rng.random(n) < 0.62, "card_present", "online").astype(object)
            channel[category == "cash_withdrawal"] = "atm"
            transfer = category == "money_transfer"
            channel[transfer] = np.where(rng.random(transfer.sum()) < 0.8, "transfer", "online")
            channel[np.isin(category, ["online_services", "gambling"])] = "online"
            return channel
        # alpine: card at the till, web shops, a growing share of phone wallets
        channel = np.array(["pos", "ecommerce", "mobile_wallet"], dtype=object)[
            rng.choice(3, size=n, p=[0.55, 0.28, 0.17])
        ]
        channel[category == "atm_cash"] = "atm"
        sepa = category == "sepa_transfer"
        channel[sepa] = np.where(rng.random(sepa.sum()) < 0.85, "sepa", "mobile_wallet")
        channel[np.isin(category, ["streaming", "sports_betting"])] = "ecommerce"
        return channel

    def _product_change(self, rng, category, channel, ramp) -> tuple[np.ndarray, np.ndarray]:
        p = self.profile
        n = category.size
        category = np.array([p.renamed.get(x, p.merged.get(x, x)) for x in category], dtype=object)
        online = "online" if p.name == "embedded" else "ecommerce"
        renamed_risky = next(iter(p.renamed.values()))
        moved = np.zeros(n, dtype=bool)
        for new, (source, share) in p.new_from.items():
            take = (category == source) & (rng.random(n) < share)
            if new == p.new_categories[-1]:  # the risky newcomer also takes risky transfers
                take |= (ramp > 0) & (category == renamed_risky) & (rng.random(n) < 0.35)
            category[take] = new
            moved |= take
        channel[moved] = online
        return category, channel
