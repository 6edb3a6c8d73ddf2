"""``FargateRunners`` dropped into someone else's app, without the stack or cdk.json."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template

from fargate_runners.config import ConfigError, RunnerProfile
from fargate_runners.construct import FargateRunners, FargateRunnersProps
from fargate_runners.env_size import check_environment_size, measured_size
from lambda_fn.contract import RUNNER_VERSION
from tests.kit.infra import NO_BUNDLING

pytestmark = pytest.mark.infra

CACHE_REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/cache"


@pytest.fixture(scope="module")
def embedded() -> tuple[FargateRunners, dict[str, Any]]:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Platform")
    vpc = ec2.Vpc(stack, "Network", max_azs=2, nat_gateways=1)
    runners = FargateRunners(
        stack,
        "Ci",
        FargateRunnersProps(
            profiles=[
                RunnerProfile(name="default", labels=("self-hosted", "linux")),
                # An ECR pull-through cache prefix written with a trailing slash.
                RunnerProfile(
                    name="cached",
                    labels=("self-hosted", "linux", "cached"),
                    registry_prefix=f"{CACHE_REGISTRY}/",
                ),
            ],
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
    functions = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["Handler"] != "lambda_fn.refresh_sources.handler"
        and r["Properties"]["Handler"] != "lambda_fn.teardown.handler"
        and r["Properties"]["Handler"] != "lambda_fn.hook_filter.handler"
    ]
    assert len(functions) == 3
    envs = [f["Properties"]["Environment"]["Variables"] for f in functions]
    assert envs[0] == envs[1] == envs[2]
    env = envs[0]
    assert env["ASSIGN_PUBLIC_IP"] == "DISABLED"
    refs = [p["Ref"] for p in env["SUBNET_IDS"]["Fn::Join"][1] if isinstance(p, dict)]
    assert len(refs) == 2
    assert all("PrivateSubnet" in ref for ref in refs)
    # Names derive from the construct's path (plus CDK's hash of it) unless name_prefix is set.
    assert runners.name_prefix == "Platform-Ci-1C46AB23"
    assert runners.task_definitions["default"].family == "Platform-Ci-1C46AB23-runner-default"
    assert runners.task_definitions["cached"].family == "Platform-Ci-1C46AB23-runner-cached"
    assert runners.runner_name_prefix == "platform-ci-1c46ab23"


def test_the_alarm_warning_names_what_a_construct_user_sets(
    embedded: tuple[FargateRunners, dict[str, Any]],
) -> None:
    """A construct user has no cdk.json to edit: the warning names the prop."""
    from aws_cdk.assertions import Annotations, Match

    runners, _ = embedded
    found = Annotations.from_stack(cdk.Stack.of(runners)).find_warning("*", Match.any_value())
    [warning] = [
        str(m.entry.data) for m in found if "NO ALARM REACHES A PERSON" in str(m.entry.data)
    ]
    assert "FargateRunnersProps(alarm_topic=...)" in warning


def test_exposes_its_parts(embedded: tuple[FargateRunners, dict[str, Any]]) -> None:
    runners, _ = embedded
    assert set(runners.task_definitions) == {"default", "cached"}
    assert set(runners.task_roles) == set(runners.execution_roles) == {"default", "cached"}
    for part in (
        runners.cluster, runners.webhook_function, runners.api, runners.webhook_secret,
        runners.github_token_secret, runners.idempotency_table, runners.security_group,
        runners.runner_log_group, runners.retry_function, runners.reconciler_function,
        runners.retry_queue, runners.dead_letter_queue, runners.dashboard,
        runners.reconcile_rule,
    ):  # fmt: skip
        assert part is not None
    roles = {runners.webhook_role, runners.retry_role, runners.reconciler_role}
    assert len(roles) == 3
    assert runners.webhook_url


def test_rejects_duplicate_label_sets() -> None:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Dup")
    profiles = [
        RunnerProfile(name="a", labels=("linux", "x64"), architecture="X86_64"),
        RunnerProfile(name="b", labels=("X64", "Linux"), architecture="X86_64"),
    ]
    with pytest.raises(ConfigError, match=r"^profiles\[1\]\.labels: same label set"):
        FargateRunners(stack, "Runners", FargateRunnersProps(profiles=profiles))


def ecr_pull_resources(template: dict[str, Any], execution_role: str) -> list[Any]:
    return [
        statement["Resource"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": execution_role} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if "ecr:BatchGetImage" in statement["Action"]
    ]


def test_registry_prefix_image(embedded: tuple[FargateRunners, dict[str, Any]]) -> None:
    _, template = embedded
    (task_def,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ECS::TaskDefinition"
        and r["Properties"]["Family"] == "Platform-Ci-1C46AB23-runner-cached"
    ]
    (container,) = task_def["ContainerDefinitions"]
    assert container["Image"] == f"{CACHE_REGISTRY}/actions/actions-runner:{RUNNER_VERSION}"
    role = task_def["ExecutionRoleArn"]["Fn::GetAtt"][0]
    assert len(ecr_pull_resources(template, role)) == 1


def test_registry_prefix_with_trailing_slash_can_pull(
    embedded: tuple[FargateRunners, dict[str, Any]],
) -> None:
    """effective_image strips the trailing '/'; the pull permission must match that image."""
    runners, template = embedded
    role = template_id(runners, runners.execution_roles["cached"])
    assert ecr_pull_resources(template, role) == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":ecr:eu-west-1:123456789012:repository/cache/*",
                ],
            ]
        }
    ]


def template_id(runners: FargateRunners, construct: Any) -> str:
    logical: str = cdk.Stack.of(runners).resolve(construct.node.default_child.logical_id)
    return logical


def test_a_long_stack_name_still_gives_a_runner_name_prefix_the_lambda_accepts() -> None:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Long", stack_name="Platform-Continuous-Integration-Runners")
    runners = FargateRunners(
        stack,
        "Runners",
        FargateRunnersProps(
            profiles=[RunnerProfile(name="a", labels=("self-hosted",))],
            name_prefix=stack.stack_name,
        ),
    )
    assert runners.runner_name_prefix == "platform-continuous"  # 20 characters, no trailing '-'


def test_fifteen_plain_profiles_fit_in_several_parameters() -> None:
    """What the README promises: well beyond the eight the Lambda environment held."""
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Fifteen")
    profiles = [
        RunnerProfile(name=f"profile-{i}", labels=("self-hosted", "linux", f"team-{i}"))
        for i in range(15)
    ]
    runners = FargateRunners(
        stack, "Runners", FargateRunnersProps(profiles=profiles, name_prefix="Fifteen")
    )
    assert len(runners.profile_parameters) >= 2
    assert "RUNNER_PROFILES" not in runners.lambda_environment


def test_size_is_the_compact_json_lambda_measures() -> None:
    """Lambda's error quotes the measured string: ``{"KEY":"value",...}``, UTF-8."""
    assert measured_size({"A": "b"}) == len('{"A":"b"}')
    # JSON inside a value: every quote is escaped, so it costs two bytes.
    assert measured_size({"P": '[{"n":1}]'}) == len('{"P":"[{\\"n\\":1}]"}')
    assert measured_size({"E": "é"}) == len('{"E":"é"}'.encode())


