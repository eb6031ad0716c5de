"""The README's performance table, rendered from a result of :mod:`benchmarks.run`.

python -m benchmarks.report benchmarks/results/run_75000_150000_300000.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _s(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"


def render(report: dict) -> str:
    sizes = report["sizes"]
    keys = sorted(sizes, key=int)
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
        f"dagster {m['dagster']}, duckdb {m['duckdb']}, lightgbm {m['lightgbm']}, pandas {m['pandas']}; "
        f"medians of {report['repeats']} runs; night {report['night']}.",
        "",
        "| customers | " + " | ".join(f"{int(k):,}" for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]

    def row(label: str, get) -> None:
        lines.append(f"| {label} | " + " | ".join(get(sizes[k]) for k in keys) + " |")

    row("transactions in the warehouse", lambda s: f"{s['transactions_in_warehouse']:,}")
    row(
        "serving features, one night (to pandas)",
        lambda s: f"{_s(s['serving_features']['median_s'])} ({s['serving_features']['rows']:,} rows)",
    )
    if all("serving_features_written" in sizes[k] for k in keys):
        row(
            "serving features, one night (written in the warehouse, as the asset does)",
            lambda s: _s(s["serving_features_written"]["median_s"]),
        )
    row(
        "training features + labels, production spine",
        lambda s: f"{_s(s['training_features']['median_s'])} ({s['training_features']['rows']:,} rows)",
    )
    row("all asset checks of a night", lambda s: _s(s["all_checks"]["median_s"]))
    row("LightGBM scoring of a night", lambda s: _s(s["scoring"]["median_s"]))
    row("nightly partition, with checks", lambda s: _s(s["nightly_with_checks"]["median_s"]))
    row("nightly partition, without checks", lambda s: _s(s["nightly_without_checks"]["median_s"]))
    row("checks' share of the nightly run", lambda s: f"{s['checks_share_of_nightly']:.0%}")
    row("peak RSS of the nightly run", lambda s: f"{s['nightly_with_checks']['peak_rss_mb'] / 1024:.2f} GB")
    row(
        "peak RSS of the benchmark after building the training rows",
        lambda s: f"{s['training_features']['process_peak_rss_mb'] / 1024:.1f} GB",
    )
    side = report.get("side_by_side")
    if side:
        f, d = side["features"], side["drift"]
        lines += ["", f"Side by side at {int(side['customers']):,} customers:", ""]
        lines.append(
            f"* window features (count, sum, max over 7/14/30 days): our serving SQL "
            f"{_s(f['ours_serving_sql']['median_s'])} for all 24 features vs pandas groupby-rolling "
            f"{_s(f['pandas_groupby_rolling']['median_s'])} for 9 of them "
            f"({f['pandas_over_ours']}× slower; values agree: {f['values_agree']})"
        )
        if isinstance(d.get("evidently"), dict):
            lines.append(
                f"* drift: our `drift_bounds` {_s(d['ours_drift_bounds']['median_s'])} vs Evidently "
                f"{d['evidently']['version']} `DataDriftPreset` {_s(d['evidently']['median_s'])} on the same "
                f"{d['features']} features, {d['current_rows']:,} rows against {d['reference_rows']:,} "
                f"({d['evidently_over_ours']}×)"
            )
        else:
            lines.append(f"* drift vs Evidently: {d.get('evidently')}")
    lines += ["", "| target (issue 15) | measured | met |", "|---|---|---|"]
    for key, t in report["targets"].items():
        lines.append(f"| `{key}` {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text())))
