"""Warm runners (lambda_fn/warm_pool.py): the reconciler keeps each pool at its target,
never past ``max_runners``, never stops a busy member, and a queued job's launch refills
the pool. moto for ECS and Secrets Manager, the GitHub model for runners (a busy runner's
DELETE answers 422, as GitHub does)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambda_fn import contract
from lambda_fn.config import _parse_cached
from lambda_fn.warm_pool import WATCHDOG_MARGIN_SECONDS
from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import FakeAws, set_profiles

SCOPE = "octo-org/app"


def use_pool(monkeypatch: pytest.MonkeyPatch, fake_aws: FakeAws, **warm: Any) -> None:
    """Give the ``default`` profile a warm pool (and optionally ``max_runners``)."""
    max_runners = warm.pop("max_runners", None)
    profiles = fake_aws.profiles()
    for profile in profiles:
        if profile["name"] == "default":
            profile["warm"] = {"runners": 2, "scope": SCOPE, **warm}
            if max_runners is not None:
                profile["max_runners"] = max_runners
    set_profiles(monkeypatch, profiles)
    _parse_cached.cache_clear()  # the settings; AWS clients (and their test hooks) stay


def reconcile(now: datetime | None = None) -> dict[str, int]:
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import reconcile as run

    return dict(run(get_settings(), now))


def tags(task: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in task.get("tags", [])}


def running(fake_aws: FakeAws) -> list[dict[str, Any]]:
    return [t for t in fake_aws.tasks() if t["desiredStatus"] == "RUNNING"]


def pool_members(fake_aws: FakeAws) -> list[dict[str, Any]]:
    return [t for t in running(fake_aws) if tags(t).get(contract.TAG_POOL) == "default"]


def idle_override(task: dict[str, Any]) -> str | None:
    [override] = task["overrides"]["containerOverrides"]
    env = {e["name"]: e["value"] for e in override.get("environment", [])}
    return env.get(contract.TASK_IDLE_TIMEOUT_ENV)


def outside_now() -> str:
    """An hours window that does not contain the current UTC hour."""
    hour = datetime.now(UTC).hour
    return f"{(hour + 2) % 24:02d}-{(hour + 3) % 24:02d}"


@pytest.fixture(autouse=True)
def tasks_keep_running() -> Iterator[None]:
    """moto moves a task on towards STOPPED each time it is described; real ECS keeps a
    runner's task RUNNING until it exits or is stopped, which the pool tests rely on."""
    from moto.moto_api import state_manager

    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
    yield
    state_manager.unset_transition("ecs::task")


@pytest.fixture
def aged(monkeypatch: pytest.MonkeyPatch) -> dict[str, timedelta]:
    """moto leaves createdAt empty; give each described task the age in ``age["value"]``."""
    from lambda_fn import aws

    age = {"value": timedelta(hours=1)}

    def add_created_at(parsed: dict[str, Any], **_: Any) -> None:
        for task in parsed.get("tasks", []):
            task.setdefault("createdAt", datetime.now(UTC) - age["value"])

    aws.client("ecs").meta.events.register("after-call.ecs.DescribeTasks", add_created_at)
    return age


