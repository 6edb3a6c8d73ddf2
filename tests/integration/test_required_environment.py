"""``required_environment`` at dispatch: decided from the delivery's ``deployment``."""

from __future__ import annotations

import pytest

from tests.kit.events import deliver, queued_payload, waiting_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import FakeAws, add_deploy_profile

DEPLOY_LABELS = ["self-hosted", "linux", "deploy"]


@pytest.fixture
def bound(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    """A deploy profile whose jobs must deploy to the 'production' environment."""
    return add_deploy_profile(
        fake_aws, monkeypatch, DEPLOY_LABELS, {"required_environment": "production"}
    )


def test_a_job_deploying_to_the_environment_is_admitted(bound: FakeAws, github: FakeGitHub) -> None:
    github.runs[777] = {"id": 777, "event": "push", "head_branch": "main"}
    payload = waiting_payload(1, "Production", labels=DEPLOY_LABELS, status="queued")
    status, body = deliver(payload)
    assert (status, body["status"], body["profile"]) == (200, "launched", "deploy")


def test_a_job_without_a_deployment_is_refused_naming_the_rule(
    bound: FakeAws, github: FakeGitHub
) -> None:
    status, body = deliver(queued_payload(2, labels=DEPLOY_LABELS))
    assert (status, body["status"]) == (200, "ignored")
    assert "required_environment" in body["reason"]
    assert "deploys to no environment" in body["reason"]
    assert bound.tasks() == []
    assert github.calls() == []  # decided from the signed payload alone


def test_a_job_for_another_environment_is_refused(bound: FakeAws, github: FakeGitHub) -> None:
    status, body = deliver(waiting_payload(3, "staging", labels=DEPLOY_LABELS, status="queued"))
    assert (status, body["status"]) == (200, "ignored")
    assert "environment staging" in body["reason"]
    assert bound.tasks() == []


def test_a_waiting_job_for_another_environment_is_not_remembered(
    bound: FakeAws, github: FakeGitHub
) -> None:
    from lambda_fn.config import get_settings
    from lambda_fn.waiting import remembered

    status, body = deliver(waiting_payload(4, "staging", labels=DEPLOY_LABELS))
    assert (status, body["status"]) == (200, "ignored")
    assert "required_environment" in body["reason"]
    assert remembered(get_settings()) == []


def test_the_reconciler_launch_keeps_the_environment_of_the_delivery(
    bound: FakeAws, github: FakeGitHub
) -> None:
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import reconcile

    github.runs[777] = {"id": 777, "event": "push", "head_branch": "main"}
    github.jobs[5] = {"labels": DEPLOY_LABELS}
    github.wait_for_approval(5, 777, "production")
    deliver(waiting_payload(5, "production", labels=DEPLOY_LABELS))
    github.approve(777, "production")
    assert reconcile(get_settings()).get("waiting_launched") == 1
    assert len(bound.tasks()) == 1
