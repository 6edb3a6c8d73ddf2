"""Synth refuses or warns about networks and sizes that can never work (docs/never-work.md).

The construct in a user's app: an ``ec2.Vpc`` built there shows its subnet types to synth;
an imported VPC does not, so synth warns and points at ``fargate-runners doctor``.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Annotations, Match

from fargate_runners.config import ConfigError, RunnerProfile
from fargate_runners.construct import FARGATE_QUOTA_WARNING, FargateRunners, FargateRunnersProps
from fargate_runners.network import NETWORK_UNCHECKED_WARNING
from tests.kit.infra import NO_BUNDLING

pytestmark = pytest.mark.infra

DEFAULT = RunnerProfile(name="default", labels=("self-hosted", "linux"))


def stack_with(vpc_kind: str) -> tuple[cdk.Stack, ec2.IVpc]:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Platform")
    if vpc_kind == "imported":
        vpc = ec2.Vpc.from_vpc_attributes(
            stack, "Net", vpc_id="vpc-0123456789abcdef0", availability_zones=["us-east-1a"]
        )
    elif vpc_kind == "isolated":
        vpc = ec2.Vpc(
            stack,
            "Net",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Iso", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
            ],
        )
    else:
        vpc = ec2.Vpc(
            stack,
            "Net",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Pub", subnet_type=ec2.SubnetType.PUBLIC)
            ],
        )
    return stack, vpc


def test_isolated_subnets_without_endpoints_are_refused() -> None:
    stack, vpc = stack_with("isolated")
    with pytest.raises(ConfigError) as caught:
        FargateRunners(stack, "Runners", FargateRunnersProps(profiles=[DEFAULT], vpc=vpc))
    assert str(caught.value).startswith(
        "vpc_subnets: selects isolated subnets (no route to the internet, no VPC endpoints)"
    )
    assert "SubnetType.PRIVATE_WITH_EGRESS" in str(caught.value)


def test_public_subnets_without_a_public_ip_are_refused() -> None:
    """An existing VPC defaults to assign_public_ip false: with public subnets, no way out."""
    stack, vpc = stack_with("public")
    with pytest.raises(ConfigError) as caught:
        FargateRunners(stack, "Runners", FargateRunnersProps(profiles=[DEFAULT], vpc=vpc))
    assert str(caught.value) == (
        "assign_public_ip: None with public subnets in vpc_subnets: a task without a public IP "
        "has no route out of a public subnet (no NAT there); set assign_public_ip=True, or "
        "select private subnets with a NAT gateway (SubnetType.PRIVATE_WITH_EGRESS)"
    )


def test_an_imported_vpc_and_big_maxima_are_warned_about() -> None:
    stack, vpc = stack_with("imported")
    big = RunnerProfile(
        name="default", labels=("self-hosted",), cpu=16384, memory=32768, max_runners=500
    )
    FargateRunners(
        stack,
        "Runners",
        FargateRunnersProps(profiles=[big], vpc=vpc, subnet_ids=["subnet-0123456789abcdef0"]),
    )
    annotations = Annotations.from_stack(stack)
    network = annotations.find_warning(
        "*", Match.string_like_regexp("existing VPC whose routes synth cannot see")
    )
    assert len(network) == 1
    assert NETWORK_UNCHECKED_WARNING in str(network[0].entry.data)
    assert "fargate-runners doctor" in str(network[0].entry.data)
    quota = annotations.find_warning(
        "*", Match.string_like_regexp("add up to 8000 On-Demand vCPUs, above the default")
    )
    assert len(quota) == 1
    assert FARGATE_QUOTA_WARNING in str(quota[0].entry.data)
    assert "L-3032A538" in str(quota[0].entry.data)
