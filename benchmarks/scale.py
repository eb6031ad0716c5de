"""One table of what one machine does at each size: the history load, the training job and
a night, from the committed results of the three benchmarks that measure them.

    python -m benchmarks.scale benchmarks/results/history_load_75000_300000.json \\
        benchmarks/results/history_load_1000000.json benchmarks/results/training_75000.json ...

Each file is a result of ``benchmarks.history_load``, ``benchmarks.training`` or
``benchmarks.run`` (told apart by their content); for a size measured twice, the later file on
the command line wins. Prints the Markdown table the README quotes. Nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _gb(mib: float | None) -> str:
    return "–" if mib is None else f"{mib / 1024:.2f} GiB"


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.1f} s" if seconds < 100 else f"{seconds:,.0f} s"


def collect(paths: list[Path]) -> dict[int, dict]:
    """Size -> {"history": …, "training": …, "night": …} from the result files."""
    sizes: dict[int, dict] = {}
    for path in paths:
        report = json.loads(path.read_text())
        for key, size in report["sizes"].items():
            into = sizes.setdefault(int(key), {})
            if "load" in size:
                into["history"] = size["load"] | {"file": path.name}
            if "training_job" in size:
                into["training"] = size["training_job"] | {"file": path.name}
            if "nightly_with_checks" in size:
                into["night"] = size | {"file": path.name}
    return dict(sorted(sizes.items()))


def table(sizes: dict[int, dict]) -> str:
    columns = list(sizes)
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, part: str, cell) -> None:
        rows.append((label, [cell(sizes[c][part]) if part in sizes[c] else "–" for c in columns]))

    row("history load: transactions", "history", lambda h: f"{h['received']:,} ({h['days']} days)")
    row("history load: time (reference + raw job)", "history", lambda h: _s(sum(h["seconds"].values())))
    row("history load: rows per second", "history", lambda h: f"{h['rows_per_s']:,}")
    row("history load: peak RSS", "history", lambda h: _gb(h["peak_rss_mb"]))
    row(
        "training job: rows (validation)",
        "training",
        lambda t: f"{t['training_rows'] / 1e6:.2f}M ({t['validation_rows'] / 1e6:.2f}M)",
    )
    row(
        "training job: time (features, model)",
        "training",
        lambda t: (
            f"{_s(t['seconds'])} ({_s(t['steps_s'].get('training_features'))}, {_s(t['steps_s'].get('risk_model'))})"
        ),
    )
    row("training job: peak RSS", "training", lambda t: _gb(t["peak_rss_mb"]))
    row("training job: validation ROC AUC", "training", lambda t: f"{t['validation']['roc_auc']:.4f}")
    row("night: customers scored", "night", lambda n: f"{n['serving_features']['rows']:,}")
    row("night: nightly partition with checks", "night", lambda n: _s(n["nightly_with_checks"]["median_s"]))
    row("night: all asset checks", "night", lambda n: _s(n["all_checks"]["median_s"]))
    row("night: peak RSS", "night", lambda n: _gb(n["nightly_with_checks"].get("peak_rss_mb")))
    head = "| customers | " + " | ".join(f"{c:,}" for c in columns) + " |"
    lines = [head, "|---|" + "---|" * len(columns)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    sources = sorted({p["file"] for s in sizes.values() for p in s.values()})
    return "\n".join(lines) + "\n\nFrom: " + ", ".join(f"`benchmarks/results/{f}`" for f in sources)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args(argv)
    out = table(collect(args.results))
    print(out)
    return out


if __name__ == "__main__":
    main()
