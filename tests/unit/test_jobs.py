"""lambda_fn/jobs.py: the job's one shape and its stored forms (no AWS needed)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lambda_fn.config import Profile
from lambda_fn.jobs import Job, RetryMessage, UnknownProfileError, WaitingJob, profile_named

DEFAULT = Profile("default", ("self-hosted",), "arn:td/runner:1", "runner")
DEPLOY = Profile("deploy", ("deploy",), "arn:td/deploy:1", "runner")
PROFILES = (DEFAULT, DEPLOY)


def test_the_idempotency_key_is_the_job_id_or_the_replacement() -> None:
    job = Job(123, 4, 1, "o", "r", ("self-hosted",), DEFAULT)
    assert job.idempotency_key == "123"
    assert replace(job, replacement=2).idempotency_key == "123#replacement-2"
    assert replace(replace(job, replacement=2), replacement=0).idempotency_key == "123"


def test_the_wire_carries_the_profile_name_and_reads_back_the_same_profile() -> None:
    job = Job(7, 8, 2, "o", "r", ("deploy",), DEPLOY, "ci", "main", "production")
    message = RetryMessage(job, 3, 1.5, "x" * 5000)
    body = json.loads(message.to_json())
    assert body["job"]["profile"] == "deploy"
    assert len(body["last_error"]) == 1000
    back = RetryMessage.from_json(message.to_json(), PROFILES)
    assert back.job == job
    assert back.job.profile is DEPLOY


def test_a_stored_job_naming_no_profile_is_refused_by_name() -> None:
    body = RetryMessage(Job(7, 8, 1, "o", "r", ("x",), DEFAULT), 1, 0.0).to_json()
    with pytest.raises(UnknownProfileError, match="'default'"):
        RetryMessage.from_json(body, (DEPLOY,))
    with pytest.raises(UnknownProfileError):
        profile_named(PROFILES, "gone")


@pytest.mark.parametrize("labels", ['"self-hosted"', "null", "7"])
def test_labels_that_are_not_a_list_are_refused(labels: str) -> None:
    body = RetryMessage(Job(7, 8, 1, "o", "r", ("x",), DEFAULT), 1, 0.0).to_json()
    body = body.replace('["x"]', labels)
    with pytest.raises((TypeError, ValueError, KeyError)):
        RetryMessage.from_json(body, PROFILES)


def test_a_waiting_job_round_trips_through_its_item_and_back_to_the_job() -> None:
    job = Job(7, 8, 1, "o", "r", ("deploy",), DEPLOY, None, "main", "production")
    waiting = WaitingJob.of(job, 1000)
    stored = WaitingJob.from_item(waiting.to_item())
    assert stored == waiting
    assert stored is not None and stored.profile == "deploy"
    assert stored.job(PROFILES) == job
