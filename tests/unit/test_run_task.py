"""run_task request building and failure classification (no AWS needed)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from lambda_fn import contract
from lambda_fn.config import Profile, load_settings
from lambda_fn.errors import LaunchPermanentError, LaunchTransientError
from lambda_fn.github import JitConfig
from lambda_fn.jobs import Job
from lambda_fn.run_task import (
    build_run_task_request,
    client_token,
    run_runner_task,
    started_by,
)

PROFILE = Profile("default", ("self-hosted",), "arn:td/runner:1", "runner", "AROAEXAMPLETASKROLE01")
SETTINGS = load_settings(
    {
        "WEBHOOK_SECRET_ARN": "w",
        "GITHUB_TOKEN_SECRET_ARN": "t",
        "ECS_CLUSTER": "runners",
        "SUBNET_IDS": "subnet-1",
        "SECURITY_GROUP_IDS": "sg-1",
        "RUNNER_PROFILES": '[{"name": "default", "labels": ["self-hosted"], '
        '"task_definition": "arn:td/runner:1", "container_name": "runner", '
        '"task_role_id": "AROAEXAMPLETASKROLE01"}]',
        "IDEMPOTENCY_TABLE": "idem",
    }
)
JIT = JitConfig(runner_id=9, runner_name="fgr-123-abcdef", encoded="SECRETJIT")


def test_request_takes_image_and_command_from_nowhere_but_the_profile() -> None:
    job = Job(123, 4, 2, "o", "r", ("self-hosted",), PROFILE)
    request = build_run_task_request(SETTINGS, PROFILE, job, JIT, sealed_name="p/fgr-123-abcdef")
    assert request["taskDefinition"] == "arn:td/runner:1"
    (override,) = request["overrides"]["containerOverrides"]
    assert override == {
        "name": "runner",
        "environment": [
            {"name": "RUNNER_JIT_SECRET_ID", "value": "p/fgr-123-abcdef"},
            {"name": "RUNNER_JIT_SECRET_REGION", "value": "us-east-1"},
        ],
    }
    assert set(request["overrides"]) == {"containerOverrides"}
    # The JIT config is nowhere in the request: overrides, tags, startedBy, token.
    assert "SECRETJIT" not in repr(request)


def test_a_profiles_own_security_groups_replace_the_stack_wide_ones() -> None:
    """Issue 23: each profile's tasks carry its own groups (SECURITY_GROUP_IDS: fallback)."""
    settings = load_settings(
        {
            "WEBHOOK_SECRET_ARN": "w",
            "GITHUB_TOKEN_SECRET_ARN": "t",
            "ECS_CLUSTER": "runners",
            "SUBNET_IDS": "subnet-1",
            "SECURITY_GROUP_IDS": "sg-1",
            "RUNNER_PROFILES": '[{"name": "deploy", "labels": ["deploy"], '
            '"task_definition": "arn:td/deploy:1", "container_name": "runner", '
            '"security_group_ids": ["sg-deploy"]}, {"name": "default", "labels": ["x"], '
            '"task_definition": "arn:td/runner:1", "container_name": "runner"}]',
            "IDEMPOTENCY_TABLE": "idem",
        }
    )
    deploy, default = settings.profiles
    job = Job(1, 2, 1, "o", "r", ("deploy",), deploy)
    assert deploy.security_group_ids == ("sg-deploy",)

    def groups(profile: Profile) -> list[str]:
        request = build_run_task_request(settings, profile, job, JIT, sealed_name="p/x")
        return list(request["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"])

    assert groups(deploy) == ["sg-deploy"]
    assert groups(default) == ["sg-1"]


def test_tag_values_are_sanitised() -> None:
    job = Job(1, 2, 1, "o", "r<script>", ("self-hosted",), PROFILE)
    tags = {
        t["key"]: t["value"]
        for t in build_run_task_request(SETTINGS, PROFILE, job, JIT, sealed_name="p/x")["tags"]
    }
    assert tags[contract.TAG_GITHUB_REPOSITORY] == "o/r_script_"


@pytest.mark.parametrize("job_id", [1, 123456789, 10**18])
def test_started_by_and_client_token_fit_ecs_limits(job_id: int) -> None:
    assert len(started_by(job_id)) <= 36
    token = client_token(job_id, "fgr-x-abcdef")
    assert len(token) <= 64
    assert token == client_token(job_id, "fgr-x-abcdef")
    assert token != client_token(job_id, "fgr-x-123456")


class FakeEcs:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def run_task(self, **_: Any) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "RunTask")


def test_success_returns_the_task_arn() -> None:
    assert (
        run_runner_task(FakeEcs({"tasks": [{"taskArn": "arn:task/1"}], "failures": []}), {})
        == "arn:task/1"
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"tasks": [], "failures": [{"reason": "Capacity is unavailable at this time"}]},
        {"tasks": [], "failures": [{"reason": "RESOURCE:ENI"}]},
        {"tasks": [], "failures": []},
        client_error("ThrottlingException"),
        client_error("ServerException"),
        EndpointConnectionError(endpoint_url="https://ecs"),
    ],
)
def test_transient_failures(answer: Any) -> None:
    with pytest.raises(LaunchTransientError):
        run_runner_task(FakeEcs(answer), {})


@pytest.mark.parametrize(
    "answer",
    [
        {"tasks": [], "failures": [{"reason": "INACTIVE"}]},
        client_error("InvalidParameterException"),
        client_error("AccessDeniedException"),
        client_error("ClusterNotFoundException"),
    ],
)
def test_permanent_failures(answer: Any) -> None:
    with pytest.raises(LaunchPermanentError):
        run_runner_task(FakeEcs(answer), {})


def test_failures_entry_wins_even_with_a_task() -> None:
    answer = {"tasks": [{"taskArn": "a"}], "failures": [{"reason": "RESOURCE:MEMORY"}]}
    with pytest.raises(LaunchTransientError, match="RESOURCE:MEMORY"):
        run_runner_task(FakeEcs(answer), {})
