"""Helpers that read the synthesized template (shared by the ``tests/infra/test_stack_*`` files)."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from aws_cdk import Token

from lambda_fn.contract import RUNNER_VERSION
from tests.kit.infra import (
    DEPLOY_REGISTRY,
    REPO_ROOT,
    Synth,
)

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


def depends_on(synth: Synth, logical: str) -> set[str]:
    return set(synth.raw["Resources"][logical].get("DependsOn", []))


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


def alarm_actions(synth: Synth) -> list[tuple[Any, Any]]:
    alarms = synth.resources("AWS::CloudWatch::Alarm").values()
    return [(a["Properties"].get("AlarmActions"), a["Properties"].get("OKActions")) for a in alarms]


def resolved_environment(synth: Synth) -> dict[str, str]:
    """The environment with samples for tokens; the profiles the SSM parameters hold
    (their sample entries, ``RunnerProfile.lambda_entry`` like the real ones) inline, as
    ``lambda_fn.profile_store`` hands them to the same parser."""
    runners = synth.stack.runners
    env = {
        key: runners.environment_samples[key] if Token.is_unresolved(value) else value
        for key, value in runners.lambda_environment.items()
    }
    assert env.pop("RUNNER_PROFILES_PARAMETERS").count(",") + 1 == len(runners.profile_parameters)
    env["RUNNER_PROFILES"] = json.dumps(
        runners.dispatcher.sample_entries(synth.stack.config.profiles)
    )
    return env
