"""A runner task as ECS describes it: the one reading of its tags.

The Lambdas (cleanup, reconciler, time to start) and ``fargate-runners status`` read
runner tasks through :meth:`RunnerTask.from_ecs`, so the tag keys
(``lambda_fn.contract``) are read in one place. Light on purpose (no boto3, no
Powertools): the CLI imports it, and nothing here calls AWS or GitHub.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lambda_fn import contract
from lambda_fn.github import scope_path

__all__ = ["RunnerTask"]


@dataclass(frozen=True)
class RunnerTask:
    """One runner task, as ECS describes it (ids and names only, no secrets).

    Every tag may be missing (a task of someone else's, or a warm-pool runner started for
    no job): the fields are then None. Whether the task is ours is the caller's question
    (``lambda_fn.naming.owns_runner`` on :attr:`runner_name`).
    """

    task_arn: str
    last_status: str
    desired_status: str
    job_id: int | None
    run_id: int | None
    repository: str | None
    profile: str | None
    runner_name: str | None
    runner_id: int | None
    created_at: datetime | None
    stopped_reason: str | None
    exit_code: int | None
    #: ECS lifecycle timestamps (time to start: lambda_fn/start_time.py).
    pull_started_at: datetime | None = None
    pull_stopped_at: datetime | None = None
    started_at: datetime | None = None
    #: The profile whose warm pool this runner belongs to (``runner:pool`` tag), if any.
    pool: str | None = None

    @property
    def task_id(self) -> str:
        """The last part of the task ARN (what the ECS console and ``aws ecs`` show)."""
        return self.task_arn.rsplit("/", 1)[-1]

    @property
    def owner_repo(self) -> tuple[str, str] | None:
        """``(owner, repo)`` from the repository tag, or None when the tag is missing or odd."""
        if not self.repository or "/" not in self.repository:
            return None
        owner, repo = self.repository.split("/", 1)
        return owner, repo

    def scope(self, runner_scope: str) -> str | None:
        """Where the runner is registered; None when the tags cannot say.

        An org-scope warm-pool runner, started for no job, has the organisation
        alone in its repository tag (``lambda_fn.run_task``).
        """
        if self.owner_repo is not None:
            return scope_path(runner_scope, *self.owner_repo)
        if runner_scope == "org" and self.repository and self.pool:
            return scope_path("org", self.repository, "")
        return None

    @property
    def alive(self) -> bool:
        return self.desired_status != "STOPPED" and self.last_status != "STOPPED"

    @classmethod
    def from_ecs(cls, task: dict[str, Any]) -> RunnerTask:
        """From one item of ECS ``DescribeTasks`` (called with ``include=["TAGS"]``)."""
        tags = {t["key"]: t["value"] for t in task.get("tags", [])}
        containers = task.get("containers") or [{}]
        exit_code = containers[0].get("exitCode")
        return cls(
            task_arn=task["taskArn"],
            last_status=str(task.get("lastStatus", "")),
            desired_status=str(task.get("desiredStatus", "")),
            job_id=_int_or_none(tags.get(contract.TAG_GITHUB_JOB_ID)),
            run_id=_int_or_none(tags.get(contract.TAG_GITHUB_RUN_ID)),
            repository=tags.get(contract.TAG_GITHUB_REPOSITORY),
            profile=tags.get(contract.TAG_PROFILE),
            runner_name=tags.get(contract.TAG_RUNNER_NAME),
            runner_id=_int_or_none(tags.get(contract.TAG_RUNNER_ID)),
            created_at=task.get("createdAt"),
            stopped_reason=task.get("stoppedReason"),
            exit_code=int(exit_code) if exit_code is not None else None,
            pull_started_at=task.get("pullStartedAt"),
            pull_stopped_at=task.get("pullStoppedAt"),
            started_at=task.get("startedAt"),
            pool=tags.get(contract.TAG_POOL),
        )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
