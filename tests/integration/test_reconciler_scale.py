"""Issue 24: the reconciler's GitHub calls follow the live fleet, not the last hour's
finished jobs; ``max_runners`` holds under concurrent launches without a paged count
per delivery. Call counts are read from the GitHub model's record of every request."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import FakeAws, set_profiles


def reconcile(**kwargs: Any) -> dict[str, int]:
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import reconcile as run

    return dict(run(get_settings(), **kwargs))


def launch(job_id: int) -> dict[str, Any]:
    status, body = deliver(queued_payload(job_id=job_id))
    assert status == 200, body
    return body


def job_delivery(job_id: int, action: str, runner_name: str | None) -> None:
    payload = queued_payload(job_id=job_id, action=action)
    job = payload["workflow_job"]
    job["status"] = action
    job["runner_name"] = runner_name
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    job["started_at"] = now
    if action == "completed":
        job["conclusion"] = "success"
    status, body = deliver(payload)
    assert status == 200, body


def stop(task_arn: str, reason: str = "Essential container in task exited") -> None:
    cluster = task_arn.split(":task/", 1)[1].split("/", 1)[0]
    boto3.client("ecs", region_name="us-east-1").stop_task(
        cluster=cluster, task=task_arn, reason=reason
    )


def job_lookups(github: FakeGitHub) -> int:
    return len(github.calls("GET", "/actions/jobs/"))


def finish(github: FakeGitHub, job_id: int, launched: dict[str, Any]) -> None:
    """GitHub's side of a job that ran on its runner: in_progress, then completed."""
    job_delivery(job_id, "in_progress", launched["runner_name"])
    github.job_status[job_id] = "completed"
    github.runners.pop(launched["runner_id"], None)  # an ephemeral runner deregisters
    stop(launched["task_arn"])
    job_delivery(job_id, "completed", launched["runner_name"])


#: Finished jobs: more than twice the call bound, so a call per finished job (or per
#: stopped task) breaks it; flat cost at 150, 500 and 2,000 is the benchmark's (bench/scale.py).
FINISHED = 40


