"""Where raw rows come from: a landing folder of parquet files, or the embedded world
(:mod:`risk_assets.scenario.source`, reached only as a :class:`Source`: the Dagster
layer's deployment picks it, ``risk_assets/defs/factory.py``).

Both sources hand back plain frames plus two bookkeeping columns, ``_source_file``
and ``_source_row``, so every rejected row can be traced to its file and line. A file
that cannot be read under the contract raises :class:`ContractError` naming it.
"""

from risk_assets.sources.base import Action, DayListing, Entry, Source, WriteInProgress, tag
from risk_assets.sources.landing import LandingSource

__all__ = ["Action", "DayListing", "Entry", "LandingSource", "Source", "WriteInProgress", "tag"]