def test_a_token_without_a_sample_fails_closed() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Tokens")
    with pytest.raises(ValueError, match="no size estimate for the token in Lambda variable X"):
        check_environment_size({"X": stack.stack_id}, {})


#: Four restricted profiles behind an imported VPC and token secret, a 20-character
#: stack name (issue 12): summing key and value lengths passed such configurations,
#: which the compact JSON Lambda measures (escaped quotes included) puts over the limit.
def _realistic_profiles() -> list[RunnerProfile]:
    return [
        RunnerProfile(
            name=f"deploy-{stage}",
            labels=("self-hosted", "linux", "arm64", f"deploy-{stage}"),
            allowed_repositories=(
                "octo-org/platform",
                "octo-org/infrastructure-live",
                "octo-org/ops",
            ),
            allowed_refs=("refs/heads/main", "refs/tags/v*"),
            allowed_workflows=(".github/workflows/deploy.yml", ".github/workflows/release.yml"),
            allowed_events=("push", "workflow_dispatch"),
            required_env=("DEPLOY_TOKEN",),
            secrets={
                "DEPLOY_TOKEN": "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:d-AbC123"
            },
        )
        for stage in ("dev", "test", "staging", "prod")
    ]


def test_realistic_configuration_that_filled_the_environment_now_fits() -> None:
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Stack", stack_name="platform-ci-runners1")
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Vpc", vpc_id="vpc-0123456789abcdef0", availability_zones=["a", "b"]
    )
    token = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:ci/github-pat-AbC123"
    runners = FargateRunners(
        stack,
        "Runners",
        FargateRunnersProps(
            profiles=_realistic_profiles(),
            vpc=vpc,
            subnet_ids=("subnet-0123456789abcdef0", "subnet-0fedcba9876543210"),
            github_token_secret=secretsmanager.Secret.from_secret_complete_arn(stack, "Pat", token),
        ),
    )
    assert len(runners.profile_parameters) == 1


