"""``lambda_fn.teardown``: the delete step that stops runner tasks before the cluster goes,
then deletes the sealed JIT configs and this deployment's runner registrations.

ECS and Secrets Manager in moto; CloudFormation's pre-signed response URL and the GitHub
model behind ``responses`` at the HTTP layer; runners launched by the real webhook handler.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import responses

from lambda_fn import teardown
from tests.kit.events import LambdaContext, deliver, queued_payload
from tests.kit.github import FakeGitHub, use_github_app
from tests.kit.world import PAT, FakeAws

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
def cloudformation(github: FakeGitHub) -> Any:
    """CloudFormation's response URL, registered with the GitHub model's ``responses`` mock
    (one mock intercepts everything ``requests`` sends)."""
    github.mock.add(responses.PUT, RESPONSE_URL, status=200)
    return github.mock


def answer(mock: Any) -> dict[str, Any]:
    (call,) = [c for c in mock.calls if c.request.url == RESPONSE_URL]
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
    assert body["Reason"].startswith(f"stopped 3 runner task(s) in {fake_aws.cluster}; ")
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
    assert body["Reason"].startswith("cluster no-such-cluster is already gone; ")


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


# --- what the stack cannot delete by itself: sealed configs, registrations ----------------


def launch(job_id: int, repo: str = "octo-org/app") -> str:
    """A runner launched by the real webhook handler: a tagged task, a registration at
    GitHub and a sealed JIT config its (moto) task never reads. Returns the runner name."""
    status, body = deliver(queued_payload(job_id=job_id, repo=repo))
    assert status == 200 and body["status"] == "launched", body
    return str(body["runner_name"])


def seed_runner(github: FakeGitHub, name: str, scope: str, *, busy: bool = False) -> int:
    runner_id = github.new_id()
    github.runners[runner_id] = {
        "id": runner_id,
        "name": name,
        "os": "linux",
        "status": "online" if busy else "offline",
        "busy": busy,
        "labels": [{"id": 1, "name": "self-hosted"}],
        "scope": scope,
    }
    return runner_id


def registered(github: FakeGitHub) -> dict[str, str]:
    return {str(r["name"]): str(r["scope"]) for r in github.runners.values()}


def test_delete_removes_sealed_configs_and_this_deployments_registrations(
    fake_aws: FakeAws,
    github: FakeGitHub,
    cloudformation: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "octo-org/app,octo-org/lib,octo-org/*")
    launched = [launch(5101), launch(5102, "octo-org/lib")]
    assert len(fake_aws.sealed_configs()) == 2
    # Idle at a scope the settings name but no task remembers (its task long gone):
    idle = seed_runner(github, "fgr-5000-abcdef", "repos/octo-org/lib")
    busy = seed_runner(github, "fgr-5103-abc123", "repos/octo-org/app", busy=True)
    others = {
        "fgr-b-5104-abcdef": "repos/octo-org/app",  # another deployment's prefix
        "fgr-5105-abcdef-x": "repos/octo-org/app",  # not a name we make
        "someone-elses-runner": "repos/octo-org/lib",
    }
    for name, scope in others.items():
        seed_runner(github, name, scope)
    launched_ids = [i for i, r in github.runners.items() if r["name"] in launched]
    assert len(launched_ids) == 2
    unrelated = boto3.client("secretsmanager", region_name=fake_aws.region).create_secret(
        Name=f"{fake_aws.jit_prefix}-other/fgr-1-abcdef", SecretString="not ours"
    )

    teardown.handler(event("Delete", fake_aws.cluster), LambdaContext())

    body = answer(cloudformation)
    assert body["Status"] == "SUCCESS", body
    # Only the secret outside "<prefix>/" is left (the helper lists by bare prefix).
    assert list(fake_aws.sealed_configs()) == [unrelated["Name"]]
    assert registered(github) == {"fgr-5103-abc123": "repos/octo-org/app", **others}
    assert sorted(github.deleted_runners) == sorted([idle, *launched_ids])
    assert busy not in github.deleted_runners
    assert body["Reason"] == (
        f"stopped 2 runner task(s) in {fake_aws.cluster}; deleted 2 sealed JIT config(s) "
        "and 3 runner registration(s); left: fgr-5103-abc123 at repos/octo-org/app is "
        "running a job"
    )
    # Every GitHub call carried the deployment's PAT.
    assert {
        c.request.headers.get("Authorization")
        for c in github.mock.calls
        if c.request.url.startswith(github.base_url)
    } == {f"Bearer {PAT}"}


def test_org_runners_of_a_github_app_deployment(
    fake_aws: FakeAws, github: FakeGitHub, cloudformation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Org scope: the owners of ALLOWED_REPOSITORIES; the App's installation token."""
    app = use_github_app(fake_aws, github, monkeypatch)
    monkeypatch.setenv("RUNNER_SCOPE", "org")
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "octo-org/*")
    ours = seed_runner(github, "fgr-pool-0123abcd", "orgs/octo-org")
    teardown.handler(event("Delete", fake_aws.cluster), LambdaContext())
    body = answer(cloudformation)
    assert body["Status"] == "SUCCESS", body
    assert github.deleted_runners == [ours]
    assert "1 runner registration(s)" in body["Reason"] and "left" not in body["Reason"]
    (delete,) = [c for c in github.mock.calls if c.request.method == "DELETE"]
    assert delete.request.headers["Authorization"] != f"Bearer {PAT}"  # installation token
    assert github.calls("POST", "/access_tokens")
    assert delete.request.headers["Authorization"] == f"Bearer {app.minted[-1]}"


def test_github_down_never_fails_or_holds_up_the_delete(
    fake_aws: FakeAws,
    github: FakeGitHub,
    cloudformation: Any,
    monkeypatch: pytest.MonkeyPatch,
    no_real_sleep: list[float],
) -> None:
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "octo-org/app,octo-org/lib")
    launch(5201)
    github.fail("GET", r"/actions/runners$", 503, times=None)
    teardown.handler(event("Delete", fake_aws.cluster), LambdaContext())
    body = answer(cloudformation)
    assert body["Status"] == "SUCCESS", body
    assert fake_aws.sealed_configs() == {}  # Secrets Manager does not wait on GitHub
    assert (
        "registrations at repos/octo-org/app, repos/octo-org/lib not listed (GitHub)"
        in (body["Reason"])
    )
    # The first scope's retries only (the second is not tried), within GitHub's budget.
    listed = github.calls("GET", "/actions/runners")
    assert listed and {r.path for r in listed} == {"/repos/octo-org/app/actions/runners"}
    assert sum(no_real_sleep) <= teardown.GITHUB_BUDGET_SECONDS


def test_before_setup_there_is_no_token_and_the_delete_still_succeeds(
    fake_aws: FakeAws, github: FakeGitHub, cloudformation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "octo-org/app")
    boto3.client("secretsmanager", region_name=fake_aws.region).delete_secret(
        SecretId=fake_aws.token_secret_arn, ForceDeleteWithoutRecovery=True
    )
    teardown.handler(event("Delete", fake_aws.cluster), LambdaContext())
    body = answer(cloudformation)
    assert body["Status"] == "SUCCESS", body
    assert "registrations at repos/octo-org/app not listed (no GitHub token)" in body["Reason"]
    assert not github.calls()


def test_the_clean_up_is_bounded_by_the_time_left(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "octo-org/app")
    report = teardown.clean_up(0)
    assert report.problems == ["registrations at repos/octo-org/app: no time left"]
    assert not github.calls()
