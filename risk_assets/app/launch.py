"""Runs that belong to the code location.

The CLI's runs are launched the way ``dagster job launch`` launches them: through the
instance, with the job's origin in the ``risk_assets`` code location (the module the UI,
``dagster dev`` and the daemon load), each executed in its own process by the instance's
run launcher. So the UI lists them under their job, shows them on the Overview and can
re-execute them — a night the CLI ran is re-run from the UI after its remediation like any
other. (A run executed in-process, without that origin, is none of these.)

The CLI waits for each run it launched and reads its outcome back from the instance
(:class:`LaunchedRun`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

LOCATION = "risk_assets"
"""The code location's name: ``[tool.dagster] code_location_name`` and ``workspace.yaml``."""
MODULE = "risk_assets.definitions"
"""The module the code location loads its definitions from."""
POLL_SECONDS = 0.5


@contextlib.contextmanager
def code_location(instance: dg.DagsterInstance) -> Iterator[object]:
    """A workspace holding the ``risk_assets`` code location (its own code server process,
    started here and stopped on exit), as ``dagster job launch -m`` loads it."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget

    target = ModuleTarget(module_name=MODULE, attribute=None, working_directory=None, location_name=LOCATION)
    with WorkspaceProcessContext(instance, target, code_server_log_level="WARNING") as process:
        yield process.create_request_context()


def launch(
    workspace,
    instance: dg.DagsterInstance,
    job_name: str,
    tags: Mapping[str, str],
    run_config: Mapping,
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> str:
    """Create a run of ``job_name`` (only ``asset_selection`` and their checks, if given)
    with the job's origin in the code location and launch it now (the run launcher starts
    its process; the run queue is for the daemon's runs, and an operator's command should
    not wait on a daemon that may not run). Returns its id."""
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.remote_representation.external import RemoteJob

    location = workspace.get_code_location(LOCATION)
    [repository] = location.get_repositories().values()
    selector = JobSubsetSelector(
        location_name=LOCATION,
        repository_name=repository.name,
        job_name=job_name,
        op_selection=None,
        asset_selection=asset_selection,
    )
    job: RemoteJob = location.get_job(selector)
    plan = location.get_execution_plan(job, run_config, step_keys_to_execute=None, known_state=None, instance=instance)
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=run_config,
        resolved_op_selection=job.resolved_op_selection,
        step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**job.tags, **tags},
        job_snapshot=job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(),
        job_code_origin=job.get_python_origin(),
        asset_selection=job.asset_selection,
        asset_check_selection=job.asset_check_selection,
        asset_graph=repository.asset_graph,
    )
    instance.launch_run(run.run_id, workspace)
    return run.run_id


@dataclass
class LaunchedRun:
    """A finished run read back from the instance: what the CLI reports of it."""

    instance: dg.DagsterInstance
    run_id: str

    @property
    def dagster_run(self) -> dg.DagsterRun:
        return self.instance.get_run_by_id(self.run_id)

    @property
    def success(self) -> bool:
        return self.dagster_run.status == dg.DagsterRunStatus.SUCCESS

    @property
    def all_events(self) -> list:
        return [r.dagster_event for r in self.instance.all_logs(self.run_id) if r.dagster_event is not None]

    def get_asset_materialization_events(self) -> list:
        return [e for e in self.all_events if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION]

    def get_asset_check_evaluations(self) -> list:
        return [
            e.event_specific_data for e in self.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ]


def wait(instance: dg.DagsterInstance, run_id: str, timeout: float) -> LaunchedRun:
    """Wait for a launched run to finish (success, failure or cancel); a run whose process
    died is marked failed (:func:`~risk_assets.defs.workers.fail_dead_runs`, checked every
    few seconds); a run still going after ``timeout`` seconds is an error naming it."""
    from risk_assets.defs.workers import fail_dead_runs

    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return LaunchedRun(instance, run_id)
        if run is not None and run.status == dg.DagsterRunStatus.STARTED and time.monotonic() - checked > 5:
            fail_dead_runs(instance)
            checked = time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"run {run_id} of {run.job_name if run else '?'} still {run.status.value if run else '?'}"
            )
        time.sleep(POLL_SECONDS)
