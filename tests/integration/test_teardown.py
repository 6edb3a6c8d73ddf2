"""``lambda_fn.teardown``: the delete step that stops runner tasks before the cluster goes.

ECS in moto (list/stop/describe tasks); CloudFormation's pre-signed response URL
behind ``responses`` at the HTTP layer.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import responses

from lambda_fn import teardown
from tests.conftest import FakeAws, LambdaContext

RESPONSE_URL = "https://cloudformation-custom-resource-response.test/presigned?sig=abc"


def event(request_type: str, cluster: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": RESPONSE_URL,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/runners/guid",
        "RequestId": "req-1",
        "LogicalResourceId": "RunnersRunnerTeardown",
        "ResourceType": "Custom::RunnerTeardown",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "Cluster": cluster},
    }


def run_tasks(fake_aws: FakeAws, count: int) -> list[str]:
    ecs = boto3.client("ecs", region_name=fake_aws.region)
    arns = []
    for _ in range(count):
        response = ecs.run_task(
            cluster=fake_aws.cluster,
            taskDefinition=fake_aws.task_definitions["default"],
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": [fake_aws.subnet_id],
                    "securityGroups": [fake_aws.security_group_id],
                }
            },
        )
        arns.append(response["tasks"][0]["taskArn"])
    return arns


def statuses(fake_aws: FakeAws) -> dict[str, str]:
    return {t["taskArn"]: t["lastStatus"] for t in fake_aws.tasks()}


@pytest.fixture
def cloudformation() -> Any:
    with responses.RequestsMock() as mock:
        mock.add(responses.PUT, RESPONSE_URL, status=200)
        yield mock


def answer(mock: Any) -> dict[str, Any]:
    (call,) = mock.calls
    assert call.request.headers["Content-Type"] == ""
    body: dict[str, Any] = json.loads(call.request.body)
    return body


def test_delete_stops_every_task_and_answers_success(
    fake_aws: FakeAws, cloudformation: Any
) -> None:
    arns = run_tasks(fake_aws, 3)
    teardown.handler(event("Delete", fake_aws.cluster), LambdaContext())
    assert statuses(fake_aws) == dict.fromkeys(arns, "STOPPED")
    body = answer(cloudformation)
    assert body["Status"] == "SUCCESS"
    assert body["Reason"] == f"stopped 3 runner task(s) in {fake_aws.cluster}"
    assert body["PhysicalResourceId"] == f"{fake_aws.cluster}-runner-teardown"
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        "arn:aws:cloudformation:us-east-1:123456789012:stack/runners/guid",
        "req-1",
        "RunnersRunnerTeardown",
    )


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_touch_nothing(
    fake_aws: FakeAws, cloudformation: Any, request_type: str
) -> None:
    (arn,) = run_tasks(fake_aws, 1)
    teardown.handler(event(request_type, fake_aws.cluster), LambdaContext())
    assert statuses(fake_aws)[arn] != "STOPPED"
    assert answer(cloudformation)["Status"] == "SUCCESS"


def test_a_cluster_already_gone_is_success(fake_aws: FakeAws, cloudformation: Any) -> None:
    teardown.handler(event("Delete", "no-such-cluster"), LambdaContext())
    body = answer(cloudformation)
    assert body["Status"] == "SUCCESS", body
    assert body["Reason"] == "cluster no-such-cluster is already gone"


class SlowToStop:
    """moto's ECS, except tasks stay in DEPROVISIONING for ``polls`` describe calls."""

    def __init__(self, ecs: Any, polls: int) -> None:
        self.ecs = ecs
        self.polls = polls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ecs, name)

    def describe_tasks(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.ecs.describe_tasks(**kwargs)
        if self.polls > 0:
            self.polls -= 1
            for task in response["tasks"]:
                task["lastStatus"] = "DEPROVISIONING"
        return response


def test_waits_until_tasks_have_stopped(fake_aws: FakeAws) -> None:
    run_tasks(fake_aws, 2)
    ecs = SlowToStop(boto3.client("ecs", region_name=fake_aws.region), polls=3)
    slept: list[float] = []
    count = teardown.stop_all_tasks(ecs, fake_aws.cluster, 600, sleep=slept.append)
    assert count == 2
    assert slept == [teardown.POLL_SECONDS] * 3


def test_the_wait_is_bounded_and_names_the_tasks(fake_aws: FakeAws) -> None:
    (arn,) = run_tasks(fake_aws, 1)
    ecs = SlowToStop(boto3.client("ecs", region_name=fake_aws.region), polls=1000)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(teardown.StillStopping, match=arn.rsplit("/", 1)[-1]):
        teardown.stop_all_tasks(ecs, fake_aws.cluster, 60, clock=lambda: now[0], sleep=sleep)
    assert now[0] == 60


def test_a_timeout_answers_failed_so_the_delete_stops_with_the_reason(
    fake_aws: FakeAws, cloudformation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def still_stopping(*args: Any, **kwargs: Any) -> int:
        raise teardown.StillStopping(
            "1 runner task(s) still stopping in c: abc; run the delete again"
        )

    monkeypatch.setattr(teardown, "stop_all_tasks", still_stopping)
    teardown.handler(event("Delete", fake_aws.cluster), LambdaContext())
    body = answer(cloudformation)
    assert body["Status"] == "FAILED"
    assert "run the delete again" in body["Reason"]


class NotAllowedToStop:
    """moto's ECS behind a role without ecs:StopTask (what AWS answers then)."""

    def __init__(self, ecs: Any) -> None:
        self.ecs = ecs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ecs, name)

    def stop_task(self, **kwargs: Any) -> None:
        from botocore.exceptions import ClientError

        error = {"Code": "AccessDeniedException", "Message": "not authorized: ecs:StopTask"}
        raise ClientError({"Error": error}, "StopTask")


def test_an_aws_error_answers_failed_with_the_error(
    fake_aws: FakeAws, cloudformation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_tasks(fake_aws, 1)
    ecs = NotAllowedToStop(boto3.client("ecs", region_name=fake_aws.region))
    monkeypatch.setattr(teardown.aws, "client", lambda service: ecs)
    teardown.handler(event("Delete", fake_aws.cluster), LambdaContext())
    body = answer(cloudformation)
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith("could not stop the runner tasks: ClientError")
    assert "AccessDeniedException" in body["Reason"]
