"""The raw layer: customers, irregularities and daily raw transactions.

Each body validates its source rows against the contract (:mod:`risk_assets.core.contract`)
and writes accepted and rejected rows in one DuckDB transaction; the factory only wraps
the bodies. ``received == accepted + rejected`` is judged by the ``rows_reconcile``
guard: inside the asset for the reference tables, as a partitioned check for the days.
"""

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from risk_assets.checks import PartitionCache, PartitionStore, Step, Verdict, lookback
from risk_assets.checks.catalogue import declared, judge_raw_day
from risk_assets.core import reference
from risk_assets.core.contract import (
    ContractError,
    Split,
    split_customers,
    split_irregularities,
)
from risk_assets.core.night import Night
from risk_assets.defs import render
from risk_assets.defs.checks import check_specs
from risk_assets.defs.resources import daily_partitions, open_engine, open_warehouse
from risk_assets.engines import Engine, EngineFactory
from risk_assets.settings import Settings
from risk_assets.sources import Entry, Source
from risk_assets.store import registry, warehouse


class RawReadConfig(dg.Config):
    read_at: str | None = None
    """ISO timestamp (UTC). Read only rows that had arrived at the source by then —
    the embedded world uses it to simulate the nightly cut-off and late data.
    Empty: everything that has arrived."""


class CustomersConfig(dg.Config):
    valid_from: str | None = None
    """ISO timestamp (UTC) from which this delivery's attributes are valid (serving and
    training read the version valid at each as-of). Empty: from the beginning for the first
    delivery, from the time it is read for a later one."""
    only_if_changed: bool = False
    """Record a new version only when the file's content differs from the version held (the
    landing sensor's re-read of a file whose modification time changed)."""


def _counts(counts: dict[str, int], key: str = "reason") -> pd.DataFrame:
    return pd.DataFrame({key: list(counts), "rows": list(counts.values())})


def split_metadata(split: Split, settings: Settings) -> dict:
    return {
        "received": split.received,
        "accepted": len(split.accepted),
        "rejected": len(split.rejected),
        "rejected_share": round(len(split.rejected) / split.received, 6) if split.received else 0.0,
        "rejection_reasons": _counts(split.reasons),
        "rejected_examples": split.rejected[["source_file", "source_row", "record_key", "reasons"]].head(10),
        **split.notes,
        "settings_version": settings.version(),
    }


# --------------------------------------------------------------------------- bodies
def _store_reference(
    conn: duckdb.DuckDBPyConnection, name: str, split: Split, source: Source, settings: Settings
) -> tuple[dict, Verdict]:
    """Replace table ``name`` and ``rejected_<name>`` in one transaction, then judge
    ``received = accepted + rejected`` on what was stored."""
    warehouse.replace_table(
        conn, {name: split.accepted.rename(columns={"_source_file": "source_file"}), f"rejected_{name}": split.rejected}
    )
    verdict = declared(name, "rows_reconcile").judge(
        {
            "received": split.received,
            "stored_accepted": warehouse.count(conn, name),
            "stored_rejected": warehouse.count(conn, f"rejected_{name}"),
        },
        settings,
    )
    return split_metadata(split, settings) | {"source": source.name}, verdict


def _baseline(conn: duckdb.DuckDBPyConnection, valid_from: pd.Timestamp, settings: Settings) -> pd.Timestamp:
    """When the version a delivery is compared with was itself a blocked re-classification
    (not accepted by override), the one before it: a corrected file is judged against the
    last good version, not against the mistake it corrects."""
    at = valid_from - pd.Timedelta(microseconds=1)
    accepted = set(settings.override.accept_customer_versions)
    while (before := warehouse.delivery_valid_at(conn, at)) is not None:
        if before["changed_share"] <= settings.checks.max_reclassified_share or before["version"] in accepted:
            break
        at = pd.Timestamp(before["valid_from"]) - pd.Timedelta(microseconds=1)
    return at


