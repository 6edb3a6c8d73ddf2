"""``FargateRunners``: ephemeral GitHub Actions runners on Fargate, as one reusable construct.

Drop it into any CDK app::

    from fargate_runners import FargateRunners, FargateRunnersProps, RunnerProfile

    FargateRunners(stack, "Runners", FargateRunnersProps(
        profiles=[RunnerProfile(name="default", labels=("self-hosted", "linux", "arm64"))],
    ))

The code is split the way the architecture diagram reads, one plain class (or function)
per part with typed inputs and outputs; each creates its resources in this construct's
scope, with the construct ids they always had (so logical ids, and with them deployed
resources, do not depend on the split). :meth:`FargateRunners.__init__` wires them:

- :class:`~fargate_runners.names.InstanceNames`: the physical names of this instance;
- :class:`~fargate_runners.network.Network`: VPC (new or given), runner subnets, security
  groups, VPC endpoints;
- :class:`~fargate_runners.dispatch_state.DispatchState`: secrets, the GitHub App key,
  the idempotency table, the retry queue and dead-letter queue, the recorded webhook;
- :class:`~fargate_runners.runner_tasks.RunnerTasks`: the cluster and each profile's fixed
  task definition, task role and execution role (and managed steps, ``steps.py``);
- :class:`~fargate_runners.dispatcher.Dispatcher`: the profiles' parameters, the
  webhook/retry/reconciler/teardown Lambdas and their exact IAM;
- :class:`~fargate_runners.webhook_api.WebhookApi`: the REST API, its logs and the WAF
  web ACL (``firewall.py``) with the functions that keep it current;
- :func:`~fargate_runners.observability.add_observability`: dashboard and alarms;
- :mod:`~fargate_runners.discovery`: the instance record the CLI reads, the template size
  check;
- :mod:`~fargate_runners.nag`: every cdk-nag acknowledgment passes through one function.

What it creates: an ECS cluster (Container Insights, FARGATE and FARGATE_SPOT
capacity providers), one Fargate task definition per profile (container
``runner``, no permissions on the task role), an egress-only security group,
the webhook secret (generated) and the GitHub PAT secret (empty, or imported),
a DynamoDB idempotency table, the webhook Lambda and a REST API with only
``POST /webhook``. Without a ``vpc`` it also creates a VPC with public subnets
in 2 AZs, no NAT gateway, and flow logs.
"""

from __future__ import annotations

from aws_cdk import Annotations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from .config import CONTAINER_NAME
from .discovery import add_instance_record, check_template_size
from .dispatch_state import DispatchState
from .dispatcher import Dispatcher
from .feasibility import capacity_warnings
from .github_app import GitHubAppKey
from .names import InstanceNames
from .network import Network
from .observability import add_observability
from .props import (
    LAMBDA_RUNTIME,
    RUNNER_USER,
    FargateRunnersProps,
    lambda_profile_entry,
    retention_days,
)
from .runner_tasks import RunnerTasks
from .webhook_api import WebhookApi

#: The CDK warning when the profiles' max_runners exceed a default Fargate vCPU quota.
FARGATE_QUOTA_WARNING = "fargate-runners:fargateVcpuQuota"

__all__ = [
    "CONTAINER_NAME",
    "LAMBDA_RUNTIME",
    "RUNNER_USER",
    "FargateRunners",
    "FargateRunnersProps",
    "lambda_profile_entry",
    "retention_days",
]


def _claim_account_setting(runners: Construct, api_gateway_logging: str) -> None:
    """Refuse a second ``api_gateway_logging="create"`` in one app.

    ``AWS::ApiGateway::Account`` is one setting per account and region: two resources that
    set it overwrite each other, and deleting either stack resets it for every API. One
    instance may create it; the others use ``existing``.
    """
    if api_gateway_logging != "create":
        return
    root = runners.node.root
    claimed: str | None = getattr(root, "_fargate_runners_account_setting", None)
    if claimed is not None:
        raise ValueError(
            f"{runners.node.path}: api_gateway_logging='create' is already set by {claimed}; "
            "the API Gateway account setting is one per region: use 'existing' here"
        )
    root._fargate_runners_account_setting = runners.node.path  # type: ignore[attr-defined]


