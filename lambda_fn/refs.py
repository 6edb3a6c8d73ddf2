"""Is the run's ref what ``allowed_refs`` allows, and is its commit reviewed? Ask GitHub.

The ``workflow_job`` payload and the workflow run name the ref a job runs at only
by its short name (``head_branch``), and a short name can be a branch or a tag:
``main`` may be ``refs/heads/main`` or ``refs/tags/main``. The dispatcher
(``lambda_fn.admission``) looks up only the kind of ref that decides the
verdict, with these checks:

* :func:`branch_holds`: branch ``X`` exists and the run's commit (``head_sha``)
  is its tip or in its history (a branch that moved on after the run was queued,
  or a re-run of an older commit, still counts: one more call, the compare API);
* :func:`tag_points_at`: tag ``X`` exists and names the run's commit
  (annotated tags dereferenced); tags are not meant to move, so no history;
* :func:`in_reviewed_history`: the run's commit is in the history of one of the
  given branches, tried in order. This is how a tag run is admitted under
  ``tag_protection: branch-history``: any writer can push a tag at a commit of
  their own, but only reviewed commits are in a protected branch's history.
  It checks the *run's* commit, not the tag ref: the run executes ``head_sha``
  (the tag's commit when the run was created; GitHub reads the workflow file
  there and ``actions/checkout`` fetches that commit), while the tag may have
  moved since.

Ancestry comes from ``GET /repos/{o}/{r}/compare/{BASE}...{HEAD}``: ``status``
``ahead`` or ``identical`` means BASE is an ancestor of (or equal to) HEAD
(docs.github.com/en/rest/commits/commits#compare-two-commits; the reading of
the four values is derived, pinned by tests/unit/test_refs.py against the
GitHub model). Branch tips are resolved to SHAs first (``git/ref/heads/X``)
and compared by SHA, so a tag named like a branch cannot stand in for it.

Every check spends from a :class:`Lookups` allowance: a webhook delivery may
make at most a few calls (GitHub's 10-second delivery timeout, and the bench's
call count); a check that needs more raises ``GitHubTransientError`` and the
job is checked again, without that limit, from the retry queue.

The runner's own check on the full ``GITHUB_REF`` stays the real control for
the ref pattern; these checks avoid launching for a job the runner would
refuse, and add what the runner cannot check (history needs GitHub's API).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambda_fn.errors import GitHubPermanentError, GitHubTransientError
from lambda_fn.github import GitHubClient

#: Annotated tags may point at annotated tags; real repositories stop after one.
MAX_TAG_DEPTH = 4

# Characters ``git check-ref-format`` forbids anywhere in a ref name
# (git-scm.com/docs/git-check-ref-format): control characters, space, ~ ^ : ? * [ \
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class Resolution:
    """``ref`` (``refs/heads/X`` or ``refs/tags/X``) when decided, else ``reason``."""

    ref: str | None
    reason: str = ""


def valid_ref_name(name: str) -> bool:
    """True if ``name`` could be a branch or tag name (the rules of ``git check-ref-format``).

    Checked before a name becomes part of a URL path: ``..`` or a leading ``/``
    would otherwise let a name reach another API path.
    """
    parts = name.split("/")
    return (
        bool(name)
        and not _FORBIDDEN.search(name)
        and ".." not in name
        and "@{" not in name
        and name != "@"
        and not name.endswith(".")
        and all(part and not part.startswith(".") and not part.endswith(".lock") for part in parts)
    )


class Lookups:
    """How many more GitHub calls the ref checks may make (``None``: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def spend(self) -> None:
        """Count one call; raise ``GitHubTransientError`` when none is left."""
        if self.left is None:
            return
        if self.left <= 0:
            raise GitHubTransientError(
                "the ref check needs more GitHub calls than one delivery may make; "
                "it is finished from the retry queue"
            )
        self.left -= 1


def name_problem(name: str, head_sha: str | None) -> str | None:
    """Why ``name`` and ``head_sha`` cannot be looked up (checked before any URL is built)."""
    if not valid_ref_name(name):
        return f"{name!r} is not a valid branch or tag name"
    return sha_problem(head_sha)


def sha_problem(head_sha: str | None) -> str | None:
    if not head_sha or not _SHA.match(head_sha):
        return "the run's commit is unknown"
    return None


def branch_holds(
    gh: GitHubClient, owner: str, repo: str, name: str, head_sha: str, *, lookups: Lookups
) -> str | None:
    """``None`` if branch ``name`` holds ``head_sha`` (tip or history), else why not.

    One call (``git/ref/heads/NAME``), two when the branch has moved on (compare).
    A permanent refusal (no permission, unknown commit) is a reason, not an error;
    ``GitHubTransientError`` propagates.
    """
    try:
        lookups.spend()
        found = gh.get_ref(owner, repo, f"heads/{name}")
        if found is None:
            return f"no branch named {name!r} exists"
        target = found.get("object")
        commit = target.get("sha") if isinstance(target, Mapping) else None
        if commit == head_sha:
            return None
        if not isinstance(commit, str) or not _SHA.match(commit):
            return f"branch {name!r} points at nothing GitHub showed"
        lookups.spend()
        if gh.compare_commits(owner, repo, head_sha, commit) in ("ahead", "identical"):
            return None
    except GitHubPermanentError as exc:
        return f"GitHub would not show branch {name!r}: {exc}"
    return (
        f"branch {name!r} points at {_short(commit)}, not at the run's commit "
        f"{_short(head_sha)} nor in its history"
    )


def tag_points_at(
    gh: GitHubClient, owner: str, repo: str, name: str, head_sha: str, *, lookups: Lookups
) -> str | None:
    """``None`` if tag ``name`` names ``head_sha`` (annotated tags dereferenced), else why not."""
    try:
        lookups.spend()
        found = gh.get_ref(owner, repo, f"tags/{name}")
        if found is None:
            return f"no tag named {name!r} exists"
        commit = _commit_of(gh, owner, repo, found.get("object"), lookups)
    except GitHubPermanentError as exc:
        return f"GitHub would not show tag {name!r}: {exc}"
    if commit == head_sha:
        return None
    return (
        f"tag {name!r} points at {_short(commit)}, not at the run's commit "
        f"{_short(head_sha)} (tags do not move)"
    )


def in_reviewed_history(
    gh: GitHubClient,
    owner: str,
    repo: str,
    head_sha: str,
    branches: Sequence[str],
    *,
    lookups: Lookups,
) -> Resolution:
    """The first of ``branches`` holding ``head_sha`` (as ``refs/heads/X``), or why none.

    Branches are tried in order, each with :func:`branch_holds`; an invalid name
    is skipped with its reason (policy patterns are checked at synth, but this
    never builds a URL from an unchecked name).
    """
    if not branches:
        return Resolution(None, "no exact branch in allowed_refs to find the commit in")
    reasons: list[str] = []
    for name in branches:
        reason = (
            branch_holds(gh, owner, repo, name, head_sha, lookups=lookups)
            if valid_ref_name(name)
            else f"{name!r} is not a valid branch name"
        )
        if reason is None:
            return Resolution(f"refs/heads/{name}")
        reasons.append(reason)
    return Resolution(None, "; ".join(reasons))


def _commit_of(
    gh: GitHubClient, owner: str, repo: str, target: Any, lookups: Lookups
) -> str | None:
    """The commit a ref's ``object`` finally names, dereferencing annotated tags.

    A lightweight tag or a branch points at the commit (``type: commit``); an
    annotated tag points at a tag object (``type: tag``) whose own ``object``
    names the commit: docs.github.com/en/rest/git/tags#get-a-tag.
    """
    for _ in range(MAX_TAG_DEPTH):
        if not isinstance(target, Mapping):
            return None
        kind, sha = target.get("type"), target.get("sha")
        if not isinstance(sha, str):
            return None
        if kind == "commit":
            return sha
        if kind != "tag" or not _SHA.match(sha):
            return None  # a tag of a tree or blob: no commit ran from it
        lookups.spend()
        target = gh.get_tag_object(owner, repo, sha).get("object")
    return None


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "nothing"