def _customer_verdicts(conn: duckdb.DuckDBPyConnection, split, settings: Settings) -> tuple[Verdict, Verdict]:
    """The customers file's rows reconciled with the stored tables, and its conflicts."""
    verdict = declared("customers", "rows_reconcile").judge(
        {
            "received": split.received,
            "stored_accepted": warehouse.count(conn, "customers"),
            "stored_rejected": warehouse.count(conn, "rejected_customers"),
        },
        settings,
    )
    conflicts = declared("customers", "conflicting_duplicates").judge(
        {"conflicts": warehouse.conflicts(conn, "customers"), "what": "customer_id"}, settings
    )
    return verdict, conflicts


def load_customers(
    conn: duckdb.DuckDBPyConnection,
    source: Source,
    settings: Settings,
    valid_from: pd.Timestamp | None = None,
    only_if_changed: bool = False,
    received: pd.DataFrame | None = None,
) -> tuple[dict, Verdict, Verdict] | None:
    """Read the customers file and store it as a new *version* (``customer_versions``),
    valid from ``valid_from`` on — by default from the beginning for the first delivery and
    from the time it is read for a later one — next to the current table ``customers`` and
    the rejected rows, in one transaction. The delivery is compared with the version it
    replaces (new, changed, dropped customers: ``customer_deliveries`` and
    ``customer_changes``). ``only_if_changed``: return None, storing nothing, when the file's
    content is the version already held (the nightly re-read); ``received``: the file, already
    read. Returns (metadata, reconcile verdict, conflicting-duplicates verdict)."""
    if received is None:
        received = source.customers()
    fingerprint = reference.received_fingerprint(received, settings.raw.max_text_length)
    latest = warehouse.latest_customer_delivery(conn)
    split = split_customers(received, max_text=settings.raw.max_text_length)
    accepted = split.accepted.rename(columns={"_source_file": "source_file"})
    version = reference.content_hash(accepted)
    unchanged = latest is not None and latest["version"] == version
    if only_if_changed and (latest is None or unchanged):
        if unchanged and fingerprint is not None:  # the next re-read of this file is recognised at once
            warehouse.note_received(conn, latest, fingerprint)
        return None  # never loaded (the raw load says so), or the version already held
    record = not unchanged or valid_from is not None
    now = pd.Timestamp.now("UTC").tz_localize(None)
    if valid_from is None:
        valid_from = warehouse.BEGINNING if latest is None else now
    earlier = warehouse.customers_valid_at(conn, _baseline(conn, valid_from, settings))
    change = reference.delta(earlier if len(earlier) else None, accepted)
    previous = earlier["version"].iloc[0] if len(earlier) else None
    delivery = {
        "version": version,
        "valid_from": valid_from,
        "read_at": now,
        "source": source.name,
        "customers": len(accepted),
        "new_customers": len(change.new),
        "changed_customers": len(change.changed),
        "dropped_customers": len(change.dropped),
        "unchanged_customers": change.unchanged,
        "changed_share": change.changed_share,
        "previous_version": previous,
        "received": fingerprint,
    }
    with warehouse.transaction(conn):
        for name, frame in (("customers", accepted), ("rejected_customers", split.rejected)):
            warehouse.clear(conn, name)
            warehouse.insert(conn, name, frame)
        if record:
            warehouse.record_customer_version(
                conn,
                accepted[["customer_id", *reference.ATTRIBUTES]],
                delivery,
                change.changes if previous is not None else change.changes.iloc[0:0],
            )
    verdict, conflicts = _customer_verdicts(conn, split, settings)
    meta = split_metadata(split, settings) | {
        "source": source.name,
        "customers_version": version,
        "new_version_recorded": record,
        "valid_from": str(valid_from),
        "previous_version": previous or "-",
        "new_customers": len(change.new),
        "changed_customers": len(change.changed),
        "dropped_customers": len(change.dropped),
        "changed_share": round(change.changed_share, 6),
        "transitions": reference.transitions(change.changes).head(20),
    }
    return meta, verdict, conflicts


