"""The code location: ``dagster dev`` (pyproject / workspace.yaml) loads ``defs`` here.

Settings come from the TOML file named by ``$RISK_ASSETS_CONFIG`` or the defaults.
"""

from risk_assets.defs.factory import build_definitions
from risk_assets.settings import load_settings

defs = build_definitions(load_settings())
