"""Nothing left running: completed/cancelled jobs, idle runners, dead runners, offline
registrations and missed deliveries. moto for ECS, an HTTP-level GitHub fake that
behaves like GitHub (deleting a busy runner answers 422)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from lambda_fn import contract
from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.reconcile import delivery, kill, reconcile
from tests.kit.world import FakeAws


def launch(job_id: int, labels: list[str] | None = None) -> dict[str, Any]:
    status, body = deliver(queued_payload(job_id=job_id, labels=labels))
    assert status == 200, body
    return body


def task_states(fake_aws: FakeAws) -> dict[str, str]:
    return {t["taskArn"]: t["desiredStatus"] for t in fake_aws.tasks()}


def completed(job_id: int, runner_name: str | None = None, conclusion: str = "cancelled") -> Any:
    payload = queued_payload(job_id=job_id, action="completed")
    payload["workflow_job"]["runner_name"] = runner_name
    payload["workflow_job"]["conclusion"] = conclusion
    return deliver(payload)


# --- workflow_job completed -------------------------------------------------------------------


def test_cancelled_before_pickup_stops_the_task_and_removes_the_runner(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    launched = launch(41)
    status, body = completed(41)
    assert status == 200
    assert body == {"status": "completed", "job_id": 41, "runners_released": 1}
    assert task_states(fake_aws)[launched["task_arn"]] == "STOPPED"
    assert github.deleted_runners == [launched["runner_id"]]


def test_runner_busy_with_another_job_is_never_stopped(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    launched = launch(42)
    github.runners[launched["runner_id"]]["busy"] = True  # it took some other job
    status, body = completed(42)
    assert status == 200
    assert body["runners_released"] == 0
    assert task_states(fake_aws)[launched["task_arn"]] == "RUNNING"
    assert github.deleted_runners == []


def test_completed_for_unknown_job_is_harmless(fake_aws: FakeAws, github: FakeGitHub) -> None:
    other = launch(43)
    status, body = completed(999)
    assert status == 200
    assert body["runners_released"] == 0
    assert task_states(fake_aws)[other["task_arn"]] == "RUNNING"


def test_cleanup_failure_is_still_2xx(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch(44)
    monkeypatch.setenv("ECS_CLUSTER", "no-such-cluster")
    status, body = completed(44)
    assert status == 200
    assert "reconciler" in body["reason"]


# --- reconciler: idle runners -------------------------------------------------------------------


@pytest.fixture
def created_long_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto leaves createdAt empty; real ECS always sets it. Give tasks an age."""
    from lambda_fn import aws

    def add_created_at(parsed: dict[str, Any], **_: Any) -> None:
        for task in parsed.get("tasks", []):
            task.setdefault("createdAt", datetime.now(UTC) - timedelta(hours=1))

    aws.client("ecs").meta.events.register("after-call.ecs.DescribeTasks", add_created_at)


def test_idle_runner_past_the_limit_is_released_busy_one_is_kept(
    fake_aws: FakeAws, github: FakeGitHub, created_long_ago: None
) -> None:
    idle = launch(51)
    busy = launch(52)
    github.runners[busy["runner_id"]]["busy"] = True
    report = reconcile()
    assert report["idle_stopped"] == 1
    assert report["busy_kept"] == 1
    states = task_states(fake_aws)
    assert states[idle["task_arn"]] == "STOPPED"
    assert states[busy["task_arn"]] == "RUNNING"


def test_young_runners_are_left_alone(fake_aws: FakeAws, github: FakeGitHub) -> None:
    launched = launch(53)
    report = reconcile()
    assert report.get("idle_stopped", 0) == 0
    assert task_states(fake_aws)[launched["task_arn"]] == "RUNNING"


# --- reconciler: runners that died before their job -----------------------------------------------


def tasks_for(fake_aws: FakeAws, job_id: int) -> list[dict[str, Any]]:
    found = []
    for task in fake_aws.tasks():
        tags = {t["key"]: t["value"] for t in task.get("tags", [])}
        if tags.get(contract.TAG_GITHUB_JOB_ID) == str(job_id):
            found.append(task)
    return found


