"""Branch, tag and history checks against GitHub's git refs and compare API.

The first tests intercept HTTP with ``responses`` directly; the history cases run
against the one GitHub model (``github`` fixture), as the dispatcher sees it.
"""

from __future__ import annotations

import pytest
import requests
import responses

from lambda_fn.errors import GitHubTransientError
from lambda_fn.github import GitHubClient
from lambda_fn.refs import (
    Lookups,
    branch_holds,
    in_reviewed_history,
    name_problem,
    tag_points_at,
    valid_ref_name,
)
from tests.kit.github import FakeGitHub

API = "https://api.github.test"
SHA = "a" * 40


def gh() -> GitHubClient:
    return GitHubClient(
        API, lambda path, force: "tok", session=requests.Session(), sleep=lambda s: None
    )


def ref(name: str, kind: str = "commit", sha: str = SHA, status: int = 200) -> None:
    body = {"ref": f"refs/{name}", "object": {"type": kind, "sha": sha}}
    if status != 200:
        body = {"message": "Not Found"}
    responses.add(responses.GET, f"{API}/repos/o/r/git/ref/{name}", json=body, status=status)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("main", True),
        ("release/1.x", True),
        ("v1.2.3", True),
        ("feature#1", True),
        ("", False),
        ("../../actions/runs", False),
        ("/main", False),
        ("main/", False),
        ("a//b", False),
        ("a b", False),
        ("a\nb", False),
        ("a~1", False),
        ("a^", False),
        ("a:b", False),
        ("a?", False),
        ("a*", False),
        ("a[b", False),
        ("a\\b", False),
        ("x@{1}", False),
        ("@", False),
        (".hidden", False),
        ("a/.b", False),
        ("a.lock", False),
        ("a.", False),
    ],
)
def test_valid_ref_name_follows_git_check_ref_format(name: str, valid: bool) -> None:
    assert valid_ref_name(name) is valid


def test_an_invalid_name_or_commit_is_never_looked_up() -> None:
    assert name_problem("../../x", SHA) == "'../../x' is not a valid branch or tag name"
    assert name_problem("main", None) == "the run's commit is unknown"
    assert name_problem("main", "HEAD~1") == "the run's commit is unknown"


@responses.activate
def test_nested_annotated_tags_are_followed_to_the_commit() -> None:
    ref("tags/v1", kind="tag", sha="1" * 40)
    tag_1 = {"object": {"type": "tag", "sha": "2" * 40}}
    tag_2 = {"object": {"type": "commit", "sha": SHA}}
    responses.add(responses.GET, f"{API}/repos/o/r/git/tags/{'1' * 40}", json=tag_1)
    responses.add(responses.GET, f"{API}/repos/o/r/git/tags/{'2' * 40}", json=tag_2)
    assert tag_points_at(gh(), "o", "r", "v1", SHA, lookups=Lookups(None)) is None
    with pytest.raises(GitHubTransientError, match="more GitHub calls than one delivery"):
        tag_points_at(gh(), "o", "r", "v1", SHA, lookups=Lookups(2))  # ref + 2 tag objects: 3


@responses.activate
def test_a_tag_of_a_tree_is_not_the_runs_commit() -> None:
    ref("tags/v1", kind="tree")
    reason = tag_points_at(gh(), "o", "r", "v1", SHA, lookups=Lookups(None))
    assert reason is not None and "points at nothing" in reason


@responses.activate
def test_no_permission_is_a_reason_and_a_5xx_is_transient() -> None:
    responses.add(
        responses.GET, f"{API}/repos/o/r/git/ref/heads/main", json={"message": "x"}, status=403
    )
    reason = branch_holds(gh(), "o", "r", "main", SHA, lookups=Lookups(None))
    assert reason is not None and "GitHub would not show branch 'main'" in reason
    responses.replace(responses.GET, f"{API}/repos/o/r/git/ref/heads/main", status=502)
    with pytest.raises(GitHubTransientError):
        branch_holds(gh(), "o", "r", "main", SHA, lookups=Lookups(None))


# -- is the tag's commit T in branch B's history? compare/{T}...{B} says ahead or identical --

B = "b" * 40  # main's tip
T_BEHIND, T_AHEAD, T_DIVERGED, ROOT = "1" * 40, "2" * 40, "3" * 40, "4" * 40


def client(github: FakeGitHub) -> GitHubClient:
    return GitHubClient(github.base_url, lambda path, force: "tok", sleep=lambda s: None)


@pytest.mark.parametrize(
    ("tag_commit", "compare_status", "admitted"),
    [
        (B, "identical", True),  # T = B: the tag is on main's tip
        (T_BEHIND, "ahead", True),  # T behind B: main moved on past the tag
        (T_AHEAD, "behind", False),  # T ahead of B: a commit main does not have (yet)
        (T_DIVERGED, "diverged", False),  # a side line: never reviewed into main
    ],
)
def test_the_four_cases_of_a_tag_and_a_branch(
    github: FakeGitHub, tag_commit: str, compare_status: str, admitted: bool
) -> None:
    """GitHub's docs do not define each status in prose (GITHUB.md's "derived" reading):
    pinned here, against the model, as "T in B's history iff ahead or identical"."""
    github.parents = {B: [T_BEHIND], T_BEHIND: [ROOT], T_AHEAD: [B], T_DIVERGED: [ROOT]}
    github.refs["heads/main"] = {"type": "commit", "sha": B}
    assert client(github).compare_commits("o", "r", tag_commit, B) == compare_status
    found = in_reviewed_history(client(github), "o", "r", tag_commit, ["main"], lookups=Lookups(2))
    assert (found.ref == "refs/heads/main") is admitted
    if not admitted:
        assert "nor in its history" in found.reason
    calls = [c.path for c in github.calls()]
    expected = 2 + (tag_commit != B)  # the check: the ref, then compare unless at the tip
    assert calls[1:] == [
        "/repos/o/r/git/ref/heads/main",
        *([f"/repos/o/r/compare/{tag_commit}...{B}"] if tag_commit != B else []),
    ]
    assert len(calls) == expected


def test_branches_are_tried_in_order_and_a_missing_one_is_a_reason(github: FakeGitHub) -> None:
    github.parents = {B: [T_BEHIND]}
    github.refs["heads/stable"] = {"type": "commit", "sha": B}
    found = in_reviewed_history(
        client(github), "o", "r", T_BEHIND, ["main", "stable"], lookups=Lookups(3)
    )
    assert found.ref == "refs/heads/stable"
    none = in_reviewed_history(client(github), "o", "r", T_BEHIND, [], lookups=Lookups(3))
    assert none.reason == "no exact branch in allowed_refs to find the commit in"
    missing = in_reviewed_history(client(github), "o", "r", T_BEHIND, ["main"], lookups=Lookups(3))
    assert missing.reason == "no branch named 'main' exists"
