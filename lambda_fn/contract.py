"""Every name and shape that crosses a package boundary, owned here and only here.

The construct (``fargate_runners``) writes them, the Lambda (``lambda_fn``) reads them,
and local mode (``localdev``) and the CLI (``runners_cli``) read or imitate them. A
name spelled anywhere else is a bug: ``tests/infra/test_contract.py`` synthesizes the
stack and feeds the Lambda environment it produces to the Lambda's own settings loader.

Stdlib only and import-free, because the Lambda imports it on every cold start and the
CLI must not pull in ``aws_cdk``. ``docs/contract.md`` documents the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

DEFAULT_GITHUB_API_URL: Final = "https://api.github.com"

#: The GitHub Actions runner release every default image runs: the one owner of the runner
#: version (``fargate_runners.config.DEFAULT_IMAGE`` and the tests derive from it). Here,
#: not in ``fargate_runners``, because the Lambda, the CLI, local mode and the benchmarks
#: read it too, and this module is the stdlib-only one they all import. v2.336.0 is the
#: newest tag of github.com/actions/runner that was read (tag commit 2026-07-20); how to
#: move it: docs/lifecycle.md, "Runner versions".
RUNNER_VERSION: Final = "2.336.0"
#: The official runner image (https://github.com/actions/runner/pkgs/container/actions-runner).
RUNNER_IMAGE_REPOSITORY: Final = "ghcr.io/actions/actions-runner"
#: Exit code of the runner task when GitHub refused its runner version (the Listener's
#: ``ReturnCode.RunnerVersionDeprecated``, actions/runner >= v2.333.0 with
#: ``ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1``): the reconciler does not
#: replace such a task (docs/runner.md, "Runner versions").
TASK_EXIT_VERSION_REFUSED: Final = 7

#: The Lambda's environment: name -> default (``None`` = required). The construct sets
#: every one of these it has a value for and nothing else (checked at synth).
LAMBDA_ENVIRONMENT: Final[dict[str, str | None]] = {
    "WEBHOOK_SECRET_ARN": None,
    "GITHUB_TOKEN_SECRET_ARN": None,
    "GITHUB_API_URL": DEFAULT_GITHUB_API_URL,
    "ECS_CLUSTER": None,
    "SUBNET_IDS": None,
    "SECURITY_GROUP_IDS": None,
    "ASSIGN_PUBLIC_IP": "DISABLED",
    # One of these two is required (lambda_fn/config.py): the profiles inline, or the SSM
    # parameters holding them (lambda_fn/profile_store.py; what the construct sets).
    "RUNNER_PROFILES": "",
    "RUNNER_SCOPE": "repo",
    "RUNNER_GROUP_ID": "1",
    "ALLOWED_REPOSITORIES": "",
    "IDEMPOTENCY_TABLE": None,
    "RETRY_QUEUE_URL": "",
    # Additions beyond docs/contract.md's original table (all optional):
    "DEAD_LETTER_QUEUE_URL": "",
    "RETRY_MAX_ATTEMPTS": "8",
    "RETRY_BASE_DELAY_SECONDS": "20",
    "RUNNER_NAME_PREFIX": "fargate-runner",
    "DEPLOYMENT_ID": "",
    # The reconciler's idle backstop (seconds); not the task's own watchdog, which is
    # TASK_IDLE_TIMEOUT_ENV below. Until issue 26 both were RUNNER_IDLE_TIMEOUT_SECONDS:
    # see LEGACY_LAMBDA_ENVIRONMENT.
    "RECONCILER_IDLE_TIMEOUT_SECONDS": "900",
    "MAX_REPLACEMENTS": "2",
    "GITHUB_HOOK_PATH": "",
    "GITHUB_HOOK_PARAMETER": "",
    "SECRETS_MAX_AGE_SECONDS": "300",
    "IDEMPOTENCY_TTL_SECONDS": "86400",
    "GITHUB_TIMEOUT_BUDGET_SECONDS": "6",
    "JIT_SECRET_PREFIX": "fargate-runners/jit",
    # Read by lambda_fn.observability (the tracer is built before any settings are).
    "TRACE_REMOTE_CALLS": "false",
    # GitHub App authentication (docs/github-app.md); the PAT stays the default:
    "GITHUB_AUTH": "pat",
    "GITHUB_APP_ID": "",
    "GITHUB_APP_KEY_ARN": "",
    # Profiles beyond the 4 KB environment (lambda_fn/profile_store.py): the parameter
    # names, in match order, and a fingerprint that changes whenever a profile does.
    "RUNNER_PROFILES_PARAMETERS": "",
    "RUNNER_PROFILES_VERSION": "",
}

#: The CloudWatch namespace of the Lambdas' metrics (``POWERTOOLS_METRICS_NAMESPACE``),
#: which the dashboard, the alarms and ``fargate-runners status`` read.
METRICS_NAMESPACE: Final = "FargateRunners"

#: Old Lambda variable -> the one that replaced it. The Lambda still reads the old name when
#: the new one is unset, with the meaning a deployed stack gave it: while CloudFormation
#: updates a function, its new code can run with the old environment for a moment, and an
#: environment set by hand keeps working. The construct sets only the new names.
LEGACY_LAMBDA_ENVIRONMENT: Final[dict[str, str]] = {
    # Was the reconciler's idle backstop in the Lambda (and, in the task, the watchdog:
    # that meaning keeps the name, TASK_IDLE_TIMEOUT_ENV).
    "RUNNER_IDLE_TIMEOUT_SECONDS": "RECONCILER_IDLE_TIMEOUT_SECONDS",
}

#: Read by AWS Lambda Powertools itself, set by the construct.
POWERTOOLS_ENVIRONMENT: Final = (
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
)

#: How long past the task's own idle watchdog the reconciler stops an idle runner (the
#: watchdog acts first, the reconciler is the backstop), and the backstop when the
#: watchdog is off (``runner_idle_timeout_seconds: 0``).
RECONCILER_IDLE_MARGIN_SECONDS: Final = 120
RECONCILER_IDLE_WITHOUT_WATCHDOG_SECONDS: Final = 3600


def lambda_environment(
    *,
    webhook_secret_arn: str,
    github_token_secret_arn: str,
    ecs_cluster: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
    idempotency_table: str,
    profiles_parameters: Sequence[str],
    profiles_version: str,
    runner_name_prefix: str,
    jit_secret_prefix: str,
    github_hook_parameter: str,
    service_name: str,
    github_api_url: str = DEFAULT_GITHUB_API_URL,
    assign_public_ip: bool = False,
    runner_scope: str = "repo",
    runner_group_id: int = 1,
    allowed_repositories: Sequence[str] = (),
    retry_queue_url: str = "",
    dead_letter_queue_url: str = "",
    retry_max_attempts: int = 8,
    deployment_id: str = "",
    task_idle_timeout_seconds: int = 900,
    github_hook_path: str = "",
    metrics_namespace: str = "",
    log_level: str = "INFO",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The dispatch Lambdas' environment: the one builder the construct, local mode and the
    benchmarks share, so the three cannot drift apart (``tests/infra/test_contract.py``).

    Always the same keys (an unused optional one is empty, which the Lambda reads as its
    default); ``extra`` adds optional groups (GitHub App, tracing), each key of which must
    be in :data:`LAMBDA_ENVIRONMENT` or :data:`POWERTOOLS_ENVIRONMENT`. Values may be CDK
    tokens (strings): nothing here looks inside them. Profiles travel only through the SSM
    parameters (``lambda_fn/profile_store.py``); ``RUNNER_PROFILES`` stays readable as the
    compatibility path, but nothing this builds sets it.
    """
    environment = {
        "WEBHOOK_SECRET_ARN": webhook_secret_arn,
        "GITHUB_TOKEN_SECRET_ARN": github_token_secret_arn,
        "GITHUB_API_URL": github_api_url.rstrip("/"),
        "ECS_CLUSTER": ecs_cluster,
        "SUBNET_IDS": ",".join(subnet_ids),
        "SECURITY_GROUP_IDS": ",".join(security_group_ids),
        "ASSIGN_PUBLIC_IP": "ENABLED" if assign_public_ip else "DISABLED",
        "RUNNER_PROFILES_PARAMETERS": ",".join(profiles_parameters),
        "RUNNER_PROFILES_VERSION": profiles_version,
        "RUNNER_SCOPE": runner_scope,
        "RUNNER_GROUP_ID": str(runner_group_id),
        "ALLOWED_REPOSITORIES": ",".join(allowed_repositories),
        "IDEMPOTENCY_TABLE": idempotency_table,
        "RETRY_QUEUE_URL": retry_queue_url,
        "DEAD_LETTER_QUEUE_URL": dead_letter_queue_url,
        "RETRY_MAX_ATTEMPTS": str(retry_max_attempts),
        "RUNNER_NAME_PREFIX": runner_name_prefix,
        "DEPLOYMENT_ID": deployment_id,
        "RECONCILER_IDLE_TIMEOUT_SECONDS": str(
            (task_idle_timeout_seconds or RECONCILER_IDLE_WITHOUT_WATCHDOG_SECONDS)
            + RECONCILER_IDLE_MARGIN_SECONDS
        ),
        "GITHUB_HOOK_PATH": github_hook_path,
        "JIT_SECRET_PREFIX": jit_secret_prefix,
        "GITHUB_HOOK_PARAMETER": github_hook_parameter,
        "POWERTOOLS_SERVICE_NAME": service_name,
        "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace or METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": log_level,
    }
    unknown = set(extra or {}) - set(LAMBDA_ENVIRONMENT) - set(POWERTOOLS_ENVIRONMENT)
    if unknown:
        raise ValueError(f"not in lambda_fn.contract: {', '.join(sorted(unknown))}")
    return {**environment, **(extra or {})}


