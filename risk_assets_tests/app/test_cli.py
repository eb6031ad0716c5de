"""The operator's CLI on someone else's data: a range of nights through `risk-assets run`
on the landing source (both worlds), then `status`, `alerts`, `report` and `audit` on the
same persistent instance."""

from __future__ import annotations

import datetime as dt
import json
import re

from risk_assets.app import cli
from risk_assets.settings import to_toml
from risk_assets_tests.conftest import FIRST_NIGHT
from risk_assets_tests.scenario.test_worlds import damage

NIGHTS = [FIRST_NIGHT + dt.timedelta(days=i) for i in range(3)]
BAD = NIGHTS[1]


def test_a_range_of_nights_through_the_cli_then_status_alerts_report_audit(landing_copy, tmp_path, monkeypatch, capsys):
    settings = landing_copy(NIGHTS, report={"dir": str(tmp_path / "reports")})
    config = tmp_path / "risk.toml"
    config.write_text(to_toml(settings))
    monkeypatch.setenv("RISK_ASSETS_CONFIG", str(config))
    home = ["--home", str(tmp_path / "home")]

    def renamed(frame, rng):  # a product change: one category renamed at the source, mapping not updated
        top = frame["category"].value_counts().index[0]
        frame.loc[frame["category"] == top, "category"] = top + "_v2"
        return frame

    damage(landing_copy.landing, BAD, renamed)
    status = cli.main(["run", "--from", str(NIGHTS[0]), "--to", str(NIGHTS[-1]), *home])
    out = capsys.readouterr().out
    assert status == 1, out  # a night was blocked
    lines = {night: line for line in out.splitlines() for night in map(str, NIGHTS) if line.startswith(night)}
    assert "scored" in lines[str(NIGHTS[0])]
    # the renamed category is unmapped (raw category_coverage, ERROR) and its rows vanished from
    # the old name: the night profile stops the night at the raw layer already
    assert "BLOCKED by" in lines[str(BAD)] and "raw_transactions.night_profile" in lines[str(BAD)]
    assert "raw_transactions.category_coverage" in lines[str(BAD)]
    # the blocked day never feeds the next night silently: its look-back quarantines it
    assert "BLOCKED by" in lines[str(NIGHTS[2])] and "serving_features.lookback_health" in lines[str(NIGHTS[2])]
    assert "3 night(s): 1 scored, 2 blocked or failed" in out

    assert cli.main(["status", "--last", "3", *home]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if str(BAD) in line)
    assert "BLOCKED" in row and "night_profile" in row and out.count("SCORED") == 1

    assert cli.main(["alerts", "--kind", "night_blocked", "--format", "json", *home]) == 0
    alerts = json.loads(capsys.readouterr().out)
    assert [a["partition"] for a in alerts] == [str(BAD), str(NIGHTS[2])]
    assert "raw_transactions.night_profile" in alerts[0]["reason"]
    assert "serving_features.lookback_health" in alerts[1]["reason"]
    # the CLI raises what the check-alert sensor raises: one check_failed per failed check
    assert cli.main(["alerts", "--kind", "check_failed", "--format", "json", *home]) == 0
    failed = {
        (a["partition"], f"{a['asset']}.{a['check_name']}", a["severity"]) for a in json.loads(capsys.readouterr().out)
    }
    assert (str(BAD), "raw_transactions.night_profile", "ERROR") in failed
    assert (str(BAD), "raw_transactions.category_coverage", "ERROR") in failed
    assert (str(NIGHTS[2]), "serving_features.lookback_health", "ERROR") in failed

    # the report of the blocked night, written after the run: the failed checks and the four plots
    page = (tmp_path / "reports" / f"night-{BAD}.html").read_text()
    assert "BLOCKED" in page and "raw_transactions.night_profile" in page
    assert (
        len(re.findall(r"<img alt='[^']+' src='data:image/png;base64,", page)) == 3
    )  # drift was never evaluated: the night stopped at the raw layer
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # opens offline
    assert cli.main(["report", "--night", str(BAD), "--out", str(tmp_path / "again.html"), *home]) == 0
    assert (tmp_path / "again.html").read_text().count("data:image/png;base64,") == 3
    assert capsys.readouterr().out.strip().endswith("again.html")

    assert cli.main(["audit", "--from", str(BAD), "--to", str(BAD), "--format", "json", *home]) == 0
    rows = json.loads(capsys.readouterr().out)
    failed = [r for r in rows if r["status"] == "FAILED" and r["check"] == "category_coverage"]
    assert failed and isinstance(failed[0]["thresholds"], dict) and isinstance(failed[0]["figures"], dict)
    assert all(r["model_version"] not in (None, "-") for r in rows)
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)  # one night: ordered by run time
