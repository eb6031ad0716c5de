"""Where the time of one nightly run goes: py-spy samples of :mod:`benchmarks.nightly_once`,
summarised by library and by step.

    python -m benchmarks.profile_night --folder WORLD_FOLDER --customers 300000 --night 2026-08-01

``WORLD_FOLDER`` is a world built by ``python -m benchmarks.run --workdir DIR`` (e.g.
``DIR/customers_300000``). Needs py-spy (``pip install -e '.[bench]'``); samples at 250 Hz.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

STEP = re.compile(r"^([\w.<>]+) \(risk_assets/defs/(?:checks|raw|features|model)\.py")
LIBRARIES = [  # innermost Python frame's location -> bucket
    ("duckdb", "duckdb"),
    ("pandera", "pandera"),
    ("lightgbm", "lightgbm"),
    ("sqlalchemy", "dagster event log (sqlite)"),
    ("sqlite", "dagster event log (sqlite)"),
    ("pandas", "pandas / numpy / arrow"),
    ("numpy", "pandas / numpy / arrow"),
    ("pyarrow", "pandas / numpy / arrow"),
    ("risk_assets", "risk_assets"),
    ("dagster", "dagster"),
]


def summarise(raw: str) -> dict:
    libraries, steps, functions, total = collections.Counter(), collections.Counter(), collections.Counter(), 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        if not any("execute_in_process (" in f for f in frames):
            continue  # imports and set-up outside the timed run
        total += int(count)
        bucket = "other"
        for frame in reversed(frames):
            where = frame[frame.find("(") + 1 :]
            bucket = next(
                (name for prefix, name in LIBRARIES if where.startswith(prefix) or f"/{prefix}/" in where), None
            )
            if bucket:
                break
        libraries[bucket or "other"] += int(count)
        step = next((m.group(1).rsplit(".", 1)[-1] for f in frames if (m := STEP.match(f))), "(dagster, between steps)")
        steps[step] += int(count)
        ours = [f for f in frames if "risk_assets/" in f and "risk_assets/defs/" not in f]
        if ours:  # the project's innermost function below the Dagster layer, and what it called
            callee = next(
                (
                    name
                    for prefix, name in LIBRARIES
                    for f in frames[frames.index(ours[-1]) + 1 :][:1]
                    if f"/{prefix}/" in f
                ),
                "itself",
            )
            functions[f"{ours[-1].split(' (')[0]} -> {callee}"] += int(count)
    share = lambda c: {k: round(v / max(total, 1), 3) for k, v in c.most_common()}  # noqa: E731
    top = collections.Counter(dict(functions.most_common(25)))
    return {"samples": total, "by_library": share(libraries), "by_step": share(steps), "by_function": share(top)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--night", required=True)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "samples.txt"
        subprocess.run(
            [
                "py-spy",
                "record",
                "-r",
                "250",
                "-f",
                "raw",
                "-o",
                str(out),
                "--",
                sys.executable,
                "-m",
                "benchmarks.nightly_once",
                "--folder",
                str(args.folder),
                "--customers",
                str(args.customers),
                "--night",
                args.night,
            ],
            check=True,
            capture_output=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        result = summarise(out.read_text())
    from benchmarks.machine import describe

    result |= {"customers": args.customers, "night": args.night, "machine": describe()}
    target = Path(__file__).parent / "results" / f"profile_night_{args.customers}.json"
    target.write_text(json.dumps(result, indent=1))
    for section in ("by_library", "by_step", "by_function"):
        print(section)
        for key, value in result[section].items():
            print(f"  {key:40s} {value:6.1%}")
    print(f"written to {target}")
    return result


if __name__ == "__main__":
    main()