#: Keys of one ``RUNNER_PROFILES`` item (a JSON array of objects, in match order).
PROFILE_REQUIRED_KEYS: Final = ("name", "labels", "task_definition", "container_name")
PROFILE_OPTIONAL_KEYS: Final = (
    "task_role_id",
    "capacity",
    "max_runners",
    "policy",
    "subnet_ids",
    "security_group_ids",
    "assign_public_ip",
    "runner_group_id",
    "warm",
    "match",
    "runner_version",
)

#: The runner task's idle watchdog (seconds; ``fargate_runners/runner/entrypoint.sh``): set in
#: the task definition, raised by the Lambda's container override for a warm-pool runner.
#: The task's variable, not the Lambda's (that one is ``RECONCILER_IDLE_TIMEOUT_SECONDS``).
TASK_IDLE_TIMEOUT_ENV: Final = "RUNNER_IDLE_TIMEOUT_SECONDS"

#: Tags on every runner task started for a job (set at ``RunTask``, lambda_fn/launcher.py):
#: the job, its run and attempt, and ``owner/repo``. A warm-pool runner, started for no
#: job, has only TAG_GITHUB_REPOSITORY: its scope (``owner/repo``, or the organisation).
TAG_GITHUB_JOB_ID: Final = "github:job-id"
TAG_GITHUB_RUN_ID: Final = "github:run-id"
TAG_GITHUB_RUN_ATTEMPT: Final = "github:run-attempt"
TAG_GITHUB_REPOSITORY: Final = "github:repository"

