"""Release runners that are no longer needed, without ever killing a running job.

An ephemeral runner takes *any* job whose labels it has, so the task started
for job A may be running job B. Releasing is therefore done in this order:

1. delete the runner's registration on GitHub. GitHub refuses (422) while the
   runner is busy with a job, so a successful delete proves it is idle, and
   from then on it cannot be handed a job;
2. only then stop the task.

A busy runner is left alone: it exits by itself when its job ends.
"""

from __future__ import annotations

from typing import Any

from lambda_fn import aws
from lambda_fn.config import Settings
from lambda_fn.errors import GitHubPermanentError
from lambda_fn.github import GitHubClient
from lambda_fn.naming import owns_runner
from lambda_fn.observability import logger
from lambda_fn.run_task import started_by
from lambda_fn.runner_task import RunnerTask

__all__ = [
    "describe_tasks",
    "in_warm_pool",
    "list_task_arns",
    "release",
    "release_for_job",
]


def describe_tasks(settings: Settings, task_arns: list[str]) -> list[RunnerTask]:
    """Our runner tasks among ``task_arns`` (tasks without our tags are not ours)."""
    ecs = aws.client("ecs")
    found: list[RunnerTask] = []
    for start in range(0, len(task_arns), 100):
        response = ecs.describe_tasks(
            cluster=settings.ecs_cluster, tasks=task_arns[start : start + 100], include=["TAGS"]
        )
        for task in response.get("tasks", []):
            runner = RunnerTask.from_ecs(task)
            if runner.runner_name and owns_runner(
                settings.runner_name_prefix, settings.deployment_id, runner.runner_name
            ):
                found.append(runner)
    return found


def list_task_arns(settings: Settings, status: str, started: str | None = None) -> list[str]:
    """Task ARNs in the cluster with a desired status (optionally started by one job)."""
    kwargs: dict[str, Any] = {"cluster": settings.ecs_cluster, "desiredStatus": status}
    if started:
        kwargs["startedBy"] = started
    arns: list[str] = []
    for page in aws.client("ecs").get_paginator("list_tasks").paginate(**kwargs):
        arns.extend(page.get("taskArns", []))
    return arns


def release(settings: Settings, gh: GitHubClient, task: RunnerTask, reason: str) -> bool:
    """Deregister the task's runner if idle, then stop the task. False if it is busy."""
    scope = task.scope(settings.runner_scope)
    if task.runner_id is not None and scope is not None:
        try:
            gh.delete_runner(scope, task.runner_id)
        except GitHubPermanentError as exc:
            if exc.status == 422:  # "still running a job": leave it to finish
                logger.info("runner is busy, left running", extra={"task_arn": task.task_arn})
                return False
            raise
    aws.client("ecs").stop_task(
        cluster=settings.ecs_cluster, task=task.task_arn, reason=reason[:255]
    )
    logger.info("runner released", extra={"task_arn": task.task_arn, "reason": reason})
    return True


def in_warm_pool(settings: Settings, task: RunnerTask) -> bool:
    """Whether the task is a member of a profile's warm pool that is still configured.

    Members are left to the reconciler (``lambda_fn.reconciler``), which keeps the
    pool at its size; a pool tag whose profile no longer has a pool counts for nothing.
    """
    return task.pool is not None and any(
        p.name == task.pool and p.warm is not None for p in settings.profiles
    )


def release_for_job(
    settings: Settings, gh: GitHubClient, job_id: int, reason: str, ran_on: str | None = None
) -> int:
    """Release every idle runner task that was started for ``job_id``; returns how many.

    A warm-pool member is kept even when its job is done: it is the pool's refill
    (its job ran on a runner that was already warm). The task whose runner ran the job
    (``ran_on``, the delivery's ``runner_name``) is left alone: a JIT runner is ephemeral,
    GitHub removes its registration after its one job and the task then exits by itself
    (docs/runner.md), so deleting it would be a GitHub call for nothing.
    """
    arns = list_task_arns(settings, "RUNNING", started_by(job_id))
    if not arns:
        return 0
    released = 0
    for task in describe_tasks(settings, arns):
        if ran_on is not None and task.runner_name == ran_on:
            continue
        if task.alive and not in_warm_pool(settings, task) and release(settings, gh, task, reason):
            released += 1
    return released
