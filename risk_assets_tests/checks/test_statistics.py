"""The checks' statistics as engine aggregates (the statistic section of each check family,
``risk_assets/checks/<family>.py``).

Each aggregate must equal its definition computed from the partition's rows (the pandas
helpers the guards document): on hand-made edge cases here, and on real incident nights
(:func:`assert_statistics_match_rows`, called by the incident tests after their nights).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from risk_assets.checks import (
    PartitionCache,
    PartitionStore,
    Step,
    amounts,
    coverage,
    daily,
    drift,
    imputation,
    landing,
    lookback,
    rejections,
    replays,
)
from risk_assets.checks import profile as night_profile
from risk_assets.checks.coverage import category_coverage, night_counts
from risk_assets.checks.drift import profile
from risk_assets.checks.imputation import (
    category_usage,
    contingency,
    coverage_cells,
    ledger_counts,
)
from risk_assets.core import stats
from risk_assets.core.features.encoding import UNSEEN_CATEGORY
from risk_assets.core.features.spec import FEATURES, NUMERIC, WINDOWS
from risk_assets.core.night import Night
from risk_assets.engines import DuckDBEngine
from risk_assets.settings import Settings
from risk_assets.store import registry, warehouse
from risk_assets_tests.checks.test_guards import _mapping, _night

DAY = dt.date(2025, 3, 4)


@pytest.fixture
def conn(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as c:
        yield c


def drift_counts(q, night, settings):
    """The drift check's loaded counts on engine ``q``."""
    return drift.load(Step(q, night, settings, source=None)).args


def _raw(night: pd.DataFrame) -> pd.DataFrame:
    return night.assign(
        partition=DAY,
        customer_id="C1",
        event_ts=pd.Timestamp(DAY),
        amount=night["amount_cents"] / 100,
        channel=None,
        source_file="f",
    )


def test_drift_bins_in_sql_are_numpys_bins_on_edges_and_non_finite_values(conn):
    feature = NUMERIC[0]
    edges = [0.0, 1.5, 2.0, 1e300]
    values = [-np.inf, -1e308, 0.0, 1e-300, 1.5, 1.5000000000000002, 2.0, 3.0, 1e300, 1.7e308, np.inf, np.nan, None]
    frame = pd.DataFrame(
        {
            "partition": DAY,
            "customer_id": [f"C{i}" for i in range(len(values))],
            "as_of": pd.Timestamp(DAY),
            "spec_version": "s",
            "mapping_version": "m",
            "model_version": "v",
            **{f.name: 0.0 if f.kind == "numeric" else "a" for f in FEATURES},
        }
    )
    frame[feature] = np.array(values[:-2] + [0.0, 0.0], dtype="float64")  # NaN and NULL set in SQL below
    warehouse.insert(conn, "encoded_features", frame)
    conn.execute(f"UPDATE encoded_features SET {feature} = NULL WHERE customer_id = ?", [f"C{len(values) - 1}"])
    conn.execute(
        f"UPDATE encoded_features SET {feature} = 'NaN'::DOUBLE WHERE customer_id = ?", [f"C{len(values) - 2}"]
    )
    ours = drift.bin_counts(DuckDBEngine(conn), DAY, {feature: edges})[feature]
    expected = stats.bin_counts(np.array(values[:-1], dtype="float64"), edges)
    np.testing.assert_array_equal(ours, expected)
    assert ours.sum() == 9  # NULL, NaN and ±inf are not counted, exactly as numpy drops them


def test_category_aggregates_equal_the_rows_and_a_capped_sample_keeps_the_suggestions(conn):
    night = _night({"groceries": (600, 3.0), "fuel": (210, 3.5), "p2p": (95, 4.5), "trips": (88, 5.8)})
    warehouse.insert(conn, "raw_transactions", _raw(night))
    mapping = _mapping().assign(version="m1")
    warehouse.insert(conn, "category_mapping", mapping)
    counts, unmapped = night_counts(night, mapping)
    q = DuckDBEngine(conn)
    ours = coverage.category_counts(q, DAY)
    pd.testing.assert_frame_equal(
        ours[["category", "rows", "amount_cents"]], counts[["category", "rows", "amount_cents"]], check_dtype=False
    )
    np.testing.assert_allclose(ours["mean_log"], counts["mean_log"], rtol=1e-13)
    pd.testing.assert_frame_equal(
        coverage.unmapped_rows(q, DAY, "m1"), unmapped.reset_index(drop=True), check_dtype=False
    )

    capped = coverage.unmapped_rows(q, DAY, "m1", cap=20)
    assert capped.groupby("category").size().to_dict() == {"p2p": 20, "trips": 20}
    full = category_coverage(ours, unmapped, mapping, 0.005)
    sample = category_coverage(ours, capped, mapping, 0.005)
    assert sample.figures == full.figures  # counts come from the aggregate, never from the sample
    columns = ["category", "kind", "replaces", "alias_to", "rows"]
    pd.testing.assert_frame_equal(sample.tables["suggestions"][columns], full.tables["suggestions"][columns])


