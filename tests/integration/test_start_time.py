"""Time to start: the ``in_progress`` delivery -> TimeToStart and the task's ECS phases.

moto runs the task but does not simulate ECS's lifecycle timestamps
(``createdAt``, ``pullStartedAt``, ``pullStoppedAt``, ``startedAt``); the tests
set them on moto's task, and moto serialises them as ``DescribeTasks`` does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import FakeAws

CREATED = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def _moto_task(fake_aws: FakeAws) -> Any:
    from moto.ecs.models import ecs_backends

    tasks = list(ecs_backends["123456789012"][fake_aws.region].tasks[fake_aws.cluster].values())
    assert len(tasks) == 1
    return tasks[0]


def _started(job_id: int, runner_name: str | None, started_at: datetime) -> dict[str, Any]:
    payload = queued_payload(job_id=job_id, action="in_progress")
    job = payload["workflow_job"]
    job.update(
        status="in_progress",
        conclusion=None,
        runner_name=runner_name,
        created_at=CREATED.strftime("%Y-%m-%dT%H:%M:%SZ"),
        started_at=started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return payload


def _emf(stdout: str) -> list[dict[str, Any]]:
    """The EMF records Powertools printed: {metric name: value, dimension: value, ...}."""
    return [json.loads(line) for line in stdout.splitlines() if '"_aws"' in line]


def _seconds_metrics(stdout: str) -> dict[str, tuple[float, str]]:
    found: dict[str, tuple[float, str]] = {}
    for record in _emf(stdout):
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                if metric.get("Unit") == "Seconds":
                    assert sorted(directive["Dimensions"][0]) == ["profile", "service"]
                    value = record[metric["Name"]]
                    value = value[0] if isinstance(value, list) else value
                    found[metric["Name"]] = (value, record["profile"])
    return found


def test_in_progress_records_time_to_start_and_task_phases(
    fake_aws: FakeAws, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    status, launched = deliver(queued_payload(job_id=51))
    assert status == 200 and launched["status"] == "launched"
    task = _moto_task(fake_aws)
    task.created_at = CREATED + timedelta(seconds=2)
    task.pull_started_at = CREATED + timedelta(seconds=14)
    task.pull_stopped_at = CREATED + timedelta(seconds=44)
    task.started_at = CREATED + timedelta(seconds=47)
    capsys.readouterr()

    status, body = deliver(_started(51, launched["runner_name"], CREATED + timedelta(seconds=58)))

    assert status == 200, body
    assert body["status"] == "started"
    assert body["queued_seconds"] == 58
    assert body["profile"] == "default"
    assert body["task_phases"] == {"TaskProvisioning": 12, "ImagePull": 30, "ContainerStart": 3}
    assert _seconds_metrics(capsys.readouterr().out) == {
        "TimeToStart": (58, "default"),
        "TaskProvisioning": (12, "default"),
        "ImagePull": (30, "default"),
        "ContainerStart": (3, "default"),
    }
    assert len(fake_aws.tasks()) == 1  # nothing started or stopped
    assert len(github.jit_requests) == 1


def test_runner_launched_for_another_job_still_counts(
    fake_aws: FakeAws, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ephemeral runner takes any job with its labels: job 62 ran on job 61's runner."""
    _, launched = deliver(queued_payload(job_id=61))
    task = _moto_task(fake_aws)
    task.created_at = task.pull_started_at = task.pull_stopped_at = task.started_at = CREATED

    status, body = deliver(_started(62, launched["runner_name"], CREATED + timedelta(seconds=5)))

    assert status == 200 and body["status"] == "started"
    assert body["queued_seconds"] == 5
    assert body["task_phases"] == {"TaskProvisioning": 0, "ImagePull": 0, "ContainerStart": 0}


def test_task_without_ecs_timestamps_gives_only_the_wait(
    fake_aws: FakeAws, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    _, launched = deliver(queued_payload(job_id=71))
    capsys.readouterr()
    status, body = deliver(_started(71, launched["runner_name"], CREATED + timedelta(seconds=9)))
    assert status == 200 and body["status"] == "started"
    assert "task_phases" not in body
    assert set(_seconds_metrics(capsys.readouterr().out)) == {"TimeToStart"}


@pytest.mark.parametrize(
    "runner_name",
    [None, "GitHub Actions 3", "fgr-other-71-abcdef", "someone-elses-runner"],
)
def test_job_on_a_runner_we_did_not_launch_is_ignored(
    fake_aws: FakeAws,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    runner_name: str | None,
) -> None:
    status, body = deliver(_started(81, runner_name, CREATED + timedelta(seconds=9)))
    assert status == 200 and body["status"] == "ignored"
    assert _seconds_metrics(capsys.readouterr().out) == {}
    assert fake_aws.tasks() == []


def test_impossible_wait_is_not_a_figure(
    fake_aws: FakeAws, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    """started_at before created_at (or absurdly late) is reported, not plotted."""
    _, launched = deliver(queued_payload(job_id=91))
    capsys.readouterr()
    status, body = deliver(_started(91, launched["runner_name"], CREATED - timedelta(seconds=1)))
    assert status == 200 and body["status"] == "started"
    assert "queued_seconds" not in body
    assert "TimeToStart" not in _seconds_metrics(capsys.readouterr().out)


def test_in_progress_with_bad_started_at_is_400(fake_aws: FakeAws, github: FakeGitHub) -> None:
    payload = _started(95, "fgr-x-95-abcdef", CREATED)
    payload["workflow_job"]["started_at"] = "yesterday"
    status, body = deliver(payload)
    assert status == 400
    assert "workflow_job.started_at" in body["message"]


def test_lookup_failure_loses_only_the_phases(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, launched = deliver(queued_payload(job_id=97))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ECS unavailable")

    monkeypatch.setattr("lambda_fn.start_time.list_task_arns", broken)
    status, body = deliver(_started(97, launched["runner_name"], CREATED + timedelta(seconds=3)))
    assert status == 200 and body["queued_seconds"] == 3
    assert "task_phases" not in body
