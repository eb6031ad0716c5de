"""Every incident kind, on both worlds, delivered through the landing source.

The embedded world and the alpine world (its own category, channel, segment and region
names, Sunday closures, paydays, Austrian holidays, a growing base, Europe/Vienna) are
each exported as a landing folder, loaded and trained through the landing source (the
``landing_world`` fixture). Each test damages the landing files of a night the way a
real source would, runs the real nightly job, and expects a blocking ERROR check to stop
the night with no scores written — with the same thresholds on both worlds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from risk_assets.core.reference import value_counts
from risk_assets.scenario.settings import scenario_of
from risk_assets.scenario.world import PROFILES
from risk_assets.store import warehouse
from risk_assets_tests.checks.test_statistics import assert_statistics_match_rows
from risk_assets_tests.conftest import FIRST_NIGHT, LANDING_CUSTOMERS, QUIET, TRAINED_OVERRIDES, run_night

NEXT_NIGHT = FIRST_NIGHT + dt.timedelta(days=1)
HOSTILE = ["'); DROP TABLE raw_transactions; --", "Groceries|x", "ünknown", "   ", "NULL", "a\tb"]


def damage(landing, day: dt.date, change) -> None:
    """Rewrite the day's landing files through ``change(frame, rng) -> frame``."""
    rng = np.random.default_rng(day.toordinal())
    for file in sorted((landing / "transactions" / f"date={day:%Y-%m-%d}").glob("*.parquet")):
        change(pd.read_parquet(file), rng).to_parquet(file, index=False)


def outcome(result) -> tuple[set[str], set[str]]:
    """(blocking ERROR checks that failed, checks that passed)."""
    failed = {
        f"{e.asset_key.to_user_string()}.{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity.value == "ERROR"
    }
    passed = {
        f"{e.asset_key.to_user_string()}.{e.check_name}" for e in result.get_asset_check_evaluations() if e.passed
    }
    return failed, passed


def evaluation(result, label: str):
    return next(
        e for e in result.get_asset_check_evaluations() if f"{e.asset_key.to_user_string()}.{e.check_name}" == label
    )


def scored(settings, day: dt.date) -> int:
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        return warehouse.count(conn, "risk_scores", day)


def assert_blocked(settings, result, day: dt.date, by: str) -> None:
    failed, _ = outcome(result)
    assert not result.success and by in failed, (by, failed)
    assert scored(settings, day) == 0


def test_a_clean_night_passes_every_check(landing_copy, instance):
    settings = landing_copy([FIRST_NIGHT])
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    failed, _ = outcome(result)
    assert result.success and not failed, failed
    assert scored(settings, FIRST_NIGHT) > 0


def test_a_new_channel_value_is_never_silently_not_online(landing_copy, instance):
    settings = landing_copy([FIRST_NIGHT])

    def new_channel(frame, rng):
        frame.loc[rng.random(len(frame)) < 0.15, "channel"] = "wallet_pay_new"
        return frame

    damage(landing_copy.landing, FIRST_NIGHT, new_channel)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "serving_features.channel_coverage")
    assert "wallet_pay_new" in evaluation(result, "serving_features.channel_coverage").description


def test_a_truncated_day_blocks_itself_and_every_night_after_it_until_it_is_reloaded(landing_copy, instance):
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    original = {
        f: pd.read_parquet(f)
        for f in (landing_copy.landing / "transactions" / f"date={FIRST_NIGHT:%Y-%m-%d}").glob("*.parquet")
    }
    damage(landing_copy.landing, FIRST_NIGHT, lambda frame, rng: frame[rng.random(len(frame)) < 0.4])
    first = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, first, FIRST_NIGHT, "raw_transactions.row_volume")

    after = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, after, NEXT_NIGHT, "serving_features.lookback_health")
    health = evaluation(after, "serving_features.lookback_health")
    assert str(FIRST_NIGHT) in health.description and "row_volume" in health.description

    for file, frame in original.items():  # the source re-delivers the whole day
        frame.to_parquet(file, index=False)
    reload = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raw_only=True)
    assert reload.success
    again = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert again.success and scored(settings, NEXT_NIGHT) > 0


