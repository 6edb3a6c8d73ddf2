"""Restricted profiles at dispatch: the policy is checked before a JIT config exists.

The same ``lambda_fn.policy`` module runs in the runner's job-started hook
(tests/unit/test_runner_hook.py); here the handler refuses what the webhook
payload and the workflow run already show.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.retry import drain
from tests.kit.world import (
    FakeAws,
    add_deploy_profile,
    current_profiles,
    set_profiles,
    use_retry_queue,
)

DEPLOY_LABELS = ["self-hosted", "linux", "deploy"]
HEAD = "0" * 40  # the head_sha of every queued_payload
ELSEWHERE = "e" * 40
POLICY = {
    "allowed_repositories": ["octo-org/app"],
    "allowed_refs": ["refs/heads/main", "refs/tags/v*"],
    "allowed_workflows": [".github/workflows/deploy.yml"],
    "allowed_events": ["push", "workflow_dispatch"],
}


@pytest.fixture
def restricted(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    return add_deploy_profile(
        fake_aws, monkeypatch, DEPLOY_LABELS, {**POLICY, "deny_fork_pull_requests": True}
    )


def run(
    event: str = "push",
    branch: str = "main",
    path: str = ".github/workflows/deploy.yml",
    head_repo: str = "octo-org/app",
) -> dict[str, Any]:
    return {
        "id": 777,
        "event": event,
        "head_branch": branch,
        "path": path,
        "repository": {"full_name": "octo-org/app"},
        "head_repository": {"full_name": head_repo, "fork": head_repo != "octo-org/app"},
    }


def deploy_job(job_id: int = 1, repo: str = "octo-org/app", branch: str = "main") -> Any:
    payload = queued_payload(job_id=job_id, labels=DEPLOY_LABELS, repo=repo)
    payload["workflow_job"]["head_branch"] = branch
    return deliver(payload)


def branch(github: FakeGitHub, name: str, sha: str = HEAD) -> None:
    github.refs[f"heads/{name}"] = {"type": "commit", "sha": sha}


def tag(github: FakeGitHub, name: str, sha: str = HEAD, *, annotated: bool = False) -> None:
    if annotated:  # the ref names a tag object, which names the commit
        tag_sha = "7a9" + sha[3:]
        github.tag_objects[tag_sha] = {"tag": name, "object": {"type": "commit", "sha": sha}}
        github.refs[f"tags/{name}"] = {"type": "tag", "sha": tag_sha}
    else:
        github.refs[f"tags/{name}"] = {"type": "commit", "sha": sha}


def ref_lookups(github: FakeGitHub) -> list[str]:
    """The git refs, tag objects and comparisons asked for, in order (paths after the repo)."""
    urls = [c.request.url for c in github.mock.calls]
    return [u.split("/octo-org/app/", 1)[1] for u in urls if "/git/" in u or "/compare/" in u]


def github_calls(github: FakeGitHub) -> list[str]:
    """Every request the GitHub model answered (``model.calls()``), as ``METHOD path``."""
    return [f"{c.method} {c.path}" for c in github.calls()]


#: At most this many GitHub calls for one restricted dispatch, the JIT config included.
MAX_RESTRICTED_CALLS = 5


def test_allowed_job_is_launched(restricted: FakeAws, github: FakeGitHub) -> None:
    github.runs[777] = run()
    branch(github, "main")
    status, body = deploy_job()
    assert (status, body["status"], body["profile"]) == (200, "launched", "deploy")
    assert len(restricted.tasks()) == 1
    # Only the kind that decides is looked up: refs/tags/main is not allowed, so no tag.
    assert ref_lookups(github) == ["git/ref/heads/main"]
    assert len(github_calls(github)) == 3  # run, branch, JIT


@pytest.mark.parametrize(
    ("the_run", "rule"),
    [
        (run(branch="feature-x"), "allowed_refs"),
        (run(event="pull_request", head_repo="mallory/app"), "deny_fork_pull_requests"),
        (run(event="pull_request"), "allowed_events"),
        (run(event="schedule"), "allowed_events"),
        (run(path=".github/workflows/ci.yml"), "allowed_workflows"),
    ],
)
def test_refused_jobs_get_no_runner_and_say_which_rule(
    restricted: FakeAws, github: FakeGitHub, the_run: dict[str, Any], rule: str, lambda_logs: Any
) -> None:
    github.runs[777] = the_run
    status, body = deploy_job()
    assert 200 <= status < 300
    assert body["status"] == "ignored"
    assert rule in body["reason"]
    assert github.jit_requests == []
    assert restricted.tasks() == []
    refusal = [json.loads(line) for line in lambda_logs.getvalue().splitlines()]
    assert any(line.get("rule") == rule for line in refusal)


def main_history(github: FakeGitHub, tip: str = ELSEWHERE) -> None:
    """Branch main at ``tip``, with the run's commit HEAD two commits behind it."""
    branch(github, "main", sha=tip)
    github.parents = {tip: ["2" * 40], "2" * 40: [HEAD]}


