"""The job on its way to a runner: one shape from the profile match to the tags, and its
stored forms.

A :class:`Job` is made once: where a delivery's job is matched to a profile
(``lambda_fn.deliveries``), or where a stored form is read back (a retry-queue message, a
waiting-job record, a stopped task's tags in the reconciler). It carries the chosen
:class:`~lambda_fn.config.Profile` itself, so nothing on the launch path looks a profile up
by name again; only the stored forms carry the profile's *name*, resolved once, when they
are read (:func:`profile_named`).

What is stored, and must stay readable across a deploy (the new version reads what the old
one wrote, and a rollback reads what the new one wrote):

* **The retry queue's message body** (:class:`RetryMessage`), JSON::

      {"job": {"job_id", "run_id", "run_attempt", "owner", "repo", "labels", "profile",
               "workflow_name", "head_branch", "environment"},
       "attempt", "first_failed_at", "last_error"}

  Earlier versions also wrote ``"extra": {}`` (never filled); it is ignored when read, and
  those versions read it with a default, so leaving it out is safe both ways.
* **The launch record** (Powertools idempotency, DynamoDB): ``id`` is
  ``workflow-job#<md5 of the JSON of Job.idempotency_key>``: the job id as a string
  (``"123"``), or ``"123#replacement-2"`` for the reconciler's second replacement runner.
  A different key for the same job would start a second runner for every job in flight
  at a deploy (tests/integration/test_job_message.py pins it).
* **The waiting-job record** (:class:`WaitingJob`): one entry of the ``waiting-jobs``
  item's ``jobs`` map (``lambda_fn.waiting``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lambda_fn.config import Profile

#: Powertools' ``key_prefix`` of the launch records (``<prefix>#<md5>``). Other items in
#: the table (admission records, waiting jobs, job states) use other keys, never this one.
IDEMPOTENCY_KEY_PREFIX = "workflow-job"
#: ``last_error`` kept in a retry message (SQS bodies are at most 256 KB).
MAX_ERROR_TEXT = 1000


class UnknownProfileError(ValueError):
    """A stored job names a profile the configuration no longer has (renamed or removed)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"RUNNER_PROFILES has no profile named {name!r}")
        self.name = name


def profile_named(profiles: Iterable[Profile], name: str) -> Profile:
    """The profile a stored job names; :class:`UnknownProfileError` if there is none."""
    for profile in profiles:
        if profile.name == name:
            return profile
    raise UnknownProfileError(name)


