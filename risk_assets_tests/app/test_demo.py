"""`risk-assets demo` end to end on a small world: its table agrees with the audit trail,
its instance opens in the UI without a false alarm, and the operator's commands read it."""

import json
import re

from risk_assets.app import cli
from risk_assets_tests.app.test_cli_paths import JOB_RUNS, REEXECUTE
from risk_assets_tests.app.test_ui import _graphql as graphql
from risk_assets_tests.app.test_ui import webserver
from risk_assets_tests.scenario.test_false_alarms import CHECKS_PER_NIGHT


def test_demo_blocks_the_incident_nights_and_the_audit_agrees(tmp_path, monkeypatch, capsys):
    config = tmp_path / "small.toml"
    config.write_text("[scenario.world]\nn_customers = 1500\n[training]\nnum_boost_round = 40\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RISK_ASSETS_CONFIG", str(config))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    status = cli.main(["demo", "--nights", "11"])  # the skewed build (night 6) and the product change (night 10)
    out = capsys.readouterr().out
    assert status == 0, out
    blocked = re.findall(r"^(\d{4}-\d\d-\d\d)\s+\d+ rows\s+BLOCKED.*ERROR: (.*)$", out, flags=re.M)
    assert [night for night, _ in blocked] == ["2026-08-06", "2026-08-10"]
    assert "feature_parity" in blocked[0][1] and "category_coverage" in blocked[1][1]
    assert len(re.findall(r"^\d{4}-\d\d-\d\d re-run .* scored", out, flags=re.M)) == 2
    assert out.count("cost had it been written") == 2
    assert (tmp_path / ".dagster_home").is_dir()

    assert cli.main(["audit", "--format", "json", "--home", str(tmp_path / ".dagster_home")]) == 0
    rows = json.loads(capsys.readouterr().out)
    nights = {r["partition"] for r in rows if r["partition"] != "-"}
    assert nights == {f"2026-08-{d:02d}" for d in range(1, 12)}
    failed = {(r["partition"], r["check"]) for r in rows if r["status"] == "FAILED" and r["severity"] == "ERROR"}
    for night, checks in blocked:
        for check in checks.split(", "):
            assert (night, check.strip()) in failed
    coverage = next(
        r
        for r in rows
        if r["partition"] == "2026-08-10" and r["check"] == "category_coverage" and r["status"] == "FAILED"
    )
    assert coverage["thresholds"]["max_unmapped_share"] == 0.005
    assert all(
        r["model_version"] not in (None, "-") and r["mapping_version"] not in (None, "-")
        for r in rows
        if r["partition"] != "-"
    )  # every nightly result names its model and mapping
    # every night: every nightly check has a result
    per_night = {}
    for r in rows:
        if r["partition"] != "-":
            per_night.setdefault(r["partition"], set()).add((r["asset"], r["check"]))
    assert len({len(v) for v in per_night.values()}) == 1 and len(next(iter(per_night.values()))) == CHECKS_PER_NIGHT

    # ---------------------------------------------------------------- the demo's instance in the UI
    home = tmp_path / ".dagster_home"
    assert "clock_running = false" in (home / "demo.toml").read_text()
    with webserver(home, home / "demo.toml") as port:
        states = {}
        for kind in ("sensorsOrError", "schedulesOrError"):
            data = graphql(
                port,
                f"""{{ {kind}(repositorySelector: {{repositoryName: "__repository__",
                repositoryLocationName: "risk_assets"}}) {{ ... on {"Sensors" if kind[1] == "e" else "Schedules"}
                {{ results {{ name {"sensorState" if kind[1] == "e" else "scheduleState"} {{ status }} }} }} }} }}""",
            )
            for r in data[kind]["results"]:
                states[r["name"]] = (r.get("sensorState") or r.get("scheduleState"))["status"]
        # the clock-driven automation is stopped in the demo's instance; the alert sensors run
        assert states["nightly_schedule"] == states["performance_schedule"] == states["freshness_sensor"] == "STOPPED"
        assert states["check_alerts_sensor"] == states["blocked_night_sensor"] == "RUNNING"
        freshness = graphql(
            port,
            """{ assetCheckExecutions(assetKey: {path: ["risk_scores"]},
            checkName: "freshness_check", limit: 50) { status } }""",
        )["assetCheckExecutions"]
        assert all(e["status"] != "FAILED" for e in freshness)
        runs = graphql(
            port,
            """{ runsOrError(filter: {pipelineName: "nightly_job", statuses: [FAILURE]}) {
            ... on Runs { results { runId tags { key value } } } } }""",
        )["runsOrError"]["results"]
        tags = {
            next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition"): next(
                (t["value"] for t in r["tags"] if t["key"] == "risk_assets/blocked_by"), None
            )
            for r in runs
        }
        assert sorted(tags) == [night for night, _ in blocked]
        for night, checks in blocked:  # the Runs list says which checks blocked each failed night
            assert all(check.strip() in tags[night] for check in checks.split(", "))
        observed = graphql(
            port,
            """{ assetOrError(assetKey: {path: ["risk_scores"]}) { ... on Asset {
            assetObservations(partitions: ["2026-08-06"]) { metadataEntries { label
            ... on PathMetadataEntry { path } } } } } }""",
        )["assetOrError"]["assetObservations"]
        assert any(
            e["label"] == "report" and e["path"].endswith("night-2026-08-06.html")
            for o in observed
            for e in o["metadataEntries"]
        )

    # ---------------------------------------------------------------- the operator's commands on it
    capsys.readouterr()
    assert cli.main(["alerts", "--home", str(home), "--kind", "night_blocked", "--format", "json"]) == 0
    night_blocked = json.loads(capsys.readouterr().out)
    assert sorted(a["partition"] for a in night_blocked) == [night for night, _ in blocked]
    assert cli.main(["status", "--home", str(home), "--last", "11"]) == 0  # every night scored in the end
    out = capsys.readouterr().out
    assert out.count("SCORED") == 11 and "serving_features.feature_parity" in out  # the earlier attempt
    assert cli.main(["audit", "--home", str(home), "--check", "imputation_ceiling", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "imputation ceiling; worst" in out and "at " in out and "ceiling=0.02" in out  # full summary, thresholds
    for bad in (
        ["audit", "--from", "2026-13-01"],
        ["audit", "--check", "no_such_check"],
        ["run", "--night", "2026-8-1"],
        ["run", "--night", "2099-01-01"],
        ["alerts", "--kind", "nope"],
        ["report", "--night", "yesterday"],
    ):
        assert cli.main([*bad, "--home", str(home)]) == 2, bad
        err = capsys.readouterr().err
        assert "valid" in err or "YYYY-MM-DD" in err, (bad, err)

    # ---------------------------------------------------------------- its runs belong to the code location
    # (runs executed in-process had no job origin: the UI listed none under nightly_job and
    # "Re-execute" failed with "Expected non-None value" on remote_job_origin)
    with webserver(home, home / "demo.toml") as port:
        listed = graphql(port, JOB_RUNS)["pipelineOrError"]
        assert listed["__typename"] == "Pipeline", listed
        by_night: dict[str, list[str]] = {}
        for r in listed["runs"]:
            night = next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition")
            by_night.setdefault(night, []).append(r["status"])
        assert sorted(by_night) == [f"2026-08-{d:02d}" for d in range(1, 12)]
        assert sorted(by_night["2026-08-06"]) == ["FAILURE", "SUCCESS"]  # blocked, then re-run after the rollback
        parent = next(
            r["runId"]
            for r in listed["runs"]
            if r["status"] == "FAILURE" and {"key": "dagster/partition", "value": "2026-08-06"} in r["tags"]
        )
        # the launch itself is what failed before (no daemon here: the run stays queued;
        # test_cli_paths runs a re-execution to a scored night under dagster dev)
        launched = graphql(port, REEXECUTE, {"parent": parent})["launchRunReexecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