def assert_statistics_match_rows(conn, day: dt.date, settings, tested: bool | None = None) -> None:
    """Every aggregate a check reads for ``day`` equals its definition on the stored rows
    (``tested``: whether some feature has enough cells, not coverage's, for missingness
    tests; None: either)."""
    q = DuckDBEngine(conn)
    night = Night.of(day, settings.calendar)
    raw = warehouse.frame(
        conn,
        "SELECT partition, transaction_id, customer_id, category, amount_cents, channel "
        "FROM raw_transactions WHERE partition BETWEEN ? AND ?",
        [night.days_back(28), day],
    )
    raw["partition"] = pd.to_datetime(raw["partition"]).dt.date
    history, raw = raw, raw[raw["partition"] == day]
    version = registry.current_mapping_version(conn)
    mapping = registry.mapping(conn)
    counts, unmapped = night_counts(raw, mapping)
    ours = coverage.category_counts(q, day)
    assert ours["rows"].sum() == len(raw) > 0
    pd.testing.assert_frame_equal(
        ours[["category", "rows", "amount_cents"]], counts[["category", "rows", "amount_cents"]], check_dtype=False
    )
    np.testing.assert_allclose(ours["mean_log"], counts["mean_log"], rtol=1e-12)
    pd.testing.assert_frame_equal(
        coverage.unmapped_rows(q, day, version), unmapped.reset_index(drop=True), check_dtype=False
    )
    channels = raw["channel"].value_counts(dropna=False)
    counted = coverage.value_counts(q, day, "channel")
    assert dict(zip(counted["value"].map(lambda v: v if isinstance(v, str) else None), counted["rows"])) == {
        (k if isinstance(k, str) else None): v for k, v in channels.items()
    }

    levels = amounts.levels(q, night.days_back(28), day)
    expected_levels = amounts.levels_of(history)
    pd.testing.assert_frame_equal(
        levels[["partition", "category", "rows"]], expected_levels[["partition", "category", "rows"]], check_dtype=False
    )
    np.testing.assert_allclose(levels["mean_log"], expected_levels["mean_log"], rtol=1e-12)
    pd.testing.assert_frame_equal(
        amounts.top_amounts(q, night.days_back(28), day), amounts.top_amounts_of(history), check_dtype=False
    )
    customers = warehouse.frame(conn, "SELECT customer_id, segment, region FROM customers")
    pd.testing.assert_frame_equal(
        night_profile.profile(q, night.days_back(28), day, version),
        night_profile.profile_of(history, customers, mapping),
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(
        lookback.last_days(q, night.days_back(28), day), lookback.last_days_of(history), check_dtype=False
    )
    # through steps sharing one partition cache (a history load): ranges asked in pieces,
    # overlapping, before and after a partition is forgotten, are the engine's own frames
    cache = PartitionCache()
    pieces = ((night.days_back(10), day - dt.timedelta(days=3)), (night.days_back(28), day), (night.days_back(5), day))
    for i, (first, last) in enumerate(pieces):
        if i == 2:
            cache.forget(day - dt.timedelta(days=2))
        step = Step.sharing(cache, q, Night.of(last, settings.calendar), settings, source=None)
        for read in (
            amounts.levels,
            amounts.top_amounts,
            lambda e, a, b: night_profile.profile(e, a, b, version),
        ):
            pd.testing.assert_frame_equal(read(step, first, last), read(q, first, last))
    # kept in the warehouse by one load, read back by the next: the engine's own frames
    for load in range(2):
        store = PartitionStore(conn, q.name, write=True)
        step = Step.sharing(PartitionCache(store), q, night, settings, source=None)
        for read in (amounts.levels, amounts.top_amounts, lambda e, a, b: night_profile.profile(e, a, b, version)):
            pd.testing.assert_frame_equal(read(step, night.days_back(28), day), read(q, night.days_back(28), day))
        store.flush()
        if load:  # every partition of the three statistics, rows or none
            assert store.read == 3 * ((day - night.days_back(28)).days + 1) and store.kept == 0
    vocabulary = settings.features.vocabulary()
    expected_daily = daily.aggregates_of(
        history,
        mapping,
        registry.channels(conn, version),
        list(vocabulary.online),
        [*vocabulary.cash, *vocabulary.transfer, *vocabulary.gambling],
    )
    ours_daily = daily.aggregates(q, night.days_back(28), day, version, settings)
    exact = ["partition", "rows", "all_rows", "mapped_rows", "risky_rows", "channel_rows", "online_rows"]
    pd.testing.assert_frame_equal(ours_daily[exact], expected_daily[exact], check_dtype=False)
    np.testing.assert_allclose(ours_daily[["dev_sum", "dev_sq"]], expected_daily[["dev_sum", "dev_sq"]], rtol=1e-9)

    content = warehouse.frame(
        conn,
        "SELECT transaction_id, " + ", ".join(replays.CONTENT) + " FROM raw_transactions WHERE partition = ?",
        [day],
    )
    assert q.statistic(replays.REPLAYS, {"day": day}).iloc[0].to_dict() == replays.replays_of(content)

    rejected = warehouse.frame(conn, "SELECT * FROM rejected_transactions WHERE partition = ?", [day])
    pd.testing.assert_frame_equal(
        q.statistic(rejections.REASONS, {"day": day}), rejections.reasons_of(rejected), check_dtype=False
    )

    ledger = warehouse.imputation_ledger(conn, day)
    pd.testing.assert_frame_equal(imputation.ledger_cells(q, day), ledger_counts(ledger), check_dtype=False)
    assert (
        coverage.customers_with(q, day, UNSEEN_CATEGORY)
        == ledger.loc[ledger["reason"] == UNSEEN_CATEGORY, "customer_id"].nunique()
    )

    first, last = night.scan_range(30)
    window = warehouse.window_categories(conn, night.window_start(30), night.as_of, first, last)
    unmapped_customers = set(window.loc[~window["category"].isin(set(mapping["raw_category"])), "customer_id"])
    unseen_channel = set(
        window.loc[window["channel"].notna() & ~window["channel"].isin(registry.channels(conn, version)), "customer_id"]
    )
    groups = warehouse.customer_groups(conn, day)
    groups = pd.concat([groups, category_usage(window, groups["customer_id"])], axis=1)
    exposure = warehouse.read_partition(conn, "encoded_features", day, columns=[f"txn_count_{w}d" for w in WINDOWS])
    min_cells = settings.checks.missingness_min_cells
    cells, table = contingency(
        ledger, groups, coverage_cells(ledger, unmapped_customers, unseen_channel), exposure, min_cells
    )
    pd.testing.assert_frame_equal(imputation.missing_cells(q, night, version), cells, check_dtype=False)
    assert tested is None or (len(table) > 0) == tested
    pd.testing.assert_frame_equal(
        imputation.missingness_contingency(q, night, version, min_cells), table, check_dtype=False
    )

    inputs = drift_counts(q, night, settings)
    encoded = warehouse.read_partition(conn, "encoded_features", day)
    expected = profile(encoded, inputs["reference"])
    assert set(inputs["counts"]) == set(expected)
    for feature, values in expected.items():
        np.testing.assert_array_equal(inputs["counts"][feature], values, err_msg=feature)


def all_statistics(q, day: dt.date, settings, source=None) -> dict[str, pd.DataFrame]:
    """Every aggregate the checks read for ``day``, on engine ``q``, as frames (with the
    source, the late-arrival comparison of the day before too)."""
    version = registry.current_mapping_version(q.conn)
    night = Night.of(day, settings.calendar)
    drift_rows = drift_counts(q, night, settings)["counts"]
    out = {
        "category_counts": coverage.category_counts(q, day),
        "unmapped_rows": coverage.unmapped_rows(q, day, version),
        "channels": coverage.value_counts(q, day, "channel"),
        "amount_levels": amounts.levels(q, night.days_back(28), day),
        "top_amounts": amounts.top_amounts(q, night.days_back(28), day),
        "profile": night_profile.profile(q, night.days_back(28), day, version),
        "last_days": lookback.last_days(q, night.days_back(28), day),
        "daily": daily.aggregates(q, night.days_back(28), day, version, settings),
        "reasons": q.statistic(rejections.REASONS, {"day": day}),
        "replays": q.statistic(replays.REPLAYS, {"day": day}),
        "replay_examples": q.statistic(replays.REPLAY_EXAMPLES, {"day": day}),
        "ledger": imputation.ledger_cells(q, day),
        "unseen_customers": pd.DataFrame({"n": [coverage.customers_with(q, day, UNSEEN_CATEGORY)]}),
        "missing_cells": imputation.missing_cells(q, night, version),
        "contingency": imputation.missingness_contingency(q, night, version, settings.checks.missingness_min_cells),
        "drift": pd.DataFrame(
            [(f, i, int(n)) for f, c in sorted(drift_rows.items()) for i, n in enumerate(c)],
            columns=["feature", "bin", "rows"],
        ),
    }
    if source is not None:
        now = landing.now_frame(source.transactions(night.previous.day))
        out["late"] = q.statistic(landing.LATE, {"day": night.previous.day}, frames={"_now": now})
    return out


def assert_same_statistics(ours: dict[str, pd.DataFrame], theirs: dict[str, pd.DataFrame]) -> None:
    assert ours.keys() == theirs.keys()
    for name, frame in ours.items():
        other = theirs[name]
        exact = [c for c in frame.columns if c not in ("mean_log", "dev_sum", "dev_sq")]
        pd.testing.assert_frame_equal(
            other[exact].reset_index(drop=True), frame[exact].reset_index(drop=True), check_dtype=False, obj=name
        )
        for column in ("mean_log", "dev_sum", "dev_sq"):
            if column in frame:
                np.testing.assert_allclose(other[column], frame[column], rtol=1e-12, err_msg=f"{name}.{column}")


def test_replayed_rows_in_sql_are_the_rows_repeating_every_field_but_the_id(conn):
    """Copies under fresh ids count once per extra copy; a NULL channel is a value like any
    other; a row differing in one field (a cent, a second, the channel) is not a copy."""
    ts = pd.Timestamp(DAY) + pd.Timedelta(hours=9)
    base = {"customer_id": "C1", "event_ts": ts, "amount_cents": 1250, "category": "groceries", "channel": None}
    rows = [
        base,
        base,  # a replay of the first, NULL channel included
        base,  # and another
        {**base, "amount_cents": 1251},  # one cent off: another event
        {**base, "event_ts": ts + pd.Timedelta(seconds=1)},  # one second later: another event
        {**base, "channel": "online"},
        {**base, "channel": "online"},  # a replay of the one before
        {**base, "customer_id": "C2"},
    ]
    frame = pd.DataFrame(rows).assign(
        partition=DAY,
        transaction_id=[f"T{i}" for i in range(len(rows))],
        amount=lambda d: d["amount_cents"] / 100,
        source_file="f",
    )
    warehouse.insert(conn, "raw_transactions", frame)
    q = DuckDBEngine(conn)
    summary = q.statistic(replays.REPLAYS, {"day": DAY})
    assert (
        summary.iloc[0].to_dict()
        == replays.replays_of(frame)
        == {
            "events": 5,
            "rows": 8,
            "replayed": 3,
            "max_copies": 3,
        }
    )
    examples = q.statistic(replays.REPLAY_EXAMPLES, {"day": DAY})
    assert examples["copies"].tolist() == [3, 2] and examples.loc[0, ["first_id", "last_id"]].tolist() == ["T0", "T2"]
    verdict = replays.replayed_rows(summary, examples, max_replayed_share=0.01)
    assert not verdict.passed and verdict.severity == "ERROR" and verdict.figures["replayed_share"] == 3 / 8
    assert "3 of 8 rows" in verdict.summary and "re-sent under fresh ids" in verdict.summary
    assert replays.replayed_rows(summary, examples, max_replayed_share=0.5).passed


def test_a_cached_statistic_of_partitions_without_rows_is_the_engines_empty_frame(conn):
    """Days with no rows (the first days of a history, a day after a long gap): the cache
    gives the engine's own empty frame, columns and all, and an empty range too."""
    q = DuckDBEngine(conn)
    settings = Settings()
    cache = PartitionCache()
    step = Step.sharing(cache, q, Night.of(DAY, settings.calendar), settings, source=None)
    for first, last in ((DAY - dt.timedelta(days=28), DAY), (DAY, DAY), (DAY, DAY - dt.timedelta(days=1))):
        for read in (amounts.levels, amounts.top_amounts):
            expected = read(q, first, last)
            found = read(step, first, last)
            assert list(found.columns) == list(expected.columns) and found.empty and expected.empty


def _kept_world(conn, days: int = 10) -> tuple[dt.date, dt.date]:
    """``days`` raw days, 40 customers, a category mapping (version m1)."""
    rng = np.random.default_rng(3)
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(40)],
            "segment": rng.choice(["retail", "smb"], 40),
            "region": rng.choice(["north", "south"], 40),
            "opened_at": pd.Timestamp("2024-01-01"),
            "source_file": "customers.csv",
        }
    )
    warehouse.insert(conn, "customers", customers)
    warehouse.insert(conn, "category_mapping", _mapping().assign(version="m1"))
    first = DAY - dt.timedelta(days=days - 1)
    for i in range(days):
        _write_day(conn, first + dt.timedelta(days=i), rng)
    return first, DAY


