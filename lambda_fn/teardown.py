"""CloudFormation custom resource: on stack delete, stop the runner tasks first.

A running task keeps the cluster (``DeleteCluster`` fails with
``ClusterContainsTasksException``) and holds a network interface in the task's
subnet and security group, so neither can be deleted. The stack orders this
resource so CloudFormation deletes it after the webhook, retry and reconciler
Lambdas (nothing can start a task any more) and before the cluster, the
security group and the VPC; its delete handler stops every task in the
stack's own cluster and waits until each has reached ``STOPPED`` (a Fargate
task reaches ``STOPPED`` after ``DEPROVISIONING``, which detaches its network
interface: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html).

The wait is bounded by the Lambda's remaining time. If tasks are still
stopping then, the resource reports ``FAILED`` naming them, so the delete
stops with a clear reason instead of failing later on the cluster; running
``cdk destroy`` again resumes it. Create and Update do nothing.

The answer goes to CloudFormation's pre-signed ``ResponseURL`` as a PUT with an
empty content type
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from lambda_fn import aws
from lambda_fn.observability import logger

STOP_REASON = "CloudFormation stack is being deleted"
#: Time kept back for answering CloudFormation after the wait.
RESPONSE_RESERVE_SECONDS = 20
POLL_SECONDS = 5


class StillStopping(RuntimeError):
    """Tasks had not stopped when the time ran out."""


def _list(ecs: Any, cluster: str, desired_status: str) -> list[str]:
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(
        cluster=cluster, desiredStatus=desired_status
    ):
        arns.extend(page.get("taskArns", []))
    return arns


def _not_yet_stopped(ecs: Any, cluster: str, arns: list[str]) -> list[str]:
    """Of tasks told to stop, those whose ``lastStatus`` is not ``STOPPED`` yet."""
    pending: list[str] = []
    for start in range(0, len(arns), 100):
        response = ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100])
        pending.extend(
            task["taskArn"] for task in response.get("tasks", []) if task["lastStatus"] != "STOPPED"
        )
    return pending


def stop_all_tasks(
    ecs: Any,
    cluster: str,
    seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Stop every task in ``cluster`` and wait until all are STOPPED; return how many.

    Tasks that appear while waiting are stopped too. Raises ``StillStopping``
    after ``seconds``.
    """
    deadline = clock() + seconds
    stopped: set[str] = set()
    while True:
        for arn in _list(ecs, cluster, "RUNNING"):
            ecs.stop_task(cluster=cluster, task=arn, reason=STOP_REASON)
            stopped.add(arn)
        pending = _not_yet_stopped(ecs, cluster, _list(ecs, cluster, "STOPPED"))
        if not pending and not _list(ecs, cluster, "RUNNING"):
            return len(stopped)
        if clock() >= deadline:
            raise StillStopping(
                f"{len(pending)} runner task(s) still stopping in {cluster}: "
                f"{', '.join(arn.rsplit('/', 1)[-1] for arn in pending[:5])}; "
                "run the delete again"
            )
        sleep(POLL_SECONDS)


def respond(event: dict[str, Any], status: str, reason: str, physical_id: str) -> None:
    """PUT the result to CloudFormation's pre-signed URL."""
    import requests

    body = {
        "Status": status,
        "Reason": reason[:1000],
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    response = requests.put(
        event["ResponseURL"], data=json.dumps(body), headers={"Content-Type": ""}, timeout=10
    )
    response.raise_for_status()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> None:
    """Custom resource handler (``Custom::RunnerTeardown``, property ``Cluster``)."""
    cluster = str(event.get("ResourceProperties", {}).get("Cluster", ""))
    physical_id = str(event.get("PhysicalResourceId") or f"{cluster}-runner-teardown")
    status, reason = "SUCCESS", "nothing to do"
    try:
        if event["RequestType"] == "Delete" and cluster:
            budget = context.get_remaining_time_in_millis() / 1000 - RESPONSE_RESERVE_SECONDS
            count = stop_all_tasks(aws.client("ecs"), cluster, max(budget, 0))
            reason = f"stopped {count} runner task(s) in {cluster}"
    except StillStopping as exc:
        status, reason = "FAILED", str(exc)
    except Exception as exc:  # answer CloudFormation whatever happens, or it waits an hour
        if aws.error_code(exc) == "ClusterNotFoundException":  # a rollback of a failed create
            reason = f"cluster {cluster} is already gone"
        else:
            status = "FAILED"
            reason = f"could not stop the runner tasks: {type(exc).__name__}: {exc}"
    logger.info("teardown", extra={"status": status, "reason": reason})
    respond(event, status, reason, physical_id)
