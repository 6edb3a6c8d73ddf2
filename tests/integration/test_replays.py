"""A signed delivery is not proof that a job is queued now (docs/contract.md).

GitHub signs the body only, without a timestamp, so a captured ``queued``
delivery can be sent again after the job's idempotency record has expired.
The handler compares ``workflow_job.created_at`` with the de-duplication
window (``IDEMPOTENCY_TTL_SECONDS``, at most GitHub's 24-hour queue limit):
an older job starts nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import FakeAws


def created(ago: timedelta, job_id: int = 1) -> dict[str, Any]:
    payload = queued_payload(job_id=job_id)
    when = datetime.now(UTC) - ago
    payload["workflow_job"]["created_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return payload


def test_a_replayed_delivery_older_than_the_window_starts_nothing(
    fake_aws: FakeAws, github: FakeGitHub, capsys: Any
) -> None:
    status, body = deliver(created(timedelta(days=3)))
    assert (status, body["status"]) == (200, "ignored")
    assert "de-duplication window (86400 s)" in body["reason"]
    assert github.jit_requests == []
    assert fake_aws.tasks() == []
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(b.get("JobsIgnored") and b.get("reason") == "stale" for b in emf)


def test_the_window_is_the_idempotency_ttl(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDEMPOTENCY_TTL_SECONDS", str(8 * 3600))
    assert deliver(created(timedelta(hours=9), job_id=1))[1]["status"] == "ignored"
    assert deliver(created(timedelta(hours=7), job_id=2))[1]["status"] == "launched"


def test_a_job_within_the_window_is_launched_once(fake_aws: FakeAws, github: FakeGitHub) -> None:
    payload = created(timedelta(hours=23))
    assert deliver(payload)[1]["status"] == "launched"
    assert deliver(payload)[1]["status"] == "duplicate"
    assert len(fake_aws.tasks()) == 1


def test_a_delivery_without_created_at_is_refused(fake_aws: FakeAws, github: FakeGitHub) -> None:
    """Every queued delivery GitHub sends has it; without it the age is unknown (fail closed)."""
    payload = queued_payload()
    del payload["workflow_job"]["created_at"]
    status, body = deliver(payload)
    assert status == 400
    assert "workflow_job.created_at" in body["message"]
    assert fake_aws.tasks() == []
