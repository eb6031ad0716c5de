import datetime as dt

import numpy as np
import pandas as pd
import pandas.testing as pdt

from risk_assets.scenario.settings import scenario_of
from risk_assets.scenario.world import BASE_CATEGORIES, NEW_CATEGORIES, World, emitted_category_names
from risk_assets.settings import Settings

DAY = dt.date(2025, 6, 2)


def world(**overrides) -> World:
    return World(scenario_of(Settings().with_overrides(scenario={"world": {"n_customers": 3000, **overrides}})).world)


def test_same_seed_gives_identical_data_twice():
    a, b = world(), world()
    pdt.assert_frame_equal(a.customers(), b.customers())
    pdt.assert_frame_equal(a.irregularities(), b.irregularities())
    pdt.assert_frame_equal(a.transactions(DAY), b.transactions(DAY))
    other = world(seed=1)
    assert not other.transactions(DAY).equals(a.transactions(DAY))


def test_days_are_independent_of_generation_order():
    w1, w2 = world(), world()
    late_first = w1.transactions(DAY + dt.timedelta(days=30))
    w2.transactions(DAY)
    pdt.assert_frame_equal(late_first, w2.transactions(DAY + dt.timedelta(days=30)))


def test_shapes_ids_and_timestamps_follow_the_contract():
    w = world()
    tx = w.transactions(DAY)
    assert tx["transaction_id"].is_unique
    assert set(tx["customer_id"]) <= set(w.customers()["customer_id"])
    assert (tx["event_ts"] >= pd.Timestamp(DAY)).all()
    assert (tx["event_ts"] < pd.Timestamp(DAY + dt.timedelta(days=1))).all()
    assert (tx["amount"] > 0).all()
    assert set(tx["category"]) <= set(BASE_CATEGORIES)


def test_weekends_are_visibly_lower():
    w = world()
    days = [DAY + dt.timedelta(days=i) for i in range(56)]
    counts = pd.Series({d: len(w.transactions(d)) for d in days})
    weekend = counts[[d.weekday() >= 5 for d in days]].mean()
    weekday = counts[[d.weekday() < 5 for d in days]].mean()
    assert weekend < 0.8 * weekday


def test_non_utc_business_day_maps_to_its_utc_window():
    s = Settings().with_overrides(scenario={"world": {"n_customers": 2000}}, calendar={"timezone": "America/New_York"})
    tx = World(scenario_of(s).world, s.calendar.timezone).transactions(dt.date(2025, 3, 9))  # DST starts
    start = pd.Timestamp("2025-03-09 05:00")  # 00:00 EST
    end = pd.Timestamp("2025-03-10 04:00")  # 00:00 EDT: a 23-hour day
    assert (tx["event_ts"] >= start).all() and (tx["event_ts"] < end).all()


def test_product_change_renames_merges_and_adds_categories_from_its_date():
    change = dt.date(2025, 6, 10)
    w = world(product_change={"enabled": True, "date": change.isoformat()})
    before = set(w.transactions(change - dt.timedelta(days=1))["category"])
    after = set().union(*(set(w.transactions(change + dt.timedelta(days=i))["category"]) for i in range(3)))
    assert before <= set(BASE_CATEGORIES)
    assert set(NEW_CATEGORIES) <= after
    assert "p2p_payments" in after and "money_transfer" not in after  # renamed
    assert "travel_and_lodging" in after and not {"travel", "hotels"} & after  # merged
    assert after <= set(emitted_category_names(True))
    clean = world()
    clean_after = set().union(*(set(clean.transactions(change + dt.timedelta(days=i))["category"]) for i in range(3)))
    assert clean_after <= set(BASE_CATEGORIES)


def test_missingness_is_non_random_and_near_its_share():
    start = dt.date(2025, 6, 10)
    w = world(missingness={"enabled": True, "date": start.isoformat(), "share": 0.12, "concentrate_in": "segment:smb"})
    seg = w.customers().set_index("customer_id")["segment"]
    tx = w.transactions(start)
    missing = tx["channel"].isna()
    assert 0.09 < missing.mean() < 0.15
    assert (seg[tx.loc[missing, "customer_id"]] == "smb").all()
    assert w.transactions(start - dt.timedelta(days=1))["channel"].notna().all()


def test_late_arrival_withholds_a_share_until_the_next_day():
    start = dt.date(2025, 6, 10)
    w = world(n_customers=10_000, late_arrival={"enabled": True, "date": start.isoformat(), "share": 0.2})
    late = []
    for day in (start, start + dt.timedelta(days=1)):
        tx = w.transactions(day)
        cutoff = pd.Timestamp(day + dt.timedelta(days=1)) + pd.Timedelta(hours=2, minutes=30)
        late.append(tx["arrival_ts"] > cutoff)
    assert 0.16 < pd.concat(late).mean() < 0.24
    before = w.transactions(start - dt.timedelta(days=1))
    assert (before["arrival_ts"] <= pd.Timestamp(start) + pd.Timedelta(hours=2, minutes=30)).all()


def test_irregularities_follow_a_visible_precursor():
    """Customers shortly before an event transact more than everyone else (learnable)."""
    w = world(n_customers=6000)
    irr = w.irregularities()
    day = dt.date(2025, 9, 1)
    upcoming = irr[
        (irr["event_ts"] >= pd.Timestamp(day)) & (irr["event_ts"] < pd.Timestamp(day) + pd.Timedelta(days=14))
    ]
    tx = pd.concat([w.transactions(day - dt.timedelta(days=i)) for i in range(1, 15)])
    per_customer = tx.groupby("customer_id").size().reindex(w.customers()["customer_id"], fill_value=0)
    risky = per_customer[per_customer.index.isin(upcoming["customer_id"])].mean()
    assert risky > 1.5 * per_customer.mean()
    assert len(upcoming) > 20
    assert np.isfinite(risky)
