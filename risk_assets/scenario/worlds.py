"""The two worlds as a user would deploy them: exported as landing folders and configured
the way their sources need (names for the share features, business timezone, public
holidays). Used by the incident and false-alarm tests and ``benchmarks.false_alarms``:
every guard is held to the same thresholds on both
(:func:`risk_assets.app.operations.build_landing_world` loads and trains one).

* ``embedded`` — the default world;
* ``alpine`` — deliberately different: its own category, channel, segment and region
  names, Sunday closures, paydays at month start and end, Austrian public holidays, a
  customer base that keeps growing, and Europe/Vienna as business timezone.
"""

from __future__ import annotations

from pathlib import Path

from risk_assets.settings import Settings

WORLDS: dict[str, dict] = {
    "embedded": {"scenario": {"world": {"profile": "embedded"}}},
    "alpine": {
        "scenario": {"world": {"profile": "alpine"}},
        "calendar": {"timezone": "Europe/Vienna", "holidays_country": "AT"},
        "features": {
            "cash_categories": ["atm_cash"],
            "transfer_categories": ["sepa_transfer"],
            "gambling_categories": ["sports_betting"],
            "online_channels": ["ecommerce", "mobile_wallet", "sepa"],
        },
    },
}


def landing_settings(
    folder: Path, world: str, customers: int, training: dict, landing: Path | None = None, **sections: dict
) -> Settings:
    """Settings of ``world`` reading the landing folder ``landing`` (default
    ``folder/landing``), with its warehouse, models and alerts in ``folder``."""
    merged = {
        k: {kk: (dict(vv) if isinstance(vv, dict) else vv) for kk, vv in v.items()} for k, v in WORLDS[world].items()
    }
    merged["scenario"]["world"]["n_customers"] = customers
    for key, value in sections.items():
        merged[key] = {**merged.get(key, {}), **value}
    places = {
        "warehouse": {"duckdb_path": str(folder / "warehouse.duckdb")},
        "scoring": {"models_dir": str(folder / "models")},
        "alerts": {"duckdb_path": str(folder / "alerts.duckdb")},
        "source": {"kind": "landing", "landing_dir": str(landing or folder / "landing")},
    }
    for key, value in places.items():
        merged[key] = {**value, **merged.get(key, {})}
    return Settings().with_overrides(training={**training, **merged.pop("training", {})}, **merged)
