"""Environment -> Settings: defaults, and errors that name the variable."""

from __future__ import annotations

import json

import pytest

from lambda_fn.config import ENV_DEFAULTS, load_settings, parse_profiles
from lambda_fn.errors import ConfigError
from tests.kit.settings import MINIMAL, PROFILE


def test_defaults_follow_the_contract() -> None:
    s = load_settings(MINIMAL)
    assert s.github_api_url == "https://api.github.com"
    assert s.assign_public_ip == "DISABLED"
    assert s.runner_scope == "repo"
    assert s.runner_group_id == 1
    assert s.allowed_repositories == ()
    assert s.retry_queue_url is None
    assert s.subnet_ids == ("subnet-1", "subnet-2")
    assert s.profiles[0].name == "default"
    assert s.profiles[0].label_set == frozenset({"self-hosted", "linux"})


def test_unknown_profile_keys_are_kept_not_rejected() -> None:
    env = {
        **MINIMAL,
        "RUNNER_PROFILES": json.dumps([{**PROFILE, "future_key": [1], "cpu": 1024}]),
    }
    assert load_settings(env).profiles[0].extra == {"future_key": [1], "cpu": 1024}


def test_capacity_and_max_runners() -> None:
    env = {
        **MINIMAL,
        "RUNNER_PROFILES": json.dumps(
            [{**PROFILE, "capacity": "FARGATE_SPOT_THEN_FARGATE", "max_runners": 3}]
        ),
    }
    profile = load_settings(env).profiles[0]
    assert (profile.capacity, profile.max_runners) == ("FARGATE_SPOT_THEN_FARGATE", 3)
    assert load_settings(MINIMAL).profiles[0].capacity == "FARGATE"
    assert load_settings(MINIMAL).profiles[0].max_runners is None


def test_ghes_url_is_normalised() -> None:
    s = load_settings({**MINIMAL, "GITHUB_API_URL": "https://ghe.example.com/api/v3/"})
    assert s.github_api_url == "https://ghe.example.com/api/v3"


@pytest.mark.parametrize("name", [k for k, v in ENV_DEFAULTS.items() if v is None])
def test_each_required_variable_is_named_when_missing(name: str) -> None:
    env = {k: v for k, v in MINIMAL.items() if k != name}
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ASSIGN_PUBLIC_IP", "yes", "ENABLED or DISABLED"),
        ("RUNNER_SCOPE", "enterprise", "'repo' or 'org'"),
        ("RUNNER_GROUP_ID", "one", "integer"),
        ("RUNNER_GROUP_ID", "0", "at least 1"),
        ("GITHUB_API_URL", "ftp://x", "http"),
        ("ALLOWED_REPOSITORIES", "justowner", "owner/repo"),
        ("ALLOWED_REPOSITORIES", "a/b/c", "owner/repo"),
        ("RUNNER_PROFILES", "{not json", "not valid JSON"),
        ("RUNNER_PROFILES", "[]", "non-empty"),
        ("RUNNER_PROFILES", '{"name": "x"}', "non-empty JSON array"),
        ("RUNNER_PROFILES", json.dumps([{**PROFILE, "labels": []}]), "RUNNER_PROFILES[0].labels"),
        (
            "RUNNER_PROFILES",
            json.dumps([{**PROFILE, "task_definition": ""}]),
            "[0].task_definition",
        ),
        ("RUNNER_PROFILES", json.dumps([PROFILE, PROFILE]), "[1].name"),
        ("RUNNER_NAME_PREFIX", "Has Spaces", "RUNNER_NAME_PREFIX"),
        ("SUBNET_IDS", " , ", "SUBNET_IDS"),
        ("RUNNER_PROFILES", json.dumps([{**PROFILE, "capacity": "EC2"}]), "[0].capacity"),
        ("RUNNER_PROFILES", json.dumps([{**PROFILE, "max_runners": 0}]), "[0].max_runners"),
        ("RUNNER_PROFILES", json.dumps([{**PROFILE, "max_runners": True}]), "[0].max_runners"),
        ("RETRY_MAX_ATTEMPTS", "0", "RETRY_MAX_ATTEMPTS"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**MINIMAL, name: value})
    assert name.split("[", maxsplit=1)[0] in str(raised.value)
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("3600", "at least 25200"), ("90000", "at most 86400"), ("soon", "must be an integer")],
)
def test_the_de_duplication_window_is_bounded(value: str, problem: str) -> None:
    """At least the reconciler's redelivery look-back (+ its longest interval), at most 24 h."""
    with pytest.raises(ConfigError, match=f"^IDEMPOTENCY_TTL_SECONDS.*{problem}"):
        load_settings({**MINIMAL, "IDEMPOTENCY_TTL_SECONDS": value})


