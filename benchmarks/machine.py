"""What machine a benchmark ran on (recorded with every result)."""

import json
import os
import platform
from pathlib import Path

import dagster
import duckdb
import lightgbm
import pandas


def describe() -> dict:
    memory = None
    try:
        with open("/proc/meminfo") as f:
            memory = round(int(f.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "duckdb": duckdb.__version__,
        "lightgbm": lightgbm.__version__,
        "pandas": pandas.__version__,
    }


def write_result(report: dict, out: Path | None, name: str, sizes: list[int]) -> Path:
    """Write a benchmark's report as JSON to ``out`` (default:
    ``benchmarks/results/<name>_<sizes>.json``) and say where."""
    out = out or Path(__file__).parent / "results" / f"{name}_{'_'.join(map(str, sorted(sizes)))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"written to {out}")
    return out
