"""The construct's props get the cdk.json checks, and ``cdk synth`` prints them plainly."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs

from fargate_runners.config import (
    SHARED_FIELDS,
    ConfigError,
    ConstructSettings,
    RunnerProfile,
    RunnersConfig,
    load_config,
)
from fargate_runners.construct import FargateRunners, FargateRunnersProps
from fargate_runners.props import DEPRECATED_PROPS
from tests.kit.infra import NO_BUNDLING, REPO_ROOT

pytestmark = pytest.mark.infra

PROFILE = RunnerProfile(name="default", labels=("self-hosted", "linux"))
DEPLOY = {"name": "deploy", "labels": ["self-hosted", "linux", "deploy"]}


def props_problems(**props: Any) -> list[str]:
    props.setdefault("profiles", [PROFILE])
    with pytest.raises(ConfigError) as caught:
        FargateRunnersProps(**props)
    return [str(problem) for problem in caught.value.problems]


def context_problems(context: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    return [str(problem) for problem in caught.value.problems]


def test_an_http_github_url_fails_in_the_construct_as_in_cdk_json() -> None:
    """Before, the construct synthesized it and the Lambda sent the token in clear."""
    url = "http://ghe.example.com/api/v3"
    assert props_problems(github_api_url=url) == context_problems({"github_api_url": url})
    assert props_problems(github_api_url=url)[0].startswith(f"github_api_url: {url!r} must be")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("allowed_repositories", ["acme.org/app"]),
        ("runner_scope", "enterprise"),
        ("runner_group_id", 0),
        ("webhook_source_cidrs", ["0.0.0.0/0"]),
        ("webhook_rate_limit", 5),
        ("github_hook_path", "octo/app"),
        ("retry_max_attempts", 0),
        ("api_gateway_logging", "on"),
        ("assign_public_ip", False),
        ("vpc_endpoints", True),
        (
            "profiles",
            [{**DEPLOY, "allowed_refs": ["refs/heads/main"]}, {"name": "d", "labels": ["linux"]}],
        ),
        ("profiles", [{**DEPLOY, "allowed_events": []}]),
        ("profiles", [{**DEPLOY, "image": "Ubuntu"}]),
    ],
)
def test_props_fail_with_the_cdk_json_message(key: str, value: Any) -> None:
    """Same rules, same words (the props call ``vpc_id`` ``vpc``): one model validates both."""
    expected = [line.replace("vpc_id", "vpc") for line in context_problems({key: value})]
    assert props_problems(**{key: value}) == expected


def test_props_errors_use_the_props_names() -> None:
    assert props_problems(webhook_throttle_rate=0) == ["webhook_throttle_rate: 0 must be > 0"]
    assert props_problems(log_retention_days=31)[0].startswith(
        "log_retention_days: 31 is not a CloudWatch Logs retention value"
    )
    assert props_problems(log_removal_policy="keep") == [
        "log_removal_policy: 'keep' is not one of destroy, retain"
    ]
    assert props_problems(reconcile_interval_minutes=61) == [
        "reconcile_interval_minutes: 61 is outside 1..60"
    ]
    (problem,) = props_problems(subnet_ids=["subnet-01234567"])
    assert problem == "vpc: is required when subnet_ids is set"
    (problem,) = props_problems(assign_public_ip=False)
    assert "set vpc and subnet_ids" in problem


def test_one_name_per_setting_from_cdk_json_to_the_props() -> None:
    """Each setting cdk.json shares with the props has the same name and default in both,
    and the props validate every one of them (no rename table, issue 26)."""
    defaults = {
        f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        for f in dataclasses.fields(FargateRunnersProps)
        if f.name != "profiles"  # required in the props, one default profile in cdk.json
    }
    for name in SHARED_FIELDS:
        if name != "profiles":
            assert defaults[name] == RunnersConfig.model_fields[name].default, name
    assert set(SHARED_FIELDS) <= set(ConstructSettings.model_fields)
    assert dict(ConstructSettings.KEY_NAMES) == {"vpc_id": "vpc"}


#: Each deprecated prop with a non-default value, and the same value by its new name.
OLD_AND_NEW: list[tuple[str, Any, str, Any]] = [
    ("throttling_rate_limit", 5.5, "webhook_throttle_rate", 5.5),
    ("throttling_burst_limit", 11, "webhook_throttle_burst", 11),
    ("log_retention", logs.RetentionDays.TWO_WEEKS, "log_retention_days", 14),
    ("log_removal_policy", RemovalPolicy.RETAIN, "log_removal_policy", "retain"),
    ("reconcile_interval", Duration.minutes(15), "reconcile_interval_minutes", 15),
]


def test_every_deprecated_name_is_covered() -> None:
    assert {old for old, *_ in OLD_AND_NEW} == {*DEPRECATED_PROPS, "log_removal_policy"}


@pytest.mark.parametrize(("old", "value", "new", "converted"), OLD_AND_NEW)
def test_a_deprecated_name_warns_and_sets_its_replacement(
    old: str, value: Any, new: str, converted: Any
) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*give {new}") as caught:
        props = FargateRunnersProps(profiles=[PROFILE], **{old: value})
    assert len(caught) == 1
    assert caught[0].filename == __file__  # stacklevel points at the caller
    assert getattr(props, new) == converted
    assert old == new or getattr(props, old) is None


def test_the_new_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FargateRunnersProps(profiles=[PROFILE], **{new: v for *_, new, v in OLD_AND_NEW})


@pytest.mark.parametrize(("old", "value", "new", "converted"), OLD_AND_NEW[:3] + OLD_AND_NEW[4:])
def test_an_old_and_a_new_name_together_fail_in_one_line(
    old: str, value: Any, new: str, converted: Any
) -> None:
    (problem,) = props_problems(**{old: value, new: converted})
    assert problem.startswith(f"{old}: ")
    assert f"{new}={converted!r} both given" in problem
    assert problem.endswith(f"give {new} only")


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"throttling_rate_limit": 0}, "webhook_throttle_rate: 0 must be > 0"),
        (
            {"log_retention": logs.RetentionDays.INFINITE},
            "log_retention: RetentionDays.INFINITE has no log_retention_days equivalent",
        ),
        (
            {"log_removal_policy": RemovalPolicy.SNAPSHOT},
            "log_removal_policy: RemovalPolicy.SNAPSHOT is not a log group removal policy",
        ),
        ({"reconcile_interval": Duration.seconds(90)}, "reconcile_interval: '1 minute 30 sec"),
        ({"reconcile_interval": Duration.hours(2)}, "reconcile_interval_minutes: 120 is outside"),
    ],
)
def test_a_deprecated_value_gets_the_same_validation(props: dict[str, Any], expected: str) -> None:
    with pytest.warns(DeprecationWarning):
        (problem,) = props_problems(**props)
    assert problem.startswith(expected)


def embedded_template(**props: Any) -> dict[str, Any]:
    stack = cdk.Stack(cdk.App(context=NO_BUNDLING), "Platform")
    FargateRunners(stack, "Ci", FargateRunnersProps(profiles=[PROFILE], **props))
    return cdk.assertions.Template.from_stack(stack).to_json()


def test_the_deprecated_names_synthesize_the_same_template() -> None:
    with pytest.warns(DeprecationWarning):
        old = embedded_template(**{o: v for o, v, *_ in OLD_AND_NEW})
    new = embedded_template(**{n: v for *_, n, v in OLD_AND_NEW})
    assert old == new
    stages = [r for r in new["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"]
    (settings,) = stages[0]["Properties"]["MethodSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (5.5, 11)
    groups = [r for r in new["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert {g["Properties"]["RetentionInDays"] for g in groups} == {14}
    assert "Retain" in {g["DeletionPolicy"] for g in groups}
    rules = [r["Properties"] for r in new["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert "rate(15 minutes)" in {r.get("ScheduleExpression") for r in rules}


def test_props_accept_profile_objects_or_dicts_and_hold_validated_profiles() -> None:
    props = FargateRunnersProps(profiles=[{"name": "a", "labels": "self-hosted,linux"}])
    assert props.profiles == (RunnerProfile(name="a", labels=("self-hosted", "linux")),)


def test_an_existing_vpc_allows_no_public_ip() -> None:
    stack = cdk.Stack(cdk.App(context=NO_BUNDLING), "Net")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=1)
    props = FargateRunnersProps(profiles=[PROFILE], vpc=vpc, assign_public_ip=False)
    assert props.assign_public_ip is False


@pytest.mark.parametrize(
    ("props", "fragment"),
    [
        ({"runner_name_prefix": "CI_Runners"}, "runner_name_prefix: 'CI_Runners' must be 1-20"),
        ({"runner_name_prefix": "r" * 21}, "must be 1-20 lower-case"),
        ({"name_prefix": "ci_runners"}, "name_prefix: 'ci_runners' must be letters, digits"),
        ({"name_prefix": "r" * 197}, "the JIT config secret prefix"),
    ],
)
def test_names_the_lambda_would_refuse_fail_in_the_props(
    props: dict[str, Any], fragment: str
) -> None:
    (problem,) = props_problems(**props)
    assert fragment in problem


def test_a_name_prefix_too_long_for_the_waf_metrics_fails_at_synth() -> None:
    stack = cdk.Stack(cdk.App(context=NO_BUNDLING), "Long")
    props = FargateRunnersProps(profiles=[PROFILE], name_prefix="n" * 120)  # fine alone
    with pytest.raises(ConfigError, match=r"^name_prefix: 'n+' is 120 characters: the WAF"):
        FargateRunners(stack, "Runners", props)


# -- cdk synth ------------------------------------------------------------------------


def synth(context: dict[str, Any], outdir: Path) -> subprocess.CompletedProcess[str]:
    """``python -m cdk.app`` as ``cdk synth`` runs it (the CLI passes context this way)."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({**context, **NO_BUNDLING}),
        "CDK_OUTDIR": str(outdir),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "cdk.app"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_synth_prints_every_problem_one_per_line_without_a_traceback(tmp_path: Path) -> None:
    result = synth(
        {
            "github_api_url": "http://ghe.example.com/api/v3",
            "allowedRepositories": ["octo/app"],
            "profiles": [{**DEPLOY, "allowed_refs": [], "image": "Ubuntu:22.04"}],
        },
        tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert [line.split(":", 1)[0].strip() for line in lines] == [
        "profiles[0].image",
        "profiles[0].allowed_refs",
        "github_api_url",
        "allowedRepositories",
    ]
    assert "configuration: 4 problems" in result.stderr
    assert "did you mean 'allowed_repositories'?" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))
