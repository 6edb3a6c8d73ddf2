"""The deployed stack, as its CloudFormation outputs and resources describe it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lambda_fn import contract
from lambda_fn.contract import REQUIRED_OUTPUTS
from runners_cli.errors import CliError

DEFAULT_STACK_NAME = "FargateRunners"


@dataclass(frozen=True)
class StackInfo:
    """The outputs the CLI uses; queue URLs are ``None`` on stacks that predate them."""

    name: str
    region: str
    status: str
    outputs: dict[str, str]
    missing: tuple[str, ...] = ()

    @property
    def webhook_url(self) -> str:
        return self._required(contract.OUTPUT_WEBHOOK_URL)

    @property
    def webhook_secret_arn(self) -> str:
        return self._required(contract.OUTPUT_WEBHOOK_SECRET_ARN)

    @property
    def github_token_secret_arn(self) -> str:
        return self._required(contract.OUTPUT_GITHUB_TOKEN_SECRET_ARN)

    @property
    def cluster_name(self) -> str:
        return self._required(contract.OUTPUT_CLUSTER_NAME)

    @property
    def retry_queue_url(self) -> str | None:
        return self.outputs.get(contract.OUTPUT_RETRY_QUEUE_URL) or None

    @property
    def dead_letter_queue_url(self) -> str | None:
        return self.outputs.get(contract.OUTPUT_DEAD_LETTER_QUEUE_URL) or None

    @property
    def hook_parameter(self) -> str | None:
        """SSM parameter where ``setup`` records the webhook (stacks before it: None)."""
        return self.outputs.get(contract.OUTPUT_HOOK_PARAMETER) or None

    def _required(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise CliError(
                f"stack {self.name} has no output {key}: deploy the current version "
                "(cdk deploy) or pass the right --stack"
            )
        return value


@dataclass
class Aws:
    """boto3 clients for one region (``None``: the SDK's default), created on first use."""

    region: str | None = None
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def session(self) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(region_name=self.region)
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session().client(service)
        return self._clients[service]

    @property
    def region_name(self) -> str:
        return str(self.session().region_name or self.region or "")


@contextmanager
def aws_errors(region: str | None) -> Iterator[None]:
    """Turn the usual environment mistakes into one-line ``CliError`` s (exit 2)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        TokenRetrievalError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise CliError(
            "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY), or run `aws configure` / `aws sso login`"
        ) from None
    except TokenRetrievalError:
        raise CliError("AWS SSO session expired: run `aws sso login`") from None
    except NoRegionError:
        raise CliError(
            "no AWS region: pass --region, set AWS_DEFAULT_REGION, or set a region in your "
            "AWS profile (boto3 does not read AWS_REGION outside AWS)"
        ) from None
    except EndpointConnectionError as exc:
        raise CliError(
            f"cannot reach AWS in region {region or '(default)'!r}: is the region name "
            f"right? ({exc})"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in (
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "ExpiredToken",
            "ExpiredTokenException",
            "SignatureDoesNotMatch",
        ):
            raise CliError(f"AWS rejected the credentials ({code}): refresh them") from None
        raise


def load_stack(aws: Aws, name: str) -> StackInfo:
    """``describe_stacks``; a missing stack is a ``CliError`` that suggests --region/--stack."""
    from botocore.exceptions import ClientError

    cloudformation = aws.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            raise CliError(
                f"stack {name!r} not found in region {aws.region_name}: pass --region "
                "(where you ran cdk deploy) or --stack (the stack_name in cdk.json)"
            ) from None
        raise
    stack = stacks[0]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    missing = tuple(key for key in REQUIRED_OUTPUTS if not outputs.get(key))
    return StackInfo(
        name=name,
        region=aws.region_name,
        status=str(stack.get("StackStatus", "")),
        outputs=outputs,
        missing=missing,
    )


def stack_resources(aws: Aws, name: str, resource_type: str) -> list[dict[str, Any]]:
    """The stack's resources of one CloudFormation type (e.g. ``AWS::ECS::TaskDefinition``)."""
    found: list[dict[str, Any]] = []
    paginator = aws.client("cloudformation").get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=name):
        found.extend(
            r for r in page.get("StackResourceSummaries", []) if r["ResourceType"] == resource_type
        )
    return found


def webhook_function_environment(aws: Aws, name: str) -> dict[str, str]:
    """The deployed webhook Lambda's environment (for ``serve --aws``)."""
    functions = stack_resources(aws, name, "AWS::Lambda::Function")
    webhook = [f for f in functions if "WebhookFunction" in f["LogicalResourceId"]]
    if not webhook:
        raise CliError(
            f"stack {name} has no webhook Lambda function (logical id *WebhookFunction*)"
        )
    config = aws.client("lambda").get_function_configuration(
        FunctionName=webhook[0]["PhysicalResourceId"]
    )
    variables = config.get("Environment", {}).get("Variables", {})
    return {str(k): str(v) for k, v in variables.items()}


def read_secret(aws: Aws, arn: str) -> str | None:
    """A secret's SecretString; ``None`` when it has no value yet."""
    from botocore.exceptions import ClientError

    try:
        value = aws.client("secretsmanager").get_secret_value(SecretId=arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ResourceNotFoundException", "InvalidRequestException"):
            return None
        raise
    text = value.get("SecretString")
    return str(text) if text else None


def stack_alarm_names(aws: Aws, name: str) -> list[str]:
    """The names of the stack's CloudWatch alarms."""
    return [r["PhysicalResourceId"] for r in stack_resources(aws, name, "AWS::CloudWatch::Alarm")]


def silent_alarms(aws: Aws, names: list[str]) -> list[str]:
    """Those of ``names`` whose ALARM state notifies nobody.

    An alarm notifies someone when its ALARM actions include an SNS topic with at
    least one *confirmed* subscription (an e-mail subscription's ARN reads
    ``PendingConfirmation`` until its link is clicked, and it gets nothing until then:
    https://docs.aws.amazon.com/sns/latest/api/API_Subscription.html).
    """
    cloudwatch, sns = aws.client("cloudwatch"), aws.client("sns")
    alarms: list[dict[str, Any]] = []
    for start in range(0, len(names), 100):
        alarms.extend(
            cloudwatch.describe_alarms(AlarmNames=names[start : start + 100])["MetricAlarms"]
        )
    reached: dict[str, bool] = {}

    def reaches_someone(action: str) -> bool:
        if action.split(":")[2:3] != ["sns"]:
            return False
        if action not in reached:
            from botocore.exceptions import ClientError

            try:
                subscriptions = sns.list_subscriptions_by_topic(TopicArn=action)["Subscriptions"]
            except ClientError:
                subscriptions = []  # a topic we cannot read: not counted as reaching anyone
            reached[action] = any(
                str(s.get("SubscriptionArn", "")).startswith("arn:") for s in subscriptions
            )
        return reached[action]

    return sorted(
        str(alarm["AlarmName"])
        for alarm in alarms
        if not any(reaches_someone(a) for a in alarm.get("AlarmActions", []))
    )


def queue_depth(aws: Aws, url: str) -> int:
    """``ApproximateNumberOfMessages`` (visible messages) of a queue."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))
