"""Payloads, and deliveries through the real webhook handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from localdev.lambda_events import LambdaContext, webhook_event
from tests.kit.world import WEBHOOK_SECRET

__all__ = ["LambdaContext"]


def queued_payload(
    job_id: int = 4242,
    labels: list[str] | None = None,
    repo: str = "octo-org/app",
    action: str = "queued",
    run_id: int = 777,
) -> dict[str, Any]:
    owner, name = repo.split("/")
    return {
        "action": action,
        "workflow_job": {
            "id": job_id,
            "run_id": run_id,
            "run_attempt": 1,
            "name": "integration-tests",
            "workflow_name": "CI",
            "head_branch": "main",
            "head_sha": "0" * 40,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": "queued" if action == "queued" else "completed",
            "labels": labels if labels is not None else ["self-hosted", "linux", "arm64"],
            "runner_name": None,
        },
        "repository": {"id": 1, "name": name, "full_name": repo, "owner": {"login": owner}},
        "sender": {"login": "octocat"},
    }


def waiting_payload(
    job_id: int = 4242,
    environment: str = "prod",
    *,
    labels: list[str] | None = None,
    action: str = "queued",
    status: str | None = "waiting",
    run_id: int = 777,
    deployment_id: int = 875096709,
) -> dict[str, Any]:
    """A job that names ``environment:``: ``queued`` while a protection rule holds it
    (``status="waiting"``), after approval (``status="queued"``), or the ``waiting`` action."""
    from localdev.deliveries import with_deployment

    payload = queued_payload(job_id, labels, run_id=run_id)
    payload["action"] = action
    return with_deployment(payload, environment, deployment_id=deployment_id, status=status)


def api_event(
    body: bytes | str,
    *,
    event: str = "workflow_job",
    secret: str | None = WEBHOOK_SECRET,
    signature: str | None = None,
    delivery: str = "d-1",
    base64_encoded: bool = False,
    extra_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event (payload format 1.0) as GitHub's delivery makes it
    (``localdev.lambda_events.webhook_event``, signed with ``secret`` by ``hmac``, not by
    the handler's own code)."""
    raw = body.encode() if isinstance(body, str) else body
    return webhook_event(
        raw,
        secret,
        event=event,
        delivery_id=delivery,
        signature=signature,
        user_agent="GitHub-Hookshot/abc123",
        extra_headers=extra_headers,
        request_id="req-1",
        base64_encoded=base64_encoded,
    )


def deliver(payload: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Send one delivery through the real Lambda handler; return (status, JSON body)."""
    from lambda_fn.app import handler

    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    response = handler(api_event(body, **kwargs), LambdaContext())
    return response["statusCode"], json.loads(response["body"] or "{}")
