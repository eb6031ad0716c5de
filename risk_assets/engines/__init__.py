"""Where the computations that grow with the data run: one protocol, two implementations.

An :class:`Engine` is opened for one step on the warehouse connection (the system of
record: ledgers, registry, every per-night table). Everything whose cost grows with the
transaction history or the customer base goes through it — the landing contract of a
day, the serving and training executions of the feature spec, the scoring, and every
check statistic — so that assets and checks never ask which engine they run on:

* :class:`~risk_assets.engines.duckdb_engine.DuckDBEngine` computes inside the warehouse
  file (the embedded default);
* :class:`~risk_assets.engines.spark.engine.SparkEngine` computes on Spark Connect over a
  Parquet lake that mirrors the per-night tables, from the same SQL text (rendered for
  Spark by SQLGlot, ``engines/spark/dialect.py``).

What deliberately stays on the driver whatever the engine — the Pandera schema checks
(they validate rows in pandas) and the late-arrival re-read of a landing day — reads
through :meth:`Engine.rows` and is listed in ``docs/scaling.md``.

:func:`engine_factory` is the one place that looks at ``[engine] kind``.
"""

from __future__ import annotations

from risk_assets.engines.base import DaySplit, Engine, EngineFactory
from risk_assets.engines.duckdb_engine import DuckDBEngine, DuckDBEngineFactory
from risk_assets.settings import Settings

__all__ = ["DaySplit", "DuckDBEngine", "DuckDBEngineFactory", "Engine", "EngineFactory", "engine_factory"]


def engine_factory(settings: Settings) -> EngineFactory:
    """The engine ``[engine] kind`` names — the one place that asks."""
    if settings.engine.kind == "spark":
        # PySpark and SQLGlot are the optional ``spark`` extra: imported only when asked for
        from risk_assets.engines.spark.engine import SparkEngineFactory

        return SparkEngineFactory(str(settings.engine.spark_remote), str(settings.engine.lake_path))
    return DuckDBEngineFactory()
