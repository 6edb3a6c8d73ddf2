"""The runner network: VPC (new or given), subnets, security groups, VPC endpoints.

One part of :class:`~fargate_runners.construct.FargateRunners`: :class:`Network` builds
its resources in the construct's own scope (``runners``), so logical ids do not depend on
how the code is split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Annotations, CfnResource, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from .config import ConfigError, Problem, RunnerProfile
from .lambdas import LogGroups
from .props import FargateRunnersProps

#: The description of every stack-created runner group: a changed description replaces a
#: security group, so the one that existed before per-profile groups keeps this text.
RUNNER_GROUP_DESCRIPTION = "GitHub Actions runner tasks: egress only, no inbound access"
#: The CDK warning when a restricted profile's tasks share a subnet with an unrestricted one.
SHARED_SUBNETS_WARNING = "fargate-runners:restrictedProfileSharesSubnets"
#: The CDK warning when synth cannot see whether runner subnets reach GitHub (imported VPC).
NETWORK_UNCHECKED_WARNING = "fargate-runners:networkPathUnchecked"

#: The stack-wide provider CDK adds for ``@aws-cdk/aws-ec2:restrictDefaultSecurityGroup``.
DEFAULT_SG_PROVIDER_ID = "Custom::VpcRestrictDefaultSGCustomResourceProvider"


def _selection_kwargs(selection: ec2.SubnetSelection) -> dict[str, Any]:
    """``SubnetSelection`` as keyword arguments for ``IVpc.select_subnets``."""
    names = (
        "availability_zones", "one_per_az", "subnet_filters", "subnet_group_name",
        "subnets", "subnet_type",
    )  # fmt: skip
    values = {name: getattr(selection, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


class Network:
    """The runner tasks' VPC, subnets and security groups (and VPC endpoints when asked).

    Outputs: :attr:`vpc`, :attr:`subnet_ids`, :attr:`assign_public_ip`, the groups
    (:attr:`security_group`, :attr:`profile_security_groups`,
    :attr:`created_security_groups`, :attr:`endpoint_security_group`), and
    :meth:`admit_to_endpoints` for the groups other parts create.
    """

    def __init__(self, runners: Construct, props: FargateRunnersProps) -> None:
        self.runners = runners
        self.log_groups = LogGroups.of(props)
        #: The VPC endpoints' group, with ``vpc_endpoints`` (else None).
        self.endpoint_security_group: ec2.SecurityGroup | None = None
        created_vpc = props.vpc is None
        self.vpc: ec2.IVpc = self._vpc(props)
        self.subnet_ids: list[str] = self._subnet_ids(props, created_vpc)
        self.assign_public_ip: bool = (
            props.assign_public_ip if props.assign_public_ip is not None else created_vpc
        )
        self._check_egress(props, created_vpc)
        self._security_groups(props.profiles)
        self._warn_shared_subnets(props.profiles)
        if props.vpc_endpoints:
            self._vpc_endpoints(props)

    def _default_sg_provider_logs(self) -> None:
        """Give CDK's default-security-group Lambda a log group of this stack.

        With ``@aws-cdk/aws-ec2:restrictDefaultSecurityGroup`` a new VPC gets a custom
        resource whose provider Lambda (one per stack, outside this construct) strips the
        default security group's rules on create and runs again on delete. Without a
        logging configuration Lambda writes to ``/aws/lambda/<function name>``, a group
        CloudWatch creates on the first invocation, outside the stack and without expiry
        (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-loggroups.html),
        so it would outlive ``cdk destroy``. Its ``LoggingConfig.LogGroup`` now names a
        group with the configured retention and removal policy; the Lambda depends on the
        group, so CloudFormation deletes the group after the Lambda's last run. Its role
        (CDK's, with ``AWSLambdaBasicExecutionRole``) may write to any group.
        """
        provider = Stack.of(self.runners).node.try_find_child(DEFAULT_SG_PROVIDER_ID)
        if provider is None or provider.node.try_find_child("Logs") is not None:
            return  # flag off, or another instance in this stack did it already
        handler = provider.node.find_child("Handler")
        if not (isinstance(provider, Construct) and isinstance(handler, CfnResource)):
            raise TypeError(f"{DEFAULT_SG_PROVIDER_ID} changed shape in this CDK version")
        group = self.log_groups.create(provider, "Logs")
        handler.add_property_override("LoggingConfig", {"LogGroup": group.log_group_name})

    def _vpc(self, props: FargateRunnersProps) -> ec2.IVpc:
        if props.vpc is None:
            flow_log_group = self.log_groups.create(self.runners, "VpcFlowLogs")
            vpc = ec2.Vpc(
                self.runners,
                "Vpc",
                max_azs=2,
                nat_gateways=0,
                # CDK's defaults, stated: AWS resolves an interface endpoint's private DNS
                # name only in a VPC with both (vpc_endpoints, docs/networks.md).
                enable_dns_hostnames=True,
                enable_dns_support=True,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20
                    )
                ],
                flow_logs={
                    "FlowLogs": ec2.FlowLogOptions(
                        destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                        traffic_type=ec2.FlowLogTrafficType.ALL,
                    )
                },
            )
            self._default_sg_provider_logs()
            return vpc
        return props.vpc

    def _subnet_ids(self, props: FargateRunnersProps, created_vpc: bool) -> list[str]:
        selection = props.vpc_subnets
        if props.subnet_ids and selection is not None:
            raise ValueError("give either subnet_ids or vpc_subnets, not both")
        if props.subnet_ids:
            subnet_ids = list(props.subnet_ids)
        elif selection is not None and selection.subnets:
            # Explicit subnets (e.g. Subnet.from_subnet_id): no AZ lookup needed.
            subnet_ids = [subnet.subnet_id for subnet in selection.subnets]
        else:
            if selection is None and created_vpc:
                selection = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
            selected = (
                self.vpc.select_subnets(**_selection_kwargs(selection))
                if selection is not None
                else self.vpc.select_subnets()
            )
            subnet_ids = list(selected.subnet_ids)
        if not subnet_ids:
            raise ValueError("the subnet selection for runner tasks is empty")
        return subnet_ids

    def _check_egress(self, props: FargateRunnersProps, created_vpc: bool) -> None:
        """Runner tasks must reach GitHub and their image registry: refuse what cannot.

        A task reaches the internet through a NAT gateway (private subnet) or an internet
        gateway with a public IP (public subnet): "If you're using a public subnet, you must
        assign a public IP address to the task's ENI" and isolated subnets have "no route to
        the internet" (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
        fargate-task-networking.html; CDK's ``SubnetType``). Synth knows the subnet types only
        of a VPC built in this app (``ec2.Vpc``); the stack's own VPC is public-only and
        ``assign_public_ip: false`` is refused with the config. For any other VPC (imported,
        looked up, or per-profile ``subnet_ids``) a warning points at ``fargate-runners
        doctor``, which reads the route tables (runners_cli/network_checks.py).
        """
        vpc = self.vpc
        if created_vpc:
            return
        per_profile = [p.name for p in props.profiles if p.subnet_ids]
        if not isinstance(vpc, ec2.Vpc):
            Annotations.of(self.runners).add_warning_v2(
                NETWORK_UNCHECKED_WARNING,
                "runner tasks run in an existing VPC whose routes synth cannot see: if their "
                "subnets have no NAT gateway (or public IP with an internet gateway), proxy "
                "or VPC endpoints, every job stays queued. After deploying, run "
                "fargate-runners doctor: it reads each profile's route tables and endpoints",
            )
            return
        if per_profile:
            Annotations.of(self.runners).add_warning_v2(
                NETWORK_UNCHECKED_WARNING,
                f"profiles {', '.join(per_profile)} have subnet_ids of their own, whose routes "
                "synth cannot see: after deploying, run fargate-runners doctor",
            )
        kinds = {
            **{s.subnet_id: "public" for s in vpc.public_subnets},
            **{s.subnet_id: "private" for s in vpc.private_subnets},
            **{s.subnet_id: "isolated" for s in vpc.isolated_subnets},
        }
        chosen = {kinds.get(subnet, "unknown") for subnet in self.subnet_ids}
        problems = []
        if "isolated" in chosen and not props.vpc_endpoints:
            problems.append(
                Problem(
                    "vpc_subnets",
                    "selects isolated subnets (no route to the internet, no VPC endpoints): "
                    "runner tasks could neither pull their image nor reach GitHub; select "
                    "subnets with a NAT gateway (SubnetType.PRIVATE_WITH_EGRESS), or public "
                    "subnets with assign_public_ip=True",
                )
            )
        if "public" in chosen and not props.assign_public_ip:
            problems.append(
                Problem(
                    "assign_public_ip",
                    f"{props.assign_public_ip!r} with public subnets in vpc_subnets: a task "
                    "without a public IP has no route out of a public subnet (no NAT "
                    "there); set assign_public_ip=True, or select private subnets with a "
                    "NAT gateway (SubnetType.PRIVATE_WITH_EGRESS)",
                )
            )
        if problems:
            raise ConfigError(problems)
        if "isolated" in chosen:
            Annotations.of(self.runners).add_warning_v2(
                NETWORK_UNCHECKED_WARNING,
                "runner subnets are isolated: the VPC endpoints serve AWS, but GitHub needs a "
                "proxy or a GitHub Enterprise Server inside the VPC (docs/networks.md)",
            )

    def _security_groups(self, profiles: Sequence[RunnerProfile]) -> None:
        """A network identity per profile: its own security group(s).

        Subnets of one VPC route to each other, so what a target (a database, an internal
        API) can tell callers apart by is the security group. Each profile's tasks get a
        group of their own (or the operator's ``security_group_ids``), so a target can admit
        the deploy profile and nobody else. The group that existed before (logical id
        ``RunnerSecurityGroup``) stays, unchanged, as the group of the profile named
        ``default`` (else the first profile): upgrading replaces nothing, and it remains
        ``SECURITY_GROUP_IDS``, the Lambda's fallback. Egress is what it was (all outbound:
        GitHub, registries and AWS APIs over HTTPS); no group has inbound rules.
        """
        #: The group that predates per-profile groups (logical id ``RunnerSecurityGroup``):
        #: the ``default`` profile's, and the Lambda's fallback ``SECURITY_GROUP_IDS``.
        self.security_group = ec2.SecurityGroup(
            self.runners,
            "RunnerSecurityGroup",
            vpc=self.vpc,
            description=RUNNER_GROUP_DESCRIPTION,
            allow_all_outbound=True,
        )
        owner = next((p for p in profiles if p.name == "default"), profiles[0]).name
        #: Each profile's runner-task groups.
        self.profile_security_groups: dict[str, list[ec2.ISecurityGroup]] = {}
        #: Groups this stack created, which the teardown waits for (tasks use them).
        self.created_security_groups: list[ec2.SecurityGroup] = [self.security_group]
        for profile in profiles:
            if profile.security_group_ids:
                self.profile_security_groups[profile.name] = [
                    ec2.SecurityGroup.from_security_group_id(
                        self.runners, f"SecurityGroup-{profile.name}-{i}", group_id, mutable=False
                    )
                    for i, group_id in enumerate(profile.security_group_ids)
                ]
                continue
            if profile.name == owner:
                group = self.security_group
            else:
                group = ec2.SecurityGroup(
                    self.runners,
                    f"SecurityGroup-{profile.name}",
                    vpc=self.vpc,
                    description=f"GitHub Actions runner tasks of profile {profile.name}: "
                    "egress only, no inbound access",
                    allow_all_outbound=True,
                )
                self.created_security_groups.append(group)
            self.profile_security_groups[profile.name] = [group]

    def security_groups(self, profile: str) -> list[ec2.ISecurityGroup]:
        """The security groups of ``profile``'s runner tasks: what a target admits to let
        exactly that profile in (e.g. ``db.connections.allow_from(group, port)``)."""
        try:
            return list(self.profile_security_groups[profile])
        except KeyError:
            raise KeyError(f"no profile named {profile!r}") from None

    def _warn_shared_subnets(self, profiles: Sequence[RunnerProfile]) -> None:
        """Warn (a CDK annotation) when a restricted profile shares a subnet with an open one.

        Security groups tell a target who is calling, but nothing stops an unrestricted job
        from scanning or attacking what routes from its subnet; a deploy network belongs in
        subnets of its own behind a NACL, or in a separate VPC (docs/networks.md).
        A managed-steps profile counts as restricted: its step tasks hold the deploy role.
        """

        def subnets(profile: RunnerProfile) -> set[str]:
            # The stack's subnets may be tokens: one subnet's token is one string.
            return set(profile.subnet_ids or self.subnet_ids)

        guarded = [p for p in profiles if p.policy.restricted or p.managed_steps]
        open_ = [p for p in profiles if not (p.policy.restricted or p.managed_steps)]
        for restricted in guarded:
            for other in open_:
                shared = subnets(restricted) & subnets(other)
                if shared:
                    Annotations.of(self.runners).add_warning_v2(
                        SHARED_SUBNETS_WARNING,
                        f"profile {restricted.name!r} (restricted) runs in the same subnets as "
                        f"unrestricted profile {other.name!r}: its own security group tells "
                        "targets apart, but any job of that profile can reach whatever the "
                        "subnets route to. Give the restricted profile subnet_ids of its own, "
                        "behind a NACL, or a separate VPC (docs/networks.md)",
                    )

    def _vpc_endpoints(self, props: FargateRunnersProps) -> None:
        """What a Fargate task needs in private subnets without NAT, besides GitHub.

        Pulling from ECR needs ``ecr.api``, ``ecr.dkr`` and S3 (image layers) through a
        gateway endpoint; the awslogs driver needs ``logs``; ECS secrets need
        ``secretsmanager`` (https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html,
        https://repost.aws/knowledge-center/ecs-fargate-docker-timeout-error). STS is not
        needed to start a task; it is for jobs that assume roles. Runners still need a
        route to GitHub (NAT, proxy or GitHub Enterprise Server inside the VPC).
        """
        # The construct's own VPC, or no route tables, never get here: FargateRunnersProps
        # refuses both (fargate_runners/config.py, _network_problems).
        if isinstance(self.vpc, ec2.Vpc) and not (
            self.vpc.dns_hostnames_enabled and self.vpc.dns_support_enabled
        ):
            # A VPC built in the same app says; an imported one (vpc_id) cannot: doctor asks
            # EC2 (DescribeVpcAttribute). Interface endpoints' private DNS needs both
            # attributes (PrivateDnsEnabled in
            # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVpcEndpoint.html).
            raise ValueError(
                f"vpc_endpoints: VPC {self.vpc.node.path} has enable_dns_hostnames="
                f"{self.vpc.dns_hostnames_enabled} and enable_dns_support="
                f"{self.vpc.dns_support_enabled}; private DNS of the endpoints needs both: "
                "set both to True on the VPC"
            )
        endpoint_group = ec2.SecurityGroup(
            self.runners,
            "VpcEndpointSecurityGroup",
            vpc=self.vpc,
            description="VPC interface endpoints: HTTPS from runner tasks only",
            allow_all_outbound=False,
        )
        self.endpoint_security_group = endpoint_group
        for name, groups in self.profile_security_groups.items():
            for group in groups:
                self.admit_to_endpoints(group, f"HTTPS from runner tasks of profile {name}")
        imported = [
            ec2.Subnet.from_subnet_id(self.runners, f"EndpointSubnet{i}", subnet_id)
            for i, subnet_id in enumerate(self.subnet_ids)
        ]
        for subnet in imported:
            # Interface endpoints need no route table; the S3 gateway endpoint is given
            # vpc_endpoint_route_table_ids explicitly below.
            Annotations.of(subnet).acknowledge_warning(
                "@aws-cdk/aws-ec2:noSubnetRouteTableId",
                "route tables come from vpc_endpoint_route_table_ids",
            )
        subnets = ec2.SubnetSelection(subnets=imported)
        services = {
            "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
            "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
            "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
            "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
            "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
        }
        if any(profile.managed_steps for profile in props.profiles):
            # The managed-steps hook in the runner task calls ECS (RunTask, DescribeTasks).
            services["Ecs"] = ec2.InterfaceVpcEndpointAwsService.ECS
        for name, service in services.items():
            ec2.InterfaceVpcEndpoint(
                self.runners,
                f"{name}Endpoint",
                vpc=self.vpc,
                service=service,
                subnets=subnets,
                security_groups=[endpoint_group],
                private_dns_enabled=True,
                open=False,
            )
        ec2.CfnVPCEndpoint(
            self.runners,
            "S3Endpoint",
            vpc_id=self.vpc.vpc_id,
            service_name=ec2.GatewayVpcEndpointAwsService.S3.name,
            vpc_endpoint_type="Gateway",
            route_table_ids=list(props.vpc_endpoint_route_table_ids),
        )
        if any(profile.policy.restricted for profile in props.profiles):
            # A restricted profile's job-started hook reads its admission record from
            # DynamoDB (docs/admission.md); a gateway endpoint, like S3's, is free
            # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/vpc-endpoints-dynamodb.html).
            ec2.CfnVPCEndpoint(
                self.runners,
                "DynamoDbEndpoint",
                vpc_id=self.vpc.vpc_id,
                service_name=ec2.GatewayVpcEndpointAwsService.DYNAMODB.name,
                vpc_endpoint_type="Gateway",
                route_table_ids=list(props.vpc_endpoint_route_table_ids),
            )

    def admit_to_endpoints(self, group: ec2.ISecurityGroup, description: str) -> None:
        """HTTPS from ``group`` to the VPC endpoints (when the stack creates them)."""
        endpoints = self.endpoint_security_group
        if endpoints is None:
            return
        if group is self.security_group:
            # Today's rule, unchanged (an edited description would replace it).
            description = "HTTPS from runner tasks"
        endpoints.add_ingress_rule(group, ec2.Port.tcp(443), description)
