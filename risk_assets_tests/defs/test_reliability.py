"""Reliability (issue 7): idempotent re-runs, concurrent runs on one DuckDB file, and a
process killed in the middle of the scores write."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from risk_assets.defs.factory import build_definitions
from risk_assets.defs.jobs import HISTORY_JOB, NIGHTLY_JOB
from risk_assets.defs.jobs import RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG
from risk_assets.defs.jobs import RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG
from risk_assets.store import warehouse
from risk_assets_tests.conftest import FIRST_NIGHT, QUIET, shared_home, trained_settings

WALL_CLOCK = {
    "raw_loads": ["loaded_at"],
    "raw_verdicts": ["loaded_at", "run_id", "result"],
    "night_verdicts": ["evaluated_at"],
}  # wall-clock times, and which run recorded (and showed) a result
"""Columns that record when something ran, or which run, not what it computed: the only ones a
re-run may change (``raw_verdicts.result`` is shown by its own run's check step; its verdict is
``passed``, ``severity`` and ``summary``, compared)."""
PARTITIONED = [
    "raw_transactions",
    "rejected_transactions",
    "raw_loads",
    "serving_features",
    "encoded_features",
    "imputation_log",
    "risk_scores",
]
UNIQUE = {
    "raw_transactions": ["transaction_id"],
    "raw_loads": ["partition"],
    "serving_features": ["partition", "customer_id"],
    "encoded_features": ["partition", "customer_id"],
    "risk_scores": ["partition", "customer_id"],
    "imputation_log": ["partition", "customer_id", "feature"],
}
WAITED = "is locked by another process"


def snapshot(path: Path, first: dt.date, last: dt.date) -> dict[str, pd.DataFrame]:
    """Every table (partitioned ones between ``first`` and ``last``), in a canonical row order."""
    frames = {}
    with warehouse.connect(path, read_only=True) as conn:
        for name, columns in warehouse.COLUMNS.items():
            where = "WHERE partition BETWEEN ? AND ?" if name in PARTITIONED else ""
            kept = [c for c in columns if c not in WALL_CLOCK.get(name, [])]
            order = ", ".join(f'"{c}"' for c in kept)
            frames[name] = conn.execute(
                f"SELECT {order} FROM {warehouse.table(name)} {where} ORDER BY {order}", [first, last] if where else []
            ).df()
    return frames


def assert_same(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], check_exact=True, obj=name)


def assert_no_duplicates(frames: dict[str, pd.DataFrame]) -> None:
    for name, key in UNIQUE.items():
        dupes = frames[name].duplicated(key).sum()
        assert dupes == 0, f"{name}: {dupes} duplicate {key}"


# --------------------------------------------------------------------------- lock waits
HOLD = textwrap.dedent("""
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1], config={"custom_user_agent": "dagster"})
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_a_locked_warehouse_is_waited_for_then_opened(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.connect(path).close()
    holder = _hold_lock(path, 1.5)
    waits: list[str] = []
    t0 = time.monotonic()
    with warehouse.connect(path, lock_timeout_seconds=30, on_wait=waits.append) as conn:
        assert warehouse.count(conn, "risk_scores") == 0
    assert time.monotonic() - t0 > 0.5  # it really waited for the other process
    assert len(waits) == 1 and WAITED in waits[0] and str(path) in waits[0]
    holder.wait(timeout=10)


def test_a_lock_held_past_the_timeout_fails_with_a_clear_message(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.connect(path).close()
    holder = _hold_lock(path, 10)
    try:
        with pytest.raises(warehouse.WarehouseBusy, match="stayed locked by another process for 0.5 s") as err:
            warehouse.connect(path, lock_timeout_seconds=0.5)
        assert "lock_timeout_seconds" in str(err.value) and str(path) in str(err.value)
    finally:
        holder.kill()
        holder.wait()


# --------------------------------------------------------------------------- concurrent runs
def _worker(folder: str, job_name: str, days: list[str]) -> list[tuple[str, bool, list[str], int]]:
    """Runs ``job_name`` for each day in this process (a separate Dagster run each)."""
    from risk_assets.defs.known_warnings import accept_known_dagster_warnings

    accept_known_dagster_warnings()  # the known ones only, as the CLI does
    out = []
    with dg.instance_for_test(temp_dir=shared_home(folder)) as instance:
        job = build_definitions(trained_settings(Path(folder))).resolve_job_def(job_name)
        for day in days:
            result = job.execute_in_process(
                instance=instance, partition_key=day, run_config=QUIET, raise_on_error=False
            )
            errors = [e.message or "" for e in result.all_events if e.is_failure]
            waits = sum(WAITED in (r.user_message or "") for r in instance.all_logs(result.run_id))
            out.append((day, result.success, errors, waits))
    return out


def _concurrently(folder: Path, job_name: str, days: list[dt.date], workers: int) -> list:
    """Runs the chunks in ``workers`` processes. A worker that dies fails the test
    (``BrokenProcessPool``) instead of leaving it waiting forever, as ``Pool`` would."""
    from concurrent.futures import ProcessPoolExecutor

    chunks = [[d.isoformat() for d in days[i::workers]] for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_worker, str(folder), job_name, chunk) for chunk in chunks]
        results = [f.result(timeout=900) for f in futures]
    return [r for chunk in results for r in chunk]


def test_a_30_night_backfill_in_concurrent_runs_then_5_reruns_changes_nothing(world_copy):
    """Three processes run the nightly job for 30 partitions side by side on one DuckDB
    file (after the raw days are loaded, so no look-back is incomplete): every run succeeds,
    none fails on a lock, and the processes demonstrably waited for each other. Re-running five of the nights — three
    whole, one asset at a time for two — leaves every table bit-identical."""
    settings = world_copy()
    nights = [FIRST_NIGHT + dt.timedelta(days=i) for i in range(30)]
    with dg.instance_for_test(
        temp_dir=shared_home(world_copy.folder)
    ) as instance:  # the raw days first (one range run), so every look-back is complete
        assert (
            build_definitions(settings)
            .resolve_job_def(HISTORY_JOB)
            .execute_in_process(
                instance=instance,
                run_config=QUIET,
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: nights[0].isoformat(),
                    ASSET_PARTITION_RANGE_END_TAG: nights[-1].isoformat(),
                },
            )
            .success
        )
    runs = _concurrently(world_copy.folder, NIGHTLY_JOB, nights, workers=3)
    failed = [(day, errors) for day, ok, errors, _ in runs if not ok]
    assert not failed, failed
    assert not [e for *_, errors, _ in runs for e in errors if "lock" in e.lower()]
    assert sum(waits for *_, waits in runs) > 0, "the runs never overlapped: not a concurrency test"

    path = settings.warehouse.duckdb_path
    before = snapshot(path, nights[0], nights[-1])
    assert_no_duplicates(before)
    assert before["raw_loads"]["partition"].nunique() == 30
    assert before["risk_scores"]["partition"].nunique() == 30

    with dg.instance_for_test(temp_dir=shared_home(world_copy.folder)) as instance:
        job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
        for night in (nights[0], nights[13], nights[29]):
            assert job.execute_in_process(instance=instance, partition_key=night.isoformat(), run_config=QUIET).success
        for night in (nights[7], nights[21]):  # each asset on its own, in graph order
            for key in ("raw_transactions", "serving_features", "encoded_features", "risk_scores"):
                selection = [dg.AssetKey(key)] + (
                    [dg.AssetKey("rejected_transactions")]
                    if key == "raw_transactions"
                    else [dg.AssetKey("imputation_log")]
                    if key == "encoded_features"
                    else []
                )
                assert job.execute_in_process(
                    instance=instance, partition_key=night.isoformat(), run_config=QUIET, asset_selection=selection
                ).success
    after = snapshot(path, nights[0], nights[-1])
    assert_same(before, after)


