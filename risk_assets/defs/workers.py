"""Runs whose process died.

The default run launcher executes each run in its own process and offers no health check.
The code server that launched a run marks it failed when its process dies, but only while
that server lives: when both go (the daemon's process group killed or restarted with its
runs, a reboot, the OOM killer), the run stays ``STARTED`` in the instance for ever. For
this project that is not only a wrong status: the run queue's one-writer limit counts it
as running, so every later night waits behind it, and the landing sensor requests nothing
while a run is going.

So a run of this project records the machine it runs on (:data:`HOST_TAG`, set when its
warehouse resource starts), Dagster records the run process's id (its engine event
"Started process for run (pid: N)"), and :func:`fail_dead_runs` — called by the landing
sensor on every tick and by the CLI while it waits — marks a ``STARTED`` run whose process
no longer exists on this machine as failed, saying so. Its night then alerts like any
failed night and can be run again. A run on another machine is never judged from here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

HOST_TAG = "risk_assets/host"
"""The machine a run's process runs on (set by the run itself)."""
PROCESS_TAG = "risk_assets/process"
"""``boot id:pid:start time`` of the run's process (set by the run itself, on Linux): a pid
reused after a reboot, or by a later process, is not taken for the run's."""

STARTED_PROCESS = "Started process for run"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def record_host(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tag a run with this machine's name and, when this is the run's own process (Dagster's
    "Started process for run" names its pid), the process's identity (once)."""
    run = instance.get_run_by_id(run_id)
    if run is None or HOST_TAG in run.tags:
        return
    tags = {HOST_TAG: socket.gethostname()}
    if run_pid(instance, run_id) == os.getpid():
        tags[PROCESS_TAG] = f"{_boot_id()}:{os.getpid()}:{_start_time(os.getpid())}"
    instance.add_run_tags(run_id, tags)


def run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The id of the run's process, from Dagster's own engine event (None: not started yet,
    or executed in the caller's process)."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is None or not (event.message or "").startswith(STARTED_PROCESS):
            continue
        pid = event.event_specific_data.metadata.get("pid") if event.event_specific_data else None
        if pid is not None:
            return int(pid.value)
    return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie (a killed child
    not yet reaped by its parent still answers ``kill 0``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def _gone(run: dg.DagsterRun, pid: int) -> bool:
    """Whether the run's process ``pid`` no longer runs: not alive, or (when the run recorded
    its identity) this machine rebooted since, or the pid belongs to a later process."""
    if not alive(pid):
        return True
    boot, _, start = (run.tags.get(PROCESS_TAG) or "::").split(":", 2)
    if boot and boot != _boot_id():
        return True
    return bool(start) and start != _start_time(pid)


def dead_runs(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, int]]:
    """``STARTED`` runs of this machine whose process is gone: (run, its pid)."""
    here = socket.gethostname()
    found = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if run.tags.get(HOST_TAG) != here:
            continue
        pid = run_pid(instance, run.run_id)
        if pid is not None and pid != os.getpid() and _gone(run, pid):
            found.append((run, pid))
    return found


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark every dead run (:func:`dead_runs`) failed; one message per run."""
    messages = []
    for run, pid in dead_runs(instance):
        fresh = instance.get_run_by_id(run.run_id)  # it may have finished meanwhile: its process then exited
        if fresh is None or fresh.status != dg.DagsterRunStatus.STARTED:
            continue
        partition = run.tags.get("dagster/partition")
        message = (
            f"the process of run {run.run_id} ({run.job_name}"
            + (f", night {partition}" if partition else "")
            + f"; pid {pid} on {socket.gethostname()}) is gone without finishing (killed, out of memory or "
            "a restart): marked failed. Its writes are all-or-nothing per partition, so the night holds "
            "what it held before; run it again (risk-assets run --night D, or re-execute it in the UI)."
        )
        instance.report_run_failed(run, message)
        messages.append(message)
    return messages
