"""Shared fixtures: a small embedded world in a temporary warehouse and instance."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import settings as hypothesis_settings

from risk_assets.defs.known_warnings import accept_known_dagster_warnings, filterwarnings_lines

accept_known_dagster_warnings()  # before the definitions are imported: some warn at import

from risk_assets.defs.factory import build_definitions  # noqa: E402
from risk_assets.defs.jobs import NIGHTLY_JOB, REFERENCE_JOB  # noqa: E402
from risk_assets.settings import Settings  # noqa: E402

# Property tests are deterministic in CI (same examples every run); RISK_ASSETS_SLOW=1
# explores new random examples with larger counts (see test_bad_input.py).
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile("slow", deadline=None, print_blob=True)
hypothesis_settings.load_profile("slow" if os.environ.get("RISK_ASSETS_SLOW") == "1" else "ci")

SMALL = {"n_customers": 1500}


def pytest_configure(config: pytest.Config) -> None:
    """The warnings the project accepts knowingly (``defs/known_warnings.py``, the one list)
    are filtered in the test run too; any other warning is printed in the summary."""
    for line in filterwarnings_lines():
        config.addinivalue_line("filterwarnings", line)


def scenario(sections: dict) -> dict:
    """Tests say ``world=`` and ``serving_skew=``: both live in the ``[scenario]`` section."""
    out = {"world": sections.pop("world", {})}
    if "serving_skew" in sections:
        out["serving_skew"] = sections.pop("serving_skew")
    return out


def small_settings(tmp_path: Path, **sections: dict) -> Settings:
    sections["world"] = {**SMALL, **sections.get("world", {})}
    return Settings().with_overrides(
        warehouse={"duckdb_path": str(tmp_path / "warehouse.duckdb")}, scenario=scenario(sections), **sections
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return small_settings(tmp_path)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


def run_reference(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return defs.resolve_job_def(REFERENCE_JOB).execute_in_process(instance=instance)


def run_night(
    settings: Settings,
    instance: dg.DagsterInstance,
    day: dt.date,
    raise_on_error: bool = True,
    run_config: dict | None = None,
    raw_only: bool = False,
) -> dg.ExecuteInProcessResult:
    """One nightly partition; ``raw_only`` loads just the raw layer (the history job)."""
    from risk_assets.defs.jobs import HISTORY_JOB

    defs = build_definitions(settings)
    return defs.resolve_job_def(HISTORY_JOB if raw_only else NIGHTLY_JOB).execute_in_process(
        instance=instance,
        partition_key=day.isoformat(),
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


# --------------------------------------------------------------------------- trained world
# One small world with its raw history ingested and a model trained, built once per test
# session; tests that change things work on a copy of its warehouse file.
HISTORY_START = dt.date(2025, 1, 1)
HISTORY_END = dt.date(2025, 11, 30)
FIRST_NIGHT = dt.date(2025, 12, 1)
TRAINED_OVERRIDES = {
    "world": {"n_customers": 4000},
    "training": {
        "start": "2025-04-01",
        "end": "2025-09-15",
        "asof_step_days": 8,
        "validation_start": "2025-10-20",
        "validation_end": "2025-11-29",
        "validation_step_days": 4,
        "num_boost_round": 60,
    },
}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def trained_settings(folder: Path, **sections: dict) -> Settings:
    merged = {k: dict(v) for k, v in TRAINED_OVERRIDES.items()}
    for key, value in sections.items():
        merged[key] = {**merged.get(key, {}), **value}
    merged.setdefault("alerts", {}).setdefault("duckdb_path", str(folder / "alerts.duckdb"))
    return Settings().with_overrides(
        warehouse={"duckdb_path": str(folder / "warehouse.duckdb")},
        scoring={"models_dir": str(folder / "models")},
        scenario=scenario(merged),
        **merged,
    )


@pytest.fixture(scope="session")
def trained_world(tmp_path_factory) -> Path:
    """Folder with warehouse.duckdb (raw history, mapping, training features, a deployed model)."""
    from risk_assets.defs.jobs import HISTORY_JOB, TRAINING_JOB
    from risk_assets.defs.jobs import RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG
    from risk_assets.defs.jobs import RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG

    folder = tmp_path_factory.mktemp("trained")
    settings = trained_settings(folder)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        defs.resolve_job_def(REFERENCE_JOB).execute_in_process(instance=instance, run_config=QUIET)
        defs.resolve_job_def(HISTORY_JOB).execute_in_process(
            instance=instance,
            run_config=QUIET,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: HISTORY_START.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: HISTORY_END.isoformat(),
            },
        )
        defs.resolve_job_def(TRAINING_JOB).execute_in_process(instance=instance, run_config=QUIET)
    return folder


def shared_home(folder: str | Path) -> str:
    """The Dagster home of a test world's folder: every process of a test that runs jobs on
    that world's warehouse opens the same instance (one home, one world), as the runs of one
    deployment do."""
    home = Path(folder) / "dagster_home"
    home.mkdir(exist_ok=True)
    return str(home)


def copy_warehouse(source: Path, target: Path) -> None:
    """A private copy of a fixture's warehouse, free for the instance of the test that uses
    it (one home, one world: the fixture's instance owned the original)."""
    from risk_assets.store import warehouse

    warehouse.copy_unowned(source / "warehouse.duckdb", target / "warehouse.duckdb")


@pytest.fixture
def world_copy(trained_world: Path, tmp_path: Path):
    """A private copy of the trained world's warehouse; returns a settings factory."""
    copy_warehouse(trained_world, tmp_path)
    (tmp_path / "models").symlink_to(trained_world / "models")

    def make(**sections: dict) -> Settings:
        return trained_settings(tmp_path, **sections)

    make.folder = tmp_path
    return make


# --------------------------------------------------------------------------- both worlds, through landing
# The embedded world and the alpine world (risk_assets/scenario/worlds.py), each exported as
# landing folders and run through the landing source — the way a new user's own data
# arrives. Same thresholds for both.
LANDING_CUSTOMERS = 4000
LANDING_LAST_DAY = dt.date(2026, 1, 31)
"""Nights after the history: 2025-12-01 .. 2026-01-31, holidays and month ends included."""


def landing_settings(folder: Path, world: str, landing: Path | None = None, **sections: dict) -> Settings:
    from risk_assets.scenario.worlds import landing_settings as settings_of

    return settings_of(folder, world, LANDING_CUSTOMERS, TRAINED_OVERRIDES["training"], landing, **sections)


@pytest.fixture(scope="session", params=["embedded", "alpine"])
def landing_world(request, tmp_path_factory) -> tuple[str, Path]:
    """(world name, folder): the world's landing folder (history and the nights after it)
    loaded through the landing source, with a trained and deployed model."""
    from risk_assets.app.operations import build_landing_world

    world = request.param
    folder = tmp_path_factory.mktemp(f"landing_{world}")
    with dg.instance_for_test() as instance:
        build_landing_world(
            landing_settings(folder, world), instance, (HISTORY_START, HISTORY_END), LANDING_LAST_DAY, QUIET
        )
    return world, folder


@pytest.fixture
def landing_copy(landing_world, tmp_path):
    """A private copy of a landing world's warehouse and of the landing files of the days a
    test touches; returns ``make(days, **sections) -> Settings`` and ``.world``."""
    import shutil

    world, source = landing_world
    copy_warehouse(source, tmp_path)
    (tmp_path / "models").symlink_to(source / "models")
    landing = tmp_path / "landing"
    landing.mkdir()
    for name in ("customers.parquet", "irregularities.parquet"):
        shutil.copy(source / "landing" / name, landing / name)

    def make(days=(), **sections) -> Settings:
        for day in days:
            target = landing / "transactions" / f"date={day:%Y-%m-%d}"
            if not target.exists():
                shutil.copytree(source / "landing" / "transactions" / f"date={day:%Y-%m-%d}", target)
        return landing_settings(tmp_path, world, landing, **sections)

    make.world = world
    make.landing = landing
    return make


# --------------------------------------------------------------------------- system parts
# Tests that need a part outside Python (a PostgreSQL server, Java for Spark) skip with what
# to install on a laptop; under CI=true (.ci/run installs and starts them) a missing part
# fails instead, so CI can never go green by skipping them.
def require(part: str, available: bool, how: str) -> None:
    if available:
        return
    message = f"{part} is not available: {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


POSTGRES_ENV = "RISK_ASSETS_TEST_POSTGRES"
"""``postgresql://user:password@host:port/dbname`` of a server where the tests may create and
drop databases (``.ci/run`` starts one)."""


@pytest.fixture(scope="session")
def postgres_server() -> dict[str, str]:
    from urllib.parse import unquote, urlparse

    try:
        import dagster_postgres  # noqa: F401
        import psycopg2
    except ImportError:
        require("dagster-postgres", False, "pip install -e '.[postgres]'")
    url = os.environ.get(POSTGRES_ENV)
    require(
        "a PostgreSQL server",
        bool(url),
        f"install PostgreSQL and set {POSTGRES_ENV}=postgresql://USER:PASSWORD@HOST:PORT/postgres",
    )
    parts = urlparse(url)
    server = {
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 5432),
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
        "dbname": parts.path.lstrip("/") or "postgres",
    }
    try:
        psycopg2.connect(**server, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        require("a PostgreSQL server", False, f"{POSTGRES_ENV} is set but the server refuses: {exc}")
    return server


@pytest.fixture
def postgres_home(postgres_server, tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME holding the documented ``deploy/postgres/dagster.yaml``, pointed (through
    its environment variables) at a new database that is dropped afterwards."""
    import shutil
    import uuid

    import psycopg2

    name = f"risk_assets_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(**postgres_server)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    for key, value in {
        "HOST": postgres_server["host"],
        "PORT": postgres_server["port"],
        "USER": postgres_server["user"],
        "PASSWORD": postgres_server["password"],
        "DB": name,
    }.items():
        monkeypatch.setenv(f"RISK_ASSETS_PG_{key}", value)
    try:
        yield home
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
