"""The synthesized template, the runner tasks: task definitions per profile, their environment, task and execution roles.

Split from ``test_stack.py`` (issue 26); the helpers are in ``tests.kit.stack``."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from fargate_runners.config import DEFAULT_IMAGE, load_config
from lambda_fn.contract import RUNNER_VERSION
from lambda_fn.policy import policy_from_json
from lambda_fn.runner_version import version_from_image
from tests.kit.infra import (
    DEPLOY_KMS_KEY_ARN,
    DEPLOY_POLICY,
    DEPLOY_SECRET_ARN,
    DEPLOY_STATEMENT,
    STACK_NAME,
    TEST_CONTEXT,
    Synth,
)
from tests.kit.stack import (
    ADMISSION_MODULE,
    AWS_CALL,
    DEPLOY_IMAGE,
    ENTRYPOINT,
    HOOK,
    JIT_FETCH,
    POLICY_MODULE,
    assert_ecs_tasks_role,
    container_env,
    gunzip_b64,
    logical_id,
    own_jit_config_statement,
    profile_roles,
    role_statements,
    runner_files_statements,
    runner_logs_statement,
    task_definition,
    unrestricted_policy,
)

pytestmark = pytest.mark.infra


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
