"""Dagster warnings this project accepts knowingly, filtered where the code location loads."""

import warnings

import dagster as dg


def accept_known_dagster_warnings() -> None:
    """Dagster 1.13 warns, at every load of this code location, about four APIs the
    project uses on purpose (docs/dagster-notes.md says why each is needed):

    * partitioned asset checks (``partitions_def`` on a check, preview) — the per-night
      check history the audit trail is built on;
    * ``TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)`` (beta) —
      the first nights' look-back starts before the first partition;
    * ``build_time_partition_freshness_checks`` and ``build_sensor_for_freshness_checks``
      (superseded by ``FreshnessPolicy``, which has no per-partition deadline) — the
      missed-night alarm.

    Only those messages are filtered, here where the code location loads, so the UI's and
    the CLI's logs keep every other warning."""
    accepted = [
        (dg.PreviewWarning, r"Specifying a partitions_def on an AssetCheckSpec"),
        (dg.BetaWarning, r"Parameter `allow_nonexistent_upstream_partitions`"),
        (dg.SupersessionWarning, r"Function `build_time_partition_freshness_checks` is superseded"),
        (dg.SupersessionWarning, r"Function `build_sensor_for_freshness_checks` is superseded"),
    ]
    for category, message in accepted:
        warnings.filterwarnings("ignore", message=message, category=category)
