"""GitHub client: retries, Retry-After, budget, error hints. HTTP intercepted by ``responses``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from lambda_fn.errors import GitHubPermanentError, GitHubTransientError
from lambda_fn.github import GitHubClient, scope_path

API = "https://ghe.example.com/api/v3"
JIT = f"{API}/repos/o/r/actions/runners/generate-jitconfig"
OK = {"runner": {"id": 7, "name": "fgr-1-abc"}, "encoded_jit_config": "ZW5jb2RlZA=="}


class Clock:
    """A fake monotonic clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client(clock: Clock, tokens: list[bool] | None = None, budget: float = 6.0) -> GitHubClient:
    def token(path: str, force: bool) -> str:
        if tokens is not None:
            tokens.append(force)
        return "tok-new" if force else "tok"

    return GitHubClient(
        API,
        token,
        session=requests.Session(),
        budget_seconds=budget,
        sleep=clock.sleep,
        clock=clock,
    )


def jit(gh: GitHubClient) -> Any:
    return gh.generate_jitconfig("repos/o/r", "fgr-1-abc", ["self-hosted"], 1)


@responses.activate
def test_success_returns_config_and_sends_the_api_headers() -> None:
    responses.add(responses.POST, JIT, json=OK, status=201)
    config = jit(client(Clock()))
    assert (config.runner_id, config.runner_name) == (7, "fgr-1-abc")
    assert config.encoded == "ZW5jb2RlZA=="
    assert "ZW5jb2RlZA" not in repr(config)  # the credential never shows in a repr
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer tok"
    assert sent.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert json.loads(sent.body) == {
        "name": "fgr-1-abc",
        "runner_group_id": 1,
        "labels": ["self-hosted"],
        "work_folder": "_work",
    }


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
@responses.activate
def test_retryable_statuses_are_retried_with_backoff(status: int) -> None:
    responses.add(responses.POST, JIT, status=status, json={"message": "x"})
    responses.add(responses.POST, JIT, json=OK, status=201)
    clock = Clock()
    assert jit(client(clock)).runner_id == 7
    assert len(clock.slept) == 1
    assert 0 <= clock.slept[0] <= 0.25


@responses.activate
def test_gives_up_after_three_attempts_as_transient() -> None:
    responses.add(responses.POST, JIT, status=502)
    clock = Clock()
    with pytest.raises(GitHubTransientError) as raised:
        jit(client(clock))
    assert raised.value.status == 502
    assert len(responses.calls) == 3


@responses.activate
def test_retry_after_is_honoured_when_it_fits_the_budget() -> None:
    responses.add(responses.POST, JIT, status=429, headers={"Retry-After": "3"})
    responses.add(responses.POST, JIT, json=OK, status=201)
    clock = Clock()
    jit(client(clock))
    assert clock.slept == [3.0]


@responses.activate
def test_retry_after_beyond_the_budget_fails_fast_instead_of_blocking() -> None:
    responses.add(responses.POST, JIT, status=429, headers={"Retry-After": "60"})
    clock = Clock()
    with pytest.raises(GitHubTransientError) as raised:
        jit(client(clock, budget=6))
    assert raised.value.retry_after == 60
    assert clock.slept == []
    assert len(responses.calls) == 1


@responses.activate
def test_secondary_rate_limit_403_is_transient_not_permanent() -> None:
    responses.add(
        responses.POST,
        JIT,
        status=403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "99999999999"},
        json={"message": "API rate limit exceeded"},
    )
    with pytest.raises(GitHubTransientError):
        jit(client(Clock()))


@responses.activate
def test_connection_errors_and_timeouts_are_retried_then_transient() -> None:
    responses.add(responses.POST, JIT, body=requests.ConnectTimeout("slow"))
    responses.add(responses.POST, JIT, body=requests.ReadTimeout("slow"))
    responses.add(responses.POST, JIT, body=requests.ConnectionError("reset"))
    with pytest.raises(GitHubTransientError, match="ConnectionError"):
        jit(client(Clock()))
    assert len(responses.calls) == 3


