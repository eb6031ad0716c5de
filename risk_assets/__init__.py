"""risk_assets: a nightly LightGBM risk-scoring pipeline that refuses to publish
scores when its inputs no longer resemble the world its model learned from."""

__version__ = "0.1.0"