def _names(runners: FargateRunners) -> set[str]:
    api_name = cdk.Stack.of(runners).resolve(runners.api.node.default_child.name)  # type: ignore[union-attr]
    return {
        runners.cluster_physical_name,
        f"api:{api_name}",
        runners.jit_secret_prefix,
        runners.service_name,
        runners.runner_name_prefix,
        *(td.family for td in runners.task_definitions.values()),
    }


def test_two_instances_in_one_stack_and_two_stacks_share_no_name() -> None:
    """Every physical name, the runner-name prefix and the metrics service differ."""
    app = cdk.App(context=NO_BUNDLING)
    team = cdk.Stack(app, "Team")
    profiles = [RunnerProfile(name="default", labels=("self-hosted", "linux"))]
    ci = FargateRunners(team, "Ci", FargateRunnersProps(profiles=profiles))
    deploy = FargateRunners(team, "Deploy", FargateRunnersProps(profiles=profiles))
    other = FargateRunners(cdk.Stack(app, "Other"), "Ci", FargateRunnersProps(profiles=profiles))
    app.synth()

    names = [_names(runners) for runners in (ci, deploy, other)]
    assert all(len(n) == 6 for n in names)
    assert not names[0] & names[1]
    assert not names[0] & names[2]
    assert not names[1] & names[2]
    assert ci.runner_name_prefix.startswith("team-ci-")
    assert len(ci.runner_name_prefix) <= 20


@pytest.mark.parametrize("restrict", [True, False])
def test_cdks_default_security_group_lambda_gets_one_log_group_per_stack(restrict: bool) -> None:
    """Two instances with new VPCs share CDK's one provider: one log group, set once."""
    flag = "@aws-cdk/aws-ec2:restrictDefaultSecurityGroup"
    app = cdk.App(context={**NO_BUNDLING, flag: restrict})
    stack = cdk.Stack(app, "Shared")
    profiles = [RunnerProfile(name="default", labels=("self-hosted", "linux"))]
    for name in ("Ci", "Deploy"):
        FargateRunners(stack, name, FargateRunnersProps(profiles=profiles))
    template = Template.from_stack(stack).to_json()["Resources"]
    handlers = [k for k in template if k.startswith("CustomVpcRestrictDefaultSG") and
                template[k]["Type"] == "AWS::Lambda::Function"]  # fmt: skip
    groups = [k for k in template if k.startswith("CustomVpcRestrictDefaultSG") and
              template[k]["Type"] == "AWS::Logs::LogGroup"]  # fmt: skip
    assert len(handlers) == len(groups) == int(restrict)
    for handler, group in zip(handlers, groups, strict=True):
        assert template[handler]["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": group}}
        assert template[group]["DeletionPolicy"] == "Delete"


def test_only_one_instance_may_create_the_region_wide_api_gateway_setting() -> None:
    app = cdk.App(context=NO_BUNDLING)
    profiles = [RunnerProfile(name="default", labels=("self-hosted", "linux"))]
    props = FargateRunnersProps(profiles=profiles, api_gateway_logging="create")
    FargateRunners(cdk.Stack(app, "One"), "Runners", props)
    with pytest.raises(ValueError, match=r"already set by One/Runners.*use 'existing' here"):
        FargateRunners(cdk.Stack(app, "Two"), "Runners", props)
    # 'existing' next to it is fine.
    FargateRunners(
        cdk.Stack(app, "Three"),
        "Runners",
        FargateRunnersProps(profiles=profiles, api_gateway_logging="existing"),
    )


def test_vpc_endpoints_refuse_a_vpc_without_dns_hostnames() -> None:
    """Interface endpoints' private DNS needs enableDnsHostnames and enableDnsSupport: a VPC
    built in the same app says whether it has them (an imported one: doctor asks EC2)."""
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Platform")
    vpc = ec2.Vpc(stack, "Network", max_azs=2, nat_gateways=1, enable_dns_hostnames=False)
    with pytest.raises(ValueError, match=r"vpc_endpoints: VPC Platform/Network has "
                       r"enable_dns_hostnames=False and enable_dns_support=True; .*set both"):  # fmt: skip
        FargateRunners(
            stack,
            "Ci",
            FargateRunnersProps(
                profiles=[RunnerProfile(name="default", labels=("self-hosted", "linux"))],
                vpc=vpc,
                vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                vpc_endpoints=True,
                vpc_endpoint_route_table_ids=("rtb-0123456789abcdef0",),
            ),
        )
