"""The synthesized template: resources, IAM scoping, Lambda environment, outputs."""

from __future__ import annotations

import base64
import gzip
import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from fargate_runners.config import DEFAULT_IMAGE, load_config
from lambda_fn.contract import RUNNER_VERSION
from lambda_fn.policy import policy_from_json
from lambda_fn.runner_version import version_from_image

from .conftest import (
    DEPLOY_KMS_KEY_ARN,
    DEPLOY_POLICY,
    DEPLOY_REGISTRY,
    DEPLOY_SECRET_ARN,
    DEPLOY_STATEMENT,
    EDGE_MANAGED_POLICY,
    REPO_ROOT,
    STACK_NAME,
    TEST_CONTEXT,
    Synth,
)

pytestmark = pytest.mark.infra

# The repository's files, read directly (not through fargate_runners.runner_files).
ENTRYPOINT = REPO_ROOT / "fargate_runners" / "runner" / "entrypoint.sh"
HOOK = REPO_ROOT / "fargate_runners" / "runner" / "job_started.py"
JIT_FETCH = REPO_ROOT / "fargate_runners" / "runner" / "jit_config.py"
AWS_CALL = REPO_ROOT / "fargate_runners" / "runner" / "aws_call.py"
POLICY_MODULE = REPO_ROOT / "lambda_fn" / "policy.py"
ADMISSION_MODULE = REPO_ROOT / "lambda_fn" / "admission_record.py"


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
    (function,) = [
        f for k, f in synth.resources("AWS::Lambda::Function").items() if "WebhookFunction" in k
    ]
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


def task_definition(synth: Synth, family: str) -> dict[str, Any]:
    (found,) = [
        r["Properties"]
        for r in synth.resources("AWS::ECS::TaskDefinition").values()
        if r["Properties"]["Family"] == family
    ]
    return found


def container_env(container: dict[str, Any], synth: Synth | None = None) -> dict[str, str]:
    """The inline environment; with ``synth``, over the environment file's (as ECS merges
    them: ``environment`` wins)."""
    names = [e["Name"] for e in container["Environment"]]
    assert len(names) == len(set(names)), names
    shared = synth.env_file(container) if synth else {}
    return {**shared, **{e["Name"]: e["Value"] for e in container["Environment"]}}


def gunzip_b64(value: str) -> bytes:
    return gzip.decompress(base64.b64decode(value, validate=True))


def unrestricted_policy(profile: str) -> dict[str, Any]:
    """No rules: no rule keys at all (an empty rule list is refused as ambiguous)."""
    return {"profile": profile, "deny_fork_pull_requests": False}


DEPLOY_IMAGE = f"{DEPLOY_REGISTRY}/actions/actions-runner:{RUNNER_VERSION}"


