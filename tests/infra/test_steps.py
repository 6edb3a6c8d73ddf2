"""Managed steps: the profile keys, the step task definition and the runner role's grants."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from fargate_runners.config import ConfigError, load_config
from fargate_runners.runner_files import STEPS_HOOK
from tests.kit.infra import STEP_IMAGE, STEP_SECRET_ARN, STEP_STATEMENT, STEPS_CONTEXT, Synth

pytestmark = pytest.mark.infra

PROFILE: dict[str, Any] = STEPS_CONTEXT["profiles"][0]
STEP_TASK_DEFINITION = "RunnersProfiledeployStepsTaskDefinitionD01793E4"
RUNNER_TASK_DEFINITION = "RunnersProfiledeployTaskDefinition3CB5D6E0"


def managed(**changes: Any) -> dict[str, Any]:
    return {"profiles": [{**PROFILE, **changes}]}


# -- configuration ------------------------------------------------------------------------


def test_a_managed_steps_profile_parses() -> None:
    (profile,) = load_config(STEPS_CONTEXT).profiles
    assert profile.managed_steps
    assert profile.managed_commands == {
        "deploy": ("/usr/local/bin/trigger-deploy",),
        "migrate": ("/usr/local/bin/migrate", "up"),
    }
    assert profile.step_env == ("INPUT_DEPLOY_TARGET", "INPUT_SHA")
    (plain,) = load_config({"profiles": [{"name": "p", "labels": ["x"]}]}).profiles
    assert not plain.managed_steps


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"steps": "container"}, "steps", "is not one of runner, managed"),
        ({"step_image": "deploy:latest"}, "step_image", "pinned by digest"),
        ({"step_image": None}, "step_image", "pinned by digest"),
        ({"managed_commands": {}}, "managed_commands", "is required"),
        (
            {"managed_commands": {"Deploy": ["/x"]}},
            "managed_commands.Deploy",
            "'Deploy' must match",
        ),
        ({"managed_commands": {"deploy": ["x"]}}, "managed_commands.deploy", "absolute path"),
        ({"managed_commands": {"deploy": "/x"}}, "managed_commands.deploy", "list of strings"),
        ({"managed_commands": {"d": ["/x", "a\nb"]}}, "managed_commands.d", "single lines"),
        (
            {"step_env": ["INPUT_TOKEN"], "step_secrets": {"INPUT_TOKEN": STEP_SECRET_ARN}},
            "step_secrets.INPUT_TOKEN",
            "also in step_env",
        ),
        ({"step_secrets": {"T": "not-an-arn"}}, "step_secrets.T", "not a Secrets Manager ARN"),
        ({"step_role_policies": ["arn:x"]}, "step_role_policies[0]", "not a managed policy"),
        ({"step_memory": 8192}, "step_memory", "not valid with step_cpu 512"),
        ({"task_role_policies": [STEP_STATEMENT]}, "task_role_policies", "step_role_policies"),
        ({"secrets": {"T": STEP_SECRET_ARN}}, "secrets", "use step_secrets"),
    ],
)
def test_bad_managed_steps_config_names_the_key(
    changes: dict[str, Any], key: str, fragment: str
) -> None:
    context = managed(**{k: v for k, v in changes.items() if v is not None})
    if changes.get("step_image", "") is None:
        del context["profiles"][0]["step_image"]
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    assert caught.value.key == f"profiles[0].{key}"
    assert fragment in caught.value.problem


#: One name of each family that makes an interpreter, a tool, a proxy client, TLS or the
#: loader run or trust something, and the reason the error gives (issue: `git status` with
#: GIT_CONFIG_KEY_0=core.fsmonitor runs the job's code).
STEP_ENV_FAMILIES = [
    ("GIT_CONFIG_KEY_0", "git reads GIT_*"),
    ("GIT_CONFIG_COUNT", "git reads GIT_*"),
    ("GIT_SSH_COMMAND", "git reads GIT_*"),
    ("GIT_SSH", "git reads GIT_*"),
    ("GIT_ASKPASS", "git reads GIT_*"),
    ("GIT_EXEC_PATH", "git reads GIT_*"),
    ("GIT_PAGER", "git reads GIT_*"),
    ("GIT_EDITOR", "git reads GIT_*"),
    ("GIT_PROXY_COMMAND", "git reads GIT_*"),
    ("_JAVA_OPTIONS", "every JVM"),
    ("JAVA_TOOL_OPTIONS", "every JVM"),
    ("JDK_JAVA_OPTIONS", "every JVM"),
    ("MAVEN_OPTS", "command-line options"),
    ("GRADLE_OPTS", "command-line options"),
    ("SBT_OPTIONS", "command-line options"),
    ("GOFLAGS", "command-line options"),
    ("PYTHONHOME", "Python reads PYTHON*"),
    ("PYTHONPATH", "Python reads PYTHON*"),
    ("PYTHONSTARTUP", "Python reads PYTHON*"),
    ("NODE_OPTIONS", "Node.js"),
    ("PERL5OPT", "perl"),
    ("PERL5LIB", "perl"),
    ("RUBYOPT", "Ruby"),
    ("LD_PRELOAD", "dynamic loader"),
    ("LD_LIBRARY_PATH", "dynamic loader"),
    ("GCONV_PATH", "dynamic loader or the C library"),
    ("GLIBC_TUNABLES", "dynamic loader or the C library"),
    ("HTTP_PROXY", "through a proxy"),
    ("HTTPS_PROXY", "through a proxy"),
    ("https_proxy", "through a proxy"),
    ("ALL_PROXY", "through a proxy"),
    ("no_proxy", "through a proxy"),
    ("SSL_CERT_FILE", "TLS certificates are trusted"),
    ("SSL_CERT_DIR", "TLS certificates are trusted"),
    ("REQUESTS_CA_BUNDLE", "TLS certificates are trusted"),
    ("CURL_CA_BUNDLE", "TLS certificates are trusted"),
    ("NODE_EXTRA_CA_CERTS", "Node.js"),
    ("OPENSSL_CONF", "loads an engine"),
    ("PAGER", "run the program it names"),
    ("EDITOR", "run the program it names"),
    ("VISUAL", "run the program it names"),
    ("LESSOPEN", "run the program it names"),
    ("SSH_ASKPASS", "SSH"),
    ("BASH_ENV", "the shell reads it"),
    ("ENV", "the shell reads it"),
    ("PROMPT_COMMAND", "the shell reads it"),
    ("IFS", "the shell reads it"),
    ("SHELLOPTS", "the shell reads it"),
    ("PATH", "which programs"),
    ("HOME", "which programs"),
    ("AWS_REGION", "AWS SDKs"),
    ("ECS_CONTAINER_METADATA_URI", "AWS SDKs"),
    ("RUNNER_TEMP", "the runner sets it"),
    ("GITHUB_SHA", "the runner sets it"),
    # Outside every known family: still refused (an allowlist, not a denylist).
    ("DEPLOY_TARGET", "outside the one namespace"),
    ("CARGO_BUILD_RUSTC_WRAPPER", "outside the one namespace"),
    ("INPUT_", "outside the one namespace"),
    ("input_target", "outside the one namespace"),
]


@pytest.mark.parametrize(("name", "why"), STEP_ENV_FAMILIES)
def test_step_env_refuses_names_tools_read(name: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(managed(step_env=["INPUT_TARGET", name]))
    assert caught.value.key == "profiles[0].step_env[1]"
    problem = caught.value.problem
    assert problem.startswith(f"{name!r} may not be passed to a step: ")
    assert why in problem
    assert "step_env names are INPUT_<NAME>" in problem
    assert "\n" not in str(caught.value)


def test_step_env_accepts_its_namespace() -> None:
    (profile,) = load_config(managed(step_env=["INPUT_TARGET", "INPUT_GIT_REF_9"])).profiles
    assert profile.step_env == ("INPUT_TARGET", "INPUT_GIT_REF_9")


def test_step_keys_need_steps_managed() -> None:
    context = {"profiles": [{"name": "p", "labels": ["x"], "step_env": ["A"]}]}
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    assert caught.value.key == "profiles[0].step_env"
    assert 'only used with steps: "managed"' in caught.value.problem


# -- the step task definition ---------------------------------------------------------------


def test_step_task_definition(steps_synth: Synth) -> None:
    task_definitions = steps_synth.resources("AWS::ECS::TaskDefinition")
    step = task_definitions[STEP_TASK_DEFINITION]["Properties"]
    assert step["Family"] == "RunnersSteps-step-deploy"
    assert (step["Cpu"], step["Memory"]) == ("512", "1024")
    assert "Volumes" not in step
    assert step["TaskRoleArn"] == {
        "Fn::GetAtt": ["RunnersProfiledeployStepsTaskRole00ADE963", "Arn"]
    }
    (container,) = step["ContainerDefinitions"]
    assert container["Image"] == STEP_IMAGE
    assert container["User"] == "1000"  # not root
    assert container["Privileged"] is False
    assert "MountPoints" not in container and "VolumesFrom" not in container
    assert "Environment" not in container  # a step gets only its allowed variables
    assert container["Secrets"] == [{"Name": "DEPLOY_TOKEN", "ValueFrom": STEP_SECRET_ARN}]
    assert "Command" not in container
    sh, dash_c, script, name = container["EntryPoint"]
    assert (sh, dash_c, name) == ("/bin/sh", "-c", "managed-step")
    assert "  deploy) exec /usr/local/bin/trigger-deploy ;;\n" in script
    assert "  migrate) exec /usr/local/bin/migrate up ;;\n" in script
    assert "exit 126" in script
    options = container["LogConfiguration"]["Options"]
    assert options["awslogs-group"] == {"Ref": "RunnersProfiledeployStepsLogs881E8D4B"}
    assert options["awslogs-stream-prefix"] == "step"


def test_no_ecs_exec_anywhere(steps_synth: Synth) -> None:
    text = json.dumps(steps_synth.raw)
    assert "ssmmessages" not in text
    assert "EnableExecuteCommand" not in text


def policy_of(synth: Synth, role_logical_id: str) -> list[dict[str, Any]]:
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_logical_id}]
    ]
    return list(policy)


def test_step_role_has_exactly_the_operators_policy(steps_synth: Synth) -> None:
    assert policy_of(steps_synth, "RunnersProfiledeployStepsTaskRole00ADE963") == [STEP_STATEMENT]
    role = steps_synth.resources("AWS::IAM::Role")["RunnersProfiledeployStepsTaskRole00ADE963"]
    assert "ManagedPolicyArns" not in role["Properties"]


def arn(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, *parts]]}


def test_runner_role_may_only_run_follow_and_stop_its_steps(steps_synth: Synth) -> None:
    """The runner task holds no deploy permission: only what the hook needs, and it may
    start step tasks only tagged with its own session and stop only those."""
    cluster_arn = {"Fn::GetAtt": ["RunnersClusterAEDEEE6D", "Arn"]}
    in_cluster = {"ecs:cluster": cluster_arn}
    owner = "runner:step-owner"
    region_account = [{"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}]
    cluster_tasks = arn(":ecs:", *region_account, ":task/", {"Ref": "RunnersClusterAEDEEE6D"}, "/*")
    statements = {
        s["Sid"]: s for s in policy_of(steps_synth, "RunnersProfiledeployTaskRole0C44F051")
    }
    assert set(statements) == {
        "ReadAndConsumeOwnJitConfig",
        "RunOwnStepTasks",
        "TagOwnStepTasksAtLaunch",
        "StopOwnStepTasks",
        "FollowStepTasks",
        "PassStepRoles",
        "ReadStepLogs",
        "ReadOwnProfileAdmissions",  # GetItem on admitted#deploy#* (test_stack_runner_tasks.py)
    }
    assert statements["RunOwnStepTasks"] == {
        "Sid": "RunOwnStepTasks",
        "Effect": "Allow",
        "Action": "ecs:RunTask",
        "Resource": arn(":ecs:", *region_account, ":task-definition/RunnersSteps-step-deploy:*"),
        "Condition": {
            "ArnEquals": in_cluster,
            "StringEquals": {f"aws:RequestTag/{owner}": "${aws:userid}"},
            "ForAllValues:StringEquals": {"aws:TagKeys": [owner]},
        },
    }
    # Tagging only as part of RunTask: no existing task can be given the caller's tag.
    assert statements["TagOwnStepTasksAtLaunch"] == {
        "Sid": "TagOwnStepTasksAtLaunch",
        "Effect": "Allow",
        "Action": "ecs:TagResource",
        "Resource": cluster_tasks,
        "Condition": {
            "StringEquals": {
                "ecs:CreateAction": "RunTask",
                f"aws:RequestTag/{owner}": "${aws:userid}",
            },
            "ForAllValues:StringEquals": {"aws:TagKeys": [owner]},
        },
    }
    assert statements["StopOwnStepTasks"] == {
        "Sid": "StopOwnStepTasks",
        "Effect": "Allow",
        "Action": "ecs:StopTask",
        "Resource": cluster_tasks,
        "Condition": {
            "ArnEquals": in_cluster,
            "StringEquals": {f"aws:ResourceTag/{owner}": "${aws:userid}"},
        },
    }
    assert statements["FollowStepTasks"] == {
        "Sid": "FollowStepTasks",
        "Effect": "Allow",
        "Action": "ecs:DescribeTasks",
        "Resource": cluster_tasks,
        "Condition": {"ArnEquals": in_cluster},
    }
    # Nothing else of ECS: no UntagResource, no TagResource outside RunTask.
    ecs_actions = sorted(
        action
        for statement in statements.values()
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else [])
        + (statement["Action"] if isinstance(statement["Action"], list) else [])
        if action.startswith("ecs:")
    )
    assert ecs_actions == ["ecs:DescribeTasks", "ecs:RunTask", "ecs:StopTask", "ecs:TagResource"]
    assert statements["PassStepRoles"] == {
        "Sid": "PassStepRoles",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": [
            {"Fn::GetAtt": ["RunnersProfiledeployStepsTaskRole00ADE963", "Arn"]},
            {"Fn::GetAtt": ["RunnersProfiledeployStepsExecutionRoleC7306C8E", "Arn"]},
        ],
        "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
    }
    assert statements["ReadStepLogs"] == {
        "Sid": "ReadStepLogs",
        "Effect": "Allow",
        "Action": "logs:GetLogEvents",
        "Resource": {"Fn::GetAtt": ["RunnersProfiledeployStepsLogs881E8D4B", "Arn"]},
    }
    role = steps_synth.resources("AWS::IAM::Role")["RunnersProfiledeployTaskRole0C44F051"]
    assert "ManagedPolicyArns" not in role["Properties"]


def test_step_execution_role_pulls_only_the_step_image(steps_synth: Synth) -> None:
    statements = policy_of(steps_synth, "RunnersProfiledeployStepsExecutionRoleC7306C8E")
    pull = next(s for s in statements if s.get("Sid") == "PullStepImage")
    assert pull["Resource"] == arn(":ecr:us-east-1:123456789012:repository/deploy")
    secrets = next(s for s in statements if "secretsmanager:GetSecretValue" in s["Action"])
    assert secrets["Resource"] == STEP_SECRET_ARN


def test_runner_container_carries_the_hook_and_its_configuration(steps_synth: Synth) -> None:
    runner = steps_synth.resources("AWS::ECS::TaskDefinition")[RUNNER_TASK_DEFINITION]
    (container,) = runner["Properties"]["ContainerDefinitions"]
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    # The hook's code is in the deployment's one environment file (runner_files.py).
    code = gzip.decompress(
        base64.b64decode(steps_synth.env_file(container)["RUNNER_STEPS_PY_GZ_B64"])
    )
    assert code == STEPS_HOOK.read_bytes()
    parts = env["RUNNER_STEPS_JSON"]["Fn::Join"][1]
    rendered = "".join(p if isinstance(p, str) else "<token>" for p in parts)
    config = json.loads(rendered)
    assert config == {
        "profile": "deploy",
        "image": STEP_IMAGE,
        "commands": ["deploy", "migrate"],
        "env": ["INPUT_DEPLOY_TARGET", "INPUT_SHA"],
        "cluster": "<token>",
        "task_definition": "<token>",
        "container": "step",
        "subnets": ["<token>", "<token>"],
        "security_groups": ["<token>"],
        "assign_public_ip": True,
        "log_group": "<token>",
        "log_stream_prefix": "step",
        "region": "<token>",
        "owner_tag": "runner:step-owner",
        "owner_role_id": "<token>",
    }
    assert {"Ref": STEP_TASK_DEFINITION} in parts
    # The role id of this very runner task role: its sessions' aws:userid starts with it.
    assert {"Fn::GetAtt": ["RunnersProfiledeployTaskRole0C44F051", "RoleId"]} in parts
    assert "Secrets" not in container  # the runner task holds no secret of the steps


def test_the_local_mode_refuses_managed_steps() -> None:
    """It does not model step tasks; a plain runner there would run the steps itself."""
    from localdev.provision import provision

    with pytest.raises(ValueError, match=r"managed steps .* are not supported by the local mode"):
        provision(None, STEPS_CONTEXT)


def test_private_subnets_get_an_ecs_endpoint_for_the_hook(tmp_path: Any) -> None:
    from tests.kit.infra import EXISTING_VPC_CONTEXT, NO_BUNDLING, synth

    context = {**EXISTING_VPC_CONTEXT, **NO_BUNDLING, "profiles": STEPS_CONTEXT["profiles"]}
    endpoints = synth(context, tmp_path).resources("AWS::EC2::VPCEndpoint").values()
    names = [json.dumps(e["Properties"]["ServiceName"]) for e in endpoints]
    assert sum(".ecs" in name and "ecs-" not in name for name in names) == 1, names
    # A restricted profile's hook reads its admission record: DynamoDB, as a gateway.
    (dynamodb,) = [e["Properties"] for e in endpoints if ".dynamodb" in json.dumps(e)]
    assert dynamodb["VpcEndpointType"] == "Gateway"
    assert dynamodb["RouteTableIds"] == ["rtb-0123456789abcdef0"]
