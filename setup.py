# All metadata lives in pyproject.toml; this shim keeps `pip install -e .` working on
# older tooling and is part of the project layout the team agreed on.
from setuptools import setup

setup()
