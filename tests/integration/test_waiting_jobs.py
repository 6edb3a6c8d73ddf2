"""Jobs waiting for an environment's approval (docs/waiting-jobs.md).

GitHub sends ``queued`` with ``workflow_job.status: "waiting"`` and a ``deployment`` while
a protection rule holds the job, then ``queued`` again after approval; peers report the
second may never come. The GitHub model gates and approves the job (pending deployments,
deployment statuses, job status), moto holds the table and the tasks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.kit.events import deliver, queued_payload, waiting_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import FakeAws

RUN = 777


def reconcile(now: datetime | None = None) -> dict[str, int]:
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import reconcile as run

    return dict(run(get_settings(), now))


def remembered() -> dict[int, Any]:
    from lambda_fn.config import get_settings
    from lambda_fn.waiting import remembered as listed

    return {w.job_id: w for w in listed(get_settings())}


def launch_record_exists(fake_aws: FakeAws) -> bool:
    import boto3

    items = boto3.client("dynamodb", region_name=fake_aws.region).scan(TableName=fake_aws.table)
    return any(i["id"]["S"].startswith("workflow-job#") for i in items["Items"])


def gate(github: FakeGitHub, job_id: int, environment: str = "prod") -> int:
    github.runs[RUN] = {"id": RUN, "event": "push", "head_branch": "main"}
    return github.wait_for_approval(job_id, RUN, environment, deployment_id=875096709)


# --- the webhook path ------------------------------------------------------------------------


def test_waiting_then_approved_starts_exactly_one_runner(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    gate(github, 51)
    status, body = deliver(waiting_payload(51))
    assert (status, body) == (
        200,
        {"status": "ignored", "reason": "job waits for environment 'prod' approval"},
    )
    assert fake_aws.tasks() == []
    assert not launch_record_exists(fake_aws)  # the later delivery must not be a duplicate
    assert 51 in remembered()

    assert github.approve(RUN, "prod") == [51]
    status, body = deliver(waiting_payload(51, status="queued"))
    assert (status, body["status"]) == (200, "launched")
    assert len(fake_aws.tasks()) == 1


def test_the_waiting_action_is_ignored_the_same_way(fake_aws: FakeAws, github: FakeGitHub) -> None:
    gate(github, 52)
    status, body = deliver(waiting_payload(52, action="waiting"))
    assert (status, body["status"], body["reason"]) == (
        200,
        "ignored",
        "job waits for environment 'prod' approval",
    )
    assert fake_aws.tasks() == []
    assert 52 in remembered()


def test_waiting_counts_as_an_ignored_job(
    fake_aws: FakeAws, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    deliver(waiting_payload(53))
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    ignored = [m for m in metrics if "JobsIgnored" in m]
    assert ignored and ignored[-1]["reason"] == "waiting"


def test_out_of_order_deliveries_still_start_one_runner(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """runs-on #539: the approved queued arrives before the waiting one."""
    gate(github, 54)
    github.approve(RUN, "prod")
    assert deliver(waiting_payload(54, status="queued"))[1]["status"] == "launched"
    assert deliver(waiting_payload(54))[1]["status"] == "ignored"
    assert deliver(waiting_payload(54, status="queued"))[1]["status"] == "duplicate"
    reconcile()  # GitHub now says queued and nothing pending: launch_once finds the record
    assert len(fake_aws.tasks()) == 1
    assert 54 not in remembered()


def test_a_deployment_without_a_status_asks_github(fake_aws: FakeAws, github: FakeGitHub) -> None:
    gate(github, 55)
    status, body = deliver(waiting_payload(55, status=None))
    assert (status, body["status"]) == (200, "ignored")
    assert github.calls("GET", f"/actions/runs/{RUN}/pending_deployments")
    github.approve(RUN, "prod")
    assert deliver(waiting_payload(55, status=None))[1]["status"] == "launched"