def held_customers(
    conn: duckdb.DuckDBPyConnection, source: Source, settings: Settings
) -> tuple[dict, Verdict, Verdict]:
    """A customers file whose content is the version already held (or no version yet:
    ``load_customers`` stores the first): its rows reconciled with the stored tables, its
    conflicts, and metadata saying nothing was recorded."""
    latest = warehouse.latest_customer_delivery(conn)
    if latest is None:
        return load_customers(conn, source, settings)
    split = split_customers(source.customers(), max_text=settings.raw.max_text_length)
    verdict, conflicts = _customer_verdicts(conn, split, settings)
    meta = split_metadata(split, settings) | {
        "source": source.name,
        "customers_version": latest["version"],
        "new_version_recorded": False,
        "unchanged": "the file's content is the version already held: nothing recorded",
    }
    return meta, verdict, conflicts


def load_irregularities(conn: duckdb.DuckDBPyConnection, source: Source, settings: Settings) -> tuple[dict, Verdict]:
    """Replace the irregularity events (rows for unknown customers are rejected)."""
    split = split_irregularities(
        source.irregularities(), max_text=settings.raw.max_text_length, known_customers=warehouse.customer_ids(conn)
    )
    return _store_reference(conn, "irregularities", split, source, settings)


def reread_customers(
    conn: duckdb.DuckDBPyConnection, source: Source, settings: Settings, night: Night
) -> tuple[dg.AssetMaterialization | None, dict]:
    """Reference data is a nightly input: a customers file whose content changed since the
    version held is read again as a new version, valid from ``night``'s as-of on (the first
    night of the run). A file received exactly as the one the version held was read from (its
    fingerprint before the contract, ``reference.received_fingerprint``) is not judged again.
    Returns the ``customers`` materialization to log (None: unchanged) and what the raw load's
    metadata says of it (``customers_file``)."""
    received = source.customers()
    held = warehouse.latest_customer_delivery(conn)
    fingerprint = reference.received_fingerprint(received, settings.raw.max_text_length)
    if held is not None and fingerprint is not None and held.get("received") == fingerprint:
        # the very file the version held was read from: the contract would judge it the same
        return None, {"customers_file": f"as received for the version held ({held['version']}): not judged again"}
    reread = load_customers(conn, source, settings, valid_from=night.as_of, only_if_changed=True, received=received)
    if reread is None:  # no delivery recorded: ``held`` is still the version held
        state = "never loaded" if held is None else f"judged again: the version held ({held['version']})"
        return None, {"customers_file": state}
    meta, reconciled, conflicts = reread
    event = dg.AssetMaterialization(
        asset_key="customers",
        description=f"re-read by the run of {night.key}: the customers file's content changed",
        metadata=render.metadata(
            meta | {"rows_reconcile": reconciled.summary, "conflicting_duplicates": conflicts.summary}
        ),
    )
    return event, {
        "customers_reread": meta["customers_version"],
        "customers_new": meta["new_customers"],
        "customers_changed": meta["changed_customers"],
    }


class RawDayError(Exception):
    """A day that cannot be loaded: a file the contract cannot read, or rows unaccounted for."""

    def __init__(self, message: str, metadata: dict | None = None):
        super().__init__(message)
        self.metadata = metadata or {}


def file_ledger(source: Source, night: Night, counts: pd.Series, layout: list[Entry]) -> pd.DataFrame:
    """``raw_load_files`` rows of one load: every file read (with its rows: ``counts`` by
    file name), every file skipped (with why), and the landing folder's stray entries seen
    at load time."""
    entries = source.listing(night.day).entries
    listed = {e.path for e in entries}
    entries = entries + [Entry(name, "read", "rows from the source") for name in counts.index if name not in listed]
    rows = [
        {
            "path": e.path,
            "action": e.action,
            "reason": e.reason,
            "rows": int(counts.get(e.path, 0)) if e.action == "read" else None,
        }
        for e in entries + layout
    ]
    return pd.DataFrame(rows, columns=["path", "action", "rows", "reason"])


def _stored(verdict: Verdict, settings: Settings, extras: dict) -> str | None:
    """The result the night's check step will show; None when it cannot be rendered — the
    check step then evaluates the check itself and reports its own failure, named."""
    try:
        return render.stored_result(verdict, settings, extras)
    except Exception:  # not swallowed: the check step evaluates the check and reports
        return None


