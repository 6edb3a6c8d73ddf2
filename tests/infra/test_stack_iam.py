"""The synthesized template, iAM across the stack: no wildcards, exactly scoped function permissions, no secret in the template.

Split from ``test_stack.py`` (issue 26); the helpers are in ``tests.kit.stack``."""

from __future__ import annotations

import json

import pytest

from tests.kit.infra import (
    STACK_NAME,
    TEST_CONTEXT,
    Synth,
)
from tests.kit.stack import (
    ALL_SYNTHS,
    FUNCTIONS,
    PSEUDO,
    as_list,
    dispatcher_actions,
    logical_id,
    profile_roles,
    resolve_join,
    statements,
)

pytestmark = pytest.mark.infra


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
