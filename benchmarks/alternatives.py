"""What was tried for the training features (issue 15), on synthetic data shaped like the
production spine, so anyone can rerun the comparison behind the README's figures.

    python -m benchmarks.alternatives --customers 75000

Transactions: ``31.6 × customers`` rows over 577 days (the embedded world's density),
random customer, day, amount and one of 13 categories; spine: 61 as-of days, 8 days apart;
windows of 7/14/30 days inside a 90-day look-back. Each strategy computes the same
per-(customer, as-of day) values — checked equal before timing is reported — and the
timings are medians of ``--repeats`` runs in one DuckDB connection:

1. ``range_join``: the production execution — a range join of transactions against the
   spine, then filtered aggregates per (customer, as-of day); the cost is the ~11 pairs
   per transaction × the number of aggregates;
2. ``window_frames``: union of transactions and one probe row per (customer, as-of day),
   window aggregates over ``RANGE BETWEEN w PRECEDING AND 1 PRECEDING`` integer-day frames
   (O(n log n), no pairs);
3. ``prefix_sums_asof``: per-customer running sums, looked up for each probe and window
   start with ``ASOF JOIN`` (decomposable aggregates only: counts and sums);
4. ``row_columns``: the range join, with the two costly aggregates (distinct categories,
   top category by a struct key) rewritten over per-row window columns (previous
   transaction of the same category; a dense rank of the key) — once on the training
   spine and once on a single as-of day (the serving shape), where the window columns
   are paid for every scanned row but save little.

Nothing here is a test; it asserts only that the strategies agree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import duckdb

from benchmarks.machine import describe

WINDOWS = (7, 14, 30)


def _data(conn: duckdb.DuckDBPyConnection, customers: int, seed: float = 0.42) -> None:
    conn.execute(f"SELECT setseed({seed})")
    conn.execute(f"""CREATE OR REPLACE TABLE t AS
        SELECT (random() * {customers})::INT AS customer_id, (random() * 577)::INT AS day,
               (random() * 100000)::BIGINT AS amount_cents, 'c' || (random() * 12)::INT AS canonical,
               TIMESTAMP '2025-01-01' + to_microseconds((random() * 86400e6)::BIGINT) AS ts
        FROM range({int(customers * 31.6)})""")
    conn.execute("UPDATE t SET ts = ts + to_days(day)")
    conn.execute("CREATE OR REPLACE TABLE spine AS SELECT 31 + 8 * i AS d FROM range(61) r(i)")


def _range_join(full: bool) -> str:
    aggs = ", ".join(
        f"count(*) FILTER (WHERE t.day >= b.d - {w}) AS c{w}, "
        f"coalesce(sum(amount_cents) FILTER (WHERE t.day >= b.d - {w}), 0) AS s{w}"
        for w in WINDOWS
    )
    extra = ""
    if full:
        extra = (
            ", coalesce(len(list_distinct(list(canonical) FILTER (WHERE t.day >= b.d - 30))), 0) AS nc, "
            "arg_max(canonical, (amount_cents, ts, canonical)) FILTER (WHERE t.day >= b.d - 30) AS top"
        )
    return f"""SELECT t.customer_id, b.d, {aggs} {extra}
               FROM spine b JOIN t ON t.day >= b.d - 90 AND t.day < b.d GROUP BY ALL"""


def _window_frames() -> str:
    frame = "OVER (PARTITION BY customer_id ORDER BY day RANGE BETWEEN {w} PRECEDING AND 1 PRECEDING)"
    aggs = ", ".join(
        f"count(amount_cents) {frame.format(w=w)} AS c{w}, coalesce(sum(amount_cents) {frame.format(w=w)}, 0) AS s{w}"
        for w in WINDOWS
    )
    return f"""WITH p AS (SELECT c.customer_id, b.d AS day FROM (SELECT DISTINCT customer_id FROM t) c, spine b),
        u AS (SELECT customer_id, day, amount_cents, false AS probe FROM t
              UNION ALL SELECT customer_id, day, NULL, true FROM p),
        x AS (SELECT probe, customer_id, day, {aggs}, count(amount_cents) {frame.format(w=90)} AS c90 FROM u)
        SELECT customer_id, day AS d, {", ".join(f"c{w}, s{w}" for w in WINDOWS)} FROM x WHERE probe AND c90 > 0"""


def _prefix_sums_asof() -> str:
    lookups = []
    prev = "j"
    for w in (*WINDOWS, 90):
        lookups.append(f"""j{w} AS (SELECT {prev}.*, coalesce(e.c, 0) AS c_{w}, coalesce(e.s, 0) AS s_{w}
            FROM {prev} ASOF LEFT JOIN cum e ON e.customer_id = {prev}.customer_id AND e.day < {prev}.d - {w})""")
        prev = f"j{w}"
    return f"""WITH cd AS (SELECT customer_id, day, count(*) AS c, sum(amount_cents) AS s FROM t GROUP BY ALL),
        cum AS (SELECT customer_id, day, sum(c) OVER w AS c, sum(s) OVER w AS s FROM cd
                WINDOW w AS (PARTITION BY customer_id ORDER BY day ROWS UNBOUNDED PRECEDING)),
        p AS (SELECT c.customer_id, b.d FROM (SELECT DISTINCT customer_id FROM t) c, spine b),
        j AS (SELECT p.customer_id, p.d, e.c AS c0, e.s AS s0 FROM p ASOF JOIN cum e
              ON e.customer_id = p.customer_id AND e.day < p.d),
        {", ".join(lookups)}
        SELECT customer_id, d, {", ".join(f"c0 - c_{w} AS c{w}, s0 - s_{w} AS s{w}" for w in WINDOWS)}
        FROM {prev} WHERE c0 - c_90 > 0"""


def _row_columns() -> str:
    aggs = ", ".join(
        f"count(*) FILTER (WHERE t.day >= b.d - {w}) AS c{w}, "
        f"coalesce(sum(amount_cents) FILTER (WHERE t.day >= b.d - {w}), 0) AS s{w}"
        for w in WINDOWS
    )
    return f"""WITH r AS (SELECT *, lag(day) OVER (PARTITION BY customer_id, canonical ORDER BY ts) AS prev_day,
                              dense_rank() OVER (ORDER BY amount_cents, ts, canonical) AS k FROM t
                   WHERE day >= (SELECT min(d) FROM spine) - 90 AND day < (SELECT max(d) FROM spine))
        SELECT t.customer_id, b.d, {aggs},
               count(*) FILTER (WHERE t.day >= b.d - 30 AND (prev_day IS NULL OR prev_day < b.d - 30)) AS nc,
               arg_max(canonical, k) FILTER (WHERE t.day >= b.d - 30) AS top
        FROM spine b JOIN r t ON t.day >= b.d - 90 AND t.day < b.d GROUP BY ALL"""


def _timed(conn, sql: str, repeats: int, name: str) -> dict:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        runs.append(round(time.perf_counter() - t0, 3))
    return {
        "median_s": statistics.median(runs),
        "runs_s": runs,
        "rows": conn.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0],
    }


def _same(conn, a: str, b: str, columns: list[str]) -> bool:
    diff = " OR ".join(f"x.{c} IS DISTINCT FROM y.{c}" for c in columns)
    return (
        conn.execute(f"SELECT count(*) FROM {a} x FULL JOIN {b} y USING (customer_id, d) WHERE {diff}").fetchall()[0][0]
        == 0
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=75_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    conn = duckdb.connect()
    _data(conn, args.customers)
    decomposable = [f"{k}{w}" for w in WINDOWS for k in ("c", "s")]
    out = {
        "machine": describe(),
        "customers": args.customers,
        "transactions": conn.execute("SELECT count(*) FROM t").fetchall()[0][0],
        "strategies": {},
    }
    s = out["strategies"]
    s["range_join_counts_sums"] = _timed(conn, _range_join(False), args.repeats, "rj")
    s["window_frames_counts_sums"] = _timed(conn, _window_frames(), args.repeats, "wf")
    s["prefix_sums_asof_counts_sums"] = _timed(conn, _prefix_sums_asof(), args.repeats, "ps")
    s["range_join_all"] = _timed(conn, _range_join(True), args.repeats, "rja")
    s["row_columns_all"] = _timed(conn, _row_columns(), args.repeats, "rc")
    # one as-of day over the whole history (the serving shape: every row scanned, few pairs)
    conn.execute("CREATE OR REPLACE TABLE spine AS SELECT 577 AS d")
    s["serving_shape_range_join_all"] = _timed(conn, _range_join(True), args.repeats, "sja")
    s["serving_shape_row_columns_all"] = _timed(conn, _row_columns(), args.repeats, "src")
    out["agree"] = {
        "window_frames": _same(conn, "rj", "wf", decomposable),
        "prefix_sums_asof": _same(conn, "rj", "ps", decomposable),
        "row_columns": _same(conn, "rja", "rc", [*decomposable, "nc", "top"]),
        "row_columns_serving_shape": _same(conn, "sja", "src", [*decomposable, "nc", "top"]),
    }
    text = json.dumps(out, indent=1)
    print(text)
    target = args.out or Path(__file__).parent / "results" / f"alternatives_{args.customers}.json"
    target.write_text(text)
    print(f"written to {target}")
    return out


if __name__ == "__main__":
    main()
