"""What every part of :class:`~fargate_runners.construct.FargateRunners` shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from .config import RunnerProfile
from .github_app import GitHubAppKey
from .props import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, FargateRunnersProps
from .tracing import TRACING_ENVIRONMENT


class RunnersBase(Construct):
    """Attributes the parts build and read; see :class:`FargateRunners` for the whole."""

    vpc: ec2.IVpc
    cluster: ecs.Cluster
    #: The group that predates per-profile groups (logical id ``RunnerSecurityGroup``): the
    #: ``default`` profile's, and the Lambda's fallback ``SECURITY_GROUP_IDS``.
    security_group: ec2.SecurityGroup
    #: Each profile's runner-task groups, and each managed-steps profile's step-task group.
    profile_security_groups: dict[str, list[ec2.ISecurityGroup]]
    step_security_groups: dict[str, ec2.SecurityGroup]
    created_security_groups: list[ec2.SecurityGroup]
    #: The VPC endpoints' group, with ``vpc_endpoints`` (else unset).
    endpoint_security_group: ec2.SecurityGroup
    task_definitions: dict[str, ecs.FargateTaskDefinition]
    task_roles: dict[str, iam.Role]
    execution_roles: dict[str, iam.Role]
    runner_log_group: logs.LogGroup
    webhook_secret: secretsmanager.Secret
    github_token_secret: secretsmanager.ISecret
    #: ``github_auth: app``: the App's KMS key and its Lambda settings; None with the PAT.
    github_app: GitHubAppKey | None
    idempotency_table: dynamodb.Table
    webhook_function: lambda_.Function
    webhook_role: iam.Role
    retry_function: lambda_.Function
    reconciler_function: lambda_.Function
    retry_queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    api: apigw.RestApi
    dashboard: cloudwatch.Dashboard
    subnet_ids: list[str]

    props: FargateRunnersProps
    name_prefix: str
    runner_name_prefix: str
    service_name: str
    deployment_id: str
    jit_secret_prefix: str
    assign_public_ip: bool
    refresh_function: lambda_.Function | None
    refresh_role: iam.Role | None
    hook_filter_function: lambda_.Function | None
    #: The SSM parameter ``fargate-runners setup`` records the webhook in.
    hook_parameter: ssm.StringParameter
    #: The dispatching Lambdas' environment (one builder: ``DispatcherPart._functions``) and
    #: worst-case samples of its tokens' values (``env_size.check_environment_size``).
    lambda_environment: dict[str, str]
    environment_samples: dict[str, str]
    _code: lambda_.Code
    _layers: list[lambda_.ILayerVersion]

    def _admit_to_endpoints(self, group: ec2.ISecurityGroup, description: str) -> None:
        """HTTPS from ``group`` to the VPC endpoints (when the stack creates them)."""
        endpoints = getattr(self, "endpoint_security_group", None)
        if endpoints is None:
            return
        if group is self.security_group:
            # Today's rule, unchanged (an edited description would replace it).
            description = "HTTPS from runner tasks"
        endpoints.add_ingress_rule(group, ec2.Port.tcp(443), description)

    def _grant_hook_parameter(self, role: iam.Role) -> None:
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRecordedWebhook",
                actions=["ssm:GetParameter"],
                resources=[self.hook_parameter.parameter_arn],
            )
        )

    def _log_group(
        self, construct_id: str, *, scope: Construct | None = None, **kwargs: Any
    ) -> logs.LogGroup:
        """A log group with the configured retention and removal policy (in ``scope``,
        by default this construct)."""
        return logs.LogGroup(
            scope or self,
            construct_id,
            retention=self.props.log_retention,
            removal_policy=self.props.log_removal_policy,
            **kwargs,
        )

    @property
    def cluster_physical_name(self) -> str:
        """The cluster's name, fixed so its Container Insights log group can exist first."""
        return f"{self.name_prefix}-runners"

    def family(self, profile: RunnerProfile) -> str:
        """The task definition family of a profile: ``<prefix>-runner-<profile>``."""
        return f"{self.name_prefix}-runner-{profile.name}"

    def sealed_configs_arn(self) -> str:
        """ARN pattern of the per-runner JIT config secrets (the ``-??????`` suffix included)."""
        arn: str = Stack.of(self).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{self.jit_secret_prefix}/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return arn

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
            # Only the dispatcher functions trace their remote calls (their environment says so).
            layers=list(self._layers) if TRACING_ENVIRONMENT.keys() <= environment.keys() else [],
            role=role,
            log_group=log_group,
            environment=dict(environment),
        )
        return function, role

    def settings_environment(self) -> dict[str, str]:
        """The dispatcher's environment for a function that reads the settings
        (``lambda_fn.config.get_settings``) but never queues a job: no retry path, so it
        does not depend on the queues, and no detailed tracing (it launches nothing)."""
        return {
            key: value
            for key, value in self.lambda_environment.items()
            if key not in ("RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", *TRACING_ENVIRONMENT)
        }

    def grant_github_token(self, role: iam.IRole) -> None:
        """What ``lambda_fn.github_auth.token_provider`` needs: read the PAT's secret, or
        sign the App's JWT with its key (the PAT secret stays unreadable then)."""
        if self.github_app is not None:
            self.github_app.grant_sign(role)
            return
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadGitHubToken",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.github_token_secret.secret_arn],
            )
        )

    @property
    def _task_arns(self) -> str:
        """Every task of this cluster (task ids are unknown before launch)."""
        return Stack.of(self).format_arn(
            service="ecs",
            resource="task",
            resource_name=f"{self.cluster.cluster_name}/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