def _write_day(conn, day: dt.date, rng) -> None:
    n = int(rng.integers(50, 90))
    cents = rng.integers(100, 5000, n)
    rows = pd.DataFrame(
        {
            "transaction_id": [f"{day}-{i}-{rng.integers(1 << 30)}" for i in range(n)],
            "customer_id": rng.choice([f"C{i}" for i in range(40)], n),
            "event_ts": pd.Timestamp(day),
            "amount": cents / 100,
            "amount_cents": cents,
            "category": rng.choice(["groceries", "fuel", "p2p"], n),
            "channel": rng.choice(["online", "card"], n),
            "source_file": "f",
        }
    )
    warehouse.replace_partition(conn, day, {"raw_transactions": rows})


KEPT = {
    "levels": amounts.levels,
    "top_amounts": amounts.top_amounts,
    "profile": lambda e, a, b: night_profile.profile(e, a, b, "m1"),
}


def _through_a_new_store(conn, q, first, last, write: bool = True, engine: str | None = None) -> PartitionStore:
    """Each kept statistic over ``first .. last`` through a new load's store: what it gives
    is the engine's own frame, whatever it read from the store."""
    store = PartitionStore(conn, engine or q.name, write=write)
    step = Step.sharing(PartitionCache(store), q, Night.of(last, Settings().calendar), Settings(), source=None)
    for read in KEPT.values():
        pd.testing.assert_frame_equal(read(step, first, last), read(q, first, last))
    store.flush()
    return store


