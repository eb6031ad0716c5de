"""A new user forgets ``calendar.holidays_country``: routine life must still not block.

The alpine world has Austrian public holidays (a quiet day: far fewer rows than its weekday).
Loaded and trained through the CLI with *no* country set, the history's holidays are
quarantined the first year — and ``load`` lists each with its reason and names the country
whose holidays they are; a date that was as quiet a year earlier is judged as a holiday by
itself (the calendar from the history), and a quarantined day older than every feature
window no longer blocks (quarantine in proportion). The month of nights after the history
is scored, every night."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import tomllib

from risk_assets.scenario.worlds import landing_settings
from risk_assets.settings import to_toml
from risk_assets_tests.app.test_cli_paths import cli, user_env

HISTORY = (dt.date(2025, 1, 1), dt.date(2026, 1, 31))
NIGHTS = (dt.date(2026, 2, 1), dt.date(2026, 3, 3))  # 31 nights
TRAINING = {  # validation right before the nights, as a team retrains
    "start": "2025-06-01",
    "end": "2025-11-15",
    "asof_step_days": 8,
    "validation_start": "2026-01-01",
    "validation_end": "2026-01-31",
    "validation_step_days": 4,
    "num_boost_round": 60,
}


def test_a_history_with_holidays_and_no_country_set_lists_them_and_the_nights_after_it_score(tmp_path):
    settings = landing_settings(tmp_path, "alpine", 4000, TRAINING, calendar={"holidays_country": None})
    assert settings.calendar.holidays_country is None
    (tmp_path / "risk_assets.toml").write_text(to_toml(settings))
    env = {**user_env(), "RISK_ASSETS_CONFIG": str(tmp_path / "risk_assets.toml")}
    home = ["--home", str(tmp_path / "home")]
    days = ["--from", str(HISTORY[0]), "--to", str(NIGHTS[1])]
    assert cli("export-landing", "--out", str(tmp_path / "landing"), *days, env=env).returncode == 0

    load = cli("load", "--from", str(HISTORY[0]), "--to", str(HISTORY[1]), *home, env=env)
    assert load.returncode == 0, load.stdout + load.stderr
    listed = [line for line in load.stdout.splitlines() if line.startswith("  20")]
    quarantined = {line.split()[0] for line in listed}
    reasons = {line.split()[0]: line for line in listed}
    for holiday in ("2025-05-01", "2025-08-15", "2025-12-08", "2025-12-25"):  # quiet weekdays, the first year
        assert "row_volume: too few rows" in reasons[holiday], load.stdout
    quiet = sum("row_volume: too few rows" in line for line in listed)
    assert f"{quiet} of the {quiet} quiet day(s) are public holidays in AT" in load.stdout, load.stdout
    assert 'holidays_country = "AT"' in load.stdout
    pasted = textwrap.dedent(load.stdout.split("in the settings file:\n", 1)[1])  # what load says to paste
    override = tomllib.loads(pasted)["override"]
    assert set(override["accept_days"]) == quarantined and override["by"] and override["reason"]
    for recurring in ("2026-01-01", "2026-01-06"):  # as quiet a year earlier: judged as holidays by themselves
        assert recurring not in quarantined, load.stdout

    train = cli("train", *home, env=env)
    assert train.returncode == 0, train.stdout + train.stderr
    assert "calendar: no holidays_country set" in train.stdout and "public holidays in AT" in train.stdout

    run = cli("run", "--from", str(NIGHTS[0]), "--to", str(NIGHTS[1]), *home, env=env, timeout=1200)
    nights = (NIGHTS[1] - NIGHTS[0]).days + 1
    assert run.returncode == 0 and f"{nights} night(s): {nights} scored, 0 blocked or failed" in run.stdout, run.stdout
    # the old quarantined days are reported, not hidden: lookback_health WARNs, counting the customers they reach
    alerts = json.loads(cli("alerts", "--kind", "check_failed", "--format", "json", *home, env=env).stdout)
    health = [a for a in alerts if a["check_name"] == "lookback_health"]
    assert health and all(a["severity"] == "WARN" and "read only by days_since_last_txn" in a["reason"] for a in health)
