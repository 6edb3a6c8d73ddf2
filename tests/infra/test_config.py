"""cdk.json context validation: fast, no synth."""

from __future__ import annotations

from typing import Any

import pytest

from fargate_runners.config import (
    DEFAULT_IMAGE,
    DEFAULT_PROFILE_LABELS,
    PROFILE_KEYS,
    ConfigError,
    RunnerProfile,
    load_config,
)
from lambda_fn.contract import RUNNER_VERSION

pytestmark = pytest.mark.infra

PARTIAL_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pat"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:deploy/token-AbC123"
PROFILE = {"name": "default", "labels": ["self-hosted", "linux"]}


def profiles(*items: dict[str, Any]) -> dict[str, Any]:
    return {"profiles": list(items)}


def test_defaults() -> None:
    config = load_config({})
    assert config.stack_name == "FargateRunners"
    assert config.runner_scope == "repo"
    assert config.runner_group_id == 1
    assert config.allowed_repositories == ()
    assert config.github_api_url == "https://api.github.com"
    assert config.github_token_secret_arn is None
    assert config.vpc_id is None
    assert config.effective_assign_public_ip is True
    assert config.log_retention_days == 30
    assert (config.webhook_throttle_rate, config.webhook_throttle_burst) == (20, 40)
    assert config.retry_max_attempts == 8
    assert (config.alarm_email, config.alarm_topic_arn) == (None, None)
    assert config.runner_idle_timeout_seconds == 900
    assert config.reconcile_interval_minutes == 5
    assert config.github_hook_path is None
    (profile,) = config.profiles
    assert profile == RunnerProfile(name="default", labels=DEFAULT_PROFILE_LABELS)
    assert (profile.cpu, profile.memory, profile.architecture) == (1024, 2048, "ARM64")
    assert (profile.ephemeral_storage_gib, profile.image) == (21, DEFAULT_IMAGE)
    assert (profile.capacity, profile.max_runners) == ("FARGATE", None)
    assert profile.policy.restricted is False
    assert (profile.environment, profile.secrets, profile.task_role_policies) == ({}, {}, ())
    assert (profile.registry_prefix, profile.subnet_ids, profile.assign_public_ip) == (
        None,
        (),
        None,
    )
    assert profile.effective_image == DEFAULT_IMAGE


def test_cdk_json_context_is_valid() -> None:
    import json
    from pathlib import Path

    context = json.loads((Path(__file__).parents[2] / "cdk.json").read_text())["context"]
    assert load_config(context) == load_config({})


def test_cli_string_values_are_parsed() -> None:
    """``cdk synth -c key=value`` passes strings."""
    config = load_config(
        {
            "profiles": '[{"name": "a", "labels": "self-hosted,linux", "cpu": "512",'
            ' "memory": "1024", "architecture": "x86_64"}]',
            "runner_group_id": "3",
            "allowed_repositories": "octo/*, octo/repo",
            "vpc_id": "vpc-0123456789abcdef0",
            "subnet_ids": "subnet-01234567",
            "assign_public_ip": "true",
            "log_retention_days": "7",
            "webhook_throttle_rate": "2.5",
            "webhook_throttle_burst": "5",
        }
    )
    (profile,) = config.profiles
    assert profile.labels == ("self-hosted", "linux")
    assert (profile.cpu, profile.memory, profile.architecture) == (512, 1024, "X86_64")
    assert config.runner_group_id == 3
    assert config.allowed_repositories == ("octo/*", "octo/repo")
    assert config.subnet_ids == ("subnet-01234567",)
    assert config.effective_assign_public_ip is True
    assert config.log_retention_days == 7
    assert config.webhook_throttle_rate == 2.5
    assert config.webhook_throttle_burst == 5


