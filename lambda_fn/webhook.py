"""The GitHub webhook payload models we act on (``workflow_job``).

The signature is checked (``signature.py``) over the raw body bytes before
anything here parses the body. The models accept GitHub's full payload but
keep (and validate) only the fields the dispatcher uses, with bounds so a
hostile-but-signed body cannot blow up memory or logs.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

MAX_LABELS = 64  # a real runs-on names a handful; a longer list is refused as hostile

_REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# Users and orgs: letters, digits, hyphens; managed users (EMU) add "_shortcode".
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
ShortText = Annotated[str, StringConstraints(max_length=1024)]


class _Lenient(BaseModel):
    """GitHub adds fields over time: ignore what we do not use."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Owner(_Lenient):
    login: str = Field(pattern=_OWNER.pattern)


class Repository(_Lenient):
    name: str = Field(pattern=_REPO_NAME.pattern)
    full_name: str = Field(max_length=140)
    owner: Owner

    @property
    def slug(self) -> str:
        """``owner/name`` built from the validated parts (never trust ``full_name`` alone)."""
        return f"{self.owner.login}/{self.name}"


class Organization(_Lenient):
    login: str = Field(pattern=_OWNER.pattern)


class WorkflowJob(_Lenient):
    id: int = Field(gt=0)
    run_id: int = Field(gt=0)
    run_attempt: int = Field(default=1, ge=1)
    #: When GitHub created (queued) the job; how old a delivery's job is (replays).
    created_at: AwareDatetime
    name: ShortText | None = None
    workflow_name: ShortText | None = None
    head_branch: ShortText | None = None
    head_sha: ShortText | None = None
    status: ShortText | None = None
    conclusion: ShortText | None = None
    runner_name: ShortText | None = None
    labels: list[Label] = Field(max_length=MAX_LABELS)
    html_url: ShortText | None = None


class WorkflowJobEvent(_Lenient):
    """A ``workflow_job`` delivery, validated enough to launch a runner for it."""

    action: Annotated[str, StringConstraints(max_length=64)]
    workflow_job: WorkflowJob
    repository: Repository
    organization: Organization | None = None


class EventAction(_Lenient):
    """The smallest shape every ``workflow_job`` delivery has."""

    action: Annotated[str, StringConstraints(max_length=64)]
