"""Signed GitHub webhook deliveries, as GitHub's "Hookshot" sends them."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when sent: a cold-start benchmark builds events without it
    import requests

USER_AGENT = "GitHub-Hookshot/localdev"


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def workflow_job_payload(
    job_id: int,
    labels: Sequence[str],
    *,
    repository: str = "octo-org/app",
    action: str = "queued",
    run_id: int | None = None,
    run_attempt: int = 1,
    workflow_name: str = "CI",
    head_branch: str = "main",
) -> dict[str, Any]:
    """A ``workflow_job`` payload with the fields GitHub sends that the handler reads."""
    owner, name = repository.split("/", 1)
    status = {"queued": "queued", "in_progress": "in_progress"}.get(action, "completed")
    return {
        "action": action,
        "workflow_job": {
            "id": job_id,
            "run_id": run_id if run_id is not None else job_id * 10,
            "run_attempt": run_attempt,
            "run_url": f"https://api.github.com/repos/{repository}/actions/runs/{job_id * 10}",
            "name": "build",
            "workflow_name": workflow_name,
            "head_branch": head_branch,
            "head_sha": "0" * 40,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": status,
            "conclusion": "success" if status == "completed" else None,
            "labels": list(labels),
            "runner_id": None,
            "runner_name": None,
            "html_url": f"https://github.com/{repository}/actions/runs/{job_id * 10}/job/{job_id}",
        },
        "repository": {
            "id": 1296269,
            "name": name,
            "full_name": repository,
            "private": True,
            "owner": {"login": owner, "id": 1, "type": "Organization"},
        },
        "organization": {"login": owner, "id": 1},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
    }


def with_deployment(
    payload: dict[str, Any],
    environment: str,
    *,
    deployment_id: int = 875096709,
    status: str | None = "waiting",
) -> dict[str, Any]:
    """``payload`` for a job that names ``environment:``: GitHub adds a top-level
    ``deployment`` and, while a protection rule holds the job, sends ``queued`` (and
    ``waiting``) with ``workflow_job.status: "waiting"`` (changelog 2022-11-22, "Webhook
    enhancements for environment protection rules"). The shape follows octokit/webhooks
    ``payload-examples/api.github.com/workflow_job/queued.with-deployment.payload.json``;
    ``status=None`` drops ``workflow_job.status`` (a payload that cannot tell)."""
    job = dict(payload["workflow_job"])
    repository = payload["repository"]["full_name"]
    if status is None:
        job.pop("status", None)
    else:
        job["status"] = status
    api = f"https://api.github.com/repos/{repository}"
    deployment = {
        "url": f"{api}/deployments/{deployment_id}",
        "id": deployment_id,
        "node_id": "DE_kwDOI0B2Tc40KOqF",
        "task": "deploy",
        "original_environment": environment,
        "environment": environment,
        "description": None,
        "created_at": job.get("created_at"),
        "updated_at": job.get("created_at"),
        "statuses_url": f"{api}/deployments/{deployment_id}/statuses",
        "repository_url": api,
        "creator": {"login": "octocat", "id": 1, "type": "User"},
        "sha": job.get("head_sha"),
        "ref": job.get("head_branch"),
        "payload": {},
        "transient_environment": False,
        "production_environment": False,
        "performed_via_github_app": {"id": 15368, "slug": "github-actions"},
    }
    return {**payload, "workflow_job": job, "deployment": deployment}


def delivery_headers(
    body: bytes,
    secret: str | bytes | None,
    *,
    event: str = "workflow_job",
    delivery_id: str | None = None,
    signature: str | None = None,
    user_agent: str | None = None,
    hook_id: str | None = None,
) -> dict[str, str]:
    """The headers GitHub sends with a delivery of ``body`` (GitHub Docs, "Webhook events
    and payloads", "Delivery headers"): ``X-Hub-Signature-256`` from ``secret`` unless
    ``signature`` overrides it (``secret=None`` and no ``signature``: none at all),
    ``X-GitHub-Hook-ID`` only when ``hook_id`` is given."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent or USER_AGENT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
    }
    if hook_id is not None:
        headers["X-GitHub-Hook-ID"] = hook_id
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return headers


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: the exact bytes and headers GitHub would POST."""

    body: bytes
    headers: dict[str, str]
    delivery_id: str
    event: str
    description: str = ""
    expect: dict[str, Any] = field(default_factory=dict)

    def send(
        self, url: str, *, session: requests.Session | None = None, timeout: float = 30.0
    ) -> requests.Response:
        """POST this delivery to ``url`` (a real HTTP request)."""
        import requests

        poster = session or requests
        return poster.post(url, data=self.body, headers=self.headers, timeout=timeout)


def build(
    payload: dict[str, Any] | bytes,
    secret: str | bytes | None,
    *,
    event: str = "workflow_job",
    delivery_id: str | None = None,
    signature: str | None = None,
    description: str = "",
    expect: dict[str, Any] | None = None,
) -> Delivery:
    """A delivery of ``payload`` signed with ``secret``.

    ``signature`` overrides the computed one (to test rejection); ``secret=None``
    and no ``signature`` sends no signature header at all.
    """
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    delivery_id = delivery_id or str(uuid.uuid4())
    headers = delivery_headers(
        body, secret, event=event, delivery_id=delivery_id, signature=signature, hook_id="1"
    )
    return Delivery(
        body=body,
        headers=headers,
        delivery_id=delivery_id,
        event=event,
        description=description,
        expect=dict(expect or {}),
    )


def redelivery(original: Delivery, description: str = "") -> Delivery:
    """GitHub's "Redeliver": the same body, signature and delivery GUID again."""
    return Delivery(
        body=original.body,
        headers=dict(original.headers),
        delivery_id=original.delivery_id,
        event=original.event,
        description=description or f"redelivery of {original.delivery_id[:8]}",
        expect={},
    )


def queued_burst(
    secret: str | bytes,
    labels: Sequence[str],
    count: int,
    *,
    first_job_id: int = 1_000_000,
    repository: str = "octo-org/app",
) -> list[Delivery]:
    """``count`` distinct queued jobs (for load tests)."""
    return [
        build(workflow_job_payload(first_job_id + i, labels, repository=repository), secret)
        for i in range(count)
    ]
