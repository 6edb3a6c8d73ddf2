"""A deployed stack in moto, as the ``fargate-runners`` CLI reads it.

Two ways in, both through boto3 (so they work in-process under ``moto.mock_aws`` and
against a moto server: boto3 reads ``AWS_ENDPOINT_URL``,
https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html):

- :func:`deploy`: a small hand-written stack (:func:`template`) with the fixed outputs the
  repository's own stack carried before instance records; what ``tests/cli`` builds on.
- :func:`deploy_synthesized`: a template ``cdk synth`` wrote (any app using the construct,
  with one or more instances and their records, ``fargate_runners/discovery.py``),
  reduced by :func:`moto_template` to what moto's CloudFormation can create.

What moto cannot hold, and what stands in for it:

- ``AWS::SecretsManager::Secret`` has no CloudFormation support in moto: each secret is
  created with the Secrets Manager API (a generated value where the template generates
  one, none where the stack creates it empty, like the GitHub token) and its ``Ref``
  becomes the secret's ARN.
- Types moto's CloudFormation does not create or that the CLI never reads (API Gateway
  stages, CloudWatch alarms, WAF, custom resources...) are left out; a ``Ref`` or
  ``Fn::GetAtt`` to one becomes a stand-in string (its name property, else its logical
  id), so outputs such as the webhook URL still resolve. The CLI then finds no alarm in
  the stack: ``doctor`` reports that as a failed check (``tests/cli`` replaces the
  stack's alarm listing, see :data:`ALARMS`).
- A subnet's route table association is made with the EC2 API after the stack (moto's
  CloudFormation keeps it where DescribeRouteTables does not look).
- Lambda functions get a one-line inline handler instead of their S3 asset (nothing is
  uploaded; the CLI reads only their configuration).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lambda_fn import contract
from runners_cli.stack import Aws

REGION = "us-east-1"
STACK = "FargateRunners"
API = "https://api.github.test"
WEBHOOK_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/webhook"
#: Fake values for a moto account (never real credentials).
WEBHOOK_SECRET = "stack-webhook-secret-0123456789"  # noqa: S105 - a fake, for moto
PAT = "github_pat_" + "CLITESTTOKEN" * 3

#: moto's default account (what its ARNs carry).
ACCOUNT = "123456789012"

#: A Lambda handler that does nothing: the assets of a synthesized stack are not uploaded.
INLINE_HANDLER = "def handler(event, context):\n    return None\n"


def _boto3_client(service: str, region: str) -> Any:
    """A client of boto3's default session: under ``mock_aws`` or ``AWS_ENDPOINT_URL``."""
    import boto3

    client: Any = boto3.client  # typed per service name by boto3-stubs; any service here
    return client(service, region_name=region)