def test_finished_and_10_busy_jobs_cost_at_most_15_calls(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiles = fake_aws.profiles()
    profiles[0]["max_runners"] = 500
    set_profiles(monkeypatch, profiles)
    assert FINISHED > 2 * 15
    for job_id in range(1000, 1000 + FINISHED):
        finish(github, job_id, launch(job_id))
    for job_id in range(2000, 2010):
        launched = launch(job_id)
        github.runners[launched["runner_id"]].update(status="online", busy=True)
        github.job_status[job_id] = "in_progress"
        job_delivery(job_id, "in_progress", launched["runner_name"])
    before = len(github.requests)
    report = reconcile()
    calls = github.requests[before:]
    assert len(calls) <= 15, [f"{c.method} {c.path}" for c in calls]
    assert job_lookups(github) == 0
    assert report["jobs_known_done"] == FINISHED
    assert "over_budget" not in report
    before = len(github.requests)
    reconcile()  # the next run: still nothing per finished job
    assert not [c for c in github.requests[before:] if "/actions/jobs/" in c.path]


def test_a_job_without_records_is_asked_about_once_per_stopped_task(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    launched = launch(31)
    github.job_status[31] = "completed"  # its deliveries were lost
    stop(launched["task_arn"])
    reconcile()
    reconcile()
    reconcile()
    assert job_lookups(github) == 1


def test_a_replacement_that_stops_too_is_a_new_question(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    launched = launch(32)
    stop(launched["task_arn"], reason="CannotPullContainerError: pull access denied")
    assert reconcile()["replaced"] == 1
    assert reconcile().get("replaced", 0) == 0
    (replacement,) = [t for t in fake_aws.tasks() if t["desiredStatus"] == "RUNNING"]
    stop(replacement["taskArn"], reason="Spot interruption")
    assert reconcile()["replaced"] == 1  # asked again: its last stopped task is new
    assert job_lookups(github) == 2


def test_a_completed_delivery_spares_the_lookup(fake_aws: FakeAws, github: FakeGitHub) -> None:
    launched = launch(33)
    stop(launched["task_arn"])
    job_delivery(33, "completed", None)  # cancelled before a runner took it
    assert reconcile().get("jobs_known_done") == 1
    assert job_lookups(github) == 0


def test_lookups_that_do_not_fit_the_budget_are_deferred_and_reported(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import reconciler

    for job_id in (41, 42):
        stop(launch(job_id)["task_arn"], reason="CannotPullContainerError: x")
    emitted: list[str] = []
    real_count = reconciler.count
    monkeypatch.setattr(
        reconciler, "count", lambda name, *a, **k: (emitted.append(name), real_count(name, *a, **k))
    )
    # No time for any lookup: only the later steps' share is left.
    report = reconcile(budget_seconds=reconciler.LATER_STEPS_SECONDS)
    assert report["lookups_deferred"] == 2
    assert report["over_budget"] == 1
    assert job_lookups(github) == 0
    assert "ReconcilerOverBudget" in emitted
    emitted.clear()
    assert reconcile()["replaced"] == 2  # a run with time replaces both: deferred, not lost
    assert "ReconcilerOverBudget" not in emitted


def test_steps_past_the_deadline_are_skipped_vital_ones_first(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    ticks = iter([0.0, 0.0, 0.0, 0.0, 200.0])  # budget start, replace, warm, deliveries...

    def clock() -> float:
        return next(ticks, 200.0)

    report = reconcile(clock=clock)
    assert report["over_budget"] == 1
    assert report["webhook_unknown"] == 1  # the redelivery step ran (no webhook recorded)
    assert "capacity_corrected" not in report  # a later step: skipped
    assert not github.calls("GET", "/actions/runners")  # registrations: skipped


# --- max_runners: a slot counter --------------------------------------------------------------


def capped(monkeypatch: pytest.MonkeyPatch, fake_aws: FakeAws, cap: int) -> Any:
    from lambda_fn.config import _parse_cached, get_settings
    from lambda_fn.jobs import profile_named

    profiles = fake_aws.profiles()
    profiles[0]["max_runners"] = cap
    set_profiles(monkeypatch, profiles)
    _parse_cached.cache_clear()
    settings = get_settings()
    return settings, profile_named(settings.profiles, "default")


def test_concurrent_reservations_never_pass_the_cap(
    fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import aws, capacity
    from lambda_fn.errors import CapacityWaitError

    settings, profile = capped(monkeypatch, fake_aws, 3)
    # DynamoDB applies one item's conditional update atomically (AWS documents it; that is
    # what the counter relies on). moto's in-process backend checks the condition and then
    # writes without a lock, so threads could interleave there: give it DynamoDB's atomicity.
    from moto.dynamodb.models import DynamoDBBackend

    atomic = threading.Lock()
    unlocked = DynamoDBBackend.update_item

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with atomic:
            return unlocked(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "update_item", update_item)
    aws.client("dynamodb")  # created once, before the threads
    aws.client("ecs")
    outcomes: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(12)

    def take() -> None:
        gate.wait()
        try:
            capacity.reserve(settings, profile)
            result = "slot"
        except CapacityWaitError:
            result = "wait"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=take) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("slot") == 3
    assert outcomes.count("wait") == 9


def test_the_cap_is_counted_from_ecs_only_at_the_cap(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import aws

    capped(monkeypatch, fake_aws, 2)
    listed: list[dict[str, Any]] = []
    aws.client("ecs").meta.events.register(
        "provide-client-params.ecs.ListTasks", lambda params, **_: listed.append(params)
    )
    first, second = launch(51), launch(52)
    assert not [p for p in listed if "family" in p]  # below the cap: no count
    status, _ = deliver(queued_payload(job_id=53))
    assert status == 503  # no retry queue in this environment: GitHub is told to retry
    assert len([p for p in listed if "family" in p]) == 1  # at the cap: counted once
    stop(first["task_arn"])
    launch(54)  # a slot is free again: the recount finds it at once
    assert len([p for p in listed if "family" in p]) == 2
    assert second["task_arn"] != first["task_arn"]


def test_a_failed_launch_gives_its_slot_back(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import aws

    settings, _ = capped(monkeypatch, fake_aws, 1)
    github.set_jit(status=422, json={"message": "Validation failed"})
    assert deliver(queued_payload(job_id=61))[0] >= 400
    github.set_jit(github.jit_callback)
    launch(62)  # the slot of job 61 was given back: no recount needed
    item = aws.client("dynamodb").get_item(
        TableName=settings.idempotency_table, Key={"id": {"S": "capacity#default"}}
    )["Item"]
    assert item["running"] == {"N": "1"}
    assert not [k for k in item if k.startswith("pending_")]


def test_the_reconciler_corrects_the_counter_from_ecs(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import aws, capacity

    settings, _ = capped(monkeypatch, fake_aws, 5)
    launched = launch(71)
    launch(72)
    stop(launched["task_arn"])
    job_delivery(71, "completed", None)  # cancelled: no replacement
    monkeypatch.setattr(capacity, "IN_FLIGHT_SECONDS", 0)  # no launch under way
    assert reconcile()["capacity_corrected"] == 2  # both profiles: the default cap is 64
    item = aws.client("dynamodb").get_item(
        TableName=settings.idempotency_table, Key={"id": {"S": "capacity#default"}}
    )["Item"]
    assert item["running"] == {"N": "1"}


def test_a_registration_whose_task_started_after_the_listing_is_kept(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's one listing is old by the time registrations are checked: a runner
    launched since is found by a fresh look before anything is deleted."""
    from lambda_fn import reconciler

    late: dict[str, Any] = {}
    listed = reconciler.Fleet.listed

    def listing_then_launch(settings: Any) -> Any:
        fleet = listed(settings)
        late.update(launch(81))  # a delivery lands while the reconciler runs
        return fleet

    monkeypatch.setattr(reconciler.Fleet, "listed", staticmethod(listing_then_launch))
    report = reconcile()
    assert report.get("registrations_removed", 0) == 0
    assert late["runner_id"] in github.runners


def test_a_job_that_ran_on_its_own_runner_costs_one_call_in_all(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """Unrestricted job, whole life: the JIT config; its ephemeral runner deregisters and
    exits by itself, so the completed delivery deletes nothing; the reconciler asks nothing."""
    before = len(github.requests)
    launched = launch(91)
    job_delivery(91, "in_progress", launched["runner_name"])
    github.job_status[91] = "completed"
    github.runners.pop(launched["runner_id"])  # an ephemeral runner deregisters
    job_delivery(91, "completed", launched["runner_name"])  # its task still runs
    assert {t["taskArn"]: t["desiredStatus"] for t in fake_aws.tasks()} == {
        launched["task_arn"]: "RUNNING"  # not stopped by us: it exits by itself
    }
    stop(launched["task_arn"])
    reconcile()
    job_calls = [
        f"{c.method} {c.path}"
        for c in github.requests[before:]
        if "/actions/jobs/" in c.path or "generate-jitconfig" in c.path or c.method == "DELETE"
    ]
    assert job_calls == ["POST /repos/octo-org/app/actions/runners/generate-jitconfig"]