def test_part_of_a_day_re_sent_under_fresh_ids_blocks_it_and_the_next_night_until_re_delivered(landing_copy, instance):
    """30% of the day's rows delivered a second time under new transaction ids: every row is
    valid and no id repeats, so the contract accepts them all; ``replayed_rows`` sees the
    copies (every field but the id equal), blocks the night tonight, and the day stays out
    of the next night until the source re-delivers it clean."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    folder = landing_copy.landing / "transactions" / f"date={FIRST_NIGHT:%Y-%m-%d}"
    clean = {f: pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))}
    day = pd.concat(clean.values(), ignore_index=True)
    again = day.sample(frac=0.3, random_state=7).assign(transaction_id=lambda d: "R" + d["transaction_id"].astype(str))
    again.to_parquet(folder / "part-resent.parquet", index=False)

    first = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, first, FIRST_NIGHT, "raw_transactions.replayed_rows")
    check = evaluation(first, "raw_transactions.replayed_rows")
    assert check.metadata["replayed"].value == len(again)
    assert "re-sent under fresh ids" in check.description
    assert evaluation(first, "raw_transactions.rejection_rate").passed  # the contract could not see it

    after = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, after, NEXT_NIGHT, "serving_features.lookback_health")
    assert "replayed_rows" in evaluation(after, "serving_features.lookback_health").description

    (folder / "part-resent.parquet").unlink()  # the source re-delivers the day without the copies
    assert run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raw_only=True).success
    healed = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert healed.success and scored(settings, NEXT_NIGHT) > 0


def test_a_day_three_times_its_size_is_too_large_even_when_no_row_is_a_copy(landing_copy, instance):
    """Another feed's rows mixed in (here: the day's rows twice more, each a few seconds
    later under new ids — valid, unique, no exact copy): only the volume can tell."""
    settings = landing_copy([FIRST_NIGHT])
    folder = landing_copy.landing / "transactions" / f"date={FIRST_NIGHT:%Y-%m-%d}"
    for file in sorted(folder.glob("*.parquet")):
        frame = pd.read_parquet(file)
        for k in (1, 2):
            shifted = frame.assign(
                transaction_id=lambda d, k=k: f"X{k}-" + d["transaction_id"].astype(str),
                event_ts=lambda d, k=k: (d["event_ts"] + pd.Timedelta(seconds=k)).clip(upper=d["event_ts"].max()),
            )
            shifted.to_parquet(folder / f"extra{k}-{file.name}", index=False)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "raw_transactions.row_volume")
    volume = evaluation(result, "raw_transactions.row_volume")
    assert volume.description.startswith("too many rows tonight"), volume.description
    assert volume.metadata["share_of_expected"].value > 2.0


def test_amounts_clipped_at_their_95th_percentile_block_the_night_and_the_next(landing_copy, instance):
    """A field-width change clips every amount at the day's 95th percentile: the median does
    not move (``amount_scale`` passes) but the tail is gone and one amount holds it."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    folder = landing_copy.landing / "transactions" / f"date={FIRST_NIGHT:%Y-%m-%d}"
    clean = {f: pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))}
    limit = round(float(pd.concat(clean.values())["amount"].quantile(0.95)), 2)
    for file, frame in clean.items():
        frame.assign(amount=frame["amount"].clip(upper=limit)).to_parquet(file, index=False)

    first = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, first, FIRST_NIGHT, "raw_transactions.amount_pileup")
    check = evaluation(first, "raw_transactions.amount_pileup")
    assert f"pile up at {limit:.2f} tonight" in check.description, check.description
    assert evaluation(first, "raw_transactions.amount_scale").passed  # the median held

    after = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, after, NEXT_NIGHT, "serving_features.lookback_health")
    for file, frame in clean.items():  # re-delivered unclipped
        frame.to_parquet(file, index=False)
    assert run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raw_only=True).success
    healed = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert healed.success and scored(settings, NEXT_NIGHT) > 0


SUBPOPULATIONS = [("region", 0.8), ("segment", 0.8), ("channel", 0.8), ("category", 0.8)]
"""(column, share of its largest value's rows lost): each categorical column, transactions'
and customers' alike, with the world's own values."""


