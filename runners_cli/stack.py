"""The deployed stack, as its CloudFormation outputs and resources describe it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lambda_fn import contract
from lambda_fn.contract import REQUIRED_OUTPUTS
from runners_cli.errors import CliError

DEFAULT_STACK_NAME = "FargateRunners"


@dataclass(frozen=True)
class StackInfo:
    """The outputs the CLI uses; queue URLs are ``None`` on stacks that predate them.

    With an instance record (``lambda_fn/contract.py``), ``outputs`` are that record's and
    ``instance`` its name; the stack's resources are this instance's when their logical id
    starts with ``logical_id_prefix`` and with no longer prefix of another instance
    (``other_prefixes``).
    """

    name: str
    region: str
    status: str
    outputs: dict[str, str]
    missing: tuple[str, ...] = ()
    instance: str | None = None
    logical_id_prefix: str = ""
    other_prefixes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``stack`` or ``stack/instance`` for messages."""
        return f"{self.name}/{self.instance}" if self.instance else self.name

    def owns(self, logical_id: str) -> bool:
        """Whether a resource of the stack belongs to this instance (longest prefix wins)."""
        if not logical_id.startswith(self.logical_id_prefix):
            return False
        return not any(
            len(other) > len(self.logical_id_prefix) and logical_id.startswith(other)
            for other in self.other_prefixes
        )

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


def default_region(explicit: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """``--region``, else ``AWS_REGION``, else ``None`` (boto3: ``AWS_DEFAULT_REGION``, profile).

    The AWS CLI and the SDKs read ``AWS_REGION`` before ``AWS_DEFAULT_REGION`` and the
    profile's ``region`` (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html:
    "If defined, this environment variable overrides the values in the environment variable
    AWS_DEFAULT_REGION and the profile setting region"); botocore itself reads only
    ``AWS_DEFAULT_REGION`` (``botocore/configprovider.py``), so ``AWS_REGION`` is passed in
    here, and the CLI's region is the one the AWS CLI would use.
    """
    env = os.environ if environ is None else environ
    return explicit or env.get("AWS_REGION", "").strip() or None


@contextmanager
def aws_errors(region: str | None) -> Iterator[None]:
    """Turn the usual environment mistakes into one-line ``CliError`` s (exit 2)."""
    from botocore.exceptions import (
        ClientError,
        ConfigParseError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
        TokenRetrievalError,
    )

    try:
        yield
    except ProfileNotFound as exc:
        profile = exc.kwargs.get("profile", "")
        raise CliError(
            f"AWS profile {profile!r} (AWS_PROFILE) is not in your AWS config files: "
            "list the profiles with `aws configure list-profiles`, or unset AWS_PROFILE"
        ) from None
    except ConfigParseError as exc:
        raise CliError(
            f"cannot parse the AWS config file {exc.kwargs.get('path', '')}: fix or move it"
        ) from None
    except (NoCredentialsError, PartialCredentialsError):
        raise CliError(
            "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY), or run `aws configure` / `aws sso login`"
        ) from None
    except TokenRetrievalError:
        raise CliError("AWS SSO session expired: run `aws sso login`") from None
    except NoRegionError:
        raise CliError(
            "no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or set a "
            "region in your AWS profile"
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
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            operation = exc.operation_name
            raise CliError(
                f"AWS denied {operation} ({code}) to the credentials in use: use a role or "
                f"profile allowed to call it (AWS_PROFILE), or ask for the permission"
            ) from None
        raise


def instance_records(outputs: dict[str, str]) -> list[dict[str, str]]:
    """The instance records among a stack's output values (any output key)."""
    records: list[dict[str, str]] = []
    for value in outputs.values():
        if not value.startswith("{"):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict) and contract.INSTANCE_RECORD_MARKER in record:
            records.append({str(k): str(v) for k, v in record.items()})
    return sorted(records, key=lambda r: r.get(contract.INSTANCE_RECORD_NAME, ""))


def choose_instance(
    stack: str, records: list[dict[str, str]], wanted: str | None
) -> dict[str, str]:
    """The record ``--instance`` names (its path in the stack, or its last part when unique);
    without ``--instance`` the only one. Otherwise a one-line ``CliError`` listing them."""
    names = [r.get(contract.INSTANCE_RECORD_NAME, "") for r in records]
    listed = ", ".join(names)
    if wanted is None:
        if len(records) == 1:
            return records[0]
        raise CliError(
            f"stack {stack} holds {len(records)} fargate-runners instances ({listed}): "
            "pass --instance NAME"
        )
    wanted = wanted.strip("/")
    exact = [r for n, r in zip(names, records, strict=True) if n == wanted]
    last = [r for n, r in zip(names, records, strict=True) if n.rsplit("/", 1)[-1] == wanted]
    found = exact or last
    if len(found) == 1:
        return found[0]
    what = "matches more than one" if found else "is not one"
    raise CliError(
        f"--instance {wanted!r} {what} of the fargate-runners instances in stack {stack} "
        f"({listed}): pass one of those paths"
    )


def load_stack(aws: Aws, name: str, instance: str | None = None) -> StackInfo:
    """``describe_stacks``; a missing stack is a ``CliError`` that suggests --region/--stack.

    A stack with instance records (any ``FargateRunners``) is read through the one
    ``instance`` names; a stack without (deployed before records existed) through its
    fixed outputs.
    """
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
    records = instance_records(outputs)
    chosen: dict[str, str] | None = None
    if records:
        chosen = choose_instance(name, records, instance)
        outputs = chosen
    elif instance is not None:
        raise CliError(
            f"stack {name} has no fargate-runners instance records (deployed before they "
            "existed): drop --instance, or cdk deploy the current version"
        )
    missing = tuple(key for key in REQUIRED_OUTPUTS if not outputs.get(key))
    prefix = chosen.get(contract.INSTANCE_RECORD_PREFIX, "") if chosen else ""
    return StackInfo(
        name=name,
        region=aws.region_name,
        status=str(stack.get("StackStatus", "")),
        outputs=outputs,
        missing=missing,
        instance=chosen.get(contract.INSTANCE_RECORD_NAME) if chosen else None,
        logical_id_prefix=prefix,
        other_prefixes=tuple(
            r.get(contract.INSTANCE_RECORD_PREFIX, "") for r in records if r is not chosen
        ),
    )


def stack_resources(aws: Aws, stack: StackInfo | str, resource_type: str) -> list[dict[str, Any]]:
    """The stack's resources of one CloudFormation type (e.g. ``AWS::ECS::TaskDefinition``);
    given a ``StackInfo`` of one instance, only that instance's."""
    name = stack if isinstance(stack, str) else stack.name
    found: list[dict[str, Any]] = []
    paginator = aws.client("cloudformation").get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=name):
        found.extend(
            r
            for r in page.get("StackResourceSummaries", [])
            if r["ResourceType"] == resource_type
            and (isinstance(stack, str) or stack.owns(str(r["LogicalResourceId"])))
        )
    return found


