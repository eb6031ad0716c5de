"""`risk-assets demo` end to end on a small world: its table agrees with the audit trail."""

import json
import re

from risk_assets import cli
from risk_assets_tests.test_false_alarms import CHECKS_PER_NIGHT


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
    coverage = next(r for r in rows if r["partition"] == "2026-08-10" and r["check"] == "category_coverage"
                    and r["status"] == "FAILED")
    assert json.loads(coverage["thresholds"])["max_unmapped_share"] == 0.005
    # every night: every nightly check has a result
    per_night = {}
    for r in rows:
        if r["partition"] != "-":
            per_night.setdefault(r["partition"], set()).add((r["asset"], r["check"]))
    assert len({len(v) for v in per_night.values()}) == 1 and len(next(iter(per_night.values()))) == CHECKS_PER_NIGHT
