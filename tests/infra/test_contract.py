"""The names and shapes that cross from the construct to the Lambda and the CLI agree.

The synthesized Lambda environment, with each token replaced by the realistic sample the
construct's size check uses, goes through the Lambda's own settings loader: a variable
renamed on one side, a profile key the Lambda does not know, or a value it refuses fails
here, not in a deployed account.
"""

from __future__ import annotations

from typing import Any

import pytest

from lambda_fn import contract
from lambda_fn.config import load_settings
from tests.kit.infra import Synth
from tests.kit.stack import resolved_environment

pytestmark = pytest.mark.infra

SYNTHS = ("main_synth", "existing_vpc_synth", "edge_synth")


@pytest.mark.parametrize("fixture", SYNTHS)
def test_the_synthesized_environment_loads_in_the_lambda(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    synth: Synth = request.getfixturevalue(fixture)
    runners = synth.stack.runners
    config = synth.stack.config
    settings = load_settings(resolved_environment(synth))

    assert [p.name for p in settings.profiles] == [p.name for p in config.profiles]
    for loaded, configured in zip(settings.profiles, config.profiles, strict=True):
        assert loaded.labels == configured.labels
        assert loaded.max_runners == configured.effective_max_runners
        assert loaded.extra == {}, f"keys the Lambda does not know: {sorted(loaded.extra)}"
        assert (loaded.policy is not None) == configured.policy.restricted
        assert loaded.warm == configured.warm()
    if fixture == "edge_synth":  # the one with a warm pool: it must survive the trip
        assert settings.profiles[0].warm is not None
    assert settings.runner_name_prefix == runners.runner_name_prefix
    assert settings.jit_secret_prefix == runners.jit_secret_prefix
    assert settings.github_api_url == config.github_api_url
    assert settings.runner_scope == config.runner_scope


@pytest.mark.parametrize("fixture", SYNTHS)
def test_every_variable_is_in_the_contract_and_every_required_one_is_set(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    synth: Synth = request.getfixturevalue(fixture)
    environment = synth.stack.runners.lambda_environment
    known = set(contract.LAMBDA_ENVIRONMENT) | set(contract.POWERTOOLS_ENVIRONMENT)
    assert set(environment) <= known
    required = {k for k, default in contract.LAMBDA_ENVIRONMENT.items() if default is None}
    assert required <= set(environment)
    # And the template carries exactly that environment on the three dispatch Lambdas
    # (teardown and the source-range refresh read the profiles too, with less).
    dispatchers = {
        "lambda_fn.app.handler",
        "lambda_fn.retry.handler",
        "lambda_fn.reconciler.handler",
    }
    functions = synth.resources("AWS::Lambda::Function").values()
    with_profiles = [
        f["Properties"]["Environment"]["Variables"]
        for f in functions
        if f["Properties"].get("Handler") in dispatchers
    ]
    assert len(with_profiles) == 3
    assert all(set(variables) == set(environment) for variables in with_profiles)


def test_profile_entries_use_only_contract_keys(main_synth: Synth, edge_synth: Synth) -> None:
    allowed = {*contract.PROFILE_REQUIRED_KEYS, *contract.PROFILE_OPTIONAL_KEYS}
    seen: set[str] = set()
    for synth in (main_synth, edge_synth):
        for profile in synth.stack.config.profiles:
            entry: dict[str, Any] = profile.lambda_entry("arn", "runner", "AROA" + "X" * 17)
            assert set(contract.PROFILE_REQUIRED_KEYS) <= set(entry)
            seen |= set(entry)
    assert seen <= allowed


def test_the_stack_has_every_output_the_cli_reads(main_synth: Synth) -> None:
    outputs = set(main_synth.raw["Outputs"])
    assert set(contract.REQUIRED_OUTPUTS) | set(contract.OPTIONAL_OUTPUTS) <= outputs


#: Optional groups the construct adds through the builder's ``extra`` (App, tracing).
OPTIONAL_GROUPS = {"GITHUB_AUTH", "GITHUB_APP_ID", "GITHUB_APP_KEY_ARN", "TRACE_REMOTE_CALLS"}


def test_construct_local_mode_and_benchmarks_build_the_same_environment(
    main_synth: Synth,
) -> None:
    """One builder (``lambda_fn.contract.lambda_environment``) for all three: the same keys,
    profiles through the SSM parameters in each, never ``RUNNER_PROFILES``."""
    import boto3
    from moto import mock_aws

    from bench.fixtures import lambda_env
    from localdev.provision import provision
    from tests.kit.world import TEST_CONTEXT

    known = set(contract.LAMBDA_ENVIRONMENT) | set(contract.POWERTOOLS_ENVIRONMENT)
    construct = set(main_synth.stack.runners.lambda_environment) - OPTIONAL_GROUPS
    with mock_aws():
        local = set(provision(None, TEST_CONTEXT, github_api_url="https://api.github.test").env)
        bench = set(
            lambda_env(
                ssm=boto3.client("ssm", region_name="us-east-1"),
                webhook_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:w",
                token_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:t",
                cluster="runners",
                subnet_id="subnet-0",
                security_group_id="sg-0",
                table="runners-idempotency",
                task_definitions={"default": "td-default", "big": "td-big"},
            )
        )
    assert local & known == construct
    assert bench & known == construct
    assert "RUNNER_PROFILES_PARAMETERS" in construct
    assert "RUNNER_PROFILES" not in local | bench | construct
