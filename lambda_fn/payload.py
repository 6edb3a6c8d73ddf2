"""The GitHub webhook payload fields we act on (``workflow_job``), validated.

The signature is checked (``signature.py``) over the raw body bytes before
anything here reads the body. Only the fields the dispatcher uses are kept
(GitHub adds fields over time: the rest is ignored), each checked for type and
bound so a hostile-but-signed body cannot blow up memory or logs.

Plain ``dataclasses`` and a few checks instead of pydantic models: the Lambda
asset then carries no pydantic/pydantic-core and a cold start does not import
them (the figures: docs/performance.md, "A smaller, faster Lambda"). Field shapes
follow GitHub's ``workflow_job`` payload
(https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_job).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_LABELS = 64  # a real runs-on names a handful; a longer list is refused as hostile
MAX_LABEL_LENGTH = 256
MAX_TEXT = 1024
MAX_ACTION = 64
MAX_FULL_NAME = 140
#: "An environment name may not exceed 255 characters" (docs.github.com, actions/how-tos/
#: deploy/configure-and-manage-deployments/manage-environments).
MAX_ENVIRONMENT = 255

_REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# Users and orgs: letters, digits, hyphens; managed users (EMU) add "_shortcode".
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


class PayloadError(ValueError):
    """A field is missing or not what GitHub sends; ``where`` is its dotted path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True)
class Account:
    """A user or organization: a repository's owner, or the delivery's organization."""

    login: str


@dataclass(frozen=True)
class Repository:
    name: str
    full_name: str
    owner: Account

    @property
    def slug(self) -> str:
        """``owner/name`` built from the validated parts (never trust ``full_name`` alone)."""
        return f"{self.owner.login}/{self.name}"


@dataclass(frozen=True)
class WorkflowJob:
    id: int
    run_id: int
    run_attempt: int
    labels: list[str]
    #: When GitHub created (queued) the job; how old a delivery's job is (replays). Only a
    #: ``queued`` delivery needs it (docs/contract.md): older payloads of other actions lack it.
    created_at: datetime | None = None
    #: When a runner took the job (``in_progress`` and later); time to start.
    started_at: datetime | None = None
    name: str | None = None
    workflow_name: str | None = None
    head_branch: str | None = None
    head_sha: str | None = None
    status: str | None = None
    conclusion: str | None = None
    runner_name: str | None = None
    html_url: str | None = None


@dataclass(frozen=True)
class Deployment:
    """The top-level ``deployment`` of a job that names an ``environment:``.

    GitHub adds it to ``workflow_job`` deliveries of such jobs (changelog 2022-11-22,
    "Webhook enhancements for environment protection rules"; octokit/webhooks
    ``payload-examples/api.github.com/workflow_job/queued.with-deployment.payload.json``).
    """

    id: int
    #: The environment's name as the workflow wrote it (GitHub compares names
    #: case-insensitively: ``same_environment``).
    environment: str


@dataclass(frozen=True)
class WorkflowJobEvent:
    """A ``workflow_job`` delivery, validated enough to launch a runner for it."""

    action: str
    workflow_job: WorkflowJob
    repository: Repository
    organization: Account | None = None
    deployment: Deployment | None = None


def same_environment(a: str, b: str) -> bool:
    """ "Environment names are not case sensitive" (docs.github.com, manage-environments)."""
    return a.casefold() == b.casefold()


def event_action(payload: Mapping[str, Any]) -> str:
    """The smallest shape every ``workflow_job`` delivery has: its ``action``."""
    return _text(payload, "action", "", MAX_ACTION, required=True) or ""


def parse_event(payload: Mapping[str, Any]) -> WorkflowJobEvent:
    """The validated event; raises :class:`PayloadError` naming the first bad field."""
    organization = payload.get("organization")
    deployment = payload.get("deployment")
    return WorkflowJobEvent(
        action=event_action(payload),
        workflow_job=_job(_object(payload, "workflow_job", "")),
        repository=_repository(_object(payload, "repository", "")),
        organization=None
        if organization is None
        else Account(_login(_object(payload, "organization", ""), "organization")),
        deployment=None if deployment is None else _deployment(_object(payload, "deployment", "")),
    )


def _deployment(data: Mapping[str, Any]) -> Deployment:
    where = "deployment"
    environment = _text(data, "environment", where, MAX_ENVIRONMENT, required=True) or ""
    if not environment.strip() or not environment.isprintable():
        raise PayloadError(f"{where}.environment", "is not an environment name")
    return Deployment(id=_positive_int(data, "id", where), environment=environment)


def _job(data: Mapping[str, Any]) -> WorkflowJob:
    where = "workflow_job"
    texts = {
        key: _text(data, key, where, MAX_TEXT)
        for key in (
            "name", "workflow_name", "head_branch", "head_sha", "status", "conclusion",
            "runner_name", "html_url",
        )
    }  # fmt: skip
    return WorkflowJob(
        id=_positive_int(data, "id", where),
        run_id=_positive_int(data, "run_id", where),
        run_attempt=_positive_int(data, "run_attempt", where, default=1),
        created_at=_moment(data, "created_at", where, required=False),
        started_at=_moment(data, "started_at", where, required=False),
        labels=_labels(data, where),
        **texts,
    )


def _repository(data: Mapping[str, Any]) -> Repository:
    where = "repository"
    name = _text(data, "name", where, 100, required=True) or ""
    if not _REPO_NAME.match(name):
        raise PayloadError(f"{where}.name", "is not a repository name")
    return Repository(
        name=name,
        full_name=_text(data, "full_name", where, MAX_FULL_NAME, required=True) or "",
        owner=Account(_login(_object(data, "owner", where), f"{where}.owner")),
    )


def _login(data: Mapping[str, Any], where: str) -> str:
    login = _text(data, "login", where, 100, required=True) or ""
    if not _OWNER.match(login):
        raise PayloadError(f"{where}.login", "is not a user or organization login")
    return login


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _object(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise PayloadError(_path(where, key), "must be an object")
    return value


def _text(
    data: Mapping[str, Any], key: str, where: str, limit: int, *, required: bool = False
) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise PayloadError(_path(where, key), "must be a string")
    if len(value) > limit:
        raise PayloadError(_path(where, key), f"longer than {limit} characters")
    return value


def _positive_int(
    data: Mapping[str, Any], key: str, where: str, *, default: int | None = None
) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PayloadError(_path(where, key), "must be a positive integer")
    return value


def _moment(data: Mapping[str, Any], key: str, where: str, *, required: bool) -> datetime | None:
    """An ISO 8601 time with a UTC offset, as GitHub writes them (``2025-01-01T10:00:00Z``)."""
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise PayloadError(_path(where, key), "must be an ISO 8601 date-time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(_path(where, key), "must be an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise PayloadError(_path(where, key), "must have a time zone")
    return moment


def _labels(data: Mapping[str, Any], where: str) -> list[str]:
    value = data.get("labels")
    path = _path(where, "labels")
    if not isinstance(value, list):
        raise PayloadError(path, "must be a list")
    if len(value) > MAX_LABELS:
        raise PayloadError(path, f"more than {MAX_LABELS} labels")
    labels: list[str] = []
    for index, label in enumerate(value):
        if not isinstance(label, str) or not label.strip():
            raise PayloadError(f"{path}.{index}", "must be a non-empty string")
        if len(label.strip()) > MAX_LABEL_LENGTH:
            raise PayloadError(f"{path}.{index}", f"longer than {MAX_LABEL_LENGTH} characters")
        labels.append(label.strip())
    return labels
