"""The daily runner-version check (lambda_fn.runner_version) against the GitHub model's
releases and runner-downloads endpoints, and the reconciler's handling of a task whose
runner version GitHub refused. moto for DynamoDB (the daily cache) and ECS."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import responses

from lambda_fn.aws import reset_caches
from lambda_fn.contract import TASK_EXIT_VERSION_REFUSED
from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import GITHUB_API, FakeAws, current_profiles, set_profiles

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
GHES_API = "https://ghes.example.com/api/v3"


def with_versions(monkeypatch: pytest.MonkeyPatch, **versions: str | None) -> None:
    """Set the named profiles' ``runner_version`` (None: unknown, a custom image)."""
    profiles = current_profiles()
    for profile in profiles:
        if profile["name"] not in versions:
            continue
        profile.pop("runner_version", None)
        if versions[profile["name"]] is not None:
            profile["runner_version"] = versions[profile["name"]]
    set_profiles(monkeypatch, profiles)
    reset_caches()


def publish(github: FakeGitHub, version: str, days_ago: float, **flags: bool) -> None:
    published = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    github.add_release("actions/runner", f"v{version}", published, **flags)


def check(now: datetime = NOW) -> dict[str, Any]:
    """Run the reconciler's version step; what it emitted, per profile."""
    from lambda_fn.config import get_settings
    from lambda_fn.github_auth import github_client
    from lambda_fn.reconciler import _watch_versions

    emitted: dict[str, Any] = {}

    def record(name: str, dimension: Any = None, value: float = 1) -> None:
        emitted[dimension[1]] = (name, value)

    settings = get_settings()
    report: Any = {}
    import collections

    report = collections.Counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("lambda_fn.observability.count", record)
        _watch_versions(settings, github_client(settings), now, report)
    emitted["_report"] = dict(report)
    return emitted


def profile_names() -> list[str]:
    return [p["name"] for p in current_profiles()]