def template(
    *,
    with_queues: bool = True,
    function_env: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parts of the repository's stack the CLI reads, with its fixed outputs (moto has
    no CFN support for secrets: they are created directly and passed in as parameters)."""
    from fargate_runners.config import DEFAULT_IMAGE

    resources: dict[str, Any] = {
        "RunnersCluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "runners"}},
        "RunnersProfiledefaultTaskDefinition": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": f"{STACK}-runner-default",
                "RequiresCompatibilities": ["FARGATE"],
                "NetworkMode": "awsvpc",
                "Cpu": "1024",
                "Memory": "2048",
                "ContainerDefinitions": [
                    {
                        "Name": "runner",
                        "Image": DEFAULT_IMAGE,
                        "Cpu": 1024,
                        "Memory": 2048,
                        "Essential": True,
                    }
                ],
            },
        },
        "WebhookRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sts:AssumeRole",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                        }
                    ],
                }
            },
        },
        "RunnersWebhookFunction1234ABCD": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.12",
                "Handler": "lambda_fn.app.handler",
                "Role": {"Fn::GetAtt": ["WebhookRole", "Arn"]},
                "Code": {"ZipFile": INLINE_HANDLER},
                "Environment": {
                    "Variables": {
                        "ECS_CLUSTER": {"Ref": "RunnersCluster"},
                        "WEBHOOK_SECRET_ARN": {"Ref": "WebhookSecretArn"},
                        "GITHUB_API_URL": API,
                        **(function_env or {}),
                    }
                },
            },
        },
    }
    resources.update(extra or {})
    resources["WebhookHookParameter"] = {
        "Type": "AWS::SSM::Parameter",
        # CloudFormation names it when Name is absent; moto needs one.
        "Properties": {
            "Name": "/runners/github-webhook",
            "Type": "String",
            "Value": "not-recorded",
        },
    }
    outputs: dict[str, Any] = {
        "WebhookUrl": {"Value": WEBHOOK_URL},
        "WebhookHookParameter": {"Value": {"Ref": "WebhookHookParameter"}},
        "WebhookSecretArn": {"Value": {"Ref": "WebhookSecretArn"}},
        "GitHubTokenSecretArn": {"Value": {"Ref": "GitHubTokenSecretArn"}},
        "ClusterName": {"Value": {"Ref": "RunnersCluster"}},
    }
    if with_queues:
        resources["RetryQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "retry"}}
        resources["DeadLetterQueue"] = {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": "dlq"},
        }
        outputs["RetryQueueUrl"] = {"Value": {"Ref": "RetryQueue"}}
        outputs["DeadLetterQueueUrl"] = {"Value": {"Ref": "DeadLetterQueue"}}
    return {
        "Parameters": {
            "WebhookSecretArn": {"Type": "String"},
            "GitHubTokenSecretArn": {"Type": "String"},
        },
        "Resources": resources,
        "Outputs": outputs,
    }


@dataclass
class Deployed:
    """What :func:`deploy` created (``aws``: the CLI's clients for the region)."""

    aws: Aws
    webhook_secret_arn: str
    token_secret_arn: str
    outputs: dict[str, str]
    region: str = REGION

    def pat(self) -> str | None:
        sm = _boto3_client("secretsmanager", self.region)
        try:
            return str(sm.get_secret_value(SecretId=self.token_secret_arn)["SecretString"])
        except sm.exceptions.ResourceNotFoundException:
            return None

    def pat_versions(self) -> int:
        sm = _boto3_client("secretsmanager", self.region)
        return len(sm.list_secret_version_ids(SecretId=self.token_secret_arn)["Versions"])

    def run_runner_task(self, job_id: int, repository: str, profile: str = "default") -> str:
        ec2 = _boto3_client("ec2", self.region)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        ecs = _boto3_client("ecs", self.region)
        task = ecs.run_task(
            cluster="runners",
            taskDefinition=f"{STACK}-runner-default",
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}},
            tags=[
                {"key": contract.TAG_GITHUB_JOB_ID, "value": str(job_id)},
                {"key": contract.TAG_GITHUB_REPOSITORY, "value": repository},
                {"key": contract.TAG_PROFILE, "value": profile},
            ],
        )["tasks"][0]
        return str(task["taskArn"])


def deploy(
    *,
    pat: str | None = PAT,
    with_queues: bool = True,
    name: str = STACK,
    alarm_topic: bool = True,
    function_env: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    region: str = REGION,
) -> Deployed:
    """Create :func:`template` as stack ``name``, its two secrets and one alarm."""
    sm = _boto3_client("secretsmanager", region)
    webhook_arn = sm.create_secret(Name=f"{name}/webhook", SecretString=WEBHOOK_SECRET)["ARN"]
    if pat is None:
        token_arn = sm.create_secret(Name=f"{name}/token")["ARN"]
    else:
        token_arn = sm.create_secret(Name=f"{name}/token", SecretString=pat)["ARN"]
    cf = _boto3_client("cloudformation", region)
    cf.create_stack(
        StackName=name,
        TemplateBody=json.dumps(
            template(with_queues=with_queues, function_env=function_env, extra=extra)
        ),
        Parameters=[
            {"ParameterKey": "WebhookSecretArn", "ParameterValue": webhook_arn},
            {"ParameterKey": "GitHubTokenSecretArn", "ParameterValue": token_arn},
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    create_alarm(f"{name}-ReconcilerFailing-ABC123", topic=alarm_topic, region=region)
    return Deployed(Aws(region), webhook_arn, token_arn, stack_outputs(name, region), region)


def stack_outputs(name: str, region: str = REGION) -> dict[str, str]:
    """The stack's outputs as ``{key: value}``."""
    stack = _boto3_client("cloudformation", region).describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


#: The alarms :func:`create_alarm` made. moto's CloudFormation does not create
#: AWS::CloudWatch::Alarm (nor AWS::SNS::Subscription), so the alarms are made with the
#: APIs; ``tests/cli`` lists these as the stack's alarms (its ``stack_alarms`` fixture).
ALARMS: list[str] = []


def create_alarm(name: str, *, topic: bool, region: str = REGION) -> None:
    """An alarm on Lambda errors; with ``topic``, notifying an SNS topic with one e-mail
    subscription (moto confirms it at once)."""
    actions: list[str] = []
    if topic:
        sns = _boto3_client("sns", region)
        arn = sns.create_topic(Name=f"{name}-topic")["TopicArn"]
        sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="ops@example.com")
        actions = [arn]
    _boto3_client("cloudwatch", region).put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=2,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=actions,
    )
    ALARMS.append(name)


