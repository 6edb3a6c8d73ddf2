"""The job message across a deploy (lambda_fn/jobs.py): the launch record's key, the retry
queue's body, the chosen profile travelling as an object.

A new version must find the launch records the previous one wrote (the same key for the
same job, or every job in flight at a deploy gets a second runner) and read the messages
it left in the retry queue.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import boto3
import pytest

from lambda_fn import contract
from tests.kit.github import FakeGitHub
from tests.kit.world import FakeAws, use_retry_queue

#: Written by the version before the job became one typed message (``QueuedJob``,
#: ``RetryMessage.to_json`` at commit c852737): note its ``extra``.
OLD_RETRY_BODY = (
    '{"job": {"job_id": 4343, "run_id": 777, "run_attempt": 2, "owner": "octo-org", '
    '"repo": "app", "labels": ["self-hosted", "linux"], "profile": "default", '
    '"workflow_name": "ci", "head_branch": "main", "extra": {}, "environment": null}, '
    '"attempt": 3, "first_failed_at": 1700000000.5, "last_error": "LaunchTransientError: capacity"}'
)

#: The launch records the previous version wrote for job 4242 and its first replacement:
#: ``workflow-job#`` + md5 of the JSON of "4242" / "4242#replacement-1" (Powertools'
#: ``_generate_hash``), read from moto after ``launch_once`` at commit c852737.
PINNED_KEYS = {
    "workflow-job#491b8b82388c0af37c747cdd40a3a195",
    "workflow-job#2e56a5fc072c1c6db5ef3970977d47dc",
}


def launch_records(fake_aws: FakeAws) -> set[str]:
    ddb = boto3.client("dynamodb", region_name=fake_aws.region)
    items = ddb.scan(TableName=fake_aws.table)["Items"]
    return {str(i["id"]["S"]) for i in items if str(i["id"]["S"]).startswith("workflow-job#")}


def default_profile() -> Any:
    from lambda_fn.config import get_settings
    from lambda_fn.jobs import profile_named

    return profile_named(get_settings().profiles, "default")


def test_launch_record_keys_are_those_the_previous_version_wrote(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    from lambda_fn.idempotent_launch import launch_once
    from lambda_fn.jobs import Job

    job = Job(4242, 777, 1, "octo-org", "app", ("self-hosted",), default_profile())
    assert launch_once(job)["status"] == "launched"
    assert launch_once(replace(job, replacement=1))["status"] == "launched"
    assert launch_records(fake_aws) == PINNED_KEYS


def test_a_record_of_the_previous_version_makes_the_launch_a_duplicate(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """A record as the old version left it (completed, its result stored): nothing starts."""
    from lambda_fn.idempotent_launch import launch_once
    from lambda_fn.jobs import Job

    stored = {"status": "launched", "job_id": 4242, "profile": "default", "task_arn": "arn:t/1"}
    ddb = boto3.client("dynamodb", region_name=fake_aws.region)
    ddb.put_item(
        TableName=fake_aws.table,
        Item={
            "id": {"S": "workflow-job#491b8b82388c0af37c747cdd40a3a195"},
            "expiration": {"N": "9999999999"},
            "status": {"S": "COMPLETED"},
            "data": {"S": json.dumps(stored)},
        },
    )
    job = Job(4242, 777, 1, "octo-org", "app", ("self-hosted",), default_profile())
    result = launch_once(job)
    assert result == {**stored, "duplicate": True}
    assert fake_aws.tasks() == []
    assert github.jit_requests == []


def test_the_launch_is_handed_the_profile_object_not_its_name(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Powertools passes the typed job through: the launch gets the very Profile."""
    from lambda_fn import launch as launch_module
    from lambda_fn.idempotent_launch import launch_once
    from lambda_fn.jobs import Job

    seen: list[Any] = []
    real = launch_module.launch

    def spy(job: Any, settings: Any) -> dict[str, Any]:
        seen.append(job)
        return real(job, settings)

    monkeypatch.setattr("lambda_fn.idempotent_launch.launch", spy)
    profile = default_profile()
    job = Job(4244, 777, 1, "octo-org", "app", ("self-hosted",), profile)
    launch_once(job)
    assert seen == [job]
    assert seen[0].profile is profile


def test_a_retry_message_of_the_previous_version_is_read_and_launched(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn.config import get_settings
    from lambda_fn.jobs import RetryMessage
    from lambda_fn.retry import handler
    from lambda_fn.retry_queue import send_raw
    from localdev.sqs_source import deliver_batch
    from tests.kit.events import LambdaContext

    message = RetryMessage.from_json(OLD_RETRY_BODY, get_settings().profiles)
    assert message.job.profile is default_profile()
    assert (message.attempt, message.first_failed_at) == (3, 1700000000.5)
    assert (message.job.run_attempt, message.job.head_branch) == (2, "main")
    # What the new version writes, the previous one reads: the same keys but ``extra``.
    written = json.loads(message.to_json())
    old = json.loads(OLD_RETRY_BODY)
    del old["job"]["extra"]
    assert written == old

    use_retry_queue(fake_aws, monkeypatch)
    monkeypatch.setattr("lambda_fn.retry.JOB_QUEUE_LIMIT_SECONDS", 10**10)  # an old stamp
    send_raw(fake_aws.retry_queue_url, OLD_RETRY_BODY)
    sqs = boto3.client("sqs", region_name=fake_aws.region)
    assert deliver_batch(sqs, fake_aws.retry_queue_url, handler, LambdaContext()) == {
        "batchItemFailures": []
    }
    (task,) = fake_aws.tasks()
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert (tags[contract.TAG_GITHUB_JOB_ID], tags[contract.TAG_GITHUB_RUN_ATTEMPT]) == (
        "4343",
        "2",
    )


def test_a_retry_message_for_a_profile_that_is_gone_is_parked_unchanged(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn.retry import handler
    from lambda_fn.retry_queue import send_raw
    from localdev.sqs_source import deliver_batch
    from tests.kit.events import LambdaContext

    use_retry_queue(fake_aws, monkeypatch)
    body = OLD_RETRY_BODY.replace('"profile": "default"', '"profile": "renamed"')
    send_raw(fake_aws.retry_queue_url, body)
    sqs = boto3.client("sqs", region_name=fake_aws.region)
    deliver_batch(sqs, fake_aws.retry_queue_url, handler, LambdaContext())
    assert fake_aws.messages(fake_aws.dead_letter_queue_url) == [json.loads(body)]
    assert fake_aws.messages(fake_aws.retry_queue_url) == []
    assert fake_aws.tasks() == []
