"""The checks: one module per family, each holding side by side what its checks load
(the *loader*), the statistic they compute (the *SQL* both engines run, and the row-level
definition it is held equal to in the tests) and the pure *guard* that judges it. The
catalogue (:mod:`.catalogue`) is the one table that declares every check.

No Dagster here: a loader reads through a :class:`Step` (the engine, the source, the
settings of one night), a guard takes plain frames and numbers and returns a
:class:`Verdict`; the Dagster layer (``risk_assets/defs/``) renders verdicts into check
results once.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa

from risk_assets.core import model as model_lib
from risk_assets.core.night import Night
from risk_assets.engines import Engine
from risk_assets.settings import Settings
from risk_assets.sources import Source
from risk_assets.store import registry, warehouse

Scalar = int | float | str | bool | None

_PER_PARTITION: set[str] = set()


def per_partition(sql: str) -> str:
    """Declare ``sql`` a per-partition statistic: it reads partitions ``$first .. $day``,
    returns a ``partition`` column, and a partition's rows depend on that partition's own
    rows alone (grouped, or windowed, by partition). A :class:`Step` then computes each
    partition once for every range asked of it (:class:`PartitionCache`). Returns ``sql``."""
    _PER_PARTITION.add(sql)
    return sql


def reads_of(sql: str) -> tuple[str, ...]:
    """The warehouse tables a statistic's SQL reads (each is named through
    ``warehouse.table``, so by its quoted identifier)."""
    return tuple(name for name in warehouse.TABLES if warehouse.table(name) in sql)


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    frame = frame.copy(deep=False)
    frame.attrs = {}  # an engine's query metrics (Spark's), not the statistic
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _bytes_frame(blob: bytes) -> pd.DataFrame:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all().to_pandas()


class PartitionStore:
    """Per-partition statistics kept in the warehouse (``partition_statistics``) from one load
    to the next: a night reads the weeks before it from there and computes its own partition.

    An entry is used only while the inputs it was computed from are unchanged. Its
    fingerprint covers the content of every table the statistic reads: per partition for a
    partitioned table (a day delivered again with other rows is computed again), as a whole
    for a reference table (a new customers version, a new mapping: every partition again,
    since the statistic joins them). Entries are keyed by the statistic's SQL (with the
    versions of DuckDB, pandas and pyarrow), the engine and the parameters, so a change of
    code, library, engine or mapping version never reads another's rows. The reference
    tables are fingerprinted once per store: it lives for one load, and nothing rewrites them
    during it. ``write``: keep what is computed (the raw load); other steps only read."""

    def __init__(self, conn, engine: str, write: bool) -> None:
        self.conn, self.engine, self.write = conn, engine, write
        self.usable = warehouse.has_table(conn, "partition_statistics")
        self._tables: dict[str, str] = {}
        self._partitions: dict[tuple[str, dt.date], str] = {}
        self._pending: list[dict] = []
        self.read = self.kept = 0
        """Partitions read from the store, and kept in it, by this store."""

    def forget(self, day: dt.date) -> None:
        """``day``'s partitions were written again: fingerprint them again."""
        self._partitions = {k: v for k, v in self._partitions.items() if k[1] != day}

    def inputs(self, sql: str, days: Sequence[dt.date]) -> dict[dt.date, str]:
        """The fingerprint of the inputs of ``sql``'s rows of each of ``days``."""
        parts: dict[dt.date, list[str]] = {d: [] for d in days}
        for name in reads_of(sql):
            if "partition" in warehouse.COLUMNS[name]:
                unknown = [d for d in days if (name, d) not in self._partitions]
                if unknown:
                    found = warehouse.partition_contents(self.conn, name, min(unknown), max(unknown))
                    self._partitions.update({(name, d): found.get(d, "empty") for d in unknown})
                for d in days:
                    parts[d].append(f"{name}={self._partitions[(name, d)]}")
            else:
                if name not in self._tables:
                    self._tables[name] = warehouse.table_content(self.conn, name)
                for d in days:
                    parts[d].append(f"{name}={self._tables[name]}")
        return {d: hashlib.sha256("|".join(p).encode()).hexdigest()[:32] for d, p in parts.items()}

    @staticmethod
    def statistic_id(sql: str) -> str:
        """The key of a statistic's kept rows: its SQL, and the versions of the libraries that
        compute and convert them (an upgrade computes them again)."""
        import duckdb

        versions = f"duckdb {duckdb.__version__}, pandas {pd.__version__}, pyarrow {pa.__version__}"
        return hashlib.sha256(f"{sql}\n{versions}".encode()).hexdigest()[:16]

    def load(self, sql: str, params: str, days: Sequence[dt.date], inputs: Mapping[dt.date, str]) -> dict:
        """The kept rows of ``days`` whose inputs are unchanged: day -> frame."""
        kept = warehouse.stored_statistics(self.conn, self.statistic_id(sql), self.engine, params, days)
        hits = {d: _bytes_frame(blob) for d, (was, blob) in kept.items() if was == inputs[d]}
        self.read += len(hits)
        return hits

    def keep(self, sql: str, params: str, frames: Mapping[dt.date, pd.DataFrame], inputs: Mapping) -> None:
        """Keep computed rows (written at :meth:`flush`)."""
        if not self.write:
            return
        now = pd.Timestamp.now("UTC").tz_localize(None)
        self._pending.extend(
            {
                "statistic": self.statistic_id(sql),
                "engine": self.engine,
                "params": params,
                "partition": d,
                "inputs": inputs[d],
                "computed_at": now,
                "frame": _frame_bytes(frame),
            }
            for d, frame in frames.items()
        )
        if len(self._pending) >= 256:
            self.flush()

    def flush(self) -> None:
        """Write the rows kept since the last flush (one transaction)."""
        if self._pending:
            warehouse.store_statistics(self.conn, pd.DataFrame(self._pending))
            self.kept += len(self._pending)
            self._pending = []