# ---------------------------------------------------------------------------
# A synthesized template
# ---------------------------------------------------------------------------

#: What is kept of a synthesized template: what the CLI reads (clusters, task definitions,
#: the webhook Lambda's configuration, queues, SSM parameters, VPC endpoints and the
#: network the Fargate checks look at: subnets, their routes and gateways) and what those
#: resources refer to by ``Fn::GetAtt`` (roles, log groups, the table). All are types
#: moto's CloudFormation creates.
KEPT_TYPES = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::EC2::EIP",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::NatGateway",
        "AWS::EC2::Route",
        "AWS::EC2::RouteTable",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::Subnet",
        "AWS::EC2::VPC",
        "AWS::EC2::VPCEndpoint",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::ECS::Cluster",
        "AWS::ECS::TaskDefinition",
        "AWS::IAM::Role",
        "AWS::Lambda::Function",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::SSM::Parameter",
    }
)
SECRET_TYPE = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type
#: moto's CloudFormation records this type apart from the route tables, so
#: DescribeRouteTables (what the CLI's network check reads) does not show the association;
#: :func:`deploy_synthesized` makes each one with AssociateRouteTable instead.
ASSOCIATION_TYPE = "AWS::EC2::SubnetRouteTableAssociation"

#: The property CloudFormation's ``Ref`` returns for a left-out type, when the template
#: names it (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-template-resource-type-ref.html,
#: "Return values" of each type); otherwise the stand-in is the logical id.
_REF_NAME_PROPERTY = {
    "AWS::ApiGateway::Stage": "StageName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
}

_SUB_VARIABLE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?\}")


@dataclass(frozen=True)
class SynthesizedDeployment:
    """What :func:`deploy_synthesized` created: the stack's outputs and, by logical id,
    the ARN of each secret."""

    name: str
    region: str
    outputs: dict[str, str]
    secrets: dict[str, str]
    left_out: tuple[str, ...]


def _stand_in(
    logical_id: str, resource: Mapping[str, Any], attribute: str | None, region: str
) -> str:
    """The string a ``Ref`` (``attribute`` None) or ``Fn::GetAtt`` to a left-out resource
    becomes."""
    kind = str(resource.get("Type", ""))
    if attribute is None:
        prop = _REF_NAME_PROPERTY.get(kind)
        value = resource.get("Properties", {}).get(prop) if prop else None
        return value if isinstance(value, str) else logical_id.lower()
    if attribute == "Arn":
        service = kind.split("::")[1].lower() if kind.count("::") == 2 else "unknown"
        return f"arn:aws:{service}:{region}:{ACCOUNT}:{logical_id.lower()}"
    return f"{logical_id.lower()}-{attribute.lower()}"


def _replace(node: Any, literal: Callable[[str, str | None], str | None]) -> Any:
    """``node`` with every ``Ref``/``Fn::GetAtt`` (also inside ``Fn::Sub``) for which
    ``literal(logical_id, attribute)`` gives a string replaced by that string."""
    if isinstance(node, list):
        return [_replace(item, literal) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, value),) = node.items()
        if key == "Ref" and isinstance(value, str):
            found = literal(value, None)
            return node if found is None else found
        if key == "Fn::GetAtt":
            parts = value.split(".", 1) if isinstance(value, str) else value
            if isinstance(parts, list) and len(parts) == 2 and isinstance(parts[0], str):
                found = literal(parts[0], str(parts[1]))
                return node if found is None else found
        if key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])

            def sub(match: re.Match[str]) -> str:
                if match.group(1) in variables:
                    return match.group(0)
                found = literal(match.group(1), match.group(2))
                return match.group(0) if found is None else found

            text = _SUB_VARIABLE.sub(sub, text)
            variables = _replace(variables, literal)
            return {"Fn::Sub": [text, variables] if variables else text}
    return {key: _replace(value, literal) for key, value in node.items()}


