"""``doctor``'s checks of what synth cannot see: each profile's path out, the Fargate quota.

* **Network** (:func:`network_checks`): a runner task reaches GitHub and its registry
  through its subnet's default route, a NAT gateway (private subnet) or an internet
  gateway with a public IP (public subnet): "If you're using a public subnet, you must
  assign a public IP address to the task's ENI"; a private subnet "needs a NAT gateway"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-task-networking.html).
  A subnet's route table is the one associated with it, else the VPC's main route table
  (https://docs.aws.amazon.com/vpc/latest/userguide/VPC_Route_Tables.html). Without a
  default route, interface endpoints for ECR (api, dkr), CloudWatch Logs and Secrets
  Manager plus the S3 gateway endpoint let the task start
  (https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html), but
  GitHub still needs a proxy or a GitHub Enterprise Server in the VPC.
* **Quota** (:func:`quota_checks`): Service Quotas ``GetServiceQuota`` (ServiceCode
  ``fargate``; ``L-3032A538`` On-Demand, ``L-36FBB829`` Spot vCPUs), compared with every
  profile's ``max_runners`` times task vCPUs (``fargate_runners.feasibility``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fargate_runners.feasibility import FARGATE_QUOTA_CODES, pool_totals, pools

Add = Callable[[str, bool, str, str], bool]
Warn = Callable[[str, str, str], None]

#: Interface endpoint services (the last part of ``com.amazonaws.REGION.<x>``) a task needs
#: to start without a default route, and the S3 gateway endpoint for ECR's image layers.
NEEDED_INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
DEFAULT_ROUTE = "0.0.0.0/0"


@dataclass(frozen=True)
class Route:
    """A subnet's default route: ``kind`` is ``nat``, ``igw``, ``other`` or ``none``."""

    kind: str
    target: str = ""


def default_route(ec2: Any, subnet: str, vpc: str) -> Route:
    """The default route of ``subnet``'s route table (its own, else the VPC's main one)."""
    tables = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
    )["RouteTables"]
    if not tables:
        tables = ec2.describe_route_tables(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc]},
                {"Name": "association.main", "Values": ["true"]},
            ]
        )["RouteTables"]
    for table in tables:
        for route in table.get("Routes", []):
            if route.get("DestinationCidrBlock") != DEFAULT_ROUTE:
                continue
            if route.get("State") == "blackhole":
                return Route("none", "a blackhole route")
            if route.get("NatGatewayId"):
                return Route("nat", str(route["NatGatewayId"]))
            gateway = str(route.get("GatewayId") or "")
            if gateway.startswith("igw-"):
                return Route("igw", gateway)
            target = next(
                (str(v) for k, v in route.items() if k.endswith("Id") and v and k != "GatewayId"),
                gateway or "?",
            )
            return Route("other", target)
    return Route("none")


def endpoint_services(ec2: Any, vpc: str) -> set[str]:
    """Short names of the VPC's available endpoints (``ecr.api``, ``s3``...)."""
    found = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    services = set()
    for endpoint in found.get("VpcEndpoints", []):
        if str(endpoint.get("State", "available")).lower() not in ("available", "pending"):
            continue
        name = str(endpoint.get("ServiceName", ""))
        parts = name.split(".")
        services.add(".".join(parts[3:]) if len(parts) > 3 else name)
    return services


