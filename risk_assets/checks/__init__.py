"""The guards: pure statistics behind every asset check (no Dagster imports).

Each guard takes plain inputs (frames, counts) and its thresholds as keyword arguments
and returns a :class:`Verdict`. The check catalogue (``risk_assets/defs/catalogue.py``)
says which inputs each check loads and which settings feed which threshold; the Dagster
layer renders a verdict into a check result once (``risk_assets/defs/render.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

Scalar = int | float | str | bool | None


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
