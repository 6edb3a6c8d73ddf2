"""Start one runner: a ``max_runners`` slot, a JIT config, ``run_task``, the sealed config.

Not idempotent: every launch for a job goes through ``lambda_fn.idempotent_launch``,
which runs :func:`launch` at most once per job (per replacement). Warm-pool runners the
reconciler starts for no job come through :func:`launch_pool_runner`.

Order of one launch (the JIT config never enters the ``run_task`` request):

1. GitHub issues the JIT config (new runner name per attempt);
2. ``run_task``, whose override names the secret ``<JIT_SECRET_PREFIX>/<runner>``;
3. the config is sealed in that secret, bound to the new task's identity.
   The task polls for it for a bounded time (runner/jit_config.py), so step 3
   may finish after the task started.

If a step fails, what was done is undone before the error propagates, so nothing
half-done is left behind: the registration is removed after a failed step 2; after a
failed step 3 the task is stopped, the secret (if it was created after all) deleted and
the registration removed (retried like any launch failure: a new attempt has a new
config and name). If the Lambda dies between 2 and 3, the task gives up after its bound
with ``jit_config: ... not readable`` and exits; the reconciler removes the offline
registration and any secret whose task is gone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lambda_fn import aws, capacity, jit_secret
from lambda_fn.config import Profile, Settings
from lambda_fn.errors import ConfigError, LaunchTransientError
from lambda_fn.github import GitHubClient, JitConfig, scope_path
from lambda_fn.github_auth import github_client
from lambda_fn.jobs import Job
from lambda_fn.naming import pool_runner_name, runner_name
from lambda_fn.observability import logger, traced
from lambda_fn.run_task import build_run_task_request, launch_error, placements, run_runner_task


def launch(job: Job, settings: Settings) -> dict[str, Any]:
    """Register a JIT runner for ``job`` with its profile and start its task.

    While the profile's warm pool is active and the job is in its scope, the
    runner is started as a pool member (``lambda_fn.warm_pool``): if a warm
    runner already took the job, this one refills the pool.
    """
    profile = job.profile
    warm = profile.warm
    pool = (
        warm is not None
        and warm.target(datetime.now(UTC)) > 0
        and warm.serves(settings.runner_scope, job.owner, job.repo)
    )
    name = runner_name(settings.runner_name_prefix, settings.deployment_id, job.job_id)
    result = _start_runner(settings, profile, (job.owner, job.repo), name, job, pool=pool)
    return {"status": "launched", "job_id": job.job_id, **result}


def launch_pool_runner(settings: Settings, profile: Profile) -> dict[str, Any]:
    """Start one warm-pool runner for ``profile`` (reconciler), for no job in particular.

    It takes a ``max_runners`` slot like any launch (``CapacityWaitError`` when none is
    free); there is no idempotency record, because no delivery can repeat it (a second
    reconciler run at most overfills the pool until the next run releases the surplus).
    """
    if profile.warm is None:
        raise ConfigError(f"profile {profile.name!r} has no warm pool")
    name = pool_runner_name(settings.runner_name_prefix, settings.deployment_id)
    owner_repo = profile.warm.owner_repo(settings.runner_scope)
    return _start_runner(settings, profile, owner_repo, name, None, pool=True)


def _start_runner(
    settings: Settings,
    profile: Profile,
    owner_repo: tuple[str, str],
    name: str,
    job: Job | None,
    *,
    pool: bool,
) -> dict[str, Any]:
    """A ``max_runners`` slot (``lambda_fn.capacity``), the JIT config, ``run_task``, then
    the sealed config; undo what was done on failure."""
    slot = capacity.reserve(settings, profile)
    try:
        result = _start_runner_in(settings, profile, owner_repo, name, job, pool=pool)
    except Exception:
        capacity.release(settings, profile, slot)
        raise
    capacity.launched(settings, profile, slot)
    return result


def _start_runner_in(
    settings: Settings,
    profile: Profile,
    owner_repo: tuple[str, str],
    name: str,
    job: Job | None,
    *,
    pool: bool,
) -> dict[str, Any]:
    gh = github_client(settings)
    scope = scope_path(settings.runner_scope, *owner_repo)
    jit = _generate_jitconfig(gh, scope, settings, profile, name)
    sealed = jit_secret.secret_name(settings, jit.runner_name)
    try:
        task_arn, placement = _start_task(settings, profile, job, jit, sealed, pool=pool)
    except Exception:
        _forget_runner(gh, scope, jit)
        raise
    try:
        _seal(sealed, jit, profile, task_arn)
    except Exception as exc:
        _abandon_task(settings, task_arn, sealed)
        _forget_runner(gh, scope, jit)
        raise launch_error("storing the JIT config", exc) from None
    return {
        "profile": profile.name,
        "runner_name": jit.runner_name,
        "runner_id": jit.runner_id,
        "task_arn": task_arn,
        "capacity": placement,
        **({"warm_pool": True} if pool else {}),
    }


def _start_task(
    settings: Settings,
    profile: Profile,
    job: Job | None,
    jit: JitConfig,
    sealed: str,
    *,
    pool: bool,
) -> tuple[str, str]:
    """Try each kind of capacity the profile allows; Spot falls back to on-demand if allowed."""
    options = placements(profile.capacity)
    for index, placement in enumerate(options):
        try:
            return _run_task(
                build_run_task_request(
                    settings, profile, job, jit, sealed_name=sealed, placement=placement, pool=pool
                )
            ), placement
        except LaunchTransientError as exc:
            if index == len(options) - 1:
                raise
            logger.warning(
                "capacity unavailable, trying the next kind",
                extra={"capacity": placement, "error": str(exc)},
            )
    raise AssertionError("placements() is never empty")  # pragma: no cover


@traced
def _generate_jitconfig(
    gh: GitHubClient, scope: str, settings: Settings, profile: Profile, name: str
) -> JitConfig:
    return gh.generate_jitconfig(
        scope,
        name,
        profile.labels,
        profile.runner_group_id or settings.runner_group_id,
    )


@traced
def _run_task(request: dict[str, Any]) -> str:
    return run_runner_task(aws.client("ecs"), request)


@traced
def _seal(sealed: str, jit: JitConfig, profile: Profile, task_arn: str) -> None:
    jit_secret.seal(aws.client("secretsmanager"), sealed, jit, profile, task_arn)


def _abandon_task(settings: Settings, task_arn: str, sealed: str) -> None:
    """Best effort: stop a task whose config could not be stored, and drop the secret.

    Each step is independent; if both fail, the task stops itself after its
    fetch bound and the reconciler deletes the secret once the task is gone.
    """
    try:
        aws.client("ecs").stop_task(
            cluster=settings.ecs_cluster,
            task=task_arn,
            reason="the runner's JIT config could not be stored; the launch is retried",
        )
    except Exception as exc:
        logger.warning(
            "could not stop the task after failing to store its JIT config",
            extra={"task_arn": task_arn, "error": type(exc).__name__},
        )
    try:
        jit_secret.discard(aws.client("secretsmanager"), sealed)
    except Exception as exc:
        logger.warning(
            "could not delete the JIT config secret after a failed launch",
            extra={"secret": sealed, "error": type(exc).__name__},
        )


def _forget_runner(gh: GitHubClient, scope: str, jit: JitConfig) -> None:
    """Best effort: a registration without a task would sit offline until reconciled."""
    try:
        gh.delete_runner(scope, jit.runner_id)
    except Exception as exc:  # never hide the launch error behind a cleanup error
        logger.warning(
            "could not remove runner registration after failed launch",
            extra={"runner_id": jit.runner_id, "error": str(exc)},
        )