@pytest.mark.parametrize(
    "expected",
    [
        ("small", "1024", "2048", "ARM64", 21, DEFAULT_IMAGE),
        (
            "big-x64", "4096", "16384", "X86_64", 100,
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/runner:custom",
        ),
        ("deploy", "1024", "2048", "ARM64", 21, DEPLOY_IMAGE),
    ],
    ids=["small-arm64", "big-x64", "deploy"],
)  # fmt: skip
def test_task_definition_per_profile(
    main_synth: Synth, expected: tuple[str, str, str, str, int, str]
) -> None:
    profile, cpu, memory, arch, storage, image = expected
    task_def = task_definition(main_synth, f"{STACK_NAME}-runner-{profile}")
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
    assert container["Command"][:2] == ["bash", "-c"]  # the bootstrap (test_many_profiles.py)
    assert container["User"] == "1001"
    assert container.get("Privileged", False) is False
    assert "MountPoints" not in container
    assert "VolumesFrom" not in container
    assert "LinuxParameters" not in container
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert container["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == profile


@pytest.mark.parametrize("profile", ["small", "big-x64"])
def test_unrestricted_runner_environment(main_synth: Synth, profile: str) -> None:
    (container,) = task_definition(main_synth, f"{STACK_NAME}-runner-{profile}")[
        "ContainerDefinitions"
    ]
    env = container_env(container, main_synth)
    # No RUNNER_ADMISSION_TABLE: an unrestricted profile's hook reads no admission record.
    # RUNNER_EXPECTED_VERSION only with the default image (runner_files.runner_version_environment).
    assert set(env) - {"RUNNER_EXPECTED_VERSION"} == {
        "RUNNER_POLICY_JSON", "RUNNER_POLICY_PY_GZ_B64", "RUNNER_HOOK_PY_GZ_B64",
        "RUNNER_JIT_PY_GZ_B64", "RUNNER_AWS_PY_GZ_B64", "RUNNER_IDLE_TIMEOUT_SECONDS",
        "RUNNER_STOP_GRACE_SECONDS", "RUNNER_ADMISSION_PY_GZ_B64", "RUNNER_PROFILE",
        "RUNNER_ENTRYPOINT_SH_GZ_B64", "RUNNER_STEPS_PY_GZ_B64",
    }  # fmt: skip
    assert env["RUNNER_PROFILE"] == profile
    # Known only where the image tag names a release (actions-runner:X.Y.Z) or runner_version.
    assert env.get("RUNNER_EXPECTED_VERSION") == version_from_image(container["Image"])
    # ECS waits StopTimeout after SIGTERM; the entrypoint's grace ends well before that.
    assert container["StopTimeout"] == 120
    assert int(env["RUNNER_STOP_GRACE_SECONDS"]) <= container["StopTimeout"] - 10
    assert json.loads(env["RUNNER_POLICY_JSON"]) == unrestricted_policy(profile)
    assert env["RUNNER_IDLE_TIMEOUT_SECONDS"] == str(TEST_CONTEXT["runner_idle_timeout_seconds"])
    assert gunzip_b64(env["RUNNER_POLICY_PY_GZ_B64"]) == POLICY_MODULE.read_bytes()
    assert gunzip_b64(env["RUNNER_HOOK_PY_GZ_B64"]) == HOOK.read_bytes()
    assert gunzip_b64(env["RUNNER_JIT_PY_GZ_B64"]) == JIT_FETCH.read_bytes()
    assert gunzip_b64(env["RUNNER_AWS_PY_GZ_B64"]) == AWS_CALL.read_bytes()
    assert gunzip_b64(env["RUNNER_ADMISSION_PY_GZ_B64"]) == ADMISSION_MODULE.read_bytes()
    assert "Secrets" not in container


def test_restricted_task_definition(main_synth: Synth) -> None:
    """The deploy profile: policy, hook code, its environment and ECS secrets."""
    (container,) = task_definition(main_synth, f"{STACK_NAME}-runner-deploy")[
        "ContainerDefinitions"
    ]
    assert container["Command"][:2] == ["bash", "-c"]  # the bootstrap (test_many_profiles.py)
    assert container["Image"] == DEPLOY_IMAGE
    env = container_env(container, main_synth)
    assert gunzip_b64(env["RUNNER_ENTRYPOINT_SH_GZ_B64"]) == ENTRYPOINT.read_bytes()
    assert set(env) == {
        "RUNNER_POLICY_JSON", "RUNNER_POLICY_PY_GZ_B64", "RUNNER_HOOK_PY_GZ_B64",
        "RUNNER_JIT_PY_GZ_B64", "RUNNER_AWS_PY_GZ_B64", "RUNNER_IDLE_TIMEOUT_SECONDS",
        "RUNNER_STOP_GRACE_SECONDS", "DEPLOY_STAGE", "RUNNER_PROFILE", "RUNNER_EXPECTED_VERSION",
        "RUNNER_ADMISSION_PY_GZ_B64", "RUNNER_ADMISSION_TABLE", "RUNNER_ADMISSION_REGION",
        "RUNNER_ENTRYPOINT_SH_GZ_B64", "RUNNER_STEPS_PY_GZ_B64",
    }  # fmt: skip
    assert env["RUNNER_PROFILE"] == "deploy"
    assert env["RUNNER_EXPECTED_VERSION"] == RUNNER_VERSION
    assert json.loads(env["RUNNER_POLICY_JSON"]) == DEPLOY_POLICY
    (deploy,) = [p for p in load_config(TEST_CONTEXT).profiles if p.name == "deploy"]
    assert json.loads(env["RUNNER_POLICY_JSON"]) == deploy.policy.to_dict()
    assert policy_from_json(env["RUNNER_POLICY_JSON"]) == deploy.policy
    assert gunzip_b64(env["RUNNER_POLICY_PY_GZ_B64"]) == POLICY_MODULE.read_bytes()
    assert gunzip_b64(env["RUNNER_HOOK_PY_GZ_B64"]) == HOOK.read_bytes()
    assert env["RUNNER_IDLE_TIMEOUT_SECONDS"] == "600"
    assert env["DEPLOY_STAGE"] == "prod"
    # The secret travels as an ECS secret, never as plain environment.
    assert container["Secrets"] == [{"Name": "DEPLOY_TOKEN", "ValueFrom": DEPLOY_SECRET_ARN}]
    assert DEPLOY_SECRET_ARN not in json.dumps(container["Environment"])
    assert container["User"] == "1001"
    assert container.get("Privileged", False) is False
    assert "MountPoints" not in container


def test_one_task_definition_per_profile(main_synth: Synth) -> None:
    main_synth.template.resource_count_is("AWS::ECS::TaskDefinition", len(TEST_CONTEXT["profiles"]))


def profile_roles(synth: Synth, family: str) -> tuple[str, str]:
    """(task role, execution role) logical ids of a task definition family."""
    props = task_definition(synth, family)
    return props["TaskRoleArn"]["Fn::GetAtt"][0], props["ExecutionRoleArn"]["Fn::GetAtt"][0]


def role_statements(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def assert_ecs_tasks_role(synth: Synth, role_id: str) -> dict[str, Any]:
    role: dict[str, Any] = synth.raw["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        }
    ]
    assert "Policies" not in role
    return role


def own_jit_config_statement(prefix: str) -> dict[str, Any]:
    """The one statement every task role has: read and delete its own JIT config secret."""
    return {
        "Sid": "ReadAndConsumeOwnJitConfig",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"],
        "Effect": "Allow",
        "Resource": {
            "Fn::Join": [
                "",
                [
                    "arn:", {"Ref": "AWS::Partition"}, ":secretsmanager:", {"Ref": "AWS::Region"},
                    ":", {"Ref": "AWS::AccountId"}, f":secret:{prefix}/jit/*",
                ],
            ]
        },
        "Condition": {
            "StringEquals": {"secretsmanager:ResourceTag/runner:task-userid": "${aws:userid}"}
        },
    }  # fmt: skip


@pytest.mark.parametrize("profile", ["small", "big-x64"])
def test_unrestricted_task_roles_read_only_their_own_jit_config(
    main_synth: Synth, profile: str
) -> None:
    task_role, _ = profile_roles(main_synth, f"{STACK_NAME}-runner-{profile}")
    role = assert_ecs_tasks_role(main_synth, task_role)
    assert "ManagedPolicyArns" not in role
    assert role_statements(main_synth, task_role) == [own_jit_config_statement(STACK_NAME)]


def test_deploy_task_role_has_exactly_its_statement(main_synth: Synth) -> None:
    task_role, _ = profile_roles(main_synth, f"{STACK_NAME}-runner-deploy")
    role = assert_ecs_tasks_role(main_synth, task_role)
    assert "ManagedPolicyArns" not in role
    table = logical_id(main_synth, "AWS::DynamoDB::Table", "IdempotencyTable")
    assert role_statements(main_synth, task_role) == [
        own_jit_config_statement(STACK_NAME),
        {
            # Read, never write, and only this profile's admission records.
            "Sid": "ReadOwnProfileAdmissions",
            "Action": "dynamodb:GetItem",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [table, "Arn"]},
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["admitted#deploy#*"]}
            },
        },
        DEPLOY_STATEMENT,
    ]


def test_deploy_runner_knows_where_its_admission_records_are(main_synth: Synth) -> None:
    (container,) = task_definition(main_synth, f"{STACK_NAME}-runner-deploy")[
        "ContainerDefinitions"
    ]
    env = container_env(container, main_synth)
    table = logical_id(main_synth, "AWS::DynamoDB::Table", "IdempotencyTable")
    assert env["RUNNER_ADMISSION_TABLE"] == {"Ref": table}
    assert env["RUNNER_ADMISSION_REGION"] == {"Ref": "AWS::Region"}
    assert gunzip_b64(env["RUNNER_ADMISSION_PY_GZ_B64"]) == ADMISSION_MODULE.read_bytes()


def test_default_profile_task_role_reads_only_its_own_jit_config(
    existing_vpc_synth: Synth,
) -> None:
    task_role, _ = profile_roles(existing_vpc_synth, "RunnersExisting-runner-default")
    role = assert_ecs_tasks_role(existing_vpc_synth, task_role)
    assert "ManagedPolicyArns" not in role
    assert role_statements(existing_vpc_synth, task_role) == [
        own_jit_config_statement("RunnersExisting")
    ]


def runner_logs_statement(synth: Synth) -> dict[str, Any]:
    log_group = logical_id(synth, "AWS::Logs::LogGroup", "RunnerLogs")
    return {
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [log_group, "Arn"]},
    }


def runner_files_statements(synth: Synth) -> list[dict[str, Any]]:
    """Reading the deployment's one environment file (test_many_profiles.py has the rest)."""
    (task_def, *_) = synth.resources("AWS::ECS::TaskDefinition").values()
    (ref,) = task_def["Properties"]["ContainerDefinitions"][0]["EnvironmentFiles"]
    return [
        {
            "Sid": "ReadRunnerFiles",
            "Action": "s3:GetObject",
            "Effect": "Allow",
            "Resource": ref["Value"],
        },
        {
            "Sid": "LocateRunnerFiles",
            "Action": "s3:GetBucketLocation",
            "Effect": "Allow",
            "Resource": {"Fn::Join": ["", ref["Value"]["Fn::Join"][1][:-1]]},
        },
    ]


