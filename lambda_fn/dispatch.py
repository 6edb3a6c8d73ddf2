"""Launch one runner for one queued job, at most once, whichever path asks.

``launch_once`` is the single entry point used by the webhook handler (and by
the retry consumer and reconciler). It is made idempotent with Powertools
idempotency on DynamoDB, keyed on the ``workflow_job.id`` alone with a fixed
key prefix, so the webhook Lambda, a redelivery and a retry all share one
record: the first caller launches, later callers get the stored result (or
``IdempotencyAlreadyInProgressError`` while the first is still running).

If the launch fails, Powertools deletes the in-progress record, so the job
can be tried again; any runner registration made for the failed attempt is
removed before the error propagates, so nothing half-done is left behind.

Order of one launch (the JIT config never enters the ``run_task`` request):

1. GitHub issues the JIT config (new runner name per attempt);
2. ``run_task``, whose override names the secret ``<JIT_SECRET_PREFIX>/<runner>``;
3. the config is sealed in that secret, bound to the new task's identity.
   The task polls for it for a bounded time (runner/jit_config.py), so step 3
   may finish after the task started.

If step 3 fails, the task is stopped, the secret (if it was created after
all) is deleted and the registration removed, then the error propagates
(retried like any launch failure: a new attempt has a new config and name).
If the Lambda dies between 2 and 3, the task gives up after its bound with
``jit_config: ... not readable`` and exits; the reconciler removes the
offline registration and any secret whose task is gone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from lambda_fn import aws, capacity, jit_secret
from lambda_fn.config import Profile, Settings, get_settings
from lambda_fn.errors import ConfigError, LaunchTransientError
from lambda_fn.github import GitHubClient, JitConfig, scope_path
from lambda_fn.github_auth import token_provider
from lambda_fn.naming import pool_runner_name, runner_name
from lambda_fn.observability import logger, traced
from lambda_fn.run_task import (
    JobRef,
    build_run_task_request,
    launch_error,
    placements,
    run_runner_task,
)

IDEMPOTENCY_KEY_PREFIX = "workflow-job"


@dataclass(frozen=True)
class QueuedJob:
    """What launching needs to know about a job; JSON-serialisable (it travels via SQS)."""

    job_id: int
    run_id: int
    run_attempt: int
    owner: str
    repo: str
    labels: tuple[str, ...]
    profile: str
    workflow_name: str | None = None
    head_branch: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The environment the job deploys to, from its signed delivery's ``deployment``
    #: (``None``: it names none); ``required_environment`` is checked against it.
    environment: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.repo}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueuedJob:
        return cls(
            job_id=int(data["job_id"]),
            run_id=int(data["run_id"]),
            run_attempt=int(data.get("run_attempt", 1)),
            owner=str(data["owner"]),
            repo=str(data["repo"]),
            labels=tuple(str(label) for label in data["labels"]),
            profile=str(data["profile"]),
            workflow_name=data.get("workflow_name"),
            head_branch=data.get("head_branch"),
            extra=dict(data.get("extra") or {}),
            environment=_optional_text(data.get("environment")),
        )


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def github_client(
    settings: Settings, budget_seconds: float | None = None, *, shared_budget: bool = False
) -> GitHubClient:
    """A client whose token is the PAT or the GitHub App's (``lambda_fn.github_auth``).

    ``budget_seconds`` caps one call's time including retries (default: the
    configured ``GITHUB_TIMEOUT_BUDGET_SECONDS``); with ``shared_budget`` it
    caps all the client's calls together.
    """
    return GitHubClient(
        settings.github_api_url,
        token_provider(settings),
        budget_seconds=budget_seconds or settings.github_timeout_budget_seconds,
        shared_budget=shared_budget,
    )


def find_profile(settings: Settings, name: str) -> Profile:
    for profile in settings.profiles:
        if profile.name == name:
            return profile
    raise ConfigError(f"RUNNER_PROFILES has no profile named {name!r}")


def launch(job: QueuedJob, settings: Settings) -> dict[str, Any]:
    """Register a JIT runner and start its task. Not idempotent: use ``launch_once``.

    While the profile's warm pool is active and the job is in its scope, the
    runner is started as a pool member (``lambda_fn.warm_pool``): if a warm
    runner already took the job, this one refills the pool.
    """
    profile = find_profile(settings, job.profile)
    warm = profile.warm
    pool = (
        warm is not None
        and warm.target(datetime.now(UTC)) > 0
        and warm.serves(settings.runner_scope, job.owner, job.repo)
    )
    name = runner_name(settings.runner_name_prefix, settings.deployment_id, job.job_id)
    ref = JobRef(job.job_id, job.run_id, job.run_attempt, job.repository)
    result = _start_runner(settings, profile, (job.owner, job.repo), name, ref, pool=pool)
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
    ref: JobRef | None,
    *,
    pool: bool,
) -> dict[str, Any]:
    """A ``max_runners`` slot (``lambda_fn.capacity``), the JIT config, ``run_task``, then
    the sealed config; undo what was done on failure."""
    slot = capacity.reserve(settings, profile)
    try:
        result = _start_runner_in(settings, profile, owner_repo, name, ref, pool=pool)
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
    ref: JobRef | None,
    *,
    pool: bool,
) -> dict[str, Any]:
    gh = github_client(settings)
    scope = scope_path(settings.runner_scope, *owner_repo)
    jit = _generate_jitconfig(gh, scope, settings, profile, name)
    sealed = jit_secret.secret_name(settings, jit.runner_name)
    try:
        task_arn, placement = _start_task(settings, profile, ref, jit, sealed, pool=pool)
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
    ref: JobRef | None,
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
                    settings, profile, ref, jit, sealed_name=sealed, placement=placement, pool=pool
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


def launch_once(
    job: QueuedJob, lambda_context: Any = None, *, replacement: int = 0
) -> dict[str, Any]:
    """Launch ``job`` unless some path already did; the result says which.

    Returns the launch result; ``"duplicate": True`` when it was replayed from
    the idempotency record. Raises Powertools' ``IdempotencyAlreadyInProgressError``
    while another path is launching the same job.

    ``replacement`` > 0 launches the n-th replacement runner for a job whose
    runner died before taking it (reconciler): its own record, so each
    replacement also happens at most once.
    """
    settings = get_settings()
    config, launcher = _idempotent_launcher(
        settings.idempotency_table, settings.idempotency_ttl_seconds, aws.client("dynamodb")
    )
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    key = str(job.job_id) if replacement == 0 else f"{job.job_id}#replacement-{replacement}"
    result: dict[str, Any] = launcher(request={**job.to_dict(), "idempotency_key": key})
    return result


def _mark_replayed(response: Any, idempotent_data: Any) -> Any:
    """Powertools calls this only when it returns a stored result instead of running."""
    if isinstance(response, dict):
        return {**response, "duplicate": True}
    return response


@lru_cache(maxsize=4)
def _idempotent_launcher(table: str, ttl_seconds: int, dynamodb: Any) -> tuple[Any, Any]:
    """Build the idempotent launcher on first use (nothing touches AWS at import)."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    config = IdempotencyConfig(
        event_key_jmespath="idempotency_key",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=ttl_seconds,
        response_hook=_mark_replayed,
    )
    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb)

    def _launch(request: dict[str, Any]) -> dict[str, Any]:
        job = QueuedJob.from_dict({k: v for k, v in request.items() if k != "idempotency_key"})
        return launch(job, get_settings())

    wrapped = idempotent_function(
        _launch,
        data_keyword_argument="request",
        persistence_store=persistence,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    return config, wrapped


def reset() -> None:
    """Forget cached launchers (tests)."""
    _idempotent_launcher.cache_clear()
