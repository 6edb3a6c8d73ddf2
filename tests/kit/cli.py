"""A deployed stack in moto (CloudFormation with outputs), GitHub as the CLI meets it, and
what a careful organisation sets up (protections, a runner group)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
import responses

from fargate_runners.config import DEFAULT_IMAGE
from lambda_fn import contract
from runners_cli.stack import Aws
from tests.kit.github import FakeGitHub

REGION = "us-east-1"
STACK = "FargateRunners"
API = "https://api.github.test"
WEBHOOK_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/webhook"
WEBHOOK_SECRET = "stack-webhook-secret-0123456789"
PAT = "github_pat_" + "CLITESTTOKEN" * 3


def template(
    *,
    with_queues: bool = True,
    function_env: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parts of the real stack the CLI reads (moto has no CFN support for secrets:
    they are created directly and passed in as parameters)."""
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
                "Code": {"ZipFile": "def handler(event, context):\n    return None\n"},
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
    aws: Aws
    webhook_secret_arn: str
    token_secret_arn: str
    outputs: dict[str, str]

    def pat(self) -> str | None:
        sm = boto3.client("secretsmanager", region_name=REGION)
        try:
            return str(sm.get_secret_value(SecretId=self.token_secret_arn)["SecretString"])
        except sm.exceptions.ResourceNotFoundException:
            return None

    def pat_versions(self) -> int:
        sm = boto3.client("secretsmanager", region_name=REGION)
        return len(sm.list_secret_version_ids(SecretId=self.token_secret_arn)["Versions"])

    def run_runner_task(self, job_id: int, repository: str, profile: str = "default") -> str:
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        ecs = boto3.client("ecs", region_name=REGION)
        task = ecs.run_task(
            cluster="runners",
            taskDefinition=f"{STACK}-runner-default",
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}},
            tags=[
                {"key": contract.TAG_GITHUB_JOB_ID, "value": str(job_id)},
                {"key": contract.TAG_GITHUB_REPOSITORY, "value": repository},
                {"key": "runner:profile", "value": profile},
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
) -> Deployed:
    sm = boto3.client("secretsmanager", region_name=REGION)
    webhook_arn = sm.create_secret(Name=f"{name}/webhook", SecretString=WEBHOOK_SECRET)["ARN"]
    if pat is None:
        token_arn = sm.create_secret(Name=f"{name}/token")["ARN"]
    else:
        token_arn = sm.create_secret(Name=f"{name}/token", SecretString=pat)["ARN"]
    cf = boto3.client("cloudformation", region_name=REGION)
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
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cf.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
    }
    create_alarm(f"{name}-ReconcilerFailing-ABC123", topic=alarm_topic)
    return Deployed(Aws(REGION), webhook_arn, token_arn, outputs)


#: The stack's alarms. moto's CloudFormation does not create AWS::CloudWatch::Alarm (nor
#: AWS::SNS::Subscription), so the alarms are made with the APIs and the stack's resource
#: listing for that one type comes from here (``stack_alarms`` fixture).
ALARMS: list[str] = []


def create_alarm(name: str, *, topic: bool) -> None:
    actions: list[str] = []
    if topic:
        sns = boto3.client("sns", region_name=REGION)
        arn = sns.create_topic(Name=f"{name}-topic")["TopicArn"]
        sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="ops@example.com")
        actions = [arn]
    boto3.client("cloudwatch", region_name=REGION).put_metric_alarm(
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


class GitHub(FakeGitHub):
    """The one GitHub model (``localdev.github_model``) as the CLI meets it: one valid token."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        super().__init__(mock, base_url=API, valid_token=PAT)

    def seed_hook(self, rest: dict[str, Any], scope: str = "repos/octo-org/app") -> None:
        """A webhook that already exists, given as the REST API shows it."""
        config = rest["config"]
        hook = self.add_hook(
            scope, config["url"], "x" if "secret" in config else "",
            hook_id=rest["id"], events=rest["events"],
        )  # fmt: skip
        hook.active, hook.content_type = rest["active"], config["content_type"]

    def hook_views(self) -> list[dict[str, Any]]:
        return [hook.view() for hook in self.hooks.values()]

    def sent(self) -> list[tuple[str, str]]:
        """(method, path) of every request, in order (``authorizations`` lines up with it)."""
        return [(c.request.method, urlsplit(c.request.url).path) for c in self.mock.calls]

    @property
    def authorizations(self) -> list[str]:
        """The ``Authorization`` header of every request (to tell the PAT from an
        installation token), in the order of :meth:`sent`."""
        return [c.request.headers.get("Authorization", "") for c in self.mock.calls]

    def writes(self) -> list[tuple[str, str]]:
        return [
            (r.method, r.path)
            for r in self.requests
            if r.method in ("POST", "PUT", "PATCH", "DELETE")
        ]


DEPLOY_WORKFLOW = "octo-org/app/.github/workflows/deploy.yml@refs/heads/main"


def protect(github: GitHub) -> None:
    """What a careful organisation sets up: main reviewed, v* tags restricted."""
    github.add_ruleset(
        "repos/octo-org/app",
        name="main reviewed",
        conditions={"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
        rules=[
            {
                "type": "pull_request",
                "parameters": {
                    "required_approving_review_count": 1,
                    "dismiss_stale_reviews_on_push": True,
                },
            },
            {"type": "non_fast_forward"},
            {"type": "deletion"},
        ],
    )
    github.add_ruleset(
        "orgs/octo-org",
        name="release tags",
        target="tag",
        conditions={"ref_name": {"include": ["refs/tags/v*"], "exclude": []}},
        rules=[{"type": "creation"}, {"type": "update"}, {"type": "deletion"}],
        bypass_actors=[{"actor_id": 5, "actor_type": "RepositoryRole", "bypass_mode": "always"}],
    )


def seed_group(github: GitHub, group_id: int = 7, **fields: Any) -> dict[str, Any]:
    group = {
        "id": group_id, "name": "deploy", "visibility": "selected", "default": False,
        "allows_public_repositories": False, "restricted_to_workflows": True,
        "selected_workflows": [DEPLOY_WORKFLOW], "workflow_restrictions_read_only": False,
        "org": "octo-org", "repository_ids": [github.repository_id("octo-org/app")],
        **fields,
    }  # fmt: skip
    github.runner_groups[group_id] = group
    return group
