"""Where this deployment's runners register, as far as its settings alone can say.

A runner registers at ``repos/{owner}/{repo}`` (``RUNNER_SCOPE=repo``) or
``orgs/{owner}`` (``RUNNER_SCOPE=org``), for the job's repository. The settings
name the concrete ones: the exact repositories of ``ALLOWED_REPOSITORIES`` (with
``org``: the owner of every entry, ``owner/*`` included) and every warm pool's
scope. A pattern (``owner/*`` with ``repo``) or an empty ``ALLOWED_REPOSITORIES``
(every repository) names no repository: those scopes are known only from a task's
tags (``lambda_fn.runner_task.RunnerTask.scope``).

Used where no job is at hand: the teardown (which registrations to delete), the
runner-version check on GitHub Enterprise Server (where to read the downloads),
and the source-range refresh (which App installation's token to read ``/meta`` with).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambda_fn.github import scope_path

if TYPE_CHECKING:
    from lambda_fn.config import Settings

_GLOB = frozenset("*?[")


def configured_scopes(settings: Settings) -> list[str]:
    """The concrete scopes the settings name, in configuration order, without repeats."""
    candidates = [*settings.allowed_repositories]
    candidates += [p.warm.scope for p in settings.profiles if p.warm is not None]
    found: dict[str, str] = {}  # lower-cased -> as configured (GitHub ignores case)
    for candidate in candidates:
        owner, _, repo = candidate.partition("/")
        if not owner or _GLOB & set(owner):
            continue
        if settings.runner_scope == "org":
            scope = scope_path("org", owner, "")
        elif repo and not _GLOB & set(repo):
            scope = scope_path("repo", owner, repo)
        else:
            continue
        found.setdefault(scope.lower(), scope)
    return list(found.values())