def test_reconciler_fills_the_pool_once(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_pool(monkeypatch, fake_aws)
    assert reconcile()["warm_started"] == 2
    members = pool_members(fake_aws)
    assert len(members) == 2
    for task in members:
        assert task["startedBy"] == "gh-pool"
        assert tags(task)[contract.TAG_GITHUB_REPOSITORY] == SCOPE
        assert contract.TAG_GITHUB_JOB_ID not in tags(task)
        assert tags(task)[contract.TAG_RUNNER_NAME].startswith("fgr-pool-")
        # The task's own watchdog outlives the reconciler's maximum age (4 h by default).
        assert idle_override(task) == str(4 * 3600 + WATCHDOG_MARGIN_SECONDS)
    assert all(r["url"].endswith(f"/repos/{SCOPE}/actions/runners/generate-jitconfig")
               for r in github.jit_requests)  # fmt: skip
    # Each member's JIT config is sealed for its own task, as for a job's runner.
    assert len(fake_aws.sealed_configs()) == 2
    # Registered and idle (GitHub lists them): the pool is full, nothing more starts.
    assert reconcile().get("warm_started", 0) == 0
    assert len(pool_members(fake_aws)) == 2


def test_pool_never_exceeds_max_runners(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_pool(monkeypatch, fake_aws, runners=3, max_runners=3)
    for job_id in (61, 62):
        status, body = deliver(queued_payload(job_id=job_id, repo="octo-org/other"))
        assert status == 200, body
        github.runners[body["runner_id"]]["busy"] = True
    report = reconcile()
    assert report["warm_started"] == 1
    assert report["warm_capped"] == 2
    assert len(running(fake_aws)) == 3


def test_a_queued_job_in_scope_refills_the_pool_and_completion_keeps_it(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_pool(monkeypatch, fake_aws)
    status, body = deliver(queued_payload(job_id=71, repo=SCOPE))
    assert status == 200, body
    assert body["warm_pool"] is True
    [task] = running(fake_aws)
    assert tags(task)[contract.TAG_POOL] == "default"
    assert tags(task)[contract.TAG_GITHUB_JOB_ID] == "71"
    assert idle_override(task) == str(4 * 3600 + WATCHDOG_MARGIN_SECONDS)
    # The job ran on a warm runner; the completed delivery leaves the refill running.
    done = queued_payload(job_id=71, repo=SCOPE, action="completed")
    done["workflow_job"]["conclusion"] = "success"
    status, answer = deliver(done)
    assert status == 200
    assert answer["runners_released"] == 0
    assert task["taskArn"] in {t["taskArn"] for t in running(fake_aws)}
    # One member exists already, so the reconciler adds only one more.
    assert reconcile()["warm_started"] == 1


def test_jobs_outside_the_scope_or_the_schedule_launch_ordinary_runners(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_pool(monkeypatch, fake_aws)
    status, body = deliver(queued_payload(job_id=81, repo="octo-org/other"))
    assert status == 200 and "warm_pool" not in body
    use_pool(monkeypatch, fake_aws, hours=outside_now())
    status, body = deliver(queued_payload(job_id=82, repo=SCOPE))
    assert status == 200 and "warm_pool" not in body
    for task in running(fake_aws):
        assert contract.TAG_POOL not in tags(task)
        assert idle_override(task) is None  # the task definition's watchdog applies


def test_outside_the_schedule_idle_members_are_released_busy_ones_kept(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, aged: Any
) -> None:
    use_pool(monkeypatch, fake_aws, runners=3)
    reconcile()
    members = pool_members(fake_aws)
    busy_name = tags(members[0])[contract.TAG_RUNNER_NAME]
    for runner in github.runners.values():
        runner["busy"] = runner["name"] == busy_name
    use_pool(monkeypatch, fake_aws, runners=3, hours=outside_now())
    report = reconcile()
    assert report["warm_released"] == 2
    assert report.get("warm_started", 0) == 0
    [kept] = pool_members(fake_aws)
    assert tags(kept)[contract.TAG_RUNNER_NAME] == busy_name
    # Released in order: registration deleted first, so no job can land on them.
    assert len(github.deleted_runners) == 2
    assert busy_name not in {r["name"] for r in github.runners.values() if not r["busy"]}


def test_members_past_their_max_age_are_replaced(
    fake_aws: FakeAws,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    aged: dict[str, timedelta],
) -> None:
    use_pool(monkeypatch, fake_aws, max_age_seconds=1800)
    aged["value"] = timedelta(minutes=5)
    reconcile()
    old = {t["taskArn"] for t in pool_members(fake_aws)}
    assert len(old) == 2
    # An hour later: past the maximum age (but the reconciler's idle step leaves members alone).
    report = reconcile(datetime.now(UTC) + timedelta(hours=1))
    assert report.get("warm_expired") == 2, report
    assert report["warm_started"] == 2
    assert report.get("idle_stopped", 0) == 0
    new = {t["taskArn"] for t in pool_members(fake_aws)}
    assert len(new) == 2 and not new & old


def test_the_idle_step_leaves_members_to_the_pool(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, aged: Any
) -> None:
    use_pool(monkeypatch, fake_aws)
    reconcile()
    # An hour old is past RECONCILER_IDLE_TIMEOUT_SECONDS but well within the pool's max age.
    report = reconcile()
    assert report.get("idle_stopped", 0) == 0
    assert len(pool_members(fake_aws)) == 2


def test_org_scope_pool_registers_and_releases_in_the_organisation(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, aged: Any
) -> None:
    monkeypatch.setenv("RUNNER_SCOPE", "org")
    use_pool(monkeypatch, fake_aws, scope="octo-org", runners=1)
    assert reconcile()["warm_started"] == 1
    [request] = github.jit_requests
    assert request["url"].endswith("/orgs/octo-org/actions/runners/generate-jitconfig")
    use_pool(monkeypatch, fake_aws, scope="octo-org", runners=1, hours=outside_now())
    assert reconcile()["warm_released"] == 1
    assert len(github.deleted_runners) == 1
    assert pool_members(fake_aws) == []


def test_a_removed_pool_leaves_its_members_to_the_idle_step(
    fake_aws: FakeAws,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    aged: dict[str, timedelta],
) -> None:
    use_pool(monkeypatch, fake_aws)
    aged["value"] = timedelta(hours=3)  # past the idle limit, within the pool's max age
    reconcile()
    set_profiles(monkeypatch, fake_aws.profiles())
    _parse_cached.cache_clear()
    assert reconcile()["idle_stopped"] == 2
    assert pool_members(fake_aws) == []