def test_one_subpopulation_lost_blocks_the_night_and_the_next_naming_it_until_re_delivered(landing_copy, instance):
    """80% of the rows of one value lost — the world's largest region, segment, channel and
    category in turn (a regional feed cut, a channel's export failing): the day's total moves
    less than ``row_volume`` tolerates; ``night_profile`` names the column, the value, the
    direction and tonight, the night scores nothing, and the day stays out of the next night
    until it is re-delivered."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    folder = landing_copy.landing / "transactions" / f"date={FIRST_NIGHT:%Y-%m-%d}"
    clean = {f: pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))}
    customers = pd.read_parquet(landing_copy.landing / "customers.parquet")
    day = pd.concat(clean.values(), ignore_index=True).merge(customers, on="customer_id", how="left")
    for column, lost in SUBPOPULATIONS:
        value = day[column].value_counts().idxmax()
        rng = np.random.default_rng(3)
        for file, frame in clean.items():
            joined = frame.merge(customers[["customer_id", "segment", "region"]], on="customer_id", how="left")
            gone = (joined[column] == value).to_numpy() & (rng.random(len(frame)) < lost)
            frame[~gone].to_parquet(file, index=False)
        result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
        assert_blocked(settings, result, FIRST_NIGHT, "raw_transactions.night_profile")
        check = evaluation(result, "raw_transactions.night_profile")
        figures = {k: v.value for k, v in check.metadata.items()}
        assert (figures["column"], figures["value"], figures["direction"]) == (column, value, "down"), check.description
        assert figures["since"] == str(FIRST_NIGHT) and f"{column} = {value!r}" in check.description
        assert "tonight" in check.description
        assert evaluation(result, "raw_transactions.row_volume").passed  # the total alone looks routine

    after = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, after, NEXT_NIGHT, "serving_features.lookback_health")
    assert "night_profile" in evaluation(after, "serving_features.lookback_health").description
    for file, frame in clean.items():  # re-delivered whole
        frame.to_parquet(file, index=False)
    assert run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raw_only=True).success
    healed = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert healed.success and scored(settings, NEXT_NIGHT) > 0


def _with_new_accounts(landing, days, share: float = 0.05) -> pd.DataFrame:
    """Re-deliver the customers file with ``share`` more accounts (segments and regions of
    the world's own), opened the day before the first of ``days``, transacting on ``days``
    like the others do (``share`` of a day's rows more: copies of existing customers' rows
    under new ids, for new accounts in turn). Returns the new accounts and, per day, the
    rows added."""
    customers = pd.read_parquet(landing / "customers.parquet")
    rng = np.random.default_rng(17)
    n = int(len(customers) * share)
    new = customers.sample(n, random_state=17).assign(
        customer_id=[f"NEW{i:05d}" for i in range(n)],
        opened_at=pd.Timestamp(days[0] - dt.timedelta(days=1)),
    )
    pd.concat([customers, new], ignore_index=True).to_parquet(landing / "customers.parquet", index=False)
    added = {}
    for i, day in enumerate(days):
        folder = landing / "transactions" / f"date={day:%Y-%m-%d}"
        frame = pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))], ignore_index=True)
        k = max(1, round(len(frame) * share))
        extra = frame.sample(k, random_state=day.toordinal()).assign(
            customer_id=[new["customer_id"].iloc[(i * k + j) % n] for j in range(k)],
            transaction_id=[f"NEWTX-{day:%Y%m%d}-{j}" for j in range(k)],
        )
        extra["amount"] = (extra["amount"] * rng.uniform(0.8, 1.2, k)).round(2)
        extra.to_parquet(folder / "part-new-accounts.parquet", index=False)
        added[day] = extra
    return new, added


def test_new_accounts_in_a_re_delivered_customers_file_are_scored_and_counted_as_new(landing_copy, instance):
    """5% new accounts arrive in the customers file with their first transactions: the
    nightly run re-reads the changed file as a new version, their rows are accepted (a new
    customer, never an unknown one), counted by ``customer_changes``, and they are scored."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    new, added = _with_new_accounts(landing_copy.landing, [FIRST_NIGHT, NEXT_NIGHT])
    for night in (FIRST_NIGHT, NEXT_NIGHT):
        result = run_night(settings, instance, night, run_config=QUIET, raise_on_error=False)
        failed, _ = outcome(result)
        assert result.success and not failed, (night, failed)
        check = evaluation(result, "serving_features.customer_changes")
        assert check.metadata["new_customers"].value == len(new)
        assert check.metadata["new_customer_rows_tonight"].value == len(added[night])
        assert check.metadata["new_customers_transacting_tonight"].value == added[night]["customer_id"].nunique()
        assert check.metadata["changed_customers"].value == 0
        assert evaluation(result, "raw_transactions.rejection_rate").metadata["rejected"].value == 0
        with warehouse.connect(settings.warehouse.duckdb_path) as conn:
            scored_ids = set(warehouse.scores(conn, night)["customer_id"])
            serving = warehouse.read_partition(conn, "serving_features", night)
        assert set(added[night]["customer_id"]) <= scored_ids
        mine = serving[serving["customer_id"].isin(new["customer_id"])].set_index("customer_id")
        assert len(mine) >= added[night]["customer_id"].nunique()
        assert (mine["segment"] == new.set_index("customer_id").loc[mine.index, "segment"]).all()


def test_a_customers_file_received_again_unchanged_is_not_judged_again(landing_copy, instance):
    """The nightly re-read of the customers file: the very file the version held was read
    from is recognised by its fingerprint before the contract and not judged again (1M
    customers took 3 s a night to judge and hash); the same content in another row order is
    judged again, found to be the version held and remembered, so the night after recognises
    it; changed content is a new version. The raw load says which (``customers_file``)."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    path = landing_copy.landing / "customers.parquet"

    def reread(night) -> tuple[str, int]:
        result = run_night(settings, instance, night, run_config=QUIET, raise_on_error=False)
        raw = {
            m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()
        }["raw_transactions"]
        with warehouse.connect(settings.warehouse.duckdb_path) as conn:
            versions = len(warehouse.customer_deliveries(conn))
        return raw["customers_file"].value if "customers_file" in raw else "a new version", versions

    said, versions = reread(FIRST_NIGHT)
    assert said.startswith("as received for the version held") and "not judged again" in said, said
    original = pd.read_parquet(path)
    original.iloc[::-1].to_parquet(path, index=False)  # the same customers, in another order
    said, again = reread(FIRST_NIGHT)
    assert said.startswith("judged again: the version held") and again == versions, said
    said, _ = reread(NEXT_NIGHT)
    assert said.startswith("as received for the version held"), said
    changed = original.copy()
    changed.loc[changed.index[:5], "segment"] = "premium"
    changed.to_parquet(path, index=False)
    said, grown = reread(NEXT_NIGHT)
    assert said == "a new version" and grown == versions + 1
    said, _ = reread(NEXT_NIGHT)
    assert said.startswith("as received for the version held"), said


def test_a_mass_re_classification_blocks_every_night_it_is_valid_for_until_re_delivered(landing_copy, instance):
    """20% of the customers moved to another segment in one delivery: every feature built on
    the segment would absorb it. ``customer_changes`` blocks the night that first reads the
    file, naming the attribute, the values and tonight, and the next night too (the version
    is still valid); a corrected file, re-read by the re-run of the first night, heals both."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    path = landing_copy.landing / "customers.parquet"
    original = pd.read_parquet(path)
    segments = sorted(original["segment"].unique())
    moved = original.sample(frac=0.2, random_state=5).index
    changed = original.copy()
    changed.loc[moved, "segment"] = [
        segments[(segments.index(v) + 1) % len(segments)] for v in original.loc[moved, "segment"]
    ]
    changed.to_parquet(path, index=False)

    first = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, first, FIRST_NIGHT, "serving_features.customer_changes")
    check = evaluation(first, "serving_features.customer_changes")
    figures = {k: v.value for k, v in check.metadata.items()}
    assert figures["column"] == "segment" and figures["value"] in segments and figures["direction"] == "down"
    assert figures["changed_customers"] == len(moved) and "tonight" in check.description
    assert abs(figures["changed_share"] - 0.2) < 0.01

    after = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, after, NEXT_NIGHT, "serving_features.customer_changes")
    assert "since" in evaluation(after, "serving_features.customer_changes").description

    original.to_parquet(path, index=False)  # the source re-delivers the customers file corrected
    healed_first = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert healed_first.success and scored(settings, FIRST_NIGHT) > 0
    assert evaluation(healed_first, "serving_features.customer_changes").metadata["changed_customers"].value == 0
    healed = run_night(settings, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    assert healed.success and scored(settings, NEXT_NIGHT) > 0


def test_a_renamed_attribute_value_is_named_as_a_rename(landing_copy, instance):
    """The customers file re-delivered with one region spelled anew (every customer of it
    moved to a value nobody held): ``customer_changes`` blocks it as a re-classification and
    says what it is — a rename, with its customers — so the operator fixes the export instead
    of hunting for a new population."""
    settings = landing_copy([FIRST_NIGHT])
    path = landing_copy.landing / "customers.parquet"
    customers = pd.read_parquet(path)
    region = customers["region"].value_counts().idxmin()
    renamed = customers.assign(region=customers["region"].replace({region: f"{region}_2026"}))
    renamed.to_parquet(path, index=False)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "serving_features.customer_changes")
    check = evaluation(result, "serving_features.customer_changes")
    n = int((customers["region"] == region).sum())
    said = f"region {region!r} renamed to {region + '_2026'!r} ({n} customers)"
    assert said in check.description and check.metadata["vocabulary_changes"].value == said
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:  # the aggregate = its row-level definition
        at = pd.Timestamp(check.metadata["valid_from"].value)
        for t in (at, at - pd.Timedelta(microseconds=1)):
            counted = warehouse.attribute_counts(conn, t).sort_values(["attribute", "value"], ignore_index=True)
            rows = value_counts(warehouse.customers_valid_at(conn, t))
            rows = rows.sort_values(["attribute", "value"], ignore_index=True)
            pd.testing.assert_frame_equal(counted, rows, check_dtype=False)


