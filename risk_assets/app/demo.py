"""The end-to-end demo behind ``risk-assets demo``.

Runs the real jobs through Dagster into a persistent instance: reference data, raw
history, training, then three weeks of nights in which the three production incidents
are injected on chosen nights — a skewed serving build, the product change, the
missingness burst. Blocked nights are remediated the way an operator would (roll the
build back, apply the suggested aliases, have the source re-deliver) and re-run. For
every blocked night it prints what writing its scores anyway would have cost, from the
synthetic ground truth.

Its runs are runs of the ``risk_assets`` code location, launched as the CLI launches them
(:mod:`risk_assets.app.launch`), so the UI lists them under their jobs and re-executes them.
A night's settings differ as the story goes (the skewed build, the aliases, the accepted
drift): each set is a file in the home's ``demo-settings/`` that the code location is
(re)started with; at the end ``demo.toml`` holds the remediated settings, the ones the UI
and the CLI on this home then use."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from pathlib import Path
from typing import TextIO

import dagster as dg
import numpy as np
import pandas as pd

from risk_assets.app import alerts, launch
from risk_assets.core import model as model_lib
from risk_assets.core.features.encoding import encode
from risk_assets.core.night import Night
from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import HISTORY_JOB, NIGHTLY_JOB, REFERENCE_JOB, TRAINING_JOB, range_tags
from risk_assets.defs.sensors import after_night, check_alerts
from risk_assets.scenario.settings import scenario_of
from risk_assets.settings import CONFIG_ENV_VAR, Settings, to_toml
from risk_assets.store import registry, warehouse

HISTORY_END = dt.date(2026, 7, 31)
FIRST_NIGHT = dt.date(2026, 8, 1)
SKEW_NIGHT = dt.date(2026, 8, 6)
CHANGE_NIGHT = dt.date(2026, 8, 10)
BURST = (dt.date(2026, 8, 14), dt.date(2026, 8, 16))
LATE_FROM = dt.date(2026, 8, 18)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _metadata(result: launch.LaunchedRun) -> dict[str, dict]:
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def _failed(result, severity: dg.AssetCheckSeverity) -> list[str]:
    return sorted(
        {e.check_name for e in result.get_asset_check_evaluations() if not e.passed and e.severity == severity}
    )


RUN_TIMEOUT_SECONDS = 3600.0


class Demo:
    def __init__(self, settings: Settings, instance: dg.DagsterInstance, out: TextIO):
        self.base, self.instance, self.out = settings, instance, out
        self.home = Path(instance.root_directory)
        self.aliases: dict[str, str] = {}
        self.accepted_drift: list[str] = []
        self.baseline_from: dict[str, dt.date] = {}
        self.alert_cursor: dict = {}
        self.night_alerts: list[alerts.Alert] = []
        self.check_keys = None
        self._location = contextlib.ExitStack()
        self._variant: str | None = None
        self._workspace = None

    def say(self, msg: str = "") -> None:
        print(msg, file=self.out, flush=True)

    def settings_for(self, night: dt.date, skew: bool = False, burst: bool = True) -> Settings:
        world = {
            "product_change": {"enabled": True, "date": CHANGE_NIGHT.isoformat()},
            "late_arrival": {"enabled": True, "date": LATE_FROM.isoformat(), "share": 0.05},
        }
        if burst:
            world["missingness"] = {
                "enabled": True,
                "date": BURST[0].isoformat(),
                "days": (BURST[1] - BURST[0]).days + 1,
                "share": 0.12,
                "concentrate_in": "segment:smb",
            }
        override = (
            {
                "by": "demo operator",
                "reason": "product change of 2026-08-10 moved new products online and categories' shares for good; "
                "accepted until the retrain",
                "accept_drift": list(self.accepted_drift),
                "profile_baseline_from": dict(self.baseline_from),
            }
            if self.accepted_drift or self.baseline_from
            else {}
        )
        return self.base.with_overrides(
            scenario={"world": world, "serving_skew": {"end_shift_hours": -3.0 if skew else 0.0}},
            mapping={"aliases": dict(self.aliases)},
            override=override,
        )

    def _code_location(self, settings: Settings):
        """The code location serving ``settings`` (restarted when they change)."""
        version = settings.version()
        if version != self._variant:
            self._location.close()
            path = self.home / "demo-settings" / f"{version}.toml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(
                "# one night's settings of `risk-assets demo` (its runs were launched with them)\n\n"
                + to_toml(settings)
            )
            os.environ[CONFIG_ENV_VAR] = str(path)  # what the code server (and the runs it launches) reads
            self._workspace = self._location.enter_context(launch.code_location(self.instance))
            self._variant = version
        return self._workspace

    def close(self) -> None:
        self._location.close()

    def run(
        self,
        settings: Settings,
        job: str,
        partition_key: str | None = None,
        tags: dict | None = None,
        run_config: dict | None = None,
        asset_selection: list[dg.AssetKey] | None = None,
    ) -> launch.LaunchedRun:
        if self.check_keys is None:
            graph = build_definitions(settings).resolve_asset_graph()
            self.check_keys = sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())
        tags = {**(tags or {}), **({"dagster/partition": partition_key} if partition_key else {})}
        workspace = self._code_location(settings)
        run_id = launch.launch(workspace, self.instance, job, tags, run_config or QUIET, asset_selection)
        return launch.wait(self.instance, run_id, RUN_TIMEOUT_SECONDS)

    def final_settings(self) -> Settings:
        """Where the story ends: the build rolled back, the source's re-delivery in, the
        aliases applied, the drift accepted and the category baseline restarted — what the UI and
        the CLI use afterwards."""
        return self.settings_for(FIRST_NIGHT, skew=False, burst=False)

    def night(self, night: dt.date, settings: Settings) -> launch.LaunchedRun:
        """The nightly run, then what production's run-status sensors do with it (tag a
        blocked run with its blocking checks, alert, write and link the night's report)."""
        read_at = Night.of(night, self.base.calendar).morning_after(dt.time(2, 30)).isoformat()
        result = self.run(
            settings,
            NIGHTLY_JOB,
            partition_key=night.isoformat(),
            run_config={**QUIET, "ops": {"raw_transactions": {"config": {"read_at": read_at}}}},
        )
        failure = None if result.success else "scores not written"
        self.night_alerts += after_night(self.instance, self.instance.get_run_by_id(result.run_id), settings, failure)
        return result

    def new_alerts(self) -> list[alerts.Alert]:
        """What the alert sensors raise for this run: check_failed per failed check (the
        check-alert sensor) and night_blocked per blocked night (the run-failure sensor)."""
        found, self.alert_cursor = check_alerts(self.instance, self.check_keys, self.alert_cursor, self.base)
        new = (
            alerts.record(
                self.base.alerts.duckdb_path,
                found,
                self.base.alerts.webhook_url,
                self.base.alerts.webhook_timeout_seconds,
            )
            + self.night_alerts
        )
        self.night_alerts = []
        return new

    def line(self, night: dt.date, result, label: str = "") -> None:
        meta = _metadata(result)
        raw, scores = meta.get("raw_transactions", {}), meta.get("risk_scores", {})
        errors, warns = _failed(result, dg.AssetCheckSeverity.ERROR), _failed(result, dg.AssetCheckSeverity.WARN)
        status = f"scored {scores['scored_customers']:>6}" if "risk_scores" in meta else "BLOCKED     "
        new = self.new_alerts()
        self.say(
            f"{night}{label:<9} {raw.get('received', '-'):>6} rows  {status}  "
            f"alerts {len(new):>2}  "
            + (f"ERROR: {', '.join(errors)}" if errors else "all ERROR checks passed")
            + (f"  WARN: {', '.join(warns)}" if warns else "")
        )

    # ------------------------------------------------------------------ cost of a bad night
    def bad_scores(self, night: dt.date) -> pd.Series | None:
        """The scores the blocked night would have written (from its stored features)."""
        with warehouse.connect(self.base.warehouse.duckdb_path) as conn:
            deployed = registry.deployed_model(conn)
            served = warehouse.read_partition(conn, "serving_features", night, required=False)
        if served.empty or deployed is None:
            return None
        booster, card = model_lib.load(Path(deployed.path))
        encoded, _ = encode(served.drop(columns=["partition"]), card.enc)
        return pd.Series(model_lib.predict(booster, encoded, card), index=encoded["customer_id"])

    def cost(self, night: dt.date, bad: pd.Series | None) -> str:
        n = Night.of(night, self.base.calendar)
        with warehouse.connect(self.base.warehouse.duckdb_path) as conn:
            clean = warehouse.scores(conn, night)
            truth = warehouse.irregular_customers(conn, n.as_of, n.label_end)
        if bad is None or clean.empty:
            return "  (no counterfactual: nothing was computed for this night)"
        clean = clean.set_index("customer_id")["score"]
        budget = self.base.scoring.review_budget
        k = int(np.ceil(budget * len(clean)))
        flagged_clean = set(clean.nlargest(k).index)
        flagged_bad = set(bad.nlargest(int(np.ceil(budget * len(bad)))).index)
        p_clean = len(flagged_clean & truth) / max(len(flagged_clean), 1)
        p_bad = len(flagged_bad & truth) / max(len(flagged_bad), 1)
        flips = len(flagged_clean ^ flagged_bad)
        return (
            f"  cost had it been written: {flips} customers' review flag flips; precision in the top "
            f"{budget:.0%} {p_bad:.3f} instead of {p_clean:.3f}"
        )

    # ------------------------------------------------------------------ the story
    def main(self, nights: int) -> int:
        s = self.base
        self.say(
            f"risk_assets demo — {scenario_of(s).world.n_customers:,} customers, warehouse {s.warehouse.duckdb_path}, "
            f"DAGSTER_HOME {self.instance.root_directory}"
        )
        t0 = time.perf_counter()
        if not self.run(s, REFERENCE_JOB).success:
            return 1
        history = self.run(s, HISTORY_JOB, tags=range_tags(s.calendar.partitions_start, HISTORY_END))
        self.say(
            f"[1/3] reference data and raw history {s.calendar.partitions_start}..{HISTORY_END}: "
            f"{'ok' if history.success else 'FAILED'} ({time.perf_counter() - t0:.0f}s)"
        )
        if not history.success:
            return 1
        t0 = time.perf_counter()
        trained = self.run(s, TRAINING_JOB)
        if not trained.success:
            why = next(
                (
                    e.step_failure_data.user_failure_data.description
                    for e in trained.all_events
                    if e.event_type_value == "STEP_FAILURE"
                    and e.step_failure_data
                    and e.step_failure_data.user_failure_data
                ),
                "see the training run in the UI",
            )
            self.say(f"[2/3] training failed: {why}")
            return 1
        m = _metadata(trained)["risk_model"]
        self.say(
            f"[2/3] model {m['model_version']} trained and deployed ({time.perf_counter() - t0:.0f}s): "
            f"validation ROC AUC {m['validation_roc_auc']:.3f}, PR AUC {m['validation_pr_auc']:.3f}, "
            f"precision in top {m['review_budget']:.0%} {m['validation_precision_at_budget']:.3f} "
            f"(base rate {m['validation_base_rate']:.3f})"
        )
        self.say(
            f"[3/3] {nights} nights from {FIRST_NIGHT}; incidents: skewed serving build on {SKEW_NIGHT}, "
            f"product change from {CHANGE_NIGHT}, missingness burst {BURST[0]}..{BURST[1]}, "
            f"5% of each day arriving late from {LATE_FROM}"
        )
        self.say()
        blocked_at_end = 0
        for i in range(nights):
            night = FIRST_NIGHT + dt.timedelta(days=i)
            skew = night == SKEW_NIGHT
            result = self.night(night, self.settings_for(night, skew=skew))
            self.line(night, result)
            if result.success:
                continue
            bad = self.bad_scores(night)
            fixed = self.remediate(night, result)
            for _ in range(3):  # a night can have more than one cause: remediate the next one
                if fixed is None:
                    break
                self.line(night, fixed, label=" re-run")
                if fixed.success:
                    break
                fixed = self.remediate(night, fixed)
            if fixed is None or not fixed.success:
                blocked_at_end += 1
                continue
            self.say(self.cost(night, bad))
        self.say()
        stored = alerts.read(s.alerts.duckdb_path)
        self.say(
            f"alerts table {s.alerts.duckdb_path}: {len(stored)} alert(s) "
            f"({', '.join(f'{k}: {v}' for k, v in stored['kind'].value_counts().items()) or 'none'})"
        )
        self.say(f"reports:      {s.report.dir}/night-<D>.html (one per night, linked from risk_scores[D] in the UI)")
        self.say("read it:      .venv/bin/risk-assets status --last 21 | alerts | audit --check imputation_ceiling")
        self.say(
            "see it in the UI:  .venv/bin/risk-assets ui    (dagster dev on 127.0.0.1:3000 with this instance; "
            "its schedules and freshness sensor are stopped: the demo's nights are in the past)"
        )
        return 1 if blocked_at_end else 0

    def remediate(self, night: dt.date, result) -> launch.LaunchedRun | None:
        failed = _failed(result, dg.AssetCheckSeverity.ERROR)
        if "feature_parity" in failed:
            self.say("  remediation: roll the serving build back (windows end at as_of again), re-run the night")
            return self.night(night, self.settings_for(night))
        if "category_coverage" in failed:
            evaluation = next(
                e for e in result.get_asset_check_evaluations() if e.check_name == "category_coverage" and not e.passed
            )
            self.aliases.update(evaluation.metadata["suggested_aliases"].value)
            rows = [r.data for r in evaluation.metadata["suggestions"].value.records]
            reviewed = ", ".join(
                f"{r['category']} -> {r['alias_to']} ({r['kind']}, {r['confidence'].split(':')[0]})" for r in rows
            )
            self.say(
                f"  remediation: apply the suggested aliases as a new mapping version — an operator "
                f"would review the weak ones first: {reviewed}"
            )
            settings = self.settings_for(night)
            self.run(settings, TRAINING_JOB, asset_selection=[dg.AssetKey("category_mapping")])
            return self.night(night, settings)
        if {"imputation_ceiling", "missingness_pattern"} & set(failed):
            self.say("  remediation: the source re-delivers the days with the missing channel; re-ingest and re-run")
            settings = self.settings_for(night, burst=False)
            first = max(BURST[0], Night.of(night, self.base.calendar).days_back(29))
            self.run(settings, HISTORY_JOB, tags=range_tags(first, night))
            return self.night(night, settings)
        if failed == ["daily_drift"]:
            evaluation = next(
                e for e in result.get_asset_check_evaluations() if e.check_name == "daily_drift" and not e.passed
            )
            drifting = [
                r.data["statistic"]
                for r in evaluation.metadata["statistics"].value.records
                if r.data["cusum"] > evaluation.metadata["thresholds"].value["h_error"]
            ]
            self.accepted_drift += [d for d in drifting if d not in self.accepted_drift]
            self.say(
                f"  remediation: {evaluation.description} — the product change moved the new products' "
                f"traffic there; an operator accepts it deliberately until a retrain (override with name and "
                f"reason, in the audit trail) and re-runs"
            )
            return self.night(night, self.settings_for(night, burst=not BURST[0] <= night <= BURST[1]))
        if failed == ["night_profile"] and night >= CHANGE_NIGHT and "category" not in self.baseline_from:
            evaluation = next(
                e for e in result.get_asset_check_evaluations() if e.check_name == "night_profile" and not e.passed
            )
            if evaluation.metadata.get("column") is not None and evaluation.metadata["column"].value == "category":
                self.baseline_from["category"] = CHANGE_NIGHT
                self.say(
                    f"  remediation: {evaluation.description.split(' — ')[0]} — the product change moved "
                    f"categories' shares for good (new products drawn from old ones, a merge the mapping "
                    f"absorbed); an operator restarts the category baseline from {CHANGE_NIGHT} "
                    f"(override.profile_baseline_from, with name and reason) and re-runs"
                )
                return self.night(night, self.settings_for(night, burst=not BURST[0] <= night <= BURST[1]))
        self.say(f"  no automatic remediation for {', '.join(failed)}: the night stays blocked")
        return None


