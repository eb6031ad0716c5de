"""The feature executions' DuckDB SQL rendered for Spark SQL.

There is one text of every feature (``risk_assets/core/features/spec.py``) and one text of each
execution (``risk_assets/engines/executions.py``); for Spark, SQLGlot transpiles that text
(``read="duckdb", write="spark"``) and the rules below cover what a transpiler cannot know
about the *values* the two engines compute:

* **Decimal literals are doubles.** DuckDB divides by ``100.0`` or ``7.0`` in double
  precision; Spark treats them as DECIMAL and divides exactly, rounding to a scale — a
  different last digit. Every non-integer literal is rendered as ``CAST(... AS DOUBLE)``.
* **Struct keys.** DuckDB's row value ``(a, b, c)`` (the top category's tie-break key) is
  Spark's ``STRUCT(a, b, c)``; both order field by field.
* **List sizes.** DuckDB's ``len(list)`` is Spark's ``SIZE``.
* **Epoch microseconds.** DuckDB's ``epoch_us(naive timestamp)`` is Spark's
  ``UNIX_MICROS(CAST(... AS TIMESTAMP))`` — the naive value read in the session's UTC.
* **Exact quantiles.** DuckDB's ``quantile_disc(x, q)`` is Spark's
  ``percentile_disc(q) WITHIN GROUP (ORDER BY x)``: the same element of the rows.
* **Parameters.** DuckDB's ``$name`` is Spark's named parameter ``:name``; values always
  travel as parameters (:func:`spark_args`), never inside the text.

Time: Spark runs with ``spark.sql.session.timeZone = UTC`` and every timestamp is naive
UTC on both engines (``docs/time-contract.md``), so window bounds compare identically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd
import sqlglot
from sqlglot import exp


def _rule(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal) and node.is_number and not node.this.lstrip("-").isdigit():
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.Parameter):
        return exp.Placeholder(this=node.name)
    if isinstance(node, exp.PercentileDisc) and node.expression is not None:
        # DuckDB's quantile_disc(x, q) is SQL's percentile_disc(q) WITHIN GROUP (ORDER BY x):
        # both the smallest value whose cumulative share reaches q (an element of the rows)
        return exp.WithinGroup(
            # spelled out: SQLGlot would render a PercentileDisc here as the approximate
            # PERCENTILE_APPROX
            this=exp.Anonymous(this="PERCENTILE_DISC", expressions=[_rule(node.expression.copy())]),
            expression=exp.Order(expressions=[exp.Ordered(this=node.this.copy(), nulls_first=True)]),
        )
    if isinstance(node, exp.Tuple) and isinstance(node.parent, exp.ArgMax):
        return exp.Struct(expressions=[e.copy() for e in node.expressions])
    if isinstance(node, (exp.ArraySize, exp.Length)) and isinstance(
        node.this, (exp.ArrayUniqueAgg, exp.Anonymous, exp.ArrayDistinct)
    ):
        return exp.Anonymous(this="SIZE", expressions=[node.this.copy()])
    if isinstance(node, exp.Anonymous) and node.name.lower() == "epoch_us":
        # the naive (NTZ) timestamp read as UTC: the session's timezone (engine.SESSION_CONF)
        return exp.Anonymous(
            this="UNIX_MICROS",
            expressions=[
                exp.Cast(this=e.copy(), to=exp.DataType.build("TIMESTAMP", dialect="spark")) for e in node.expressions
            ],
        )
    return node


def to_spark(sql: str) -> str:
    """Spark SQL for one DuckDB statement of the feature executions."""
    return sqlglot.parse_one(sql, read="duckdb").transform(_rule).sql(dialect="spark")


def spark_args(params: Mapping[str, object]) -> dict[str, object]:
    """The parameters as Spark literals: timestamps and dates as ISO text (the SQL casts
    them; a Python datetime would be read in the client's local timezone), lists as arrays."""
    out: dict[str, object] = {}
    for name, value in params.items():
        if isinstance(value, (pd.Timestamp, dt.datetime)):
            value = pd.Timestamp(value).isoformat(sep=" ")
        elif isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out