def test_a_quarantined_history_day_blocks_only_the_nights_whose_windows_read_it(landing_copy, instance):
    """Quarantine in proportion: a day of the loaded history cut short (60% of its rows lost)
    and re-loaded is quarantined. 10 days before a night it is inside the 30-day windows and
    blocks it; 40 days before, only days_since_last_txn reads it — for the customers whose last
    transaction it holds — and the night scores with a WARN that counts them."""
    old, recent = FIRST_NIGHT - dt.timedelta(days=40), FIRST_NIGHT - dt.timedelta(days=10)
    settings = landing_copy([old, recent, FIRST_NIGHT])
    for day in (old, recent):
        damage(landing_copy.landing, day, lambda frame, rng: frame[rng.random(len(frame)) < 0.4])
    run_night(settings, instance, old, run_config=QUIET, raw_only=True, raise_on_error=False)
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:  # quarantined at load
        verdicts = warehouse.raw_verdicts(conn, old, old)
    assert not verdicts.loc[verdicts["check_name"] == "row_volume", "passed"].item()
    night = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    health = evaluation(night, "serving_features.lookback_health")
    assert night.success and scored(settings, FIRST_NIGHT) > 0
    assert not health.passed and health.severity.value == "WARN" and str(old) in health.description
    exposed, share = health.metadata["customers_exposed"].value, health.metadata["customers_exposed_share"].value
    assert "read only by days_since_last_txn" in health.description and exposed > 0 and 0 < share < 0.05
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:  # the count, from the rows themselves
        last = conn.execute(
            "SELECT count(*) FROM (SELECT customer_id, max(partition) AS d FROM raw_transactions "
            "WHERE partition BETWEEN ? AND ? GROUP BY customer_id) WHERE d = ?",
            [FIRST_NIGHT - dt.timedelta(days=89), FIRST_NIGHT, old],
        ).fetchone()[0]
    assert exposed == last

    run_night(settings, instance, recent, run_config=QUIET, raw_only=True, raise_on_error=False)
    blocked = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    failed, _ = outcome(blocked)  # the re-run is blocked (the first run's scores stay as they were)
    assert not blocked.success and "serving_features.lookback_health" in failed
    assert str(recent) in evaluation(blocked, "serving_features.lookback_health").description


