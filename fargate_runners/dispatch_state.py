"""The dispatcher's state: its secrets, the GitHub App key, the table, queues and hook record.

One part of :class:`~fargate_runners.construct.FargateRunners`: :class:`DispatchState`
builds its resources in the construct's own scope (``runners``), so logical ids do not
depend on how the code is split. It comes before the runner tasks (a restricted
profile's task reads its admission records from the table) and before the dispatcher's
Lambdas, which read and write all of it.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from lambda_fn.config import HOOK_NOT_RECORDED

from .github_app import GitHubAppKey
from .nag import Acknowledgment, acknowledge
from .props import RETRY_FUNCTION_TIMEOUT_SECONDS, FargateRunnersProps


class DispatchState:
    """What the dispatcher reads and writes, and who may read the credentials.

    Outputs: :attr:`webhook_secret`, :attr:`github_token_secret`, :attr:`github_app`
    (``github_auth: app``: the App's KMS key and its Lambda settings; None with the PAT),
    :attr:`idempotency_table`, :attr:`retry_queue`, :attr:`dead_letter_queue` and
    :attr:`hook_parameter`; the grants on them.
    """

    def __init__(self, runners: Construct, props: FargateRunnersProps) -> None:
        self.runners = runners
        self.idempotency_table = self._table()
        self.webhook_secret, self.github_token_secret = self._secrets(props)
        app = props.github_app
        self.github_app = GitHubAppKey(runners, "GitHubApp", app) if app else None
        self.dead_letter_queue, self.retry_queue = self._queues()
        #: The SSM parameter ``fargate-runners setup`` records the webhook in.
        self.hook_parameter = self._hook_parameter()

    def _table(self) -> dynamodb.Table:
        return dynamodb.Table(
            self.runners,
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

    def _secrets(
        self, props: FargateRunnersProps
    ) -> tuple[secretsmanager.Secret, secretsmanager.ISecret]:
        webhook_secret = secretsmanager.Secret(
            self.runners,
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
        acknowledge(
            webhook_secret,
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason=(
                    "The webhook secret is shared with GitHub's webhook settings; rotating it "
                    "needs a matching manual change on GitHub, so automatic rotation would "
                    "break deliveries."
                ),
            ),
        )
        if props.github_token_secret is not None:
            return webhook_secret, props.github_token_secret
        token_secret = secretsmanager.Secret(
            self.runners,
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
        acknowledge(
            token_secret,
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason=(
                    "The GitHub PAT is issued by GitHub; it is rotated by creating a new "
                    "token on GitHub and putting it here, which Secrets Manager rotation "
                    "cannot do."
                ),
            ),
        )
        return webhook_secret, token_secret

    def _queues(self) -> tuple[sqs.Queue, sqs.Queue]:
        dead_letter_queue = sqs.Queue(
            self.runners,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            dead_letter_queue,
            Acknowledgment(
                id="Serverless-SQSRedrivePolicy",
                reason=(
                    "This is the dead-letter queue (of the retry queue and of the dispatcher): "
                    "its messages wait for an operator, with an alarm on any message."
                ),
            ),
        )
        retry_queue = sqs.Queue(
            self.runners,
            "RetryQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # Six times the consumer's timeout, as AWS recommends for Lambda event sources.
            visibility_timeout=Duration.seconds(6 * RETRY_FUNCTION_TIMEOUT_SECONDS),
            retention_period=Duration.days(1),
            # The consumer parks jobs in the DLQ itself; this only catches crashes.
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letter_queue, max_receive_count=5),
        )
        return dead_letter_queue, retry_queue

    def _hook_parameter(self) -> ssm.StringParameter:
        """Where ``fargate-runners setup`` records the webhook it created, so the reconciler
        can redeliver failed deliveries without hand configuration."""
        return ssm.StringParameter(
            self.runners,
            "WebhookHookParameter",
            description=(
                "The GitHub webhook (repos/O/R/hooks/ID or orgs/O/hooks/ID) whose failed "
                "deliveries the reconciler redelivers; written by fargate-runners setup"
            ),
            string_value=HOOK_NOT_RECORDED,
        )

    def grant_job_records(self, role: iam.Role) -> None:
        """The reconciler reads the job records of stopped jobs 100 at a time
        (``lambda_fn/job_records.py``), on this one table."""
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadJobRecords",
                actions=["dynamodb:BatchGetItem"],
                resources=[self.idempotency_table.table_arn],
            )
        )

    def grant_hook_parameter(self, role: iam.Role) -> None:
        """Read the recorded webhook (the reconciler, the hook filter)."""
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRecordedWebhook",
                actions=["ssm:GetParameter"],
                resources=[self.hook_parameter.parameter_arn],
            )
        )

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