def test_dead_runner_for_a_still_queued_job_is_replaced_once(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    launched = launch(61)
    kill(launched["task_arn"])
    assert reconcile()["replaced"] == 1
    assert reconcile().get("replaced", 0) == 0  # the replacement is alive: nothing to do
    tasks = tasks_for(fake_aws, 61)
    assert sorted(t["desiredStatus"] for t in tasks) == ["RUNNING", "STOPPED"]
    assert len(github.jit_requests) == 2


@pytest.mark.parametrize("status", ["queued", "waiting", "pending"])
def test_statuses_needing_a_runner_get_a_replacement(
    fake_aws: FakeAws, github: FakeGitHub, status: str
) -> None:
    launched = launch(62)
    github.job_status[62] = status
    kill(launched["task_arn"])
    assert reconcile()["replaced"] == 1


@pytest.mark.parametrize("status", ["in_progress", "completed"])
def test_jobs_that_started_or_finished_get_no_replacement(
    fake_aws: FakeAws, github: FakeGitHub, status: str
) -> None:
    launched = launch(63)
    github.job_status[63] = status
    kill(launched["task_arn"], reason="Essential container in task exited")
    assert reconcile().get("replaced", 0) == 0
    assert len(tasks_for(fake_aws, 63)) == 1


def test_unreadable_job_status_is_unknown_not_done(fake_aws: FakeAws, github: FakeGitHub) -> None:
    launched = launch(64)
    kill(launched["task_arn"])
    github.fail("GET", r"/actions/jobs/", 502, times=None)
    report = reconcile()
    assert report["status_unknown"] == 1
    assert report.get("replaced", 0) == 0
    github.clear_faults()  # GitHub is back: the next run replaces it
    assert reconcile()["replaced"] == 1


def test_replacements_are_bounded(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_REPLACEMENTS", "2")
    launched = launch(65)
    kill(launched["task_arn"])
    for _ in range(5):
        reconcile()
        for task in tasks_for(fake_aws, 65):
            if task["desiredStatus"] == "RUNNING":
                kill(task["taskArn"], reason="Spot interruption")
    assert len(tasks_for(fake_aws, 65)) == 3  # the original + 2 replacements
    assert reconcile()["replacements_exhausted"] == 1


def test_concurrent_reconcilers_replace_only_once(fake_aws: FakeAws, github: FakeGitHub) -> None:
    """Two scheduled runs overlapping: the replacement has its own idempotency record."""
    from lambda_fn.config import get_settings
    from lambda_fn.idempotent_launch import launch_once
    from lambda_fn.jobs import Job, profile_named

    launched = launch(66)
    kill(launched["task_arn"])
    default = profile_named(get_settings().profiles, "default")
    job = Job(66, 777, 1, "octo-org", "app", ("self-hosted",), default, replacement=1)
    first = launch_once(job)
    assert reconcile().get("replaced", 0) == 0  # same replacement number: a duplicate
    assert first["status"] == "launched"
    assert len([t for t in tasks_for(fake_aws, 66) if t["desiredStatus"] == "RUNNING"]) == 1


# --- reconciler: offline registrations -----------------------------------------------------------


def test_offline_registrations_of_ours_without_a_task_are_removed(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    alive = launch(71)
    github.runners[9001] = {"id": 9001, "name": "fgr-70-dead00", "status": "offline", "busy": False}
    github.runners[9002] = {"id": 9002, "name": "someone-else", "status": "offline", "busy": False}
    github.runners[9003] = {"id": 9003, "name": "fgr-72-online", "status": "online", "busy": False}
    report = reconcile()
    assert report["registrations_removed"] == 1
    assert github.deleted_runners == [9001]
    assert alive["runner_id"] in github.runners  # owned by a live task: kept (even offline)


def test_another_deployments_runners_are_never_removed(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deployments (same stack name, two regions) serve the same repositories."""
    from lambda_fn.aws import reset_caches

    monkeypatch.setenv("DEPLOYMENT_ID", "1c2fa620")
    reset_caches()
    alive = launch(80)
    assert github.jit_requests[-1]["name"].startswith("fgr-1c2fa620-80-")
    (task,) = tasks_for(fake_aws, 80)
    assert {"key": "runner:deployment", "value": "1c2fa620"} in task["tags"]
    offline = {"status": "offline", "busy": False}
    github.runners[9101] = {"id": 9101, "name": "fgr-1c2fa620-81-dead00", **offline}
    github.runners[9102] = {"id": 9102, "name": "fgr-9d8e7f60-82-0ff1ce", **offline}  # theirs,
    github.runners[9103] = {"id": 9103, "name": "fgr-b-1c2fa620-83-0ff1ce", **offline}  # starting
    github.runners[9104] = {"id": 9104, "name": "fgr-84-0ff1ce", **offline}
    report = reconcile()
    assert report["registrations_removed"] == 1
    assert github.deleted_runners == [9101]
    assert {9102, 9103, 9104, alive["runner_id"]} <= set(github.runners)


# --- reconciler: missed deliveries --------------------------------------------------------------


def test_failed_queued_deliveries_are_redelivered(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_HOOK_PATH", "repos/octo-org/app/hooks/12")
    github.deliveries = [
        delivery(1, "a", 502),  # failed: redeliver
        delivery(2, "b", 502),
        delivery(3, "b", 200),  # failed then succeeded: leave
        delivery(4, "c", 200),
        delivery(5, "d", 500, event="push", action=None),  # not ours
        delivery(6, "e", 0, minutes_ago=60 * 24),  # too old
        delivery(7, "f", 0),  # timed out: redeliver
        *[delivery(10 + i, "g", 502) for i in range(3)],  # tried enough
    ]
    report = reconcile()
    assert sorted(github.redelivered) == [1, 7]
    assert report["redelivered"] == 2


def test_no_hook_configured_means_no_delivery_calls(fake_aws: FakeAws, github: FakeGitHub) -> None:
    reconcile()
    assert not [c for c in github.mock.calls if "/hooks/" in c.request.url]


def test_one_failing_step_does_not_stop_the_others(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_HOOK_PATH", "repos/octo-org/app/hooks/12")
    github.deliveries = [delivery(1, "a", 502)]
    launched = launch(81)
    kill(launched["task_arn"])
    monkeypatch.setattr(
        "lambda_fn.reconciler._remove_offline",
        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")),
    )
    report = reconcile()
    assert report["step_errors"] == 1
    assert report["replaced"] == 1
    assert report["redelivered"] == 1


def step_failures(out: str) -> list[tuple[dict[str, str], float]]:
    """``ReconcilerStepFailures`` in the EMF lines of ``out``: (dimensions, value)."""
    found = []
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        if "ReconcilerStepFailures" in [m["Name"] for m in directive["Metrics"]]:
            (dimension_names,) = directive["Dimensions"]
            # (single metrics carry ``service`` only where POWERTOOLS_SERVICE_NAME is set)
            dimensions = {name: blob[name] for name in dimension_names if name != "service"}
            value = blob["ReconcilerStepFailures"]
            found += [
                (dimensions, float(v)) for v in (value if isinstance(value, list) else [value])
            ]
    return found


def test_one_failed_step_is_counted_and_the_run_still_succeeds(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from lambda_fn.observability import metrics

    metrics.clear_metrics()  # what earlier tests left unflushed
    monkeypatch.setenv("GITHUB_HOOK_PATH", "repos/octo-org/app/hooks/12")
    github.fail("GET", r"/hooks/12/deliveries", 404)  # this step only
    assert reconcile()["step_errors"] == 1
    metrics.flush_metrics()
    assert step_failures(capsys.readouterr().out) == [
        ({"step": "deliveries"}, 1.0),
        ({}, 1.0),  # the total, on the shared metrics (dimension ``service``)
    ]


def test_a_revoked_token_fails_the_run_after_every_step_is_counted(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """GitHub answers 401 to everything: the failed steps are counted (the
    ``ReconcilerStepsFailing`` alarm) and the run ends as a Lambda error (``ReconcilerFailing``);
    the steps that need no GitHub still ran."""
    from lambda_fn.observability import metrics
    from lambda_fn.reconciler import ReconcileFailed

    metrics.clear_metrics()
    monkeypatch.setenv("GITHUB_HOOK_PATH", "repos/octo-org/app/hooks/12")
    launched = launch(91)
    kill(launched["task_arn"])
    github.valid_token = "a-token-nobody-has"  # the PAT was revoked: every call is 401
    with pytest.raises(ReconcileFailed, match=r"deliveries: .*401.*registrations: .*401"):
        reconcile()
    metrics.flush_metrics()
    failures = step_failures(capsys.readouterr().out)
    assert ({"step": "deliveries"}, 1.0) in failures
    assert ({"step": "registrations"}, 1.0) in failures
    assert ({}, 2.0) in failures  # the total: what the alarm watches
    assert "sealed_configs" not in str(failures)  # needs no GitHub: it ran


# --- reconciler: the webhook `fargate-runners setup` recorded -----------------------------------


def record_hook(fake_aws: FakeAws, value: str) -> None:

    boto3.client("ssm", region_name=fake_aws.region).put_parameter(
        Name=fake_aws.base_env["GITHUB_HOOK_PARAMETER"], Value=value, Overwrite=True
    )


def test_redelivery_is_on_once_setup_recorded_the_webhook(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """No GITHUB_HOOK_PATH by hand: the stack's SSM parameter names the webhook."""
    github.deliveries = [delivery(1, "a", 429, hook_id=99), delivery(2, "b", 200, hook_id=99)]
    report = reconcile()
    assert report["webhook_unknown"] == 1  # not recorded yet: nothing to ask GitHub
    assert github.redelivered == []
    record_hook(fake_aws, "orgs/octo-org/hooks/99")
    report = reconcile()
    assert github.redelivered == [1]
    assert report["redelivered"] == 1
    listed = [c.request.url for c in github.mock.calls if "/deliveries?" in c.request.url]
    assert listed and all("/orgs/octo-org/hooks/99/deliveries" in url for url in listed)


def test_a_hand_set_hook_path_wins_over_the_recorded_one(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_hook(fake_aws, "orgs/octo-org/hooks/99")
    monkeypatch.setenv("GITHUB_HOOK_PATH", "repos/octo-org/app/hooks/12")
    github.deliveries = [delivery(1, "a", 502)]
    reconcile()
    assert github.redelivered == [1]
    assert not [c for c in github.mock.calls if "/hooks/99/" in c.request.url]


def test_a_tampered_parameter_is_refused_not_followed(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """Whoever can write the parameter must not steer the PAT to another API path."""
    record_hook(fake_aws, "user/keys")
    report = reconcile()
    assert report["step_errors"] == 1
    assert not [c for c in github.mock.calls if "/deliveries" in c.request.url]


def test_each_failed_delivery_is_redelivered_once_per_run_and_not_after_success(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    record_hook(fake_aws, "repos/octo-org/app/hooks/12")
    github.deliveries = [delivery(1, "a", 429, minutes_ago=3)]
    reconcile()
    assert github.redelivered == [1]
    # GitHub made the redelivery (same guid) and it succeeded: never again.
    github.deliveries.append(delivery(2, "a", 200, minutes_ago=1, redelivery=True))
    reconcile()
    reconcile()
    assert github.redelivered == [1]


def test_deliveries_are_read_across_pages_on_the_api_host_only(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """GitHub pages deliveries with a cursor in ``Link``; a next link elsewhere is not followed."""
    record_hook(fake_aws, "repos/octo-org/app/hooks/12")
    # 150 deliveries: GitHub answers the newest 100, then a cursor to the older 50.
    github.deliveries = [delivery(1, "a", 502)] + [
        delivery(100 + i, f"ok{i}", 200, minutes_ago=4) for i in range(149)
    ]
    evil = '<https://evil.example/steal?cursor=p3>; rel="next"'
    reconcile()
    assert github.redelivered == [1]  # found on the second page
    assert len(github.calls("GET", "/deliveries")) == 2
    # A next link to another host is never followed (the token would go with it).
    github.redelivered.clear()
    github.fail("GET", r"/deliveries\?.*cursor=", 200, headers={"Link": evil},
                body=[delivery(1, "a", 502)])  # fmt: skip
    reconcile()
    assert github.redelivered == [1]
    assert not [c for c in github.mock.calls if "evil.example" in c.request.url]
