"""The raw layer: customers, irregularities and daily raw transactions.

Each asset validates its source rows against the contract (:mod:`risk_assets.contract`)
and writes accepted and rejected rows in one DuckDB transaction. A blocking check
re-counts the stored rows: ``received == accepted + rejected``.
"""


import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets import warehouse
from risk_assets.contract import ContractError, Split, split_customers, split_irregularities, split_transactions
from risk_assets.defs.common import (
    counts_table,
    daily_partitions,
    md_table,
    open_warehouse,
    partition_day,
    partition_window,
)
from risk_assets.settings import Settings
from risk_assets.sources import make_source

RECONCILE = "rows_reconcile"


class RawReadConfig(dg.Config):
    read_at: str | None = None
    """ISO timestamp (UTC). Read only rows that had arrived at the source by then —
    the embedded world uses it to simulate the nightly cut-off and late data.
    Empty: everything that has arrived."""


def _split_metadata(split: Split, settings: Settings) -> dict:
    return {
        "received": split.received,
        "accepted": len(split.accepted),
        "rejected": len(split.rejected),
        "rejected_share": round(len(split.rejected) / split.received, 6) if split.received else 0.0,
        "rejection_reasons": md_table(counts_table(split.reasons), max_rows=25),
        "rejected_examples": md_table(
            split.rejected[["source_file", "source_row", "record_key", "reasons"]], max_rows=10
        ),
        **{k: v for k, v in split.notes.items()},
        "settings_version": settings.version(),
    }


def _reconcile_result(asset_key: str, received: int, accepted: int, rejected: int) -> dg.AssetCheckResult:
    passed = received == accepted + rejected
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=RECONCILE,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "received": received,
            "stored_accepted": accepted,
            "stored_rejected": rejected,
            "unaccounted": received - accepted - rejected,
        },
        description=None if passed else "rows were lost or duplicated between source and warehouse",
    )