def test_execution_role_of_a_public_image_only_writes_runner_logs(main_synth: Synth) -> None:
    _, execution_role = profile_roles(main_synth, f"{STACK_NAME}-runner-small")
    role = assert_ecs_tasks_role(main_synth, execution_role)
    assert "ManagedPolicyArns" not in role
    assert role_statements(main_synth, execution_role) == [
        runner_logs_statement(main_synth),
        *runner_files_statements(main_synth),
    ]


def test_private_ecr_image_is_pullable_from_exactly_its_repository(main_synth: Synth) -> None:
    """An ECR ``image`` (no registry_prefix): pull rights on that one repository.

    Without them the task fails to start with CannotPullContainerError; CDK warns about it
    (@aws-cdk/aws-ecs:ecrImageRequiresPolicy), which is how this was found.
    """
    _, execution_role = profile_roles(main_synth, f"{STACK_NAME}-runner-big-x64")
    found = role_statements(main_synth, execution_role)
    assert {
        "Action": [
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchGetImage",
        ],
        "Effect": "Allow",
        "Resource": {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":ecr:eu-west-1:123456789012:repository/runner",
                ],
            ]
        },
    } in found
    assert {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*"} in found


def test_ecr_profile_execution_role_pulls_only_under_its_prefix(main_synth: Synth) -> None:
    """Logs, the profile's one secret, and ECR pulls under registry_prefix only."""
    _, execution_role = profile_roles(main_synth, f"{STACK_NAME}-runner-deploy")
    role = assert_ecs_tasks_role(main_synth, execution_role)
    assert "ManagedPolicyArns" not in role
    assert role_statements(main_synth, execution_role) == [
        runner_logs_statement(main_synth),
        {
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Effect": "Allow",
            "Resource": DEPLOY_SECRET_ARN,
        },
        {
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
                "ecr:BatchImportUpstreamImage",
                "ecr:CreateRepository",
            ],
            "Effect": "Allow",
            "Resource": {  # the stack's partition (aws, aws-cn, aws-us-gov)
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":ecr:us-east-1:123456789012:repository/ghcr/*",
                    ],
                ]
            },
        },
        {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*"},
        {  # the profile's secret is encrypted with a customer-managed key
            "Sid": "DecryptProfileSecrets",
            "Action": "kms:Decrypt",
            "Effect": "Allow",
            "Resource": DEPLOY_KMS_KEY_ARN,
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": {
                        "Fn::Join": [
                            "",
                            ["secretsmanager.", {"Ref": "AWS::Region"}, ".amazonaws.com"],
                        ]
                    }
                }
            },
        },
        *runner_files_statements(main_synth),
    ]


def test_runner_security_groups_have_no_ingress(main_synth: Synth) -> None:
    """One group per profile (issue 23), each egress-only as the one shared group was."""
    groups = main_synth.resources("AWS::EC2::SecurityGroup")
    assert len(groups) == len(TEST_CONTEXT["profiles"])
    for group in (g["Properties"] for g in groups.values()):
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


@pytest.mark.parametrize(
    ("fixture", "count", "policy"),
    [
        # runner tasks, four Lambdas, Container Insights, API access + execution, VPC flow logs,
        # CDK's default-security-group Lambda (a new VPC)
        ("main_synth", 11, "Retain"),  # 11th: the hook filter Lambda's (issue 23)
        ("existing_vpc_synth", 10, "Delete"),  # no VPC of its own; the source-ranges refresh
        # api_gateway_logging off: no API log groups; an existing VPC: no flow logs
        ("edge_synth", 6, "Delete"),
    ],
)
def test_every_log_group_has_the_configured_retention_and_removal(
    request: pytest.FixtureRequest, fixture: str, count: int, policy: str
) -> None:
    synth: Synth = request.getfixturevalue(fixture)
    groups = synth.resources("AWS::Logs::LogGroup")
    assert len(groups) == count, sorted(groups)
    retention = TEST_CONTEXT["log_retention_days"] if fixture == "main_synth" else 30
    # Container Insights' group has a fixed name: always deleted with the stack, so a
    # redeploy can create it again (test_redeploy_after_destroy_meets_no_retained_name).
    insights = logical_id(synth, "AWS::Logs::LogGroup", "ContainerInsightsLogs")
    for logical, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == retention
        expected = "Delete" if logical == insights else policy
        assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == expected