class PartitionCache:
    """Per-partition statistics already computed (:func:`per_partition`), shared by the steps
    of one load or one check step: each night asks for its own look-back range, and only the
    partitions no earlier night asked for are computed (a history load judges each day
    against the weeks before it: without this, every day re-reads nine weeks). With a
    ``store``, partitions not in memory are read from the warehouse when their inputs are
    unchanged (:class:`PartitionStore`), and what is computed is kept there."""

    def __init__(self, store: PartitionStore | None = None) -> None:
        self._entries: dict[tuple, tuple[pd.DataFrame, set[dt.date]]] = {}
        self.store = store if store is not None and store.usable else None

    def forget(self, day: dt.date) -> None:
        """Drop ``day`` from every statistic (its partition was written again)."""
        for key, (frame, covered) in list(self._entries.items()):
            if day in covered:
                self._entries[key] = (frame[frame["partition"] != day], covered - {day})
        if self.store is not None:
            self.store.forget(day)

    def get(
        self, engine: Engine, sql: str, params: Mapping[str, object], first: dt.date, last: dt.date
    ) -> pd.DataFrame:
        rest = {k: v for k, v in params.items() if k not in ("first", "day")}
        key = (sql, repr(sorted(rest.items(), key=lambda kv: kv[0])))
        frame, covered = self._entries.get(key, (None, set()))
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        missing = [d for d in days if d not in covered]
        parts = [] if frame is None else [frame]
        kept, inputs = {}, {}
        if missing and self.store is not None:
            inputs = self.store.inputs(sql, missing)
            kept = self.store.load(sql, key[1], missing, inputs)
            parts.extend(f for f in kept.values() if len(f))
        runs: list[list[dt.date]] = []
        for d in (d for d in missing if d not in kept):  # contiguous runs of days to compute: one query each
            if runs and (d - runs[-1][-1]).days == 1:
                runs[-1].append(d)
            else:
                runs.append([d])
        for run in runs:
            computed = day_frame(engine.statistic(sql, rest | {"first": run[0], "day": run[-1]}))
            parts.append(computed)
            if self.store is not None:
                by_day = {d: computed[computed["partition"] == d].reset_index(drop=True) for d in run}
                self.store.keep(sql, key[1], by_day, inputs)
        if missing and parts:
            frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            frame = frame.sort_values("partition", kind="stable").reset_index(drop=True)
            self._entries[key] = (frame, covered | set(missing))
        if frame is None:  # nothing computed or kept with rows: the engine's own empty frame
            return day_frame(engine.statistic(sql, rest | {"first": first, "day": last}))
        inside = np.array([first <= d <= last for d in frame["partition"]], dtype=bool)
        return frame.loc[inside].reset_index(drop=True)  # rows, never columns: an empty mask keeps them

    def flush(self) -> None:
        """Write what the store keeps (see :meth:`PartitionStore.flush`)."""
        if self.store is not None:
            self.store.flush()


@dataclass
class Verdict:
    """What a guard found, as separate typed fields.

    * ``figures`` — what was measured (counts, rates, names): scalars, one metadata entry
      each, so the UI plots the numeric ones night by night;
    * ``thresholds`` — the limits the verdict was judged against, exactly as used;
    * ``data`` — structured findings (e.g. suggested aliases as a mapping), JSON;
    * ``tables`` — offender tables as frames (the UI shows their first rows);
    * ``summary`` — one sentence for the operator."""

    passed: bool
    severity: Literal["ERROR", "WARN"]
    summary: str
    figures: dict[str, Scalar] = field(default_factory=dict)
    thresholds: dict[str, Scalar] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


class Refused(ValueError):
    """A step declines to go on for a stated domain reason (the message names it)."""


@dataclass
class Inputs:
    """What a loader hands its guard: the keyword arguments, plus extras recorded next to
    the verdict (the mapping or model version it was judged against)."""

    args: dict
    extras: dict = field(default_factory=dict)


