"""Issue 23: a network identity per profile (security groups, outputs, the subnet warning)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fargate_runners.config import ConfigError, load_config
from fargate_runners.network import SHARED_SUBNETS_WARNING
from lambda_fn import contract
from tests.kit.infra import NO_BUNDLING, STEPS_CONTEXT, Synth, synth
from tests.kit.stack import logical_id, runner_profiles

pytestmark = pytest.mark.infra

DEFAULT = {"name": "default", "labels": ["self-hosted", "linux", "arm64"]}
#: ``default`` (open) and the managed-steps, restricted ``deploy``, in the stack's own VPC.
CONTEXT: dict[str, Any] = {
    **STEPS_CONTEXT,
    **NO_BUNDLING,
    "stack_name": "RunnersIsolation",
    "profiles": [DEFAULT, *STEPS_CONTEXT["profiles"]],
}


@pytest.fixture(scope="module")
def isolation_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(CONTEXT, tmp_path_factory.mktemp("cdk-isolation"))


def profile_entries(s: Synth) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in runner_profiles(s)}


def step_groups(s: Synth) -> list[Any]:
    """The security groups the deploy profile's managed-steps hook puts on step tasks."""
    (definition,) = [
        d for k, d in s.resources("AWS::ECS::TaskDefinition").items()
        if "ProfiledeployTaskDefinition" in k
    ]  # fmt: skip
    (container,) = definition["Properties"]["ContainerDefinitions"]
    text = json.dumps(container["Environment"])
    steps_group = logical_id(s, "AWS::EC2::SecurityGroup", "ProfiledeployStepsSecurityGroup")
    return [steps_group] if steps_group in text else []


def test_each_profile_and_the_step_tasks_have_a_group_of_their_own(
    isolation_synth: Synth,
) -> None:
    entries = profile_entries(isolation_synth)
    default_group = logical_id(isolation_synth, "AWS::EC2::SecurityGroup", "RunnerSecurityGroup")
    deploy_group = logical_id(isolation_synth, "AWS::EC2::SecurityGroup", "SecurityGroupdeploy")
    steps_group = logical_id(
        isolation_synth, "AWS::EC2::SecurityGroup", "ProfiledeployStepsSecurityGroup"
    )
    # ``default`` keeps the group that existed before (same logical id: no replacement).
    assert entries["default"]["security_group_ids"] == [f"{default_group}.GroupId"]
    assert entries["deploy"]["security_group_ids"] == [f"{deploy_group}.GroupId"]
    assert len({default_group, deploy_group, steps_group}) == 3
    # The step tasks (deploy role, step secrets) run in their group, not the runner's.
    assert step_groups(isolation_synth) == [steps_group]
    groups = isolation_synth.resources("AWS::EC2::SecurityGroup")
    for group in (default_group, deploy_group, steps_group):
        assert "SecurityGroupIngress" not in groups[group]["Properties"]
    assert groups[default_group]["Properties"]["GroupDescription"] == (
        "GitHub Actions runner tasks: egress only, no inbound access"
    )


def test_groups_are_exported_per_profile(isolation_synth: Synth) -> None:
    outputs = isolation_synth.raw["Outputs"]
    default_group = logical_id(isolation_synth, "AWS::EC2::SecurityGroup", "RunnerSecurityGroup")
    deploy_group = logical_id(isolation_synth, "AWS::EC2::SecurityGroup", "SecurityGroupdeploy")
    steps_group = logical_id(
        isolation_synth, "AWS::EC2::SecurityGroup", "ProfiledeployStepsSecurityGroup"
    )
    assert outputs["SecurityGroupDefault"]["Value"] == {"Fn::GetAtt": [default_group, "GroupId"]}
    assert outputs["SecurityGroupDeploy"]["Value"] == {"Fn::GetAtt": [deploy_group, "GroupId"]}
    assert outputs["StepSecurityGroupDeploy"]["Value"] == {"Fn::GetAtt": [steps_group, "GroupId"]}
    assert "StepSecurityGroupDefault" not in outputs
    runners = isolation_synth.stack.runners
    resolve = isolation_synth.stack.resolve
    assert [resolve(g.security_group_id) for g in runners.security_groups("deploy")] == [
        {"Fn::GetAtt": [deploy_group, "GroupId"]}
    ]
    assert resolve(runners.step_security_group("deploy").security_group_id) == {
        "Fn::GetAtt": [steps_group, "GroupId"]
    }
    with pytest.raises(KeyError, match="no managed steps"):
        runners.step_security_group("default")
    assert contract.profile_output_name("SecurityGroup", "big-x64") == "SecurityGroupBigX64"


def test_a_restricted_profile_in_shared_subnets_is_warned_about(isolation_synth: Synth) -> None:
    pattern = r"profile 'deploy' \(restricted\) runs in the same subnets"
    warnings = [w for w in isolation_synth.warnings() if re.search(pattern, w)]
    assert len(warnings) == 1
    assert SHARED_SUBNETS_WARNING in warnings[0]


def test_separate_subnets_and_operator_groups(tmp_path: Path) -> None:
    """No warning when the deploy profile has its own subnets; the operator's own groups are
    used as given (and need an existing VPC)."""
    context = {
        **CONTEXT,
        "stack_name": "RunnersIsolationOwn",
        "vpc_id": "vpc-0123456789abcdef0",
        "subnet_ids": ["subnet-0123456789abcdef0"],
        "profiles": [
            DEFAULT,
            {
                **STEPS_CONTEXT["profiles"][0],
                "subnet_ids": ["subnet-0fedcba9876543210"],
                "security_group_ids": ["sg-0123456789abcdef0"],
            },
        ],
    }
    s = synth(context, tmp_path)
    assert profile_entries(s)["deploy"]["security_group_ids"] == ["sg-0123456789abcdef0"]
    assert s.raw["Outputs"]["SecurityGroupDeploy"]["Value"] == "sg-0123456789abcdef0"
    assert not [w for w in s.warnings() if re.search("runs in the same subnets", w)]
    with pytest.raises(ConfigError, match=r"profiles\[1\].security_group_ids.*needs vpc_id"):
        load_config(
            {
                "profiles": [
                    DEFAULT,
                    {
                        **DEFAULT,
                        "name": "x",
                        "labels": ["x"],
                        "security_group_ids": ["sg-0123456789abcdef0"],
                    },
                ]
            }
        )
