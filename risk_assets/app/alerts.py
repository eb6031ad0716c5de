"""Alerts: a row in the `alerts` table, a log line, and optionally a webhook POST.

Pure Python and DuckDB; the sensors in ``risk_assets/defs/sensors.py`` decide *when*.
Every alert names the partition, the check (or the run), the reason and a run link.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from risk_assets.store import alerts as store

log = logging.getLogger("risk_assets.app.alerts")


@dataclass
class Alert:
    kind: str  # check_failed | night_blocked | run_failed | did_not_evaluate | landing_layout
    reason: str
    partition: str | None = None
    asset: str | None = None
    check_name: str | None = None
    severity: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    created_at: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now("UTC").tz_localize(None))

    @property
    def alert_id(self) -> str:
        """Stable id: the same event never alerts twice (sensor retries are idempotent)."""
        key = "|".join(str(x) for x in (self.kind, self.partition, self.asset, self.check_name, self.run_id))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def payload(self) -> dict:
        data = asdict(self) | {"alert_id": self.alert_id}
        data["created_at"] = self.created_at.isoformat()
        return data


def post_webhook(url: str, alert: Alert, timeout: float) -> str:
    request = urllib.request.Request(
        url, data=json.dumps(alert.payload()).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"HTTP {response.status}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        # The alert is still stored and logged; the failed delivery is recorded with it.
        log.error("webhook delivery failed for alert %s: %s", alert.alert_id, exc)
        return f"failed: {exc}"


def record(
    path: str | Path, alerts: list[Alert], webhook_url: str | None = None, webhook_timeout: float = 5.0
) -> list[Alert]:
    """Store new alerts (ids already stored are skipped), log them, post them. Returns the new ones."""
    if not alerts:
        return []
    with store.connect(path) as conn:
        known = store.known_ids(conn, [a.alert_id for a in alerts])
        fresh = [a for a in {a.alert_id: a for a in alerts}.values() if a.alert_id not in known]
        rows = []
        for alert in fresh:
            log.warning(
                "ALERT %s %s %s/%s: %s (run %s)",
                alert.kind,
                alert.partition,
                alert.asset,
                alert.check_name,
                alert.reason,
                alert.run_url or alert.run_id,
            )
            status = post_webhook(webhook_url, alert, webhook_timeout) if webhook_url else None
            rows.append(alert.payload() | {"created_at": alert.created_at, "webhook_status": status})
        if rows:
            store.insert(conn, pd.DataFrame(rows))
    return fresh


def read(path: str | Path) -> pd.DataFrame:
    """Every stored alert, oldest first."""
    return store.read(path)