class Step:
    """What the checks of one step read through, for one night: the engine that holds the
    per-night tables (``conn`` is the warehouse, for ledgers and the registry), the source,
    the settings, and the check declarations (the look-back re-judges a day with the
    quarantining ones). Each statistic and the deployed model are computed once per step
    and every caller gets its own copy: the checks of one asset share their reads."""

    def __init__(
        self,
        engine: Engine,
        night: Night,
        settings: Settings,
        source: Source,
        checks: Sequence[CheckDecl] = (),
        _shared: dict | None = None,
    ):
        self.engine, self.night, self.settings, self.source, self.checks = engine, night, settings, source, checks
        self._shared = _shared if _shared is not None else {"statistics": {}, "models": {}}
        self._shared.setdefault("partitions", PartitionCache())

    @classmethod
    def sharing(
        cls,
        partitions: PartitionCache,
        engine: Engine,
        night: Night,
        settings: Settings,
        source: Source,
        checks: Sequence[CheckDecl] = (),
    ) -> Step:
        """A step of its own (its own statistics and model caches) that shares the
        per-partition statistics of ``partitions`` with other steps (the days of one load)."""
        return cls(engine, night, settings, source, checks, {"statistics": {}, "models": {}, "partitions": partitions})

    @property
    def conn(self):
        return self.engine.conn

    def on(self, night: Night) -> Step:
        """The same step for another night (caches shared: their keys name the night)."""
        return Step(self.engine, night, self.settings, self.source, self.checks, self._shared)

    def statistic(
        self, sql: str, params: Mapping[str, object], frames: Mapping[str, pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """One aggregate query on the engine (computed once per step unless ``frames``; a
        :func:`per_partition` statistic once per partition)."""
        if frames:
            return self.engine.statistic(sql, params, frames)
        if sql in _PER_PARTITION:
            first, last = (pd.Timestamp(params[k]).date() for k in ("first", "day"))
            return self._shared["partitions"].get(self.engine, sql, params, first, last)
        cache, key = self._shared["statistics"], (sql, repr(sorted(params.items(), key=lambda kv: kv[0])))
        if key not in cache:
            cache[key] = self.engine.statistic(sql, params)
        return cache[key].copy()

    def deployed_model(self) -> tuple[lgb.Booster, model_lib.ModelCard]:
        """The model serving uses, parsed once per step."""
        entry = registry.deployed_model(self.conn)
        models = self._shared["models"]
        key = entry.path if entry is not None else None
        if key not in models:
            models[key] = registry.load_deployed(self.conn)
        return models[key]


Loader = Callable[[Step], Inputs]


@dataclass(eq=False)
class CheckDecl:
    """One row of the catalogue (:mod:`.catalogue`)."""

    name: str
    asset: str
    guard: Callable[..., Verdict]
    """The pure statistic that judges the check."""
    description: str
    load: Loader | None = None
    """``load(step) -> Inputs``; None: evaluated inside its asset."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """Guard keyword -> dotted settings path (e.g. ``"checks.imputation_ceiling"``)."""
    blocking: bool = True
    severity: Literal["ERROR", "WARN", "WARN or ERROR"] = "ERROR"
    """The severity policy (the guard's verdict carries the severity of each result)."""
    partitioned: bool = True
    deps: tuple[str, ...] = ()
    """Other assets the check reads (shown as lineage in the UI)."""
    quarantines: bool = False
    """A raw day that fails this check is quarantined: judged again at every load and
    recorded in ``raw_verdicts``, it blocks the nights whose look-back reads it."""

    @property
    def label(self) -> str:
        return f"{self.asset}.{self.name}"

    def thresholds(self, settings: Settings) -> dict:
        """The guard's threshold arguments, read from ``settings``."""
        return {kw: functools.reduce(getattr, path.split("."), settings) for kw, path in self.settings.items()}

    def judge(self, args: Mapping, settings: Settings) -> Verdict:
        """Run the guard on loaded (or in-memory) inputs with the configured thresholds."""
        return self.guard(**args, **self.thresholds(settings))

    def evaluate(self, step: Step) -> tuple[Verdict, dict]:
        """The check's body: its loader reads through the step, its guard judges with the
        configured thresholds. Returns the verdict and the extras to record with it (the
        versions serving uses now included)."""
        inputs = self.load(step)
        return self.judge(inputs.args, step.settings), registry.serving_versions(step.conn) | inputs.extras


def day_frame(frame: pd.DataFrame, column: str = "partition") -> pd.DataFrame:
    """``column`` as ``datetime.date`` values (a statistic's day, whatever engine returned it)."""
    frame[column] = [
        d if isinstance(d, dt.date) and not isinstance(d, dt.datetime) else pd.Timestamp(d).date()
        for d in frame[column]
    ]
    return frame
