"""Profile + job + JIT config -> one ``ecs.run_task`` call.

The request is built only from deploy-time configuration (the profile's task
definition and container, the stack's network) plus the name of the secret
that will hold the JIT config: nothing a webhook sender controls can choose the
image, command, role or task definition. Job details appear only as tags, whose
values are validated and sanitised first.

The JIT config itself is never in the request (overrides, tags, startedBy):
``ecs:DescribeTasks``, part of the AWS-managed ReadOnlyAccess policy, returns
overrides. See lambda_fn/jit_secret.py.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from lambda_fn import aws, contract
from lambda_fn.config import Profile, Settings
from lambda_fn.errors import LaunchPermanentError, LaunchTransientError
from lambda_fn.github import JitConfig
from lambda_fn.jit_secret import SECRET_ID_ENV, SECRET_REGION_ENV

if TYPE_CHECKING:
    from lambda_fn.jobs import Job

#: ECS ``failures[].reason`` values that retrying cannot fix. Anything else
#: (capacity, "RESOURCE:*", AGENT, unknown) is treated as transient: a wrongly
#: retried job costs a few calls, a wrongly dropped one is lost.
PERMANENT_FAILURE_REASONS = frozenset({"INACTIVE", "ATTRIBUTE", "MISSING"})

#: botocore error codes that are worth retrying (after botocore's own retries).
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServerException",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServiceError",  # Secrets Manager's 5xx code (storing the JIT config)
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

_TAG_UNSAFE = re.compile(r"[^\w .:/=+\-@]")


#: ``startedBy`` of a warm-pool runner the reconciler starts before any job.
POOL_STARTED_BY = "gh-pool"


def started_by(job_id: int | None) -> str:
    """``startedBy`` names the job (ECS allows 36 letters, digits, '-' or '_')."""
    return POOL_STARTED_BY if job_id is None else f"gh-job-{job_id}"[:36]


def client_token(job_id: int | None, runner_name: str, placement: str = "FARGATE") -> str:
    """ECS idempotency token for one launch attempt of one job.

    It is derived from the job id, the attempt's unique runner name and the
    capacity tried, so botocore's own retries of a ``RunTask`` whose answer
    was lost cannot start a second task, while a deliberate later attempt (new
    JIT config, or on-demand after Spot) is not mistaken for the earlier one.
    """
    digest = hashlib.sha256(f"{job_id}:{runner_name}:{placement}".encode()).hexdigest()[:40]
    return (f"job-{job_id}-{digest}" if job_id is not None else f"pool-{digest}")[:64]


def placements(capacity: str) -> tuple[str, ...]:
    """Capacity to try, in order, for a profile's ``capacity`` setting."""
    if capacity == "FARGATE_SPOT_THEN_FARGATE":
        return ("FARGATE_SPOT", "FARGATE")
    return (capacity,)


def _placement_args(placement: str) -> dict[str, Any]:
    if placement == "FARGATE":
        return {"launchType": "FARGATE"}
    return {"capacityProviderStrategy": [{"capacityProvider": placement, "weight": 1}]}


def _tag(key: str, value: str) -> dict[str, str]:
    return {"key": key, "value": _TAG_UNSAFE.sub("_", value)[:256]}


def _job_tags(job: Job | None, profile: Profile) -> list[dict[str, str]]:
    if job is not None:
        return [
            _tag(contract.TAG_GITHUB_JOB_ID, str(job.job_id)),
            _tag(contract.TAG_GITHUB_RUN_ID, str(job.run_id)),
            _tag(contract.TAG_GITHUB_RUN_ATTEMPT, str(job.run_attempt)),
            _tag(contract.TAG_GITHUB_REPOSITORY, job.repository),
        ]
    # A pool runner started for no job: the scope it registered in stands for the repository.
    assert profile.warm is not None, "a runner without a job is a warm-pool runner"
    return [_tag(contract.TAG_GITHUB_REPOSITORY, profile.warm.scope)]


