"""A detection-power certificate: what the checks block on its first night, and what they do not.

    python -m benchmarks.detection_power --customers 4000
    python -m benchmarks.detection_power --customers 20000
    python -m benchmarks.detection_power --tiny          # the CI version (one world, a few points)
    python -m benchmarks.detection_power --table benchmarks/results/detection_power_*.json

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
from risk_assets.store import warehouse

Fault = Callable[[pd.DataFrame, pd.DataFrame, np.random.Generator], tuple[pd.DataFrame, pd.DataFrame]]
"""``fault(day rows joined with segment/region, customers, rng) -> (day rows, customers)``."""

COLUMNS = ("category", "channel", "segment", "region")


def _values(day: pd.DataFrame, column: str) -> list[str]:
    """The largest value of a column and, when there is another one, the smallest value that
    still holds at least 5% of the rows (the hardest case of "a value holding ≥ 5%")."""
    shares = day[column].value_counts(normalize=True)
    picked = [shares.index[0]]
    small = shares[shares >= 0.05].iloc[1:]
    if len(small):
        picked.append(small.index[-1])
    return [str(v) for v in picked]


def _exactly(hit: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """``share`` of the ``hit`` rows, exactly (rounded), drawn without replacement: a fault of
    80% is 80% of the rows, not a coin tossed per row."""
    rows = np.flatnonzero(hit)
    out = np.zeros(len(hit), dtype=bool)
    out[rng.choice(rows, size=round(share * len(rows)), replace=False)] = True
    return out


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
            gone = _exactly((d[column].astype(str) == value).to_numpy(), share, rng)
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
            hit = _exactly((d["region"].astype(str) == value).to_numpy(), share, rng)
            return d.assign(channel=d["channel"].where(~hit, None)), c

        return f

    def new_value(share):
        def f(d, c, rng):
            hit = _exactly(np.ones(len(d), dtype=bool), share, rng)
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

    def run(self, nights: list[dt.date], fault: Fault, days: int = 1, then_clean: int = 0) -> list[dict]:
        """For each of ``nights``, on its own fresh copy (a fault on one replayed night must not
        quarantine another): the fault applied to ``days`` consecutive nights from it (the
        customers file changed once), then ``then_clean`` nights delivered clean (the faulty
        day still in their windows), each night run through the nightly job."""
        return [o for start in nights for o in self._trial(start, fault, days, then_clean)]

    def _trial(self, start: dt.date, fault: Fault, days: int, then_clean: int = 0) -> list[dict]:
        folder = Path(tempfile.mkdtemp(prefix="trial_", dir=self.pristine.parent))
        try:
            warehouse.copy_unowned(self.pristine / "warehouse.duckdb", folder / "warehouse.duckdb")
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
            for k in range(days + then_clean):
                night = start + dt.timedelta(days=k)
                target = landing / "transactions" / f"date={night:%Y-%m-%d}"
                shutil.copytree(source / "transactions" / f"date={night:%Y-%m-%d}", target)
                if k < days:
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
                errors = {
                    f"{e.asset_key.to_user_string()}.{e.check_name}": e
                    for e in result.get_asset_check_evaluations()
                    if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
                }
                outcome = {
                    "night": str(night),
                    "faulty": k < days,
                    "blocked": not result.success,
                    "by": sorted(errors),
                    "why": {label: e.description for label, e in errors.items()},
                }
                profile = errors.get("raw_transactions.night_profile")
                if profile is not None:  # what the reason names: column, value, direction, since
                    named = ("column", "value", "statistic", "direction", "since")
                    outcome["named"] = {n: profile.metadata[n].value for n in named if n in profile.metadata}
                outcomes.append(outcome)
            return outcomes
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _size(day: pd.DataFrame, subject: str) -> dict:
    """The subject's rows and share of the rows on the first replayed night (the whole day
    for a fault on the day or on a column)."""
    column, _, value = subject.partition("=")
    column = column.split(" in ")[-1]  # "channel in region=north": the region's rows
    rows = int((day[column].astype(str) == value).sum()) if value and column in day else len(day)
    return {"subject_rows": rows, "subject_share": round(rows / max(len(day), 1), 4), "day_rows": len(day)}


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
        # a blocked fault is replayed with the night after it delivered clean: the faulty day
        # must keep that night from scoring too (quarantined until re-delivered)
        outcomes = replay.run(nights, fault, then_clean=1)
        first = [o for o in outcomes if o["faulty"]]
        blocked_all = all(o["blocked"] for o in first)
        trial = {"kind": kind, "subject": subject, "magnitude": magnitude, **_size(sample, subject)}
        trials.append(trial | {"nights": outcomes})
        print(
            f"{world} {key} {magnitude}: {'BLOCKED' if blocked_all else 'scored'} {[o['why'] for o in first]}",
            flush=True,
        )
        if blocked_all:
            after = [o for o in outcomes if not o["faulty"]]
            smallest[key] = trial | {
                "blocked_by": sorted({c for o in first for c in o["by"]}),
                "named": [o.get("named") for o in first],
                "next_night_blocked": all(o["blocked"] for o in after),
                "next_night_blocked_by": sorted({c for o in after for c in o["by"]}),
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
    night on each world and size (— : not blocked at the largest magnitude tried), the checks
    that blocked it, and † where the clean night after it was not blocked too."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    columns = [f"{r['world']} {r['customers']:,}" for r in reports]
    for report, label_of_report in zip(reports, columns):
        tried: dict[tuple[str, str], list] = {}
        for t in report["trials"]:
            tried.setdefault((t["kind"], t["subject"]), []).append(t)
        found = {(s["kind"], s["subject"]): s for s in report["smallest_blocked"]}
        for (kind, subject), attempts in tried.items():
            # subjects are the world's own values: one row per kind and role, values named in the cell
            role = subject.split("=")[0]
            cell = rows.setdefault((kind, role), {})
            hit = found.get((kind, subject))
            value = subject.split("=", 1)[1] if "=" in subject else ""
            size = attempts[0]
            label = f"{value} ({size['subject_share']:.0%}, {size['subject_rows']} rows): " if value else ""
            if hit:
                mark = "" if hit["next_night_blocked"] else " †"
                text = f"{label}{_magnitude(kind, hit['magnitude'])} ({_checks(hit['blocked_by'])}){mark}"
            else:
                text = f"{label}— (up to {_magnitude(kind, max(a['magnitude'] for a in attempts))})"
            cell[label_of_report] = "; ".join(filter(None, [cell.get(label_of_report), text]))
        for trend in report["trends"]:
            cell = rows.setdefault(("trend", f"{trend['rate_per_day']:.1%}/day"), {})
            n = trend["nights_to_block"]
            cell[label_of_report] = (
                f"{n} night(s), ×{trend['amount_factor_then']:.3f} ({_checks(trend['blocked_by'])})"
                if n
                else f"not within {trend['horizon']} nights"
            )
    day_rows = [f"{r['trials'][0]['day_rows']}" if r["trials"] else "" for r in reports]
    lines = [
        "| fault | subject | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
        "| (rows of the first replayed night) | | " + " | ".join(day_rows) + " |",
    ]
    for (kind, role), cells in rows.items():
        lines.append(f"| {kind} | {role} | " + " | ".join(cells.get(c, "") for c in columns) + " |")
    return "\n".join(lines)


def _magnitude(kind: str, m: float) -> str:
    """A fault's magnitude as the table states it: a factor for ``unit``, a quantile for
    ``clip``, a share otherwise."""
    if kind == "unit":
        return f"×{m:g}"
    if kind == "clip":
        return f"q{m * 100:g}"
    return f"{m:.1%}".replace(".0%", "%")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--world", choices=[*WORLDS, "both"], default="both")
    parser.add_argument("--tiny", action="store_true", help="one world, one night, a few points (CI)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--table", type=Path, nargs="+", metavar="JSON", help="print the README's table of these results and stop"
    )
    args = parser.parse_args(argv)
    if args.table:
        reports = [r for path in args.table for r in json.loads(path.read_text())]
        print(table(reports))
        return reports
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
