"""The synthesized template: resources, IAM scoping, Lambda environment, outputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from .conftest import STACK_NAME, TEST_CONTEXT, Synth

pytestmark = pytest.mark.infra


def only(items: dict[str, Any]) -> Any:
    assert len(items) == 1, list(items)
    return next(iter(items.values()))


def logical_id(synth: Synth, type_: str, contains: str) -> str:
    (found,) = [k for k in synth.resources(type_) if contains in k]
    return found


def statements(synth: Synth, role_contains: str) -> list[dict[str, Any]]:
    role_id = logical_id(synth, "AWS::IAM::Role", role_contains)
    result: list[dict[str, Any]] = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            result.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return result


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def webhook_env(synth: Synth) -> dict[str, Any]:
    function = only(synth.resources("AWS::Lambda::Function"))
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


# -- ECS -----------------------------------------------------------------------


def test_cluster_has_container_insights_and_fargate_capacity_providers(main_synth: Synth) -> None:
    main_synth.template.resource_count_is("AWS::ECS::Cluster", 1)
    main_synth.template.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )
    main_synth.template.has_resource_properties(
        "AWS::ECS::ClusterCapacityProviderAssociations",
        {"CapacityProviders": Match.array_with(["FARGATE", "FARGATE_SPOT"])},
    )


@pytest.mark.parametrize(
    "expected",
    [
        ("small", "1024", "2048", "ARM64", 21, "ghcr.io/actions/actions-runner:2.332.0"),
        (
            "big-x64", "4096", "16384", "X86_64", 100,
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/runner:custom",
        ),
    ],
    ids=["small-arm64", "big-x64"],
)  # fmt: skip
def test_task_definition_per_profile(
    main_synth: Synth, expected: tuple[str, str, str, str, int, str]
) -> None:
    profile, cpu, memory, arch, storage, image = expected
    (task_def,) = [
        r["Properties"]
        for r in main_synth.resources("AWS::ECS::TaskDefinition").values()
        if r["Properties"]["Family"] == f"{STACK_NAME}-runner-{profile}"
    ]
    assert task_def["Cpu"] == cpu
    assert task_def["Memory"] == memory
    assert task_def["RuntimePlatform"] == {
        "CpuArchitecture": arch,
        "OperatingSystemFamily": "LINUX",
    }
    assert task_def["EphemeralStorage"] == {"SizeInGiB": storage}
    assert task_def["RequiresCompatibilities"] == ["FARGATE"]
    assert task_def["NetworkMode"] == "awsvpc"
    assert "Volumes" not in task_def
    (container,) = task_def["ContainerDefinitions"]
    assert container["Name"] == "runner"
    assert container["Image"] == image
    assert container["Command"] == ["/home/runner/run.sh"]
    assert container["User"] == "1001"
    assert container.get("Privileged", False) is False
    assert "MountPoints" not in container
    assert "Environment" not in container
    assert "Secrets" not in container
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert container["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == profile


def test_one_task_definition_per_profile(main_synth: Synth) -> None:
    main_synth.template.resource_count_is("AWS::ECS::TaskDefinition", len(TEST_CONTEXT["profiles"]))


def test_task_roles_have_no_permissions(main_synth: Synth) -> None:
    for task_def in main_synth.resources("AWS::ECS::TaskDefinition").values():
        role_id = task_def["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        role = main_synth.raw["Resources"][role_id]["Properties"]
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "ecs-tasks.amazonaws.com"
        }
        assert "ManagedPolicyArns" not in role
        assert "Policies" not in role
        for policy in main_synth.resources("AWS::IAM::Policy").values():
            assert {"Ref": role_id} not in policy["Properties"]["Roles"]


def test_execution_roles_only_write_runner_logs(main_synth: Synth) -> None:
    log_group = logical_id(main_synth, "AWS::Logs::LogGroup", "RunnerLogs")
    for task_def in main_synth.resources("AWS::ECS::TaskDefinition").values():
        role_id = task_def["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
        role = main_synth.raw["Resources"][role_id]["Properties"]
        assert "ManagedPolicyArns" not in role
        found = [
            s
            for p in main_synth.resources("AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        assert found == [
            {
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [log_group, "Arn"]},
            }
        ]


def test_runner_security_group_has_no_ingress(main_synth: Synth) -> None:
    group = only(main_synth.resources("AWS::EC2::SecurityGroup"))["Properties"]
    assert "SecurityGroupIngress" not in group
    assert group["SecurityGroupEgress"] == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "Allow all outbound traffic by default",
            "IpProtocol": "-1",
        }
    ]
    main_synth.template.resource_count_is("AWS::EC2::SecurityGroupIngress", 0)


def test_new_vpc_is_public_only_without_nat_and_with_flow_logs(main_synth: Synth) -> None:
    main_synth.template.resource_count_is("AWS::EC2::VPC", 1)
    main_synth.template.resource_count_is("AWS::EC2::NatGateway", 0)
    main_synth.template.resource_count_is("AWS::EC2::Subnet", 2)
    for subnet in main_synth.resources("AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is True
    main_synth.template.has_resource_properties(
        "AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL"}
    )


def test_every_log_group_has_the_configured_retention(main_synth: Synth) -> None:
    groups = main_synth.resources("AWS::Logs::LogGroup")
    assert len(groups) == 4  # runner tasks, webhook Lambda, API access logs, VPC flow logs
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == TEST_CONTEXT["log_retention_days"]


# -- secrets and table -----------------------------------------------------------


def test_no_secret_value_in_template(main_synth: Synth) -> None:
    secrets = main_synth.resources("AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
    webhook = secrets[logical_id(main_synth, "AWS::SecretsManager::Secret", "WebhookSecret")]
    assert webhook["Properties"]["GenerateSecretString"] == {
        "ExcludePunctuation": True,
        "IncludeSpace": False,
        "PasswordLength": 40,
    }
    token = secrets[logical_id(main_synth, "AWS::SecretsManager::Secret", "GitHubTokenSecret")]
    assert "GenerateSecretString" not in token["Properties"]
    assert "put-secret-value" in token["Properties"]["Description"]
    text = json.dumps(main_synth.raw)
    assert '"SecretString"' not in text
    assert "{{resolve:secretsmanager" not in text


def test_idempotency_table(main_synth: Synth) -> None:
    table = only(main_synth.resources("AWS::DynamoDB::Table"))["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"] == {"SSEEnabled": True}


# -- webhook Lambda ------------------------------------------------------------


def test_webhook_function_settings(main_synth: Synth) -> None:
    function = only(main_synth.resources("AWS::Lambda::Function"))["Properties"]
    assert function["Handler"] == "lambda_fn.app.handler"
    assert re.fullmatch(r"python3\.(1[2-9]|[2-9]\d)", function["Runtime"])
    assert function["Architectures"] == ["arm64"]
    assert function["MemorySize"] == 1024
    assert function["Timeout"] == 28
    assert function["TracingConfig"] == {"Mode": "Active"}
    log_group = logical_id(main_synth, "AWS::Logs::LogGroup", "WebhookFunctionLogs")
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}
    assert "Layers" not in function


def test_webhook_environment(main_synth: Synth) -> None:
    env = webhook_env(main_synth)
    secrets = main_synth.resources("AWS::SecretsManager::Secret")
    webhook_secret = logical_id(main_synth, "AWS::SecretsManager::Secret", "WebhookSecret")
    token_secret = logical_id(main_synth, "AWS::SecretsManager::Secret", "GitHubTokenSecret")
    assert set(secrets) == {webhook_secret, token_secret}
    assert env["WEBHOOK_SECRET_ARN"] == {"Ref": webhook_secret}
    assert env["GITHUB_TOKEN_SECRET_ARN"] == {"Ref": token_secret}
    assert env["GITHUB_API_URL"] == "https://ghe.example.com/api/v3"
    assert env["ECS_CLUSTER"] == {"Ref": logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")}
    subnets = sorted(main_synth.resources("AWS::EC2::Subnet"))
    assert env["SUBNET_IDS"] == {"Fn::Join": ["", [{"Ref": subnets[0]}, ",", {"Ref": subnets[1]}]]}
    group = logical_id(main_synth, "AWS::EC2::SecurityGroup", "RunnerSecurityGroup")
    assert env["SECURITY_GROUP_IDS"] == {"Fn::GetAtt": [group, "GroupId"]}
    assert env["ASSIGN_PUBLIC_IP"] == "ENABLED"
    assert env["RUNNER_SCOPE"] == "org"
    assert env["RUNNER_GROUP_ID"] == "7"
    assert env["ALLOWED_REPOSITORIES"] == "octo-org/*,other/app"
    table = logical_id(main_synth, "AWS::DynamoDB::Table", "IdempotencyTable")
    assert env["IDEMPOTENCY_TABLE"] == {"Ref": table}
    assert env["RUNNER_NAME_PREFIX"] == STACK_NAME.lower()
    assert env["POWERTOOLS_SERVICE_NAME"] == "runner-webhook"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "FargateRunners"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    contract = {
        "WEBHOOK_SECRET_ARN", "GITHUB_TOKEN_SECRET_ARN", "GITHUB_API_URL", "ECS_CLUSTER",
        "SUBNET_IDS", "SECURITY_GROUP_IDS", "ASSIGN_PUBLIC_IP", "RUNNER_PROFILES",
        "RUNNER_SCOPE", "RUNNER_GROUP_ID", "ALLOWED_REPOSITORIES", "IDEMPOTENCY_TABLE",
    }  # fmt: skip
    extra = {
        "RUNNER_NAME_PREFIX", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }  # fmt: skip
    assert set(env) == contract | extra


def resolve_join(value: Any, refs: dict[str, str]) -> str:
    """Render an Fn::Join of strings and Refs, substituting ``refs``."""
    parts = value["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else refs[p["Ref"]] for p in parts)


def test_runner_profiles_json(main_synth: Synth) -> None:
    env = webhook_env(main_synth)
    task_defs = {
        r["Properties"]["Family"]: k
        for k, r in main_synth.resources("AWS::ECS::TaskDefinition").items()
    }
    refs = {logical: f"arn:task-definition/{family}:1" for family, logical in task_defs.items()}
    profiles = json.loads(resolve_join(env["RUNNER_PROFILES"], refs))
    assert profiles == [
        {
            "name": "small",
            "labels": ["self-hosted", "linux", "arm64", "small"],
            "task_definition": f"arn:task-definition/{STACK_NAME}-runner-small:1",
            "container_name": "runner",
        },
        {
            "name": "big-x64",
            "labels": ["self-hosted", "Linux", "X64", "big"],
            "task_definition": f"arn:task-definition/{STACK_NAME}-runner-big-x64:1",
            "container_name": "runner",
        },
    ]


# -- IAM -------------------------------------------------------------------------


def test_webhook_role_has_no_managed_policies(main_synth: Synth) -> None:
    role_id = logical_id(main_synth, "AWS::IAM::Role", "WebhookFunctionRole")
    assert "ManagedPolicyArns" not in main_synth.raw["Resources"][role_id]["Properties"]


def test_no_wildcard_actions_anywhere(main_synth: Synth) -> None:
    for policy in main_synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in as_list(statement["Action"]):
                assert "*" not in action, statement


def test_only_xray_uses_star_resource(main_synth: Synth) -> None:
    for policy in main_synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "*" in as_list(statement["Resource"]):
                assert sorted(as_list(statement["Action"])) == [
                    "xray:PutTelemetryRecords",
                    "xray:PutTraceSegments",
                ]


def test_webhook_permissions_are_exactly_scoped(main_synth: Synth) -> None:
    found = statements(main_synth, "WebhookFunctionRole")
    actions = sorted(a for s in found for a in as_list(s["Action"]))
    assert actions == sorted(
        [
            "logs:CreateLogStream", "logs:PutLogEvents",
            "xray:PutTraceSegments", "xray:PutTelemetryRecords",
            "ecs:RunTask", "ecs:TagResource", "iam:PassRole",
            "secretsmanager:GetSecretValue",
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
        ]
    )  # fmt: skip
    assert all(s["Effect"] == "Allow" for s in found)
    by_action = {a: s for s in found for a in as_list(s["Action"])}
    cluster = logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")

    run_task = by_action["ecs:RunTask"]
    assert run_task["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}
    arns = sorted(
        resolve_join(r, {"AWS::Partition": "aws", "AWS::Region": "r", "AWS::AccountId": "1"})
        for r in as_list(run_task["Resource"])
    )
    assert arns == sorted(
        f"arn:aws:ecs:r:1:task-definition/{STACK_NAME}-runner-{p['name']}:*"
        for p in TEST_CONTEXT["profiles"]
    )

    tag = by_action["ecs:TagResource"]
    assert tag["Condition"] == {"StringEquals": {"ecs:CreateAction": "RunTask"}}
    assert (
        resolve_join(
            tag["Resource"],
            {"AWS::Partition": "aws", "AWS::Region": "r", "AWS::AccountId": "1", cluster: "C"},
        )
        == "arn:aws:ecs:r:1:task/C/*"
    )

    pass_role = by_action["iam:PassRole"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    expected_roles = set()
    for task_def in main_synth.resources("AWS::ECS::TaskDefinition").values():
        expected_roles.add(task_def["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0])
        expected_roles.add(task_def["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0])
    assert len(expected_roles) == 4
    assert {r["Fn::GetAtt"][0] for r in pass_role["Resource"]} == expected_roles
    assert all(r["Fn::GetAtt"][1] == "Arn" for r in pass_role["Resource"])

    secrets = by_action["secretsmanager:GetSecretValue"]
    assert as_list(secrets["Action"]) == ["secretsmanager:GetSecretValue"]
    assert {r["Ref"] for r in secrets["Resource"]} == set(
        main_synth.resources("AWS::SecretsManager::Secret")
    )

    table = logical_id(main_synth, "AWS::DynamoDB::Table", "IdempotencyTable")
    assert by_action["dynamodb:PutItem"]["Resource"] == {"Fn::GetAtt": [table, "Arn"]}

    log_group = logical_id(main_synth, "AWS::Logs::LogGroup", "WebhookFunctionLogs")
    assert by_action["logs:PutLogEvents"]["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}


# -- API ---------------------------------------------------------------------------


def test_api_has_only_post_webhook(main_synth: Synth) -> None:
    (resource,) = main_synth.resources("AWS::ApiGateway::Resource").values()
    assert resource["Properties"]["PathPart"] == "webhook"
    (method,) = main_synth.resources("AWS::ApiGateway::Method").values()
    assert method["Properties"]["HttpMethod"] == "POST"
    assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    assert method["Properties"]["ResourceId"] == {
        "Ref": logical_id(main_synth, "AWS::ApiGateway::Resource", "webhook")
    }
    # API Gateway may invoke the function only for POST /webhook of its stage.
    (permission,) = main_synth.resources("AWS::Lambda::Permission").values()
    source = permission["Properties"]["SourceArn"]["Fn::Join"][1]
    assert source[-1] == "/POST/webhook"


def test_api_stage_throttling_logging_tracing(main_synth: Synth) -> None:
    stage = only(main_synth.resources("AWS::ApiGateway::Stage"))["Properties"]
    assert stage["TracingEnabled"] is True
    access_logs = logical_id(main_synth, "AWS::Logs::LogGroup", "ApiAccessLogs")
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": [access_logs, "Arn"]}
    log_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert {"requestId", "ip", "httpMethod", "status", "resourcePath"} <= set(log_format)
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == TEST_CONTEXT["webhook_throttle_rate"]
    assert settings["ThrottlingBurstLimit"] == TEST_CONTEXT["webhook_throttle_burst"]
    assert settings["MetricsEnabled"] is True
    assert settings["DataTraceEnabled"] is False
    assert settings["LoggingLevel"] == "ERROR"
    # Access and execution logs need the account-level CloudWatch role.
    main_synth.template.resource_count_is("AWS::ApiGateway::Account", 1)


def test_outputs(main_synth: Synth) -> None:
    outputs = main_synth.raw["Outputs"]
    assert set(outputs) == {"WebhookUrl", "WebhookSecretArn", "GitHubTokenSecretArn", "ClusterName"}
    url = outputs["WebhookUrl"]["Value"]["Fn::Join"][1]
    assert url[0] == "https://"
    assert url[-1] == "/webhook"
    assert outputs["ClusterName"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")
    }
    assert main_synth.stack.stack_name == STACK_NAME


# -- existing VPC + imported PAT secret --------------------------------------------


def test_existing_vpc_variant(existing_vpc_synth: Synth) -> None:
    synth = existing_vpc_synth
    synth.template.resource_count_is("AWS::EC2::VPC", 0)
    synth.template.resource_count_is("AWS::EC2::Subnet", 0)
    synth.template.resource_count_is("AWS::EC2::FlowLog", 0)
    env = webhook_env(synth)
    assert env["SUBNET_IDS"] == "subnet-0123456789abcdef0,subnet-0fedcba9876543210"
    assert env["ASSIGN_PUBLIC_IP"] == "DISABLED"
    group = only(synth.resources("AWS::EC2::SecurityGroup"))["Properties"]
    assert group["VpcId"] == "vpc-0123456789abcdef0"


def test_imported_token_secret(existing_vpc_synth: Synth) -> None:
    synth = existing_vpc_synth
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gh/pat-AbC123"
    # Only the webhook secret is created; the PAT secret is referenced by ARN.
    (secret_id,) = synth.resources("AWS::SecretsManager::Secret")
    env = webhook_env(synth)
    assert env["GITHUB_TOKEN_SECRET_ARN"] == arn
    assert synth.raw["Outputs"]["GitHubTokenSecretArn"]["Value"] == arn
    found = statements(synth, "WebhookFunctionRole")
    (get_secret,) = [s for s in found if s["Action"] == "secretsmanager:GetSecretValue"]
    assert get_secret["Resource"] == [{"Ref": secret_id}, arn]


def test_default_profile_family(existing_vpc_synth: Synth) -> None:
    (task_def,) = existing_vpc_synth.resources("AWS::ECS::TaskDefinition").values()
    assert task_def["Properties"]["Family"] == "RunnersExisting-runner-default"
    assert task_def["Properties"]["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
