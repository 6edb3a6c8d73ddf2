"""Profiles in SSM parameters (``lambda_fn/profile_store.py``): any number of them."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from lambda_fn import aws
from lambda_fn.config import _parse_cached, load_settings
from lambda_fn.errors import ConfigError
from lambda_fn.profile_store import chunk_entries, compact_size
from lambda_fn.routing import match_profile
from tests.kit.settings import MINIMAL


def entries(count: int) -> list[dict[str, object]]:
    return [
        {
            "name": f"p{i}",
            "labels": ["self-hosted", "linux", f"team-{i}"],
            "task_definition": f"arn:aws:ecs:us-east-1:123456789012:task-definition/s-runner-p{i}:1",
            "container_name": "runner",
            "task_role_id": "AROA" + "X" * 17,
        }
        for i in range(count)
    ]


def test_chunks_fit_a_standard_parameter_and_keep_order() -> None:
    groups = chunk_entries(entries(50), compact_size)
    assert len(groups) > 1
    assert all(compact_size(g) <= 4096 for g in groups)
    assert [e["name"] for g in groups for e in g] == [f"p{i}" for i in range(50)]


def test_an_entry_too_big_for_any_parameter_is_named() -> None:
    big = {**entries(1)[0], "labels": ["x" * 5000]}
    with pytest.raises(ValueError, match=r"profiles\['p0'\]: its entry is about \d+ characters"):
        chunk_entries([big], compact_size)


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        aws.reset()
        _parse_cached.cache_clear()
        yield boto3.client("ssm", region_name="us-east-1")
    aws.reset()


def store(ssm, count: int) -> str:  # type: ignore[no-untyped-def]
    names = []
    for index, group in enumerate(chunk_entries(entries(count), compact_size)):
        name = f"/t/profiles/{index}"
        ssm.put_parameter(Name=name, Value=json.dumps(group), Type="String")
        names.append(name)
    return ",".join(names)


def test_fifty_profiles_load_and_route(ssm) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in MINIMAL.items() if k != "RUNNER_PROFILES"}
    settings = load_settings({**env, "RUNNER_PROFILES_PARAMETERS": store(ssm, 50)})
    assert len(settings.profiles) == 50
    chosen = match_profile(["self-hosted", "team-49"], settings.profiles)
    assert chosen is not None and chosen.name == "p49"


def test_the_environment_variable_still_wins(ssm) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({**MINIMAL, "RUNNER_PROFILES_PARAMETERS": store(ssm, 50)})
    assert len(settings.profiles) == len(json.loads(MINIMAL["RUNNER_PROFILES"]))


def test_a_missing_parameter_is_a_config_error(ssm) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in MINIMAL.items() if k != "RUNNER_PROFILES"}
    with pytest.raises(ConfigError, match="parameter '/gone' does not exist"):
        load_settings({**env, "RUNNER_PROFILES_PARAMETERS": "/gone"})


def test_neither_source_is_a_config_error() -> None:
    env = {k: v for k, v in MINIMAL.items() if k != "RUNNER_PROFILES"}
    with pytest.raises(ConfigError, match="RUNNER_PROFILES or RUNNER_PROFILES_PARAMETERS"):
        load_settings(env)