@dataclass(frozen=True)
class Job:
    """A queued job and the profile chosen for it: everything a launch needs, and the
    identity its task is tagged with (``lambda_fn.run_task``).

    Handed to Powertools' idempotency as it is (``lambda_fn.idempotent_launch``), which
    hashes only :attr:`idempotency_key`.
    """

    job_id: int
    run_id: int
    run_attempt: int
    owner: str
    repo: str
    labels: tuple[str, ...]
    profile: Profile
    workflow_name: str | None = None
    head_branch: str | None = None
    #: The environment the job deploys to, from its signed delivery's ``deployment``
    #: (``None``: it names none); ``required_environment`` is checked against it.
    environment: str | None = None
    #: 0 for the job's first runner; n for the reconciler's n-th replacement of a runner
    #: that died before taking the job (each has its own launch record).
    replacement: int = 0
    #: What the launch record is keyed by (module docstring); derived, never set.
    idempotency_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = str(self.job_id)
        if self.replacement:
            key = f"{key}#replacement-{self.replacement}"
        object.__setattr__(self, "idempotency_key", key)

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.repo}"

    def to_wire(self) -> dict[str, Any]:
        """The job as a retry message carries it (module docstring): the profile by name."""
        return {
            "job_id": self.job_id,
            "run_id": self.run_id,
            "run_attempt": self.run_attempt,
            "owner": self.owner,
            "repo": self.repo,
            "labels": list(self.labels),
            "profile": self.profile.name,
            "workflow_name": self.workflow_name,
            "head_branch": self.head_branch,
            "environment": self.environment,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], profiles: Iterable[Profile]) -> Job:
        """Read :meth:`to_wire`'s form (or an earlier version's); the profile resolved now.

        Raises ``KeyError``/``TypeError``/``ValueError`` for a body that is not a job, and
        :class:`UnknownProfileError` (a ``ValueError``) for one naming no current profile.
        """
        labels = data["labels"]
        if not isinstance(labels, list):
            raise TypeError("labels must be a list")
        return cls(
            job_id=int(data["job_id"]),
            run_id=int(data["run_id"]),
            run_attempt=int(data.get("run_attempt", 1)),
            owner=str(data["owner"]),
            repo=str(data["repo"]),
            labels=tuple(str(label) for label in labels),
            profile=profile_named(profiles, str(data["profile"])),
            workflow_name=_optional_text(data.get("workflow_name")),
            head_branch=_optional_text(data.get("head_branch")),
            environment=_optional_text(data.get("environment")),
        )


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class RetryMessage:
    """A job on its way through the retry queue (or parked in the dead-letter queue)."""

    job: Job
    attempt: int  # launch attempts already made
    first_failed_at: float
    last_error: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "job": self.job.to_wire(),
                "attempt": self.attempt,
                "first_failed_at": self.first_failed_at,
                "last_error": self.last_error[:MAX_ERROR_TEXT],
            }
        )

    @classmethod
    def from_json(cls, body: str, profiles: Iterable[Profile]) -> RetryMessage:
        """Raises like :meth:`Job.from_wire` (JSON errors are ``ValueError`` too)."""
        data = json.loads(body)
        return cls(
            job=Job.from_wire(data["job"], profiles),
            attempt=int(data["attempt"]),
            first_failed_at=float(data["first_failed_at"]),
            last_error=str(data.get("last_error", "")),
        )

    def age_seconds(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.first_failed_at


#: A workflow run may take 35 days, "including waiting and approval" (docs.github.com,
#: actions/reference/limits, usage limits for self-hosted runners): nothing waits longer.
REMEMBER_SECONDS = 35 * 24 * 3600


@dataclass(frozen=True)
class WaitingJob:
    """A job waiting for an environment's approval, as ``lambda_fn.waiting`` stores it:
    what launching it later needs, from its signed delivery."""

    job_id: int
    run_id: int
    run_attempt: int
    owner: str
    repo: str
    profile: str
    labels: tuple[str, ...]
    environment: str
    workflow_name: str | None
    head_branch: str | None
    #: epoch seconds: first remembered, forgotten after, last looked at by the reconciler.
    since: int
    expires: int
    checked: int = 0

    @classmethod
    def of(cls, job: Job, now: int) -> WaitingJob:
        return cls(
            job_id=job.job_id,
            run_id=job.run_id,
            run_attempt=job.run_attempt,
            owner=job.owner,
            repo=job.repo,
            profile=job.profile.name,
            labels=job.labels,
            environment=job.environment or "",
            workflow_name=job.workflow_name,
            head_branch=job.head_branch,
            since=now,
            expires=now + REMEMBER_SECONDS,
        )

    def job(self, profiles: Iterable[Profile]) -> Job:
        """The job to launch; :class:`UnknownProfileError` if its profile is gone."""
        return Job(
            job_id=self.job_id,
            run_id=self.run_id,
            run_attempt=self.run_attempt,
            owner=self.owner,
            repo=self.repo,
            labels=self.labels,
            profile=profile_named(profiles, self.profile),
            workflow_name=self.workflow_name,
            head_branch=self.head_branch,
            environment=self.environment or None,
        )

    def to_item(self) -> dict[str, Any]:
        from boto3.dynamodb.types import TypeSerializer

        data = {k: v for k, v in asdict(self).items() if v is not None}
        data["labels"] = list(self.labels)
        return {"M": {k: TypeSerializer().serialize(v) for k, v in data.items()}}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WaitingJob | None:
        """A stored record, or ``None`` if it is not one (never trusted blindly)."""
        from boto3.dynamodb.types import TypeDeserializer

        try:
            data = {k: TypeDeserializer().deserialize(v) for k, v in item["M"].items()}
            return cls(
                job_id=int(data["job_id"]),
                run_id=int(data["run_id"]),
                run_attempt=int(data["run_attempt"]),
                owner=str(data["owner"]),
                repo=str(data["repo"]),
                profile=str(data["profile"]),
                labels=tuple(str(label) for label in data["labels"]),
                environment=str(data["environment"]),
                workflow_name=_optional_text(data.get("workflow_name")),
                head_branch=_optional_text(data.get("head_branch")),
                since=int(data["since"]),
                expires=int(data["expires"]),
                checked=int(data.get("checked", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None
