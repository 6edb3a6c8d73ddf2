"""Every row of docs/contract.md's behaviour table, through the real handler.

AWS is moto (secrets, VPC, ECS, DynamoDB); GitHub is intercepted at the HTTP
layer. Each test checks the answer *and* the side effects: GitHub calls made
and ECS tasks started.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from lambda_fn import contract
from tests.kit.events import LambdaContext, api_event, deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import PAT, WEBHOOK_SECRET, FakeAws, set_profiles


def assert_nothing_started(fake_aws: FakeAws, github: FakeGitHub) -> None:
    assert github.jit_requests == []
    assert fake_aws.tasks() == []


# --- signature -----------------------------------------------------------------------------


def test_missing_signature_is_401_and_starts_nothing(fake_aws: FakeAws, github: FakeGitHub) -> None:
    status, body = deliver(queued_payload(), secret=None)
    assert status == 401
    assert "signature" in body["message"].lower()
    assert_nothing_started(fake_aws, github)


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + "0" * 64,
        "sha1=0123456789abcdef0123456789abcdef01234567",
        "sha256=",
        "garbage",
    ],
)
def test_wrong_signature_is_401(fake_aws: FakeAws, github: FakeGitHub, signature: str) -> None:
    status, _ = deliver(queued_payload(), signature=signature)
    assert status == 401
    assert_nothing_started(fake_aws, github)


def test_signature_made_with_another_secret_is_401(fake_aws: FakeAws, github: FakeGitHub) -> None:
    status, _ = deliver(queued_payload(), secret="not-the-secret")
    assert status == 401
    assert_nothing_started(fake_aws, github)


def test_signature_covers_the_exact_bytes(fake_aws: FakeAws, github: FakeGitHub) -> None:
    """A body altered after signing (here: whitespace) no longer verifies."""
    from lambda_fn.app import handler
    from lambda_fn.signature import sign

    original = json.dumps(queued_payload())
    event = api_event(original)
    event["body"] = original + " "
    event["headers"]["X-Hub-Signature-256"] = sign(WEBHOOK_SECRET.encode(), original.encode())
    assert handler(event, LambdaContext())["statusCode"] == 401
    assert_nothing_started(fake_aws, github)


# --- bad bodies with a valid signature -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[1, 2, 3]",
        b'{"action": "queued"',
    ],
)
def test_valid_signature_but_not_json_object_is_400(
    fake_aws: FakeAws, github: FakeGitHub, body: bytes
) -> None:
    status, body_json = deliver(body)
    assert status == 400
    assert body_json["message"]
    assert_nothing_started(fake_aws, github)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("workflow_job"),
        lambda p: p.pop("repository"),
        lambda p: p["workflow_job"].pop("id"),
        lambda p: p["workflow_job"].__setitem__("id", "abc"),
        lambda p: p["workflow_job"].__setitem__("id", -5),
        lambda p: p["workflow_job"].__setitem__("labels", "self-hosted"),
        lambda p: p["workflow_job"].__setitem__("labels", ["x"] * 500),
        lambda p: p["repository"].__setitem__("name", "../../etc"),
        lambda p: p["repository"]["owner"].__setitem__("login", "bad owner"),
        lambda p: p.__setitem__("action", 12),
    ],
)
def test_valid_signature_invalid_payload_is_400(
    fake_aws: FakeAws, github: FakeGitHub, mutate: Any
) -> None:
    payload = queued_payload()
    mutate(payload)
    status, body = deliver(payload)
    assert status == 400, body
    assert body["message"]
    assert_nothing_started(fake_aws, github)


def test_oversized_body_is_413(fake_aws: FakeAws, github: FakeGitHub) -> None:
    payload = queued_payload()
    payload["padding"] = "x" * (1024 * 1024)
    status, _ = deliver(payload)
    assert status == 413
    assert_nothing_started(fake_aws, github)


def test_form_encoded_webhook_is_400_with_a_hint(fake_aws: FakeAws, github: FakeGitHub) -> None:
    status, body = deliver(
        "payload=%7B%7D", extra_headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 400
    assert "application/json" in body["message"]
    assert_nothing_started(fake_aws, github)


def test_missing_event_header_is_400(fake_aws: FakeAws, github: FakeGitHub) -> None:
    status, _ = deliver(queued_payload(), event="")
    assert status == 400
    assert_nothing_started(fake_aws, github)


# --- events and actions that start nothing ---------------------------------------------------


def test_ping_is_200(fake_aws: FakeAws, github: FakeGitHub) -> None:
    status, body = deliver({"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping")
    assert status == 200
    assert body == {"message": "pong"}
    assert_nothing_started(fake_aws, github)


@pytest.mark.parametrize("event", ["push", "pull_request", "workflow_run", "check_run"])
def test_other_events_are_ignored(fake_aws: FakeAws, github: FakeGitHub, event: str) -> None:
    status, body = deliver({"action": "created"}, event=event)
    assert 200 <= status < 300
    assert body["status"] == "ignored"
    assert event in body["reason"]
    assert_nothing_started(fake_aws, github)


@pytest.mark.parametrize("action", ["in_progress", "waiting", "something_new"])
def test_non_queued_actions_never_start_a_task(
    fake_aws: FakeAws, github: FakeGitHub, action: str
) -> None:
    status, body = deliver(queued_payload(action=action))
    assert 200 <= status < 300
    assert body["status"] == "ignored"
    assert_nothing_started(fake_aws, github)


def test_completed_never_starts_a_task(fake_aws: FakeAws, github: FakeGitHub) -> None:
    status, body = deliver(queued_payload(action="completed"))
    assert 200 <= status < 300
    assert body["status"] == "completed"
    assert body["runners_released"] == 0
    assert_nothing_started(fake_aws, github)


def test_non_queued_action_with_minimal_body_is_still_2xx(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    status, _ = deliver({"action": "completed", "workflow_job": {"id": 1}})
    assert 200 <= status < 300
    assert_nothing_started(fake_aws, github)


def test_repository_not_allowed_is_ignored(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "octo-org/allowed,trusted-org/*")
    status, body = deliver(queued_payload(repo="octo-org/app"))
    assert 200 <= status < 300
    assert body["status"] == "ignored"
    assert "octo-org/app" in body["reason"]
    assert_nothing_started(fake_aws, github)


def test_owner_wildcard_allows_every_repository_of_the_owner(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "other/thing, Octo-Org/*")
    status, body = deliver(queued_payload(repo="octo-org/app"))
    assert status == 200
    assert body["status"] == "launched"


@pytest.mark.parametrize(
    "labels",
    [
        ["ubuntu-latest"],
        ["self-hosted", "linux", "arm64", "gpu"],
        ["self-hosted", "windows"],
        [],
    ],
)
def test_labels_not_served_by_any_profile_are_ignored(
    fake_aws: FakeAws, github: FakeGitHub, labels: list[str]
) -> None:
    status, body = deliver(queued_payload(labels=labels))
    assert 200 <= status < 300
    assert body["status"] == "ignored"
    assert_nothing_started(fake_aws, github)


# --- the launch --------------------------------------------------------------------------------


def capture_run_task(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the exact ``run_task`` parameters the handler sends (before botocore signs them)."""
    from lambda_fn import aws

    captured: list[dict[str, Any]] = []
    real_client = aws.client

    def client(service: str) -> Any:
        c = real_client(service)
        if service == "ecs" and not getattr(c, "_test_hooked", False):
            c.meta.events.register(
                "provide-client-params.ecs.RunTask", lambda params, **_: captured.append(params)
            )
            c._test_hooked = True
        return c

    monkeypatch.setattr(aws, "client", client)
    return captured