def test_cli_string_values_of_new_keys_are_parsed() -> None:
    config = load_config(
        {
            "profiles": '[{"name": "d", "labels": "x", "capacity": "fargate_spot",'
            ' "max_runners": "3", "allowed_refs": "refs/heads/main,refs/tags/*",'
            ' "assign_public_ip": "false", "subnet_ids": "subnet-01234567"}]',
            "retry_max_attempts": "3",
            "runner_idle_timeout_seconds": "0",
            "reconcile_interval_minutes": "15",
            "github_hook_path": "/repos/octo/app/hooks/1/",
            # A profile's own subnets are in an existing VPC (the stack's own has none yet).
            "vpc_id": "vpc-01234567",
            "subnet_ids": "subnet-0abcdef0",
        }
    )
    (profile,) = config.profiles
    assert (profile.capacity, profile.max_runners) == ("FARGATE_SPOT", 3)
    assert profile.allowed_refs == ("refs/heads/main", "refs/tags/*")
    assert (profile.subnet_ids, profile.assign_public_ip) == (("subnet-01234567",), False)
    assert config.retry_max_attempts == 3
    assert config.runner_idle_timeout_seconds == 0
    assert config.reconcile_interval_minutes == 15
    assert config.github_hook_path == "repos/octo/app/hooks/1"


def test_restricted_profile() -> None:
    """The test stack's deploy profile: its policy is what the Lambda and the runner get."""
    from tests.kit.infra import (
        DEPLOY_POLICY,
        DEPLOY_PROFILE,
        DEPLOY_REGISTRY,
        DEPLOY_SECRET_ARN,
        DEPLOY_STATEMENT,
    )

    config = load_config({"profiles": [DEPLOY_PROFILE]})
    (profile,) = config.profiles
    assert profile.capacity == "FARGATE_SPOT_THEN_FARGATE"
    assert profile.max_runners == 2
    assert profile.secrets == {"DEPLOY_TOKEN": DEPLOY_SECRET_ARN}
    assert profile.task_role_policies == (DEPLOY_STATEMENT,)
    assert profile.policy.restricted
    assert profile.policy.to_dict() == DEPLOY_POLICY
    assert profile.effective_image == f"{DEPLOY_REGISTRY}/actions/actions-runner:{RUNNER_VERSION}"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/actions/actions-runner:2", "R/cache/actions/actions-runner:2"),
        ("ubuntu:22.04", "R/cache/ubuntu:22.04"),
        ("library/ubuntu", "R/cache/library/ubuntu"),
        ("localhost:5000/x:1", "R/cache/x:1"),
        ("localhost/x", "R/cache/x"),
    ],
)
def test_effective_image_replaces_the_registry(image: str, expected: str) -> None:
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    profile = RunnerProfile(
        name="a", labels=("x",), image=image, registry_prefix=f"{registry}/cache/"
    )
    assert profile.effective_image == expected.replace("R", registry, 1)
    assert RunnerProfile(name="a", labels=("x",), image=image).effective_image == image


def test_existing_vpc_defaults_to_no_public_ip() -> None:
    config = load_config({"vpc_id": "vpc-01234567", "subnet_ids": ["subnet-01234567"]})
    assert config.uses_existing_vpc
    assert config.effective_assign_public_ip is False


def test_cdk_keys_are_left_alone() -> None:
    config = load_config(
        {
            "@aws-cdk/core:newStyleStackSynthesis": True,
            "aws:cdk:bundling-stacks": [],
            "acknowledged-issue-numbers": [1],
            "availability-zones:account=1:region=x": ["a"],
        }
    )
    assert config == load_config({})


def test_null_means_default() -> None:
    assert load_config({"github_token_secret_arn": None, "profiles": None}) == load_config({})


