"""``required_environment``: the policy key, its config validation, its dispatch-only check."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fargate_runners.config import ConfigError, RunnerProfile, load_config
from lambda_fn.policy import (
    RULE_ENVIRONMENT,
    JobFacts,
    Policy,
    PolicyError,
    environment_refusal,
    evaluate,
    policy_from_dict,
    policy_from_json,
)

DEPLOY = {"name": "deploy", "labels": ["self-hosted", "linux", "deploy"]}


def test_the_key_alone_makes_a_restricted_policy_that_round_trips() -> None:
    policy = policy_from_dict("deploy", {"required_environment": "production"})
    assert policy.required_environment == "production"
    assert policy.restricted and policy.deny_fork_pull_requests
    assert policy.to_dict()["required_environment"] == "production"
    assert policy_from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must be non-empty"),
        (" prod", "without surrounding spaces"),
        ("pr\nod", "control"),
        ("x" * 256, "longer than 255 characters"),
        (["prod"], "must be an environment name (a string), got list"),
    ],
)
def test_invalid_names_are_refused_naming_the_key(value: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=r"^profiles\[deploy\]\.required_environment: ") as e:
        policy_from_dict("deploy", {"required_environment": value})
    assert message in str(e.value)


def test_fork_pull_requests_cannot_be_allowed_next_to_it() -> None:
    with pytest.raises(PolicyError, match="deny_fork_pull_requests: cannot be false"):
        policy_from_dict(
            "deploy", {"required_environment": "prod", "deny_fork_pull_requests": False}
        )


@pytest.mark.parametrize(
    ("environment", "allowed"),
    [("production", True), ("Production", True), ("staging", False), (None, False)],
)
def test_environment_refusal(environment: str | None, allowed: bool) -> None:
    policy = Policy(profile="deploy", required_environment="production")
    refusal = environment_refusal(policy, environment)
    assert (refusal is None) is allowed
    if refusal is not None:
        assert refusal.rule == RULE_ENVIRONMENT
        assert "production" in refusal.message


def test_a_policy_without_the_key_never_refuses_on_environment() -> None:
    assert environment_refusal(Policy(profile="p", allowed_events=("push",)), None) is None


def test_the_runner_check_does_not_decide_it() -> None:
    """The runner cannot see the environment (no GITHUB_* variable names it): strict
    evaluation in the runner must not refuse every job of such a profile."""
    policy = Policy(profile="deploy", required_environment="production")
    facts = JobFacts(repository="octo-org/app", event="push", from_fork=False)
    assert evaluate(policy, facts, strict=True).allowed


def test_cdk_json_key_reaches_the_lambda_profile_entry() -> None:
    config = load_config({"profiles": [{**DEPLOY, "required_environment": "production"}]})
    (profile,) = config.profiles
    entry = profile.lambda_entry("arn:td", "runner", "AROA")
    assert entry["policy"]["required_environment"] == "production"
    assert json.loads(json.dumps(entry))["policy"]["deny_fork_pull_requests"] is True


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "must be non-empty"),
        (7, "7 is not a string (the name of a GitHub environment, e.g. production)"),
        ("x" * 300, "longer than 255 characters"),
    ],
)
def test_cdk_json_errors_name_key_value_and_fix(value: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"profiles": [{**DEPLOY, "required_environment": value}]})
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith("profiles[0].required_environment: ")
    assert fragment in problem


def test_the_construct_prop_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^required_environment: "):
        RunnerProfile(name="deploy", labels=("x",), required_environment=" prod ")
