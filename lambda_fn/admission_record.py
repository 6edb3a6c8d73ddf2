"""Admission records: what dispatch admitted for a restricted profile, as the runner reads it.

GitHub gives a queued job to any online runner whose labels include all the job's
labels, so a deploy runner launched for an admitted job can be taken by another job
(docs/admission.md). When dispatch admits a job for a restricted profile it writes one
record into the idempotency table; the runner's job-started hook reads the record of
the job it got, with its own task role (``dynamodb:GetItem`` limited by
``dynamodb:LeadingKeys`` to :func:`key_prefix` of its profile), and refuses the job
unless the record exists, is not expired and names the same repository, run, run
attempt and commit.

One module for the three users of the format: the Lambda writes items
(:func:`item`), the construct grants reads on :func:`key_prefix`, and the runner's
hook (``fargate_runners/runner/job_started.py``, which loads this file by path, as it
loads ``policy.py``) builds :func:`key` from the job's ``GITHUB_*`` variables and
checks the answer with :func:`refusal`. Standard library only, no imports from the
package: it runs on the runner image's python3 (3.12; 3.10 compatible).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

#: First part of every record's ``id``; Powertools' idempotency keys never start with it
#: (theirs are ``<key prefix>#<hash>``, ``lambda_fn.jobs.IDEMPOTENCY_KEY_PREFIX``).
KEY_PREFIX = "admitted"
#: The table's TTL attribute (the construct's ``time_to_live_attribute``, as Powertools uses).
EXPIRATION_ATTRIBUTE = "expiration"
#: GitHub keeps a job queued at most 24 h (docs.github.com, "Usage limits ... for
#: self-hosted runners": "Job queue time"); the hook runs when the job starts, so a record
#: must outlive that. One hour more for clock skew and "Set up job".
TTL_SECONDS = 24 * 3600 + 3600

_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}/[A-Za-z0-9_.-]{1,100}$")
_PROFILE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
#: A commit id: SHA-1 (40 hex) or SHA-256 (64 hex) repositories.
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


class RecordError(ValueError):
    """A value that cannot be part of a record (checked before anything is built)."""


@dataclass(frozen=True)
class Admission:
    """One admitted (repository, run, run attempt, commit) for one profile."""

    profile: str
    repository: str  # owner/name as GitHub spells it; compared case-insensitively
    run_id: int
    run_attempt: int
    head_sha: str
    expires_at: int  # epoch seconds
    job_id: int = 0  # the job whose admission wrote it (for the audit trail only)


def key_prefix(profile: str) -> str:
    """``admitted#<profile>#``: the leading key every record of ``profile`` starts with."""
    if not _PROFILE.match(profile):
        raise RecordError(f"profile name {profile!r} is not a runner profile name")
    return f"{KEY_PREFIX}#{profile}#"