# --------------------------------------------------------------------------- killed mid-write
KILLED = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from risk_assets.defs.known_warnings import accept_known_dagster_warnings
    accept_known_dagster_warnings()
    import dagster as dg
    from risk_assets.store import warehouse
    from risk_assets.defs.factory import build_definitions
    from risk_assets.defs.jobs import NIGHTLY_JOB
    from risk_assets_tests.conftest import QUIET, shared_home, trained_settings

    folder, night, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    write = warehouse.insert

    def half_then_hang(conn, name, frame):
        # the scores of the night: the old partition is already deleted inside the open
        # transaction; write half of the new rows, tell the test, and wait to be killed
        if name == "risk_scores":
            write(conn, name, frame.iloc[: len(frame) // 2])
            marker.write_text(str(len(frame)))
            time.sleep(300)
        return write(conn, name, frame)

    warehouse.insert = half_then_hang
    with dg.instance_for_test(temp_dir=shared_home(folder)) as instance:
        job = build_definitions(trained_settings(folder)).resolve_job_def(NIGHTLY_JOB)
        job.execute_in_process(instance=instance, partition_key=night, run_config=QUIET)
""")


@pytest.mark.parametrize("previously_scored", [True, False], ids=["rerun-of-a-scored-night", "first-write"])
def test_a_run_killed_during_the_scores_write_leaves_the_old_partition_or_nothing(world_copy, previously_scored):
    settings = world_copy()
    night = FIRST_NIGHT
    with dg.instance_for_test(temp_dir=shared_home(world_copy.folder)) as instance:
        job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
        if previously_scored:
            assert job.execute_in_process(instance=instance, partition_key=night.isoformat(), run_config=QUIET).success
    before = snapshot(settings.warehouse.duckdb_path, night, night)

    marker = world_copy.folder / "in_scores_write"
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(world_copy.folder), night.isoformat(), str(marker)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert child.poll() is None, f"the run ended before the scores write: {child.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "the run never reached the scores write"
        time.sleep(0.2)
    scored = int(marker.read_text())
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)

    after = snapshot(settings.warehouse.duckdb_path, night, night)
    scores = after["risk_scores"]
    if previously_scored:
        assert len(scores) == scored  # the old partition, whole
        assert_same(before, after)
    else:
        assert scores.empty  # nothing, not half
        # everything written by earlier steps of the killed run is whole too
        assert len(after["encoded_features"]) == scored

    with dg.instance_for_test(temp_dir=shared_home(world_copy.folder)) as instance:
        job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
        assert job.execute_in_process(instance=instance, partition_key=night.isoformat(), run_config=QUIET).success
    rerun = snapshot(settings.warehouse.duckdb_path, night, night)
    assert len(rerun["risk_scores"]) == scored
    assert_no_duplicates(rerun)
    if previously_scored:
        assert_same(before, rerun)