def test_kept_statistics_are_read_back_only_while_their_inputs_are_unchanged(conn):
    """Per-partition statistics kept in the warehouse from one load to the next: the next
    load reads them instead of computing; a partition written again with other rows, a new
    customers table (the profile joins it) or another mapping version is computed again."""
    q = DuckDBEngine(conn)
    first, last = _kept_world(conn)
    computed = _through_a_new_store(conn, q, first, last)
    assert (computed.read, computed.kept) == (0, 30)  # 10 days x 3 statistics

    again = _through_a_new_store(conn, q, first, last)
    assert (again.read, again.kept) == (30, 0)

    rewritten = first + dt.timedelta(days=4)
    _write_day(conn, rewritten, np.random.default_rng(99))
    after_rewrite = _through_a_new_store(conn, q, first, last)
    assert (after_rewrite.read, after_rewrite.kept) == (27, 3)  # that day, each statistic

    conn.execute("UPDATE customers SET segment = 'premium' WHERE customer_id = 'C7'")
    after_customers = _through_a_new_store(conn, q, first, last)
    assert (after_customers.read, after_customers.kept) == (20, 10)  # the profile joins the customers

    # a day outside what was kept, a wider range: only the new days computed
    wider = _through_a_new_store(conn, q, first - dt.timedelta(days=3), last)
    assert (wider.read, wider.kept) == (30, 9)

    other_version = PartitionStore(conn, q.name, write=False)
    step = Step.sharing(PartitionCache(other_version), q, Night.of(last, Settings().calendar), Settings(), None)
    pd.testing.assert_frame_equal(
        night_profile.profile(step, first, last, "m2"), night_profile.profile(q, first, last, "m2")
    )
    assert other_version.read == 0
    assert _through_a_new_store(conn, q, first, last, write=False, engine="spark").read == 0  # another engine's


def test_a_read_only_warehouse_without_kept_statistics_computes_them(tmp_path):
    """A warehouse written before statistics were kept, opened read-only: nothing to read,
    nothing written, every statistic computed."""
    path = tmp_path / "old.duckdb"
    with warehouse.connect(path) as conn:
        first, last = _kept_world(conn, days=3)
        conn.execute("DROP TABLE partition_statistics")
    with warehouse.connect(path, read_only=True) as conn:
        store = PartitionStore(conn, "duckdb", write=False)
        assert not store.usable
        cache = PartitionCache(store)
        assert cache.store is None
        q = DuckDBEngine(conn)
        step = Step.sharing(cache, q, Night.of(last, Settings().calendar), Settings(), source=None)
        for read in KEPT.values():
            pd.testing.assert_frame_equal(read(step, first, last), read(q, first, last))
