"""The Spark engine (``[engine] kind = "spark"``): the computations that grow with the
transaction history — serving features, training features — and the scoring run on Spark
through Spark Connect, from the same feature spec as the DuckDB engine.

* :mod:`~risk_assets.engines.spark.dialect` renders the spec's DuckDB SQL for Spark SQL with SQLGlot
  (never a second hand-written copy) plus the few rules where the two engines differ;
* :mod:`~risk_assets.engines.spark.lake` is the Parquet lake Spark reads: raw partitions committed
  with a staging-and-swap protocol;
* :mod:`~risk_assets.engines.spark.engine` runs the two feature executions and the scoring.

PySpark is an optional dependency (``pip install -e '.[spark]'``); nothing here is imported
unless the engine is Spark.
"""