@pytest.mark.parametrize("annotated", [False, True])
@pytest.mark.parametrize("event", ["push", "workflow_dispatch"])
def test_a_tag_on_mains_history_launches(
    restricted: FakeAws, github: FakeGitHub, annotated: bool, event: str
) -> None:
    """A release tag cut from main (pushed, or a workflow_dispatch run on it): reviewed code.

    The run's commit is what runs; the tag ref itself is not read (it may move), so an
    annotated tag costs no dereference: run, main, compare, JIT.
    """
    github.runs[777] = run(event=event, branch="v1.2.3")
    tag(github, "v1.2.3", annotated=annotated)
    main_history(github)
    assert deploy_job(branch="v1.2.3")[1]["status"] == "launched"
    assert ref_lookups(github) == ["git/ref/heads/main", f"compare/{HEAD}...{ELSEWHERE}?per_page=1"]
    assert len(github_calls(github)) == 4 <= MAX_RESTRICTED_CALLS


@pytest.mark.parametrize("annotated", [False, True])
@pytest.mark.parametrize("event", ["push", "workflow_dispatch"])
def test_a_tag_off_the_allowed_branches_starts_nothing(
    restricted: FakeAws, github: FakeGitHub, annotated: bool, event: str
) -> None:
    """Issue 21: a writer pushes v0-x at a commit of their own with their own deploy.yml."""
    github.runs[777] = run(event=event, branch="v0-x")
    tag(github, "v0-x", annotated=annotated)
    branch(github, "main", sha=ELSEWHERE)
    github.parents = {ELSEWHERE: ["1" * 40], HEAD: ["1" * 40]}  # siblings: diverged
    reason = refused_for_ref(restricted, github, "v0-x", event=event)
    assert f"the run's commit {HEAD[:12]} is not in the history of an allowed branch" in reason
    assert "branch 'main' points at eeeeeeeeeeee" in reason
    assert "tag_protection: branch-history" in reason
    assert len(github_calls(github)) == 3  # run, main, compare: no JIT config


def test_a_tag_ahead_of_main_is_not_reviewed_yet(restricted: FakeAws, github: FakeGitHub) -> None:
    """A tag on a commit pushed past main (say, on an unmerged branch) is refused."""
    branch(github, "main", sha=ELSEWHERE)
    github.parents = {HEAD: [ELSEWHERE]}  # HEAD is a child of main's tip
    assert "not in the history" in refused_for_ref(restricted, github, "v1.2.3")


