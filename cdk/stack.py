"""``FargateRunnersStack``: reads the ``cdk.json`` context and instantiates the construct."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .config import RunnersConfig
from .construct import FargateRunners, FargateRunnersProps, retention_days

__all__ = ["FargateRunnersStack"]


class FargateRunnersStack(Stack):
    """One :class:`FargateRunners` configured from a :class:`RunnersConfig`, plus outputs."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: RunnersConfig, **kwargs: Any
    ) -> None:
        kwargs.setdefault("stack_name", config.stack_name)
        kwargs.setdefault(
            "description", "Ephemeral GitHub Actions runners on AWS Fargate (webhook-driven)"
        )
        super().__init__(scope, construct_id, **kwargs)
        self.config = config

        vpc: ec2.IVpc | None = None
        if config.vpc_id is not None:
            # No lookups: synth needs no credentials.
            vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "ExistingVpc",
                vpc_id=config.vpc_id,
                availability_zones=self.availability_zones,
            )
        token_secret: secretsmanager.ISecret | None = None
        if config.github_token_secret_arn is not None:
            token_secret = secretsmanager.Secret.from_secret_complete_arn(
                self, "ImportedGitHubTokenSecret", config.github_token_secret_arn
            )

        self.runners = FargateRunners(
            self,
            "Runners",
            FargateRunnersProps(
                profiles=config.profiles,
                vpc=vpc,
                subnet_ids=config.subnet_ids,
                runner_scope=config.runner_scope,
                runner_group_id=config.runner_group_id,
                allowed_repositories=config.allowed_repositories,
                github_api_url=config.github_api_url,
                github_token_secret=token_secret,
                log_retention=retention_days(config.log_retention_days),
                assign_public_ip=config.effective_assign_public_ip,
                throttling_rate_limit=config.webhook_throttle_rate,
                throttling_burst_limit=config.webhook_throttle_burst,
                name_prefix=config.stack_name,
            ),
        )

        CfnOutput(
            self,
            "WebhookUrl",
            value=self.runners.webhook_url,
            description="GitHub webhook Payload URL (content type application/json)",
        )
        CfnOutput(
            self,
            "WebhookSecretArn",
            value=self.runners.webhook_secret.secret_arn,
            description="Secret whose value goes into the GitHub webhook's Secret field",
        )
        CfnOutput(
            self,
            "GitHubTokenSecretArn",
            value=self.runners.github_token_secret.secret_arn,
            description=(
                "Secret holding the GitHub PAT: aws secretsmanager put-secret-value "
                "--secret-id <arn> --secret-string <PAT>"
            ),
        )
        CfnOutput(
            self,
            "ClusterName",
            value=self.runners.cluster.cluster_name,
            description="ECS cluster the runner tasks run in",
        )