@pytest.mark.parametrize("fixture", ["main_synth", "existing_vpc_synth", "edge_synth"])
def test_every_lambda_logs_to_a_group_of_the_stack(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    """Lambda would otherwise create /aws/lambda/<name> itself, outside the stack, forever.

    That includes CDK's own provider that strips a new VPC's default security group.
    """
    synth: Synth = request.getfixturevalue(fixture)
    groups = synth.resources("AWS::Logs::LogGroup")
    functions = synth.resources("AWS::Lambda::Function")
    assert functions
    for logical, function in functions.items():
        target = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        assert isinstance(target, dict) and target.get("Ref") in groups, (logical, target)


def test_cdks_default_security_group_lambda_has_a_log_group_of_the_stack(
    main_synth: Synth,
) -> None:
    handler = logical_id(
        main_synth, "AWS::Lambda::Function", "CustomVpcRestrictDefaultSGCustomResourceProvider"
    )
    group = logical_id(
        main_synth, "AWS::Logs::LogGroup", "CustomVpcRestrictDefaultSGCustomResourceProvider"
    )
    logging = main_synth.raw["Resources"][handler]["Properties"]["LoggingConfig"]
    assert logging == {"LogGroup": {"Ref": group}}  # so the group outlives the handler's runs
    properties = main_synth.raw["Resources"][group]["Properties"]
    assert properties["RetentionInDays"] == TEST_CONTEXT["log_retention_days"]
    assert "LogGroupName" not in properties


def test_container_insights_log_group_exists_before_the_cluster(main_synth: Synth) -> None:
    """ECS would create /aws/ecs/containerinsights/<cluster>/performance outside the stack."""
    cluster_id = logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")
    cluster = main_synth.raw["Resources"][cluster_id]
    assert cluster["Properties"]["ClusterName"] == f"{STACK_NAME}-runners"
    group_id = logical_id(main_synth, "AWS::Logs::LogGroup", "ContainerInsightsLogs")
    group = main_synth.raw["Resources"][group_id]["Properties"]
    assert group["LogGroupName"] == f"/aws/ecs/containerinsights/{STACK_NAME}-runners/performance"
    assert group_id in cluster["DependsOn"]


def test_redeploy_after_destroy_meets_no_retained_name(main_synth: Synth) -> None:
    """With ``log_removal_policy: retain``, what a destroy leaves behind must not carry a
    name the next deploy of the same stack creates again (CloudFormation cannot create a
    resource whose name exists): a retained resource's name is generated or holds an id of
    this deployment (the API's, for its execution logs)."""
    assert TEST_CONTEXT["log_removal_policy"] == "retain"
    retained = {
        logical: resource
        for logical, resource in main_synth.raw["Resources"].items()
        if resource.get("DeletionPolicy") == "Retain"
    }
    assert any(r["Type"] == "AWS::Logs::LogGroup" for r in retained.values())
    fixed = {
        (logical, key): value
        for logical, resource in retained.items()
        for key, value in resource.get("Properties", {}).items()
        if key.endswith("Name") and isinstance(value, str)
    }
    assert fixed == {}
    group_id = logical_id(main_synth, "AWS::Logs::LogGroup", "ContainerInsightsLogs")
    group = main_synth.raw["Resources"][group_id]
    assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Delete", "Delete")
    assert group["Properties"]["RetentionInDays"] == TEST_CONTEXT["log_retention_days"]


def test_api_execution_log_group_exists_before_the_stage(main_synth: Synth) -> None:
    """API Gateway would create API-Gateway-Execution-Logs_<api id>/<stage> on its own."""
    api = logical_id(main_synth, "AWS::ApiGateway::RestApi", "Api")
    group_id = logical_id(main_synth, "AWS::Logs::LogGroup", "ApiExecutionLogs")
    group = main_synth.raw["Resources"][group_id]["Properties"]
    assert group["LogGroupName"] == {
        "Fn::Join": ["", ["API-Gateway-Execution-Logs_", {"Ref": api}, "/prod"]]
    }
    (stage_id,) = main_synth.resources("AWS::ApiGateway::Stage")
    assert group_id in main_synth.raw["Resources"][stage_id]["DependsOn"]


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


# -- Lambdas -------------------------------------------------------------------

ALL_SYNTHS = ["main_synth", "existing_vpc_synth", "edge_synth"]

FUNCTIONS = {
    # construct id: (handler, timeout in seconds)
    "WebhookFunction": ("lambda_fn.app.handler", 28),
    "RetryFunction": ("lambda_fn.retry.handler", 60),
    "ReconcilerFunction": ("lambda_fn.reconciler.handler", 120),
}


def function_id(synth: Synth, name: str) -> str:
    return logical_id(synth, "AWS::Lambda::Function", name)


def function_env(synth: Synth, name: str) -> dict[str, Any]:
    function = synth.raw["Resources"][function_id(synth, name)]
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def test_the_stacks_own_vpc_resolves_private_dns(main_synth: Synth) -> None:
    """Both DNS attributes (interface endpoints' private DNS needs them: README Networks)."""
    (vpc,) = main_synth.resources("AWS::EC2::VPC").values()
    assert vpc["Properties"]["EnableDnsHostnames"] is True
    assert vpc["Properties"]["EnableDnsSupport"] is True


def test_five_functions(main_synth: Synth) -> None:
    """Ours (the fifth: the web ACL's hook filter); the sixth is CDK's provider that strips
    the new VPC's default security group (@aws-cdk/aws-ec2:restrictDefaultSecurityGroup)."""
    functions = main_synth.resources("AWS::Lambda::Function")
    assert len([f for f in functions if not f.startswith("Custom")]) == 5
    assert len(functions) == 6


# -- teardown: stop runner tasks before the cluster and network go ------------------


def test_teardown_function_stops_tasks_deletes_sealed_configs_and_reads_the_token_only(
    main_synth: Synth,
) -> None:
    function = main_synth.raw["Resources"][function_id(main_synth, "TeardownFunction")]
    assert function["Properties"]["Handler"] == "lambda_fn.teardown.handler"
    assert function["Properties"]["Timeout"] == 600
    # The dispatcher's settings (one builder), without the retry path and detailed tracing.
    assert function["Properties"]["Environment"]["Variables"] == {
        k: v
        for k, v in webhook_env(main_synth).items()
        if k not in ("RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "TRACE_REMOTE_CALLS")
    }
    found = statements(main_synth, "TeardownFunctionRole")
    actions = sorted(a for s in found for a in as_list(s["Action"]))
    assert actions == sorted(
        [
            "logs:CreateLogStream", "logs:PutLogEvents",
            "xray:PutTraceSegments", "xray:PutTelemetryRecords",
            "ecs:DescribeTasks", "ecs:StopTask", "ecs:ListTasks",
            "secretsmanager:ListSecrets", "secretsmanager:DeleteSecret",
            "secretsmanager:GetSecretValue", "ssm:GetParameters",
        ]
    )  # fmt: skip
    by_sid = {s.get("Sid"): s for s in found}
    token = logical_id(main_synth, "AWS::SecretsManager::Secret", "GitHubTokenSecret")
    assert by_sid["ReadGitHubToken"]["Resource"] == {"Ref": token}  # not the webhook secret
    assert by_sid["ListJitConfigs"]["Resource"] == "*"  # ListSecrets has no resource level
    assert (
        resolve_join(by_sid["DeleteJitConfigs"]["Resource"], PSEUDO)
        == "arn:aws:secretsmanager:r:1:secret:RunnersTest/jit/*"
    )
    cluster = logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")
    on_cluster = {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}
    by_action = {a: s for s in found for a in as_list(s["Action"])}
    assert by_action["ecs:StopTask"]["Condition"] == on_cluster
    assert by_action["ecs:ListTasks"]["Condition"] == on_cluster
    assert (
        resolve_join(by_action["ecs:StopTask"]["Resource"], {**PSEUDO, cluster: "C"})
        == "arn:aws:ecs:r:1:task/C/*"
    )


def depends_on(synth: Synth, logical: str) -> set[str]:
    return set(synth.raw["Resources"][logical].get("DependsOn", []))


@pytest.mark.parametrize("fixture", ALL_SYNTHS)
def test_teardown_is_deleted_after_what_starts_tasks_and_before_what_tasks_hold(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    """CloudFormation deletes dependents first: starters -> teardown -> cluster, SG, VPC."""
    synth: Synth = request.getfixturevalue(fixture)
    (teardown_id, teardown), *more = synth.resources("Custom::RunnerTeardown").items()
    assert more == []
    cluster = logical_id(synth, "AWS::ECS::Cluster", "Cluster")
    assert teardown["Properties"]["Cluster"] == {"Ref": cluster}
    assert teardown["Properties"]["ServiceTimeout"] == "660"  # the Lambda's 600 s + 60
    assert teardown["Properties"]["ServiceToken"] == {
        "Fn::GetAtt": [function_id(synth, "TeardownFunction"), "Arn"]
    }
    after = depends_on(synth, teardown_id)
    assert cluster in after
    assert logical_id(synth, "AWS::EC2::SecurityGroup", "RunnerSecurityGroup") in after
    assert logical_id(synth, "AWS::IAM::Policy", "TeardownFunctionRoleDefaultPolicy") in after
    # the capacity provider association belongs to the cluster and goes after it too
    assert set(synth.resources("AWS::ECS::ClusterCapacityProviderAssociations")) <= after
    if fixture == "main_synth":  # the stack's own VPC: every part of it waits
        for kind in ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::InternetGateway"):
            assert set(synth.resources(kind)) <= after, kind
    for name in FUNCTIONS:
        assert teardown_id in depends_on(synth, function_id(synth, name)), name


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_settings(main_synth: Synth, name: str) -> None:
    handler, timeout = FUNCTIONS[name]
    function = main_synth.raw["Resources"][function_id(main_synth, name)]["Properties"]
    assert function["Handler"] == handler
    assert function["Timeout"] == timeout
    assert re.fullmatch(r"python3\.(1[2-9]|[2-9]\d)", function["Runtime"])
    assert function["Architectures"] == ["arm64"]
    assert function["MemorySize"] == 1024
    assert function["TracingConfig"] == {"Mode": "Active"}
    log_group = logical_id(main_synth, "AWS::Logs::LogGroup", f"{name}Logs")
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}
    assert function["Role"] == {
        "Fn::GetAtt": [logical_id(main_synth, "AWS::IAM::Role", f"{name}Role"), "Arn"]
    }
    # detailed_tracing (on in TEST_CONTEXT): the X-Ray SDK layer, nothing else.
    layer = logical_id(main_synth, "AWS::Lambda::LayerVersion", "XRaySdk")
    assert function["Layers"] == [{"Ref": layer}]


def test_functions_share_one_asset_and_one_environment(main_synth: Synth) -> None:
    functions = [main_synth.raw["Resources"][function_id(main_synth, n)] for n in FUNCTIONS]
    assert len({json.dumps(f["Properties"]["Code"], sort_keys=True) for f in functions}) == 1
    envs = [f["Properties"]["Environment"]["Variables"] for f in functions]
    assert envs[0] == envs[1] == envs[2]
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions}
    assert len(roles) == 3  # each function has its own role


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
    assert env["RETRY_QUEUE_URL"] == {"Ref": logical_id(main_synth, "AWS::SQS::Queue", "Retry")}
    assert env["DEAD_LETTER_QUEUE_URL"] == {
        "Ref": logical_id(main_synth, "AWS::SQS::Queue", "DeadLetter")
    }
    assert env["RETRY_MAX_ATTEMPTS"] == "4"
    assert env["RECONCILER_IDLE_TIMEOUT_SECONDS"] == "720"  # the task's 600 s + 120 s
    assert env["GITHUB_HOOK_PATH"] == "orgs/octo-org/hooks/12345"
    assert env["GITHUB_HOOK_PARAMETER"] == {
        "Ref": logical_id(main_synth, "AWS::SSM::Parameter", "WebhookHookParameter")
    }
    assert env["RUNNER_NAME_PREFIX"] == STACK_NAME.lower()
    assert env["JIT_SECRET_PREFIX"] == f"{STACK_NAME}/jit"
    # The first group of the stack id's UUID: unique per deployed stack (lambda_fn/naming.py).
    assert env["DEPLOYMENT_ID"] == {
        "Fn::Select": [
            0,
            {
                "Fn::Split": [
                    "-",
                    {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]},
                ]
            },
        ]
    }
    assert env["POWERTOOLS_SERVICE_NAME"] == "RunnersTest-webhook"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "FargateRunners"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    contract = {
        "WEBHOOK_SECRET_ARN", "GITHUB_TOKEN_SECRET_ARN", "GITHUB_API_URL", "ECS_CLUSTER",
        "SUBNET_IDS", "SECURITY_GROUP_IDS", "ASSIGN_PUBLIC_IP",
        "RUNNER_SCOPE", "RUNNER_GROUP_ID", "ALLOWED_REPOSITORIES", "IDEMPOTENCY_TABLE",
        "RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "RETRY_MAX_ATTEMPTS",
        "RECONCILER_IDLE_TIMEOUT_SECONDS", "GITHUB_HOOK_PATH",
    }  # fmt: skip
    extra = {
        "GITHUB_HOOK_PARAMETER", "RUNNER_PROFILES_PARAMETERS", "RUNNER_PROFILES_VERSION",
        "RUNNER_NAME_PREFIX", "DEPLOYMENT_ID", "JIT_SECRET_PREFIX", "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", "TRACE_REMOTE_CALLS",
    }  # fmt: skip
    assert set(env) == contract | extra
    assert env["TRACE_REMOTE_CALLS"] == "true"  # detailed_tracing