def moto_template(
    synthesized: Mapping[str, Any],
    secret_arns: Mapping[str, str],
    stack_name: str,
    region: str = REGION,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A template moto's CloudFormation creates, from one ``cdk synth`` wrote, and the
    logical ids left out.

    ``secret_arns`` maps each ``AWS::SecretsManager::Secret`` logical id to the ARN of the
    secret created for it. CDK's bootstrap-version parameter and rule are dropped (moto
    would look for the bootstrap's SSM parameter).
    """
    resources: dict[str, Any] = dict(synthesized.get("Resources", {}))
    kept = {k for k, r in resources.items() if r.get("Type") in KEPT_TYPES}
    left_out = tuple(sorted(k for k in resources if k not in kept and k not in secret_arns))

    def literal(logical_id: str, attribute: str | None) -> str | None:
        if logical_id in secret_arns:
            return secret_arns[logical_id] if attribute in (None, "Id") else None
        if logical_id in resources and logical_id not in kept:
            return _stand_in(logical_id, resources[logical_id], attribute, region)
        return None

    out_resources: dict[str, Any] = {}
    for logical_id in sorted(kept):
        resource = json.loads(json.dumps(resources[logical_id]))
        resource.pop("Metadata", None)
        depends = resource.pop("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        if kept_depends := [d for d in depends if d in kept]:
            resource["DependsOn"] = kept_depends
        properties = resource.setdefault("Properties", {})
        _moto_properties(logical_id, resource["Type"], properties, stack_name)
        out_resources[logical_id] = _replace(resource, literal)
    result: dict[str, Any] = {
        key: _replace(value, literal)
        for key, value in synthesized.items()
        if key not in ("Resources", "Parameters", "Rules")
    }
    parameters = {
        k: v for k, v in synthesized.get("Parameters", {}).items() if k != "BootstrapVersion"
    }
    if parameters:
        result["Parameters"] = parameters
    result["Resources"] = out_resources
    return result, left_out


def _moto_properties(
    logical_id: str, kind: str, properties: dict[str, Any], stack_name: str
) -> None:
    """Adjust one kept resource's properties to what moto needs."""
    if kind == "AWS::Lambda::Function":
        properties["Code"] = {"ZipFile": INLINE_HANDLER}
        properties.pop("Layers", None)  # layer versions are assets too: not uploaded
    elif kind == "AWS::SSM::Parameter" and "Name" not in properties:
        # CloudFormation names an unnamed parameter; moto needs a name.
        properties["Name"] = f"/{stack_name}/{logical_id}"


def deploy_synthesized(
    synthesized: Mapping[str, Any],
    *,
    name: str,
    region: str = REGION,
    secret_values: Mapping[str, str] | None = None,
) -> SynthesizedDeployment:
    """Create a synthesized template's stack in moto, as :func:`moto_template` reduces it.

    Each secret gets ``secret_values[logical_id]`` when given, else a generated value
    where the template generates one (``GenerateSecretString``), else its literal
    ``SecretString``, else none (created empty, like the stack's GitHub token secret).
    """
    sm = _boto3_client("secretsmanager", region)
    secret_arns: dict[str, str] = {}
    for logical_id, resource in sorted(synthesized.get("Resources", {}).items()):
        if resource.get("Type") != SECRET_TYPE:
            continue
        properties = resource.get("Properties", {})
        secret_name = properties.get("Name")
        if not isinstance(secret_name, str):
            secret_name = f"{name}/{logical_id}"
        value = (secret_values or {}).get(logical_id)
        if value is None and "GenerateSecretString" in properties:
            value = secrets.token_urlsafe(30)
        if value is None and isinstance(properties.get("SecretString"), str):
            value = properties["SecretString"]
        arguments: dict[str, Any] = {"Name": secret_name}
        if value is not None:
            arguments["SecretString"] = value
        secret_arns[logical_id] = str(sm.create_secret(**arguments)["ARN"])
    body, left_out = moto_template(synthesized, secret_arns, name, region)
    _boto3_client("cloudformation", region).create_stack(
        StackName=name,
        TemplateBody=json.dumps(body),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    pages = _boto3_client("cloudformation", region).get_paginator("list_stack_resources")
    physical = {
        str(r["LogicalResourceId"]): str(r["PhysicalResourceId"])
        for page in pages.paginate(StackName=name)
        for r in page.get("StackResourceSummaries", [])
    }
    _associate_route_tables(synthesized, physical, region)
    return SynthesizedDeployment(name, region, stack_outputs(name, region), secret_arns, left_out)


def _associate_route_tables(
    synthesized: Mapping[str, Any], physical: Mapping[str, str], region: str
) -> None:
    """What each ``AWS::EC2::SubnetRouteTableAssociation`` of the template does."""
    ec2 = _boto3_client("ec2", region)

    def resolve(value: Any) -> str | None:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("Ref"), str):
            return physical.get(value["Ref"])
        return None

    for resource in synthesized.get("Resources", {}).values():
        if resource.get("Type") != ASSOCIATION_TYPE:
            continue
        properties = resource.get("Properties", {})
        table = resolve(properties.get("RouteTableId"))
        subnet = resolve(properties.get("SubnetId"))
        if table and subnet:
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
