"""A detection-power certificate: what the checks block on its first night, and what they do not.

    python -m benchmarks.detection_power --customers 4000
    python -m benchmarks.detection_power --tiny          # the CI version (one world, a few points)

For each world (embedded and alpine) the script exports a landing folder, loads and trains
through the landing source (as ``benchmarks.false_alarms`` does), then replays held-out clean
nights after the training period with **generic faults** injected into that night's landing
files at graded magnitudes, each through the real nightly job on a fresh copy of the
warehouse:

* ``resend`` — a share of the day delivered again under fresh transaction ids;
* ``lose`` — a share of one value's rows lost (the largest value of each categorical column,
  transactions' and customers' alike, and a value holding about 5–10% of the rows);
* ``unit`` — one value's amounts multiplied by a factor (the largest category and region);
* ``clip`` — every amount clipped at a quantile of the day's amounts;
* ``null_burst`` — the channel of a share of one region's rows set to null;
* ``new_value`` — a share of the rows moved to a category nobody has seen;
* ``reclassify`` — a share of the customers moved to another segment in the customers file;
* ``trend`` — every amount inflated by a rate per day from the first night on (nights to a
  blocked night).

For each fault and magnitude it records whether the night was blocked and by which checks;
per fault the smallest magnitude blocked on every replayed night. The false-block rate on
clean nights is ``benchmarks.false_alarms``' (quoted with it). Writes
``benchmarks/results/detection_power_<customers>.json``; the README quotes the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from benchmarks.false_alarms import FIRST_NIGHT, HISTORY, QUIET, TRAINING
from benchmarks.machine import describe
from risk_assets.app.cli import quiet_dagster_warnings
from risk_assets.app.operations import build_landing_world
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import NIGHTLY_JOB
from risk_assets.scenario.worlds import WORLDS, landing_settings

Fault = Callable[[pd.DataFrame, pd.DataFrame, np.random.Generator], tuple[pd.DataFrame, pd.DataFrame]]
"""``fault(day rows joined with segment/region, customers, rng) -> (day rows, customers)``."""

COLUMNS = ("category", "channel", "segment", "region")


def _values(day: pd.DataFrame, column: str) -> list[str]:
    """The largest value of a column and, when there is one, a value holding 5–10% of the rows."""
    shares = day[column].value_counts(normalize=True)
    picked = [shares.index[0]]
    small = shares[(shares >= 0.05) & (shares <= 0.10)]
    if len(small):
        picked.append(small.index[0])
    return [str(v) for v in picked]


def faults_for(day: pd.DataFrame, tiny: bool) -> list[tuple[str, str, float, Fault]]:
    """(kind, subject, magnitude, fault) in ascending magnitude per (kind, subject)."""
    out: list[tuple[str, str, float, Fault]] = []

    def resend(share):
        def f(d, c, rng):
            again = d.sample(frac=share, random_state=1)
            return pd.concat([d, again.assign(transaction_id="R" + again["transaction_id"].astype(str))]), c

        return f

    def lose(column, value, share):
        def f(d, c, rng):
            gone = (d[column].astype(str) == value).to_numpy() & (rng.random(len(d)) < share)
            return d[~gone], c

        return f

    def unit(column, value, factor):
        def f(d, c, rng):
            hit = d[column].astype(str) == value
            return d.assign(amount=d["amount"].where(~hit, (d["amount"] * factor).round(2))), c

        return f

    def clip(q):
        def f(d, c, rng):
            return d.assign(amount=d["amount"].clip(upper=round(float(d["amount"].quantile(q)), 2))), c

        return f

    def null_burst(value, share):
        def f(d, c, rng):
            hit = (d["region"].astype(str) == value).to_numpy() & (rng.random(len(d)) < share)
            return d.assign(channel=d["channel"].where(~hit, None)), c

        return f

    def new_value(share):
        def f(d, c, rng):
            hit = rng.random(len(d)) < share
            return d.assign(category=d["category"].where(~hit, "brand_new_category")), c

        return f

    def reclassify(share):
        def f(d, c, rng):
            segments = sorted(c["segment"].unique())
            moved = c.sample(frac=share, random_state=2).index
            c = c.copy()
            c.loc[moved, "segment"] = [
                segments[(segments.index(v) + 1) % len(segments)] for v in c.loc[moved, "segment"]
            ]
            return d, c

        return f

    def graded(kind, subject, magnitudes, make):
        out.extend((kind, subject, m, make(m)) for m in (magnitudes[-2:] if tiny else magnitudes))

    graded("resend", "the day", [0.02, 0.05, 0.1, 0.3], resend)
    for column in COLUMNS[:1] if tiny else COLUMNS:
        for value in _values(day, column)[:1] if tiny else _values(day, column):
            graded("lose", f"{column}={value}", [0.2, 0.5, 0.8], lambda s, c=column, v=value: lose(c, v, s))
    if not tiny:
        for column in ("category", "region"):
            value = _values(day, column)[0]
            graded(
                "unit", f"{column}={value}", [1.5, 2.0, 4.0, 10.0, 100.0], lambda x, c=column, v=value: unit(c, v, x)
            )
        graded("clip", "all amounts", [0.999, 0.99, 0.95], clip)
        region = _values(day, "region")[0]
        graded("null_burst", f"channel in region={region}", [0.1, 0.3, 0.6], lambda s, v=region: null_burst(v, s))
        graded("new_value", "category", [0.002, 0.005, 0.01, 0.05], new_value)
    graded("reclassify", "segment", [0.02, 0.05, 0.1, 0.2], reclassify)
    return out


class Replay:
    """A pristine loaded and trained world, and fresh copies of it for each trial."""

    def __init__(
        self,
        world: str,
        customers: int,
        nights: list[dt.date],
        pristine: Path | None = None,
        instance: dg.DagsterInstance | None = None,
        training: dict | None = None,
    ):
        """``pristine``: a folder already loaded and trained (the test suite's landing world);
        built here when None."""
        self.world, self.customers, self.training = world, customers, training or TRAINING
        self.instance = instance or dg.DagsterInstance.ephemeral()
        if pristine is None:
            pristine = Path(tempfile.mkdtemp(prefix=f"risk_assets_dp_{world}_"))
            settings = landing_settings(pristine, world, customers, self.training)
            # raw days loaded up to the last replayed night, so every replayed night's look-back is whole
            history = (HISTORY[0], max(nights) - dt.timedelta(days=1))
            build_landing_world(settings, self.instance, history, max(nights) + dt.timedelta(days=14), QUIET)
        self.pristine = pristine
        self.trials = 0

    def run(self, nights: list[dt.date], fault: Fault, days: int = 1) -> list[dict]:
        """For each of ``nights``, on its own fresh copy (a fault on one replayed night must not
        quarantine another): the fault applied to ``days`` consecutive nights from it (the
        customers file changed once), each night run through the nightly job."""
        return [o for start in nights for o in self._trial(start, fault, days)]

    def _trial(self, start: dt.date, fault: Fault, days: int) -> list[dict]:
        folder = Path(tempfile.mkdtemp(prefix="trial_", dir=self.pristine.parent))
        try:
            for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
                if (self.pristine / name).exists():
                    shutil.copy(self.pristine / name, folder / name)
            (folder / "models").symlink_to(self.pristine / "models")
            landing = folder / "landing"
            source = self.pristine / "landing"
            landing.mkdir()
            shutil.copy(source / "irregularities.parquet", landing / "irregularities.parquet")
            customers = pd.read_parquet(source / "customers.parquet")
            outcomes = []
            settings = landing_settings(folder, self.world, self.customers, self.training, landing=landing)
            job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
            rng = np.random.default_rng(7)
            changed = None
            for k in range(days):
                night = start + dt.timedelta(days=k)
                target = landing / "transactions" / f"date={night:%Y-%m-%d}"
                shutil.copytree(source / "transactions" / f"date={night:%Y-%m-%d}", target)
                files = sorted(target.glob("*.parquet"))
                day = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
                joined = day.merge(customers[["customer_id", "segment", "region"]], on="customer_id", how="left")
                faulty, changed_now = fault(joined.assign(_k=k), customers, rng)
                for f in files:
                    f.unlink()
                faulty[day.columns].to_parquet(target / "part-0.parquet", index=False)
                if changed is None:
                    changed = changed_now
                changed.to_parquet(landing / "customers.parquet", index=False)
                result = job.execute_in_process(
                    instance=self.instance, run_config=QUIET, partition_key=night.isoformat(), raise_on_error=False
                )
                self.trials += 1
                failed = sorted(
                    f"{e.asset_key.to_user_string()}.{e.check_name}"
                    for e in result.get_asset_check_evaluations()
                    if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
                )
                reasons = {
                    f"{e.asset_key.to_user_string()}.{e.check_name}": e.description
                    for e in result.get_asset_check_evaluations()
                    if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
                }
                outcomes.append({"night": str(night), "blocked": not result.success, "by": failed, "why": reasons})
            return outcomes
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def measure(world: str, customers: int, nights: list[dt.date], tiny: bool, replay: Replay | None = None) -> dict:
    replay = replay or Replay(world, customers, nights)
    started = time.time()
    sample = pd.read_parquet(
        next((replay.pristine / "landing" / "transactions" / f"date={nights[0]:%Y-%m-%d}").glob("*.parquet"))
    )
    people = pd.read_parquet(replay.pristine / "landing" / "customers.parquet")
    sample = sample.merge(people[["customer_id", "segment", "region"]], on="customer_id", how="left")
    trials, smallest = [], {}
    for kind, subject, magnitude, fault in faults_for(sample, tiny):
        key = f"{kind}: {subject}"
        if key in smallest:
            continue  # ascending: a smaller magnitude already blocked every night
        outcomes = replay.run(nights, fault)
        blocked_all = all(o["blocked"] for o in outcomes)
        trials.append({"kind": kind, "subject": subject, "magnitude": magnitude, "nights": outcomes})
        print(
            f"{world} {key} {magnitude}: {'BLOCKED' if blocked_all else 'scored'} {[o['why'] for o in outcomes]}",
            flush=True,
        )
        if blocked_all:
            smallest[key] = {
                "kind": kind,
                "subject": subject,
                "magnitude": magnitude,
                "blocked_by": sorted({c for o in outcomes for c in o["by"]}),
            }
    missed = sorted({f"{t['kind']}: {t['subject']}" for t in trials} - set(smallest))
    trends = []
    for rate in [] if tiny else [0.02, 0.01, 0.004]:  # the test suite has its own trend test
        horizon = 14

        def inflate(d, c, rng, rate=rate):
            factor = (1 + rate) ** (int(d["_k"].iloc[0]) + 1)
            return d.assign(amount=(d["amount"] * factor).round(2)), c

        outcomes = replay.run(nights[:1], inflate, days=horizon)
        first = next((i + 1 for i, o in enumerate(outcomes) if o["blocked"]), None)
        trends.append(
            {
                "rate_per_day": rate,
                "nights_to_block": first,
                "amount_factor_then": (1 + rate) ** first if first else None,
                "blocked_by": outcomes[first - 1]["by"] if first else [],
                "horizon": horizon,
            }
        )
        print(f"{world} trend {rate:.1%}/day: blocked after {first} night(s)", flush=True)
    return {
        "world": world,
        "customers": customers,
        "replayed_nights": [str(n) for n in nights],
        "smallest_blocked": list(smallest.values()),
        "never_blocked_at_the_largest_magnitude": missed,
        "trends": trends,
        "trials": trials,
        "nightly_runs": replay.trials,
        "seconds": round(time.time() - started, 1),
        "machine": describe(),
    }


def _checks(labels) -> str:
    return ", ".join(sorted({c.split(".")[-1] for c in labels}))


def table(reports: list[dict]) -> str:
    """The README's table: per fault and subject, the smallest magnitude blocked on its first
    night on each world (— : not blocked at the largest magnitude tried), and the check(s)
    that blocked it."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for report in reports:
        world = report["world"]
        tried = {}
        for t in report["trials"]:
            tried.setdefault((t["kind"], t["subject"]), []).append(t["magnitude"])
        found = {(s["kind"], s["subject"]): s for s in report["smallest_blocked"]}
        for (kind, subject), magnitudes in tried.items():
            # subjects are the world's own values: one row per kind and role, values named in the cell
            role = subject.split("=")[0]
            cell = rows.setdefault((kind, role), {})
            hit = found.get((kind, subject))
            value = subject.split("=", 1)[1] if "=" in subject else ""
            label = f"{value}: " if value else ""
            text = (
                f"{label}{hit['magnitude']:g} ({_checks(hit['blocked_by'])})"
                if hit
                else (f"{label}— (up to {max(magnitudes):g})")
            )
            cell[world] = "; ".join(filter(None, [cell.get(world), text]))
        for trend in report["trends"]:
            cell = rows.setdefault(("trend", f"{trend['rate_per_day']:.1%}/day"), {})
            n = trend["nights_to_block"]
            cell[world] = (
                f"{n} night(s), ×{trend['amount_factor_then']:.3f} ({_checks(trend['blocked_by'])})"
                if n
                else f"not within {trend['horizon']} nights"
            )
    worlds = [r["world"] for r in reports]
    lines = ["| fault | subject | " + " | ".join(worlds) + " |", "|---|---|" + "---|" * len(worlds)]
    for (kind, role), cells in rows.items():
        lines.append(f"| {kind} | {role} | " + " | ".join(cells.get(w, "") for w in worlds) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--world", choices=[*WORLDS, "both"], default="both")
    parser.add_argument("--tiny", action="store_true", help="one world, one night, a few points (CI)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    quiet_dagster_warnings()
    nights = [FIRST_NIGHT + dt.timedelta(days=1)] if args.tiny else [FIRST_NIGHT + dt.timedelta(days=d) for d in (1, 8)]
    worlds = (
        ["embedded"] if args.tiny and args.world == "both" else list(WORLDS) if args.world == "both" else [args.world]
    )
    reports = [measure(w, args.customers, nights, args.tiny) for w in worlds]
    out = args.out or Path(__file__).parent / "results" / f"detection_power_{args.customers}.json"
    out.write_text(json.dumps(reports, indent=1))
    print(table(reports))
    return reports


if __name__ == "__main__":
    main()
