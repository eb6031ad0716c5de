"""The code location: ``dagster dev`` / ``dg dev`` (pyproject) and ``workspace.yaml`` load
``defs`` here.

Settings come from the TOML file named by ``$RISK_ASSETS_CONFIG`` or the defaults.
"""

from risk_assets.defs.known_warnings import accept_known_dagster_warnings

accept_known_dagster_warnings()

from risk_assets.defs.factory import build_definitions  # noqa: E402  (after the filters: building the definitions warns)
from risk_assets.settings import load_settings  # noqa: E402

defs = build_definitions(load_settings())
