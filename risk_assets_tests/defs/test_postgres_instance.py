"""Issue 16: the Dagster instance on a real PostgreSQL server.

The documented ``deploy/postgres/dagster.yaml`` (dagster-postgres run, event-log and
schedule storage; a run queue with a one-at-a-time limit on the warehouse's jobs) in a
DAGSTER_HOME, pointed at a fresh database: two nights through ``risk-assets run`` — a clean
one and a product change that ``category_coverage`` blocks — then the blocked-night tag,
the alerts, ``status`` and ``audit`` read back from PostgreSQL, and the sensors evaluated
against it. Needs a server (``.ci/run`` starts one; elsewhere set RISK_ASSETS_TEST_POSTGRES).
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from risk_assets.app import cli
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import NIGHTLY_JOB, WAREHOUSE_TAG
from risk_assets.defs.sensors import BLOCKED_BY_TAG
from risk_assets.settings import to_toml
from risk_assets_tests.conftest import FIRST_NIGHT

CLEAN, BLOCKED = FIRST_NIGHT, FIRST_NIGHT + dt.timedelta(days=1)


def test_nights_sensors_and_audit_on_a_postgres_instance(world_copy, postgres_home, tmp_path, monkeypatch, capsys):
    settings = world_copy(
        world={"product_change": {"enabled": True, "date": BLOCKED.isoformat()}},
        report={"dir": str(tmp_path / "reports")},
    )
    config = tmp_path / "risk.toml"
    config.write_text(to_toml(settings))
    monkeypatch.setenv("RISK_ASSETS_CONFIG", str(config))
    home = ["--home", str(postgres_home)]

    with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
        storages = {
            type(s).__name__ for s in (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        }
        assert storages == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert {"key": WAREHOUSE_TAG, "limit": 1} in [dict(t) for t in queue.tag_concurrency_limits]
        assert queue.max_concurrent_runs == 4

    assert cli.main(["run", "--from", str(CLEAN), "--to", str(BLOCKED), *home]) == 1  # one night blocked
    capsys.readouterr()

    with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
        runs = {r.tags["dagster/partition"]: r for r in instance.get_runs(dg.RunsFilter(job_name=NIGHTLY_JOB))}
        assert runs[CLEAN.isoformat()].status == dg.DagsterRunStatus.SUCCESS
        blocked = runs[BLOCKED.isoformat()]
        assert blocked.status == dg.DagsterRunStatus.FAILURE
        assert blocked.tags[WAREHOUSE_TAG] == "duckdb"
        assert "category_coverage" in blocked.tags[BLOCKED_BY_TAG]  # written by after_night, stored in PostgreSQL

        # the sensors against the same instance: the blocked-night sensor re-evaluated (idempotent),
        # the check-history sensor reading the event log from PostgreSQL
        defs = build_definitions(settings)
        [failure] = [
            r.dagster_event for r in instance.all_logs(blocked.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        ]
        defs.resolve_sensor_def("blocked_night_sensor")(
            dg.build_run_status_sensor_context(
                sensor_name="blocked_night_sensor",
                dagster_instance=instance,
                dagster_run=blocked,
                dagster_event=failure,
            ).for_run_failure()
        )
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        defs.resolve_sensor_def("check_alerts_sensor")(context)
        assert context.cursor  # it read check evaluations from the event log

    assert cli.main(["alerts", "--kind", "night_blocked", "--format", "json", *home]) == 0
    [alert] = json.loads(capsys.readouterr().out)
    assert alert["partition"] == BLOCKED.isoformat() and "category_coverage" in alert["reason"]

    assert cli.main(["status", "--last", "2", *home]) == 1
    assert "category_coverage" in capsys.readouterr().out

    assert cli.main(["audit", "--format", "json", *home]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_night = {(r["partition"], r["asset"], r["check"]): r for r in rows}
    assert by_night[(BLOCKED.isoformat(), "encoded_features", "category_coverage")]["status"] == "FAILED"
    assert by_night[(CLEAN.isoformat(), "encoded_features", "category_coverage")]["status"] == "PASSED"
    assert {r["partition"] for r in rows} >= {CLEAN.isoformat(), BLOCKED.isoformat()}