#: The VPC attributes an interface endpoint's private DNS needs, as DescribeVpcAttribute names
#: them ("To use a private hosted zone, you must set the following VPC attributes to true:
#: enableDnsHostnames and enableDnsSupport": PrivateDnsEnabled in
#: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVpcEndpoint.html).
PRIVATE_DNS_ATTRIBUTES = ("enableDnsSupport", "enableDnsHostnames")


def endpoint_vpcs_without_dns(aws: Aws, stack: StackInfo | str) -> dict[str, list[str]] | None:
    """For each VPC holding one of the stack's interface endpoints with private DNS
    (``vpc_endpoints``), the attributes of ``PRIVATE_DNS_ATTRIBUTES`` that are off;
    None when the stack has no such endpoint."""
    ids = [r["PhysicalResourceId"] for r in stack_resources(aws, stack, "AWS::EC2::VPCEndpoint")]
    if not ids:
        return None
    ec2 = aws.client("ec2")
    endpoints = ec2.describe_vpc_endpoints(VpcEndpointIds=ids).get("VpcEndpoints", [])
    vpcs = sorted(
        {
            str(e["VpcId"])
            for e in endpoints
            if e.get("VpcEndpointType") == "Interface" and e.get("PrivateDnsEnabled")
        }
    )
    if not vpcs:
        return None
    off: dict[str, list[str]] = {}
    for vpc in vpcs:
        off[vpc] = []
        for attribute in PRIVATE_DNS_ATTRIBUTES:
            answer = ec2.describe_vpc_attribute(VpcId=vpc, Attribute=attribute)
            key = attribute[0].upper() + attribute[1:]  # EnableDnsSupport, EnableDnsHostnames
            if not answer.get(key, {}).get("Value"):
                off[vpc].append(attribute)
    return off


def webhook_function_environment(aws: Aws, stack: StackInfo | str) -> dict[str, str]:
    """The deployed webhook Lambda's environment (for ``serve --aws``)."""
    name = stack if isinstance(stack, str) else stack.name
    functions = stack_resources(aws, stack, "AWS::Lambda::Function")
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


def stack_alarm_names(aws: Aws, stack: StackInfo | str) -> list[str]:
    """The names of the stack's (or the instance's) CloudWatch alarms."""
    return [r["PhysicalResourceId"] for r in stack_resources(aws, stack, "AWS::CloudWatch::Alarm")]


def deployed_profiles(aws: Aws, env: dict[str, str]) -> list[Any]:
    """The profiles a deployed Lambda reads: ``RUNNER_PROFILES``, or the SSM parameters
    ``RUNNER_PROFILES_PARAMETERS`` names (``lambda_fn/profile_store.py``)."""
    inline = env.get("RUNNER_PROFILES", "").strip()
    if inline:
        loaded = json.loads(inline)
        return list(loaded) if isinstance(loaded, list) else []
    names = [n.strip() for n in env.get("RUNNER_PROFILES_PARAMETERS", "").split(",") if n.strip()]
    profiles: list[Any] = []
    ssm = aws.client("ssm")
    for start in range(0, len(names), 10):
        batch = names[start : start + 10]
        found = {
            p["Name"]: p["Value"] for p in ssm.get_parameters(Names=batch).get("Parameters", [])
        }
        for name in batch:
            if name not in found:
                raise CliError(f"the runner profiles parameter {name} is missing: cdk deploy")
            chunk = json.loads(found[name])
            profiles.extend(chunk if isinstance(chunk, list) else [])
    return profiles


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
