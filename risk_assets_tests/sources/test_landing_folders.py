"""Landing folders as real exports and uploads leave them, on both worlds, through the
real raw asset and nightly job: nothing of a day is lost or settled silently.

Each case reproduces what happened to a user (the issue's list) and shows the new
behaviour: the row is rejected with its reason, or the day fails naming the file or
folder, or the files that were not read are listed in the ``landing_files`` check."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from risk_assets.app import alerts
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import REFERENCE_JOB
from risk_assets.defs.sensors import landing_requests
from risk_assets.sources import LandingSource
from risk_assets.store import warehouse
from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, run_night
from risk_assets_tests.scenario.test_worlds import assert_blocked, evaluation, outcome, scored

NEXT_NIGHT = FIRST_NIGHT + dt.timedelta(days=1)


def day_folder(landing, day: dt.date):
    return landing / "transactions" / f"date={day:%Y-%m-%d}"


def day_frame(landing, day: dt.date) -> pd.DataFrame:
    return pd.concat(
        [pd.read_parquet(f) for f in sorted(day_folder(landing, day).rglob("*.parquet"))], ignore_index=True
    )


def step_failure(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.user_failure_data.description


def ledger(settings, day: dt.date) -> tuple[list, pd.DataFrame]:
    with warehouse.connect(settings.warehouse.duckdb_path, read_only=True) as conn:
        loads = conn.execute("SELECT received, accepted, rejected FROM raw_loads WHERE partition = ?", [day]).fetchall()
        return loads, warehouse.load_files(conn, day)


def rejected(settings, day: dt.date) -> pd.DataFrame:
    with warehouse.connect(settings.warehouse.duckdb_path, read_only=True) as conn:
        return conn.execute(
            "SELECT source_file, source_row, record_key, reasons FROM rejected_transactions "
            "WHERE partition = ? ORDER BY source_file, source_row",
            [day],
        ).df()


def test_a_timestamp_beyond_the_nanosecond_range_is_rejected_with_its_reason(landing_copy, instance):
    """9999-12-31 in a microsecond parquet column used to crash the raw step with a generic
    error; now those rows are rejected (naming the range) and the night runs."""
    settings = landing_copy([FIRST_NIGHT])
    path = day_folder(landing_copy.landing, FIRST_NIGHT) / "part-0.parquet"
    frame = pd.read_parquet(path)
    far = [dt.datetime(9999, 12, 31) if i < 2 else ts.to_pydatetime() for i, ts in enumerate(frame["event_ts"])]
    pq.write_table(
        pa.Table.from_pandas(frame.drop(columns="event_ts"), preserve_index=False).append_column(
            "event_ts", pa.array(far, pa.timestamp("us"))
        ),
        path,
    )
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    failed, _ = outcome(result)
    assert result.success and not failed, [evaluation(result, f).description for f in failed]
    bad = rejected(settings, FIRST_NIGHT)
    assert list(bad["record_key"]) == list(frame["transaction_id"][:2])  # under the 1% rejection threshold
    assert set(bad["reasons"]) == {"event_ts: out of range (outside 1677-09-21 .. 2262-04-11)"}
    assert scored(settings, FIRST_NIGHT) > 0


def test_half_a_day_in_a_temporary_folder_waits_and_never_loads_half(landing_copy, instance):
    """An export still writing (``_temporary/0/``) fails the day as 'write in progress'
    with nothing written; the landing sensor waits for it; once committed, the whole day
    loads."""
    settings = landing_copy([FIRST_NIGHT])
    folder = day_folder(landing_copy.landing, FIRST_NIGHT)
    whole = pd.read_parquet(folder / "part-0.parquet")
    half = len(whole) // 2
    (folder / "_temporary" / "0").mkdir(parents=True)
    whole.iloc[half:].to_parquet(folder / "_temporary" / "0" / "part-1.parquet", index=False)
    whole.iloc[:half].to_parquet(folder / "part-0.parquet", index=False)

    requests, _, notes = landing_requests(LandingSource(settings), {})
    assert FIRST_NIGHT.isoformat() not in [r.partition_key for r in requests]
    assert any("waiting, write in progress" in n and "_temporary" in n for n in notes)

    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    description = step_failure(result)
    assert "write in progress" in description and f"date={FIRST_NIGHT}/_temporary/" in description
    loads, files = ledger(settings, FIRST_NIGHT)
    assert loads == [] and files.empty and scored(settings, FIRST_NIGHT) == 0

    shutil.move(folder / "_temporary" / "0" / "part-1.parquet", folder / "part-1.parquet")  # the commit
    shutil.rmtree(folder / "_temporary")
    (folder / "_SUCCESS").touch()
    requests, _, _ = landing_requests(LandingSource(settings), {})
    assert FIRST_NIGHT.isoformat() in [r.partition_key for r in requests]
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert result.success
    loads, files = ledger(settings, FIRST_NIGHT)
    assert loads == [(len(whole), len(whole), 0)]
    assert files[files["action"] == "skipped"]["path"].tolist() == [f"transactions/date={FIRST_NIGHT}/_SUCCESS"]


def test_hive_style_hour_folders_are_read(landing_copy, instance):
    """``hour=HH/`` sub-folders used to load 0 rows; every nested file is read and listed."""
    settings = landing_copy([FIRST_NIGHT])
    folder = day_folder(landing_copy.landing, FIRST_NIGHT)
    whole = pd.read_parquet(folder / "part-0.parquet")
    (folder / "part-0.parquet").unlink()
    for hour, rows in whole.groupby(whole["event_ts"].dt.hour):
        (folder / f"hour={hour:02d}").mkdir()
        rows.to_parquet(folder / f"hour={hour:02d}" / "part-0.parquet", index=False)
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    failed, _ = outcome(result)
    assert result.success and not failed, failed
    loads, files = ledger(settings, FIRST_NIGHT)
    assert loads == [(len(whole), len(whole), 0)]
    read = files[files["action"] == "read"]
    assert len(read) == whole["event_ts"].dt.hour.nunique() and read["rows"].sum() == len(whole)
    assert evaluation(result, "raw_transactions.landing_files").passed


def test_malformed_partition_folders_are_reported_by_the_sensor_and_a_check(landing_copy, instance):
    """``date=2025-13-01``, ``date=20251202`` and a stray ``tmp_upload/`` used to be ignored
    without a word (and ``date=20251202`` was taken for 2025-12-02 and looked for under
    another name). They are not partitions: the sensor alerts on each and requests none
    of them; the night's landing_files check (WARN) names them."""
    settings = landing_copy([FIRST_NIGHT])
    top = landing_copy.landing / "transactions"
    compact = f"date={NEXT_NIGHT:%Y%m%d}"
    for name in ("date=2025-13-01", compact, "tmp_upload"):
        (top / name).mkdir()
    shutil.copy(day_folder(landing_copy.landing, FIRST_NIGHT) / "part-0.parquet", top / compact / "part-0.parquet")

    source = LandingSource(settings)
    assert source.available_days() == [FIRST_NIGHT]
    requests, _, notes = landing_requests(source, {})
    assert [r.partition_key for r in requests] == [FIRST_NIGHT.isoformat()]
    assert any(compact in n and f"looks like {NEXT_NIGHT}" in n for n in notes)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_sensor")
    sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    stored = alerts.read(settings.alerts.duckdb_path)
    layout = stored[stored["kind"] == "landing_layout"]
    assert sorted(layout["asset"]) == [
        f"landing:transactions/{n}/" for n in sorted(["date=2025-13-01", compact, "tmp_upload"])
    ]

    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert result.success and scored(settings, FIRST_NIGHT) > 0  # WARN: the night itself is whole
    check = evaluation(result, "raw_transactions.landing_files")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    for name in ("date=2025-13-01", compact, "tmp_upload"):
        assert name in check.description
    assert "not a valid date" in check.description and "not a partition folder" in check.description