def test_matching_job_gets_one_jit_config_and_one_task(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = capture_run_task(monkeypatch)
    status, body = deliver(queued_payload(job_id=4242, labels=["self-hosted", "LINUX", "arm64"]))

    assert status == 200, body
    assert body["status"] == "launched"
    assert body["profile"] == "default"
    assert body["job_id"] == 4242

    # one JIT config, for the repository, with the profile's labels and a name naming the job
    assert len(github.jit_requests) == 1
    jit = github.jit_requests[0]
    assert jit["url"].endswith("/repos/octo-org/app/actions/runners/generate-jitconfig")
    assert jit["labels"] == ["self-hosted", "linux", "arm64", "fargate"]
    assert jit["runner_group_id"] == 1
    assert jit["name"].startswith("fgr-4242-")
    assert jit["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    assert jit["headers"]["Accept"] == "application/vnd.github+json"
    assert "fargate-gha-runners" in jit["headers"]["User-Agent"]
    assert github.authorizations == [f"Bearer {PAT}"]

    # one task, from the profile's own task definition, with the JIT config in the override
    tasks = fake_aws.tasks()
    assert len(tasks) == 1
    task = tasks[0]
    assert body["task_arn"] == task["taskArn"]
    assert task["taskDefinitionArn"] == fake_aws.task_definitions["default"]
    assert len(sent) == 1
    request = sent[0]
    assert request["taskDefinition"] == fake_aws.task_definitions["default"]
    assert request["launchType"] == "FARGATE"
    assert request["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": [fake_aws.subnet_id],
        "securityGroups": [fake_aws.security_group_id],
        "assignPublicIp": "DISABLED",
    }
    overrides = request["overrides"]["containerOverrides"]
    runner_name = github.jit_requests[0]["name"]
    assert overrides == [
        {
            "name": "runner",
            # Only where the task finds its sealed config: never the config itself.
            "environment": [
                {"name": "RUNNER_JIT_SECRET_ID", "value": f"{fake_aws.jit_prefix}/{runner_name}"},
                {"name": "RUNNER_JIT_SECRET_REGION", "value": "us-east-1"},
            ],
        }
    ]
    assert github.issued_configs[0] not in json.dumps(request, default=str)
    # ... and the config is sealed for exactly this task: <task role id>:<task id>
    sealed = fake_aws.sealed_configs()
    assert list(sealed) == [f"{fake_aws.jit_prefix}/{runner_name}"]
    (secret,) = sealed.values()
    assert secret["value"] == github.issued_configs[0]
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert secret["tags"] == {
        "runner:task-userid": f"{fake_aws.task_role_ids['default']}:{task_id}",
        "runner:task-arn": task["taskArn"],
    }
    assert set(overrides[0]) == {"name", "environment"}  # no command, image or role override
    assert request["startedBy"] == "gh-job-4242"
    assert request["clientToken"].startswith("job-4242-")
    assert len(request["clientToken"]) <= 64
    tags = {t["key"]: t["value"] for t in request["tags"]}
    assert tags[contract.TAG_GITHUB_JOB_ID] == "4242"
    assert tags[contract.TAG_GITHUB_RUN_ID] == "777"
    assert tags[contract.TAG_GITHUB_REPOSITORY] == "octo-org/app"
    assert tags["runner:profile"] == "default"


def test_first_matching_profile_in_config_order_wins(fake_aws: FakeAws, github: FakeGitHub) -> None:
    # ["self-hosted", "linux"] is served by both profiles; "default" comes first.
    status, body = deliver(queued_payload(labels=["self-hosted", "linux"]))
    assert status == 200
    assert body["profile"] == "default"
    status, body = deliver(queued_payload(job_id=5, labels=["self-hosted", "big"]))
    assert status == 200
    assert body["profile"] == "big"
    arns = {t["taskDefinitionArn"] for t in fake_aws.tasks()}
    assert arns == set(fake_aws.task_definitions.values())


def test_org_scope_registers_runner_on_the_organisation(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_SCOPE", "org")
    monkeypatch.setenv("RUNNER_GROUP_ID", "7")
    status, _ = deliver(queued_payload())
    assert status == 200
    assert github.jit_requests[0]["url"].endswith(
        "/orgs/octo-org/actions/runners/generate-jitconfig"
    )
    assert github.jit_requests[0]["runner_group_id"] == 7


def test_assign_public_ip_reaches_the_task(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSIGN_PUBLIC_IP", "ENABLED")
    sent = capture_run_task(monkeypatch)
    assert deliver(queued_payload())[0] == 200
    assert sent[0]["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"


def test_base64_encoded_body_is_verified_and_launched(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    status, body = deliver(queued_payload(), base64_encoded=True)
    assert status == 200
    assert body["status"] == "launched"


# --- duplicates -------------------------------------------------------------------------------


def test_redelivery_of_the_same_job_starts_nothing_more(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    first_status, first = deliver(queued_payload(job_id=99), delivery="d-1")
    again_status, again = deliver(queued_payload(job_id=99), delivery="d-2")
    third_status, _ = deliver(queued_payload(job_id=99), delivery="d-1")

    assert first_status == 200
    assert first["status"] == "launched"
    assert 200 <= again_status < 300
    assert again["status"] == "duplicate"
    assert again["task_arn"] == first["task_arn"]
    assert 200 <= third_status < 300
    assert len(github.jit_requests) == 1
    assert len(fake_aws.tasks()) == 1


def test_distinct_jobs_each_get_a_runner(fake_aws: FakeAws, github: FakeGitHub) -> None:
    for job_id in (1, 2, 3):
        assert deliver(queued_payload(job_id=job_id))[0] == 200
    assert len(github.jit_requests) == 3
    assert len(fake_aws.tasks()) == 3
    assert len({r["name"] for r in github.jit_requests}) == 3


def test_duplicate_arriving_while_first_is_in_progress_is_2xx(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """GitHub sometimes sends the same job twice at once: the second must not launch or fail."""
    nested: list[tuple[int, dict[str, Any]]] = []
    original = github.jit_callback

    def jit_while_redelivered(request: Any) -> Any:
        if not nested:
            nested.append(deliver(queued_payload(job_id=31), delivery="d-dup"))
        return original(request)

    github.set_jit(jit_while_redelivered)
    status, body = deliver(queued_payload(job_id=31), delivery="d-first")

    assert status == 200
    assert body["status"] == "launched"
    ((dup_status, dup_body),) = nested
    assert 200 <= dup_status < 300
    assert dup_body["status"] == "in_progress"
    assert len(github.jit_requests) == 1
    assert len(fake_aws.tasks()) == 1


# --- failures -----------------------------------------------------------------------------------


def test_github_502_then_ok_is_retried(
    fake_aws: FakeAws, github: FakeGitHub, no_real_sleep: list[float]
) -> None:
    github.fail("POST", "generate-jitconfig", 502, times=1)
    status, body = deliver(queued_payload())
    assert status == 200, body
    assert [r.status for r in github.calls("POST", "generate-jitconfig")] == [502, 201]
    assert len(no_real_sleep) == 1
    assert len(fake_aws.tasks()) == 1


def test_github_429_honours_retry_after(
    fake_aws: FakeAws, github: FakeGitHub, no_real_sleep: list[float]
) -> None:
    github.rate_limited("POST", "generate-jitconfig", status=429, retry_after=2)
    status, _ = deliver(queued_payload())
    assert status == 200
    assert no_real_sleep == [2.0]
    assert len(fake_aws.tasks()) == 1


def test_github_primary_rate_limit_403_waits_for_the_reset(
    fake_aws: FakeAws, github: FakeGitHub, no_real_sleep: list[float]
) -> None:
    """403 + ``x-ratelimit-remaining: 0`` is a rate limit, not a refusal: wait until
    ``x-ratelimit-reset``, then retry (docs: troubleshooting-the-rest-api#rate-limit-errors)."""
    github.rate_limited("POST", "generate-jitconfig", status=403, reset_in=3)
    status, _ = deliver(queued_payload())
    assert status == 200
    assert len(no_real_sleep) == 1 and 0 < no_real_sleep[0] <= 3.0  # until the reset
    assert len(fake_aws.tasks()) == 1


def test_github_keeps_failing_is_5xx_and_job_can_be_redelivered(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    github.set_jit(status=503, json={"message": "unavailable"})
    status, body = deliver(queued_payload(job_id=8))
    assert 500 <= status < 600
    assert body["status"] == "error"
    assert fake_aws.tasks() == []

    # GitHub recovers; a redelivery of the same job now launches (the failure left no record).
    github.set_jit(github.jit_callback)
    status, body = deliver(queued_payload(job_id=8))
    assert status == 200
    assert body["status"] == "launched"
    assert len(fake_aws.tasks()) == 1


def test_bad_token_is_5xx_with_a_hint_and_token_is_reread_once(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    github.set_jit(status=401, json={"message": "Bad credentials"})
    status, body = deliver(queued_payload())
    assert status == 502
    assert "401" in body["reason"]
    assert "PAT" in body["reason"]
    assert PAT not in json.dumps(body)
    assert len(github.mock.calls) == 2  # first try, then once more with a re-read token
    assert fake_aws.tasks() == []


def test_run_task_failures_entry_is_an_error_and_runner_is_unregistered(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import aws

    ecs = aws.client("ecs")

    def capacity_failure(**_: Any) -> dict[str, Any]:
        return {
            "tasks": [],
            "failures": [{"reason": "Capacity is unavailable at this time", "detail": "spot"}],
        }

    monkeypatch.setattr(ecs, "run_task", capacity_failure)
    status, body = deliver(queued_payload(job_id=55))
    assert 500 <= status < 600
    assert "Capacity is unavailable" in body["reason"]
    assert len(github.jit_requests) == 1
    assert github.deleted_runners == [1000]  # the orphan registration was removed
    assert fake_aws.tasks() == []


def test_missing_task_definition_is_a_permanent_error(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiles = fake_aws.profiles()
    profiles[0]["task_definition"] = "arn:aws:ecs:us-east-1:123456789012:task-definition/nope:1"
    set_profiles(monkeypatch, profiles)
    status, body = deliver(queued_payload())
    assert status == 502
    assert "run_task failed" in body["reason"]
    assert github.deleted_runners == [1000]


def test_empty_pat_secret_is_a_clear_config_error(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, lambda_logs: Any
) -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    empty_arn = sm.create_secret(Name="runners/empty-token")["ARN"]
    monkeypatch.setenv("GITHUB_TOKEN_SECRET_ARN", empty_arn)
    status, body = deliver(queued_payload())
    assert status == 500
    assert "misconfigured" in body["reason"]
    assert "put-secret-value" in lambda_logs.getvalue()
    assert_nothing_started(fake_aws, github)


def test_missing_required_env_is_500_and_names_the_variable(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, lambda_logs: Any
) -> None:
    monkeypatch.delenv("ECS_CLUSTER")
    status, body = deliver(queued_payload())
    assert status == 500
    assert "ECS_CLUSTER" not in json.dumps(body)  # internals stay out of GitHub's delivery log
    assert "ECS_CLUSTER is required" in lambda_logs.getvalue()
    assert_nothing_started(fake_aws, github)


# --- secrets never leak --------------------------------------------------------------------------


def test_pat_jit_config_and_signature_never_appear_in_logs_or_run_task(
    fake_aws: FakeAws,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    lambda_logs: Any,
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    sent = capture_run_task(monkeypatch)
    event = api_event(json.dumps(queued_payload()))
    signature = event["headers"]["X-Hub-Signature-256"]
    from lambda_fn.app import handler

    response = handler(event, LambdaContext())
    deliver(queued_payload(), secret=None)  # a rejected one logs too
    github.set_jit(status=401, json={"message": "Bad credentials"})
    deliver(queued_payload(job_id=2))  # and a failed one

    assert response["statusCode"] == 200
    logs = lambda_logs.getvalue() + capsys.readouterr().out
    assert "runner launched" in logs  # the handler does log
    request_text = json.dumps(sent)
    for secret in (PAT, WEBHOOK_SECRET, signature.removeprefix("sha256=")):
        assert secret not in logs
        assert secret not in request_text
        assert secret not in response["body"]
    assert github.issued_configs[0] not in logs
    assert github.issued_configs[0] not in response["body"]


def test_logs_carry_delivery_id_as_correlation_id(
    fake_aws: FakeAws, github: FakeGitHub, lambda_logs: Any
) -> None:
    deliver(queued_payload(job_id=12), delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    lines = [json.loads(line) for line in lambda_logs.getvalue().splitlines()]
    launched = [line for line in lines if line.get("message") == "runner launched"]
    assert launched
    assert launched[0]["correlation_id"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert launched[0]["job_id"] == 12
    assert launched[0]["repository"] == "octo-org/app"
    assert launched[0]["profile"] == "default"


def test_metrics_are_emitted_as_emf(fake_aws: FakeAws, github: FakeGitHub, capsys: Any) -> None:
    deliver(queued_payload(job_id=1))
    deliver(queued_payload(job_id=2, labels=["windows"]))
    out = capsys.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    names = {
        metric["Name"]
        for blob in emf
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert {"Deliveries", "RunnersLaunched", "JobsIgnored", "DispatchLatency"} <= names
    ignored = [b for b in emf if "JobsIgnored" in b]
    assert ignored[0]["reason"] == "labels"