def build_raw_assets(settings: Settings) -> list:
    partitions = daily_partitions(settings)
    source = make_source(settings)
    max_text = settings.raw.max_text_length

    @dg.asset(
        group_name="raw",
        kinds={"duckdb"},
        code_version="1",
        check_specs=[dg.AssetCheckSpec(RECONCILE, asset="customers", blocking=True)],
        description="Customer master data, validated against the landing contract. "
        "Rejected rows are kept in the `rejected_customers` table with their reasons.",
    )
    def customers(duckdb: DuckDBResource) -> Iterator:
        split = split_customers(source.customers(), max_text=max_text)
        with open_warehouse(duckdb) as conn:
            warehouse.replace_table(
                conn,
                {
                    "customers": split.accepted.rename(columns={"_source_file": "source_file"}),
                    "rejected_customers": split.rejected,
                },
            )
            stored = warehouse.count(conn, "customers"), warehouse.count(conn, "rejected_customers")
        yield dg.MaterializeResult(metadata=_split_metadata(split, settings) | {"source": source.name})
        yield _reconcile_result("customers", split.received, *stored)

    @dg.asset(
        group_name="raw",
        kinds={"duckdb"},
        code_version="1",
        deps=[customers],
        check_specs=[dg.AssetCheckSpec(RECONCILE, asset="irregularities", blocking=True)],
        description="Irregularity events (the label source). Rows for unknown customers are "
        "rejected into `rejected_irregularities`.",
    )
    def irregularities(duckdb: DuckDBResource) -> Iterator:
        with open_warehouse(duckdb) as conn:
            known = set(conn.execute("SELECT customer_id FROM customers").df()["customer_id"])
            split = split_irregularities(source.irregularities(), max_text=max_text, known_customers=known)
            warehouse.replace_table(
                conn,
                {
                    "irregularities": split.accepted.rename(columns={"_source_file": "source_file"}),
                    "rejected_irregularities": split.rejected,
                },
            )
            stored = warehouse.count(conn, "irregularities"), warehouse.count(
                conn, "rejected_irregularities"
            )
        yield dg.MaterializeResult(metadata=_split_metadata(split, settings) | {"source": source.name})
        yield _reconcile_result("irregularities", split.received, *stored)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "raw_transactions",
                group_name="raw",
                kinds={"duckdb"},
                code_version="1",
                partitions_def=partitions,
                deps=[customers],
                description="Accepted transactions of one business day (event_ts in "
                "[P 00:00, P+1 00:00) business time, stored as naive UTC).",
            ),
            dg.AssetSpec(
                "rejected_transactions",
                group_name="raw",
                kinds={"duckdb"},
                code_version="1",
                partitions_def=partitions,
                deps=[customers],
                description="Rows of the day that broke the contract, with every reason "
                "and the original values as JSON.",
            ),
        ],
        can_subset=False,
    )
    def raw_transactions(
        context: dg.AssetExecutionContext, config: RawReadConfig, duckdb: DuckDBResource
    ) -> Iterator:
        read_at = pd.Timestamp(config.read_at).tz_localize(None) if config.read_at else None
        per_partition = []
        totals = {"received": 0, "accepted": 0, "rejected": 0}
        reasons: dict[str, int] = {}
        last_split = None
        with open_warehouse(duckdb) as conn:
            known = set(conn.execute("SELECT customer_id FROM customers").df()["customer_id"])
            if not known:
                raise dg.Failure("the customers table is empty: materialise `customers` first")
            for key in context.partition_keys:
                day = partition_day(key)
                try:
                    frame = source.transactions(day, read_at=read_at)
                except ContractError as exc:
                    raise dg.Failure(
                        description=f"partition {key}: {exc}",
                        metadata={"file": exc.file, "column": exc.column, "problem": exc.problem},
                        allow_retries=False,
                    ) from exc
                split = split_transactions(
                    frame,
                    partition_window(partitions, key),
                    max_amount=settings.raw.max_amount,
                    max_text=max_text,
                    known_customers=known,
                    stored_elsewhere=_stored_elsewhere(conn, day, frame),
                )
                load = pd.DataFrame([{
                    "received": split.received, "accepted": len(split.accepted), "rejected": len(split.rejected),
                    "source": source.name, "read_at": config.read_at,
                    "loaded_at": pd.Timestamp.now("UTC").tz_localize(None),
                }])
                warehouse.replace_partition(
                    conn,
                    day,
                    {
                        "raw_transactions": split.accepted.rename(columns={"_source_file": "source_file"}),
                        "rejected_transactions": split.rejected,
                        "raw_loads": load,
                    },
                )
                acc = warehouse.count(conn, "raw_transactions", day)
                rej = warehouse.count(conn, "rejected_transactions", day)
                if acc + rej != split.received:  # also re-checked per night by the rows_reconcile check
                    raise dg.Failure(description=f"partition {key}: received {split.received} rows but "
                                     f"stored {acc} accepted + {rej} rejected")
                totals["received"] += split.received
                totals["accepted"] += len(split.accepted)
                totals["rejected"] += len(split.rejected)
                for reason, n in split.reasons.items():
                    reasons[reason] = reasons.get(reason, 0) + n
                per_partition.append(
                    {"partition": key, "received": split.received, "accepted": acc, "rejected": rej}
                )
                last_split = split
        if len(context.partition_keys) == 1:
            meta = _split_metadata(last_split, settings)
        else:
            meta = {
                **totals,
                "partitions": len(context.partition_keys),
                "rejection_reasons": md_table(counts_table(reasons), max_rows=25),
                "per_partition": md_table(pd.DataFrame(per_partition), max_rows=40),
                "settings_version": settings.version(),
            }
        meta |= {"source": source.name, "read_at": config.read_at or "(all arrived)"}
        yield dg.MaterializeResult(asset_key="raw_transactions", metadata=meta)
        yield dg.MaterializeResult(
            asset_key="rejected_transactions",
            metadata={"rejected": totals["rejected"], "rejection_reasons": meta["rejection_reasons"]},
        )

    return [customers, irregularities, raw_transactions]


def _stored_elsewhere(conn, day: dt.date, frame: pd.DataFrame) -> dict[str, str]:
    """transaction_id -> partition, for ids of this batch stored in another partition."""
    if frame.empty:
        return {}
    ids = pd.DataFrame({"transaction_id": frame["transaction_id"].map(lambda v: v if isinstance(v, str) else None)})
    conn.register("_batch_ids", ids)
    try:
        rows = conn.execute(
            """SELECT r.transaction_id, CAST(r.partition AS VARCHAR) FROM raw_transactions r
               JOIN (SELECT DISTINCT transaction_id FROM _batch_ids) b USING (transaction_id)
               WHERE r.partition <> ?""",
            [day],
        ).fetchall()
    finally:
        conn.unregister("_batch_ids")
    return dict(rows)
