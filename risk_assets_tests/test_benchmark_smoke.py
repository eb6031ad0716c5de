"""The performance benchmark keeps working (issue 6): run at a tiny size, never timed.

Asserts only that every measurement was taken and that the side-by-side comparison
agrees on values — speed is reported by ``python -m benchmarks.run``, not tested."""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.report import render

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = [
    "serving_features",
    "training_features",
    "all_checks",
    "scoring",
    "nightly_with_checks",
    "nightly_without_checks",
    "drift_check_only",
]


def benchmark(module: str, *args: str, timeout: int = 600) -> str:
    """``python -m benchmarks.<module> ARGS`` from the repository root, as a user runs it;
    its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_benchmark_runs_at_a_tiny_size_and_writes_its_json(tmp_path):
    out = tmp_path / "tiny.json"
    benchmark("run", "--tiny", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] and report["machine"]["dagster"]
    [size] = report["sizes"].values()
    for name in MEASUREMENTS:
        assert size[name]["median_s"] > 0, name
    assert size["nightly_with_checks"]["success"] and size["nightly_without_checks"]["success"]
    assert size["serving_features"]["rows"] == size["scoring"]["rows"] > 0
    assert size["training_features"]["rows"] > size["serving_features"]["rows"]
    # the checks really were left out of the run without them
    assert not any(k.startswith("encoded_features_") for k in size["nightly_without_checks"]["steps_median_s"])
    features = report["side_by_side"]["features"]
    assert features["values_agree"] and features["customers_compared"] > 0
    evidently = report["side_by_side"]["drift"]["evidently"]
    assert isinstance(evidently, dict) or evidently.startswith("skipped: evidently is not installed")
    assert set(report["targets"]) >= {
        "serving_features_s",
        "training_features_s",
        "all_checks_s",
        "nightly_s",
        "checks_share_of_nightly",
        "peak_rss_gb",
        "training_peak_rss_gb",
    }
    # the serving partition and the training rows as the assets write them
    assert size["serving_features_written"]["median_s"] > 0
    assert "inside the warehouse" in size["serving_features_written"]["what"]
    table = render(report)
    assert "serving features, one night (written in the warehouse" in table and "| target (issue 15) |" in table


def test_the_profile_thresholds_are_the_committed_calibration_and_meet_the_budget():
    """The settings' night-profile thresholds are the ones ``benchmarks.calibration`` measured
    (re-run it when they change) and sit at or above what the budget implies on the
    calibration days of both worlds; on the held-out days they block no more clean nights
    than the budget allows — at 4,000 and 20,000 customers on both worlds, and at production
    size (75k, 300k, 1M: ``--warehouse`` on the history-load benchmark's worlds)."""
    from risk_assets.settings import Settings

    checks = Settings().checks
    results = ROOT / "benchmarks" / "results"
    reports = json.loads((results / "calibration_4000.json").read_text())
    assert {r["world"] for r in reports} == {"embedded", "alpine"}
    larger = json.loads((results / "calibration_20000.json").read_text())
    assert {r["world"] for r in larger} == {"embedded", "alpine"}
    reports += larger
    for size in (75_000, 300_000, 1_000_000):
        [report] = json.loads((results / f"calibration_{size}.json").read_text())
        assert report["customers"] == size and report["warehouse"].startswith("loaded before")
        reports.append(report)
    for r in reports:
        assert r["configured"] == {
            "max_z": checks.profile_max_z,
            "warn_z": checks.profile_warn_z,
            "min_ratio": checks.profile_min_ratio,
            "large_ratio": checks.profile_large_ratio,
            "large_z": checks.profile_large_z,
        }, r["world"]
        assert len(r["calibration_blocked_by_the_rule"]) / r["calibration_days"] <= checks.budget_blocked_nights
        assert r["budget"]["blocked_nights"] == checks.budget_blocked_nights
        assert checks.profile_max_z >= r["implied_max_z"] and checks.profile_warn_z >= r["implied_warn_z"]
        assert len(r["held_out_blocked"]) / r["held_out_days"] <= checks.budget_blocked_nights
        assert len(r["held_out_warned"]) / r["held_out_days"] <= checks.budget_warn_nights
        assert len(r["days"]) == r["calibration_days"] + r["held_out_days"]


def test_the_history_load_benchmark_runs_at_a_tiny_size(tmp_path):
    """``python -m benchmarks.history_load --tiny``: a landing folder's history through the
    reference and raw jobs in a fresh process; every row received is accounted for."""
    out = tmp_path / "history.json"
    benchmark("history_load", "--tiny", "--out", str(out))
    [size] = json.loads(out.read_text())["sizes"].values()
    load = size["load"]
    assert load["days"] == 20 and load["received"] == load["accepted"] + load["rejected"] > 0
    assert load["rows_per_s"] > 0 and load["peak_rss_mb"] > 0


def test_the_scale_table_is_generated_from_the_committed_results():
    """``python -m benchmarks.scale`` turns the committed results of the history load, the
    training job and the night into one table, a column per size, the later file winning."""
    results = sorted((ROOT / "benchmarks" / "results").glob("history_load_*.json"))
    results += sorted((ROOT / "benchmarks" / "results").glob("training_*.json"))
    results += sorted((ROOT / "benchmarks" / "results").glob("run_*.json"))
    stdout = benchmark("scale", *map(str, results), timeout=120)
    lines = stdout.splitlines()
    assert lines[0].startswith("| customers | 75,000 |") and "300,000" in lines[0]
    assert any(line.startswith("| history load: rows per second |") for line in lines)
    assert any(line.startswith("| training job: peak RSS |") for line in lines)
    assert any(line.startswith("| night: nightly partition with checks |") for line in lines)


def test_the_training_benchmark_runs_at_a_tiny_size(tmp_path):
    """``python -m benchmarks.training --tiny``: the whole training job in a fresh process
    and the frame fit it replaced, on the same table; the bounded path's AUC is the frame's."""
    out = tmp_path / "training.json"
    benchmark("training", "--tiny", "--out", str(out))
    [size] = json.loads(out.read_text())["sizes"].values()
    job = size["training_job"]
    assert job["success"] and job["deployed"] and job["training_rows"] > 0 and job["peak_rss_mb"] > 0
    assert abs(size["auc_difference"]) <= 0.002
