"""The guards: pure statistics behind every asset check (no Dagster imports).

Each function takes frames and thresholds and returns an :class:`Outcome`; the Dagster
layer (``risk_assets/defs/checks.py``) only loads the frames and reports the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd


@dataclass
class Outcome:
    passed: bool
    severity: Literal["ERROR", "WARN"]
    summary: str
    metadata: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Offender tables, shown in the UI as markdown (first rows only)."""
