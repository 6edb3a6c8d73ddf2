"""The JIT config never travels in the ``run_task`` request, and sealing it fails safely.

Through the real handler, moto and the HTTP-level GitHub fake: what a principal
with ReadOnlyAccess sees (``describe_tasks``, the request, the logs) holds no
JIT config; the config is sealed for exactly the launched task; and each way
the launch can fail after ``run_task`` leaves no task waiting for a config, no
runner registration and no secret behind. (The task side, reading with its own
identity, is tested in tests/unit/test_jit_config.py and test_entrypoint.py.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from lambda_fn import contract
from tests.kit.events import deliver, queued_payload
from tests.kit.faults import First, aws_error, inject
from tests.kit.github import FakeGitHub
from tests.kit.retry import drain
from tests.kit.world import FakeAws, current_profiles, set_profiles


def live_tasks(fake_aws: FakeAws, job_id: int) -> list[dict[str, Any]]:
    return [
        t
        for t in fake_aws.tasks()
        if t["desiredStatus"] != "STOPPED"
        and {x["key"]: x["value"] for x in t["tags"]}.get(contract.TAG_GITHUB_JOB_ID) == str(job_id)
    ]


def stopped_tasks(fake_aws: FakeAws) -> list[dict[str, Any]]:
    return [t for t in fake_aws.tasks() if t["desiredStatus"] == "STOPPED"]


def assert_sealed_only_for(fake_aws: FakeAws, github: FakeGitHub, task: dict[str, Any]) -> None:
    """Exactly one secret left: the live task's, holding the config GitHub issued for it."""
    tags = {t["key"]: t["value"] for t in task["tags"]}
    sealed = fake_aws.sealed_configs()
    assert list(sealed) == [f"{fake_aws.jit_prefix}/{tags['runner:name']}"]
    (secret,) = sealed.values()
    assert secret["tags"]["runner:task-arn"] == task["taskArn"]
    assert secret["value"] == github.issued_configs[-1]