def test_profile_keys_are_the_dataclass_fields() -> None:
    assert {
        "name", "labels", "cpu", "memory", "architecture", "ephemeral_storage_gib", "image",
        "capacity", "max_runners",
        "allowed_repositories", "allowed_refs", "allowed_workflows", "allowed_events",
        "required_env", "environment", "secrets", "task_role_policies", "registry_prefix",
        "subnet_ids", "security_group_ids", "assign_public_ip", "runner_group_id", "secrets_kms_key_arns",
        "steps", "step_image", "managed_commands", "step_env", "step_role_policies",
        "step_secrets", "step_cpu", "step_memory",
        "warm_runners", "warm_scope", "warm_days", "warm_hours", "warm_max_age_seconds",
        "tag_protection", "match", "runner_version", "required_environment",
    } == PROFILE_KEYS  # fmt: skip


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("vpc_endpoints", {"vpc_endpoints": True}, "vpc_endpoints: needs vpc_id and subnet_ids"),
    (
        "vpc_endpoint_route_table_ids",
        {"vpc_id": "vpc-01234567", "subnet_ids": "subnet-01234567", "vpc_endpoints": True},
        "vpc_endpoint_route_table_ids: is required with vpc_endpoints",
    ),
    (
        "vpc_endpoint_route_table_ids[0]",
        {
            "vpc_id": "vpc-01234567",
            "subnet_ids": "subnet-01234567",
            "vpc_endpoints": "true",
            "vpc_endpoint_route_table_ids": "subnet-01234567",
        },
        "vpc_endpoint_route_table_ids[0]: 'subnet-01234567' is not a route table id",
    ),
    (
        "vpc_endpoint_route_table_ids",
        {"vpc_endpoint_route_table_ids": ["rtb-01234567"]},
        "vpc_endpoint_route_table_ids: is only used with vpc_endpoints",
    ),
    (
        "log_removal_policy",
        {"log_removal_policy": "keep"},
        "log_removal_policy: 'keep' is not one of destroy, retain",
    ),
    (
        "api_gateway_logging",
        {"api_gateway_logging": "on"},
        "api_gateway_logging: 'on' is not one of off, existing, create",
    ),
    (
        "profiles[0].secrets_kms_key_arns[0]",
        {
            "profiles": [
                {
                    "name": "p",
                    "labels": ["x"],
                    "secrets": {
                        "T": "arn:aws:secretsmanager:us-east-1:123456789012:secret:t-AbC123"
                    },
                    "secrets_kms_key_arns": ["arn:aws:kms:us-east-1:123456789012:alias/mine"],
                }
            ]
        },
        "profiles[0].secrets_kms_key_arns[0]: 'arn:aws:kms:us-east-1:123456789012:alias/mine' is not a KMS key ARN",
    ),
    (
        "profiles[0].secrets_kms_key_arns",
        {
            "profiles": [
                {
                    "name": "p",
                    "labels": ["x"],
                    "secrets_kms_key_arns": [
                        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                    ],
                }
            ]
        },
        "profiles[0].secrets_kms_key_arns: is only used with secrets",
    ),
    (
        "unknown top-level key",
        {"runner_scop": "org"},
        "runner_scop: unknown context key (did you mean 'runner_scope'?)",
    ),
    (
        "unknown profile key",
        profiles(PROFILE, {**PROFILE, "name": "b", "labels": ["x"], "cpus": 1}),
        "profiles[1].cpus: unknown profile key (did you mean 'cpu'?)",
    ),
    (
        "bad memory for cpu",
        profiles(PROFILE, {"name": "b", "labels": ["x"], "cpu": 256, "memory": 3000}),
        "profiles[1].memory: 3000 is not valid with cpu 256 (allowed: 512, 1024, 2048)",
    ),
    (
        "bad memory for big cpu",
        profiles({**PROFILE, "cpu": 4096, "memory": 4096}),
        "profiles[0].memory: 4096 is not valid with cpu 4096 "
        "(allowed: 8192 to 30720 in steps of 1024)",
    ),
    (
        "bad cpu",
        profiles({**PROFILE, "cpu": 300}),
        "profiles[0].cpu: 300 is not a Fargate cpu value",
    ),
    (
        "cpu not int",
        profiles({**PROFILE, "cpu": "lots"}),
        "profiles[0].cpu: 'lots' is not an integer",
    ),
    ("cpu bool", profiles({**PROFILE, "cpu": True}), "profiles[0].cpu: True is not an integer"),
    (
        "empty labels",
        profiles({**PROFILE, "labels": []}),
        "profiles[0].labels: must be a non-empty list",
    ),
    ("missing labels", profiles({"name": "a"}), "profiles[0].labels: is required"),
    ("missing name", profiles({"labels": ["a"]}), "profiles[0].name: is required"),
    (
        "label not string",
        profiles({**PROFILE, "labels": ["a", 3]}),
        "profiles[0].labels[1]: 3 is not a string",
    ),
    (
        "label with space",
        profiles({**PROFILE, "labels": ["a b"]}),
        "profiles[0].labels[0]: 'a b' is not a valid label",
    ),
    (
        "label repeated",
        profiles({**PROFILE, "labels": ["Linux", "linux"]}),
        "profiles[0].labels[1]: 'linux' is repeated",
    ),
    (
        "bad name",
        profiles({**PROFILE, "name": "Big_One"}),
        "profiles[0].name: 'Big_One' must match",
    ),
    ("name too long", profiles({**PROFILE, "name": "a" * 32}), "profiles[0].name:"),
    (
        "duplicate names",
        profiles(PROFILE, {**PROFILE, "labels": ["other"]}),
        "profiles[1].name: duplicate profile name 'default' (also profiles[0].name)",
    ),
    (
        "duplicate label sets",
        profiles(PROFILE, {"name": "b", "labels": ["LINUX", "Self-Hosted"]}),
        "profiles[1].labels: same label set as profiles[0].labels",
    ),
    (
        "bad architecture",
        profiles({**PROFILE, "architecture": "arm"}),
        "profiles[0].architecture: 'arm' is not one of ARM64, X86_64",
    ),
    (
        "storage too small",
        profiles({**PROFILE, "ephemeral_storage_gib": 20}),
        "profiles[0].ephemeral_storage_gib: 20 is outside 21..200",
    ),
    (
        "storage too big",
        profiles({**PROFILE, "ephemeral_storage_gib": 201}),
        "profiles[0].ephemeral_storage_gib: 201 is outside 21..200",
    ),
    ("bad image", profiles({**PROFILE, "image": "has space"}), "profiles[0].image:"),
    ("profile not object", profiles("default"), "profiles[0]: must be an object"),  # type: ignore[arg-type]
    ("empty profiles", {"profiles": []}, "profiles: must be a non-empty list"),
    ("profiles bad json", {"profiles": "[{"}, "profiles: is not valid JSON"),
    (
        "bad scope",
        {"runner_scope": "enterprise"},
        "runner_scope: 'enterprise' is not one of repo, org",
    ),
    ("bad group id", {"runner_group_id": 0}, "runner_group_id: 0 must be >= 1"),
    ("group id not int", {"runner_group_id": "one"}, "runner_group_id: 'one' is not an integer"),
    (
        "repo without owner",
        {"allowed_repositories": ["repo"]},
        "allowed_repositories[0]: 'repo' is not 'owner/repo' or 'owner/*'",
    ),
    (
        "repo wildcard owner",
        {"allowed_repositories": "octo/a,*/b"},
        "allowed_repositories[1]: '*/b' is not",
    ),
    (
        "repo partial wildcard",
        {"allowed_repositories": ["octo/app-*"]},
        "allowed_repositories[0]: 'octo/app-*' is not",
    ),
    (
        "repo too deep",
        {"allowed_repositories": ["a/b/c"]},
        "allowed_repositories[0]: 'a/b/c' is not",
    ),
    ("repo not list", {"allowed_repositories": 5}, "allowed_repositories: 5 is not a list"),
    (
        "http api url",
        {"github_api_url": "http://ghe.example.com/api/v3"},
        "github_api_url: 'http://ghe.example.com/api/v3' must be an https:// URL",
    ),
    (
        "api url no host",
        {"github_api_url": "https://"},
        "github_api_url: 'https://' must be an https:// URL",
    ),
    (
        "partial secret arn",
        {"github_token_secret_arn": PARTIAL_ARN},
        f"github_token_secret_arn: {PARTIAL_ARN!r} is not a complete",
    ),
    (
        "vpc without subnets",
        {"vpc_id": "vpc-01234567"},
        "subnet_ids: is required when vpc_id is set",
    ),
    (
        "subnets without vpc",
        {"subnet_ids": ["subnet-01234567"]},
        "vpc_id: is required when subnet_ids is set",
    ),
    (
        "bad vpc id",
        {"vpc_id": "vpc-xyz", "subnet_ids": ["subnet-01234567"]},
        "vpc_id: 'vpc-xyz' is not a VPC id",
    ),
    (
        "bad subnet id",
        {"vpc_id": "vpc-01234567", "subnet_ids": ["subnet-01234567", "sn-1"]},
        "subnet_ids[1]: 'sn-1' is not a subnet id",
    ),
    (
        "empty subnets",
        {"vpc_id": "vpc-01234567", "subnet_ids": ""},
        "subnet_ids: must list at least one subnet",
    ),
    (
        "repeated subnet",
        {"vpc_id": "vpc-01234567", "subnet_ids": ["subnet-01234567", "subnet-01234567"]},
        "subnet_ids[1]: 'subnet-01234567' is repeated",
    ),
    ("bad public ip flag", {"assign_public_ip": "yes"}, "assign_public_ip: 'yes' is not a boolean"),
    (
        "bad retention",
        {"log_retention_days": 31},
        "log_retention_days: 31 is not a CloudWatch Logs retention value",
    ),
    ("bad rate", {"webhook_throttle_rate": 0}, "webhook_throttle_rate: 0 must be > 0"),
    ("bad burst", {"webhook_throttle_burst": 0}, "webhook_throttle_burst: 0 is outside 1..5000"),
    # -- profile keys added with the retry queue, policies and registries --
    (
        "bad capacity",
        profiles({**PROFILE, "capacity": "SPOT"}),
        "profiles[0].capacity: 'SPOT' is not one of FARGATE, FARGATE_SPOT, "
        "FARGATE_SPOT_THEN_FARGATE",
    ),
    (
        "max_runners zero",
        profiles({**PROFILE, "max_runners": 0}),
        "profiles[0].max_runners: 0 is outside 1..10000",
    ),
    (
        "max_runners not int",
        profiles({**PROFILE, "max_runners": "many"}),
        "profiles[0].max_runners: 'many' is not an integer",
    ),
    (
        "profile repo not owner/repo",
        profiles({**PROFILE, "allowed_repositories": ["octo"]}),
        "profiles[0].allowed_repositories[0]: 'octo' is not 'owner/repo' or 'owner/*'",
    ),
    (
        "ref not full",
        profiles({**PROFILE, "allowed_refs": ["refs/heads/main", "main"]}),
        "profiles[0].allowed_refs[1]: 'main' must be a full ref starting with 'refs/'",
    ),
    (
        "workflow not a path",
        profiles({**PROFILE, "allowed_workflows": ["deploy.yml"]}),
        "profiles[0].allowed_workflows[0]: 'deploy.yml' must be a workflow path starting with "
        "'.github/workflows/'",
    ),
    (
        "workflow with ref",
        profiles({**PROFILE, "allowed_workflows": [".github/workflows/d.yml@main"]}),
        "profiles[0].allowed_workflows[0]: '.github/workflows/d.yml@main' must be a path "
        "without '@ref'",
    ),
    (
        "event wildcard",
        profiles({**PROFILE, "allowed_events": ["push*"]}),
        "profiles[0].allowed_events[0]: 'push*' is not an event name",
    ),
    (
        "required env not provided",
        profiles({**PROFILE, "required_env": ["X"]}),
        "profiles[0].required_env[0]: 'X' is neither in this profile's environment nor its secrets",
    ),
    (
        "required env bad name",
        profiles({**PROFILE, "required_env": ["1X"]}),
        "profiles[0].required_env[0]: '1X' is not an environment variable name",
    ),
    (
        "environment not object",
        profiles({**PROFILE, "environment": ["A=1"]}),
        "profiles[0].environment: ['A=1'] must be an object of NAME: value",
    ),
    (
        "environment reserved name",
        profiles({**PROFILE, "environment": {"GITHUB_TOKEN": "x"}}),
        "profiles[0].environment: 'GITHUB_TOKEN' is not an allowed variable name",
    ),
    (
        "environment empty value",
        profiles({**PROFILE, "environment": {"A": ""}}),
        "profiles[0].environment.A: must not be empty",
    ),
    (
        "secret reserved name",
        profiles({**PROFILE, "secrets": {"RUNNER_X": SECRET_ARN}}),
        "profiles[0].secrets: 'RUNNER_X' is not an allowed variable name",
    ),
    (
        "secret not an arn",
        profiles({**PROFILE, "secrets": {"TOKEN": "token"}}),
        "profiles[0].secrets.TOKEN: 'token' is not a Secrets Manager ARN",
    ),
    (
        "task role policies not list",
        profiles({**PROFILE, "task_role_policies": "arn:aws:iam::aws:policy/X"}),
        "profiles[0].task_role_policies: 'arn:aws:iam::aws:policy/X' must be a list of managed "
        "policy ARNs or IAM statements",
    ),
    (
        "task role policy bad arn",
        profiles({**PROFILE, "task_role_policies": ["arn:aws:iam::aws:role/X"]}),
        "profiles[0].task_role_policies[0]: 'arn:aws:iam::aws:role/X' is not a managed policy ARN",
    ),
    (
        "task role policy not statement",
        profiles({**PROFILE, "task_role_policies": [3]}),
        "profiles[0].task_role_policies[0]: 3 must be a managed policy ARN or an IAM statement",
    ),
    (
        "task role statement with principal",
        profiles(
            {
                **PROFILE,
                "task_role_policies": [
                    {"Action": "s3:GetObject", "Resource": "*", "Principal": "*"}
                ],
            }
        ),
        "profiles[0].task_role_policies[0]: unknown statement keys: Principal",
    ),
    (
        "task role statement bad effect",
        profiles(
            {
                **PROFILE,
                "task_role_policies": [
                    {"Effect": "Maybe", "Action": "s3:GetObject", "Resource": "*"}
                ],
            }
        ),
        "profiles[0].task_role_policies[0].Effect: 'Maybe' must be Allow or Deny",
    ),
    (
        "task role statement without resource",
        profiles({**PROFILE, "task_role_policies": [{"Action": "s3:GetObject"}]}),
        "profiles[0].task_role_policies[0].Resource: is required",
    ),
    (
        "registry prefix with space",
        profiles({**PROFILE, "registry_prefix": "a b"}),
        "profiles[0].registry_prefix: 'a b' is not a registry",
    ),
    (
        "registry prefix empty",
        profiles({**PROFILE, "registry_prefix": ""}),
        "profiles[0].registry_prefix: must not be empty",
    ),
    (
        "profile subnet",
        profiles({**PROFILE, "subnet_ids": ["subnet-01234567", "sn-1"]}),
        "profiles[0].subnet_ids[1]: 'sn-1' is not a subnet id",
    ),
    (
        "profile public ip",
        profiles({**PROFILE, "assign_public_ip": "maybe"}),
        "profiles[0].assign_public_ip: 'maybe' is not a boolean",
    ),
    (
        "profile key typo",
        profiles({**PROFILE, "allowed_ref": ["refs/heads/main"]}),
        "profiles[0].allowed_ref: unknown profile key (did you mean 'allowed_refs'?)",
    ),
    (
        "profile policy-only key",
        profiles({**PROFILE, "deny_fork_pull_requests": False}),
        "profiles[0].deny_fork_pull_requests: unknown profile key",
    ),
    # -- top-level keys added with the retry queue, alarms and the reconciler --
    ("retry attempts zero", {"retry_max_attempts": 0}, "retry_max_attempts: 0 is outside 1..20"),
    ("retry attempts 21", {"retry_max_attempts": 21}, "retry_max_attempts: 21 is outside 1..20"),
    (
        "retry attempts not int",
        {"retry_max_attempts": "x"},
        "retry_max_attempts: 'x' is not an integer",
    ),
    ("alarm email", {"alarm_email": "ops"}, "alarm_email: 'ops' is not an e-mail address"),
    (
        "alarm topic not sns",
        {"alarm_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"},
        "alarm_topic_arn: 'arn:aws:sqs:us-east-1:123456789012:q' is not an SNS topic ARN",
    ),
    (
        "idle timeout negative",
        {"runner_idle_timeout_seconds": -1},
        "runner_idle_timeout_seconds: -1 is outside 0..86400",
    ),
    (
        "idle timeout too long",
        {"runner_idle_timeout_seconds": 86401},
        "runner_idle_timeout_seconds: 86401 is outside 0..86400",
    ),
    (
        "reconcile interval zero",
        {"reconcile_interval_minutes": 0},
        "reconcile_interval_minutes: 0 is outside 1..60",
    ),
    (
        "reconcile interval 61",
        {"reconcile_interval_minutes": 61},
        "reconcile_interval_minutes: 61 is outside 1..60",
    ),
    (
        "hook path id",
        {"github_hook_path": "repos/octo/app/hooks/abc"},
        "github_hook_path: 'repos/octo/app/hooks/abc' must look like repos/OWNER/REPO/hooks/ID",
    ),
    (
        "hook path repo only",
        {"github_hook_path": "octo/app"},
        "github_hook_path: 'octo/app' must look like",
    ),
    (
        "top-level key typo",
        {"alarm_emails": "a@example.com"},
        "alarm_emails: unknown context key (did you mean 'alarm_email'?)",
    ),
    (
        "bad stack name",
        {"stack_name": "1-runners"},
        "stack_name: '1-runners' is not a valid CloudFormation stack name",
    ),
    (
        "two alarm destinations",
        {
            "alarm_email": "ops@example.com",
            "alarm_topic_arn": "arn:aws:sns:us-east-1:123456789012:ops",
        },
        "alarm_email: give alarm_email or alarm_topic_arn, not both",
    ),
]