def test_a_correction_file_with_conflicting_amounts_blocks_the_day(landing_copy, instance):
    """A correction file holding two existing ids at 100x used to win by file-name order
    with every check green. Now both copies of each id are rejected, each reason naming
    the other file, and the blocking conflicting_duplicates check stops the night."""
    settings = landing_copy([FIRST_NIGHT])
    folder = day_folder(landing_copy.landing, FIRST_NIGHT)
    original = pd.read_parquet(folder / "part-0.parquet")
    correction = original.iloc[[3, 7]].assign(amount=lambda f: f["amount"] * 100)
    correction.to_parquet(folder / "correction.parquet", index=False)
    ids = sorted(correction["transaction_id"])

    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert_blocked(settings, result, FIRST_NIGHT, "raw_transactions.conflicting_duplicates")
    check = evaluation(result, "raw_transactions.conflicting_duplicates")
    assert check.metadata["ids"].value == ids  # the ids, in the check's metadata
    bad = rejected(settings, FIRST_NIGHT)
    assert sorted(bad["record_key"]) == sorted(ids * 2)
    for row in bad.itertuples():
        other = "part-0.parquet" if row.source_file.endswith("correction.parquet") else "correction.parquet"
        assert row.reasons.startswith("conflicting duplicate transaction_id: values differ (amount)")
        assert other in row.reasons


