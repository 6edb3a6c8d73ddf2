"""Is a job's ``head_branch`` a branch or a tag? Ask GitHub; never guess.

The ``workflow_job`` payload and the workflow run name the ref a job runs at
only by its short name (``head_branch``), and a short name can be a branch or
a tag: ``main`` may be ``refs/heads/main`` or ``refs/tags/main``. Matching it
as both would give a pushed *branch* ``v1-exfil`` a runner meant for
``refs/tags/v*``, and a *tag* ``main`` one meant for ``refs/heads/main``.

So the dispatcher looks both names up with the git refs API and keeps the one
that exists and points at the run's ``head_sha``. Anything else (both exist,
neither exists, the one that exists points elsewhere) is undecided, and an
undecided ref is refused at dispatch. The runner's own check on the full
``GITHUB_REF`` stays the real control; this one only avoids launching for a
job the runner would refuse.

A branch that moved on after the run was queued (a later push, or a re-run of
an older commit) no longer points at ``head_sha``; it still counts when
``head_sha`` is in the branch's history (one more call, the compare API). A
tag that points elsewhere does not: tags are not meant to move.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambda_fn.errors import GitHubPermanentError
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


def resolve_ref(
    gh: GitHubClient, owner: str, repo: str, name: str, head_sha: str | None
) -> Resolution:
    """Decide whether ``name`` is the branch or the tag the run at ``head_sha`` ran on.

    Raises ``GitHubTransientError`` when GitHub cannot answer now (the caller
    tries again later); a permanent refusal (no permission, repository gone)
    is an undecided :class:`Resolution`.
    """
    if not valid_ref_name(name):
        return Resolution(None, f"{name!r} is not a valid branch or tag name")
    if not head_sha or not _SHA.match(head_sha):
        return Resolution(None, f"the run's commit is unknown, so {name!r} cannot be resolved")
    try:
        branch = gh.get_ref(owner, repo, f"heads/{name}")
        tag = gh.get_ref(owner, repo, f"tags/{name}")
        if branch is not None and tag is not None:
            return Resolution(
                None, f"both a branch and a tag are named {name!r}: cannot tell which one ran"
            )
        if branch is None and tag is None:
            return Resolution(None, f"no branch or tag named {name!r} exists (deleted?)")
        kind, ref = ("branch", "heads") if branch is not None else ("tag", "tags")
        found = branch if branch is not None else tag
        ref = f"refs/{ref}/{name}"
        commit = _commit_of(gh, owner, repo, (found or {}).get("object"))
        if commit == head_sha or (
            kind == "branch"
            and commit is not None
            and _SHA.match(commit)
            and gh.compare_commits(owner, repo, head_sha, commit) in ("ahead", "identical")
        ):
            return Resolution(ref)
    except GitHubPermanentError as exc:
        return Resolution(None, f"GitHub would not show the refs: {exc}")
    where = "nor in its history" if kind == "branch" else "(tags do not move)"
    return Resolution(
        None,
        f"{kind} {name!r} points at {_short(commit)}, not at the run's commit "
        f"{_short(head_sha)} {where}",
    )


def _commit_of(gh: GitHubClient, owner: str, repo: str, target: Any) -> str | None:
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
        if kind != "tag":
            return None  # a tag of a tree or blob: no commit ran from it
        target = gh.get_tag_object(owner, repo, sha).get("object")
    return None


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "nothing"