def load_raw_days(
    engine: Engine,
    source: Source,
    nights: list[Night],
    settings: Settings,
    read_at: str | None = None,
    run_id: str | None = None,
) -> dict:
    """Validate and write each day (one transaction per day); returns the metadata of
    the whole load. The quarantining checks judge each day as it is written; a one-night
    load of run ``run_id`` records their full results, which that run's check step shows
    instead of evaluating them again. A day whose file cannot be read, or whose stored rows do not
    reconcile, raises :class:`RawDayError` and writes nothing of that day. The engine runs
    the contract (a landing folder's days on Spark's executors with the Spark engine) and
    holds every reconciled day where it computes before the day is judged."""
    conn = engine.conn
    cutoff = pd.Timestamp(read_at).tz_localize(None) if read_at else None
    known = pd.Index(list(warehouse.customer_ids(conn)))  # unique; hashed once for every day of the load
    if known.empty:
        raise warehouse.NotMaterialised("the customers table is empty: materialise `customers` first")
    conflicted = warehouse.conflicted_customers(conn)
    layout = source.layout_problems()
    per_partition, reasons, unhealthy, ran_on = [], {}, [], set()
    # each day judged against the weeks before it: each partition's statistics once, and kept
    # in the warehouse for the nights after this load
    kept = PartitionStore(conn, engine.name, write=True)
    computed = PartitionCache(kept)
    warehouse.heal_id_index(conn)  # the index copies are found with matches the stored rows
    stored = warehouse.StoredIds(conn) if len(nights) > 1 else None  # copies found without a scan per day
    totals = {"received": 0, "accepted": 0, "rejected": 0}
    last_split = None
    for night in nights:
        try:
            day = engine.split_day(source, night, settings.raw, known, conflicted, cutoff, stored)
        except ContractError as exc:
            raise RawDayError(
                f"partition {night.key}: {exc}", {"file": exc.file, "column": exc.column, "problem": exc.problem}
            ) from exc
        split, per_file = day.split, day.per_file
        ran_on.add(day.ran_on)
        files = file_ledger(source, night, per_file, layout)
        load = pd.DataFrame(
            [
                {
                    "received": split.received,
                    "accepted": len(split.accepted),
                    "rejected": len(split.rejected),
                    "source": source.name,
                    "read_at": read_at,
                    "loaded_at": pd.Timestamp.now("UTC").tz_localize(None),
                }
            ]
        )
        warehouse.replace_partition(
            conn,
            night.day,
            {
                "raw_transactions": split.accepted.rename(columns={"_source_file": "source_file"}),
                "rejected_transactions": split.rejected,
                "raw_loads": load,
                "raw_load_files": files,
            },
        )
        acc = warehouse.count(conn, "raw_transactions", night.day)
        rej = warehouse.count(conn, "rejected_transactions", night.day)
        if acc + rej != split.received:  # also judged per night by the rows_reconcile check
            raise RawDayError(
                f"partition {night.key}: received {split.received} rows but stored {acc} accepted + {rej} rejected"
            )
        if stored is not None:
            stored.written(conn, night.day)
        engine.published("raw_transactions", night.day, acc)
        engine.published("rejected_transactions", night.day, rej)
        computed.forget(night.day)
        # the day's health, judged with its load: a failed day is quarantined for later nights
        step = Step.sharing(computed, engine, night, settings, source)
        judged = judge_raw_day(step)
        verdicts = lookback.verdict_rows(step, judged)
        if run_id is not None and len(nights) == 1:  # the night's check step shows these, not evaluated again
            verdicts["run_id"] = run_id
            verdicts["result"] = [_stored(v, settings, extras) for _, v, extras in judged]
        warehouse.replace_partition(conn, night.day, {"raw_verdicts": verdicts})
        unhealthy.extend(f"{night.key} {r.check_name}" for r in verdicts.itertuples() if not r.passed)
        totals = {
            "received": totals["received"] + split.received,
            "accepted": totals["accepted"] + acc,
            "rejected": totals["rejected"] + rej,
        }
        for reason, n in split.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
        per_partition.append(
            {
                "partition": night.key,
                "received": split.received,
                "accepted": acc,
                "rejected": rej,
                "files_read": int((files["action"] == "read").sum()),
                "files_skipped": int((files["action"] == "skipped").sum()),
            }
        )
        last_split = split
    computed.flush()
    if len(nights) == 1:
        meta = split_metadata(last_split, settings) | {
            "files_read": per_partition[0]["files_read"],
            "files_skipped": per_partition[0]["files_skipped"],
            "files": files[["path", "action", "rows", "reason"]],
        }
    else:
        meta = {
            **totals,
            "partitions": len(nights),
            "rejection_reasons": _counts(reasons),
            "per_partition": pd.DataFrame(per_partition),
            "settings_version": settings.version(),
        }
    return meta | {
        "source": source.name,
        "read_at": read_at or "(all arrived)",
        **engine.describe(),
        "contract_ran_on": ", ".join(sorted(ran_on)) or "-",
        "stray_landing_entries": ", ".join(e.path for e in layout) or "-",
        "quarantined_days": len({u.split()[0] for u in unhealthy}),
        "failed_raw_checks": ", ".join(unhealthy[:20]) or "-",
        "statistics_partitions_reused": kept.read,
        "statistics_partitions_kept": kept.kept,
    }


