"""Branch or tag, from GitHub's git refs (HTTP intercepted by ``responses``)."""

from __future__ import annotations

import pytest
import requests
import responses

from lambda_fn.errors import GitHubTransientError
from lambda_fn.github import GitHubClient
from lambda_fn.refs import resolve_ref, valid_ref_name

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


@responses.activate
def test_an_invalid_name_is_never_looked_up() -> None:
    assert resolve_ref(gh(), "o", "r", "../../x", SHA).ref is None
    assert len(responses.calls) == 0


@responses.activate
def test_nested_annotated_tags_are_followed_to_the_commit() -> None:
    ref("heads/v1", status=404)
    ref("tags/v1", kind="tag", sha="1" * 40)
    tag_1 = {"object": {"type": "tag", "sha": "2" * 40}}
    tag_2 = {"object": {"type": "commit", "sha": SHA}}
    responses.add(responses.GET, f"{API}/repos/o/r/git/tags/{'1' * 40}", json=tag_1)
    responses.add(responses.GET, f"{API}/repos/o/r/git/tags/{'2' * 40}", json=tag_2)
    assert resolve_ref(gh(), "o", "r", "v1", SHA).ref == "refs/tags/v1"


@responses.activate
def test_a_tag_of_a_tree_is_not_the_runs_commit() -> None:
    ref("heads/v1", status=404)
    ref("tags/v1", kind="tree")
    resolution = resolve_ref(gh(), "o", "r", "v1", SHA)
    assert resolution.ref is None
    assert "points at nothing" in resolution.reason


@responses.activate
def test_no_permission_is_undecided_and_a_5xx_is_transient() -> None:
    responses.add(
        responses.GET, f"{API}/repos/o/r/git/ref/heads/main", json={"message": "x"}, status=403
    )
    assert "GitHub would not show the refs" in resolve_ref(gh(), "o", "r", "main", SHA).reason
    responses.replace(responses.GET, f"{API}/repos/o/r/git/ref/heads/main", status=502)
    with pytest.raises(GitHubTransientError):
        resolve_ref(gh(), "o", "r", "main", SHA)


def test_an_unknown_commit_cannot_be_matched() -> None:
    assert resolve_ref(gh(), "o", "r", "main", None).ref is None