def test_a_quarantined_day_can_be_accepted_deliberately(landing_copy, instance):
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    damage(landing_copy.landing, FIRST_NIGHT, lambda frame, rng: frame[rng.random(len(frame)) < 0.4])
    run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    accepted = landing_copy(
        [],
        override={
            "by": "j.doe",
            "reason": "INC-7: export cut short, accepted",
            "accept_days": [FIRST_NIGHT.isoformat()],
        },
    )
    result = run_night(accepted, instance, NEXT_NIGHT, run_config=QUIET, raise_on_error=False)
    health = evaluation(result, "serving_features.lookback_health")
    assert result.success and health.passed and health.metadata["accepted_days"].value == 1
    assert health.metadata["override_by"].value == "j.doe"


def test_amounts_in_another_unit_fail_with_the_factor_stated(landing_copy, instance):
    settings = landing_copy([FIRST_NIGHT])

    def cents(frame, rng):
        frame["amount"] = frame["amount"] * 100
        return frame

    damage(landing_copy.landing, FIRST_NIGHT, cents)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "raw_transactions.amount_scale")
    check = evaluation(result, "raw_transactions.amount_scale")
    assert 60 < check.metadata["factor"].value < 160 and "larger" in check.description


def _remap(settings, instance, aliases: dict[str, str]):
    """The operator's remedy: the suggested aliases in the settings, a new mapping version."""
    import dagster as dg

    from risk_assets.defs.factory import build_definitions
    from risk_assets.defs.jobs import TRAINING_JOB

    fixed = settings.with_overrides(mapping={"aliases": aliases})
    build_definitions(fixed).resolve_job_def(TRAINING_JOB).execute_in_process(
        instance=instance, run_config=QUIET, asset_selection=[dg.AssetKey("category_mapping")]
    )
    return fixed