# --------------------------------------------------------------------------- factory
def build_raw_assets(settings: Settings) -> list:
    partitions = daily_partitions(settings)

    @dg.asset(
        group_name="raw",
        kinds={"duckdb"},
        code_version="1",
        check_specs=check_specs("customers", settings),
        description="Customer master data, validated against the landing contract. "
        "Rejected rows are kept in the `rejected_customers` table with their reasons.",
    )
    def customers(config: CustomersConfig, duckdb: DuckDBResource, source: dg.ResourceParam[Source]):
        valid_from = pd.Timestamp(config.valid_from).tz_localize(None) if config.valid_from else None
        with open_warehouse(duckdb) as conn:
            loaded = load_customers(
                conn, source, settings, valid_from=valid_from, only_if_changed=config.only_if_changed
            )
            if loaded is None:  # the content is the version held: judge the file against it, record nothing
                loaded = held_customers(conn, source, settings)
            meta, verdict, conflicts = loaded
            versions = registry.serving_versions(conn)
        yield dg.MaterializeResult(metadata=render.metadata(meta))
        yield render.check_result(verdict, settings, check_name="rows_reconcile", versions=versions)
        yield render.check_result(conflicts, settings, check_name="conflicting_duplicates", versions=versions)

    @dg.asset(
        group_name="raw",
        kinds={"duckdb"},
        code_version="1",
        deps=[customers],
        check_specs=check_specs("irregularities", settings),
        description="Irregularity events (the label source). Rows for unknown customers are "
        "rejected into `rejected_irregularities`.",
    )
    def irregularities(duckdb: DuckDBResource, source: dg.ResourceParam[Source]):
        with open_warehouse(duckdb) as conn:
            meta, verdict = load_irregularities(conn, source, settings)
            versions = registry.serving_versions(conn)
        yield dg.MaterializeResult(metadata=render.metadata(meta))
        yield render.check_result(verdict, settings, check_name="rows_reconcile", versions=versions)

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
        context: dg.AssetExecutionContext,
        config: RawReadConfig,
        duckdb: DuckDBResource,
        engine: dg.ResourceParam[EngineFactory],
        source: dg.ResourceParam[Source],
    ):
        nights = [Night.of(key, settings.calendar) for key in context.partition_keys]
        try:
            with render.clear_failure(), open_engine(duckdb, engine) as opened:
                event, reread = reread_customers(opened.conn, source, settings, nights[0])
                meta = load_raw_days(opened, source, nights, settings, config.read_at, context.run.run_id)
        except RawDayError as exc:
            raise dg.Failure(description=str(exc), metadata=exc.metadata, allow_retries=False) from exc
        if event is not None:
            context.log_event(event)
        meta |= reread
        yield dg.MaterializeResult(asset_key="raw_transactions", metadata=render.metadata(meta))
        yield dg.MaterializeResult(
            asset_key="rejected_transactions",
            metadata=render.metadata({"rejected": meta["rejected"], "rejection_reasons": meta["rejection_reasons"]}),
        )

    return [customers, irregularities, raw_transactions]
