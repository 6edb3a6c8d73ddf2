"""Time to start: how long a job waited for a runner, per profile, and where the task spent it.

Measured when GitHub sends the job's ``in_progress`` delivery (a runner took
it). That delivery carries ``created_at`` (queued) and ``started_at`` (taken)
and the ``runner_name``
(https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_job).
Only runners of this deployment count (``lambda_fn.naming``); the profile is the
one the job's labels select, as for the launch.

The task's own phases come from the same delivery: a runner can take a job
only once its task is ``RUNNING``, so ECS's ``createdAt``, ``pullStartedAt``,
``pullStoppedAt`` and ``startedAt`` are final by then
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Task.html).
This is the cheapest reliable point: one ``ListTasks`` (by ``startedBy``, the
job the runner was launched for, read from its name) and one
``DescribeTasks`` per started job, nothing stored, each task seen exactly once
per delivery. The reconciler sees a stopped task on every run for about an
hour and would need state to count it once; an ECS event rule would need
another function and rule. A lookup that fails only loses the phases: the
delivery is still answered 2xx.

Metrics (EMF, dimensions ``service`` and ``profile``, unit seconds):
``TimeToStart`` (queued -> taken), ``TaskProvisioning`` (created -> pull
started: capacity and network interface), ``ImagePull`` (pull started ->
stopped), ``ContainerStart`` (pull stopped -> started).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lambda_fn.cleanup import describe_tasks, list_task_arns
from lambda_fn.config import QUEUED_JOB_LIMIT_SECONDS, Settings
from lambda_fn.naming import launched_for
from lambda_fn.observability import logger, seconds
from lambda_fn.run_task import started_by
from lambda_fn.runner_task import RunnerTask

#: The phase metrics, in the order a task goes through them (fargate_runners/dashboard.py).
PHASE_METRICS = ("TaskProvisioning", "ImagePull", "ContainerStart")


@dataclass(frozen=True)
class TaskPhases:
    """Seconds the task spent in each phase before its container ran."""

    provisioning: float
    pull: float
    container_start: float

    @classmethod
    def of(cls, task: RunnerTask) -> TaskPhases | None:
        """None unless ECS reported every timestamp (a task that never pulled, say)."""
        created, pull_started = task.created_at, task.pull_started_at
        pull_stopped, started = task.pull_stopped_at, task.started_at
        if created is None or pull_started is None or pull_stopped is None or started is None:
            return None
        return cls(
            provisioning=_between(created, pull_started),
            pull=_between(pull_started, pull_stopped),
            container_start=_between(pull_stopped, started),
        )

    def as_dict(self) -> dict[str, float]:
        return dict(zip(PHASE_METRICS, self.values(), strict=True))

    def values(self) -> tuple[float, float, float]:
        return (self.provisioning, self.pull, self.container_start)


def _between(earlier: datetime, later: datetime) -> float:
    return round(max(0.0, (later - earlier).total_seconds()), 3)


def queued_seconds(created_at: datetime, started_at: datetime) -> float | None:
    """``started_at - created_at``; None when the figures cannot be a real wait."""
    waited = (started_at - created_at).total_seconds()
    if waited < 0 or waited > 2 * QUEUED_JOB_LIMIT_SECONDS:
        return None
    return round(waited, 3)


def task_of(settings: Settings, runner_name: str) -> RunnerTask | None:
    """The running task of one of our runners, found by the job it was launched for."""
    job_id = launched_for(settings.runner_name_prefix, settings.deployment_id, runner_name)
    if job_id is None:
        return None
    arns = list_task_arns(settings, "RUNNING", started_by(job_id))
    for task in describe_tasks(settings, arns):
        if task.runner_name == runner_name:
            return task
    return None


def record(
    settings: Settings,
    profile: str,
    runner_name: str,
    created_at: datetime | None,
    started_at: datetime | None,
) -> dict[str, Any]:
    """Emit the job's time to start and its task's phases; returns what was measured.

    A delivery without ``created_at`` or ``started_at`` (older payloads lack them) loses
    only the time to start; the task's phases come from ECS (docs/contract.md, "(added)").
    """
    figures: dict[str, Any] = {"profile": profile, "runner_name": runner_name}
    waited = (
        queued_seconds(created_at, started_at)
        if created_at is not None and started_at is not None
        else None
    )
    if waited is not None:
        seconds("TimeToStart", waited, ("profile", profile))
        figures["queued_seconds"] = waited
    try:
        task = task_of(settings, runner_name)
    except Exception as exc:  # only the phases are lost; the delivery is still 2xx
        logger.warning("could not read the runner's task", extra={"error": type(exc).__name__})
        task = None
    phases = TaskPhases.of(task) if task is not None else None
    if phases is not None:
        # Literal names: tests/infra/test_dashboard.py reads them from these calls.
        seconds("TaskProvisioning", phases.provisioning, ("profile", profile))
        seconds("ImagePull", phases.pull, ("profile", profile))
        seconds("ContainerStart", phases.container_start, ("profile", profile))
        figures["task_phases"] = phases.as_dict()
    logger.info("job started", extra=figures)
    return figures