def test_pending_deployments_unreadable_remembers_the_job(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    gate(github, 56)
    github.fail("GET", "pending_deployments", 502, times=None)
    status, body = deliver(waiting_payload(56, status=None))
    assert (status, body["status"]) == (200, "ignored")
    assert "the reconciler checks it" in body["reason"]
    assert fake_aws.tasks() == []
    assert 56 in remembered()


def test_a_job_without_a_deployment_is_unchanged(fake_aws: FakeAws, github: FakeGitHub) -> None:
    assert deliver(queued_payload(57))[1]["status"] == "launched"
    assert github.calls("GET", "pending_deployments") == []


# --- the reconciler ----------------------------------------------------------------------------


def test_approved_without_a_second_queued_is_launched_by_the_reconciler_once(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    gate(github, 61)
    deliver(waiting_payload(61))
    assert reconcile().get("waiting_kept") == 1  # still waiting: nothing starts
    assert fake_aws.tasks() == []

    github.approve(RUN, "prod")
    assert reconcile().get("waiting_launched") == 1
    assert len(fake_aws.tasks()) == 1
    assert 61 not in remembered()
    assert "waiting_launched" not in reconcile()
    assert len(fake_aws.tasks()) == 1


def test_second_queued_then_reconciler_is_still_one_runner(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    gate(github, 62)
    deliver(waiting_payload(62))
    github.approve(RUN, "prod")
    assert deliver(waiting_payload(62, status="queued"))[1]["status"] == "launched"
    assert reconcile().get("waiting_duplicate") == 1
    assert len(fake_aws.tasks()) == 1
    assert 62 not in remembered()


def test_job_queued_while_its_environment_still_pends_is_kept(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """runs-on #386: a job status can read queued while a deployment still waits."""
    gate(github, 63)
    deliver(waiting_payload(63))
    github.job_status[63] = "queued"
    assert reconcile().get("waiting_kept") == 1
    assert fake_aws.tasks() == []


@pytest.mark.parametrize("status", ["completed", "in_progress"])
def test_finished_or_taken_jobs_are_forgotten(
    fake_aws: FakeAws, github: FakeGitHub, status: str
) -> None:
    gate(github, 64)
    deliver(waiting_payload(64))
    github.job_status[64] = status
    assert reconcile().get("waiting_done") == 1
    assert 64 not in remembered()
    assert fake_aws.tasks() == []


def test_rejected_jobs_are_forgotten(fake_aws: FakeAws, github: FakeGitHub) -> None:
    gate(github, 65)
    deliver(waiting_payload(65))
    github.approve(RUN, "prod", state="rejected")
    reconcile()
    assert 65 not in remembered()
    assert fake_aws.tasks() == []


def test_github_unreadable_keeps_the_job(fake_aws: FakeAws, github: FakeGitHub) -> None:
    gate(github, 66)
    deliver(waiting_payload(66))
    github.approve(RUN, "prod")
    github.fail("GET", r"/actions/jobs/66$", 502, times=None)
    assert reconcile().get("waiting_unknown") == 1
    assert 66 in remembered()
    github.clear_faults()
    assert reconcile().get("waiting_launched") == 1


def test_work_per_run_is_bounded_and_rotates(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lambda_fn.reconciler.MAX_WAITING_CHECKS", 2)
    for job_id in (71, 72, 73):
        gate(github, job_id)
        deliver(waiting_payload(job_id))
    now = datetime.now(UTC)
    assert reconcile(now).get("waiting_kept") == 2
    looked = {j for j, w in remembered().items() if w.checked}
    assert len(looked) == 2
    reconcile(now + timedelta(minutes=5))
    assert all(w.checked for w in remembered().values())  # the third one got its turn


def test_remembered_jobs_expire(fake_aws: FakeAws, github: FakeGitHub) -> None:
    deliver(waiting_payload(74))
    assert reconcile(datetime.now(UTC) + timedelta(days=36)).get("waiting_expired") == 1
    assert remembered() == {}


# --- deliveries judged on the fields they need -------------------------------------------------


@pytest.mark.parametrize("missing", ["created_at", "started_at"])
def test_in_progress_without_times_is_2xx(
    fake_aws: FakeAws, github: FakeGitHub, missing: str
) -> None:
    launched = deliver(queued_payload(81))[1]
    payload = queued_payload(81, action="in_progress")
    payload["workflow_job"].update(
        status="in_progress", runner_name=launched["runner_name"], started_at="2025-01-01T10:00:00Z"
    )
    del payload["workflow_job"][missing]
    status, body = deliver(payload)
    assert (status, body["status"]) == (200, "started")
    assert "queued_seconds" not in body  # only the time-to-start figure is skipped


def test_completed_without_created_at_is_2xx(fake_aws: FakeAws, github: FakeGitHub) -> None:
    payload = queued_payload(82, action="completed")
    del payload["workflow_job"]["created_at"]
    assert deliver(payload)[0] == 200


def test_queued_without_created_at_is_still_refused(fake_aws: FakeAws, github: FakeGitHub) -> None:
    payload = waiting_payload(83)
    del payload["workflow_job"]["created_at"]
    status, body = deliver(payload)
    assert status == 400 and "workflow_job.created_at" in body["message"]
    assert remembered() == {}


def test_the_reconcilers_launch_is_bounded_by_its_invocation(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """A reconciler that dies mid-launch must not hold the job for the record's whole TTL.

    Its launches happen deep inside its steps; the handler gives Powertools the invocation's
    deadline once, so the in-progress record carries ``in_progress_expiration`` (without it
    Powertools warns "Couldn't determine the remaining time left" and sets none).
    """
    import boto3

    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import handler
    from localdev.lambda_events import LambdaContext

    gate(github, 64)
    deliver(waiting_payload(64))
    github.approve(RUN, "prod")
    assert handler({}, LambdaContext(timeout_seconds=300)).get("waiting_launched") == 1
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(
        get_settings().idempotency_table
    )
    records = [
        item
        for item in table.scan()["Items"]
        if item.get("status") == "COMPLETED" and "in_progress_expiration" in item
    ]
    assert len(records) == 1
    assert len(fake_aws.tasks()) == 1
