"""Runs whose process died (``defs/workers.py``), on real processes: a STARTED run whose
process is gone is marked failed, saying why; a live one, a finished one and one on another
machine are left alone; a pid taken over by a later process is not mistaken for the run's."""

from __future__ import annotations

import socket
import subprocess
import sys

import dagster as dg
from dagster._core.events import EngineEventData

from risk_assets.defs.workers import HOST_TAG, PROCESS_TAG, _boot_id, _start_time, fail_dead_runs, run_pid


def _run(instance: dg.DagsterInstance, pid: int, tags: dict) -> dg.DagsterRun:
    """A STARTED run whose process is ``pid``, as Dagster's run launcher records it."""
    run = instance.create_run_for_job(dg.GraphDefinition(name="g", node_defs=[]).to_job(), run_id=None, tags=tags)
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name),
    )
    return instance.get_run_by_id(run.run_id)


def test_only_a_run_whose_process_is_gone_is_marked_failed():
    here = socket.gethostname()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with dg.instance_for_test() as instance:
        living, dying = subprocess.Popen(sleeper), subprocess.Popen(sleeper)
        try:
            ident = f"{_boot_id()}:{living.pid}:{_start_time(living.pid)}"
            alive_run = _run(instance, living.pid, {HOST_TAG: here, PROCESS_TAG: ident})
            elsewhere = _run(instance, dying.pid, {HOST_TAG: "another-machine"})
            dead = _run(instance, dying.pid, {HOST_TAG: here})
            reused = _run(instance, living.pid, {HOST_TAG: here, PROCESS_TAG: f"{_boot_id()}:{living.pid}:1"})
            rebooted = _run(instance, living.pid, {HOST_TAG: here, PROCESS_TAG: f"another-boot:{living.pid}:1"})
            assert run_pid(instance, dead.run_id) == dying.pid
            dying.kill()
            dying.wait()

            messages = fail_dead_runs(instance)
            runs = {"alive": alive_run, "elsewhere": elsewhere, "dead": dead, "reused": reused, "rebooted": rebooted}
            status = {name: instance.get_run_by_id(r.run_id).status for name, r in runs.items()}
            assert status["alive"] == status["elsewhere"] == dg.DagsterRunStatus.STARTED
            assert status["dead"] == status["reused"] == status["rebooted"] == dg.DagsterRunStatus.FAILURE
            assert len(messages) == 3 and f"pid {dying.pid} on {here}) is gone" in "".join(messages)
            [failure] = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert "risk-assets run --night" in failure.dagster_event.message
            assert fail_dead_runs(instance) == []  # once
        finally:
            living.kill()
            living.wait()
