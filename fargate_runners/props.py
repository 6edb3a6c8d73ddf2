"""The construct's typed properties and the constants its parts share."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aws_cdk import (
    Duration,
    RemovalPolicy,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns

import lambda_fn
from lambda_fn import contract

from .config import (
    CONTAINER_NAME,
    DEFAULT_GITHUB_API_URL,
    RunnerProfile,
    check_construct_props,
)
from .config_errors import ConfigError, Problem
from .github_app import GitHubAppAuth
from .runner_files import STOP_TIMEOUT_SECONDS

RETRY_FUNCTION_TIMEOUT_SECONDS = 60
#: Stopping a task takes up to its container's stopTimeout (STOP_TIMEOUT_SECONDS, Fargate's
#: maximum of 120 s) plus deprovisioning; the handler waits for all but the last 20 s.
TEARDOWN_TIMEOUT_SECONDS = 600
if TEARDOWN_TIMEOUT_SECONDS < 3 * STOP_TIMEOUT_SECONDS:  # pragma: no cover
    raise RuntimeError("the teardown must outlast several stop timeouts")
#: Latest Python runtime aws-cdk-lib knows (cdk-nag AwsSolutions-L1 demands the latest).
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
API_STAGE = "prod"
METRICS_NAMESPACE = contract.METRICS_NAMESPACE
#: The actions-runner image's non-root ``runner`` user.
RUNNER_USER = "1001"
DEFAULT_LAMBDA_SOURCE = Path(lambda_fn.__file__).resolve().parent

_RETENTION: Mapping[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention_days(days: int) -> logs.RetentionDays:
    """CloudWatch ``RetentionDays`` for a number of days (one of the allowed values)."""
    try:
        return _RETENTION[days]
    except KeyError:
        raise ValueError(f"{days} is not a CloudWatch Logs retention value") from None


def removal_policy(policy: str) -> RemovalPolicy:
    """The CDK ``RemovalPolicy`` of a ``log_removal_policy`` (``destroy`` or ``retain``)."""
    return RemovalPolicy.RETAIN if policy == "retain" else RemovalPolicy.DESTROY


# -- deprecated prop names (issue 26), accepted for one release ---------------------------


def _days(value: logs.RetentionDays) -> int:
    for days, retention in _RETENTION.items():
        if retention == value:
            return days
    raise ValueError(
        f"{value} has no log_retention_days equivalent: give log_retention_days, "
        "one of the CloudWatch Logs retention values"
    )


def _policy(value: RemovalPolicy) -> str:
    for name in ("destroy", "retain"):
        if removal_policy(name) == value:
            return name
    raise ValueError(f"{value} is not a log group removal policy: give 'destroy' or 'retain'")


def _minutes(value: Duration) -> int:
    try:
        return int(value.to_minutes())
    except RuntimeError:  # jsii: CannotConvertedIntoWhole
        raise ValueError(
            f"{value.to_human_string()!r} is not a whole number of minutes: "
            "give reconcile_interval_minutes"
        ) from None


def _same(value: Any) -> Any:
    return value


#: Deprecated field -> (the field that replaced it, how its value converts).
DEPRECATED_PROPS: Mapping[str, tuple[str, Callable[[Any], Any]]] = {
    "throttling_rate_limit": ("webhook_throttle_rate", _same),
    "throttling_burst_limit": ("webhook_throttle_burst", _same),
    "log_retention": ("log_retention_days", _days),
    "reconcile_interval": ("reconcile_interval_minutes", _minutes),
}


@dataclass(frozen=True)
class FargateRunnersProps:
    """Properties of :class:`FargateRunners`.

    :param profiles: runner profiles (validated: unique names, none shadowed by another).

    Constructing props validates them like ``cdk.json`` (``ConfigError`` listing every
    problem, keys named as here): an ``http://`` ``github_api_url``, ``assign_public_ip=False``
    without ``vpc``, an empty restriction list... fail here, not at deploy.
    :param vpc: VPC for runner tasks; default: a new VPC, public subnets in 2 AZs,
        no NAT gateway, flow logs on.
    :param vpc_subnets: which subnets of ``vpc`` tasks run in (required in practice
        for an imported VPC, e.g. ``SubnetSelection(subnets=[Subnet.from_subnet_id(...)])``);
        default: the public subnets of the new VPC, or CDK's default selection.
    :param subnet_ids: subnet ids for runner tasks, instead of ``vpc_subnets`` (no lookups).
    :param vpc_endpoints: interface endpoints (ECR API and Docker, CloudWatch Logs, Secrets
        Manager, STS) in the runner subnets and an S3 gateway endpoint on
        ``vpc_endpoint_route_table_ids``: what Fargate needs to start a task from ECR
        with awslogs and Secrets Manager secrets in private subnets without NAT.
    :param vpc_endpoint_route_table_ids: route tables of those subnets (S3 gateway).
    :param runner_scope: ``repo`` or ``org``: where JIT runners are registered.
    :param runner_group_id: runner group id for the JIT config.
    :param allowed_repositories: ``owner/repo`` or ``owner/*``; empty = any.
    :param github_api_url: GitHub REST base URL (GHES: ``https://HOST/api/v3``).
    :param github_token_secret: existing secret holding the PAT; default: a new empty secret.
    :param github_app: authenticate as this GitHub App (JWT signed by a KMS key holding its
        private key, ``github_app.py``) instead of with the PAT; default: the PAT.
    :param log_retention_days: retention of every log group this construct creates (a
        CloudWatch Logs retention value, e.g. 30).
    :param log_removal_policy: what ``cdk destroy`` does with those log groups: ``destroy``
        (default: nothing left behind) or ``retain``.
    :param api_gateway_logging: ``off`` (default: no API access/execution logs, the
        account-wide API Gateway setting untouched), ``existing`` (the region's API Gateway
        account already has a CloudWatch role: access logs and ERROR execution logs), or
        ``create`` (as ``existing``, and this stack sets the region-wide role).
    :param assign_public_ip: public IP for tasks; default: true for the new VPC, else false.
    :param webhook_throttle_rate: API stage steady-state requests per second.
    :param webhook_throttle_burst: API stage burst.
    :param name_prefix: prefix of the physical names (cluster, task definition families
        ``<prefix>-runner-<profile>``, API, JIT secret path, metrics service); default:
        unique per construct path (``Names.unique_resource_name``, at most 32 characters),
        so two instances never share a name.
    :param runner_name_prefix: prefix of runner names (1-20 lower-case letters, digits or
        ``-``); default: derived from ``name_prefix``
        (``lambda_fn.naming.runner_name_prefix_from``).
    :param lambda_source_dir: the webhook Lambda package; default: ``lambda_fn/`` of this repo.
    :param retry_max_attempts: launch attempts before a job goes to the dead-letter queue.
    :param alarm_topic: SNS topic for the alarms (DLQ not empty, launch failures); optional.
    :param runner_idle_timeout_seconds: a runner with no job after this long stops (the
        task's own watchdog) and is cleaned up by the reconciler; 0 turns the watchdog off.
    :param reconcile_interval_minutes: how often the reconciler runs (1..60).
    :param github_hook_path: ``repos/O/R/hooks/ID`` or ``orgs/O/hooks/ID``: the webhook
        whose failed deliveries the reconciler redelivers; default: the one
        ``fargate-runners setup`` records in :attr:`FargateRunners.hook_parameter`.
    :param webhook_firewall: a WAF web ACL on the stage that admits only
        ``webhook_source_cidrs`` and rate-limits each source (``fargate_runners/firewall.py``).
    :param webhook_source_cidrs: where deliveries come from; default: github.com's
        ``hooks`` ranges, kept current by a scheduled refresh from ``/meta``.
    :param webhook_rate_limit: requests per source address per 5 minutes.
    :param detailed_tracing: X-Ray subsegments for the GitHub and ECS calls (adds the
        X-Ray SDK as a layer; costs every cold start its import, ``fargate_runners/tracing.py``).

    The plain-data fields have the names, types and defaults of the ``cdk.json`` keys
    (``fargate_runners.config.SHARED_FIELDS``). Deprecated, accepted for this release with
    a ``DeprecationWarning`` and converted to their replacement (``DEPRECATED_PROPS``):
    ``throttling_rate_limit``/``throttling_burst_limit`` (``webhook_throttle_rate``/
    ``_burst``), ``log_retention`` (a ``RetentionDays``: ``log_retention_days``),
    ``reconcile_interval`` (a ``Duration`` of whole minutes: ``reconcile_interval_minutes``)
    and ``log_removal_policy`` given as a ``RemovalPolicy``. Giving an old name and its
    replacement (not at its default) is a ``ConfigError``.
    """

    profiles: Sequence[RunnerProfile]
    vpc: ec2.IVpc | None = None
    vpc_subnets: ec2.SubnetSelection | None = None
    subnet_ids: Sequence[str] = field(default_factory=tuple)
    vpc_endpoints: bool = False
    vpc_endpoint_route_table_ids: Sequence[str] = field(default_factory=tuple)
    runner_scope: str = "repo"
    runner_group_id: int = 1
    allowed_repositories: Sequence[str] = field(default_factory=tuple)
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_token_secret: secretsmanager.ISecret | None = None
    github_app: GitHubAppAuth | None = None
    log_retention_days: int = 30
    #: ``destroy`` or ``retain`` (a ``RemovalPolicy`` is the deprecated form).
    log_removal_policy: str | RemovalPolicy = "destroy"
    api_gateway_logging: str = "off"
    assign_public_ip: bool | None = None
    webhook_throttle_rate: float = 20
    webhook_throttle_burst: int = 40
    name_prefix: str | None = None
    runner_name_prefix: str | None = None
    lambda_source_dir: Path = DEFAULT_LAMBDA_SOURCE
    retry_max_attempts: int = 8
    alarm_topic: sns.ITopic | None = None
    runner_idle_timeout_seconds: int = 900
    reconcile_interval_minutes: int = 5
    github_hook_path: str | None = None
    webhook_firewall: bool = True
    webhook_source_cidrs: Sequence[str] | None = None
    webhook_rate_limit: int = 2000
    detailed_tracing: bool = False
    # Deprecated names (DEPRECATED_PROPS): None once converted.
    throttling_rate_limit: float | None = field(default=None, kw_only=True)
    throttling_burst_limit: int | None = field(default=None, kw_only=True)
    log_retention: logs.RetentionDays | None = field(default=None, kw_only=True)
    reconcile_interval: Duration | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        """The checks ``cdk.json`` gets (fargate_runners/config.py); ``ConfigError`` if not."""
        self._adopt_deprecated()
        settings = check_construct_props(self)
        object.__setattr__(self, "profiles", settings.profiles)

    @property
    def log_group_removal_policy(self) -> RemovalPolicy:
        """``log_removal_policy`` as CDK's ``RemovalPolicy``."""
        return removal_policy(str(self.log_removal_policy))

    @property
    def log_group_retention(self) -> logs.RetentionDays:
        """``log_retention_days`` as CDK's ``RetentionDays``."""
        return retention_days(self.log_retention_days)

    @property
    def reconcile_period(self) -> Duration:
        """``reconcile_interval_minutes`` as a ``Duration``."""
        return Duration.minutes(self.reconcile_interval_minutes)

    def _adopt_deprecated(self) -> None:
        """Move each deprecated field's value to its replacement, warning once for each.

        The converted value is then validated with the rest, like one given by its new name.
        """
        defaults = {f.name: f.default for f in fields(self)}
        renamed = dict(DEPRECATED_PROPS)
        if isinstance(self.log_removal_policy, RemovalPolicy):
            renamed["log_removal_policy"] = ("log_removal_policy", _policy)
        problems: list[Problem] = []
        for old, (new, convert) in renamed.items():
            value = getattr(self, old)
            if value is None:
                continue
            if old != new and getattr(self, new) != defaults[new]:
                problems.append(
                    Problem(
                        old,
                        f"{value!r} and {new}={getattr(self, new)!r} both given: {old} is the "
                        f"deprecated name of {new}; give {new} only",
                    )
                )
                continue
            what = f"a {type(value).__name__}" if old == new else old
            warnings.warn(
                f"FargateRunnersProps: {what} for {old} is deprecated and will be removed "
                f"in the next release; give {new} ({defaults[new]!r} by default)",
                DeprecationWarning,
                # _adopt_deprecated <- __post_init__ <- __init__ <- the caller
                stacklevel=4,
            )
            try:
                converted = convert(value)
            except ValueError as exc:
                problems.append(Problem(old, str(exc)))
                continue
            if old != new:
                object.__setattr__(self, old, None)
            object.__setattr__(self, new, converted)
        if problems:
            raise ConfigError(problems)


def runtime_platform(architecture: str) -> ecs.RuntimePlatform:
    """Linux on ``ARM64`` or ``X86_64`` (a profile's ``architecture``): the platform of its
    runner tasks and of its managed step tasks."""
    return ecs.RuntimePlatform(
        operating_system_family=ecs.OperatingSystemFamily.LINUX,
        cpu_architecture=(
            ecs.CpuArchitecture.ARM64 if architecture == "ARM64" else ecs.CpuArchitecture.X86_64
        ),
    )


def lambda_profile_entry(
    profile: RunnerProfile,
    task_definition: ecs.FargateTaskDefinition,
    task_role: iam.Role,
    security_groups: Sequence[ec2.ISecurityGroup] = (),
) -> dict[str, Any]:
    """One item of the Lambda's ``RUNNER_PROFILES`` (see ``RunnerProfile.lambda_entry``)."""
    return profile.lambda_entry(
        task_definition.task_definition_arn,
        CONTAINER_NAME,
        task_role.role_id,
        [group.security_group_id for group in security_groups],
    )


#: A realistic IAM role unique id, for the size estimate.
_SAMPLE_ROLE_ID = "AROA" + "X" * 17
