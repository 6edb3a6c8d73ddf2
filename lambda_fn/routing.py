"""Which runner profile (if any) a queued job gets. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lambda_fn.config import Profile


def repository_allowed(repository: str, patterns: Sequence[str]) -> bool:
    """True when ``owner/repo`` matches one of ``owner/repo`` / ``owner/*`` (case-insensitive).

    An empty pattern list allows every repository.
    """
    if not patterns:
        return True
    owner, _, name = repository.lower().partition("/")
    for pattern in patterns:
        p_owner, _, p_name = pattern.lower().partition("/")
        if p_owner == owner and p_name in ("*", name):
            return True
    return False


def match_profile(job_labels: Iterable[str], profiles: Sequence[Profile]) -> Profile | None:
    """The first profile (config order) that serves the job's labels.

    A ``subset`` profile (the default) serves a job whose labels are all among
    its own; an ``exact`` profile only a job whose label set equals its own. GitHub
    itself gives a job to any runner that has all the job's labels
    (docs.github.com/en/actions/how-tos/manage-runners/self-hosted-runners/use-in-a-workflow),
    so ``exact`` only decides what dispatch launches for: a ``[self-hosted, linux]``
    job never starts a ``[self-hosted, linux, deploy]`` runner. Labels compare
    case-insensitively, as GitHub does. A job with no labels matches nothing: it
    cannot be meant for these runners.
    """
    wanted = frozenset(label.strip().lower() for label in job_labels)
    if not wanted:
        return None
    for profile in profiles:
        if wanted == profile.label_set or (
            profile.match == "subset" and wanted < profile.label_set
        ):
            return profile
    return None