def run_demo(settings: Settings, instance: dg.DagsterInstance, nights: int, out: TextIO) -> int:
    """The demo on ``instance``; afterwards its home's ``demo.toml`` holds the remediated
    settings and ``$RISK_ASSETS_CONFIG`` is what it was."""
    before = os.environ.get(CONFIG_ENV_VAR)
    demo = Demo(settings, instance, out)
    try:
        return demo.main(nights)
    finally:
        demo.close()
        write_demo_settings(demo.home, demo.final_settings())
        if before is None:
            os.environ.pop(CONFIG_ENV_VAR, None)
        else:
            os.environ[CONFIG_ENV_VAR] = before


def write_demo_settings(home: Path, settings: Settings) -> Path:
    """The demo's settings, kept in its instance folder (``demo.toml``, every key) so the
    UI and the CLI on that instance read the same warehouse, models, alerts and reports
    (absolute paths) — with the clock-driven automation stopped: the demo's nights are in
    the past, so the real-calendar schedule would run "yesterday" and the freshness check
    would fail at once."""
    absolute = settings.model_copy(
        update={
            "warehouse": settings.warehouse.model_copy(
                update={"duckdb_path": settings.warehouse.duckdb_path.resolve()}
            ),
            "scoring": settings.scoring.model_copy(update={"models_dir": settings.scoring.models_dir.resolve()}),
            "alerts": settings.alerts.model_copy(update={"duckdb_path": settings.alerts.duckdb_path.resolve()}),
            "report": settings.report.model_copy(update={"dir": settings.report.dir.resolve()}),
            "engine": settings.engine.model_copy(update={"lake_path": settings.engine.lake_path.resolve()}),
            "automation": settings.automation.model_copy(update={"clock_running": False}),
        }
    )
    path = home / "demo.toml"
    path.write_text(
        "# written by `risk-assets demo`: the settings of this demo instance (clock-driven automation\n"
        "# stopped: start the schedules in the UI's Automation page if you want them)\n\n" + to_toml(absolute)
    )
    return path
