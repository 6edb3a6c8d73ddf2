"""The synthesized template, variants: an existing VPC with an imported PAT secret; the edge context.

Split from ``test_stack.py`` (issue 26); the helpers are in ``tests.kit.stack``."""

from __future__ import annotations

import json

import pytest

from lambda_fn.contract import RUNNER_VERSION
from tests.kit.infra import (
    EDGE_MANAGED_POLICY,
    Synth,
)
from tests.kit.stack import (
    FUNCTIONS,
    assert_ecs_tasks_role,
    container_env,
    logical_id,
    own_jit_config_statement,
    profile_roles,
    role_statements,
    runner_files_statements,
    runner_logs_statement,
    runner_profiles,
    statements,
    task_definition,
    task_role_id,
    unrestricted_policy,
    webhook_env,
)

pytestmark = pytest.mark.infra


def test_existing_vpc_variant(existing_vpc_synth: Synth) -> None:
    synth = existing_vpc_synth
    synth.template.resource_count_is("AWS::EC2::VPC", 0)
    synth.template.resource_count_is("AWS::EC2::Subnet", 0)
    synth.template.resource_count_is("AWS::EC2::FlowLog", 0)
    env = webhook_env(synth)
    assert env["SUBNET_IDS"] == "subnet-0123456789abcdef0,subnet-0fedcba9876543210"
    assert env["ASSIGN_PUBLIC_IP"] == "DISABLED"
    group = synth.raw["Resources"][
        logical_id(synth, "AWS::EC2::SecurityGroup", "RunnerSecurityGroup")
    ]["Properties"]
    assert group["VpcId"] == "vpc-0123456789abcdef0"


