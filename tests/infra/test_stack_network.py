"""The synthesized template, the network: the stack's own VPC, runner security groups, private DNS.

Split from ``test_stack.py`` (issue 26); the helpers are in ``tests.kit.stack``."""

from __future__ import annotations

import pytest

from tests.kit.infra import (
    TEST_CONTEXT,
    Synth,
)
from tests.kit.stack import (
    logical_id,
)

pytestmark = pytest.mark.infra


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


def test_the_stacks_own_vpc_resolves_private_dns(main_synth: Synth) -> None:
    """Both DNS attributes (interface endpoints' private DNS needs them: README Networks)."""
    (vpc,) = main_synth.resources("AWS::EC2::VPC").values()
    assert vpc["Properties"]["EnableDnsHostnames"] is True
    assert vpc["Properties"]["EnableDnsSupport"] is True
