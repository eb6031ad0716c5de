"""The two worlds as a user would deploy them: exported as landing folders and configured
the way their sources need (names for the share features, business timezone, public
holidays). Used by the incident and false-alarm tests and ``benchmarks.false_alarms``:
every guard is held to the same thresholds on both.

* ``embedded`` — the default world;
* ``alpine`` — deliberately different: its own category, channel, segment and region
  names, Sunday closures, paydays at month start and end, Austrian public holidays, a
  customer base that keeps growing, and Europe/Vienna as business timezone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from risk_assets.settings import Settings

WORLDS: dict[str, dict] = {
    "embedded": {"scenario": {"world": {"profile": "embedded"}}},
    "alpine": {
        "scenario": {"world": {"profile": "alpine"}},
        "calendar": {"timezone": "Europe/Vienna", "holidays_country": "AT"},
        "features": {"cash_categories": ["atm_cash"], "transfer_categories": ["sepa_transfer"],
                     "gambling_categories": ["sports_betting"],
                     "online_channels": ["ecommerce", "mobile_wallet", "sepa"]},
    },
}


def landing_settings(folder: Path, world: str, customers: int, training: dict, landing: Path | None = None,
                     **sections: dict) -> Settings:
    """Settings of ``world`` reading the landing folder ``landing`` (default
    ``folder/landing``), with its warehouse, models and alerts in ``folder``."""
    merged = {k: {kk: (dict(vv) if isinstance(vv, dict) else vv) for kk, vv in v.items()}
              for k, v in WORLDS[world].items()}
    merged["scenario"]["world"]["n_customers"] = customers
    for key, value in sections.items():
        merged[key] = {**merged.get(key, {}), **value}
    return Settings().with_overrides(
        warehouse={"duckdb_path": str(folder / "warehouse.duckdb")},
        scoring={"models_dir": str(folder / "models")},
        alerts={"duckdb_path": str(folder / "alerts.duckdb")},
        source={"kind": "landing", "landing_dir": str(landing or folder / "landing")},
        training={**training, **merged.pop("training", {})},
        **merged,
    )


def build_landing_world(settings: Settings, instance, history: tuple[dt.date, dt.date], last_day: dt.date,
                        quiet: dict | None = None, say: Callable[[str], None] = lambda _: None) -> None:
    """Export the world's landing files up to ``last_day``, then load reference data and
    the raw ``history`` and train (and deploy) a model, all through the landing source."""
    from risk_assets.defs.factory import build_definitions
    from risk_assets.defs.jobs import HISTORY_JOB, REFERENCE_JOB, TRAINING_JOB, range_tags
    from risk_assets.scenario.source import export_landing

    first, history_end = history
    days = [first + dt.timedelta(days=i) for i in range((last_day - first).days + 1)]
    export_landing(settings, Path(settings.source.landing_dir), days)
    defs = build_definitions(settings)
    for job, tags in ((REFERENCE_JOB, None), (HISTORY_JOB, range_tags(first, history_end)), (TRAINING_JOB, None)):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=quiet, tags=tags,
                                                              raise_on_error=False)
        say(f"{settings.scenario.world.profile}: {job} {'ok' if result.success else 'FAILED'}")
        if not result.success:
            raise RuntimeError(f"{settings.scenario.world.profile}: {job} failed")