#: Tags on every runner task (set at ``RunTask``) and on every sealed JIT config secret.
TAG_PROFILE: Final = "runner:profile"
TAG_RUNNER_NAME: Final = "runner:name"
TAG_RUNNER_ID: Final = "runner:id"
TAG_CAPACITY: Final = "runner:capacity"
TAG_DEPLOYMENT: Final = "runner:deployment"
#: On a warm-pool member's task: the profile whose pool it belongs to (lambda_fn/warm_pool.py).
TAG_POOL: Final = "runner:pool"
#: On the sealed JIT secret: ``<task role id>:<task id>``, the one session that may read it.
TAG_TASK_USERID: Final = "runner:task-userid"
#: On the sealed JIT secret: the task it was made for.
TAG_TASK_ARN: Final = "runner:task-arn"
#: On a managed step task (set at ``RunTask`` by the runner's hook,
#: fargate_runners/runner/managed_steps.py): ``<runner task role id>:<runner task id>``,
#: the ``aws:userid`` of the one runner session that started it and alone may stop it.
TAG_STEP_OWNER: Final = "runner:step-owner"

#: The stack's outputs, which ``fargate-runners`` (the CLI) reads.
OUTPUT_WEBHOOK_URL: Final = "WebhookUrl"
OUTPUT_WEBHOOK_SECRET_ARN: Final = "WebhookSecretArn"  # noqa: S105 - an output name
OUTPUT_GITHUB_TOKEN_SECRET_ARN: Final = "GitHubTokenSecretArn"  # noqa: S105 - an output name
OUTPUT_CLUSTER_NAME: Final = "ClusterName"
OUTPUT_RETRY_QUEUE_URL: Final = "RetryQueueUrl"
OUTPUT_DEAD_LETTER_QUEUE_URL: Final = "DeadLetterQueueUrl"
OUTPUT_HOOK_PARAMETER: Final = "WebhookHookParameter"
OUTPUT_DASHBOARD_NAME: Final = "DashboardName"
#: Per profile: ``SecurityGroup<Profile>`` (the runner tasks' groups) and, for a managed-steps
#: profile, ``StepSecurityGroup<Profile>`` (its step tasks' group), comma-separated ids, so a
#: target can admit exactly one profile (docs/networks.md). ``deploy-eu`` -> ``DeployEu``.
OUTPUT_SECURITY_GROUP_PREFIX: Final = "SecurityGroup"
OUTPUT_STEP_SECURITY_GROUP_PREFIX: Final = "StepSecurityGroup"