@pytest.mark.parametrize(
    ("context", "message"),
    [pytest.param(ctx, msg, id=name) for name, ctx, msg in BAD_CONFIGS],
)
def test_bad_config_names_the_key(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(context)
    assert str(excinfo.value).startswith(message), str(excinfo.value)
    assert excinfo.value.key == message.split(":", 1)[0]


def test_runner_profile_validates_direct_use() -> None:
    """Users of the construct build profiles directly: same checks, relative keys."""
    with pytest.raises(ConfigError, match=r"^memory: 512 is not valid with cpu 1024"):
        RunnerProfile(name="a", labels=("x",), memory=512)
    profile = RunnerProfile(name="a", labels=["x", "y"])  # type: ignore[arg-type]
    assert profile.labels == ("x", "y")
    assert profile.label_set == frozenset({"x", "y"})


def test_runner_profile_checks_its_restrictions_directly() -> None:
    with pytest.raises(ConfigError, match=r"^required_env\[0\]: 'X' is neither"):
        RunnerProfile(name="a", labels=("x",), required_env=("X",))
    with pytest.raises(ConfigError, match=r"^allowed_refs\[0\]: 'main' must be a full ref"):
        RunnerProfile(name="a", labels=("x",), allowed_refs=("main",))
    profile = RunnerProfile(name="a", labels=("x",), required_env=("X",), secrets={"X": SECRET_ARN})
    assert profile.policy.required_env == ("X",)


def test_name_in_both_environment_and_secrets_is_rejected() -> None:
    """ECS refuses a task definition whose secret shares a name with an environment variable."""
    with pytest.raises(ConfigError, match=r"^profiles\[0\]\.secrets"):
        load_config(profiles({**PROFILE, "environment": {"A": "1"}, "secrets": {"A": SECRET_ARN}}))


@pytest.mark.parametrize(
    "key",
    ["allowed_repositories", "allowed_refs", "allowed_workflows", "allowed_events", "required_env"],
)
@pytest.mark.parametrize("empty", [[], "", "[]"])
def test_an_empty_restriction_list_is_a_synth_error(key: str, empty: Any) -> None:
    """``[]`` is not "unrestricted": synth names the key and says to omit it."""
    profile = {"name": "deploy", "labels": ["deploy"], "allowed_events": ["push"], key: empty}
    with pytest.raises(ConfigError) as caught:
        load_config({"profiles": [{"name": "default", "labels": ["x"]}, profile]})
    assert caught.value.key == f"profiles[1].{key}"
    assert "omit the key to allow any" in str(caught.value)


def test_profile_runner_group_is_carried_to_the_lambda() -> None:
    config = load_config(
        {
            "runner_scope": "org",
            "profiles": [
                {"name": "deploy", "labels": ["deploy"], "runner_group_id": "12",
                 "allowed_repositories": ["octo-org/app"], "allowed_refs": ["refs/heads/main"]},
                {"name": "default", "labels": ["x"]},
            ],
        }
    )  # fmt: skip
    deploy, default = (p.lambda_entry("arn:td", "runner", "AROAEXAMPLE") for p in config.profiles)
    assert deploy["runner_group_id"] == 12
    assert "runner_group_id" not in default


@pytest.mark.parametrize(("value", "problem"), [(0, "must be >= 1"), ("x", "not an integer")])
def test_profile_runner_group_must_be_a_positive_integer(value: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=rf"^profiles\[0\]\.runner_group_id: .*{problem}"):
        load_config(
            {"runner_scope": "org", "profiles": [{"name": "d", "labels": ["d"],
                                                  "runner_group_id": value}]}
        )  # fmt: skip


def test_profile_runner_group_with_repo_scope_is_refused() -> None:
    """Repository runners have no groups: the binding the operator asked for would not exist."""
    with pytest.raises(ConfigError) as caught:
        load_config({"profiles": [{"name": "d", "labels": ["d"], "runner_group_id": 5}]})
    assert caught.value.key == "profiles[0].runner_group_id"
    assert "set runner_scope to org" in str(caught.value)


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ({"allowed_refs": ["refs/heads/main"]}, "is required for restricted profile 'deploy'"),
        ({"allowed_events": ["push"]}, "is required for restricted profile 'deploy'"),
        (
            {"allowed_refs": ["refs/heads/main"], "allowed_repositories": ["octo-org/*"]},
            "'octo-org/*' admits every repository of the organisation",
        ),
    ],
)
def test_org_scope_restricted_profile_must_name_its_repositories(
    rules: dict[str, Any], fragment: str
) -> None:
    """Issue 23 item 6: at org scope allowed_refs alone admits every repository of the org."""
    profile = {"name": "deploy", "labels": ["deploy"], **rules}
    context = {"runner_scope": "org", "profiles": [{"name": "d", "labels": ["x"]}, profile]}
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    assert caught.value.key == "profiles[1].allowed_repositories"
    assert fragment in caught.value.problem
    assert "\n" not in str(caught.value)
    # The same profile is fine at repo scope (a repository runner serves one repository).
    load_config({**context, "runner_scope": "repo"})


def test_org_scope_restricted_profile_naming_its_repositories_is_accepted() -> None:
    profile = {"name": "deploy", "labels": ["deploy"], "allowed_refs": ["refs/heads/main"],
               "allowed_repositories": ["octo-org/app", "octo-org/infra"]}  # fmt: skip
    config = load_config({"runner_scope": "org", "profiles": [profile]})
    assert config.profiles[0].allowed_repositories == ("octo-org/app", "octo-org/infra")
