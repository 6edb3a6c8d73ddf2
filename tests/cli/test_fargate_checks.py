"""``doctor``'s network and Fargate-quota checks (runners_cli/fargate_checks.py).

Routes, NAT and internet gateways, endpoints: real EC2 calls against moto. Service Quotas:
moto 5 implements ``GetServiceQuota`` only for ServiceCode ``vpc`` (NoSuchResource for
``fargate``), so the quota answers come from botocore's Stubber on the real client.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from runners_cli import commands
from runners_cli.stack import Aws
from tests.kit.cli import API, REGION, STACK, deploy


class Net:
    """A VPC in moto with one subnet of each kind a runner may be given."""

    def __init__(self) -> None:
        ec2 = boto3.client("ec2", region_name=REGION)
        self.ec2 = ec2
        self.vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=self.vpc)
        self.igw = igw
        self.public = self._subnet("10.7.1.0/24", {"GatewayId": igw})
        alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=self.public, AllocationId=alloc)
        self.nat = nat["NatGateway"]["NatGatewayId"]
        self.private = self._subnet("10.7.2.0/24", {"NatGatewayId": self.nat})
        self.isolated = self._subnet("10.7.3.0/24", None)

    def _subnet(self, cidr: str, target: dict[str, str] | None) -> str:
        subnet = self.ec2.create_subnet(VpcId=self.vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        table = self.ec2.create_route_table(VpcId=self.vpc)["RouteTable"]["RouteTableId"]
        self.ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        if target is not None:
            self.ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **target)
        self.tables = {**getattr(self, "tables", {}), subnet: table}
        return subnet

    def endpoints(self, *services: str) -> None:
        for service in services:
            kind = "Gateway" if service == "s3" else "Interface"
            extra: dict[str, Any] = (
                {"RouteTableIds": [self.tables[self.isolated]]}
                if kind == "Gateway"
                else {"SubnetIds": [self.isolated]}
            )
            self.ec2.create_vpc_endpoint(
                VpcId=self.vpc,
                ServiceName=f"com.amazonaws.{REGION}.{service}",
                VpcEndpointType=kind,
                **extra,
            )


def task_definition(cpu: int) -> str:
    ecs = boto3.client("ecs", region_name=REGION)
    found = ecs.register_task_definition(
        family=f"runner-{cpu}",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu=str(cpu),
        memory=str(cpu * 2),
        containerDefinitions=[{"name": "runner", "image": "x", "essential": True}],
    )
    return str(found["taskDefinition"]["taskDefinitionArn"])


def entry(name: str, *, cpu: int = 1024, max_runners: int = 4, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "labels": [name],
        "task_definition": task_definition(cpu),
        "capacity": "FARGATE",
        "max_runners": max_runners,
        **extra,
    }


def quotas(aws: Aws, values: dict[str, float | None]) -> Stubber:
    """Service Quotas answers, in the order doctor asks (On-Demand, then Spot)."""
    client = boto3.client("service-quotas", region_name=REGION)
    stub = Stubber(client)
    for code, value in values.items():
        params = {"ServiceCode": "fargate", "QuotaCode": code}
        if value is None:
            stub.add_client_error(
                "get_service_quota", "AccessDeniedException", expected_params=params
            )
        else:
            stub.add_response(
                "get_service_quota",
                {"Quota": {"ServiceCode": "fargate", "QuotaCode": code, "Value": value}},
                expected_params=params,
            )
    stub.activate()
    aws._clients["service-quotas"] = client
    return stub


def run_doctor(env: dict[str, str], profiles: list[dict[str, Any]], quota: Any = 4000.0) -> str:
    deploy(function_env={**env, "RUNNER_PROFILES": json.dumps(profiles)})
    aws = Aws(REGION)
    stub = quotas(aws, {"L-3032A538": quota})
    lines: list[str] = []
    commands.doctor(aws, STACK, None, api_url=API, out=lines.append)
    stub.assert_no_pending_responses()
    return "\n".join(lines)


def test_private_subnets_with_a_nat_gateway_pass(aws_env: None) -> None:
    net = Net()
    text = run_doctor({"SUBNET_IDS": net.private}, [entry("default")])
    assert f"PASS  profile default: runner subnets reach GitHub ({net.private} via {net.nat})" in (
        text
    )


def test_a_public_subnet_without_public_ip_fails_with_the_fix(aws_env: None) -> None:
    net = Net()
    text = run_doctor({"SUBNET_IDS": net.public, "ASSIGN_PUBLIC_IP": "DISABLED"}, [entry("d")])
    assert (
        f"FAIL  profile d: runner subnets reach GitHub ({net.public} routes to {net.igw} but "
        "tasks get no public IP)"
    ) in text
    assert "fix: set assign_public_ip to true" in text


def test_a_public_subnet_with_public_ip_passes(aws_env: None) -> None:
    net = Net()
    text = run_doctor({"SUBNET_IDS": net.public}, [entry("e", assign_public_ip=True)])
    assert f"PASS  profile e: runner subnets reach GitHub ({net.public} via {net.igw} with" in text


def test_a_subnet_with_no_default_route_and_no_endpoints_fails(aws_env: None) -> None:
    net = Net()
    text = run_doctor({"SUBNET_IDS": net.private}, [entry("deploy", subnet_ids=[net.isolated])])
    assert (
        f"FAIL  profile deploy: runner subnets reach GitHub ({net.isolated} has no default "
        f"route and VPC {net.vpc} lacks endpoints ecr.api, ecr.dkr, logs, secretsmanager, s3)"
    ) in text
    assert "fix: add a 0.0.0.0/0 route to a NAT gateway" in text


def test_endpoints_without_a_default_route_warn_that_github_needs_a_way(aws_env: None) -> None:
    net = Net()
    net.endpoints("ecr.api", "ecr.dkr", "logs", "secretsmanager", "s3")
    text = run_doctor({"SUBNET_IDS": net.isolated}, [entry("default")])
    assert (
        f"WARN  profile default: runner subnets reach GitHub ({net.isolated} has no default "
        "route; AWS is reached via endpoints)"
    ) in text
    assert "GitHub Enterprise Server in the VPC" in text


@pytest.mark.parametrize(
    ("cpu", "max_runners", "quota", "expected"),
    [
        (
            4096, 16, 40.0,
            "WARN  Fargate On-Demand vCPU quota (L-3032A538) holds max_runners (profiles up "
            "to 64 vCPUs, quota 40: launches beyond the quota fail and jobs wait)\n"
            "      fix: request an increase of L-3032A538 in Service Quotas",
        ),
        (
            8192, 2, 6.0,
            "FAIL  Fargate On-Demand vCPU quota (L-3032A538) holds max_runners (profiles up "
            "to 16 vCPUs, quota 6; one task of default (8 vCPU) is above the quota)",
        ),
        (
            1024, 64, 4000.0,
            "PASS  Fargate On-Demand vCPU quota (L-3032A538) holds max_runners (profiles up "
            "to 64 vCPUs, quota 4000)",
        ),
    ],
)  # fmt: skip
def test_the_account_quota_against_the_profiles_maxima(
    aws_env: None, cpu: int, max_runners: int, quota: float, expected: str
) -> None:
    net = Net()
    env = {"SUBNET_IDS": net.private}
    text = run_doctor(env, [entry("default", cpu=cpu, max_runners=max_runners)], quota=quota)
    assert expected in text


def test_spot_then_on_demand_counts_against_both_quotas(aws_env: None) -> None:
    net = Net()
    deploy(
        function_env={
            "SUBNET_IDS": net.private,
            "RUNNER_PROFILES": json.dumps(
                [entry("spot", capacity="FARGATE_SPOT_THEN_FARGATE", max_runners=8)]
            ),
        }
    )
    aws = Aws(REGION)
    stub = quotas(aws, {"L-3032A538": 4000.0, "L-36FBB829": None})
    lines: list[str] = []
    commands.doctor(aws, STACK, None, api_url=API, out=lines.append)
    stub.assert_no_pending_responses()
    text = "\n".join(lines)
    assert "PASS  Fargate On-Demand vCPU quota (L-3032A538) holds max_runners" in text
    assert (
        "WARN  Fargate Spot vCPU quota (L-36FBB829) holds max_runners (quota unreadable "
        "(AccessDeniedException))"
    ) in text


def test_without_subnets_in_the_deployment_the_network_is_not_judged(aws_env: None) -> None:
    text = run_doctor({}, [entry("default")])
    assert "WARN  profile default: runner subnets reach GitHub (not checked" in text