def test_a_tag_on_the_second_exact_branch_is_finished_from_the_retry_queue(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """main, then stable: four ref calls, one more than a delivery may make; no launch yet."""
    use_policy(monkeypatch, allowed_refs=["refs/heads/main", "refs/heads/stable", "refs/tags/v*"])
    queues = use_retry_queue(restricted, monkeypatch)
    github.runs[777] = run(branch="v1.2.3")
    github.jobs[1] = {"labels": DEPLOY_LABELS, "head_branch": "v1.2.3", "run_id": 777}
    branch(github, "main", sha="1" * 40)
    branch(github, "stable", sha=ELSEWHERE)
    github.parents = {"1" * 40: ["3" * 40], ELSEWHERE: [HEAD], HEAD: ["3" * 40]}
    status, body = deploy_job(branch="v1.2.3")
    assert (status, body["status"]) == (202, "queued_for_retry")
    assert len(github_calls(github)) == 4 <= MAX_RESTRICTED_CALLS  # run + 3 ref calls
    assert github.jit_requests == []
    drain(queues)
    assert len(github.jit_requests) == 1 and len(queues.tasks()) == 1


def test_glob_branches_are_not_searched_for_a_tag(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """refs/heads/release/* admits its branches, but vouches for no tag (lambda_fn/admission.py)."""
    use_policy(
        monkeypatch, allowed_refs=["refs/heads/main", "refs/heads/release/*", "refs/tags/v*"]
    )
    github.runs[777] = run(branch="release/1.x")
    branch(github, "release/1.x")
    branch(github, "main", sha=ELSEWHERE)
    github.parents = {ELSEWHERE: ["1" * 40], HEAD: ["1" * 40]}
    assert deploy_job(branch="release/1.x")[1]["status"] == "launched"
    assert ref_lookups(github) == ["git/ref/heads/release/1.x"]
    # A tag cut from release/1.x, not in main's history: only main is asked.
    github.mock.calls.reset()
    reason = refused_for_ref(restricted, github, "v1.0.1", job_id=2)
    assert "branch 'main' points at" in reason
    assert "release" not in ref_lookups(github)[0]


def test_with_a_tag_ruleset_the_tag_must_name_the_runs_commit(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tag_protection: ruleset: no ancestry check (the ruleset keeps unreviewed tags out)."""
    use_policy(monkeypatch, allowed_refs=["refs/tags/v*"], tag_protection="ruleset")
    github.runs[777] = run(branch="v1.2.3")
    tag(github, "v1.2.3", annotated=True)
    assert deploy_job(branch="v1.2.3")[1]["status"] == "launched"
    assert [lookup[:12] for lookup in ref_lookups(github)] == ["git/ref/tags", "git/tags/7a9"]
    assert len(github_calls(github)) == 4 <= MAX_RESTRICTED_CALLS
    tag(github, "v1.2.4", sha=ELSEWHERE)
    github.parents = {ELSEWHERE: [HEAD]}
    assert "tags do not move" in refused_for_ref(restricted, github, "v1.2.4", job_id=2)


# --- branch or tag: decided by GitHub's refs, never guessed ----------------------------------


def use_policy(monkeypatch: pytest.MonkeyPatch, **rules: Any) -> None:
    """The deploy profile with ``rules`` replacing POLICY's."""
    profiles = current_profiles()
    profiles[0]["policy"].update(rules)
    set_profiles(monkeypatch, profiles)


def refused_for_ref(
    restricted: FakeAws, github: FakeGitHub, name: str, *, event: str = "push", job_id: int = 1
) -> str:
    jit_before, tasks_before = len(github.jit_requests), len(restricted.tasks())
    github.runs[777] = run(event=event, branch=name)
    status, body = deploy_job(job_id=job_id, branch=name)
    assert (status, body["status"]) == (200, "ignored"), body
    assert "allowed_refs" in body["reason"]
    assert len(github.jit_requests) == jit_before  # nothing new started
    assert len(restricted.tasks()) == tasks_before
    return str(body["reason"])


@pytest.mark.parametrize(
    ("make", "name", "refused"),
    [
        # a branch named like refs/tags/v*, at a commit of its own: not reviewed history
        (branch, "vx-exfil", "is not in the history of an allowed branch"),
        # a tag named like refs/heads/main: the branch main is what must hold the commit
        (tag, "main", "no branch named 'main' exists"),
    ],
)
def test_a_ref_named_like_an_allowed_one_of_the_other_kind_gets_no_runner(
    restricted: FakeAws, github: FakeGitHub, make: Any, name: str, refused: str
) -> None:
    """allowed_refs: [refs/heads/main, refs/tags/v*]; the short name alone would pass both."""
    make(github, name)
    assert refused in refused_for_ref(restricted, github, name)


def test_a_tag_named_main_off_the_branch_main_is_refused(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    """A tag main at an unreviewed commit, next to the branch main: the branch decides."""
    branch(github, "main", sha=ELSEWHERE)
    tag(github, "main")
    github.parents = {ELSEWHERE: ["1" * 40], HEAD: ["1" * 40]}
    assert "nor in its history" in refused_for_ref(restricted, github, "main")


def test_a_ref_that_does_not_exist_is_refused(restricted: FakeAws, github: FakeGitHub) -> None:
    assert "no branch named 'main' exists" in refused_for_ref(restricted, github, "main")


def test_a_branch_whose_history_lacks_the_runs_commit_is_refused(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    """E.g. a tag main at HEAD, used, then deleted: the branch main never had that commit."""
    branch(github, "main", sha=ELSEWHERE)
    github.parents = {ELSEWHERE: ["1" * 40], HEAD: ["1" * 40]}  # siblings: diverged
    reason = refused_for_ref(restricted, github, "main")
    assert "branch 'main' points at eeeeeeeeeeee, not at the run's commit 000000000000" in reason
    assert "nor in its history" in reason


def test_a_branch_that_moved_on_past_the_runs_commit_still_counts(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    """A later push, or a re-run of an older deploy (a rollback): the commit is in main's past."""
    github.runs[777] = run()
    main_history(github)
    assert deploy_job()[1]["status"] == "launched"
    assert ref_lookups(github)[-1] == f"compare/{HEAD}...{ELSEWHERE}?per_page=1"
    assert len(github_calls(github)) == 4


def test_no_ref_lookup_when_branch_or_tag_would_not_change_the_answer(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    github.runs[777] = run(branch="feature-x")  # neither refs/heads/ nor refs/tags/ allowed
    assert deploy_job(branch="feature-x")[1]["status"] == "ignored"
    github.runs[777] = run(event="pull_request", branch="main")  # PRs run at refs/pull/N/merge
    deploy_job(job_id=2)
    assert ref_lookups(github) == []


def test_ref_lookup_failing_starts_nothing_and_keeps_the_job(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub 5xx on the refs: no runner now, no refusal either: the job waits for a re-check."""
    for key, value in restricted.queue_env().items():
        monkeypatch.setenv(key, value)
    github.runs[777] = run()
    branch(github, "main")
    github.fail("GET", r"/git/(ref|tags)/", 502, times=None)
    status, body = deploy_job()
    assert (status, body["status"]) == (202, "queued_for_retry")
    assert github.jit_requests == [] and restricted.tasks() == []
    (message,) = restricted.messages(restricted.retry_queue_url)
    assert message["job"]["profile"] == "deploy"


def test_ref_lookup_failing_without_a_retry_queue_asks_github_to_redeliver(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    github.runs[777] = run()
    github.fail("GET", r"/git/(ref|tags)/", 503, times=None)
    assert deploy_job()[0] == 503
    assert github.jit_requests == []


def test_ref_lookups_share_the_policy_budget(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run + refs together within POLICY_LOOKUP_BUDGET_SECONDS, however slow GitHub is."""
    from lambda_fn import deliveries

    monkeypatch.setattr(deliveries, "POLICY_LOOKUP_BUDGET_SECONDS", 0.000001)
    github.runs[777] = run()
    branch(github, "main")
    status, _ = deploy_job()
    assert status == 503  # no time left for the refs: not launched, not refused
    assert github.jit_requests == []


def test_repository_outside_the_policy_is_refused_without_asking_github(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    github.runs[777] = run()
    _, body = deploy_job(repo="octo-org/other")
    assert body["status"] == "ignored"
    assert "allowed_repositories" in body["reason"]
    assert restricted.tasks() == []
    assert [c.request.url for c in github.mock.calls] == []


def test_unreadable_run_queues_the_job_instead_of_trusting_the_payload(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No run (404 here; a 5xx or a timeout alike): 202 queued_for_retry, never a blind launch."""
    queues = use_retry_queue(restricted, monkeypatch)
    branch(github, "main")
    _, body = deploy_job(branch="feature-x")
    assert body["status"] == "ignored"  # refused on the payload alone: no lookup needed
    assert "allowed_refs" in body["reason"]
    status, body = deploy_job(job_id=2, branch="main")
    assert (status, body["status"]) == (202, "queued_for_retry")
    assert "the workflow run could not be read" in body["reason"]
    assert github.jit_requests == [] and queues.tasks() == []
    (message,) = queues.messages(queues.retry_queue_url)
    assert message["job"]["job_id"] == 2


def test_unrestricted_profiles_make_no_extra_github_call(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    assert deliver(queued_payload(job_id=5))[1]["profile"] == "default"
    assert not [c for c in github.mock.calls if "/actions/runs/" in c.request.url]


def test_profile_subnets_and_public_ip_are_used(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSIGN_PUBLIC_IP", "ENABLED")
    from lambda_fn import aws

    sent: list[dict[str, Any]] = []
    aws.client("ecs").meta.events.register(
        "provide-client-params.ecs.RunTask", lambda params, **_: sent.append(params)
    )
    github.runs[777] = run()
    branch(github, "main")
    deploy_job()
    deliver(queued_payload(job_id=9))
    deploy_net, default_net = (s["networkConfiguration"]["awsvpcConfiguration"] for s in sent)
    assert deploy_net["assignPublicIp"] == "DISABLED"
    assert default_net["assignPublicIp"] == "ENABLED"


def test_invalid_policy_in_the_environment_is_a_config_error(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, lambda_logs: Any
) -> None:
    profiles = restricted.profiles()
    profiles[0]["policy"] = {"allowed_refs": ["main"]}
    set_profiles(monkeypatch, profiles)
    status, _ = deliver(queued_payload())
    assert status == 500
    assert "RUNNER_PROFILES[0].policy.allowed_refs[0]" in lambda_logs.getvalue()


def test_github_failing_on_the_run_lookup_queues_the_job(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup is short (2 s budget, so the JIT call would still fit GitHub's 10 s) and
    required: when it fails the job waits on the retry queue, which checks it again."""
    from lambda_fn import github as gh

    queues = use_retry_queue(restricted, monkeypatch)
    github.fail("GET", r"/actions/runs/", 502, times=None)
    budgets: list[float | None] = []
    original = gh.GitHubClient.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        budgets.append(kwargs.get("budget_seconds"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(gh.GitHubClient, "__init__", spy)
    branch(github, "main")
    status, body = deploy_job(branch="main")
    assert (status, body["status"]) == (202, "queued_for_retry")
    assert budgets[0] == 2.0  # the run lookup
    assert len([c for c in github.mock.calls if "/actions/runs/" in c.request.url]) <= 3
    assert github.jit_requests == [] and queues.tasks() == []
    github.clear_faults()
    github.runs[777] = run()
    github.jobs[1] = {"labels": DEPLOY_LABELS, "head_branch": "main", "run_id": 777}
    drain(queues)
    assert len(github.jit_requests) == 1


# --- later launches re-check the policy: retry consumer and reconciler ------------------------


def deploy_job_on_github(github: FakeGitHub, job_id: int, name: str) -> None:
    """The job as GitHub's jobs API shows it (what the re-checks trust, not the message),
    on a branch ``name`` at the run's commit."""
    github.jobs[job_id] = {"labels": DEPLOY_LABELS, "head_branch": name, "run_id": 777}
    github.runs[777] = run(branch=name)
    branch(github, name)


def forged_retry_message(queues: FakeAws, job_id: int) -> None:
    """A message on the retry queue naming the deploy profile, as if the webhook had sent it."""
    from lambda_fn.config import get_settings
    from lambda_fn.jobs import Job, profile_named
    from lambda_fn.retry_queue import enqueue_retry, first_failure

    deploy = profile_named(get_settings().profiles, "deploy")
    job = Job(job_id, 777, 1, "octo-org", "app", tuple(DEPLOY_LABELS), deploy, None, "main")
    enqueue_retry(get_settings(), first_failure(job, "GitHubTransientError: 502"))


@pytest.fixture
def queues(restricted: FakeAws, monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    return use_retry_queue(restricted, monkeypatch)


def test_a_refused_job_on_the_retry_queue_is_dropped_not_launched(
    queues: FakeAws, github: FakeGitHub, capsys: Any
) -> None:
    """The message says "deploy, branch main"; GitHub says the job runs on branch vx-exfil."""
    deploy_job_on_github(github, 31, "vx-exfil")
    forged_retry_message(queues, 31)
    drain(queues)
    assert github.jit_requests == []
    assert queues.tasks() == []
    assert queues.messages(queues.retry_queue_url) == []
    assert queues.messages(queues.dead_letter_queue_url) == []
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(b.get("JobsDropped") and b.get("reason") == "refused" for b in emf)


def test_a_retry_message_cannot_pick_a_profile_the_job_does_not_select(
    queues: FakeAws, github: FakeGitHub
) -> None:
    """GitHub's job has the default labels: a message naming 'deploy' launches nothing."""
    github.runs[777] = run()
    branch(github, "main")
    forged_retry_message(queues, 32)  # github.jobs[32] unset: labels self-hosted, linux, arm64
    drain(queues)
    assert github.jit_requests == [] and queues.tasks() == []


def test_an_allowed_job_from_the_retry_queue_is_launched_after_the_re_check(
    queues: FakeAws, github: FakeGitHub
) -> None:
    deploy_job_on_github(github, 33, "main")
    github.fail("GET", r"/git/(ref|tags)/", 502, times=None)
    assert deploy_job(job_id=33)[0] == 202  # refs unreadable: queued, not launched
    github.clear_faults()
    drain(queues)
    assert len(github.jit_requests) == 1
    assert len(queues.tasks()) == 1


def test_retry_re_check_that_cannot_read_github_waits_and_never_launches_blind(
    queues: FakeAws, github: FakeGitHub
) -> None:
    deploy_job_on_github(github, 34, "main")
    github.fail("GET", r"/actions/jobs/", 502, times=None)
    forged_retry_message(queues, 34)
    drain(queues, rounds=3)
    assert github.jit_requests == []
    (message,) = queues.messages(queues.retry_queue_url)
    assert message["attempt"] == 4
    assert "could not be read" in message["last_error"]


def test_reconciler_replacement_is_refused_when_the_policy_refuses_the_job(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    """The runner died; meanwhile main was rewritten without the run's commit: no replacement.

    GitHub is asked about a stopped task once (issue 24: a finished job costs nothing more),
    so the refusal is final for that task: restoring the branch later starts nothing."""
    from tests.kit.reconcile import kill, reconcile

    deploy_job_on_github(github, 35, "main")
    launched = deploy_job(job_id=35)[1]
    assert launched["status"] == "launched"
    kill(launched["task_arn"])
    branch(github, "main", sha=ELSEWHERE)  # force-pushed: the run's commit left its history
    github.parents = {ELSEWHERE: ["1" * 40], HEAD: ["1" * 40]}
    report = reconcile()
    assert report["replacement_refused"] == 1
    assert report.get("replaced", 0) == 0
    assert len(github.jit_requests) == 1

    branch(github, "main")
    assert reconcile().get("replaced", 0) == 0
    assert len(github.jit_requests) == 1


# --- binding on GitHub's side: the profile's runner group ---------------------------------


def test_the_profile_runner_group_is_in_the_jit_request(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiles = current_profiles()
    profiles[0]["runner_group_id"] = 42
    set_profiles(monkeypatch, profiles)
    monkeypatch.setenv("RUNNER_SCOPE", "org")
    monkeypatch.setenv("RUNNER_GROUP_ID", "3")
    github.runs[777] = run()
    branch(github, "main")
    assert deploy_job()[1]["status"] == "launched"
    assert deliver(queued_payload(job_id=9))[1]["status"] == "launched"
    deploy_request, default_request = github.jit_requests
    assert deploy_request["url"].endswith("/orgs/octo-org/actions/runners/generate-jitconfig")
    assert (deploy_request["runner_group_id"], default_request["runner_group_id"]) == (42, 3)


# --- exact label matching: a generic job never starts a deploy runner ----------------------


@pytest.mark.parametrize("match", ["subset", "exact"])
def test_an_exact_profile_launches_only_for_its_own_label_set(
    restricted: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, match: str
) -> None:
    """deploy ([self-hosted, linux, deploy]) listed first: a [self-hosted, linux] job."""
    profiles = current_profiles()
    profiles[0]["match"] = match
    set_profiles(monkeypatch, profiles)
    github.runs[777] = run()
    branch(github, "main")
    status, body = deliver(queued_payload(job_id=61, labels=["self-hosted", "linux"]))
    if match == "exact":
        assert (status, body["status"], body["profile"]) == (200, "launched", "default")
        assert github_calls(github) == [
            "POST /repos/octo-org/app/actions/runners/generate-jitconfig"
        ]  # the unrestricted path: the JIT config only
    else:  # subset: the deploy profile takes it (and would launch a deploy runner)
        assert body.get("profile") == "deploy"
    assert deploy_job(job_id=62)[1]["profile"] == "deploy"  # its own set still launches it


# --- admission records: what the deploy runner's hook reads (docs/admission.md) -----------


def admissions(fake: FakeAws) -> dict[str, dict[str, Any]]:
    """Every admission record in the idempotency table, by key, values unwrapped."""
    import boto3

    items = boto3.client("dynamodb", region_name=fake.region).scan(TableName=fake.table)["Items"]
    return {
        item["id"]["S"]: {name: next(iter(value.values())) for name, value in item.items()}
        for item in items
        if item["id"]["S"].startswith("admitted#")
    }


def test_an_admitted_job_is_recorded_for_its_profiles_runners(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    github.runs[777] = run()
    branch(github, "main")
    before = time.time()
    assert deploy_job()[1]["status"] == "launched"
    record = admissions(restricted)["admitted#deploy#octo-org/app#777#1"]
    assert {k: record[k] for k in ("profile", "repository", "run_id", "run_attempt")} == {
        "profile": "deploy",
        "repository": "octo-org/app",
        "run_id": "777",
        "run_attempt": "1",
    }
    assert record["head_sha"] == HEAD
    assert record["job_id"] == "1"
    # Outlives GitHub's 24 h queue limit; the table's TTL attribute removes it later.
    assert before + 24 * 3600 < int(record["expiration"]) <= time.time() + 25 * 3600


def test_a_refused_or_unrestricted_job_writes_no_record(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    github.runs[777] = run(branch="feature-x")
    assert deploy_job()[1]["status"] == "ignored"
    assert deliver(queued_payload(job_id=2))[1]["status"] == "launched"  # default profile
    assert admissions(restricted) == {}


def test_failing_to_record_starts_nothing_and_keeps_the_job(
    queues: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner with no record would refuse its job: no record, no launch; the retry
    consumer admits the job again, writes the record, then launches."""
    from botocore.exceptions import ClientError

    from lambda_fn import aws

    deploy_job_on_github(github, 36, "main")
    real = aws.client("dynamodb").put_item
    calls = {"n": 0}

    def put_item(**kwargs: Any) -> Any:
        if kwargs["Item"]["id"]["S"].startswith("admitted#") and calls["n"] == 0:
            calls["n"] += 1
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem"
            )
        return real(**kwargs)

    monkeypatch.setattr(aws.client("dynamodb"), "put_item", put_item)
    status, body = deploy_job(job_id=36)
    assert (status, body["status"]) == (202, "queued_for_retry")
    assert "admission record could not be written" in body["reason"]
    assert github.jit_requests == [] and queues.tasks() == []
    drain(queues)
    assert "admitted#deploy#octo-org/app#777#1" in admissions(queues)
    assert len(queues.tasks()) == 1


def test_the_reconciler_records_the_attempt_github_reports(
    restricted: FakeAws, github: FakeGitHub
) -> None:
    """A replacement is an admission too, at the run attempt GitHub's job answer names
    (a re-run's jobs are attempt 2, whatever the dead task's tags said)."""
    from tests.kit.reconcile import kill, reconcile

    deploy_job_on_github(github, 37, "main")
    launched = deploy_job(job_id=37)[1]
    kill(launched["task_arn"])
    github.jobs[37]["run_attempt"] = 2
    assert reconcile()["replaced"] == 1
    assert "admitted#deploy#octo-org/app#777#2" in admissions(restricted)
