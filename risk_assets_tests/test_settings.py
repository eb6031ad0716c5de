import datetime as dt
from pathlib import Path

import pytest

from risk_assets.scenario.settings import scenario_of
from risk_assets.settings import CONFIG_ENV_VAR, Settings, SettingsError, load_settings, settings_from_mapping


def test_defaults_are_the_embedded_demo_world():
    s = load_settings(None) if not __import__("os").environ.get(CONFIG_ENV_VAR) else Settings()
    assert s.source.kind == "embedded"
    assert scenario_of(s).world.n_customers == 20_000
    assert s.calendar.timezone == "UTC"
    assert len(s.version()) == 12


def test_toml_file_from_env_var_overrides_and_resolves_paths(tmp_path, monkeypatch):
    cfg = tmp_path / "risk.toml"
    cfg.write_text(
        '[warehouse]\nduckdb_path = "data/w.duckdb"\n'
        '[calendar]\ntimezone = "Europe/Berlin"\n'
        "[scenario.world]\nn_customers = 300\n[scenario.world.product_change]\nenabled = true\ndate = 2026-01-05\n"
    )
    monkeypatch.setenv(CONFIG_ENV_VAR, str(cfg))
    s = load_settings()
    world = scenario_of(s).world
    assert world.n_customers == 300
    assert world.product_change.enabled and world.product_change.date == dt.date(2026, 1, 5)
    assert s.calendar.timezone == "Europe/Berlin"
    assert s.warehouse.duckdb_path == tmp_path / "data" / "w.duckdb"
    assert s.version() != Settings().version()


@pytest.mark.parametrize(
    "toml, key",
    [
        ("[scenario.world]\nn_customers = -5\n", "scenario.world.n_customers"),
        ('[calendar]\ntimezone = "Mars/Olympus"\n', "calendar.timezone"),
        ("[scenario.world.missingness]\nshare = 1.5\n", "scenario.world.missingness.share"),
        ("[scenario.world]\nno_such_key = 1\n", "scenario.world.no_such_key"),
        ("[world]\nn_customers = 300\n", "the section [world] moved to [scenario.world]"),
        ("[serving_skew]\nend_shift_hours = -3\n", "the section [serving_skew] moved to [scenario.serving_skew]"),
        ('[source]\nkind = "s3"\n', "source.kind"),
    ],
)
def test_invalid_values_fail_at_load_naming_the_key(tmp_path, toml, key):
    """Production keys fail when the file is read; the opaque [scenario] section when the
    scenario reads it (the definitions are built at once by every command and the UI)."""
    from risk_assets.defs.factory import build_definitions

    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(SettingsError) as err:
        build_definitions(load_settings(cfg))
    assert key in str(err.value)
    if not key.startswith("scenario."):
        with pytest.raises(SettingsError):
            load_settings(cfg)


def test_missing_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_ENV_VAR, str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match="no settings file"):
        load_settings()


def test_the_readme_settings_example_is_valid_and_shows_the_defaults():
    import re
    import tomllib

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    [example] = re.findall(r"```toml\n(# risk_assets\.toml.*?)```", readme, flags=re.S)
    documented = settings_from_mapping(tomllib.loads(example), origin="README.md")
    assert documented.model_copy(update={"scenario": {}}) == Settings(), (
        "the README's settings example drifted from the defaults"
    )
    assert scenario_of(documented) == scenario_of(Settings()), "the README's [scenario] drifted from its defaults"