def test_vpc_endpoints_for_private_subnets(existing_vpc_synth: Synth) -> None:
    """ECR API + Docker, Logs, Secrets Manager, STS in the runner subnets; S3 as a gateway."""
    synth = existing_vpc_synth
    endpoints = synth.resources("AWS::EC2::VPCEndpoint").values()
    runner_group = logical_id(synth, "AWS::EC2::SecurityGroup", "RunnerSecurityGroup")
    endpoint_group = logical_id(synth, "AWS::EC2::SecurityGroup", "VpcEndpointSecurityGroup")
    interface = {}
    for endpoint in endpoints:
        props = endpoint["Properties"]
        name = props["ServiceName"]
        service = name if isinstance(name, str) else name["Fn::Join"][1][-1].lstrip(".")
        if props.get("VpcEndpointType") == "Gateway":
            assert props == {
                "ServiceName": {
                    "Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".s3"]]
                },
                "VpcEndpointType": "Gateway",
                "VpcId": "vpc-0123456789abcdef0",
                "RouteTableIds": ["rtb-0123456789abcdef0"],
            }
            continue
        interface[service] = props
    assert sorted(interface) == ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts"]
    for props in interface.values():
        assert props["VpcEndpointType"] == "Interface"
        assert props["PrivateDnsEnabled"] is True
        assert props["SubnetIds"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
        assert props["SecurityGroupIds"] == [{"Fn::GetAtt": [endpoint_group, "GroupId"]}]
    # HTTPS from the runner tasks only.
    (ingress,) = synth.resources("AWS::EC2::SecurityGroupIngress").values()
    assert ingress["Properties"] == {
        "Description": "HTTPS from runner tasks",
        "FromPort": 443,
        "GroupId": {"Fn::GetAtt": [endpoint_group, "GroupId"]},
        "IpProtocol": "tcp",
        "SourceSecurityGroupId": {"Fn::GetAtt": [runner_group, "GroupId"]},
        "ToPort": 443,
    }


def test_no_vpc_endpoints_by_default(main_synth: Synth, edge_synth: Synth) -> None:
    main_synth.template.resource_count_is("AWS::EC2::VPCEndpoint", 0)
    edge_synth.template.resource_count_is("AWS::EC2::VPCEndpoint", 0)


def test_default_environment_values(existing_vpc_synth: Synth) -> None:
    env = webhook_env(existing_vpc_synth)
    assert env["RETRY_MAX_ATTEMPTS"] == "8"
    assert env["RECONCILER_IDLE_TIMEOUT_SECONDS"] == "1020"  # the task's 900 s + 120 s
    assert env["GITHUB_HOOK_PATH"] == ""
    (task_def,) = existing_vpc_synth.resources("AWS::ECS::TaskDefinition").values()
    (container,) = task_def["Properties"]["ContainerDefinitions"]
    assert container_env(container)["RUNNER_IDLE_TIMEOUT_SECONDS"] == "900"


def test_imported_token_secret(existing_vpc_synth: Synth) -> None:
    synth = existing_vpc_synth
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gh/pat-AbC123"
    # Only the webhook secret is created; the PAT secret is referenced by ARN.
    (secret_id,) = synth.resources("AWS::SecretsManager::Secret")
    env = webhook_env(synth)
    assert env["GITHUB_TOKEN_SECRET_ARN"] == arn
    assert synth.raw["Outputs"]["GitHubTokenSecretArn"]["Value"] == arn
    for name in FUNCTIONS:
        found = statements(synth, f"{name}Role")
        (get_secret,) = [s for s in found if s["Action"] == "secretsmanager:GetSecretValue"]
        assert get_secret["Resource"] == [{"Ref": secret_id}, arn]


def test_default_profile_family(existing_vpc_synth: Synth) -> None:
    (task_def,) = existing_vpc_synth.resources("AWS::ECS::TaskDefinition").values()
    assert task_def["Properties"]["Family"] == "RunnersExisting-runner-default"
    assert task_def["Properties"]["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    assert runner_profiles(existing_vpc_synth) == [
        {
            "name": "default",
            "labels": ["self-hosted", "linux", "arm64", "fargate"],
            "task_definition": "arn:task-definition/RunnersExisting-runner-default:1",
            "container_name": "runner",
            "task_role_id": task_role_id(existing_vpc_synth, "RunnersExisting-runner-default"),
            "capacity": "FARGATE",
            "max_runners": 64,  # the default: 64 vCPUs of 1-vCPU tasks
            "security_group_ids": [
                f"{logical_id(existing_vpc_synth, 'AWS::EC2::SecurityGroup', 'RunnerSecurityGroup')}.GroupId"
            ],
            "runner_version": RUNNER_VERSION,  # from the default image's tag
        }
    ]


def test_watchdog_off_gives_the_reconciler_an_hour(edge_synth: Synth) -> None:
    assert webhook_env(edge_synth)["RECONCILER_IDLE_TIMEOUT_SECONDS"] == str(3600 + 120)
    (task_def,) = edge_synth.resources("AWS::ECS::TaskDefinition").values()
    (container,) = task_def["Properties"]["ContainerDefinitions"]
    assert container_env(container)["RUNNER_IDLE_TIMEOUT_SECONDS"] == "0"


def test_profile_network_and_capacity_reach_the_lambda(edge_synth: Synth) -> None:
    assert runner_profiles(edge_synth) == [
        {
            "name": "mirror",
            "labels": ["self-hosted", "linux", "mirror"],
            "task_definition": "arn:task-definition/RunnersEdge-runner-mirror:1",
            "container_name": "runner",
            "task_role_id": task_role_id(edge_synth, "RunnersEdge-runner-mirror"),
            "capacity": "FARGATE_SPOT",
            "max_runners": 64,
            "subnet_ids": ["subnet-0aaaaaaaaaaaaaaaa"],
            "security_group_ids": [
                f"{logical_id(edge_synth, 'AWS::EC2::SecurityGroup', 'RunnerSecurityGroup')}.GroupId"
            ],
            "assign_public_ip": False,
            "warm": {
                "runners": 2,
                "scope": "octo-org/app",
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "hours": "07-19",
                "max_age_seconds": 14400,
            },
            "runner_version": RUNNER_VERSION,  # the mirrored default image's tag
        }
    ]


def test_managed_task_role_policy_and_non_ecr_mirror(edge_synth: Synth) -> None:
    task_role, execution_role = profile_roles(edge_synth, "RunnersEdge-runner-mirror")
    role = assert_ecs_tasks_role(edge_synth, task_role)
    assert role["ManagedPolicyArns"] == [EDGE_MANAGED_POLICY]
    assert role_statements(edge_synth, task_role) == [own_jit_config_statement("RunnersEdge")]
    # A registry that is not ECR needs no pull permissions: logs and the runner files only.
    assert "ManagedPolicyArns" not in assert_ecs_tasks_role(edge_synth, execution_role)
    assert role_statements(edge_synth, execution_role) == [
        runner_logs_statement(edge_synth),
        *runner_files_statements(edge_synth),
    ]
    (container,) = task_definition(edge_synth, "RunnersEdge-runner-mirror")["ContainerDefinitions"]
    assert container["Image"] == f"mirror.example.com/hub/actions/actions-runner:{RUNNER_VERSION}"
    assert json.loads(container_env(container)["RUNNER_POLICY_JSON"]) == unrestricted_policy(
        "mirror"
    )