def _subnets(entry: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    own = entry.get("subnet_ids")
    if isinstance(own, list) and own:
        return [str(s) for s in own]
    return [s.strip() for s in env.get("SUBNET_IDS", "").split(",") if s.strip()]


def _public_ip(entry: Mapping[str, Any], env: Mapping[str, str]) -> bool:
    value = entry.get("assign_public_ip")
    if isinstance(value, bool):
        return value
    return env.get("ASSIGN_PUBLIC_IP", "DISABLED") == "ENABLED"


def network_checks(
    ec2: Any, env: Mapping[str, str], profiles: Sequence[Mapping[str, Any]], add: Add, warn: Warn
) -> None:
    """One check per profile: every subnet of its tasks has a way out."""
    for entry in profiles:
        name = f"profile {entry.get('name', '?')}: runner subnets reach GitHub"
        subnets = _subnets(entry, env)
        if not subnets:
            warn(name, "not checked: no subnets in the deployed configuration", "cdk deploy")
            continue
        public_ip = _public_ip(entry, env)
        try:
            vpcs = {
                s["SubnetId"]: s["VpcId"]
                for s in ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
            }
        except Exception as exc:  # a missing subnet, or no ec2:Describe* permission
            add(name, False, f"subnets {', '.join(subnets)} unreadable ({_code(exc)})",
                "check the subnet ids, and ec2:DescribeSubnets permission")  # fmt: skip
            continue
        _judge(ec2, name, subnets=subnets, vpcs=vpcs, public_ip=public_ip, add=add, warn=warn)


def _judge(
    ec2: Any,
    name: str,
    *,
    subnets: Sequence[str],
    vpcs: Mapping[str, str],
    public_ip: bool,
    add: Add,
    warn: Warn,
) -> None:
    failed: list[str] = []
    fixes: list[str] = []
    doubts: list[str] = []
    good: list[str] = []
    for subnet in subnets:
        vpc = vpcs.get(subnet, "")
        route = default_route(ec2, subnet, vpc)
        if route.kind == "nat":
            good.append(f"{subnet} via {route.target}")
        elif route.kind == "igw" and public_ip:
            good.append(f"{subnet} via {route.target} with public IP")
        elif route.kind == "igw":
            failed.append(f"{subnet} routes to {route.target} but tasks get no public IP")
            fixes.append(
                "set assign_public_ip to true, or give the profile private subnets whose "
                "default route is a NAT gateway"
            )
        elif route.kind == "other":
            doubts.append(f"{subnet} routes 0.0.0.0/0 to {route.target}")
        else:
            services = endpoint_services(ec2, vpc)
            missing = [s for s in (*NEEDED_INTERFACE_ENDPOINTS, "s3") if s not in services]
            if missing:
                failed.append(
                    f"{subnet} has no default route and VPC {vpc} lacks endpoints "
                    f"{', '.join(missing)}"
                )
                fixes.append(
                    "add a 0.0.0.0/0 route to a NAT gateway to the subnet's route table, or "
                    "use subnets that have one (vpc_endpoints alone does not reach GitHub)"
                )
            else:
                doubts.append(f"{subnet} has no default route; AWS is reached via endpoints")
    if failed:
        add(name, False, "; ".join(failed), "; ".join(dict.fromkeys(fixes)))
    elif doubts:
        warn(
            name,
            "; ".join(doubts),
            "make sure that target (or a proxy, or GitHub Enterprise Server in the VPC) "
            "reaches GitHub over HTTPS",
        )
    else:
        add(name, True, "; ".join(good), "")


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


@dataclass(frozen=True)
class Sized:
    """A deployed profile's size, as :func:`fargate_runners.feasibility.pool_totals` reads it."""

    name: str
    cpu: int
    capacity: str
    effective_max_runners: int


def sized_profiles(ecs: Any, profiles: Iterable[Mapping[str, Any]]) -> list[Sized]:
    """Each profile's task cpu (from its task definition), capacity and max_runners."""
    sized = []
    for entry in profiles:
        definition = ecs.describe_task_definition(taskDefinition=entry["task_definition"])
        sized.append(
            Sized(
                name=str(entry.get("name", "?")),
                cpu=int(definition["taskDefinition"]["cpu"]),
                capacity=str(entry.get("capacity", "FARGATE")),
                effective_max_runners=int(entry.get("max_runners", 1)),
            )
        )
    return sized


def quota_checks(quotas: Any, sized: Sequence[Sized], add: Add, warn: Warn) -> None:
    """Each Fargate vCPU quota in use against the profiles' maxima."""
    for pool, total in pool_totals(sized).items():
        users = [p for p in sized if pool in pools(p.capacity)]
        if not users:
            continue
        kind = "Spot" if pool == "FARGATE_SPOT" else "On-Demand"
        code = FARGATE_QUOTA_CODES[pool]
        name = f"Fargate {kind} vCPU quota ({code}) holds max_runners"
        try:
            answer = quotas.get_service_quota(ServiceCode="fargate", QuotaCode=code)
            quota = float(answer["Quota"]["Value"])
        except Exception as exc:
            warn(name, f"quota unreadable ({_code(exc)})",
                 "allow servicequotas:GetServiceQuota, or read it in the Service Quotas "
                 "console (AWS Fargate)")  # fmt: skip
            continue
        figures = f"profiles up to {total:g} vCPUs, quota {quota:g}"
        too_big = [p for p in users if p.cpu / 1024 > quota]
        increase = (
            f"request an increase of {code} in Service Quotas (AWS Fargate), or lower max_runners"
        )
        if too_big:
            names = ", ".join(f"{p.name} ({p.cpu / 1024:g} vCPU)" for p in too_big)
            add(name, False, f"{figures}; one task of {names} is above the quota", increase)
        elif total > quota:
            warn(name, f"{figures}: launches beyond the quota fail and jobs wait", increase)
        else:
            add(name, True, figures, "")
