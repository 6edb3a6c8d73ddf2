"""The names one :class:`~fargate_runners.construct.FargateRunners` instance gives things.

Physical names (cluster, task definition families, API, JIT secret path, metrics service)
all derive from one prefix. The default is unique per construct path (CDK appends a hash
of the path), so two instances in one stack, or the same construct id in two stacks,
never share a name.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Fn, Names, Stack
from constructs import Construct

from lambda_fn.naming import RUNNER_NAME_PREFIX_MAX, runner_name_prefix_from

from .config import RunnerProfile, check_names
from .props import FargateRunnersProps


@dataclass(frozen=True)
class InstanceNames:
    """What every part names its resources and settings after."""

    #: Prefix of every physical name (``name_prefix``, default: path plus hash).
    name_prefix: str
    #: Prefix of runner names (the Lambda's rule, lambda_fn/naming.py); with
    #: ``deployment_id`` it is what keeps two deployments' runners apart.
    runner_name_prefix: str
    #: Powertools' ``service`` dimension: this instance's metrics and alarms only.
    service_name: str
    #: First group of the stack id's UUID (``arn:...:stack/<name>/<uuid>``): unique per
    #: deployed stack, also for equal stack names in two regions or accounts (a token).
    deployment_id: str
    #: Secrets Manager names of the per-runner sealed JIT configs: ``<prefix>/<runner>``.
    jit_secret_prefix: str
    #: ARN pattern of those secrets (the ``-??????`` suffix included; a token).
    sealed_configs_arn: str

    @classmethod
    def of(cls, runners: Construct, props: FargateRunnersProps) -> InstanceNames:
        """The names of ``runners`` (checked against the AWS and Lambda limits)."""
        stack = Stack.of(runners)
        prefix = props.name_prefix or Names.unique_resource_name(
            runners, max_length=32, separator="-"
        )
        check_names(
            prefix,
            key="name_prefix",
            webhook_firewall=props.webhook_firewall,
            profiles=props.profiles,
        )
        runner_name_prefix = runner_name_prefix_from(
            props.runner_name_prefix
            or props.name_prefix
            or Names.unique_resource_name(runners, max_length=RUNNER_NAME_PREFIX_MAX, separator="-")
        )
        jit_secret_prefix = f"{prefix}/jit"
        return cls(
            name_prefix=prefix,
            runner_name_prefix=runner_name_prefix,
            service_name=f"{prefix}-webhook",
            deployment_id=Fn.select(0, Fn.split("-", Fn.select(2, Fn.split("/", stack.stack_id)))),
            jit_secret_prefix=jit_secret_prefix,
            sealed_configs_arn=stack.format_arn(
                service="secretsmanager",
                resource="secret",
                resource_name=f"{jit_secret_prefix}/*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
        )

    @property
    def cluster_name(self) -> str:
        """The cluster's name, fixed so its Container Insights log group can exist first."""
        return f"{self.name_prefix}-runners"

    def family(self, profile: RunnerProfile) -> str:
        """The task definition family of a profile: ``<prefix>-runner-<profile>``."""
        return f"{self.name_prefix}-runner-{profile.name}"

    def step_family(self, profile: RunnerProfile) -> str:
        """The step task definition family of a managed-steps profile."""
        return f"{self.name_prefix}-step-{profile.name}"