def resolve_join(value: Any, refs: dict[str, str]) -> str:
    """Render an Fn::Join of strings and Refs, substituting ``refs``; ``Fn::GetAtt`` as
    ``<logical id>.<attribute>``."""
    parts = value["Fn::Join"][1]

    def render(part: Any) -> str:
        if isinstance(part, str):
            return part
        if "Fn::GetAtt" in part:
            return ".".join(part["Fn::GetAtt"])
        return refs[part["Ref"]]

    return "".join(render(p) for p in parts)


def task_role_id(synth: Synth, family: str) -> str:
    """A profile's ``task_role_id`` as rendered by :func:`resolve_join`: its role's RoleId."""
    return f"{profile_roles(synth, family)[0]}.RoleId"


def runner_profiles(synth: Synth) -> list[dict[str, Any]]:
    """``RUNNER_PROFILES`` with task definition ARNs rendered as ``arn:task-definition/F:1``."""
    task_defs = {
        r["Properties"]["Family"]: k for k, r in synth.resources("AWS::ECS::TaskDefinition").items()
    }
    refs = {logical: f"arn:task-definition/{family}:1" for family, logical in task_defs.items()}
    parameters = dict(synth.resources("AWS::SSM::Parameter"))
    named = webhook_env(synth)["RUNNER_PROFILES_PARAMETERS"]
    parts = named["Fn::Join"][1] if "Fn::Join" in named else [named]
    names = [part["Ref"] for part in parts if isinstance(part, dict)]
    parsed: list[dict[str, Any]] = []
    for name in names:
        parsed.extend(json.loads(resolve_join(parameters[name]["Properties"]["Value"], refs)))
    return parsed


def test_runner_profiles_json(main_synth: Synth) -> None:
    def group(name: str) -> str:
        return logical_id(main_synth, "AWS::EC2::SecurityGroup", name)

    assert runner_profiles(main_synth) == [
        {
            "name": "small",
            "labels": ["self-hosted", "linux", "arm64", "small"],
            "task_definition": f"arn:task-definition/{STACK_NAME}-runner-small:1",
            "container_name": "runner",
            "task_role_id": task_role_id(main_synth, f"{STACK_NAME}-runner-small"),
            "capacity": "FARGATE",
            "max_runners": 64,  # default: 64 vCPUs' worth of 1-vCPU tasks
            "runner_version": RUNNER_VERSION,  # the default image's tag
            # No profile named default: the first keeps the group that predates per-profile ones.
            "security_group_ids": [f"{group('RunnerSecurityGroup')}.GroupId"],
        },
        {
            "name": "big-x64",
            "labels": ["self-hosted", "Linux", "X64", "big"],
            "task_definition": f"arn:task-definition/{STACK_NAME}-runner-big-x64:1",
            "container_name": "runner",
            "task_role_id": task_role_id(main_synth, f"{STACK_NAME}-runner-big-x64"),
            "capacity": "FARGATE",
            "max_runners": 16,  # default: 64 vCPUs' worth of 4-vCPU tasks
            # runner:custom says no version: unknown to the version watch
            "security_group_ids": [f"{group('SecurityGroupbigx64')}.GroupId"],
        },
        {
            "name": "deploy",
            "labels": ["self-hosted", "linux", "deploy"],
            "task_definition": f"arn:task-definition/{STACK_NAME}-runner-deploy:1",
            "container_name": "runner",
            "task_role_id": task_role_id(main_synth, f"{STACK_NAME}-runner-deploy"),
            "capacity": "FARGATE_SPOT_THEN_FARGATE",
            "max_runners": 2,
            "policy": DEPLOY_POLICY,
            "runner_version": RUNNER_VERSION,  # <registry>/actions/actions-runner:<version>
            "security_group_ids": [f"{group('SecurityGroupdeploy')}.GroupId"],
        },
    ]


