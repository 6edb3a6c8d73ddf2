"""cdk.json context validation: fast, no synth."""

from __future__ import annotations

from typing import Any

import pytest

from cdk.config import (
    DEFAULT_IMAGE,
    DEFAULT_PROFILE_LABELS,
    PROFILE_KEYS,
    ConfigError,
    RunnerProfile,
    load_config,
)

pytestmark = pytest.mark.infra

PARTIAL_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pat"
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
    (profile,) = config.profiles
    assert profile == RunnerProfile(name="default", labels=DEFAULT_PROFILE_LABELS)
    assert (profile.cpu, profile.memory, profile.architecture) == (1024, 2048, "ARM64")
    assert (profile.ephemeral_storage_gib, profile.image) == (21, DEFAULT_IMAGE)


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
        "name", "labels", "cpu", "memory", "architecture", "ephemeral_storage_gib", "image"
    } == PROFILE_KEYS  # fmt: skip


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
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
    (
        "bad stack name",
        {"stack_name": "1-runners"},
        "stack_name: '1-runners' is not a valid CloudFormation stack name",
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