def _product_change(landing, days, changes: dict[str, str]) -> None:
    for day in days:
        damage(landing, day, lambda frame, rng: frame.assign(category=frame["category"].replace(changes)))


def test_a_rename_absorbed_by_the_mapping_scores_this_night_and_the_next(landing_copy, instance):
    """The largest category renamed from tonight (a category small enough is below what the
    profile judges at this size): stopped by coverage with the alias suggested; with the
    alias, the night profile reads the new name as the old one (as delivered, the old name
    vanished), so this night and the next score without any other override."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    folder = landing_copy.landing / "transactions" / f"date={FIRST_NIGHT:%Y-%m-%d}"
    day = pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))], ignore_index=True)
    largest = day["category"].value_counts().idxmax()
    renamed = {largest: f"{largest}_new"}
    _product_change(landing_copy.landing, (FIRST_NIGHT, NEXT_NIGHT), renamed)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "raw_transactions.category_coverage")
    suggested = evaluation(result, "raw_transactions.category_coverage").metadata["suggested_aliases"].value
    assert suggested == {new: old for old, new in renamed.items()}
    # before the alias the profile sees the old name vanish: the mapping is what makes it one value
    before = evaluation(result, "raw_transactions.night_profile")
    assert not before.passed and before.metadata["value"].value == largest

    fixed = _remap(settings, instance, suggested)
    for night in (FIRST_NIGHT, NEXT_NIGHT):
        result = run_night(fixed, instance, night, run_config=QUIET, raise_on_error=False)
        failed, _ = outcome(result)
        assert result.success and not failed and scored(fixed, night) > 0, (night, failed)
        profile = evaluation(result, "raw_transactions.night_profile")
        assert profile.passed and profile.metadata["category_mapping_version"].value


def test_a_lasting_change_of_one_value_is_accepted_by_restarting_its_baseline(landing_copy, instance):
    """The largest region's activity falls by 80% from tonight and stays there (its customers
    moved to another bank: no fault to re-deliver). The night profile blocks it, naming the
    region; a restart of that value's baseline by override (who and why on record) accepts
    the new normal, so this night and the next score — and say the restart is in force —
    while every other value stays judged."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    customers = pd.read_parquet(landing_copy.landing / "customers.parquet")
    value = customers["region"].value_counts().idxmax()
    leaving = set(customers.loc[customers["region"] == value, "customer_id"])

    def leave(frame, rng):
        return frame[~(frame["customer_id"].isin(leaving).to_numpy() & (rng.random(len(frame)) < 0.8))]

    for night in (FIRST_NIGHT, NEXT_NIGHT):
        damage(landing_copy.landing, night, leave)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "raw_transactions.night_profile")
    figures = {k: v.value for k, v in evaluation(result, "raw_transactions.night_profile").metadata.items()}
    assert (figures["column"], figures["value"], figures["direction"]) == ("region", value, "down")

    accepted = settings.with_overrides(
        override={
            "by": "j.doe",
            "reason": "CHG-12: the region's customers moved to a partner bank, lasting",
            "profile_baseline_from": {f"region={value}": FIRST_NIGHT.isoformat()},
        }
    )
    for night in (FIRST_NIGHT, NEXT_NIGHT):
        result = run_night(accepted, instance, night, run_config=QUIET, raise_on_error=False)
        failed, _ = outcome(result)
        assert result.success and not failed and scored(accepted, night) > 0, (night, failed)
        profile = evaluation(result, "raw_transactions.night_profile")
        assert profile.metadata["baseline_restarts"].value == {f"region={value}": str(FIRST_NIGHT)}
        assert f"region={value} from {FIRST_NIGHT}" in profile.description
        judged = {(r.data["col"], r.data["value"]) for r in profile.metadata["statistics"].value.records}
        assert ("region", value) not in judged and any(col == "region" for col, _ in judged)