@responses.activate
def test_timeout_then_success() -> None:
    responses.add(responses.POST, JIT, body=requests.ReadTimeout("slow"))
    responses.add(responses.POST, JIT, json=OK, status=201)
    assert jit(client(Clock())).runner_id == 7


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (403, "Administration: write"),
        (404, "cannot see it"),
        (422, "RUNNER_GROUP_ID"),
    ],
)
@responses.activate
def test_permanent_errors_carry_githubs_message_and_a_hint(status: int, hint: str) -> None:
    responses.add(responses.POST, JIT, status=status, json={"message": "Resource not accessible"})
    with pytest.raises(GitHubPermanentError) as raised:
        jit(client(Clock()))
    assert raised.value.status == status
    assert hint in str(raised.value)
    assert "Resource not accessible" in str(raised.value)
    assert len(responses.calls) == 1


@responses.activate
def test_401_rereads_the_token_once_then_fails() -> None:
    responses.add(responses.POST, JIT, status=401, json={"message": "Bad credentials"})
    tokens: list[bool] = []
    with pytest.raises(GitHubPermanentError, match="valid PAT"):
        jit(client(Clock(), tokens))
    assert tokens == [False, True]
    assert [c.request.headers["Authorization"] for c in responses.calls] == [
        "Bearer tok",
        "Bearer tok-new",
    ]


@responses.activate
def test_401_then_rotated_token_works() -> None:
    responses.add(responses.POST, JIT, status=401)
    responses.add(responses.POST, JIT, json=OK, status=201)
    assert jit(client(Clock())).runner_id == 7


@responses.activate
def test_malformed_success_body_is_transient() -> None:
    responses.add(responses.POST, JIT, json={"unexpected": True}, status=201)
    with pytest.raises(GitHubTransientError):
        jit(client(Clock()))


@responses.activate
def test_delete_runner_accepts_already_gone() -> None:
    url = f"{API}/orgs/o/actions/runners/5"
    responses.add(responses.DELETE, url, status=404)
    client(Clock()).delete_runner("orgs/o", 5)
    responses.replace(responses.DELETE, url, status=204)
    client(Clock()).delete_runner("orgs/o", 5)


def test_scope_paths() -> None:
    assert scope_path("repo", "o", "r") == "repos/o/r"
    assert scope_path("org", "o", "r") == "orgs/o"


REF = f"{API}/repos/o/r/git/ref/heads/main"


@responses.activate
def test_get_ref_is_none_for_a_missing_ref_and_raises_on_other_errors() -> None:
    responses.add(responses.GET, REF, json={"message": "Not Found"}, status=404)
    assert client(Clock()).get_ref("o", "r", "heads/main") is None
    responses.replace(responses.GET, REF, json={"message": "Forbidden"}, status=403)
    with pytest.raises(GitHubPermanentError):
        client(Clock()).get_ref("o", "r", "heads/main")


@responses.activate
def test_get_ref_encodes_the_name_but_keeps_its_slashes() -> None:
    url = f"{API}/repos/o/r/git/ref/heads/release/1.0%23hotfix"
    responses.add(responses.GET, url, json={"ref": "refs/heads/release/1.0#hotfix"})
    assert client(Clock()).get_ref("o", "r", "heads/release/1.0#hotfix") is not None


@responses.activate
def test_a_shared_budget_bounds_all_calls_together() -> None:
    """The restricted-profile check makes several calls; together they get the budget."""
    clock = Clock()

    def slow(request: Any) -> tuple[int, dict[str, str], str]:
        clock.now += 0.8  # each answer takes 0.8 s
        return 200, {}, '{"ref": "refs/heads/main"}'

    responses.add_callback(responses.GET, REF, callback=slow)
    gh = GitHubClient(
        API, lambda path, force: "tok", session=requests.Session(), budget_seconds=2.0,
        sleep=clock.sleep, clock=clock, shared_budget=True,
    )  # fmt: skip
    gh.get_ref("o", "r", "heads/main")
    gh.get_ref("o", "r", "heads/main")
    gh.get_ref("o", "r", "heads/main")  # starts at 1.6 s: within the budget
    with pytest.raises(GitHubTransientError, match="no time left"):
        gh.get_ref("o", "r", "heads/main")  # would start at 2.4 s
    per_call = client(clock, budget=2.0)  # without sharing, each call has its own 2 s
    per_call.get_ref("o", "r", "heads/main")