def profile_output_name(prefix: str, profile: str) -> str:
    """``prefix`` + the profile name in CamelCase (a CloudFormation output id is alphanumeric)."""
    return prefix + "".join(part[:1].upper() + part[1:] for part in profile.split("-"))


#: Every ``FargateRunners`` instance adds one output whose value is a JSON object (the
#: *instance record*): ``{"fargate_runners_instance": 1, "instance": <construct path in the
#: stack>, "logical_id_prefix": <what its resources' logical ids start with>, and the
#: OUTPUT_* names above as keys}``. Its output key is ``<prefix>FargateRunnersInstance<hash>``
#: (unique per instance); the CLI finds records by the marker key, so any number of
#: instances in one stack stay apart (``--instance``).
OUTPUT_INSTANCE_RECORD: Final = "FargateRunnersInstance"
INSTANCE_RECORD_MARKER: Final = "fargate_runners_instance"
INSTANCE_RECORD_VERSION: Final = 1
INSTANCE_RECORD_NAME: Final = "instance"
INSTANCE_RECORD_PREFIX: Final = "logical_id_prefix"
REQUIRED_OUTPUTS: Final = (
    OUTPUT_WEBHOOK_URL,
    OUTPUT_WEBHOOK_SECRET_ARN,
    OUTPUT_GITHUB_TOKEN_SECRET_ARN,
    OUTPUT_CLUSTER_NAME,
)
OPTIONAL_OUTPUTS: Final = (
    OUTPUT_RETRY_QUEUE_URL,
    OUTPUT_DEAD_LETTER_QUEUE_URL,
    OUTPUT_HOOK_PARAMETER,
    OUTPUT_DASHBOARD_NAME,
)
