"""``FargateRunners`` dropped into someone else's app, without the stack or cdk.json."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from cdk.config import ConfigError, RunnerProfile
from cdk.construct import FargateRunners, FargateRunnersProps

from .conftest import NO_BUNDLING

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def embedded() -> tuple[FargateRunners, dict[str, Any]]:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Platform")
    vpc = ec2.Vpc(stack, "Network", max_azs=2, nat_gateways=1)
    runners = FargateRunners(
        stack,
        "Ci",
        FargateRunnersProps(
            profiles=[RunnerProfile(name="default", labels=("self-hosted", "linux"))],
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        ),
    )
    return runners, dict(Template.from_stack(stack).to_json())


def test_uses_the_given_vpc_and_private_subnets(
    embedded: tuple[FargateRunners, dict[str, Any]],
) -> None:
    runners, template = embedded
    resources = template["Resources"]
    assert sum(r["Type"] == "AWS::EC2::VPC" for r in resources.values()) == 1
    assert sum(r["Type"] == "AWS::EC2::FlowLog" for r in resources.values()) == 0
    (function,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    env = function["Properties"]["Environment"]["Variables"]
    assert env["ASSIGN_PUBLIC_IP"] == "DISABLED"
    refs = [p["Ref"] for p in env["SUBNET_IDS"]["Fn::Join"][1] if isinstance(p, dict)]
    assert len(refs) == 2
    assert all("PrivateSubnet" in ref for ref in refs)
    assert runners.task_definitions["default"].family == "Platform-runner-default"
    assert runners.runner_name_prefix == "platform"


def test_exposes_its_parts(embedded: tuple[FargateRunners, dict[str, Any]]) -> None:
    runners, _ = embedded
    assert set(runners.task_definitions) == {"default"}
    assert set(runners.task_roles) == set(runners.execution_roles) == {"default"}
    for part in (
        runners.cluster, runners.webhook_function, runners.api, runners.webhook_secret,
        runners.github_token_secret, runners.idempotency_table, runners.security_group,
        runners.runner_log_group,
    ):  # fmt: skip
        assert part is not None
    assert runners.webhook_url


def test_rejects_duplicate_label_sets() -> None:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Dup")
    profiles = [
        RunnerProfile(name="a", labels=("linux", "x64")),
        RunnerProfile(name="b", labels=("X64", "Linux")),
    ]
    with pytest.raises(ConfigError, match=r"^profiles\[1\]\.labels: same label set"):
        FargateRunners(stack, "Runners", FargateRunnersProps(profiles=profiles))
