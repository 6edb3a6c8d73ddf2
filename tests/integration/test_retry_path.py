"""docs/contract.md "Retry path": transient failures are queued (202) and retried, never lost.

The retry consumer (``lambda_fn.retry.handler``) is driven with real SQS batch
events read from moto's queues. Backoff delays are patched to zero so a test
can drain the queue at once; one test checks the real delays are sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.retry import drain, tasks_per_job
from tests.kit.world import FakeAws, set_profiles, use_retry_queue


@pytest.fixture
def queues(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    monkeypatch.setattr("lambda_fn.retry.WAIT_DELAY_SECONDS", 0)
    yield use_retry_queue(fake_aws, monkeypatch)


def default_job(job_id: int) -> Any:
    """A job of octo-org/app for the ``default`` profile, as the webhook would queue it."""
    from lambda_fn.config import get_settings
    from lambda_fn.jobs import Job, profile_named

    default = profile_named(get_settings().profiles, "default")
    return Job(job_id, 777, 1, "octo-org", "app", ("self-hosted",), default)


def test_transient_github_failure_is_accepted_and_queued(
    queues: FakeAws, github: FakeGitHub
) -> None:
    github.set_jit(status=502, json={"message": "bad gateway"})
    status, body = deliver(queued_payload(job_id=21))
    assert status == 202
    assert body["status"] == "queued_for_retry"
    (message,) = queues.messages(queues.retry_queue_url)
    assert message["job"]["job_id"] == 21
    assert message["job"]["profile"] == "default"
    assert message["attempt"] == 1
    assert "502" in message["last_error"]
    assert queues.tasks() == []


def test_retry_launches_once_github_recovers(queues: FakeAws, github: FakeGitHub) -> None:
    github.set_jit(status=503)
    assert deliver(queued_payload(job_id=22))[0] == 202
    github.set_jit(github.jit_callback)
    drain(queues)
    assert tasks_per_job(queues) == {"22": 1}
    assert queues.messages(queues.retry_queue_url) == []
    assert queues.messages(queues.dead_letter_queue_url) == []


def test_retry_drops_a_job_that_was_cancelled_meanwhile(
    queues: FakeAws, github: FakeGitHub
) -> None:
    github.set_jit(status=503)
    assert deliver(queued_payload(job_id=23))[0] == 202
    github.set_jit(github.jit_callback)
    github.job_status[23] = "completed"
    drain(queues)
    assert queues.tasks() == []
    assert github.jit_requests == []
    assert queues.messages(queues.retry_queue_url) == []


@pytest.mark.parametrize("status", ["queued", "waiting", "pending"])
def test_statuses_that_still_need_a_runner_are_retried(
    queues: FakeAws, github: FakeGitHub, status: str
) -> None:
    github.set_jit(status=503)
    deliver(queued_payload(job_id=24))
    github.set_jit(github.jit_callback)
    github.job_status[24] = status
    drain(queues)
    assert tasks_per_job(queues) == {"24": 1}


def test_unreadable_job_status_is_unknown_not_done(queues: FakeAws, github: FakeGitHub) -> None:
    github.set_jit(status=503)
    deliver(queued_payload(job_id=25))
    github.set_jit(github.jit_callback)
    github.fail("GET", r"/actions/jobs/", 500, times=None)
    drain(queues)
    assert tasks_per_job(queues) == {"25": 1}


def test_permanent_failure_after_max_attempts_goes_to_dlq(
    queues: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "4")
    github.set_jit(status=502)
    deliver(queued_payload(job_id=26))
    drain(queues)
    assert queues.tasks() == []
    assert queues.messages(queues.retry_queue_url) == []
    (parked,) = queues.messages(queues.dead_letter_queue_url)
    assert parked["job"]["job_id"] == 26
    assert parked["attempt"] == 1  # a replay after a fix gets a full set of retries
    assert "gave up after 4 attempts" in parked["last_error"]
    # 1 webhook attempt x 3 HTTP tries, then 3 retries x 3 HTTP tries, then the last one
    assert len(github.mock.calls) >= 4 * 3


def test_github_refusal_on_retry_goes_to_dlq_at_once(queues: FakeAws, github: FakeGitHub) -> None:
    github.set_jit(status=503)
    deliver(queued_payload(job_id=27))
    github.set_jit(status=403, json={"message": "Resource not accessible by integration"})
    drain(queues)
    (parked,) = queues.messages(queues.dead_letter_queue_url)
    assert parked["attempt"] == 1
    assert "permanent failure" in parked["last_error"]
    assert queues.tasks() == []


def test_permanent_failure_on_webhook_is_502_and_parked(
    queues: FakeAws, github: FakeGitHub
) -> None:
    github.set_jit(status=404, json={"message": "Not Found"})
    status, _ = deliver(queued_payload(job_id=28))
    assert status == 502
    (parked,) = queues.messages(queues.dead_letter_queue_url)
    assert parked["job"]["job_id"] == 28
    assert "404" in parked["last_error"]


def test_retry_of_a_job_the_webhook_already_launched_starts_nothing(
    queues: FakeAws, github: FakeGitHub
) -> None:
    from lambda_fn.retry_queue import first_failure, send

    assert deliver(queued_payload(job_id=29))[0] == 200
    job = default_job(29)
    send(queues.retry_queue_url, first_failure(job, "simulated stale retry"))
    drain(queues)
    assert tasks_per_job(queues) == {"29": 1}
    assert len(github.jit_requests) == 1


def test_webhook_and_retry_racing_for_one_job_start_one_task(
    queues: FakeAws, github: FakeGitHub
) -> None:
    """The retry consumer runs while the webhook is mid-launch for the same job."""
    from lambda_fn.retry_queue import first_failure, send

    job = default_job(30)
    send(queues.retry_queue_url, first_failure(job, "earlier delivery failed"))
    original = github.jit_callback
    raced: list[Any] = []

    def jit_while_retry_runs(request: Any) -> Any:
        if not raced:
            raced.append(drain(queues, rounds=1))  # sees the job in progress -> waits
        return original(request)

    github.set_jit(jit_while_retry_runs)
    status, body = deliver(queued_payload(job_id=30))
    assert (status, body["status"]) == (200, "launched")
    assert raced[0][0]["batchItemFailures"] == []
    assert len(queues.messages(queues.retry_queue_url)) == 1  # re-sent to wait
    drain(queues)  # now it finds the job launched
    assert tasks_per_job(queues) == {"30": 1}
    assert len(github.jit_requests) == 1
    assert queues.messages(queues.retry_queue_url) == []


def test_real_backoff_delays_grow_and_cap(fake_aws: FakeAws) -> None:
    from lambda_fn.retry_queue import backoff_seconds

    delays = [backoff_seconds(attempt, 20) for attempt in range(1, 9)]
    assert delays == [20, 40, 80, 160, 320, 640, 900, 900]
    assert sum(delays[:7]) / 60 == pytest.approx(36, abs=1)


def test_webhook_sends_the_first_delay_to_sqs(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in fake_aws.queue_env().items():
        monkeypatch.setenv(key, value)
    from lambda_fn import aws

    sent: list[dict[str, Any]] = []
    aws.client("sqs").meta.events.register(
        "provide-client-params.sqs.SendMessage", lambda params, **_: sent.append(params)
    )
    github.set_jit(status=503)
    status, body = deliver(queued_payload(job_id=31))
    assert status == 202
    assert body["retry_in_seconds"] == 20
    assert sent[0]["DelaySeconds"] == 20


def test_queue_outage_on_webhook_is_503_not_a_silent_loss(
    queues: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_QUEUE_URL", queues.retry_queue_url + "-missing")
    github.set_jit(status=503)
    status, body = deliver(queued_payload(job_id=32))
    assert status == 503
    assert body["status"] == "error"


def test_unsendable_retry_is_a_batch_item_failure(
    queues: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    github.set_jit(status=503)
    deliver(queued_payload(job_id=33))
    monkeypatch.setenv("RETRY_QUEUE_URL", queues.retry_queue_url + "-missing")
    results = drain(queues, rounds=1)
    assert len(results[0]["batchItemFailures"]) == 1  # SQS keeps the message
    assert len(queues.messages(queues.retry_queue_url)) == 1


def test_unreadable_message_is_parked_not_retried_forever(
    queues: FakeAws, github: FakeGitHub
) -> None:
    sqs = boto3.client("sqs", region_name=queues.region)
    sqs.send_message(QueueUrl=queues.retry_queue_url, MessageBody="{not json")
    results = drain(queues)
    assert results[0]["batchItemFailures"] == []
    assert queues.messages(queues.retry_queue_url) == []
    dlq = sqs.receive_message(QueueUrl=queues.dead_letter_queue_url)["Messages"]
    assert dlq[0]["Body"] == "{not json"


def test_message_body_carries_no_secret(queues: FakeAws, github: FakeGitHub) -> None:
    from tests.kit.world import PAT, WEBHOOK_SECRET

    github.set_jit(status=503)
    deliver(queued_payload(job_id=34))
    text = json.dumps(queues.messages(queues.retry_queue_url))
    assert PAT not in text
    assert WEBHOOK_SECRET not in text


def test_replayed_dlq_message_launches_once_fixed(queues: FakeAws, github: FakeGitHub) -> None:
    """docs/deliveries.md, "Replaying the DLQ": move the messages back and the consumer launches."""
    github.set_jit(status=403, json={"message": "Must have admin rights"})
    assert deliver(queued_payload(job_id=35))[0] == 502
    github.set_jit(github.jit_callback)  # the operator fixed the token
    sqs = boto3.client("sqs", region_name=queues.region)
    for m in sqs.receive_message(QueueUrl=queues.dead_letter_queue_url)["Messages"]:
        sqs.send_message(QueueUrl=queues.retry_queue_url, MessageBody=m["Body"])
        sqs.delete_message(QueueUrl=queues.dead_letter_queue_url, ReceiptHandle=m["ReceiptHandle"])
    drain(queues)
    assert tasks_per_job(queues) == {"35": 1}


# --- max_runners: jobs wait, visibly, without counting as failures ---------------------------


def test_jobs_over_max_runners_wait_with_a_metric_and_a_log_line(
    fake_aws: FakeAws,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    lambda_logs: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in fake_aws.queue_env().items():
        monkeypatch.setenv(key, value)
    profiles = fake_aws.profiles()
    profiles[0]["max_runners"] = 1
    set_profiles(monkeypatch, profiles)
    assert deliver(queued_payload(job_id=1))[0] == 200
    status, body = deliver(queued_payload(job_id=2))
    assert status == 202
    assert body["status"] == "queued_for_retry"
    assert "already runs 1 of 1 runners" in body["reason"]
    assert len(fake_aws.tasks()) == 1
    assert github.jit_requests and len(github.jit_requests) == 1  # nothing registered for job 2
    logs = [json.loads(line) for line in lambda_logs.getvalue().splitlines()]
    (waiting,) = [
        entry for entry in logs if entry["message"] == "job waits: profile is at max_runners"
    ]
    assert (waiting["running"], waiting["max_runners"], waiting["level"]) == (1, 1, "WARNING")
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for doc in emf for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert "JobsWaitingForCapacity" in names
    assert "LaunchFailures" not in names  # waiting is not a failure (no alarm during a big matrix)
    (metric,) = [doc for doc in emf if "JobsWaitingForCapacity" in doc]
    assert metric["profile"] == profiles[0]["name"]
    assert [m["job"]["job_id"] for m in fake_aws.messages(fake_aws.retry_queue_url)] == [2]