@pytest.fixture
def releases(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    """github.com's releases of actions/runner (the tests' API host stands in for it)."""
    monkeypatch.setattr("lambda_fn.runner_version.DEFAULT_GITHUB_API_URL", GITHUB_API)
    publish(github, "2.333.0", 264)
    publish(github, "2.334.0", 230)
    publish(github, "2.335.0", 182)
    publish(github, "2.337.0-beta", 1, prerelease=True)
    return github


def test_current_version_reads_thirty_days(
    fake_aws: FakeAws, releases: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(releases, "2.336.0", 140)
    first = profile_names()[0]
    with_versions(monkeypatch, **{first: "2.336.0"})
    assert check()[first] == ("RunnerVersionDaysLeft", 30.0)
    # Asked without a token: the releases of actions/runner are public.
    asked = releases.calls("GET", "/repos/actions/runner/releases")
    assert asked and not any(call.authorized for call in asked)


def test_ten_days_behind_leaves_twenty(
    fake_aws: FakeAws, releases: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(releases, "2.336.0", 10)
    first = profile_names()[0]
    with_versions(monkeypatch, **{first: "2.335.0"})
    name, days = check()[first]
    assert name == "RunnerVersionDaysLeft"
    assert days == pytest.approx(20.0, abs=0.01)


def test_thirty_one_days_behind_is_past_the_deadline(
    fake_aws: FakeAws, releases: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(releases, "2.336.0", 31)
    first = profile_names()[0]
    with_versions(monkeypatch, **{first: "2.335.0"})
    name, days = check()[first]
    assert name == "RunnerVersionDaysLeft"
    assert days == pytest.approx(-1.0, abs=0.01)


def test_the_clock_starts_at_the_first_newer_release_not_the_latest(
    fake_aws: FakeAws, releases: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(releases, "2.336.0", 2)  # latest, but 2.335.0 (182 days ago) started the clock
    first = profile_names()[0]
    with_versions(monkeypatch, **{first: "2.334.0"})
    _, days = check()[first]
    assert days == pytest.approx(30 - 182, abs=0.01)


def test_unknown_version_is_its_own_state(
    fake_aws: FakeAws, releases: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(releases, "2.336.0", 10)
    with_versions(monkeypatch, **dict.fromkeys(profile_names()))
    emitted = check()
    assert {emitted[name] for name in profile_names()} == {("RunnerVersionUnknown", 1)}


def test_github_is_asked_once_a_day_and_a_failure_keeps_the_last_answer(
    fake_aws: FakeAws, releases: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(releases, "2.336.0", 10)
    first = profile_names()[0]
    with_versions(monkeypatch, **{first: "2.335.0"})
    check()
    asked = len(releases.calls("GET", "/releases"))
    assert check(NOW + timedelta(hours=23))[first][1] == pytest.approx(20 - 23 / 24, abs=0.01)
    assert len(releases.calls("GET", "/releases")) == asked  # from the cache
    releases.fail("GET", r"/releases", 502, times=None)
    later = check(NOW + timedelta(days=2))
    assert later["_report"] == {"version_check_failed": 1}
    assert later[first][1] == pytest.approx(18.0, abs=0.01)  # yesterday's answer, today's clock


def test_ghes_reads_the_servers_downloads(
    fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_API_URL", GHES_API)
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "octo-org/app")
    names = profile_names()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        server = FakeGitHub(mock, base_url=GHES_API)  # offers RUNNER_VERSION's builds
        from lambda_fn.contract import RUNNER_VERSION

        with_versions(monkeypatch, **{names[0]: RUNNER_VERSION, names[1]: "2.335.0"})
        emitted = check()
        assert emitted[names[0]] == ("RunnerVersionDaysLeft", 30.0)
        assert emitted[names[1]] == ("RunnerVersionDaysLeft", 0.0)  # behind, no window known
        (call,) = server.calls("GET", "/actions/runners/downloads")
        assert call.path == "/repos/octo-org/app/actions/runners/downloads" and call.authorized
        assert not server.calls("GET", "/releases")


def test_the_model_answers_as_github_documents(github: FakeGitHub) -> None:
    import requests

    def get(path: str) -> requests.Response:
        return requests.get(f"{github.base_url}{path}", timeout=5)

    assert get("/repos/actions/runner/releases/latest").status_code == 404
    publish(github, "2.335.0", 20)
    publish(github, "2.336.0", 5)
    publish(github, "2.337.0", 1, prerelease=True)
    publish(github, "2.338.0", 0, draft=True)
    latest = get("/repos/actions/runner/releases/latest")
    assert latest.status_code == 200 and latest.json()["tag_name"] == "v2.336.0"
    listed = get("/repos/actions/runner/releases?per_page=2")
    assert [r["tag_name"] for r in listed.json()] == ["v2.337.0", "v2.336.0"]
    assert 'rel="next"' in listed.headers["Link"]
    downloads = get("/orgs/octo-org/actions/runners/downloads")
    assert downloads.status_code == 401  # needs a token (admin on the org)


# --- the reconciler and a refused runner version ----------------------------------------------


def test_a_task_refused_for_its_runner_version_is_not_replaced(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import reconciler

    status, body = deliver(queued_payload(job_id=71))
    assert status == 200, body
    ecs = boto3.client("ecs", region_name="us-east-1")
    cluster = body["task_arn"].split(":task/", 1)[1].split("/", 1)[0]
    ecs.stop_task(cluster=cluster, task=body["task_arn"], reason="Essential container exited")
    real = reconciler.describe_tasks

    def exited(settings: Any, arns: Any) -> Any:
        return [
            replace(t, exit_code=TASK_EXIT_VERSION_REFUSED) if not t.alive else t
            for t in real(settings, arns)
        ]

    monkeypatch.setattr(reconciler, "describe_tasks", exited)
    from lambda_fn.config import get_settings

    report = reconciler.reconcile(get_settings())
    assert report["version_refused"] == 1
    assert report.get("replaced", 0) == 0
    assert len(github.jit_requests) == 1