class FargateRunners(Construct):
    """Webhook-driven, single-use GitHub Actions runners on AWS Fargate.

    The parts read like the architecture: network, the dispatcher's state, runner tasks,
    dispatcher (Lambdas), webhook API (with its firewall), observability. Each is an
    attribute (``network``, ``state``, ``runner_tasks``, ``dispatcher``, ``webhook_api``);
    the resources users reach for are properties below.
    """

    def __init__(self, scope: Construct, construct_id: str, props: FargateRunnersProps) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self.names = names = InstanceNames.of(self, props)
        _claim_account_setting(self, props.api_gateway_logging)

        self.network = network = Network(self, props)
        self.state = state = DispatchState(self, props)
        self.runner_tasks = tasks = RunnerTasks(
            self, props, names=names, network=network, admission_table=state.idempotency_table
        )
        self.dispatcher = dispatcher = Dispatcher(
            self, props, names=names, network=network, tasks=tasks, state=state
        )
        self.webhook_api = api = WebhookApi(
            self, props, names=names, dispatcher=dispatcher, state=state
        )
        self.dashboard: cloudwatch.Dashboard = add_observability(
            self,
            props,
            names=names,
            cluster=tasks.cluster,
            state=state,
            dispatcher=dispatcher,
            webhook_api=api,
        )
        #: The stack output the CLI finds this instance by (``fargate_runners/discovery.py``).
        self.instance_record = add_instance_record(
            self,
            webhook_url=api.webhook_url,
            state=state,
            cluster=tasks.cluster,
            dashboard=self.dashboard,
        )

        check_template_size(
            self,
            props.profiles,
            admission_table=state.idempotency_table,
            idle_timeout_seconds=props.runner_idle_timeout_seconds,
        )
        _warn_repository_scope(self, props)
        for warning in capacity_warnings(props.profiles):
            Annotations.of(self).add_warning_v2(FARGATE_QUOTA_WARNING, warning)

    # -- names -------------------------------------------------------------------------

    @property
    def name_prefix(self) -> str:
        return self.names.name_prefix

    @property
    def runner_name_prefix(self) -> str:
        return self.names.runner_name_prefix

    @property
    def service_name(self) -> str:
        return self.names.service_name

    @property
    def deployment_id(self) -> str:
        return self.names.deployment_id

    @property
    def jit_secret_prefix(self) -> str:
        return self.names.jit_secret_prefix

    @property
    def cluster_physical_name(self) -> str:
        return self.names.cluster_name

    # -- network -----------------------------------------------------------------------

    @property
    def vpc(self) -> ec2.IVpc:
        return self.network.vpc

    @property
    def subnet_ids(self) -> list[str]:
        return self.network.subnet_ids

    @property
    def security_group(self) -> ec2.SecurityGroup:
        """The ``default`` (else first) profile's group, the Lambda's fallback."""
        return self.network.security_group

    def security_groups(self, profile: str) -> list[ec2.ISecurityGroup]:
        """The security groups of ``profile``'s runner tasks: what a target admits to let
        exactly that profile in (e.g. ``db.connections.allow_from(group, port)``)."""
        return self.network.security_groups(profile)

    def step_security_group(self, profile: str) -> ec2.ISecurityGroup:
        """The security group of a managed-steps ``profile``'s step tasks (the ones holding
        ``step_role_policies`` and ``step_secrets``)."""
        return self.runner_tasks.step_security_group(profile)

    # -- the dispatcher's state --------------------------------------------------------

    @property
    def webhook_secret(self) -> secretsmanager.Secret:
        return self.state.webhook_secret

    @property
    def github_token_secret(self) -> secretsmanager.ISecret:
        return self.state.github_token_secret

    @property
    def github_app(self) -> GitHubAppKey | None:
        return self.state.github_app

    @property
    def idempotency_table(self) -> dynamodb.Table:
        return self.state.idempotency_table

    @property
    def retry_queue(self) -> sqs.Queue:
        return self.state.retry_queue

    @property
    def dead_letter_queue(self) -> sqs.Queue:
        return self.state.dead_letter_queue

    @property
    def hook_parameter(self) -> ssm.StringParameter:
        """The SSM parameter ``fargate-runners setup`` records the webhook in."""
        return self.state.hook_parameter

    # -- runner tasks ------------------------------------------------------------------

    @property
    def cluster(self) -> ecs.Cluster:
        return self.runner_tasks.cluster

    @property
    def task_definitions(self) -> dict[str, ecs.FargateTaskDefinition]:
        return self.runner_tasks.task_definitions

    @property
    def task_roles(self) -> dict[str, iam.Role]:
        return self.runner_tasks.task_roles

    @property
    def execution_roles(self) -> dict[str, iam.Role]:
        return self.runner_tasks.execution_roles

    @property
    def runner_log_group(self) -> logs.LogGroup:
        return self.runner_tasks.runner_log_group

    @property
    def runner_files(self) -> s3_assets.Asset:
        """The runner's files: the one environment file every task definition names."""
        return self.runner_tasks.runner_files

    # -- dispatcher --------------------------------------------------------------------

    @property
    def webhook_function(self) -> lambda_.Function:
        return self.dispatcher.webhook_function

    @property
    def webhook_role(self) -> iam.Role:
        return self.dispatcher.webhook_role

    @property
    def retry_function(self) -> lambda_.Function:
        return self.dispatcher.retry_function

    @property
    def retry_role(self) -> iam.Role:
        return self.dispatcher.retry_role

    @property
    def reconciler_function(self) -> lambda_.Function:
        return self.dispatcher.reconciler_function

    @property
    def reconciler_role(self) -> iam.Role:
        return self.dispatcher.reconciler_role

    @property
    def reconcile_rule(self) -> events.Rule:
        return self.dispatcher.reconcile_rule

    @property
    def profile_parameters(self) -> list[ssm.StringParameter]:
        return self.dispatcher.profile_parameters

    @property
    def lambda_environment(self) -> dict[str, str]:
        """The dispatching Lambdas' one environment (``lambda_fn.contract``)."""
        return self.dispatcher.lambda_environment

    @property
    def environment_samples(self) -> dict[str, str]:
        """Worst-case samples of its tokens' values (``env_size.check_environment_size``)."""
        return self.dispatcher.environment_samples

    # -- webhook API -------------------------------------------------------------------

    @property
    def api(self) -> apigw.RestApi:
        return self.webhook_api.api

    @property
    def webhook_url(self) -> str:
        """The URL to configure as the GitHub webhook's Payload URL."""
        return self.webhook_api.webhook_url


def _warn_repository_scope(runners: Construct, props: FargateRunnersProps) -> None:
    """Restricted profiles of repository runners can be given the repository's other jobs.

    GitHub hands a queued job to any idle runner that has all the job's labels, and
    repository runners have no runner groups to limit that (docs/security.md, "Deploy protections").
    A warning, not an error: with ``match: exact`` and labels no other job uses, the
    operator has chosen the other fix; ``cdk deploy --strict`` turns it into a failure.
    """
    if props.runner_scope == "org":
        return
    exposed = [
        profile.name
        for profile in props.profiles
        if profile.policy.restricted and getattr(profile, "match", None) != "exact"
    ]
    if exposed:
        Annotations.of(runners).add_warning_v2(
            "fargate-runners:restricted-profile-repo-scope",
            f"RESTRICTED PROFILE(S) {', '.join(exposed)} WITH REPOSITORY RUNNERS: GitHub may give "
            "their runners any job of the repository whose runs-on labels are a subset of "
            'theirs; the runner refuses it and that job fails. Use "runner_scope": "org" '
            'with a runner group (fargate-runners setup --org ORG), or "match": "exact" '
            "with labels no other job uses (docs/security.md, 'Deploy protections').",
        )
