"""Schedule, sensors, alerts and the missed-night alarm."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pandas as pd
import pytest

from risk_assets.app import alerts
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import NIGHTLY_JOB, REFERENCE_JOB
from risk_assets.defs.sensors import Done, landing_requests
from risk_assets.settings import Settings
from risk_assets.sources import LandingSource
from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, run_night


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Berlin"])
def test_the_0230_tick_requests_yesterdays_partition(timezone):
    settings = Settings().with_overrides(calendar={"timezone": timezone})
    tick = dt.datetime(2026, 8, 2, 2, 30, tzinfo=dt.UTC).astimezone(__import__("zoneinfo").ZoneInfo(timezone))
    tick = tick.replace(hour=2, minute=30)
    with dg.instance_for_test() as instance:
        schedule = build_definitions(settings).resolve_schedule_def("nightly_schedule")
        assert schedule.cron_schedule == "30 2 * * *" and schedule.execution_timezone == timezone
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        result = schedule.evaluate_tick(context)
    [request] = result.run_requests
    assert request.partition_key == "2026-08-01"


def _sensor_context(instance, defs, cursor=None):
    return dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)


def test_a_blocked_night_produces_an_alert_row(world_copy, instance):
    settings = world_copy(
        world={"product_change": {"enabled": True, "date": FIRST_NIGHT.isoformat()}},
        alerts={"duckdb_path": str(world_copy.folder / "alerts.duckdb")},
    )
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert not result.success
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("blocked_night_sensor")
    run = instance.get_run_by_id(result.run_id)
    [failure] = [r.dagster_event for r in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure,
    ).for_run_failure()
    sensor(context)
    stored = alerts.read(settings.alerts.duckdb_path)
    [row] = stored[stored["kind"] == "night_blocked"].itertuples()
    assert row.partition == FIRST_NIGHT.isoformat() and row.run_id == result.run_id
    assert "category_coverage" in row.reason and row.run_url.endswith(f"/runs/{result.run_id}")

    # the check-history sensor names every failed check of the night, once
    check_sensor = defs.resolve_sensor_def("check_alerts_sensor")
    context = _sensor_context(instance, defs)
    check_sensor(context)
    check_sensor(_sensor_context(instance, defs, cursor=context.cursor))  # a second tick adds nothing
    failed = alerts.read(settings.alerts.duckdb_path)
    failed = failed[failed["kind"] == "check_failed"]
    assert {"category_coverage"} <= set(failed["check_name"])
    assert failed["alert_id"].is_unique and (failed["partition"] == FIRST_NIGHT.isoformat()).all()


def test_a_warn_only_night_produces_an_alert_too(world_copy, instance):
    settings = world_copy(
        checks={"score_psi_warn": 1e-9},  # every night's score PSI exceeds it
        alerts={"duckdb_path": str(world_copy.folder / "alerts.duckdb")},
    )
    result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
    assert result.success  # WARN never blocks: scores were written
    defs = build_definitions(settings)
    defs.resolve_sensor_def("check_alerts_sensor")(_sensor_context(instance, defs))
    stored = alerts.read(settings.alerts.duckdb_path)
    warn = stored[(stored["check_name"] == "score_sanity")]
    assert len(warn) == 1 and warn.iloc[0]["severity"] == "WARN"
    assert warn.iloc[0]["partition"] == FIRST_NIGHT.isoformat()
    assert "PSI" in warn.iloc[0]["reason"]


def test_a_missed_night_is_flagged_by_the_freshness_check(world_copy, instance):
    settings = world_copy()
    defs = build_definitions(settings)
    freshness = [c for c in defs.asset_checks if any("freshness" in k.name for k in c.check_keys)]
    assert freshness, "risk_scores has a time-partition freshness check"
    job = dg.define_asset_job("freshness_now", selection=dg.AssetSelection.checks(*freshness[0].check_keys))
    result = (
        dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=[job], resources=defs.resources)
        .resolve_job_def("freshness_now")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    [evaluation] = result.get_asset_check_evaluations()
    # no night has scores in this instance: the latest due partition is missing
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.asset_key == dg.AssetKey("risk_scores")


def test_the_webhook_receives_a_json_payload(tmp_path):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        alert = alerts.Alert(
            kind="check_failed",
            reason="12% imputed",
            partition="2026-08-14",
            asset="encoded_features",
            check_name="imputation_ceiling",
            severity="ERROR",
            run_id="abc",
            run_url="http://127.0.0.1:3000/runs/abc",
        )
        [stored] = alerts.record(tmp_path / "alerts.duckdb", [alert], webhook_url=url, webhook_timeout=5)
        assert alerts.record(tmp_path / "alerts.duckdb", [alert], webhook_url=url) == []  # no duplicate
    finally:
        server.shutdown()
    assert len(received) == 1
    payload = received[0]
    assert payload["partition"] == "2026-08-14" and payload["check_name"] == "imputation_ceiling"
    assert payload["run_url"].endswith("/runs/abc") and payload["alert_id"] == stored.alert_id
    row = alerts.read(tmp_path / "alerts.duckdb").iloc[0]
    assert row["webhook_status"] == "HTTP 204"


def test_an_unreachable_webhook_is_recorded_not_swallowed(tmp_path):
    alert = alerts.Alert(kind="check_failed", reason="x", partition="2026-08-14", run_id="r1")
    alerts.record(tmp_path / "a.duckdb", [alert], webhook_url="http://127.0.0.1:9/none", webhook_timeout=1)
    assert alerts.read(tmp_path / "a.duckdb").iloc[0]["webhook_status"].startswith("failed")


def test_late_data_is_reconciled_the_next_night_as_a_warn(world_copy, instance):
    late = {"late_arrival": {"enabled": True, "date": FIRST_NIGHT.isoformat(), "share": 0.2}}
    settings = world_copy(world=late)

    def cutoff(night):
        at = dt.datetime.combine(night + dt.timedelta(days=1), dt.time(2, 30)).isoformat()
        return {**QUIET, "ops": {"raw_transactions": {"config": {"read_at": at}}}}

    first = run_night(settings, instance, FIRST_NIGHT, run_config=cutoff(FIRST_NIGHT))
    assert first.success
    second = run_night(
        settings, instance, FIRST_NIGHT + dt.timedelta(days=1), run_config=cutoff(FIRST_NIGHT + dt.timedelta(days=1))
    )
    assert second.success  # a WARN never blocks
    [check] = [e for e in second.get_asset_check_evaluations() if e.check_name == "late_arrivals"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert 0.1 < check.metadata["late_share"].value < 0.3
    assert check.metadata["affected_customers"].value > 0
    assert check.metadata["reconciled_partition"].value == FIRST_NIGHT.isoformat()


def test_realised_performance_closes_the_loop_with_a_warn_check(world_copy, instance):
    settings = world_copy()
    assert run_night(settings, instance, FIRST_NIGHT, run_config=QUIET).success
    defs = build_definitions(settings)
    result = defs.resolve_job_def("performance_job").execute_in_process(
        instance=instance, partition_key=FIRST_NIGHT.isoformat(), run_config=QUIET
    )
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert 0.5 < meta["realised_roc_auc"].value <= 1.0 and meta["positives"].value > 0
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "realised_vs_validation" and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["validation_roc_auc"].value > 0.5
    strict = world_copy(checks={"realised_auc_drop_warn": 0.0})
    stricter = (
        build_definitions(strict)
        .resolve_job_def("performance_job")
        .execute_in_process(instance=instance, partition_key=FIRST_NIGHT.isoformat(), run_config=QUIET)
    )
    [check] = stricter.get_asset_check_evaluations()
    realised, validation = check.metadata["realised_roc_auc"].value, check.metadata["validation_roc_auc"].value
    assert check.passed == (realised >= validation)


def test_the_performance_schedule_measures_the_night_whose_horizon_just_passed():
    with dg.instance_for_test() as instance:
        schedule = build_definitions(Settings()).resolve_schedule_def("performance_schedule")
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 9, 10, 6, 0, tzinfo=dt.UTC)
        )
        request = schedule(context)
    from risk_assets.core.night import Night

    assert request.partition_key == "2026-08-10"  # its labels end 2026-09-10 00:00, before the 06:00 tick
    assert Night(dt.date(2026, 8, 10), "UTC").bounds["label_end"] <= pd.Timestamp("2026-09-10 06:00")
    assert Night(dt.date(2026, 8, 11), "UTC").bounds["label_end"] > pd.Timestamp("2026-09-10 06:00")


def test_the_landing_sensor_requests_a_day_when_its_files_arrive(tmp_path):
    """Days in order, one run at a time, none while a run is going; a changed day again."""
    import os

    from risk_assets.scenario.source import export_landing

    root = tmp_path / "landing"
    days = [dt.date(2025, 3, 1), dt.date(2025, 3, 2)]
    base = Settings().with_overrides(scenario={"world": {"n_customers": 300}})
    export_landing(base, root, days)
    settings = base.with_overrides(source={"kind": "landing", "landing_dir": str(root)})
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)
        sensor = defs.resolve_sensor_def("landing_sensor")

        def tick(cursor):
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor))

        first = tick(None)
        assert [r.partition_key for r in first.run_requests] == ["2025-03-01"]  # the oldest first, alone
        second = tick(first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["2025-03-02"]
        assert tick(second.cursor).run_requests == []
        late_file = root / "transactions" / "date=2025-03-02" / "part-1.parquet"
        late_file.write_bytes((root / "transactions" / "date=2025-03-02" / "part-0.parquet").read_bytes())
        os.utime(late_file, ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
        # a run still going: nothing is requested until it ends
        going = instance.create_run_for_job(defs.resolve_job_def(NIGHTLY_JOB), run_id=None, tags={})
        instance.report_run_canceling(going)  # CANCELING: still in progress
        waiting = tick(second.cursor)
        assert waiting.run_requests == [] and going.run_id in (waiting.skip_message or "")
        instance.report_run_canceled(going)
        third = tick(second.cursor)
        assert [r.partition_key for r in third.run_requests] == ["2025-03-02"]


def test_the_landing_sensors_first_tick_after_a_history_load_requests_nothing_old(tmp_path):
    """A history loaded (``risk-assets load``) and the daemon started: the sensor's first
    tick must not request every day folder of the history again — only days after it."""
    from risk_assets.defs.jobs import HISTORY_JOB, range_tags
    from risk_assets.scenario.source import export_landing

    root = tmp_path / "landing"
    days = [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(4)]
    base = Settings().with_overrides(
        scenario={"world": {"n_customers": 300}}, warehouse={"duckdb_path": str(tmp_path / "w.duckdb")}
    )
    export_landing(base, root, days)
    settings = base.with_overrides(source={"kind": "landing", "landing_dir": str(root)})
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)
        defs.resolve_job_def(REFERENCE_JOB).execute_in_process(instance=instance)
        for day in (days[0], days[2]):  # a history with a gap: days[1] was left out of the ranges loaded
            defs.resolve_job_def(HISTORY_JOB).execute_in_process(
                instance=instance, tags=range_tags(day, day), raise_on_error=False
            )
        sensor = defs.resolve_sensor_def("landing_sensor")
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert [r.partition_key for r in first.run_requests] == [days[3].isoformat()]
        _, _, notes = landing_requests(LandingSource(settings), {}, Done.of(instance))
        assert any("never loaded and are not requested" in n and f"({days[1]} .. {days[1]})" in n for n in notes)


def test_the_landing_sensor_re_reads_a_changed_customers_file_for_the_next_night(tmp_path):
    """Reference data is a nightly input the sensor watches too: a re-delivered customers
    file is re-read by a reference_job run, as a version valid from the night after the
    newest loaded day (the night that would first have read it) — not while a day is being
    requested or a run is going; a file touched but not changed is re-read and records
    nothing. The first sight of the file requests nothing."""
    import os

    from risk_assets.core.night import Night
    from risk_assets.defs.jobs import HISTORY_JOB, range_tags
    from risk_assets.scenario.source import export_landing
    from risk_assets.scenario.worlds import landing_settings
    from risk_assets.store import warehouse

    days = [dt.date(2025, 3, 1), dt.date(2025, 3, 2)]
    settings = landing_settings(tmp_path, "embedded", 300, {"start": "2025-03-01", "end": "2025-03-02"})
    landing = tmp_path / "landing"
    export_landing(settings, landing, days)
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)
        assert defs.resolve_job_def(REFERENCE_JOB).execute_in_process(instance=instance, run_config=QUIET).success
        history = defs.resolve_job_def(HISTORY_JOB)
        assert history.execute_in_process(
            instance=instance, run_config=QUIET, tags=range_tags(days[0], days[0])
        ).success
        sensor = defs.resolve_sensor_def("landing_sensor")

        def tick(cursor):
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor))

        path = landing / "customers.parquet"
        first = tick(None)  # the day after the history; the reference files: stamped only
        assert [(r.job_name, r.partition_key) for r in first.run_requests] == [(NIGHTLY_JOB, days[1].isoformat())]

        # a day and the customers file change together: the day goes first, alone (its night
        # re-reads a changed customers file itself); the file waits, unstamped
        day_file = landing / "transactions" / f"date={days[1]}" / "part-0.parquet"
        os.utime(day_file, ns=(1_900_000_000_000_000_000, 1_900_000_000_000_000_000))
        os.utime(path, ns=(1_900_000_000_000_000_000, 1_900_000_000_000_000_000))
        together = tick(first.cursor)
        assert [(r.job_name, r.partition_key) for r in together.run_requests] == [(NIGHTLY_JOB, days[1].isoformat())]
        assert (
            json.loads(together.cursor)["reference:customers.parquet"]
            == json.loads(first.cursor)["reference:customers.parquet"]
        )  # unstamped: a later tick re-reads it
        first = together

        customers = pd.read_parquet(path)
        moved = int((customers["segment"].iloc[:90] != "premium").sum())  # re-classified: the others already were
        customers.loc[customers.index[:90], "segment"] = "premium"
        customers.to_parquet(path, index=False)
        os.utime(path, ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))

        going = instance.create_run_for_job(defs.resolve_job_def(NIGHTLY_JOB), run_id=None, tags={})
        instance.report_run_canceling(going)  # a run in progress: the re-read waits, unstamped
        waiting = tick(first.cursor)
        assert waiting.run_requests == [] and "customers.parquet changed: re-read once run" in waiting.skip_message
        instance.report_run_canceled(going)

        second = tick(waiting.cursor)
        [reread] = second.run_requests
        assert reread.job_name == REFERENCE_JOB
        as_of = Night(days[1], settings.calendar.timezone).as_of  # the night after the loaded 2025-03-01
        assert reread.run_config["ops"]["customers"]["config"] == {
            "valid_from": as_of.isoformat(),
            "only_if_changed": True,
        }
        job = defs.resolve_job_def(REFERENCE_JOB)
        assert job.execute_in_process(instance=instance, run_config={**reread.run_config, **QUIET}).success
        with warehouse.connect(settings.warehouse.duckdb_path) as conn:
            deliveries = warehouse.customer_deliveries(conn)
        assert len(deliveries) == 2 and pd.Timestamp(deliveries["valid_from"].iloc[-1]) == as_of
        assert deliveries["changed_customers"].iloc[-1] == moved > 0
        assert tick(second.cursor).run_requests == []

        os.utime(path, ns=(2_100_000_000_000_000_000, 2_100_000_000_000_000_000))  # touched, same content
        [touched] = tick(second.cursor).run_requests
        result = job.execute_in_process(instance=instance, run_config={**touched.run_config, **QUIET})
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
        with warehouse.connect(settings.warehouse.duckdb_path) as conn:
            assert len(warehouse.customer_deliveries(conn)) == 2  # nothing recorded


def test_a_rerun_of_a_failed_night_alerts_again(world_copy, instance):
    """Each failed run is its own event: re-running a night that is still bad must not be
    swallowed by the alert of the first attempt (alert ids are per run)."""
    settings = world_copy(
        world={"product_change": {"enabled": True, "date": FIRST_NIGHT.isoformat()}},
        alerts={"duckdb_path": str(world_copy.folder / "alerts.duckdb")},
    )
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("blocked_night_sensor")
    runs = []
    for _ in range(2):
        result = run_night(settings, instance, FIRST_NIGHT, run_config=QUIET, raise_on_error=False)
        assert not result.success
        [failure] = [r.dagster_event for r in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
        sensor(
            dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_instance=instance,
                dagster_run=instance.get_run_by_id(result.run_id),
                dagster_event=failure,
            ).for_run_failure()
        )
        runs.append(result.run_id)
    stored = alerts.read(settings.alerts.duckdb_path)
    blocked = stored[stored["kind"] == "night_blocked"]
    assert sorted(blocked["run_id"]) == sorted(runs) and set(blocked["partition"]) == {FIRST_NIGHT.isoformat()}