def key(profile: str, repository: str, run_id: int, run_attempt: int) -> str:
    """``admitted#<profile>#<owner/name, lower case>#<run id>#<run attempt>``.

    GitHub treats owner and repository names case-insensitively, so the key does too.
    The commit is checked inside the record, not keyed: a run has one head commit.
    """
    if not _REPOSITORY.match(repository):
        raise RecordError(f"repository {repository!r} is not owner/name")
    for name, value in (("run id", run_id), ("run attempt", run_attempt)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RecordError(f"{name} {value!r} is not a positive integer")
    return f"{key_prefix(profile)}{repository.lower()}#{run_id}#{run_attempt}"


def item(admission: Admission) -> dict[str, dict[str, str]]:
    """The DynamoDB item (typed JSON, as ``PutItem`` takes it)."""
    if not _SHA.match(admission.head_sha):
        raise RecordError(f"head commit {admission.head_sha!r} is not a commit id")
    return {
        "id": {"S": key(admission.profile, admission.repository, admission.run_id,
                        admission.run_attempt)},
        "profile": {"S": admission.profile},
        "repository": {"S": admission.repository},
        "run_id": {"N": str(admission.run_id)},
        "run_attempt": {"N": str(admission.run_attempt)},
        "head_sha": {"S": admission.head_sha},
        "job_id": {"N": str(admission.job_id)},
        EXPIRATION_ATTRIBUTE: {"N": str(admission.expires_at)},
    }  # fmt: skip


def from_item(data: Mapping[str, Any]) -> Admission:
    """Read a ``GetItem`` answer's ``Item``; raises :class:`RecordError` if malformed."""

    def text(name: str) -> str:
        value = data.get(name)
        if not isinstance(value, Mapping) or not isinstance(value.get("S"), str):
            raise RecordError(f"the record has no text {name!r}")
        return str(value["S"])

    def number(name: str) -> int:
        value = data.get(name)
        raw = value.get("N") if isinstance(value, Mapping) else None
        if not isinstance(raw, str) or not raw.isdigit():
            raise RecordError(f"the record has no whole number {name!r}")
        return int(raw)

    return Admission(
        profile=text("profile"),
        repository=text("repository"),
        run_id=number("run_id"),
        run_attempt=number("run_attempt"),
        head_sha=text("head_sha"),
        expires_at=number(EXPIRATION_ATTRIBUTE),
        job_id=number("job_id") if "job_id" in data else 0,
    )


@dataclass(frozen=True)
class RunnerJob:
    """What the runner knows about the job it got, from ``GITHUB_*`` and the event file."""

    repository: str
    run_id: int
    run_attempt: int
    #: Commits the run may be recorded at: ``GITHUB_SHA``, and for pull-request events the
    #: pull request's head commit too (``GITHUB_SHA`` is then the merge or base commit).
    shas: tuple[str, ...]


def runner_job(
    env: Mapping[str, str], event: Mapping[str, Any] | None, pull_request_events: Collection[str]
) -> RunnerJob:
    """The job's identity from the hook's environment; raises :class:`RecordError`.

    ``pull_request_events`` is ``policy.PULL_REQUEST_EVENTS`` (one list of them).

    ``GITHUB_REPOSITORY``, ``GITHUB_RUN_ID``, ``GITHUB_RUN_ATTEMPT`` and ``GITHUB_SHA``
    come from the run (actions/runner ``src/Runner.Worker/GitHubContext.cs``, the
    ``GITHUB_*`` allow-list); a workflow cannot set them and no job step has run yet.
    """
    repository = env.get("GITHUB_REPOSITORY", "")
    if not _REPOSITORY.match(repository):
        raise RecordError(f"GITHUB_REPOSITORY {repository!r} is not owner/name")
    numbers = []
    for name in ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"):
        raw = env.get(name, "")
        if not raw.isdigit() or int(raw) < 1:
            raise RecordError(f"{name} {raw!r} is not a positive integer")
        numbers.append(int(raw))
    sha = env.get("GITHUB_SHA", "")
    if not _SHA.match(sha):
        raise RecordError(f"GITHUB_SHA {sha!r} is not a commit id")
    shas = [sha]
    if env.get("GITHUB_EVENT_NAME") in pull_request_events and isinstance(event, Mapping):
        pull_request = event.get("pull_request")
        head = pull_request.get("head") if isinstance(pull_request, Mapping) else None
        head_sha = head.get("sha") if isinstance(head, Mapping) else None
        if isinstance(head_sha, str) and _SHA.match(head_sha) and head_sha != sha:
            shas.append(head_sha)
    return RunnerJob(repository, numbers[0], numbers[1], tuple(shas))


def refusal(record: Admission, profile: str, job: RunnerJob, now: float) -> str | None:
    """Why ``record`` does not admit ``job`` to ``profile`` at ``now``; ``None`` if it does."""
    if record.profile != profile:
        return f"the record is for profile {record.profile!r}"
    if record.repository.lower() != job.repository.lower():
        return f"the record is for repository {record.repository}"
    if (record.run_id, record.run_attempt) != (job.run_id, job.run_attempt):
        return f"the record is for run {record.run_id} attempt {record.run_attempt}"
    if record.head_sha not in job.shas:
        return f"dispatch admitted commit {record.head_sha}, the job runs at {' / '.join(job.shas)}"
    if record.expires_at <= now:
        return "the record has expired"
    return None
