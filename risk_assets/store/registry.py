"""The registry: the versioned category mapping and the model registry (tables in the
warehouse file). The deployed-model lookup exists here once.

Plain values in and out (frames, strings, paths); no Dagster types."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import lightgbm as lgb
import pandas as pd

from risk_assets.core import model as model_lib
from risk_assets.store import warehouse
from risk_assets.store.warehouse import NotMaterialised

# --------------------------------------------------------------------------- category mapping
CATEGORY_VOLUMES = f"""
    SELECT category AS raw_category, count(*) AS rows, CAST(sum(amount_cents) AS BIGINT) AS amount_cents,
           avg(ln(amount_cents)) AS log_amount_mean, coalesce(stddev_samp(ln(amount_cents)), 0) AS log_amount_std
    FROM {warehouse.table("raw_transactions")} WHERE partition BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)
    GROUP BY category ORDER BY category"""

CHANNEL_VOLUMES = f"""
    SELECT channel, count(*) AS rows FROM {warehouse.table("raw_transactions")}
    WHERE partition BETWEEN CAST($first AS DATE) AND CAST($last AS DATE) AND channel IS NOT NULL
    GROUP BY channel ORDER BY channel"""


def category_volumes(engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Per raw category over partitions ``first .. last``: rows, amount and log-amount
    moments (what the mapping records about the training period), aggregated by the engine."""
    return engine.statistic(CATEGORY_VOLUMES, {"first": first, "last": last})


def channel_volumes(engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """``channel, rows`` of the non-null channels over partitions ``first .. last``."""
    return engine.statistic(CHANNEL_VOLUMES, {"first": first, "last": last})


def channels(conn: duckdb.DuckDBPyConnection, version: str) -> set[str]:
    """The channel vocabulary of a mapping version."""
    return {
        r[0] for r in conn.execute("SELECT channel FROM channel_vocabulary WHERE version = ?", [version]).fetchall()
    }


def mapping(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The current category mapping (every row)."""
    return conn.execute("SELECT * FROM category_mapping ORDER BY raw_category").df()


def current_mapping_version(conn: duckdb.DuckDBPyConnection) -> str:
    versions = [r[0] for r in conn.execute("SELECT DISTINCT version FROM category_mapping").fetchall()]
    if len(versions) != 1:
        raise NotMaterialised(
            f"expected one current category mapping, found {len(versions)}: materialise `category_mapping` first"
        )
    return versions[0]


def canonical_levels(conn: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(r[0] for r in conn.execute("SELECT DISTINCT canonical FROM category_mapping").fetchall())


def replace_mapping(
    conn: duckdb.DuckDBPyConnection, new: pd.DataFrame, vocabulary: pd.DataFrame, now: pd.Timestamp
) -> bool:
    """Make ``new`` the current mapping (with its channel vocabulary); record its version
    in the history once. Returns whether the version is new."""
    version = new.at[0, "version"]
    known = warehouse.scalar(conn, "SELECT count(*) FROM category_mapping_history WHERE version = ?", [version])
    with warehouse.transaction(conn):
        conn.execute("DELETE FROM category_mapping")
        warehouse.insert(conn, "category_mapping", new)
        conn.execute("DELETE FROM channel_vocabulary WHERE version = ?", [version])
        warehouse.insert(conn, "channel_vocabulary", vocabulary)
        if not known:
            warehouse.insert(conn, "category_mapping_history", new.assign(created_at=now))
    return not known


# --------------------------------------------------------------------------- model registry
@dataclass(frozen=True)
class ModelEntry:
    version: str
    path: str


def register_model(conn: duckdb.DuckDBPyConnection, row: dict) -> None:
    """Record a trained model (replacing an entry of the same version); not deployed."""
    with warehouse.transaction(conn):
        conn.execute("DELETE FROM model_registry WHERE version = ?", [row["version"]])
        warehouse.insert(conn, "model_registry", pd.DataFrame([row | {"deployed_at": None}]))


def newest_model(conn: duckdb.DuckDBPyConnection) -> ModelEntry:
    rows = conn.execute("SELECT version, path FROM model_registry ORDER BY trained_at DESC, version LIMIT 1").fetchall()
    if not rows:
        raise NotMaterialised("no trained model: materialise `risk_model` first")
    return ModelEntry(*rows[0])


def deployed_model(conn: duckdb.DuckDBPyConnection) -> ModelEntry | None:
    """The model serving uses: the most recently promoted one (None before any promotion)."""
    rows = conn.execute(
        "SELECT version, path FROM model_registry WHERE deployed_at IS NOT NULL "
        "ORDER BY deployed_at DESC, version LIMIT 1"
    ).fetchall()
    return ModelEntry(*rows[0]) if rows else None


def load_deployed(conn: duckdb.DuckDBPyConnection) -> tuple[lgb.Booster, model_lib.ModelCard]:
    """The deployed model, parsed (:class:`NotMaterialised` before any promotion)."""
    entry = deployed_model(conn)
    if entry is None:
        raise NotMaterialised("no deployed model: materialise `risk_model` and `deployed_model` first (training_job)")
    return model_lib.load(Path(entry.path))


def model_path(conn: duckdb.DuckDBPyConnection, version: str) -> str:
    rows = conn.execute("SELECT path FROM model_registry WHERE version = ?", [version]).fetchall()
    if not rows:
        raise NotMaterialised(f"model {version} is not in the model registry")
    return rows[0][0]


def promote(conn: duckdb.DuckDBPyConnection, version: str, at: pd.Timestamp) -> None:
    conn.execute("UPDATE model_registry SET deployed_at = ? WHERE version = ?", [at, version])


def serving_versions(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The versions a night is judged under right now — the deployed model and the
    current category mapping ("-" where there is none yet) — recorded on every check
    result so the audit trail can say which model and mapping each verdict was about."""
    deployed = deployed_model(conn)
    mappings = [r[0] for r in conn.execute("SELECT DISTINCT version FROM category_mapping").fetchall()]
    return {
        "model_version": deployed.version if deployed else "-",
        "mapping_version": mappings[0] if len(mappings) == 1 else "-",
    }