def build_run_task_request(
    settings: Settings,
    profile: Profile,
    job: Job | None,
    jit: JitConfig,
    *,
    sealed_name: str,
    placement: str = "FARGATE",
    pool: bool = False,
) -> dict[str, Any]:
    """The exact ``run_task`` keyword arguments for one runner on one kind of capacity.

    ``sealed_name`` names the secret the task reads its JIT config from; the
    override carries that name and the region, nothing the runner could use.
    ``pool`` makes the runner a member of the profile's warm pool (a runner for no ``job``
    always is: ``lambda_fn.launch.launch_pool_runner``):
    tagged ``runner:pool`` and with its idle watchdog raised past the pool's
    maximum age (lambda_fn/warm_pool.py).
    """
    environment = [
        {"name": SECRET_ID_ENV, "value": sealed_name},
        {"name": SECRET_REGION_ENV, "value": aws.region() or ""},
    ]
    pool_tags: list[dict[str, str]] = []
    if pool and profile.warm is not None:
        # A container override replaces the task definition's value of the same name
        # (docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerOverride.html).
        environment.append(
            {"name": contract.TASK_IDLE_TIMEOUT_ENV, "value": str(profile.warm.idle_bound_seconds)}
        )
        pool_tags.append(_tag(contract.TAG_POOL, profile.name))
    return {
        "cluster": settings.ecs_cluster,
        "taskDefinition": profile.task_definition,
        **_placement_args(placement),
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(profile.subnet_ids or settings.subnet_ids),
                # The profile's own groups: a target admits one profile, not every runner.
                "securityGroups": list(profile.security_group_ids or settings.security_group_ids),
                "assignPublicIp": profile.assign_public_ip or settings.assign_public_ip,
            }
        },
        "overrides": {
            "containerOverrides": [
                {
                    "name": profile.container_name,
                    "environment": environment,
                }
            ]
        },
        "startedBy": started_by(job.job_id if job else None),
        "clientToken": client_token(job.job_id if job else None, jit.runner_name, placement),
        "enableECSManagedTags": True,
        "tags": [
            _tag(contract.TAG_CAPACITY, placement),
            *_job_tags(job, profile),
            *pool_tags,
            _tag(contract.TAG_PROFILE, profile.name),
            _tag(contract.TAG_RUNNER_NAME, jit.runner_name),
            _tag(contract.TAG_RUNNER_ID, str(jit.runner_id)),
            *(
                [_tag(contract.TAG_DEPLOYMENT, settings.deployment_id)]
                if settings.deployment_id
                else []
            ),
        ],
    }


def launch_error(what: str, exc: Exception) -> LaunchTransientError | LaunchPermanentError:
    """An AWS call's failure as a launch error: transient if retrying can help.

    The message holds the error code and AWS's message, never request data.
    Anything that is not a botocore error is re-raised unchanged.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = aws.error_code(exc)
        message = f"{what} failed: {code}: {exc.response.get('Error', {}).get('Message', '')}"
        if code in TRANSIENT_ERROR_CODES:
            return LaunchTransientError(message)
        return LaunchPermanentError(message)
    if isinstance(exc, BotoCoreError):  # connection errors, timeouts after botocore's retries
        return LaunchTransientError(f"{what} failed: {type(exc).__name__}")
    raise exc


def run_runner_task(ecs: Any, request: dict[str, Any]) -> str:
    """Call ``run_task`` and return the task ARN; a ``failures`` entry is an error."""
    try:
        response = ecs.run_task(**request)
    except Exception as exc:
        raise launch_error("run_task", exc) from None

    failures = response.get("failures") or []
    tasks = response.get("tasks") or []
    if failures or not tasks:
        reasons = sorted({str(f.get("reason", "unknown")) for f in failures}) or ["no task"]
        detail = "; ".join(
            f"{f.get('reason', 'unknown')}: {f.get('detail', '')}".strip(": ") for f in failures
        )
        message = f"run_task returned failures: {detail or 'no task started'}"
        if any(reason.split(":")[0] in PERMANENT_FAILURE_REASONS for reason in reasons):
            raise LaunchPermanentError(message)
        raise LaunchTransientError(message)
    return str(tasks[0]["taskArn"])