def test_an_id_re_sent_on_a_later_day_with_other_values_blocks_that_day(landing_copy, instance):
    """Across days: the copy is rejected naming the stored partition and file, and the
    later day fails conflicting_duplicates (it is quarantined)."""
    settings = landing_copy([FIRST_NIGHT, NEXT_NIGHT])
    assert run_night(settings, instance, FIRST_NIGHT, raw_only=True).success
    first = pd.read_parquet(day_folder(landing_copy.landing, FIRST_NIGHT) / "part-0.parquet").iloc[[0]]
    resent = first.assign(event_ts=first["event_ts"] + pd.Timedelta(days=1), amount=first["amount"] + 1)
    resent.to_parquet(day_folder(landing_copy.landing, NEXT_NIGHT) / "resent.parquet", index=False)
    assert run_night(settings, instance, NEXT_NIGHT, raw_only=True).success
    bad = rejected(settings, NEXT_NIGHT)
    assert bad["reasons"].tolist() == [
        "conflicting duplicate transaction_id: values differ (event_ts, amount_cents) from the row stored in "
        f"partition {FIRST_NIGHT} (from transactions/date={FIRST_NIGHT}/part-0.parquet)"
    ]
    with warehouse.connect(settings.warehouse.duckdb_path, read_only=True) as conn:
        verdict = conn.execute(
            "SELECT passed, summary FROM raw_verdicts WHERE partition = ? AND check_name = ?",
            [NEXT_NIGHT, "conflicting_duplicates"],
        ).fetchall()
    assert verdict[0][0] is False and first["transaction_id"].iloc[0] in verdict[0][1]


def test_a_customer_repeated_with_another_segment_fails_the_customers_check(landing_copy, instance):
    """The first row used to win. Both rows are rejected, the blocking customers check
    fails naming the id, and that customer's transactions are rejected saying why."""
    settings = landing_copy([FIRST_NIGHT])
    path = landing_copy.landing / "customers.parquet"
    customers = pd.read_parquet(path)
    night = day_frame(landing_copy.landing, FIRST_NIGHT)
    who = night["customer_id"].value_counts().index[0]
    twin = customers[customers["customer_id"] == who].copy()
    other = sorted(set(customers["segment"]) - set(twin["segment"]))[0]
    pd.concat([customers, twin.assign(segment=other)], ignore_index=True).to_parquet(path, index=False)

    result = (
        build_definitions(settings)
        .resolve_job_def(REFERENCE_JOB)
        .execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
    )
    assert not result.success
    check = evaluation(result, "customers.conflicting_duplicates")
    assert not check.passed and who in check.description
    with warehouse.connect(settings.warehouse.duckdb_path, read_only=True) as conn:
        reasons = conn.execute("SELECT reasons FROM rejected_customers WHERE record_key = ?", [who]).fetchall()
    assert len(reasons) == 2 and all("values differ (segment)" in r[0] for r in reasons)

    assert run_night(settings, instance, FIRST_NIGHT, raw_only=True).success
    bad = rejected(settings, FIRST_NIGHT)
    assert len(bad) == (night["customer_id"] == who).sum()
    assert set(bad["reasons"]) == {
        "customer_id: its customer rows are conflicting duplicates (rejected from customers)"
    }


def test_a_macos_resource_file_is_skipped_and_listed(landing_copy, instance):
    """``._part-0.parquet`` used to fail the whole day; a hidden file is not data."""
    settings = landing_copy([FIRST_NIGHT])
    folder = day_folder(landing_copy.landing, FIRST_NIGHT)
    (folder / "._part-0.parquet").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    failed, _ = outcome(result)
    assert result.success and not failed and scored(settings, FIRST_NIGHT) > 0
    check = evaluation(result, "raw_transactions.landing_files")
    assert check.passed and "._part-0.parquet (macOS resource fork)" in check.description
    assert ".DS_Store (marker file)" in check.description
    _, files = ledger(settings, FIRST_NIGHT)
    assert set(files.loc[files["action"] == "skipped", "path"]) == {
        f"transactions/date={FIRST_NIGHT}/._part-0.parquet",
        f"transactions/date={FIRST_NIGHT}/.DS_Store",
    }


def test_an_unknown_file_in_a_day_folder_fails_the_day_naming_it(landing_copy, instance):
    """A file that is neither parquet nor a known marker might be the day's data in
    another format: the day fails naming it, with what to do."""
    settings = landing_copy([FIRST_NIGHT])
    (day_folder(landing_copy.landing, FIRST_NIGHT) / "part-1.csv").write_text("transaction_id,amount\nX,1\n")
    result = run_night(settings, instance, FIRST_NIGHT, raw_only=True, raise_on_error=False)
    description = step_failure(result)
    assert f"transactions/date={FIRST_NIGHT}/part-1.csv" in description
    assert "neither a .parquet data file nor a known marker" in description
    assert ledger(settings, FIRST_NIGHT)[0] == []
