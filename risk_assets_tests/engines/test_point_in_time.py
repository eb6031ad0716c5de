"""Customer attributes are versioned, and every feature row reads the version valid at its
own as-of: serving tonight's, training each as-of day's (a feature store's point-in-time
join of a dimension table). A segment changed mid-history shows on both sides of the change."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from risk_assets.core.night import Night
from risk_assets.defs.raw import load_customers
from risk_assets.defs.resources import duckdb_resource, open_warehouse
from risk_assets.engines import executions as fsql
from risk_assets.sources.landing import LandingSource
from risk_assets.store import registry, warehouse

CHANGE = dt.date(2025, 7, 15)


def change_segments(conn, settings, folder, day: dt.date, n: int = 60) -> pd.DataFrame:
    """Deliver the customers file again with ``n`` active customers moved to another segment,
    valid from ``day``'s as-of (through the real load: versions, deliveries, changes).
    Returns ``customer_id, old, new``."""
    as_of = Night.of(day, settings.calendar).as_of
    current = warehouse.customers_valid_at(conn, as_of - pd.Timedelta(microseconds=1))
    current = current[["customer_id", "segment", "region", "opened_at"]]
    active = warehouse.frame(
        conn,
        "SELECT DISTINCT customer_id FROM raw_transactions WHERE partition BETWEEN ? AND ? ORDER BY customer_id",
        [day - dt.timedelta(days=20), day + dt.timedelta(days=20)],
    )["customer_id"]
    chosen = active.iloc[:: max(1, len(active) // n)].head(n)
    segments = sorted(current["segment"].unique())
    moved = current.set_index("customer_id")
    old = moved.loc[chosen, "segment"]
    moved.loc[chosen, "segment"] = [segments[(segments.index(v) + 1) % len(segments)] for v in old]
    (folder / "landing").mkdir(exist_ok=True)
    moved.reset_index().to_parquet(folder / "landing" / "customers.parquet", index=False)
    meta, reconciled, _ = load_customers(conn, LandingSource.at(folder / "landing"), settings, valid_from=as_of)
    assert reconciled.passed and meta["changed_customers"] == len(chosen) and meta["new_version_recorded"]
    return pd.DataFrame(
        {"customer_id": chosen.to_numpy(), "old": old.to_numpy(), "new": moved.loc[chosen, "segment"].to_numpy()}
    )


def test_training_rows_carry_the_attributes_valid_at_their_as_of_and_serving_equals_training(world_copy):
    settings = world_copy()
    vocabulary = settings.features.vocabulary()
    with open_warehouse(duckdb_resource(settings)) as conn:
        version = registry.current_mapping_version(conn)
        moved = change_segments(conn, settings, world_copy.folder, CHANGE)
        ids = list(moved["customer_id"])
        before = [Night.of(CHANGE - dt.timedelta(days=d), settings.calendar) for d in (10, 1)]
        after = [Night.of(CHANGE + dt.timedelta(days=d), settings.calendar) for d in (0, 9)]
        training = fsql.training_features(conn, before + after, version, vocabulary, customers=ids)
        training["when"] = training["as_of"].map(lambda a: "after" if a >= after[0].as_of else "before")
        seen = training.merge(moved, on="customer_id")
        assert (seen["when"] == "before").sum() > 20 and (seen["when"] == "after").sum() > 20
        early, late = seen[seen["when"] == "before"], seen[seen["when"] == "after"]
        assert (early["segment"] == early["old"]).all() and (late["segment"] == late["new"]).all()

        # serving on both sides equals the training path at the same as-of, attributes included
        for night in (before[-1], after[0]):
            serving = fsql.serving_features(conn, night, version, vocabulary)
            mine = serving[serving["customer_id"].isin(ids)].reset_index(drop=True)
            again = fsql.training_features(conn, [night], version, vocabulary, customers=ids)
            pd.testing.assert_frame_equal(mine, again, check_exact=True)
        # the ledger of the delivery: who changed, from what to what
        deliveries = warehouse.customer_deliveries(conn)
        assert deliveries["changed_customers"].iloc[-1] == len(ids) and not deliveries["superseded"].iloc[-1]
        changes = warehouse.customer_changes(conn, deliveries["version"].iloc[-1], deliveries["valid_from"].iloc[-1])
        assert set(changes["customer_id"]) == set(ids) and set(changes["attribute"]) == {"segment"}


def test_a_later_delivery_from_an_earlier_time_supersedes_and_the_first_load_is_valid_from_the_beginning(world_copy):
    settings = world_copy()
    with open_warehouse(duckdb_resource(settings)) as conn:
        first = warehouse.customer_deliveries(conn)
        assert len(first) == 1 and first["valid_from"].iloc[0] == warehouse.BEGINNING
        late = change_segments(conn, settings, world_copy.folder, CHANGE + dt.timedelta(days=30))
        early = change_segments(conn, settings, world_copy.folder, CHANGE)  # re-delivered, dated earlier
        deliveries = warehouse.customer_deliveries(conn)
        assert deliveries["superseded"].tolist() == [False, True, False]
        at = Night.of(CHANGE + dt.timedelta(days=40), settings.calendar).as_of
        valid = warehouse.customers_valid_at(conn, at).set_index("customer_id")
        assert (valid.loc[early["customer_id"], "segment"].to_numpy() == early["new"].to_numpy()).all()
        assert len(valid) == warehouse.count(conn, "customers")  # one version per customer at any time
        untouched = sorted(set(late["customer_id"]) - set(early["customer_id"]))
        original = warehouse.customers_valid_at(conn, warehouse.BEGINNING).set_index("customer_id")
        assert untouched and (valid.loc[untouched, "segment"] == original.loc[untouched, "segment"]).all()