def test_hostile_category_strings_are_stopped_and_stored_verbatim(landing_copy, instance):
    settings = landing_copy([FIRST_NIGHT])

    def hostile(frame, rng):
        pick = np.flatnonzero(rng.random(len(frame)) < 0.03)
        frame.loc[pick, "category"] = [HOSTILE[i % len(HOSTILE)] for i in range(len(pick))]
        return frame

    damage(landing_copy.landing, FIRST_NIGHT, hostile)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "encoded_features.category_coverage")
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        stored = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT category FROM raw_transactions WHERE partition = ?", [FIRST_NIGHT]
            ).fetchall()
        }
    assert {h for h in HOSTILE if h.strip()} <= stored


def test_a_missingness_burst_in_one_region_under_the_ceiling_is_stopped(landing_copy, instance):
    settings = landing_copy([FIRST_NIGHT])
    customers = pd.read_parquet(landing_copy.landing / "customers.parquet")
    region = PROFILES[scenario_of(settings).world.profile].regions[1]
    in_region = set(customers.loc[customers["region"] == region, "customer_id"])

    def burst(frame, rng):
        rows = np.flatnonzero(frame["customer_id"].isin(in_region).to_numpy())
        frame.loc[rng.permutation(rows)[:30], "channel"] = None
        return frame

    damage(landing_copy.landing, FIRST_NIGHT, burst)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "encoded_features.missingness_pattern")
    assert evaluation(result, "encoded_features.imputation_ceiling").passed  # under the ceiling
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:  # the checks' aggregates = their definitions
        assert_statistics_match_rows(conn, FIRST_NIGHT, settings, tested=True)


