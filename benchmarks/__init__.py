"""Benchmarks: production-size measurements, never part of the timed test suite."""
