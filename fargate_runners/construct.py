"""``FargateRunners``: ephemeral GitHub Actions runners on Fargate, as one reusable construct.

Drop it into any CDK app::

    from fargate_runners import FargateRunners, FargateRunnersProps, RunnerProfile

    FargateRunners(stack, "Runners", FargateRunnersProps(
        profiles=[RunnerProfile(name="default", labels=("self-hosted", "linux", "arm64"))],
    ))

The code is split the way the architecture diagram reads, one module per part, each a
mixin building its resources in this construct's scope (so logical ids, and with them
deployed resources, do not depend on the split):

- :mod:`~fargate_runners.network`: VPC (new or given), runner subnets, security group,
  VPC endpoints;
- :mod:`~fargate_runners.runner_tasks`: the cluster and each profile's fixed task
  definition, task role and execution role;
- :mod:`~fargate_runners.dispatcher`: secrets, the idempotency table, the retry queue and
  dead-letter queue, the webhook/retry/reconciler Lambdas and their exact IAM;
- :mod:`~fargate_runners.webhook_api`: the REST API, its logs and the WAF web ACL;
- :mod:`~fargate_runners.observability`: dashboard and alarms;
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

from aws_cdk import (
    Annotations,
    Fn,
    Names,
    Stack,
)
from constructs import Construct

from lambda_fn.naming import RUNNER_NAME_PREFIX_MAX, runner_name_prefix_from

from .config import CONTAINER_NAME, check_names
from .discovery import DiscoveryPart
from .dispatcher import DispatcherPart
from .feasibility import capacity_warnings
from .github_app import GitHubAppKey
from .network import NetworkPart
from .observability import ObservabilityPart
from .props import (
    LAMBDA_RUNTIME,
    RUNNER_USER,
    FargateRunnersProps,
    lambda_profile_entry,
    retention_days,
)
from .runner_tasks import RunnerTasksPart
from .webhook_api import WebhookApiPart

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


class FargateRunners(
    NetworkPart, RunnerTasksPart, DispatcherPart, WebhookApiPart, ObservabilityPart, DiscoveryPart
):
    """Webhook-driven, single-use GitHub Actions runners on AWS Fargate.

    The parts read like the architecture: network, runner tasks, dispatcher (secrets,
    state, queues, Lambdas), webhook API (with its firewall), observability.
    """

    def __init__(self, scope: Construct, construct_id: str, props: FargateRunnersProps) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        profiles = tuple(props.profiles)  # validated by FargateRunnersProps

        stack = Stack.of(self)
        # Physical names (cluster, task definition families, API, JIT secret path, metrics
        # service) all derive from the prefix. The default is unique per construct path
        # (CDK appends a hash of the path), so two instances in one stack, or the same
        # construct id in two stacks, never share a name.
        prefix = props.name_prefix or Names.unique_resource_name(self, max_length=32, separator="-")
        check_names(
            prefix,
            key="name_prefix",
            webhook_firewall=props.webhook_firewall,
            profiles=profiles,
        )
        self.name_prefix = prefix
        # The Lambda's rule (lambda_fn/naming.py); together with the deployment id it is
        # what keeps two deployments' runners apart.
        self.runner_name_prefix = runner_name_prefix_from(
            props.runner_name_prefix
            or props.name_prefix
            or Names.unique_resource_name(self, max_length=RUNNER_NAME_PREFIX_MAX, separator="-")
        )
        #: Powertools' ``service`` dimension: this instance's metrics and alarms only.
        self.service_name = f"{prefix}-webhook"
        _claim_account_setting(self, props.api_gateway_logging)
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
        # Before the runner tasks: a restricted profile's task role reads its admission
        # records there (docs/admission.md).
        self._table()
        self._runner_tasks(profiles, props)
        self._secrets(props)
        app = props.github_app
        self.github_app = GitHubAppKey(self, "GitHubApp", app) if app else None
        self._queues()
        self._hook_parameter()
        self._functions(profiles, props)
        self._api(props)
        self._firewall(props)
        for role in (self.webhook_role, self.retry_role, self.reconciler_role):
            self._grant_dispatch(role)
            self._grant_profile_parameters(role)
            if self.github_app is not None:
                self.github_app.grant_sign(role)
        self._grant_hook_parameter(self.reconciler_role)
        self._grant_job_records(self.reconciler_role)
        # The teardown and the source-range refresh load the same settings (profiles included).
        for reader in (self.teardown_role, self.refresh_role):
            if reader is not None:
                self._grant_profile_parameters(reader)
        self._observability(profiles, props)
        #: The stack output the CLI finds this instance by (``fargate_runners/discovery.py``).
        self.instance_record = self._instance_record()
        self._check_template_size(profiles)
        _warn_repository_scope(self, props)
        for warning in capacity_warnings(profiles):
            Annotations.of(self).add_warning_v2(FARGATE_QUOTA_WARNING, warning)


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
