"""The landing contract on Spark: the same rules, run where the files are.

:func:`risk_assets.core.contract.split_transactions` is three steps, and Spark runs each where
its data is, calling the very same functions:

1. **per file** (``mapInPandas``, one task per data file of the day): the executor reads
   the file as the landing source does (:meth:`LandingSource.read_file`) and applies the
   row-level rules (:func:`check_transaction_rows`: types, ranges, text, the partition
   window). A file the contract cannot read comes back as an error row and fails the day
   naming the file and the column, as on the driver.
2. **per transaction id** (``cogroup(...).applyInPandas``, rows hashed by id): whether the
   customer is known (a join with the lake's customers), copies against rows stored in
   other partitions of the lake and copies within the day (:func:`mark_customers`,
   :func:`mark_copies`). Every copy of an id meets in one group, in the order the driver
   would see them (files in listing order, rows in file order), so "first copy" and the
   rejection reasons are the driver's.
3. the accepted and rejected rows are written as the day's partitions of the lake's
   ``raw_transactions`` and ``rejected_transactions`` (the lake's commit protocol: staging
   folder, then a swap), and the warehouse loads its copy from those files.

Timestamps travel between the steps as integer nanoseconds (Spark keeps microseconds), so
copies that differ below a microsecond are still told apart. Only counts per file and the
accepted/rejected files reach the driver; the rows never pass through it as pandas until
the warehouse loads them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from risk_assets.core.contract import (
    REJECTED_COLUMNS,
    SOURCE_FILE,
    SOURCE_ROW,
    STORED_COLUMNS,
    TRANSACTION_COLUMNS,
    ContractError,
    Split,
    Window,
)
from risk_assets.engines.spark.lake import RAW, REJECTED, Lake

BUCKETS = 64
"""Groups of transaction ids in step 2 (copies of an id always share one)."""

CHECKED = (
    "file_order int, _source_file string, _source_row long, transaction_id string, customer_id string, "
    "event_ts_ns long, amount double, category string, channel string, reasons array<string>, "
    "raw_record string, error string"
)
MARKED = (
    "file_order int, _source_file string, _source_row long, transaction_id string, customer_id string, "
    "event_ts_ns long, amount double, amount_cents long, sub_cent boolean, category string, channel string, "
    "reasons string, raw_record string"
)


def _ns(values: pd.Series) -> pd.Series:
    """Timestamps as nullable integer nanoseconds."""
    out = pd.Series(pd.NA, index=values.index, dtype="Int64")
    present = values.notna()
    out[present] = values[present].astype("datetime64[ns]").astype("int64")
    return out


def _from_ns(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.astype("Int64"), unit="ns")


def check_files(root: str, window: Window, max_amount: float, max_text: int):
    """Step 1 as a ``mapInPandas`` function over ``file_order, path`` rows."""

    def run(batches):
        from risk_assets.core.contract import TRANSACTION_COLUMNS, check_transaction_rows, raw_records
        from risk_assets.sources import LandingSource

        source = LandingSource.at(Path(root))
        for batch in batches:
            for order, path in zip(batch["file_order"], batch["path"]):
                try:
                    frame = source.read_file(Path(path))
                except ContractError as exc:
                    error = json.dumps({"file": exc.file, "column": exc.column, "problem": exc.problem})
                    yield pd.DataFrame(
                        {c.split()[0]: [None] for c in CHECKED.split(", ")}
                        | {"file_order": [int(order)], "error": [error]}
                    )
                    continue
                if frame.empty:
                    continue
                frame, reasons = check_transaction_rows(frame, window, max_amount=max_amount, max_text=max_text)
                yield pd.DataFrame(
                    {
                        "file_order": int(order),
                        "_source_file": frame[SOURCE_FILE].astype(str),
                        "_source_row": frame[SOURCE_ROW].astype("int64"),
                        **{c: frame[c] for c in ("transaction_id", "customer_id", "category", "channel")},
                        "event_ts_ns": _ns(frame["event_ts"]),
                        "amount": frame["amount"],
                        "reasons": [list(reasons.get(i, [])) for i in frame.index],
                        "raw_record": raw_records(frame, TRANSACTION_COLUMNS),
                        "error": None,
                    }
                )

    return run


def mark_groups(rows: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """Step 2 for one group of transaction ids (a ``cogroup`` function)."""
    from collections import defaultdict

    from risk_assets.core.contract import cents, mark_copies, mark_customers, sub_cent

    if rows.empty:
        return pd.DataFrame({c.split()[0]: [] for c in MARKED.split(", ")})
    rows = rows.sort_values(["file_order", "_source_row"], kind="stable").reset_index(drop=True)
    frame = rows[
        ["transaction_id", "customer_id", "amount", "category", "channel", "_source_file", "_source_row"]
    ].copy()
    frame["event_ts"] = _from_ns(rows["event_ts_ns"])
    reasons = defaultdict(list, {i: list(r) for i, r in enumerate(rows["reasons"])})
    mark_customers(frame, reasons, rows["_known"].fillna(False), rows["_conflicted"].fillna(False))
    stored = stored.assign(event_ts=_from_ns(stored["event_ts_ns"]))[list(STORED_COLUMNS)]
    mark_copies(frame, reasons, stored)
    text = ["; ".join(dict.fromkeys(reasons[i])) for i in frame.index]
    accepted = np.array([not t for t in text], dtype=bool)
    amount_cents = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    amount_cents[accepted] = cents(frame.loc[accepted, "amount"]).to_numpy()
    return pd.DataFrame(
        {
            "file_order": rows["file_order"],
            "_source_file": rows["_source_file"],
            "_source_row": rows["_source_row"],
            "transaction_id": frame["transaction_id"],
            "customer_id": frame["customer_id"],
            "event_ts_ns": rows["event_ts_ns"],
            "amount": frame["amount"],
            "amount_cents": amount_cents,
            "sub_cent": accepted & sub_cent(frame["amount"]),
            "category": frame["category"],
            "channel": frame["channel"],
            "reasons": text,
            "raw_record": rows["raw_record"],
        }
    )


def split_day(
    engine,
    files: list[Path],
    root: Path,
    day,
    window: Window,
    *,
    max_amount: float,
    max_text: int,
    conflicted: set[str],
) -> tuple[Split, pd.Series]:
    """One day's landing files through the contract on Spark; the accepted and rejected
    rows committed to the lake and returned as the warehouse's frames, with the rows read
    per file."""
    from pyspark.sql import functions as F

    spark, lake, conn = engine.spark, engine.lake, engine.conn
    engine.register_views()
    listing = spark.createDataFrame(
        pd.DataFrame({"file_order": range(len(files)), "path": [str(p) for p in files]}), "file_order int, path string"
    )
    checked = listing.repartition(max(len(files), 1), "file_order").mapInPandas(
        check_files(str(root), window, max_amount, max_text), CHECKED
    )
    staging = lake.root / "_staging" / f"contract-{uuid.uuid4().hex}"
    try:
        checked.write.parquet(str(staging / "checked"))  # run the files' tasks once
        checked = spark.read.schema(CHECKED).parquet(str(staging / "checked"))
        errors = checked.where("error IS NOT NULL").orderBy("file_order").limit(1).collect()
        if errors:
            error = json.loads(errors[0]["error"])
            raise ContractError(error["file"], error["column"], error["problem"])
        rows = checked.where("error IS NULL").drop("error")
        customers = spark.table("customers").select("customer_id").distinct().withColumn("_known", F.lit(True))
        rows = rows.join(customers, "customer_id", "left")
        bad = spark.createDataFrame(pd.DataFrame({"customer_id": sorted(conflicted)}), "customer_id string")
        rows = rows.join(bad.withColumn("_conflicted", F.lit(True)), "customer_id", "left")
        ids = rows.select("transaction_id").where("transaction_id IS NOT NULL").distinct()
        history = (
            spark.table(RAW)
            if lake.partitions(RAW)
            else spark.createDataFrame(
                [],
                "transaction_id string, partition date, customer_id string, event_ts timestamp, amount_cents long, "
                "category string, channel string, source_file string",
            )
        )
        stored = (
            history.where(F.col("partition") != F.lit(day.isoformat()).cast("date"))
            .join(ids, "transaction_id", "left_semi")
            .select(
                "transaction_id",
                F.col("partition").cast("string").alias("partition"),
                "customer_id",
                (F.unix_micros(F.col("event_ts").cast("timestamp")) * 1000).alias("event_ts_ns"),
                "amount_cents",
                "category",
                "channel",
                "source_file",
            )
        )
        bucket = F.pmod(F.xxhash64("transaction_id"), F.lit(BUCKETS)).alias("_bucket")
        marked = (
            rows.withColumn("_bucket", bucket)
            .groupBy("_bucket")
            .cogroup(stored.withColumn("_bucket", bucket).groupBy("_bucket"))
            .applyInPandas(mark_groups, MARKED)
        )
        marked.write.parquet(str(staging / "marked"))
        marked = spark.read.schema(MARKED).parquet(str(staging / "marked"))
        _commit(lake, marked, day)
        per_file = {
            r["_source_file"]: r["rows"]
            for r in marked.groupBy("_source_file").agg(F.count("*").alias("rows")).collect()
        }
        received = sum(per_file.values())
        sub_cent = marked.where("reasons = '' AND sub_cent").count()
    finally:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    split = Split(
        _read(conn, lake, RAW, day),
        _read(conn, lake, REJECTED, day),
        received,
        notes={"sub_cent_amounts_rounded": int(sub_cent)},
    )
    return split, pd.Series(per_file, dtype="int64")


def _commit(lake: Lake, marked, day) -> None:
    from pyspark.sql import functions as F

    ts = F.timestamp_micros(F.expr("event_ts_ns div 1000")).cast("timestamp_ntz").alias("event_ts")
    accepted = marked.where("reasons = ''").select(
        "transaction_id",
        "customer_id",
        ts,
        "amount",
        "amount_cents",
        "category",
        "channel",
        F.col("_source_file").alias("source_file"),
    )
    rejected = marked.where("reasons <> ''").select(
        F.col("_source_file").alias("source_file"),
        F.col("_source_row").alias("source_row"),
        F.col("transaction_id").alias("record_key"),
        "reasons",
        "raw_record",
    )
    for name, frame in ((RAW, accepted), (REJECTED, rejected)):
        lake.commit(
            lake.partition(name, day),
            lambda folder, frame=frame: frame.coalesce(1).write.parquet(str(folder), mode="overwrite"),
        )


def _read(conn: duckdb.DuckDBPyConnection, lake: Lake, name: str, day) -> pd.DataFrame:
    """A committed lake partition as the frame the warehouse stores (DuckDB reads the files)."""
    files = sorted(str(p) for p in lake.partition(name, day).glob("*.parquet"))
    if name == RAW:
        columns = [*TRANSACTION_COLUMNS, "amount_cents"]
        if not files:
            return pd.DataFrame({c: [] for c in [*columns, SOURCE_FILE]})
        out = conn.execute(
            f"SELECT {', '.join(columns)}, source_file AS {SOURCE_FILE} FROM read_parquet($files) "
            "ORDER BY source_file, transaction_id",
            {"files": files},
        ).df()
        return out
    if not files:
        return pd.DataFrame({c: [] for c in REJECTED_COLUMNS})
    return conn.execute(
        f"SELECT {', '.join(REJECTED_COLUMNS)} FROM read_parquet($files) ORDER BY source_file, source_row",
        {"files": files},
    ).df()