@pytest.mark.parametrize(
    "key",
    ["allowed_repositories", "allowed_refs", "allowed_workflows", "allowed_events", "required_env"],
)
def test_an_empty_restriction_list_fails_closed(key: str) -> None:
    """Not "no restriction": the profile's runners would take any job (issue: fail closed)."""
    profiles = [{**PROFILE, "policy": {"allowed_events": ["push"], key: []}}]
    if key == "allowed_events":
        profiles = [{**PROFILE, "policy": {key: []}}]
    with pytest.raises(
        ConfigError, match=rf"^RUNNER_PROFILES\[0\]\.policy\.{key}: .*omit the key to allow any"
    ):
        load_settings({**MINIMAL, "RUNNER_PROFILES": json.dumps(profiles)})


def test_task_role_id_is_optional_but_checked() -> None:
    """The contract's profile shape has no task_role_id: a profile without it still loads."""
    without = {key: value for key, value in PROFILE.items() if key != "task_role_id"}
    [profile] = parse_profiles(json.dumps([without]))
    assert profile.task_role_id == ""
    with pytest.raises(ConfigError, match="task_role_id must be the task role's unique id"):
        parse_profiles(json.dumps([{**PROFILE, "task_role_id": "not-a-role-id"}]))


def test_profile_runner_group() -> None:
    profiles = [{**PROFILE, "runner_group_id": 7}, {**PROFILE, "name": "b", "labels": ["b"]}]
    env = {**MINIMAL, "RUNNER_SCOPE": "org", "RUNNER_PROFILES": json.dumps(profiles)}
    first, second = load_settings(env).profiles
    assert (first.runner_group_id, second.runner_group_id) == (7, None)


@pytest.mark.parametrize("value", [0, -1, "7", True, 1.5])
def test_profile_runner_group_must_be_a_positive_integer(value: object) -> None:
    profiles = [{**PROFILE, "runner_group_id": value}]
    env = {**MINIMAL, "RUNNER_SCOPE": "org", "RUNNER_PROFILES": json.dumps(profiles)}
    with pytest.raises(ConfigError, match=r"RUNNER_PROFILES\[0\]\.runner_group_id must be"):
        load_settings(env)


def test_profile_runner_group_needs_org_scope() -> None:
    profiles = [{**PROFILE, "runner_group_id": 7}]
    with pytest.raises(ConfigError, match="only for organisation runners"):
        load_settings({**MINIMAL, "RUNNER_PROFILES": json.dumps(profiles)})


KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


def test_the_pat_is_the_default_auth() -> None:
    settings = load_settings(MINIMAL)
    assert (settings.github_auth, settings.github_app_id, settings.github_app_key_arn) == (
        "pat",
        "",
        "",
    )


@pytest.mark.parametrize("app_id", ["123456", "Iv23liABCDEF", "Iv1.0123456789abcdef"])
def test_github_app_auth(app_id: str) -> None:
    env = {**MINIMAL, "GITHUB_AUTH": "APP", "GITHUB_APP_ID": app_id, "GITHUB_APP_KEY_ARN": KEY_ARN}
    settings = load_settings(env)
    assert (settings.github_auth, settings.github_app_id, settings.github_app_key_arn) == (
        "app",
        app_id,
        KEY_ARN,
    )


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"GITHUB_AUTH": "oauth"}, "GITHUB_AUTH"),
        ({"GITHUB_AUTH": "app", "GITHUB_APP_KEY_ARN": KEY_ARN}, "GITHUB_APP_ID"),
        (
            {"GITHUB_AUTH": "app", "GITHUB_APP_ID": "0x1", "GITHUB_APP_KEY_ARN": KEY_ARN},
            "GITHUB_APP_ID",
        ),
        ({"GITHUB_AUTH": "app", "GITHUB_APP_ID": "1"}, "GITHUB_APP_KEY_ARN"),
        (
            {"GITHUB_AUTH": "app", "GITHUB_APP_ID": "1", "GITHUB_APP_KEY_ARN": "alias/app"},
            "GITHUB_APP_KEY_ARN",
        ),
    ],
)
def test_github_app_auth_errors_name_the_variable(extra: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**MINIMAL, **extra})


def test_the_apps_own_webhook_is_a_hook_path() -> None:
    assert load_settings({**MINIMAL, "GITHUB_HOOK_PATH": "app/hook"}).github_hook_path == "app/hook"


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        # What CloudFormation names an SSM parameter the stack does not name.
        ("CFN-RunnersWebhookHookParameter3B1C9E2A-Xy7dZQk2LmNo", True),
        ("/fargate-runners/webhook", True),
        ("has space", False),
        ("no/leading/slash", False),
        ("arn:aws:ssm:us-east-1:123456789012:parameter/x", False),
    ],
)
def test_hook_parameter_names_follow_ssm_naming(name: str, accepted: bool) -> None:
    env = {**MINIMAL, "GITHUB_HOOK_PARAMETER": name}
    if accepted:
        assert load_settings(env).github_hook_parameter == name
    else:
        with pytest.raises(ConfigError, match="GITHUB_HOOK_PARAMETER"):
            load_settings(env)
