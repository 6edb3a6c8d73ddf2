"""Log groups and Lambda functions the way every part of the construct creates them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .props import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, FargateRunnersProps
from .tracing import TRACING_ENVIRONMENT


@dataclass(frozen=True)
class LogGroups:
    """Every log group of the construct: the configured retention and removal policy."""

    retention: logs.RetentionDays
    removal_policy: RemovalPolicy

    @classmethod
    def of(cls, props: FargateRunnersProps) -> LogGroups:
        return cls(
            retention=props.log_group_retention, removal_policy=props.log_group_removal_policy
        )

    def create(self, scope: Construct, construct_id: str, **kwargs: Any) -> logs.LogGroup:
        return logs.LogGroup(
            scope,
            construct_id,
            retention=self.retention,
            removal_policy=self.removal_policy,
            **kwargs,
        )


class LambdaFactory:
    """The construct's functions: one code asset, a log group and a role of their own each.

    ``layers`` (the X-Ray SDK with ``detailed_tracing``) go only to functions whose
    environment turns detailed tracing on: the dispatcher's.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        log_groups: LogGroups,
    ) -> None:
        self.scope = scope
        self.code = code
        self.layers = tuple(layers)
        self.log_groups = log_groups

    def create(
        self,
        construct_id: str,
        *,
        handler: str,
        description: str,
        environment: Mapping[str, str],
        timeout: int,
    ) -> tuple[lambda_.Function, iam.Role]:
        log_group = self.log_groups.create(self.scope, f"{construct_id}Logs")
        role = iam.Role(
            self.scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description}: logs, X-Ray, the dispatcher's permissions",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self.scope,
            construct_id,
            description=description,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=handler,
            code=self.code,
            memory_size=1024,
            timeout=Duration.seconds(timeout),
            tracing=lambda_.Tracing.ACTIVE,
            layers=list(self.layers) if TRACING_ENVIRONMENT.keys() <= environment.keys() else [],
            role=role,
            log_group=log_group,
            environment=dict(environment),
        )
        return function, role
