"""``github_auth: app``: the KMS key the App's private key is imported into, who may sign with
it (exact statements), and the Lambda settings; the PAT stack is unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from fargate_runners.config import ConfigError, load_config
from tests.kit.infra import NO_BUNDLING, TEST_CONTEXT, Synth, findings, synth
from tests.kit.stack import as_list, logical_id, statements, webhook_env

pytestmark = pytest.mark.infra

APP_CONTEXT: dict[str, Any] = {
    **TEST_CONTEXT,
    **NO_BUNDLING,
    "stack_name": "RunnersApp",
    "github_auth": "app",
    "github_app_id": "123456",
}
EXISTING_KEY = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
#: The dispatching Lambdas and the teardown (registrations). The source-range refresh signs
#: too (/meta), through the same grant, but this GHES context has no refresh.
SIGNING_ROLES = ("WebhookFunction", "RetryFunction", "ReconcilerFunction", "TeardownFunction")


@pytest.fixture(scope="module")
def app_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(APP_CONTEXT, tmp_path_factory.mktemp("cdk-app"))


@pytest.fixture(scope="module")
def existing_key_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    context = {**APP_CONTEXT, "github_app_key_arn": EXISTING_KEY}
    return synth(context, tmp_path_factory.mktemp("cdk-app-key"))


def sign_statement(key: Any) -> dict[str, Any]:
    return {
        "Sid": "SignGitHubAppJwt",
        "Effect": "Allow",
        "Action": "kms:Sign",
        "Resource": key,
        "Condition": {
            "StringEquals": {
                "kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256",
                "kms:MessageType": "RAW",
            }
        },
    }


def kms_statements(synth: Synth) -> dict[str, list[dict[str, Any]]]:
    """Role logical id -> its statements that grant any kms: action."""
    found: dict[str, list[dict[str, Any]]] = {}
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if any(str(a).startswith("kms:") for a in as_list(statement["Action"])):
                for role in policy["Properties"]["Roles"]:
                    found.setdefault(role["Ref"], []).append(statement)
    return found


def test_the_key_awaits_the_apps_private_key(app_synth: Synth) -> None:
    (key,) = app_synth.resources("AWS::KMS::Key").values()
    properties = key["Properties"]
    assert (properties["KeySpec"], properties["KeyUsage"], properties["Origin"]) == (
        "RSA_2048",
        "SIGN_VERIFY",
        "EXTERNAL",
    )
    # KMS's default key policy: IAM in this account decides; nobody else is named.
    (statement,) = properties["KeyPolicy"]["Statement"]
    assert statement["Principal"] == {
        "AWS": {
            "Fn::Join": [
                "",
                ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"],
            ]
        }
    }


def test_only_the_dispatching_lambdas_may_sign_and_only_with_that_key(app_synth: Synth) -> None:
    key_id = logical_id(app_synth, "AWS::KMS::Key", "GitHubApp")
    expected = sign_statement({"Fn::GetAtt": [key_id, "Arn"]})
    signing = {logical_id(app_synth, "AWS::IAM::Role", name) for name in SIGNING_ROLES}
    granted = kms_statements(app_synth)
    assert {role for role, found in granted.items() if expected in found} == signing
    for role, found in granted.items():
        sign = [s for s in found if "kms:Sign" in as_list(s["Action"])]
        assert sign == ([expected] if role in signing else []), role


def test_the_lambdas_are_told_the_app_and_key(app_synth: Synth) -> None:
    key_id = logical_id(app_synth, "AWS::KMS::Key", "GitHubApp")
    env = webhook_env(app_synth)
    assert env["GITHUB_AUTH"] == "app"
    assert env["GITHUB_APP_ID"] == "123456"
    assert env["GITHUB_APP_KEY_ARN"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_the_pat_secret_is_not_readable_with_an_app(app_synth: Synth) -> None:
    (read,) = [
        s for s in statements(app_synth, "WebhookFunction") if s.get("Sid") == "ReadWebhookSecrets"
    ]
    webhook_secret = logical_id(app_synth, "AWS::SecretsManager::Secret", "WebhookSecret")
    assert read["Resource"] == {"Ref": webhook_secret}
    # No function reads the (empty) PAT secret: the teardown and the refresh sign instead.
    token = {"Ref": logical_id(app_synth, "AWS::SecretsManager::Secret", "GitHubTokenSecret")}
    for policy in app_synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert token not in as_list(statement["Resource"]), statement


def test_an_existing_key_is_used_as_given(existing_key_synth: Synth) -> None:
    assert existing_key_synth.resources("AWS::KMS::Key") == {}
    assert webhook_env(existing_key_synth)["GITHUB_APP_KEY_ARN"] == EXISTING_KEY
    for name in SIGNING_ROLES:
        found = [
            s for s in statements(existing_key_synth, name) if s.get("Sid") == "SignGitHubAppJwt"
        ]
        assert found == [sign_statement(EXISTING_KEY)]


def test_cdk_nag_reports_nothing_for_the_app_stack(app_synth: Synth) -> None:
    # Only the deliberate warning of the shared test profiles: the restricted 'deploy'
    # profile runs in the subnets of the unrestricted ones (docs/networks.md).
    assert findings(app_synth.validation_report) == {
        (
            "FargateRunners/Runners",
            "Annotation::fargate-runners:restrictedProfileSharesSubnets",
            "warning",
        )
    }


def test_the_pat_stack_has_no_app_key_and_reads_the_pat(main_synth: Synth) -> None:
    assert main_synth.resources("AWS::KMS::Key") == {}
    assert "GITHUB_APP_KEY_ARN" not in webhook_env(main_synth)
    assert not any(
        "kms:Sign" in as_list(s["Action"])
        for found in kms_statements(main_synth).values()
        for s in found
    )
    (read,) = [
        s for s in statements(main_synth, "WebhookFunction") if s.get("Sid") == "ReadWebhookSecrets"
    ]
    assert len(read["Resource"]) == 2


@pytest.mark.parametrize(
    ("context", "key", "problem"),
    [
        ({"github_auth": "app"}, "github_app_id", "is required with github_auth: app"),
        ({"github_app_id": "1"}, "github_app_id", "only with github_auth: app"),
        ({"github_auth": "app", "github_app_id": "app"}, "github_app_id", "not a GitHub App ID"),
        ({"github_auth": "jwt"}, "github_auth", "jwt"),
        (
            {"github_auth": "app", "github_app_id": "1", "github_app_key_arn": "key/1"},
            "github_app_key_arn",
            "not a KMS key ARN",
        ),
    ],
)
def test_config_errors(context: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as failure:
        load_config(context)
    assert key in str(failure.value) and problem in str(failure.value)


def test_config_accepts_a_client_id_and_the_app_hook() -> None:
    config = load_config(
        {"github_auth": "app", "github_app_id": "Iv23liABCDEF", "github_hook_path": "app/hook",
         "allowed_repositories": ["octo-org/*"]}
    )  # fmt: skip
    assert (config.github_app_id, config.github_hook_path) == ("Iv23liABCDEF", "app/hook")


def test_a_github_app_needs_allowed_repositories_or_an_explicit_star() -> None:
    """Issue 23 item 5: the App's webhook delivers every installation's jobs."""
    app = {"github_auth": "app", "github_app_id": "123456"}
    with pytest.raises(ConfigError) as refused:
        load_config(app)
    assert refused.value.key == "allowed_repositories"
    assert "is required with a GitHub App" in refused.value.problem
    assert '["*"]' in refused.value.problem
    assert "\n" not in str(refused.value)
    everything = load_config({**app, "allowed_repositories": ["*"]})
    assert everything.allowed_repositories == ("*",)
    with pytest.raises(ConfigError, match=r'allowed_repositories: "\*" \(every repository\)'):
        load_config({**app, "allowed_repositories": ["*", "octo-org/app"]})
    load_config({"allowed_repositories": ["*"]})  # accepted with a PAT too: same as empty


def test_star_reaches_the_lambda_as_any_repository() -> None:
    from fargate_runners.config import lambda_allowed_repositories

    assert lambda_allowed_repositories(("*",)) == ()
    assert lambda_allowed_repositories(("octo-org/app",)) == ("octo-org/app",)


def test_the_construct_props_need_allowed_repositories_with_an_app_too() -> None:
    from fargate_runners.config import RunnerProfile, check_construct_props
    from fargate_runners.github_app import GitHubAppAuth
    from fargate_runners.props import FargateRunnersProps

    profiles = [RunnerProfile(name="default", labels=["self-hosted", "linux"])]
    with pytest.raises(ConfigError) as refused:
        check_construct_props(FargateRunnersProps(profiles, github_app=GitHubAppAuth("123456")))
    assert refused.value.key == "allowed_repositories"
    settings = check_construct_props(
        FargateRunnersProps(
            profiles, github_app=GitHubAppAuth("123456"), allowed_repositories=["*"]
        )
    )
    assert settings.github_app


def test_the_lambda_loads_the_app_stacks_environment(app_synth: Synth) -> None:
    from lambda_fn.config import load_settings
    from tests.kit.stack import resolved_environment

    settings = load_settings(resolved_environment(app_synth))
    assert (settings.github_auth, settings.github_app_id) == ("app", "123456")
    assert settings.github_app_key_arn.startswith("arn:aws:kms:")
