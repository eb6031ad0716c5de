"""The warnings this project accepts knowingly — the one list, with why. The processes that
load the code location (``definitions.py``: ``dagster dev``, the daemon, ``dg``) and the CLI
filter exactly these messages; the test run adds the same list to pytest's filters
(``risk_assets_tests/conftest.py``), so a warning not listed here is printed everywhere."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import dagster as dg


class Accepted(NamedTuple):
    category: type[Warning]
    message: str  # a regular expression matched at the start of the warning's text
    why: str


ACCEPTED: tuple[Accepted, ...] = (
    Accepted(
        dg.PreviewWarning,
        r"Specifying a partitions_def on an AssetCheckSpec",
        "partitioned asset checks (preview in Dagster 1.13) give the per-night check history the audit trail "
        "is built on (docs/dagster-notes.md)",
    ),
    Accepted(
        dg.BetaWarning,
        r"Parameter `allow_nonexistent_upstream_partitions`",
        "the first nights' look-back starts before the first partition (beta TimeWindowPartitionMapping option)",
    ),
    Accepted(
        dg.SupersessionWarning,
        r"Function `build_time_partition_freshness_checks` is superseded",
        "the missed-night alarm needs a per-partition deadline, which FreshnessPolicy does not have",
    ),
    Accepted(
        dg.SupersessionWarning,
        r"Function `build_sensor_for_freshness_checks` is superseded",
        "the sensor that evaluates the missed-night alarm above",
    ),
    Accepted(
        DeprecationWarning,
        r"Function `JobDefinition.run_request_for_partition` is deprecated",
        "raised inside Dagster's own build_schedule_from_partitioned_job (the nightly schedule), not by our code",
    ),
    Accepted(
        FutureWarning,
        r"The behavior of DataFrame concatenation with empty or all-NA entries is deprecated",
        "raised inside Pandera's failure-case formatter when one row fails several checks; the rows and their "
        "reasons are unaffected (core/contract.py)",
    ),
)


def accept_known_dagster_warnings() -> None:
    """Filter exactly the messages in :data:`ACCEPTED` for this process; every other
    warning still reaches the UI's, the daemon's and the CLI's logs."""
    for accepted in ACCEPTED:
        warnings.filterwarnings("ignore", message=accepted.message, category=accepted.category)


def filterwarnings_lines() -> list[str]:
    """:data:`ACCEPTED` as pytest ``filterwarnings`` lines."""
    return [f"ignore:{a.message}:{a.category.__module__}.{a.category.__qualname__}" for a in ACCEPTED]
