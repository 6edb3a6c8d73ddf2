"""``FargateRunnersStack``: reads the ``cdk.json`` context and instantiates the construct."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from lambda_fn import contract

from .config import SHARED_FIELDS, RunnersConfig
from .construct import FargateRunners, FargateRunnersProps
from .github_app import GitHubAppAuth
from .nag import Acknowledgment, acknowledge

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

        alarm_topic: sns.ITopic | None = None
        if config.alarm_topic_arn is not None:
            alarm_topic = sns.Topic.from_topic_arn(self, "AlarmTopic", config.alarm_topic_arn)
        elif config.alarm_email is not None:
            topic = sns.Topic(
                self, "AlarmTopic", display_name="Fargate runners alarms", enforce_ssl=True
            )
            topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
            acknowledge(
                topic,
                Acknowledgment(
                    id="Serverless-SNSRedrivePolicy",
                    reason=(
                        "An e-mail subscription of the alarm topic: SNS retries e-mail delivery "
                        "itself, and a dead-letter queue for undelivered alarm mails would need "
                        "an alarm of its own that notifies through this same topic."
                    ),
                ),
            )
            alarm_topic = topic

        self.runners = FargateRunners(
            self,
            "Runners",
            FargateRunnersProps(
                # The settings cdk.json and the props share, as they are, by the same name
                # (issue 26; assign_public_ip's default, None, means the same in both),
                **{name: getattr(config, name) for name in SHARED_FIELDS},
                # and the CDK objects built from the rest of cdk.json.
                vpc=vpc,
                github_token_secret=token_secret,
                github_app=(
                    GitHubAppAuth(config.github_app_id, config.github_app_key_arn)
                    if config.github_auth == "app" and config.github_app_id
                    else None
                ),
                name_prefix=config.stack_name,
                alarm_topic=alarm_topic,
            ),
        )

        CfnOutput(
            self,
            contract.OUTPUT_WEBHOOK_URL,
            value=self.runners.webhook_url,
            description="GitHub webhook Payload URL (content type application/json)",
        )
        CfnOutput(
            self,
            contract.OUTPUT_WEBHOOK_SECRET_ARN,
            value=self.runners.webhook_secret.secret_arn,
            description="Secret whose value goes into the GitHub webhook's Secret field",
        )
        CfnOutput(
            self,
            contract.OUTPUT_GITHUB_TOKEN_SECRET_ARN,
            value=self.runners.github_token_secret.secret_arn,
            description=(
                "Secret holding the GitHub PAT: aws secretsmanager put-secret-value "
                "--secret-id <arn> --secret-string <PAT>"
            ),
        )
        CfnOutput(
            self,
            contract.OUTPUT_CLUSTER_NAME,
            value=self.runners.cluster.cluster_name,
            description="ECS cluster the runner tasks run in",
        )
        CfnOutput(
            self,
            contract.OUTPUT_RETRY_QUEUE_URL,
            value=self.runners.retry_queue.queue_url,
            description="Jobs whose launch failed transiently wait here for a retry",
        )
        CfnOutput(
            self,
            contract.OUTPUT_DEAD_LETTER_QUEUE_URL,
            value=self.runners.dead_letter_queue.queue_url,
            description="Jobs that could not be launched (see docs/deliveries.md)",
        )
        CfnOutput(
            self,
            contract.OUTPUT_HOOK_PARAMETER,
            value=self.runners.hook_parameter.parameter_name,
            description=(
                "SSM parameter where fargate-runners setup records the webhook, so failed "
                "deliveries are redelivered"
            ),
        )
        for profile in config.profiles:
            groups = self.runners.security_groups(profile.name)
            CfnOutput(
                self,
                contract.profile_output_name(contract.OUTPUT_SECURITY_GROUP_PREFIX, profile.name),
                value=",".join(group.security_group_id for group in groups),
                description=f"Security group(s) of profile {profile.name}'s runner tasks: "
                "admit these at a target to let exactly this profile in",
            )
            if profile.managed_steps:
                CfnOutput(
                    self,
                    contract.profile_output_name(
                        contract.OUTPUT_STEP_SECURITY_GROUP_PREFIX, profile.name
                    ),
                    value=self.runners.step_security_group(profile.name).security_group_id,
                    description=f"Security group of profile {profile.name}'s managed step tasks",
                )
        CfnOutput(
            self,
            contract.OUTPUT_DASHBOARD_NAME,
            value=self.runners.dashboard.dashboard_name,
            description="CloudWatch dashboard of deliveries, launches and queues",
        )
