"""``FargateRunners``: ephemeral GitHub Actions runners on Fargate, as one reusable construct.

Drop it into any CDK app::

    from fargate_runners import FargateRunners, FargateRunnersProps, RunnerProfile

    FargateRunners(stack, "Runners", FargateRunnersProps(
        profiles=[RunnerProfile(name="default", labels=("self-hosted", "linux", "arm64"))],
    ))

What it creates: an ECS cluster (Container Insights, FARGATE and FARGATE_SPOT
capacity providers), one Fargate task definition per profile (container
``runner``, no permissions on the task role), an egress-only security group,
the webhook secret (generated) and the GitHub PAT secret (empty, or imported),
a DynamoDB idempotency table, the webhook Lambda and a REST API with only
``POST /webhook``. Without a ``vpc`` it also creates a VPC with public subnets
in 2 AZs, no NAT gateway, and flow logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import (
    Acknowledgment,
    Annotations,
    ArnFormat,
    CustomResource,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

import lambda_fn
from lambda_fn.config import HOOK_NOT_RECORDED
from lambda_fn.jit_secret import BOUND_TAG, TASK_TAG
from lambda_fn.source_ranges import GITHUB_HOOKS_SNAPSHOT, SourceRanges

from .alarms import operational_alarms
from .bundling import lambda_code
from .config import (
    API_GATEWAY_LOGGING,
    CONTAINER_NAME,
    DEFAULT_GITHUB_API_URL,
    RUNNER_SCOPES,
    RunnerProfile,
    check_profiles,
)
from .dashboard import add_dashboard
from .env_size import check_environment_size
from .firewall import WebhookFirewall
from .github_app import GitHubAppAuth, GitHubAppKey
from .runner_files import STOP_TIMEOUT_SECONDS, entrypoint_command, runner_environment

__all__ = [
    "CONTAINER_NAME",
    "LAMBDA_RUNTIME",
    "RUNNER_COMMAND",
    "RUNNER_USER",
    "FargateRunners",
    "FargateRunnersProps",
    "lambda_profile_entry",
    "retention_days",
]

RETRY_FUNCTION_TIMEOUT_SECONDS = 60
#: Stopping a task takes up to its container's stopTimeout (STOP_TIMEOUT_SECONDS, Fargate's
#: maximum of 120 s) plus deprovisioning; the handler waits for all but the last 20 s.
TEARDOWN_TIMEOUT_SECONDS = 600
if TEARDOWN_TIMEOUT_SECONDS < 3 * STOP_TIMEOUT_SECONDS:  # pragma: no cover
    raise RuntimeError("the teardown must outlast several stop timeouts")
#: Latest Python runtime aws-cdk-lib knows (cdk-nag AwsSolutions-L1 demands the latest).
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
#: What the stock image runs without our entrypoint (kept for reference and custom images).
RUNNER_COMMAND = ("/home/runner/run.sh",)
SERVICE_NAME = "runner-webhook"
API_STAGE = "prod"
METRICS_NAMESPACE = "FargateRunners"
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


@dataclass(frozen=True)
class FargateRunnersProps:
    """Properties of :class:`FargateRunners`.

    :param profiles: runner profiles (validated: unique names and label sets).
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
    :param log_retention: retention of every log group this construct creates.
    :param log_removal_policy: what ``cdk destroy`` does with those log groups; default
        ``DESTROY`` (nothing left behind), ``RETAIN`` keeps them.
    :param api_gateway_logging: ``off`` (default: no API access/execution logs, the
        account-wide API Gateway setting untouched), ``existing`` (the region's API Gateway
        account already has a CloudWatch role: access logs and ERROR execution logs), or
        ``create`` (as ``existing``, and this stack sets the region-wide role).
    :param assign_public_ip: public IP for tasks; default: true for the new VPC, else false.
    :param throttling_rate_limit: API stage steady-state requests per second.
    :param throttling_burst_limit: API stage burst.
    :param name_prefix: prefix of task definition families (``<prefix>-runner-<profile>``);
        default: the stack name.
    :param runner_name_prefix: prefix of runner names; default: lowercase ``name_prefix``.
    :param lambda_source_dir: the webhook Lambda package; default: ``lambda_fn/`` of this repo.
    :param retry_max_attempts: launch attempts before a job goes to the dead-letter queue.
    :param alarm_topic: SNS topic for the alarms (DLQ not empty, launch failures); optional.
    :param runner_idle_timeout_seconds: a runner with no job after this long stops (the
        task's own watchdog) and is cleaned up by the reconciler; 0 turns the watchdog off.
    :param reconcile_interval: how often the reconciler runs.
    :param github_hook_path: ``repos/O/R/hooks/ID`` or ``orgs/O/hooks/ID``: the webhook
        whose failed deliveries the reconciler redelivers; default: the one
        ``fargate-runners setup`` records in :attr:`FargateRunners.hook_parameter`.
    :param webhook_firewall: a WAF web ACL on the stage that admits only
        ``webhook_source_cidrs`` and rate-limits each source (``cdk/firewall.py``).
    :param webhook_source_cidrs: where deliveries come from; default: github.com's
        ``hooks`` ranges, kept current by a scheduled refresh from ``/meta``.
    :param webhook_rate_limit: requests per source address per 5 minutes.
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
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    log_removal_policy: RemovalPolicy = RemovalPolicy.DESTROY
    api_gateway_logging: str = "off"
    assign_public_ip: bool | None = None
    throttling_rate_limit: float = 20
    throttling_burst_limit: int = 40
    name_prefix: str | None = None
    runner_name_prefix: str | None = None
    lambda_source_dir: Path = DEFAULT_LAMBDA_SOURCE
    retry_max_attempts: int = 8
    alarm_topic: sns.ITopic | None = None
    runner_idle_timeout_seconds: int = 900
    reconcile_interval: Duration = field(default_factory=lambda: Duration.minutes(5))
    github_hook_path: str | None = None
    webhook_firewall: bool = True
    webhook_source_cidrs: Sequence[str] | None = None
    webhook_rate_limit: int = 2000


def lambda_profile_entry(
    profile: RunnerProfile, task_definition: ecs.FargateTaskDefinition, task_role: iam.Role
) -> dict[str, Any]:
    """One item of the Lambda's ``RUNNER_PROFILES`` (see ``RunnerProfile.lambda_entry``)."""
    return profile.lambda_entry(
        task_definition.task_definition_arn, CONTAINER_NAME, task_role.role_id
    )


#: A realistic IAM role unique id, for the size estimate.
_SAMPLE_ROLE_ID = "AROA" + "X" * 17


def _selection_kwargs(selection: ec2.SubnetSelection) -> dict[str, Any]:
    """``SubnetSelection`` as keyword arguments for ``IVpc.select_subnets``."""
    names = (
        "availability_zones", "one_per_az", "subnet_filters", "subnet_group_name",
        "subnets", "subnet_type",
    )  # fmt: skip
    values = {name: getattr(selection, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def nag_flatten(value: Any) -> str:
    """A resolved CloudFormation value flattened the way cdk-nag names findings."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return str(delimiter).join(nag_flatten(item) for item in items)
        if "Fn::Sub" in value:
            return nag_flatten(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{nag_flatten(resource)}.{nag_flatten(attribute)}>"
        if "Fn::ImportValue" in value:
            return nag_flatten(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{nag_flatten(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


class FargateRunners(Construct):
    """Webhook-driven, single-use GitHub Actions runners on AWS Fargate."""

    vpc: ec2.IVpc
    cluster: ecs.Cluster
    security_group: ec2.SecurityGroup
    task_definitions: dict[str, ecs.FargateTaskDefinition]
    task_roles: dict[str, iam.Role]
    execution_roles: dict[str, iam.Role]
    runner_log_group: logs.LogGroup
    webhook_secret: secretsmanager.Secret
    github_token_secret: secretsmanager.ISecret
    idempotency_table: dynamodb.Table
    webhook_function: lambda_.Function
    webhook_role: iam.Role
    retry_function: lambda_.Function
    reconciler_function: lambda_.Function
    retry_queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    api: apigw.RestApi
    subnet_ids: list[str]

    def __init__(self, scope: Construct, construct_id: str, props: FargateRunnersProps) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        profiles = tuple(props.profiles)
        check_profiles(profiles)
        if props.api_gateway_logging not in API_GATEWAY_LOGGING:
            raise ValueError(f"api_gateway_logging must be one of {', '.join(API_GATEWAY_LOGGING)}")
        if props.runner_scope not in RUNNER_SCOPES:
            raise ValueError(f"runner_scope must be one of {', '.join(RUNNER_SCOPES)}")

        stack = Stack.of(self)
        prefix = props.name_prefix or stack.stack_name
        if Token.is_unresolved(prefix):
            raise ValueError("name_prefix is required when the stack name is not a plain string")
        self.name_prefix = prefix
        # The Lambda accepts 1-20 characters (lambda_fn/config.py); the deployment id,
        # not the prefix, is what keeps two deployments' runners apart.
        self.runner_name_prefix = (props.runner_name_prefix or prefix.lower())[:20].rstrip("-")
        # First group of the stack id's UUID (arn:...:stack/<name>/<uuid>): unique per
        # deployed stack, also for equal stack names in two regions or accounts.
        self.deployment_id = Fn.select(
            0, Fn.split("-", Fn.select(2, Fn.split("/", stack.stack_id)))
        )
        #: Secrets Manager names of the per-runner sealed JIT configs: ``<prefix>/<runner>``.
        self.jit_secret_prefix = f"{prefix}/jit"

        self._network(props)
        if props.vpc_endpoints:
            self._vpc_endpoints(props)
        self._cluster()
        self._runner_tasks(profiles, props)
        self._secrets(props)
        app = props.github_app
        self.github_app = GitHubAppKey(self, "GitHubApp", app) if app else None
        self._table()
        self._queues()
        self._hook_parameter()
        self._functions(profiles, props)
        self._api(props)
        self._firewall(props)
        for role in (self.webhook_role, self.retry_role, self.reconciler_role):
            self._grant_dispatch(role)
            if self.github_app is not None:
                self.github_app.grant_sign(role)
        self._grant_hook_parameter(self.reconciler_role)
        self._observability(profiles, props)

    # -- network -----------------------------------------------------------

    def _network(self, props: FargateRunnersProps) -> None:
        created_vpc = props.vpc is None
        if props.vpc is None:
            flow_log_group = self._log_group("VpcFlowLogs")
            vpc = ec2.Vpc(
                self,
                "Vpc",
                max_azs=2,
                nat_gateways=0,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20
                    )
                ],
                flow_logs={
                    "FlowLogs": ec2.FlowLogOptions(
                        destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                        traffic_type=ec2.FlowLogTrafficType.ALL,
                    )
                },
            )
            self.vpc = vpc
        else:
            self.vpc = props.vpc
        selection = props.vpc_subnets
        if props.subnet_ids and selection is not None:
            raise ValueError("give either subnet_ids or vpc_subnets, not both")
        if props.subnet_ids:
            self.subnet_ids = list(props.subnet_ids)
        elif selection is not None and selection.subnets:
            # Explicit subnets (e.g. Subnet.from_subnet_id): no AZ lookup needed.
            self.subnet_ids = [subnet.subnet_id for subnet in selection.subnets]
        else:
            if selection is None and created_vpc:
                selection = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
            selected = (
                self.vpc.select_subnets(**_selection_kwargs(selection))
                if selection is not None
                else self.vpc.select_subnets()
            )
            self.subnet_ids = list(selected.subnet_ids)
        if not self.subnet_ids:
            raise ValueError("the subnet selection for runner tasks is empty")
        self.assign_public_ip = (
            props.assign_public_ip if props.assign_public_ip is not None else created_vpc
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "RunnerSecurityGroup",
            vpc=self.vpc,
            description="GitHub Actions runner tasks: egress only, no inbound access",
            allow_all_outbound=True,
        )

    def _vpc_endpoints(self, props: FargateRunnersProps) -> None:
        """What a Fargate task needs in private subnets without NAT, besides GitHub.

        Pulling from ECR needs ``ecr.api``, ``ecr.dkr`` and S3 (image layers) through a
        gateway endpoint; the awslogs driver needs ``logs``; ECS secrets need
        ``secretsmanager`` (https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html,
        https://repost.aws/knowledge-center/ecs-fargate-docker-timeout-error). STS is not
        needed to start a task; it is for jobs that assume roles. Runners still need a
        route to GitHub (NAT, proxy or GitHub Enterprise Server inside the VPC).
        """
        if isinstance(self.vpc, ec2.Vpc) and self.vpc.node.scope is self:
            raise ValueError("vpc_endpoints is for an existing VPC with private subnets")
        if not props.vpc_endpoint_route_table_ids:
            raise ValueError("vpc_endpoints needs vpc_endpoint_route_table_ids (S3 gateway)")
        endpoint_group = ec2.SecurityGroup(
            self,
            "VpcEndpointSecurityGroup",
            vpc=self.vpc,
            description="VPC interface endpoints: HTTPS from runner tasks only",
            allow_all_outbound=False,
        )
        endpoint_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(443), "HTTPS from runner tasks"
        )
        subnets = ec2.SubnetSelection(
            subnets=[
                ec2.Subnet.from_subnet_id(self, f"EndpointSubnet{i}", subnet_id)
                for i, subnet_id in enumerate(self.subnet_ids)
            ]
        )
        services = {
            "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
            "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
            "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
            "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
            "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
        }
        for name, service in services.items():
            ec2.InterfaceVpcEndpoint(
                self,
                f"{name}Endpoint",
                vpc=self.vpc,
                service=service,
                subnets=subnets,
                security_groups=[endpoint_group],
                private_dns_enabled=True,
                open=False,
            )
        ec2.CfnVPCEndpoint(
            self,
            "S3Endpoint",
            vpc_id=self.vpc.vpc_id,
            service_name=ec2.GatewayVpcEndpointAwsService.S3.name,
            vpc_endpoint_type="Gateway",
            route_table_ids=list(props.vpc_endpoint_route_table_ids),
        )

    # -- ECS -----------------------------------------------------------------

    def _cluster(self) -> None:
        # Container Insights writes to /aws/ecs/containerinsights/<cluster>/performance and
        # would create that group itself, outside the stack and without expiry
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-reference-performance-logs-ECS.html).
        # A named cluster lets the stack create the group first, with retention and removal.
        cluster_name = self.cluster_physical_name
        insights_logs = self._log_group(
            "ContainerInsightsLogs",
            log_group_name=f"/aws/ecs/containerinsights/{cluster_name}/performance",
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )
        self.cluster.node.add_dependency(insights_logs)

    @property
    def cluster_physical_name(self) -> str:
        """The cluster's name, fixed so its Container Insights log group can exist first."""
        return f"{self.name_prefix}-runners"

    def family(self, profile: RunnerProfile) -> str:
        """The task definition family of a profile: ``<prefix>-runner-<profile>``."""
        return f"{self.name_prefix}-runner-{profile.name}"

    def _runner_tasks(self, profiles: Sequence[RunnerProfile], props: FargateRunnersProps) -> None:
        self.runner_log_group = self._log_group("RunnerLogs")
        self.task_definitions = {}
        self.task_roles = {}
        self.execution_roles = {}
        for profile in profiles:
            scope = Construct(self, f"Profile-{profile.name}")
            task_role = iam.Role(
                scope,
                "TaskRole",
                assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                description=f"Runner profile {profile.name}: task role, reads its own JIT config",
            )
            execution_role = iam.Role(
                scope,
                "ExecutionRole",
                assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                description=f"Runner profile {profile.name}: ECS execution role (logs only)",
            )
            task_definition = ecs.FargateTaskDefinition(
                scope,
                "TaskDefinition",
                family=self.family(profile),
                cpu=profile.cpu,
                memory_limit_mib=profile.memory,
                ephemeral_storage_gib=profile.ephemeral_storage_gib,
                runtime_platform=ecs.RuntimePlatform(
                    operating_system_family=ecs.OperatingSystemFamily.LINUX,
                    cpu_architecture=(
                        ecs.CpuArchitecture.ARM64
                        if profile.architecture == "ARM64"
                        else ecs.CpuArchitecture.X86_64
                    ),
                ),
                task_role=task_role,
                execution_role=execution_role,
            )
            task_definition.add_container(
                CONTAINER_NAME,
                container_name=CONTAINER_NAME,
                image=ecs.ContainerImage.from_registry(profile.effective_image),
                # The entrypoint installs the policy hook and idle watchdog, then runs run.sh.
                command=entrypoint_command(),
                environment={
                    **runner_environment(profile.policy, props.runner_idle_timeout_seconds),
                    **profile.environment,
                },
                secrets={
                    name: ecs.Secret.from_secrets_manager(
                        secretsmanager.Secret.from_secret_complete_arn(scope, f"Secret-{name}", arn)
                    )
                    for name, arn in profile.secrets.items()
                },
                user=RUNNER_USER,
                # SIGTERM reaches the Listener as SIGINT (entrypoint.sh); this is the time
                # ECS gives the runner before SIGKILL.
                stop_timeout=Duration.seconds(STOP_TIMEOUT_SECONDS),
                readonly_root_filesystem=False,
                essential=True,
                privileged=False,
                # Container-level limits equal to the task's (local emulators need them).
                cpu=profile.cpu,
                memory_limit_mib=profile.memory,
                logging=ecs.LogDrivers.aws_logs(
                    stream_prefix=profile.name, log_group=self.runner_log_group
                ),
            )
            self._own_jit_config(task_role)
            self._task_role_policies(profile, task_role)
            self._registry_access(profile, execution_role)
            if profile.secrets_kms_key_arns:
                # Secrets Manager decrypts with the caller's permissions: ECS needs
                # kms:Decrypt on a customer-managed key, and only through Secrets Manager
                # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html).
                execution_role.add_to_policy(
                    iam.PolicyStatement(
                        sid="DecryptProfileSecrets",
                        actions=["kms:Decrypt"],
                        resources=list(profile.secrets_kms_key_arns),
                        conditions={
                            "StringEquals": {
                                "kms:ViaService": f"secretsmanager.{Stack.of(self).region}"
                                ".amazonaws.com"
                            }
                        },
                    )
                )
            Validations.of(task_definition).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-ECS2",
                    reason=(
                        "The environment holds only non-secret values: the profile's policy, "
                        "the job-started hook code and the idle limit. Secrets reach the task "
                        "through ECS secrets (Secrets Manager), never as plain environment."
                    ),
                )
            )
            self.task_definitions[profile.name] = task_definition
            self.task_roles[profile.name] = task_role
            self.execution_roles[profile.name] = execution_role

    def sealed_configs_arn(self) -> str:
        """ARN pattern of the per-runner JIT config secrets (the ``-??????`` suffix included)."""
        return Stack.of(self).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{self.jit_secret_prefix}/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _own_jit_config(self, task_role: iam.Role) -> None:
        """Read and delete the JIT config secret bound to this very task, no other.

        The Lambda tags each secret ``runner:task-userid = <role id>:<task id>``;
        ``${aws:userid}`` of a task-role session is ``<role id>:<session name>``
        and ECS names the session after the task id (docs/jit-config.md), so a
        task of the same profile (same role, other session) matches nothing.
        """
        task_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadAndConsumeOwnJitConfig",
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"],
                resources=[self.sealed_configs_arn()],
                conditions={
                    "StringEquals": {f"secretsmanager:ResourceTag/{BOUND_TAG}": "${aws:userid}"}
                },
            )
        )
        stack = Stack.of(self)
        Validations.of(task_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::"
                f"{nag_flatten(stack.resolve(self.sealed_configs_arn()))}]",
                reason=(
                    "Secret names are per runner and unknown at deploy; the statement only "
                    "matches a secret whose runner:task-userid tag equals the caller's own "
                    "aws:userid (this task's session), so each task reads only its own."
                ),
            )
        )

    def _task_role_policies(self, profile: RunnerProfile, task_role: iam.Role) -> None:
        """Exactly the permissions the operator listed for this profile, nothing else."""
        for item in profile.task_role_policies:
            if isinstance(item, str):
                task_role.add_managed_policy(
                    iam.ManagedPolicy.from_managed_policy_arn(
                        task_role, f"Managed{len(task_role.node.children)}", item
                    )
                )
            else:
                task_role.add_to_policy(iam.PolicyStatement.from_json(dict(item)))
        # cdk-nag names each finding (IAM4[Policy::arn], IAM5[Resource::...]): acknowledge
        # exactly the findings the operator's own policies produce, nothing broader.
        finding_ids: dict[str, None] = {}
        for item in profile.task_role_policies:
            if isinstance(item, str):
                if ":iam::aws:" in item:
                    finding_ids[f"AwsSolutions-IAM4[Policy::{item}]"] = None
            elif item.get("Effect", "Allow") == "Allow":
                for kind in ("Action", "Resource"):
                    values = item[kind]
                    for value in [values] if isinstance(values, str) else values:
                        if "*" in value:
                            finding_ids[f"AwsSolutions-IAM5[{kind}::{value}]"] = None
        if finding_ids:
            reason = (
                f"Granted explicitly by the operator in cdk.json profiles[{profile.name}]."
                "task_role_policies for jobs of this profile; reviewed there."
            )
            Validations.of(task_role).acknowledge(
                *(Acknowledgment(id=finding, reason=reason) for finding in finding_ids)
            )

    def _registry_access(self, profile: RunnerProfile, execution_role: iam.Role) -> None:
        """Let ECS pull from a private ECR registry prefix (e.g. a pull-through cache)."""
        prefix = (profile.registry_prefix or "").rstrip("/")
        host, _, path = prefix.partition("/")
        parts = host.split(".")
        if len(parts) < 6 or parts[1:3] != ["dkr", "ecr"]:
            return  # not ECR: public registries need no permissions
        account, region = parts[0], parts[3]
        stack = Stack.of(self)
        repositories = stack.format_arn(
            service="ecr",
            region=region,
            account=account,
            resource="repository",
            resource_name=f"{path}/*" if path else "*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                    "ecr:BatchImportUpstreamImage",
                    "ecr:CreateRepository",
                ],
                resources=[repositories],
            )
        )
        execution_role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        Validations.of(execution_role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_flatten(stack.resolve(repositories))}]",
                reason="Pulls any image under the profile's registry_prefix (pull-through cache).",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions.",
            ),
        )

    # -- secrets and state ---------------------------------------------------

    def _secrets(self, props: FargateRunnersProps) -> None:
        self.webhook_secret = secretsmanager.Secret(
            self,
            "WebhookSecret",
            description=(
                "GitHub webhook secret for the runner webhook. Copy its value into the "
                "GitHub webhook's 'Secret' field."
            ),
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=40,
                exclude_punctuation=True,
                include_space=False,
            ),
        )
        Validations.of(self.webhook_secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason=(
                    "The webhook secret is shared with GitHub's webhook settings; rotating it "
                    "needs a matching manual change on GitHub, so automatic rotation would "
                    "break deliveries."
                ),
            )
        )
        if props.github_token_secret is not None:
            self.github_token_secret = props.github_token_secret
        else:
            token_secret = secretsmanager.Secret(
                self,
                "GitHubTokenSecret",
                description=(
                    "GitHub personal access token for the runner webhook (plain string). "
                    "Created empty; set it with: aws secretsmanager put-secret-value "
                    "--secret-id <arn> --secret-string <PAT>"
                ),
            )
            # No initial value at all: drop the GenerateSecretString CDK adds by default.
            cfn_secret = token_secret.node.default_child
            if not isinstance(cfn_secret, secretsmanager.CfnSecret):  # pragma: no cover
                raise TypeError("unexpected default child of secretsmanager.Secret")
            cfn_secret.add_property_deletion_override("GenerateSecretString")
            Validations.of(token_secret).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SMG4",
                    reason=(
                        "The GitHub PAT is issued by GitHub; it is rotated by creating a new "
                        "token on GitHub and putting it here, which Secrets Manager rotation "
                        "cannot do."
                    ),
                )
            )
            self.github_token_secret = token_secret

    def _hook_parameter(self) -> None:
        """Where ``fargate-runners setup`` records the webhook it created, so the reconciler
        can redeliver failed deliveries without hand configuration."""
        self.hook_parameter = ssm.StringParameter(
            self,
            "WebhookHookParameter",
            description=(
                "The GitHub webhook (repos/O/R/hooks/ID or orgs/O/hooks/ID) whose failed "
                "deliveries the reconciler redelivers; written by fargate-runners setup"
            ),
            string_value=HOOK_NOT_RECORDED,
        )

    def _grant_hook_parameter(self, role: iam.Role) -> None:
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRecordedWebhook",
                actions=["ssm:GetParameter"],
                resources=[self.hook_parameter.parameter_arn],
            )
        )

    def _table(self) -> None:
        self.idempotency_table = dynamodb.Table(
            self,
            "IdempotencyTable",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiration",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # Only short-lived de-duplication records live here.
            removal_policy=RemovalPolicy.DESTROY,
        )

    # -- webhook Lambda ------------------------------------------------------

    def runner_profiles_json(self, profiles: Sequence[RunnerProfile]) -> str:
        """``RUNNER_PROFILES`` for the Lambda (a JSON string with ARN tokens)."""
        entries = [
            lambda_profile_entry(p, self.task_definitions[p.name], self.task_roles[p.name])
            for p in profiles
        ]
        return Stack.of(self).to_json_string(entries)

    def _queues(self) -> None:
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.retry_queue = sqs.Queue(
            self,
            "RetryQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # Six times the consumer's timeout, as AWS recommends for Lambda event sources.
            visibility_timeout=Duration.seconds(6 * RETRY_FUNCTION_TIMEOUT_SECONDS),
            retention_period=Duration.days(1),
            # The consumer parks jobs in the DLQ itself; this only catches crashes.
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=5
            ),
        )

    def _functions(self, profiles: Sequence[RunnerProfile], props: FargateRunnersProps) -> None:
        """The three Lambdas share one asset and one environment; each has its own role."""
        code = self._code = lambda_code(
            props.lambda_source_dir, runtime=LAMBDA_RUNTIME, architecture=LAMBDA_ARCHITECTURE
        )
        environment = {
            "WEBHOOK_SECRET_ARN": self.webhook_secret.secret_arn,
            "GITHUB_TOKEN_SECRET_ARN": self.github_token_secret.secret_arn,
            "GITHUB_API_URL": props.github_api_url,
            "ECS_CLUSTER": self.cluster.cluster_name,
            "SUBNET_IDS": ",".join(self.subnet_ids),
            "SECURITY_GROUP_IDS": self.security_group.security_group_id,
            "ASSIGN_PUBLIC_IP": "ENABLED" if self.assign_public_ip else "DISABLED",
            "RUNNER_PROFILES": self.runner_profiles_json(profiles),
            "RUNNER_SCOPE": props.runner_scope,
            "RUNNER_GROUP_ID": str(props.runner_group_id),
            "ALLOWED_REPOSITORIES": ",".join(props.allowed_repositories),
            "IDEMPOTENCY_TABLE": self.idempotency_table.table_name,
            "RETRY_QUEUE_URL": self.retry_queue.queue_url,
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue.queue_url,
            "RETRY_MAX_ATTEMPTS": str(props.retry_max_attempts),
            "RUNNER_NAME_PREFIX": self.runner_name_prefix,
            "DEPLOYMENT_ID": self.deployment_id,
            # The task's own watchdog acts first; the reconciler is the backstop (an hour
            # when the watchdog is off).
            "RUNNER_IDLE_TIMEOUT_SECONDS": str((props.runner_idle_timeout_seconds or 3600) + 120),
            "GITHUB_HOOK_PATH": props.github_hook_path or "",
            "JIT_SECRET_PREFIX": self.jit_secret_prefix,
            "GITHUB_HOOK_PARAMETER": self.hook_parameter.parameter_name,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **(self.github_app.environment() if self.github_app else {}),
        }
        check_environment_size(environment, self._environment_samples(profiles))
        self.webhook_function, self.webhook_role = self._function(
            "WebhookFunction",
            handler="lambda_fn.app.handler",
            description="GitHub workflow_job webhook: starts one JIT runner task per queued job",
            code=code,
            environment=environment,
            props=props,
            timeout=28,
        )
        self.retry_function, self.retry_role = self._function(
            "RetryFunction",
            handler="lambda_fn.retry.handler",
            description="Retries launches that failed transiently (SQS retry queue consumer)",
            code=code,
            environment=environment,
            props=props,
            timeout=RETRY_FUNCTION_TIMEOUT_SECONDS,
        )
        self.retry_function.add_event_source(
            event_sources.SqsEventSource(
                self.retry_queue,
                batch_size=5,
                report_batch_item_failures=True,
                max_concurrency=5,
            )
        )
        self.reconciler_function, self.reconciler_role = self._function(
            "ReconcilerFunction",
            handler="lambda_fn.reconciler.handler",
            description="Stops idle runners, replaces dead ones, removes stale registrations",
            code=code,
            environment=environment,
            props=props,
            timeout=120,
        )
        self._teardown(code, props)
        self.reconcile_rule = events.Rule(
            self,
            "ReconcileSchedule",
            description="Runs the runner reconciler",
            schedule=events.Schedule.rate(props.reconcile_interval),
            targets=[targets.LambdaFunction(self.reconciler_function, retry_attempts=0)],
        )

    def _teardown(self, code: lambda_.Code, props: FargateRunnersProps) -> None:
        """A delete step that stops this stack's runner tasks (``lambda_fn/teardown.py``).

        CloudFormation deletes a resource before what it depends on and after what
        depends on it: the Lambdas that start tasks depend on this resource (gone
        first), and this resource depends on the cluster, the security group and the
        VPC (which stay until it has stopped every task).
        """
        self.teardown_function, self.teardown_role = self._function(
            "TeardownFunction",
            handler="lambda_fn.teardown.handler",
            description="On stack delete: stops the runner tasks before the cluster and VPC go",
            code=code,
            environment={
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            props=props,
            timeout=TEARDOWN_TIMEOUT_SECONDS,
        )
        self._grant_task_control(self.teardown_role)
        self.teardown = CustomResource(
            self,
            "RunnerTeardown",
            service_token=self.teardown_function.function_arn,
            resource_type="Custom::RunnerTeardown",
            properties={"Cluster": self.cluster.cluster_name},
            # Bounds CloudFormation's wait if an answer is ever lost (default: an hour).
            service_timeout=Duration.seconds(TEARDOWN_TIMEOUT_SECONDS + 60),
        )
        self.teardown.node.add_dependency(self.cluster, self.security_group, self.teardown_role)
        if isinstance(self.vpc, ec2.Vpc):
            self.teardown.node.add_dependency(self.vpc)
        for function in (self.webhook_function, self.retry_function, self.reconciler_function):
            function.node.add_dependency(self.teardown)

    def _environment_samples(self, profiles: Sequence[RunnerProfile]) -> dict[str, str]:
        """Worst-case samples of what the environment's tokens resolve to at deploy.

        Longest region names are 14 characters (``ap-southeast-2``); CloudFormation
        names what it generates ``<stack>-<logical id><8 hex>-<12-13 random>``.
        """
        region, account = "ap-southeast-2", "123456789012"

        def generated(logical_id: str) -> str:
            return f"{self.name_prefix}-Runners{logical_id}{'A' * 8}-{'B' * 13}"

        def secret(logical_id: str) -> str:
            name = f"Runners{logical_id}{'A' * 8}-{'B' * 12}-XXXXXX"
            return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}"

        def queue(logical_id: str) -> str:
            return f"https://sqs.{region}.amazonaws.com/{account}/{generated(logical_id)}"

        sample_arn = "arn:aws:ecs:{}:{}:task-definition/{}:9999"
        profiles_json = json.dumps(
            [
                p.lambda_entry(
                    sample_arn.format(region, account, self.family(p)),
                    CONTAINER_NAME,
                    _SAMPLE_ROLE_ID,
                )
                for p in profiles
            ],
            separators=(",", ":"),
        )
        return {
            "WEBHOOK_SECRET_ARN": secret("WebhookSecret"),
            "GITHUB_TOKEN_SECRET_ARN": secret("GitHubTokenSecret"),
            "ECS_CLUSTER": self.cluster_physical_name,
            "SUBNET_IDS": ",".join(f"subnet-{'0' * 17}" for _ in self.subnet_ids),
            "SECURITY_GROUP_IDS": f"sg-{'0' * 17}",
            "RUNNER_PROFILES": profiles_json,
            "IDEMPOTENCY_TABLE": generated("IdempotencyTable"),
            "RETRY_QUEUE_URL": queue("RetryQueue"),
            "DEAD_LETTER_QUEUE_URL": queue("DeadLetterQueue"),
            "DEPLOYMENT_ID": "0" * 8,
            # CloudFormation names a parameter CFN-<logical id>-<random>.
            "GITHUB_HOOK_PARAMETER": f"CFN-RunnersWebhookHookParameter{'A' * 8}-{'B' * 12}",
            "GITHUB_APP_KEY_ARN": f"arn:aws:kms:{region}:{account}:key/{'0' * 8}-{'0' * 27}",
        }

    def _function(
        self,
        construct_id: str,
        *,
        handler: str,
        description: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        props: FargateRunnersProps,
        timeout: int,
    ) -> tuple[lambda_.Function, iam.Role]:
        log_group = self._log_group(f"{construct_id}Logs")
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description}: logs, X-Ray, the dispatcher's permissions",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            construct_id,
            description=description,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=handler,
            code=code,
            memory_size=1024,
            timeout=Duration.seconds(timeout),
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
            environment=dict(environment),
        )
        return function, role

    # -- API -------------------------------------------------------------------

    def _api(self, props: FargateRunnersProps) -> None:
        logging = props.api_gateway_logging != "off"
        self.api = apigw.RestApi(
            self,
            "Api",
            # API Gateway metrics are keyed on the API *name*: CDK's default ("Api") would
            # merge with every other API of that name in the region.
            rest_api_name=f"{self.name_prefix}-webhook",
            description="GitHub webhook endpoint for ephemeral Fargate runners",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The account-wide API Gateway logging role (AWS::ApiGateway::Account) only when
            # asked for: it is one setting per region, shared by every API in the account.
            cloud_watch_role=props.api_gateway_logging == "create",
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE,
                throttling_rate_limit=props.throttling_rate_limit,
                throttling_burst_limit=props.throttling_burst_limit,
                tracing_enabled=True,
                metrics_enabled=True,
                data_trace_enabled=False,
                **(self._api_logging_options() if logging else {}),
            ),
        )
        if logging:
            # API Gateway would create API-Gateway-Execution-Logs_<id>/<stage> itself, outside
            # the stack and without expiry; created here first, it has both.
            # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
            execution_logs = self._log_group(
                "ApiExecutionLogs",
                log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{API_STAGE}",
            )
            self.api.deployment_stage.node.add_dependency(execution_logs)
        else:
            reason = (
                "api_gateway_logging is off: API Gateway access and execution logs need the "
                "account-wide API Gateway CloudWatch role, which this stack does not set unless "
                "asked. Every delivery that reaches the Lambda is logged there with its outcome."
            )
            Validations.of(self.api.deployment_stage).acknowledge(
                Acknowledgment(id="AwsSolutions-APIG1", reason=reason),
                Acknowledgment(id="AwsSolutions-APIG6", reason=reason),
            )
        # The stack decides its outputs (WebhookUrl); drop the RestApi's automatic one.
        self.api.node.try_remove_child("Endpoint")
        webhook = self.api.root.add_resource("webhook")
        self.webhook_method = webhook.add_method(
            "POST",
            apigw.LambdaIntegration(self.webhook_function, proxy=True, allow_test_invoke=False),
            authorization_type=apigw.AuthorizationType.NONE,
        )
        method_reason = (
            "GitHub webhooks cannot sign requests with IAM (SigV4) or present Cognito tokens; "
            "every request is authenticated in the Lambda by the X-Hub-Signature-256 HMAC "
            "over the body with the webhook secret, and unsigned requests get 401."
        )
        Validations.of(self.webhook_method).acknowledge(
            Acknowledgment(id="AwsSolutions-APIG4", reason=method_reason),
            Acknowledgment(id="AwsSolutions-COG4", reason=method_reason),
        )
        Validations.of(self.api).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG2",
                reason=(
                    "The body must reach the Lambda byte-for-byte for HMAC verification, and a "
                    "bad signature must answer 401 before any body validation (400); the Lambda "
                    "validates the payload after verifying the signature."
                ),
            ),
        )
        if not props.webhook_firewall:
            Validations.of(self.api.deployment_stage).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-APIG3",
                    reason=(
                        "The operator turned the web ACL off (webhook_firewall: false). Without "
                        "it anyone who knows the URL shares the stage throttle with GitHub's "
                        "deliveries and can make them fail with 429 (the reconciler redelivers "
                        "them); the HMAC check only stops forged jobs, not the flood."
                    ),
                ),
            )
        cloud_watch_role = self.api.node.try_find_child("CloudWatchRole")
        if cloud_watch_role is not None:
            policy_arn = nag_flatten(
                Stack.of(self).resolve(
                    iam.ManagedPolicy.from_aws_managed_policy_name(
                        "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                    ).managed_policy_arn
                )
            )
            Validations.of(cloud_watch_role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM4[Policy::{policy_arn}]",
                    reason=(
                        "API Gateway's account-level CloudWatch role needs the AWS-managed "
                        "AmazonAPIGatewayPushToCloudWatchLogs policy to write access and "
                        "execution logs."
                    ),
                )
            )

    def _firewall(self, props: FargateRunnersProps) -> None:
        """The web ACL (``cdk/firewall.py``) and, for github.com, the refresh of its list."""
        self.firewall: WebhookFirewall | None = None
        self.refresh_function: lambda_.Function | None = None
        if not props.webhook_firewall:
            return
        fixed = props.webhook_source_cidrs is not None
        if not fixed and props.github_api_url != DEFAULT_GITHUB_API_URL:
            raise ValueError(
                "webhook_source_cidrs is required when github_api_url is not github.com "
                "(GitHub Enterprise Server delivers from its own addresses)"
            )
        cidrs = props.webhook_source_cidrs if fixed else GITHUB_HOOKS_SNAPSHOT
        self.firewall = WebhookFirewall(
            self,
            "WebhookFirewall",
            stage=self.api.deployment_stage,
            ranges=SourceRanges.parse(cidrs or (), "webhook_source_cidrs"),
            rate_limit=props.webhook_rate_limit,
            metric_prefix=self.name_prefix,
        )
        if fixed:
            return
        self.refresh_function, role = self._function(
            "SourceRangesFunction",
            handler="lambda_fn.refresh_sources.handler",
            description="Keeps the web ACL's IP sets equal to GitHub's webhook source ranges",
            code=self._code,
            environment={
                "GITHUB_API_URL": props.github_api_url,
                "SOURCE_IPV4_SET_ARN": self.firewall.ipv4_set.attr_arn,
                "SOURCE_IPV6_SET_ARN": self.firewall.ipv6_set.attr_arn,
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            props=props,
            timeout=60,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReplaceWebhookSourceRanges",
                actions=["wafv2:GetIPSet", "wafv2:UpdateIPSet"],
                resources=self.firewall.ip_set_arns,
            )
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="'*' is only the X-Ray statement added by active tracing (X-Ray has no "
                "resource-level permissions).",
            )
        )
        self.refresh_rule = events.Rule(
            self,
            "SourceRangesSchedule",
            description="Refreshes GitHub's webhook source ranges in the web ACL",
            schedule=events.Schedule.rate(Duration.hours(1)),
            targets=[targets.LambdaFunction(self.refresh_function, retry_attempts=2)],
        )

    def _api_logging_options(self) -> dict[str, Any]:
        """Access logs (JSON, to a log group of this stack) and ERROR execution logs."""
        return {
            "access_log_destination": apigw.LogGroupLogDestination(
                self._log_group("ApiAccessLogs")
            ),
            "access_log_format": apigw.AccessLogFormat.json_with_standard_fields(
                caller=True,
                http_method=True,
                ip=True,
                protocol=True,
                request_time=True,
                resource_path=True,
                response_length=True,
                status=True,
                user=True,
            ),
            "logging_level": apigw.MethodLoggingLevel.ERROR,
        }

    def _log_group(self, construct_id: str, **kwargs: Any) -> logs.LogGroup:
        """A log group with the configured retention and removal policy."""
        return logs.LogGroup(
            self,
            construct_id,
            retention=self.props.log_retention,
            removal_policy=self.props.log_removal_policy,
            **kwargs,
        )

    @property
    def webhook_url(self) -> str:
        """The URL to configure as the GitHub webhook's Payload URL."""
        return self.api.url_for_path("/webhook")

    # -- least-privilege IAM for the webhook -----------------------------------

    def _grant_dispatch(self, role: iam.Role) -> None:
        """What launching, retrying and cleaning up need, and nothing more."""
        stack = Stack.of(self)
        run_task_resources = [
            stack.format_arn(
                service="ecs",
                resource="task-definition",
                resource_name=f"{task_definition.family}:*",
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            for task_definition in self.task_definitions.values()
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RunRunnerTasks",
                actions=["ecs:RunTask"],
                resources=run_task_resources,
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TagRunnerTasksAtLaunch",
                actions=["ecs:TagResource"],
                resources=[self._task_arns],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            )
        )
        pass_roles = [r.role_arn for r in self.task_roles.values()] + [
            r.role_arn for r in self.execution_roles.values()
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PassRunnerTaskRoles",
                actions=["iam:PassRole"],
                resources=pass_roles,
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWebhookSecrets",
                actions=["secretsmanager:GetSecretValue"],
                # With a GitHub App the PAT secret stays empty and unreadable.
                resources=[self.webhook_secret.secret_arn]
                + ([] if self.github_app else [self.github_token_secret.secret_arn]),
            )
        )
        self._grant_task_control(role)
        sealed_configs = self.sealed_configs_arn()
        role.add_to_policy(
            iam.PolicyStatement(
                # CreateSecret with Tags also needs TagResource; only our two tag keys.
                sid="SealJitConfigs",
                actions=["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
                resources=[sealed_configs],
                conditions={"ForAllValues:StringEquals": {"aws:TagKeys": [BOUND_TAG, TASK_TAG]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DeleteJitConfigs",
                actions=["secretsmanager:DeleteSecret"],
                resources=[sealed_configs],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListJitConfigs",
                actions=["secretsmanager:ListSecrets"],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="QueueJobs",
                actions=["sqs:SendMessage"],
                resources=[self.retry_queue.queue_arn, self.dead_letter_queue.queue_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="IdempotencyRecords",
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ],
                resources=[self.idempotency_table.table_arn],
            )
        )

        acks = [
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_flatten(stack.resolve(arn))}]",
                reason=(
                    "RunTask is limited to this profile's task definition family; the ':*' "
                    "matches its revisions, which change on every deploy. The cluster is "
                    "pinned by an ecs:cluster condition."
                ),
            )
            for arn in run_task_resources
        ]
        acks.append(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_flatten(stack.resolve(sealed_configs))}]",
                reason=(
                    "Per-runner JIT config secrets are named when a job is launched; create "
                    "(with only the two binding tags) and delete are limited to this "
                    "deployment's name prefix. The Lambda never reads them."
                ),
            )
        )
        Validations.of(role).acknowledge(*acks)

    @property
    def _task_arns(self) -> str:
        """Every task of this cluster (task ids are unknown before launch)."""
        return Stack.of(self).format_arn(
            service="ecs",
            resource="task",
            resource_name=f"{self.cluster.cluster_name}/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )

    def _grant_task_control(self, role: iam.Role) -> None:
        """List, inspect and stop the tasks of this cluster, and nothing else."""
        role.add_to_policy(
            iam.PolicyStatement(
                sid="InspectAndStopRunnerTasks",
                actions=["ecs:DescribeTasks", "ecs:StopTask"],
                resources=[self._task_arns],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListRunnerTasks",
                actions=["ecs:ListTasks"],
                resources=["*"],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        task_arns = nag_flatten(Stack.of(self).resolve(self._task_arns))
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{task_arns}]",
                reason=(
                    "Task ids are unknown before launch; every grant on tasks is limited to "
                    "tasks of this cluster (ecs:TagResource also to RunTask, by the "
                    "ecs:CreateAction condition)."
                ),
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason=(
                    "'*' is used only by the X-Ray statement added by active tracing (X-Ray has "
                    "no resource-level permissions), by ecs:ListTasks, which is pinned to "
                    "this cluster by an ecs:cluster condition, and, for the dispatch roles, by "
                    "secretsmanager:ListSecrets (no resource-level permissions; returns names "
                    "and tags, never values)."
                ),
            ),
        )

    # -- alarms and dashboard ----------------------------------------------------

    def _observability(self, profiles: Sequence[RunnerProfile], props: FargateRunnersProps) -> None:
        self.dashboard = add_dashboard(
            self,
            "Dashboard",
            namespace=METRICS_NAMESPACE,
            service=SERVICE_NAME,
            function_names=[
                f.function_name
                for f in (self.webhook_function, self.retry_function, self.reconciler_function)
            ],
            api_name=self.api.rest_api_name,
            cluster_name=self.cluster.cluster_name,
            retry_queue=self.retry_queue,
            dlq=self.dead_letter_queue,
            profiles=[p.name for p in profiles],
            alarm_topic=props.alarm_topic,
            extra_alarms=operational_alarms(
                self,
                reconciler=self.reconciler_function,
                reconcile_interval=props.reconcile_interval,
                retry_queue=self.retry_queue,
                api_name=self.api.rest_api_name,
                stage_name=self.api.deployment_stage.stage_name,
                refresh_function=self.refresh_function,
            ),
        )
        if props.alarm_topic is None:
            # A warning, not an error: synth must work for a first look, tests and `cdk diff`
            # without an address. `cdk deploy --strict` turns it into a failure.
            Annotations.of(self).add_warning_v2(
                "fargate-runners:no-alarm-destination",
                "NO ALARM REACHES A PERSON: set alarm_email or alarm_topic_arn in cdk.json. "
                "Without one the dead-letter queue, launch failure, reconciler, retry queue "
                "and webhook error alarms only change colour on the dashboard.",
            )