@pytest.fixture
def queues(fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    for key, value in fake_aws.queue_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("lambda_fn.retry_queue.backoff_seconds", lambda attempt, base: 0)
    return fake_aws


def test_readonly_view_request_and_logs_hold_no_jit_config(
    fake_aws: FakeAws, github: FakeGitHub, lambda_logs: Any
) -> None:
    sent: list[dict[str, Any]] = []
    inject("ecs", "RunTask", sent.append)
    status, body = deliver(queued_payload(job_id=4301))
    assert status == 200 and body["status"] == "launched"
    (config,) = github.issued_configs
    (request,) = sent
    assert config not in json.dumps(request)  # overrides, tags, startedBy, clientToken
    # What ecs:DescribeTasks (ReadOnlyAccess, ViewOnlyAccess) returns, tags included.
    assert config not in json.dumps(fake_aws.tasks(), default=str)
    assert lambda_logs.getvalue() and config not in lambda_logs.getvalue()
    (task,) = live_tasks(fake_aws, 4301)
    assert_sealed_only_for(fake_aws, github, task)


def test_storing_the_config_throttled_stops_the_task_and_retries_cleanly(
    queues: FakeAws, github: FakeGitHub, lambda_logs: Any
) -> None:
    fault = First(1, aws_error("ThrottlingException"))
    inject("secretsmanager", "CreateSecret", fault)
    status, body = deliver(queued_payload(job_id=4302))
    assert status == 202 and body["status"] == "queued_for_retry", body
    assert fault.hits == 1
    # The first attempt's task is stopped (it would wait for a config that never comes) and
    # its runner registration is gone; nothing was sealed.
    (abandoned,) = stopped_tasks(queues)
    assert "JIT config could not be stored" in abandoned.get("stoppedReason", "")
    assert len(github.deleted_runners) == 1
    assert queues.sealed_configs() == {}
    drain(queues)
    (task,) = live_tasks(queues, 4302)
    assert_sealed_only_for(queues, github, task)
    assert len(github.issued_configs) == 2
    assert all(c not in lambda_logs.getvalue() for c in github.issued_configs)


def test_config_stored_but_answer_lost_leaves_no_secret_behind(
    queues: FakeAws, github: FakeGitHub
) -> None:
    """Secrets Manager created the secret, then the answer was an error (5xx)."""
    sm = boto3.client("secretsmanager", region_name=queues.region)
    created: list[str] = []

    def create_then_fail(params: dict[str, Any]) -> Any:
        if created:
            return None
        assert "SecretString" not in params  # the value comes after the resource policy
        sm.create_secret(Name=params["Name"])
        created.append(params["Name"])
        return aws_error("InternalServiceError", 500)

    inject("secretsmanager", "CreateSecret", create_then_fail)
    status, _ = deliver(queued_payload(job_id=4303))
    assert status == 202
    assert queues.sealed_configs() == {}  # the orphan was deleted on the failure path
    drain(queues)
    (task,) = live_tasks(queues, 4303)
    assert_sealed_only_for(queues, github, task)
    assert created[0] not in queues.sealed_configs()


def test_the_config_is_stored_only_after_its_resource_policy(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    """CreateSecret (tags, no value) -> PutResourcePolicy -> PutSecretValue: the config never
    exists without the policy that denies every reader but the bound task session."""
    from lambda_fn.jit_secret import resource_policy

    order: list[tuple[str, dict[str, Any]]] = []
    for operation in ("CreateSecret", "PutResourcePolicy", "PutSecretValue", "TagResource"):
        inject("secretsmanager", operation, lambda p, op=operation: order.append((op, p)))
    status, _ = deliver(queued_payload(job_id=4310))
    assert status == 200
    assert [op for op, _ in order] == ["CreateSecret", "PutResourcePolicy", "PutSecretValue"]
    (task,) = live_tasks(fake_aws, 4310)
    create, put_policy, put_value = (params for _, params in order)
    assert "SecretString" not in create
    bound = {t["Key"]: t["Value"] for t in create["Tags"]}["runner:task-userid"]
    assert (
        bound
        == f"{next(iter(fake_aws.task_role_ids.values()))}:{task['taskArn'].rsplit('/', 1)[-1]}"
    )
    assert json.loads(put_policy["ResourcePolicy"]) == resource_policy(bound)
    assert put_policy["BlockPublicPolicy"] is True
    assert put_value["SecretString"] == github.issued_configs[-1]
    # What Secrets Manager keeps (moto stores the policy; it evaluates none of it).
    sm = boto3.client("secretsmanager", region_name=fake_aws.region)
    stored = sm.get_resource_policy(SecretId=create["Name"])["ResourcePolicy"]
    assert json.loads(stored) == resource_policy(bound)
    assert_sealed_only_for(fake_aws, github, task)


@pytest.mark.parametrize("operation", ["PutResourcePolicy", "PutSecretValue"])
def test_locking_or_filling_the_secret_denied_leaves_nothing(
    queues: FakeAws, github: FakeGitHub, operation: str
) -> None:
    stored: list[Any] = []
    inject("secretsmanager", operation, lambda params: aws_error("AccessDeniedException"))
    inject("secretsmanager", "PutSecretValue", stored.append)
    status, body = deliver(queued_payload(job_id=4311))
    assert (
        status == 502 and "storing the JIT config failed: AccessDeniedException" in body["reason"]
    )
    assert live_tasks(queues, 4311) == []
    assert github.runners == {}
    assert queues.sealed_configs() == {}  # the empty, tagged secret was deleted
    if operation == "PutResourcePolicy":
        assert stored == []  # the config was never written to an unlocked secret


def test_storing_the_config_denied_is_permanent_and_leaves_nothing(
    queues: FakeAws, github: FakeGitHub
) -> None:
    inject("secretsmanager", "CreateSecret", lambda params: aws_error("AccessDeniedException"))
    status, body = deliver(queued_payload(job_id=4304))
    assert (
        status == 502 and "storing the JIT config failed: AccessDeniedException" in body["reason"]
    )
    assert live_tasks(queues, 4304) == []
    assert len(stopped_tasks(queues)) == 1
    assert github.runners == {}  # registration removed
    assert queues.sealed_configs() == {}


def test_cleanup_failures_on_the_failure_path_are_logged_and_reconciled(
    queues: FakeAws, github: FakeGitHub, lambda_logs: Any
) -> None:
    """CreateSecret throttled, StopTask and DeleteSecret failing too: the task stops itself
    after its fetch bound (runner/jit_config.py); the reconciler does the rest."""
    inject("secretsmanager", "CreateSecret", First(1, aws_error("ThrottlingException")))
    inject("ecs", "StopTask", First(1, aws_error("ServerException", 500)))
    inject("secretsmanager", "DeleteSecret", First(1, aws_error("InternalServiceError", 500)))
    status, _ = deliver(queued_payload(job_id=4305))
    assert status == 202
    logs = lambda_logs.getvalue()
    assert "could not stop the task after failing to store its JIT config" in logs
    (orphan,) = live_tasks(queues, 4305)  # not stopped: it gives up by itself
    assert len(github.deleted_runners) == 1

    # The retry launches the job's runner; the orphan finds no config within its bound and
    # exits 1 (runner/jit_config.py); the reconciler then launches nothing more for the job
    # and leaves nothing of the failed attempt: no secret, no registration.
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import reconcile

    drain(queues)
    (runner,) = [t for t in live_tasks(queues, 4305) if t["taskArn"] != orphan["taskArn"]]
    ecs = boto3.client("ecs", region_name=queues.region)
    ecs.stop_task(
        cluster=queues.cluster, task=orphan["taskArn"], reason="Essential container exited"
    )
    report = reconcile(get_settings())
    assert report["replaced"] == 0 and report["step_errors"] == 0, report
    assert [t["taskArn"] for t in live_tasks(queues, 4305)] == [runner["taskArn"]]
    assert_sealed_only_for(queues, github, runner)
    runner_name = {t["key"]: t["value"] for t in runner["tags"]}["runner:name"]
    assert [r["name"] for r in github.runners.values()] == [runner_name]


def test_unexpected_error_while_storing_still_cleans_up(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import jit_secret

    def broken(*_: Any) -> None:
        raise ValueError("bug")

    monkeypatch.setattr(jit_secret, "seal", broken)
    with pytest.raises(ValueError, match="bug"):
        deliver(queued_payload(job_id=4309))
    assert live_tasks(fake_aws, 4309) == []
    assert len(stopped_tasks(fake_aws)) == 1
    assert github.runners == {}
    assert fake_aws.sealed_configs() == {}


# --- the Lambda dies between run_task and storing the config --------------------------------


def test_lambda_dying_after_run_task_is_recovered_by_the_task_and_the_reconciler(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn import launch
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import reconcile

    def crash(*_: Any) -> None:
        raise SystemExit("Lambda timed out")  # nothing after run_task runs

    monkeypatch.setattr(launch, "_seal", crash)
    with pytest.raises(SystemExit):
        deliver(queued_payload(job_id=4306))
    (orphan,) = live_tasks(fake_aws, 4306)
    assert fake_aws.sealed_configs() == {}
    # The task finds no config within its bound and exits 1 ("jit_config: ... not readable").
    ecs = boto3.client("ecs", region_name=fake_aws.region)
    ecs.stop_task(
        cluster=fake_aws.cluster, task=orphan["taskArn"], reason="Essential container exited"
    )
    monkeypatch.undo()
    from lambda_fn.aws import reset_caches

    reset_caches()
    for key, value in fake_aws.env().items():
        monkeypatch.setenv(key, value)
    report = reconcile(get_settings())
    assert report["replaced"] == 1  # the job still queued on GitHub gets a new runner
    assert report["registrations_removed"] == 1  # the dead runner's offline registration
    (replacement,) = live_tasks(fake_aws, 4306)
    assert_sealed_only_for(fake_aws, github, replacement)


# --- reconciler: sealed configs nobody will read ------------------------------------------


def test_reconciler_removes_sealed_configs_of_tasks_that_are_gone(
    fake_aws: FakeAws, github: FakeGitHub
) -> None:
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import SEALED_CONFIG_GRACE, reconcile

    assert deliver(queued_payload(job_id=4307))[0] == 200
    assert deliver(queued_payload(job_id=4308))[0] == 200
    running, stopping = live_tasks(fake_aws, 4307)[0], live_tasks(fake_aws, 4308)[0]
    ecs = boto3.client("ecs", region_name=fake_aws.region)
    ecs.stop_task(cluster=fake_aws.cluster, task=stopping["taskArn"], reason="exited")
    sm = boto3.client("secretsmanager", region_name=fake_aws.region)
    # A launch in progress: stored, its task not yet listed by this reconciler run.
    fresh = f"{fake_aws.jit_prefix}/in-flight"
    sm.create_secret(
        Name=fresh, SecretString="x", Tags=[{"Key": "runner:task-arn", "Value": "arn:new"}]
    )
    github.job_status[4308] = "completed"

    report = reconcile(get_settings())
    names = set(fake_aws.sealed_configs())
    assert report["sealed_configs_removed"] == 1  # the stopped task's
    running_name = {t["key"]: t["value"] for t in running["tags"]}["runner:name"]
    assert names == {f"{fake_aws.jit_prefix}/{running_name}", fresh}

    later = datetime.now(UTC) + SEALED_CONFIG_GRACE + timedelta(minutes=1)
    reconcile(get_settings(), later)
    # Past the grace period the secret no live task owns is stale (its launch died).
    assert fresh not in fake_aws.sealed_configs()
    # The stack's own secrets are outside the prefix and untouched.
    sm.get_secret_value(SecretId=fake_aws.token_secret_arn)
    sm.get_secret_value(SecretId=fake_aws.webhook_secret_arn)


def test_contract_shaped_profile_without_task_role_id_seals_for_nobody(
    fake_aws: FakeAws, github: FakeGitHub, lambda_logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/contract.md's profile shape (no task_role_id) still launches, closed: the config
    is sealed, bound to no identity (the task cannot read it), and a warning says why."""

    profiles = current_profiles()
    for profile in profiles:
        profile.pop("task_role_id", None)
    set_profiles(monkeypatch, profiles)
    status, body = deliver(queued_payload(job_id=4399))
    assert status == 200 and body["status"] == "launched", body
    (config,) = github.issued_configs
    assert config not in json.dumps(fake_aws.tasks(), default=str)
    (secret,) = fake_aws.sealed_configs().values()
    assert secret["tags"]["runner:task-userid"].startswith("unbound:")
    assert "profile has no task_role_id" in lambda_logs.getvalue()