# -- retry queue, dead-letter queue, reconciler schedule ----------------------------------


def queue_policy_statements(synth: Synth, queue_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in synth.resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def enforce_ssl_statement(queue_id: str) -> dict[str, Any]:
    return {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    }


def test_queues_encrypted_ssl_only_with_redrive(main_synth: Synth) -> None:
    queues = main_synth.resources("AWS::SQS::Queue")
    assert len(queues) == 2
    retry_id = logical_id(main_synth, "AWS::SQS::Queue", "RetryQueue")
    dlq_id = logical_id(main_synth, "AWS::SQS::Queue", "DeadLetterQueue")
    retry = queues[retry_id]["Properties"]
    dlq = queues[dlq_id]["Properties"]
    assert retry["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    assert retry["VisibilityTimeout"] == 360  # 6 x the retry function's 60 s
    assert retry["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in dlq
    for queue_id in (retry_id, dlq_id):
        assert queue_policy_statements(main_synth, queue_id) == [enforce_ssl_statement(queue_id)]


def test_retry_function_consumes_only_the_retry_queue(main_synth: Synth) -> None:
    (mapping,) = main_synth.resources("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    retry_queue = logical_id(main_synth, "AWS::SQS::Queue", "RetryQueue")
    assert props["FunctionName"] == {"Ref": function_id(main_synth, "RetryFunction")}
    assert props["EventSourceArn"] == {"Fn::GetAtt": [retry_queue, "Arn"]}
    assert props["BatchSize"] == 5
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props.get("Enabled", True) is True


def test_reconciler_schedule(main_synth: Synth) -> None:
    rule = main_synth.resources("AWS::Events::Rule")[
        logical_id(main_synth, "AWS::Events::Rule", "ReconcileSchedule")
    ]
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "rate(10 minutes)"
    assert props["State"] == "ENABLED"
    assert "EventPattern" not in props
    reconciler = function_id(main_synth, "ReconcilerFunction")
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [reconciler, "Arn"]}
    # EventBridge may invoke only the reconciler, only from this rule.
    rule_id = logical_id(main_synth, "AWS::Events::Rule", "ReconcileSchedule")
    (permission,) = [
        p["Properties"]
        for p in main_synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
        and p["Properties"]["FunctionName"] == {"Fn::GetAtt": [reconciler, "Arn"]}
    ]
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}


def test_default_reconcile_interval(existing_vpc_synth: Synth) -> None:
    (rule,) = [
        r
        for r in existing_vpc_synth.resources("AWS::Events::Rule").values()
        if r["Properties"]["Description"] == "Runs the runner reconciler"
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"


# -- IAM -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_roles_have_no_managed_policies(main_synth: Synth, name: str) -> None:
    role_id = logical_id(main_synth, "AWS::IAM::Role", f"{name}Role")
    role = main_synth.raw["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert "Policies" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
        }
    ]


@pytest.mark.parametrize("fixture", ALL_SYNTHS)
def test_no_wildcard_actions_anywhere(request: pytest.FixtureRequest, fixture: str) -> None:
    synth: Synth = request.getfixturevalue(fixture)
    assert synth.resources("AWS::IAM::ManagedPolicy") == {}
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow", statement
            for action in as_list(statement["Action"]):
                assert "*" not in action, statement


@pytest.mark.parametrize("fixture", ALL_SYNTHS)
def test_star_resource_only_for_xray_list_tasks_and_ecr_token(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    """'*' only where AWS has no resource-level permissions, and ListTasks pinned to the cluster."""
    synth: Synth = request.getfixturevalue(fixture)
    cluster = logical_id(synth, "AWS::ECS::Cluster", "Cluster")
    ecr_execution_roles = set()
    if fixture == "main_synth":  # an ECR registry_prefix and a private ECR image
        ecr_execution_roles.add(profile_roles(synth, f"{STACK_NAME}-runner-deploy")[1])
        ecr_execution_roles.add(profile_roles(synth, f"{STACK_NAME}-runner-big-x64")[1])
    seen_token_roles = set()
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "*" not in as_list(statement["Resource"]):
                continue
            assert statement["Resource"] == "*", statement  # never '*' next to other ARNs
            actions = sorted(as_list(statement["Action"]))
            if actions == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]:
                assert "Condition" not in statement
            elif actions == ["ecs:ListTasks"]:
                assert statement["Condition"] == {
                    "ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}
                }
            elif actions == ["secretsmanager:ListSecrets"]:
                assert "Condition" not in statement  # no resource-level permissions
            elif actions == ["ecr:GetAuthorizationToken"]:
                seen_token_roles |= {r["Ref"] for r in policy["Properties"]["Roles"]}
            else:
                raise AssertionError(f"'*' resource for {actions}")
    assert seen_token_roles == ecr_execution_roles


def dispatcher_actions(name: str) -> list[str]:
    actions = [
        "logs:CreateLogStream", "logs:PutLogEvents",
        "xray:PutTraceSegments", "xray:PutTelemetryRecords",
        "ecs:RunTask", "ecs:TagResource", "iam:PassRole",
        "ecs:DescribeTasks", "ecs:StopTask", "ecs:ListTasks",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
        "secretsmanager:CreateSecret", "secretsmanager:TagResource",
        "secretsmanager:PutResourcePolicy", "secretsmanager:PutSecretValue",
        "secretsmanager:DeleteSecret", "secretsmanager:ListSecrets",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
        "ssm:GetParameters",  # the profiles' parameters (RUNNER_PROFILES_PARAMETERS)
    ]  # fmt: skip
    if name == "ReconcilerFunction":  # the webhook fargate-runners setup recorded
        actions.append("ssm:GetParameter")
        actions.append("dynamodb:BatchGetItem")  # job records (lambda_fn/job_records.py)
    if name == "RetryFunction":  # added by the SQS event source
        actions += [
            "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl",
            "sqs:DeleteMessage", "sqs:GetQueueAttributes",
        ]  # fmt: skip
    return sorted(actions)


PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "r", "AWS::AccountId": "1"}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_permissions_are_exactly_scoped(main_synth: Synth, name: str) -> None:
    found = statements(main_synth, f"{name}Role")
    actions = sorted(a for s in found for a in as_list(s["Action"]))
    assert actions == dispatcher_actions(name)  # also: no action granted twice
    assert all(s["Effect"] == "Allow" for s in found)
    by_action = {a: s for s in found for a in as_list(s["Action"])}
    cluster = logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")
    on_cluster = {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}

    run_task = by_action["ecs:RunTask"]
    assert as_list(run_task["Action"]) == ["ecs:RunTask"]
    assert run_task["Condition"] == on_cluster
    arns = sorted(resolve_join(r, PSEUDO) for r in as_list(run_task["Resource"]))
    assert arns == sorted(
        f"arn:aws:ecs:r:1:task-definition/{STACK_NAME}-runner-{p['name']}:*"
        for p in TEST_CONTEXT["profiles"]
    )

    task_arn = "arn:aws:ecs:r:1:task/C/*"
    tag = by_action["ecs:TagResource"]
    assert as_list(tag["Action"]) == ["ecs:TagResource"]
    assert tag["Condition"] == {"StringEquals": {"ecs:CreateAction": "RunTask"}}
    assert resolve_join(tag["Resource"], {**PSEUDO, cluster: "C"}) == task_arn

    inspect = by_action["ecs:StopTask"]
    assert sorted(as_list(inspect["Action"])) == ["ecs:DescribeTasks", "ecs:StopTask"]
    assert inspect["Condition"] == on_cluster
    assert resolve_join(inspect["Resource"], {**PSEUDO, cluster: "C"}) == task_arn

    list_tasks = by_action["ecs:ListTasks"]
    assert as_list(list_tasks["Action"]) == ["ecs:ListTasks"]
    assert list_tasks["Resource"] == "*"
    assert list_tasks["Condition"] == on_cluster

    pass_role = by_action["iam:PassRole"]
    assert as_list(pass_role["Action"]) == ["iam:PassRole"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    expected_roles = set()
    for task_def in main_synth.resources("AWS::ECS::TaskDefinition").values():
        expected_roles.add(task_def["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0])
        expected_roles.add(task_def["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0])
    assert len(expected_roles) == 2 * len(TEST_CONTEXT["profiles"])
    assert len(pass_role["Resource"]) == len(expected_roles)
    assert {r["Fn::GetAtt"][0] for r in pass_role["Resource"]} == expected_roles
    assert all(r["Fn::GetAtt"][1] == "Arn" for r in pass_role["Resource"])

    retry_queue = logical_id(main_synth, "AWS::SQS::Queue", "RetryQueue")
    dlq = logical_id(main_synth, "AWS::SQS::Queue", "DeadLetterQueue")
    send = by_action["sqs:SendMessage"]
    assert as_list(send["Action"]) == ["sqs:SendMessage"]
    assert sorted(r["Fn::GetAtt"][0] for r in send["Resource"]) == sorted([retry_queue, dlq])
    assert all(r["Fn::GetAtt"][1] == "Arn" for r in send["Resource"])
    if name == "RetryFunction":
        consume = by_action["sqs:ReceiveMessage"]
        assert consume["Resource"] == {"Fn::GetAtt": [retry_queue, "Arn"]}
        assert "sqs:SendMessage" not in as_list(consume["Action"])

    secrets = by_action["secretsmanager:GetSecretValue"]
    assert as_list(secrets["Action"]) == ["secretsmanager:GetSecretValue"]
    assert {r["Ref"] for r in secrets["Resource"]} == set(
        main_synth.resources("AWS::SecretsManager::Secret")
    )
    assert len(secrets["Resource"]) == 2

    # Per-runner JIT config secrets: create (only our two tag keys) and delete under the
    # prefix, list for the reconciler; never read.
    sealed = f"arn:aws:secretsmanager:r:1:secret:{STACK_NAME}/jit/*"
    our_keys = {"aws:TagKeys": ["runner:task-userid", "runner:task-arn"]}
    seal = by_action["secretsmanager:CreateSecret"]
    assert seal["Sid"] == "SealJitConfigs"
    assert as_list(seal["Action"]) == ["secretsmanager:CreateSecret"]
    assert resolve_join(seal["Resource"], PSEUDO) == sealed
    assert seal["Condition"] == {
        "ForAllValues:StringEquals": our_keys,
        "Null": {"aws:RequestTag/runner:task-userid": "false",
                 "aws:RequestTag/runner:task-arn": "false"},
    }  # fmt: skip
    # Tags only at creation: never on a secret that already carries a binding.
    tag_at_creation = by_action["secretsmanager:TagResource"]
    assert tag_at_creation["Sid"] == "TagJitConfigsAtCreation"
    assert as_list(tag_at_creation["Action"]) == ["secretsmanager:TagResource"]
    assert resolve_join(tag_at_creation["Resource"], PSEUDO) == sealed
    assert tag_at_creation["Condition"] == {
        "ForAllValues:StringEquals": our_keys,
        "Null": {"secretsmanager:ResourceTag/runner:task-userid": "true"},
    }
    lock = by_action["secretsmanager:PutResourcePolicy"]
    assert as_list(lock["Action"]) == [
        "secretsmanager:PutResourcePolicy", "secretsmanager:PutSecretValue"
    ]  # fmt: skip
    assert resolve_join(lock["Resource"], PSEUDO) == sealed  # the prefix only
    delete = by_action["secretsmanager:DeleteSecret"]
    assert as_list(delete["Action"]) == ["secretsmanager:DeleteSecret"]
    assert resolve_join(delete["Resource"], PSEUDO) == sealed
    assert "Condition" not in delete
    assert by_action["secretsmanager:ListSecrets"]["Resource"] == "*"
    assert sealed not in json.dumps(secrets["Resource"])  # GetSecretValue: the two secrets only

    table = logical_id(main_synth, "AWS::DynamoDB::Table", "IdempotencyTable")
    assert by_action["dynamodb:PutItem"]["Resource"] == {"Fn::GetAtt": [table, "Arn"]}

    log_group = logical_id(main_synth, "AWS::Logs::LogGroup", f"{name}Logs")
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
    assert method["Properties"]["Integration"]["Uri"]["Fn::Join"][1][-2] == {
        "Fn::GetAtt": [function_id(main_synth, "WebhookFunction"), "Arn"]
    }
    # API Gateway may invoke only the webhook function, only for POST /webhook of its stage;
    # the only other invoke permissions are EventBridge's: the reconciler schedule's and
    # the hook filter's two rules (issue 23).
    permissions = [
        p["Properties"] for p in main_synth.resources("AWS::Lambda::Permission").values()
    ]
    assert sorted(p["Principal"] for p in permissions) == [
        "apigateway.amazonaws.com",
        "events.amazonaws.com",
        "events.amazonaws.com",
        "events.amazonaws.com",
    ]
    (permission,) = [p for p in permissions if p["Principal"] == "apigateway.amazonaws.com"]
    assert permission["FunctionName"] == {
        "Fn::GetAtt": [function_id(main_synth, "WebhookFunction"), "Arn"]
    }
    source = permission["SourceArn"]["Fn::Join"][1]
    assert source[-1] == "/POST/webhook"


def test_api_stage_throttling_logging_tracing(main_synth: Synth) -> None:
    stage = only(main_synth.resources("AWS::ApiGateway::Stage"))["Properties"]
    assert stage["TracingEnabled"] is True
    access_logs = logical_id(main_synth, "AWS::Logs::LogGroup", "ApiAccessLogs")
    # @aws-cdk/aws-apigateway:logGroupDestinationArnWithoutWildcard: the group's ARN, no ':*'.
    destination = json.dumps(stage["AccessLogSetting"]["DestinationArn"])
    assert f'{{"Ref": "{access_logs}"}}' in destination
    assert ":logs:" in destination
    assert ":*" not in destination
    log_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert {"requestId", "ip", "httpMethod", "status", "resourcePath"} <= set(log_format)
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == TEST_CONTEXT["webhook_throttle_rate"]
    assert settings["ThrottlingBurstLimit"] == TEST_CONTEXT["webhook_throttle_burst"]
    assert settings["MetricsEnabled"] is True
    assert settings["DataTraceEnabled"] is False
    assert settings["LoggingLevel"] == "ERROR"
    # api_gateway_logging=create: this stack sets the region-wide CloudWatch role, and keeps
    # the role on delete (the account setting would otherwise point at a deleted role).
    (account,) = main_synth.resources("AWS::ApiGateway::Account").values()
    role = logical_id(main_synth, "AWS::IAM::Role", "CloudWatchRole")
    assert account["Properties"] == {"CloudWatchRoleArn": {"Fn::GetAtt": [role, "Arn"]}}
    assert main_synth.raw["Resources"][role]["DeletionPolicy"] == "Retain"
    assert only(main_synth.resources("AWS::ApiGateway::RestApi"))["Properties"]["Name"] == (
        f"{STACK_NAME}-webhook"
    )


def test_existing_api_gateway_role_logs_without_touching_the_account(
    existing_vpc_synth: Synth,
) -> None:
    existing_vpc_synth.template.resource_count_is("AWS::ApiGateway::Account", 0)
    roles = existing_vpc_synth.resources("AWS::IAM::Role")
    assert not [role for role in roles if "CloudWatchRole" in role], sorted(roles)
    stage = only(existing_vpc_synth.resources("AWS::ApiGateway::Stage"))["Properties"]
    assert "AccessLogSetting" in stage
    assert stage["MethodSettings"][0]["LoggingLevel"] == "ERROR"


def test_api_gateway_logging_off_by_default(edge_synth: Synth) -> None:
    """Off: nothing account-wide, no API log groups; the Lambda logs every delivery."""
    edge_synth.template.resource_count_is("AWS::ApiGateway::Account", 0)
    stage = only(edge_synth.resources("AWS::ApiGateway::Stage"))["Properties"]
    assert "AccessLogSetting" not in stage
    assert "LoggingLevel" not in stage["MethodSettings"][0]
    assert only(edge_synth.resources("AWS::ApiGateway::RestApi"))["Properties"]["Name"] == (
        "RunnersEdge-webhook"
    )


def test_outputs(main_synth: Synth) -> None:
    outputs = main_synth.raw["Outputs"]
    records = {k for k in outputs if k.startswith("RunnersFargateRunnersInstance")}
    assert len(records) == 1  # the construct's own record (fargate_runners/discovery.py)
    assert set(outputs) - records == {
        "WebhookUrl", "WebhookSecretArn", "GitHubTokenSecretArn", "ClusterName",
        "RetryQueueUrl", "DeadLetterQueueUrl", "DashboardName", "WebhookHookParameter",
        "SecurityGroupSmall", "SecurityGroupBigX64", "SecurityGroupDeploy",
    }  # fmt: skip
    assert outputs["WebhookHookParameter"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::SSM::Parameter", "WebhookHookParameter")
    }
    url = outputs["WebhookUrl"]["Value"]["Fn::Join"][1]
    assert url[0] == "https://"
    assert url[-1] == "/webhook"
    assert outputs["ClusterName"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")
    }
    assert outputs["RetryQueueUrl"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::SQS::Queue", "RetryQueue")
    }
    assert outputs["DeadLetterQueueUrl"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::SQS::Queue", "DeadLetterQueue")
    }
    assert outputs["DashboardName"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::CloudWatch::Dashboard", "Dashboard")
    }
    assert main_synth.stack.stack_name == STACK_NAME


# -- alarms ------------------------------------------------------------------------


def alarm_actions(synth: Synth) -> list[tuple[Any, Any]]:
    alarms = synth.resources("AWS::CloudWatch::Alarm").values()
    return [(a["Properties"].get("AlarmActions"), a["Properties"].get("OKActions")) for a in alarms]


def test_alarm_email_creates_an_ssl_only_topic_with_an_email_subscription(
    main_synth: Synth,
) -> None:
    (topic_id,) = main_synth.resources("AWS::SNS::Topic")
    (subscription,) = main_synth.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "Endpoint": "ops@example.com",
        "Protocol": "email",
        "TopicArn": {"Ref": topic_id},
    }
    (policy,) = main_synth.resources("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    deny, allow = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Action"] == "sns:Publish"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # A topic policy replaces the default one: without this, CloudWatch may not publish.
    alarm_ids = sorted(main_synth.resources("AWS::CloudWatch::Alarm"))
    sources = allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    sources.sort(key=lambda arn: str(arn["Fn::GetAtt"][0]))  # created in the parts' order
    assert allow == {
        "Sid": "AllowThisStacksAlarmsToPublish",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": {"Ref": topic_id},
        "Condition": {
            "ArnEquals": {"aws:SourceArn": [{"Fn::GetAtt": [alarm, "Arn"]} for alarm in alarm_ids]},
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        },
    }
    main_synth.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    # Every alarm (dead-letter queue, launch failures, alarms.py's with the hook filter's and
    # the reconciler budget's, the runner version's
    # one per profile) notifies the topic.
    actions = alarm_actions(main_synth)
    assert len(actions) == 12
    assert all(a == ([{"Ref": topic_id}], [{"Ref": topic_id}]) for a in actions), actions
    dlq = logical_id(main_synth, "AWS::SQS::Queue", "DeadLetterQueue")
    main_synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
        },
    )


def test_alarm_topic_arn_is_used_as_is(existing_vpc_synth: Synth) -> None:
    synth = existing_vpc_synth
    arn = "arn:aws:sns:eu-west-1:123456789012:ops-alarms"
    synth.template.resource_count_is("AWS::SNS::Topic", 0)
    synth.template.resource_count_is("AWS::SNS::Subscription", 0)
    actions = alarm_actions(synth)
    # two of the dashboard, eight of alarms.py (refresh, hook filter, budget), version
    assert len(actions) == 11
    assert all(a == ([arn], [arn]) for a in actions), actions


def test_no_alarm_topic(edge_synth: Synth) -> None:
    edge_synth.template.resource_count_is("AWS::SNS::Topic", 0)
    actions = alarm_actions(edge_synth)
    assert len(actions) == 9  # no web ACL, no refresh alarm
    assert all(a == (None, None) for a in actions), actions


# -- existing VPC + imported PAT secret --------------------------------------------


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


# -- edge variant: watchdog off, managed task role policy, non-ECR mirror ------------------


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