def test_a_few_odd_rows_tolerated_by_coverage_do_not_block_this_night_or_the_next(landing_copy, instance):
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])

    def few(frame, rng):
        frame.loc[rng.permutation(len(frame))[: max(1, len(frame) // 400)], "category"] = "odd_new_thing"
        return frame

    damage(landing_copy.landing, FIRST_NIGHT, few)
    for night in (FIRST_NIGHT, NEXT_NIGHT):
        result = run_night(settings, instance, night, run_config=QUIET, raise_on_error=False)
        failed, _ = outcome(result)
        assert result.success and not failed, (night, failed)
    pattern = evaluation(result, "encoded_features.missingness_pattern")
    assert pattern.metadata["cells_left_to_coverage"].value > 0
    with warehouse.connect(settings.warehouse.duckdb_path) as conn:
        assert_statistics_match_rows(conn, FIRST_NIGHT, settings)  # the excused cells, counted in SQL


def test_a_population_that_moved_beyond_the_training_bands_is_stopped_by_drift_bounds(landing_copy, instance):
    """Half of the customers re-segmented by the source overnight: every value is known,
    nothing is missing, but the population no longer looks like the one the model
    learned from. (``customer_changes`` would block it first; here its ceiling is raised, as
    a team that expected a re-segmentation would: drift_bounds is the second line.)"""
    settings = landing_copy([FIRST_NIGHT], checks={"max_reclassified_share": 0.6})
    segments = PROFILES[scenario_of(settings).world.profile].segments
    path = landing_copy.landing / "customers.parquet"
    customers = pd.read_parquet(path)
    moved = np.random.default_rng(3).random(len(customers)) < 0.5
    customers.loc[moved, "segment"] = segments[-1]
    customers.to_parquet(path, index=False)  # re-read by the night's run: valid from tonight
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert evaluation(result, "serving_features.customer_changes").passed
    assert_blocked(settings, result, FIRST_NIGHT, "encoded_features.drift_bounds")
    assert "segment" in evaluation(result, "encoded_features.drift_bounds").description


def test_slow_inflation_is_an_error_before_amounts_are_ten_percent_off(landing_copy, instance, record_property):
    """Amounts creep up 0.4% a day from the first night on. No single night looks wrong
    (amount_scale passes, the drift bands hold); the daily drift monitor must warn, then
    stop the nights before prices are 10% off (1.004^24 > 1.10). At the default world's
    volume it warns within 10 nights (test_guards); at these 4,000 customers a day holds a
    fifth of the information, and the nights it took are recorded."""
    nights = [FIRST_NIGHT + dt.timedelta(days=i) for i in range(24)]
    settings = landing_copy(nights)
    for i, night in enumerate(nights):
        factor = 1.004 ** (i + 1)

        def inflate(frame, rng, factor=factor):
            frame["amount"] = (frame["amount"] * factor).round(2)
            return frame

        damage(landing_copy.landing, night, inflate)
    first_warn = first_error = None
    for i, night in enumerate(nights):
        result = run_night(settings, instance, night, run_config=QUIET, raise_on_error=False)
        check = evaluation(result, "encoded_features.daily_drift")
        assert evaluation(result, "raw_transactions.amount_scale").passed
        if not check.passed:
            first_warn = first_warn or i + 1
            if check.severity.value == "ERROR":
                first_error = i + 1
                assert not result.success and scored(settings, night) == 0
                assert "amount_level drifting up" in check.description
                break
    record_property(
        "slow_inflation", f"{landing_copy.world}: first WARN night {first_warn}, first ERROR night {first_error}"
    )
    print(f"{landing_copy.world}: 0.4%/day inflation -> first WARN night {first_warn}, first ERROR night {first_error}")
    assert first_error is not None and 1.004**first_error < 1.10
    assert first_warn is not None and first_warn <= first_error


def test_the_detection_power_certificate_holds_its_first_points(landing_world, instance):
    """The tiny version of ``python -m benchmarks.detection_power`` on each world: generic
    faults at graded magnitudes through the real nightly job — a day re-sent under fresh ids,
    the largest category losing rows, customers re-classified — each blocked on its first
    night at or below the magnitude the README's table states, by the check made for it."""
    from benchmarks.detection_power import Replay, measure

    world, folder = landing_world
    replay = Replay(
        world,
        LANDING_CUSTOMERS,
        [FIRST_NIGHT],
        pristine=folder,
        instance=instance,
        training=TRAINED_OVERRIDES["training"],
    )
    report = measure(world, LANDING_CUSTOMERS, [FIRST_NIGHT], tiny=True, replay=replay)
    smallest = {s["kind"]: s for s in report["smallest_blocked"]}
    assert (
        smallest["resend"]["magnitude"] <= 0.3 and "raw_transactions.replayed_rows" in smallest["resend"]["blocked_by"]
    )
    assert smallest["lose"]["magnitude"] <= 0.8 and "raw_transactions.night_profile" in smallest["lose"]["blocked_by"]
    assert smallest["reclassify"]["magnitude"] <= 0.2
    assert "serving_features.customer_changes" in smallest["reclassify"]["blocked_by"]
    assert not report["never_blocked_at_the_largest_magnitude"]
