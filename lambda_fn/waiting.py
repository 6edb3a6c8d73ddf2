"""Jobs waiting for an environment's approval: never launched, remembered, looked at again.

GitHub sends ``workflow_job`` ``queued`` with ``workflow_job.status: "waiting"`` and a
``deployment`` (and a ``waiting`` action) for a job gated by an environment protection
rule, then ``queued`` again once it is approved (changelog 2022-11-22, "Webhook
enhancements for environment protection rules"; octokit/webhooks
``payload-examples/api.github.com/workflow_job/queued.with-deployment.payload.json``).
Peers report that the second ``queued`` may never come (cdk-github-runners #380/#416/
#428, terraform-aws-github-runner #2454, runs-on #429/#386), so dispatch starts nothing
for a waiting job and *remembers* it here; the reconciler looks at each remembered job
(``GET .../actions/jobs/{id}`` and the run's pending deployments) and launches it through
the same ``launch_once`` once GitHub says it is queued and nothing waits on its
environment (docs/waiting-jobs.md).

Storage: one item of the idempotency table, ``id = "waiting-jobs"``, whose ``jobs`` map
holds job id -> record. Never the launch record (Powertools keys those
``workflow-job#<hash>``), so remembering a job cannot make its later ``queued`` delivery a
duplicate. One item rather than an item per job: the reconciler reads them all with one
``GetItem`` instead of a ``Scan`` of every launch record, and the Lambdas need no IAM
action beyond the ``GetItem``/``PutItem``/``UpdateItem`` they already have on the table.
The map is bounded (:data:`MAX_REMEMBERED` records of about 300 bytes, far below
DynamoDB's 400 KB item limit); a full map remembers nothing more (metric
``WaitingJobsNotRemembered``) and the job then depends on GitHub's second ``queued``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING

from lambda_fn import aws
from lambda_fn.config import Settings
from lambda_fn.errors import TransientError
from lambda_fn.jobs import WaitingJob
from lambda_fn.observability import logger

if TYPE_CHECKING:
    from lambda_fn.payload import WorkflowJobEvent

#: The item's key; Powertools' launch records are ``workflow-job#<md5>``, never this.
ITEM_KEY = "waiting-jobs"
MAX_REMEMBERED = 500


class Verdict(Enum):
    """What a ``queued``/``waiting`` delivery says about its job."""

    QUEUED = "queued"  # launch
    WAITING = "waiting"  # gated by a protection rule: remember, start nothing
    ASK = "ask"  # a deployment without a usable status: ask GitHub


def verdict(event: WorkflowJobEvent) -> Verdict:
    """Decide from the payload where it can tell (docs/contract.md, "(added)")."""
    status = event.workflow_job.status
    if event.action == "waiting" or status == "waiting":
        return Verdict.WAITING
    if status == "queued" or event.deployment is None:
        return Verdict.QUEUED  # no deployment and no status: an older payload, as before
    return Verdict.ASK


def waits_on(pending: Iterable[str], environment: str) -> bool:
    """Does one of the run's pending environments gate this job? (Unknown name: any.)"""
    from lambda_fn.payload import same_environment

    names = list(pending)
    if not environment:
        return bool(names)
    return any(same_environment(name, environment) for name in names)


def _conditional_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "ConditionalCheckFailedException"


def remember(settings: Settings, waiting: WaitingJob) -> bool:
    """Keep ``waiting`` in view (first record wins); False if the map is full.

    Raises ``TransientError`` when DynamoDB cannot be written now.
    """
    ddb = aws.client("dynamodb")
    key = {"id": {"S": ITEM_KEY}}
    names = {"#j": str(waiting.job_id)}
    record = waiting.to_item()
    try:
        for attempt in range(2):
            try:
                ddb.update_item(
                    TableName=settings.idempotency_table,
                    Key=key,
                    UpdateExpression="SET jobs.#j = if_not_exists(jobs.#j, :rec)",
                    ConditionExpression="attribute_exists(jobs) AND "
                    "(size(jobs) < :max OR attribute_exists(jobs.#j))",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":rec": record, ":max": {"N": str(MAX_REMEMBERED)}},
                )
                return True
            except Exception as exc:
                if not _conditional_failed(exc):
                    raise
            if attempt == 0:  # no item yet, or the map is full: create the item if missing
                try:
                    ddb.put_item(
                        TableName=settings.idempotency_table,
                        Item={**key, "jobs": {"M": {str(waiting.job_id): record}}},
                        ConditionExpression="attribute_not_exists(id)",
                    )
                    return True
                except Exception as exc:
                    if not _conditional_failed(exc):
                        raise
        return False  # the item exists and the map holds MAX_REMEMBERED other jobs
    except Exception as exc:
        raise TransientError(f"could not remember the waiting job: {type(exc).__name__}") from exc


def remembered(settings: Settings) -> list[WaitingJob]:
    """Every remembered job (a consistent read of the one item)."""
    item = (
        aws.client("dynamodb")
        .get_item(
            TableName=settings.idempotency_table,
            Key={"id": {"S": ITEM_KEY}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    jobs = (item or {}).get("jobs", {}).get("M", {})
    found = []
    for name, value in jobs.items():
        waiting = WaitingJob.from_item(value)
        if waiting is None or str(waiting.job_id) != name:
            logger.warning("unreadable waiting-job record dropped", extra={"job_id": name[:32]})
            forget(settings, [name])
            continue
        found.append(waiting)
    return found


def forget(settings: Settings, job_ids: Iterable[int | str]) -> None:
    """Drop records (a missing one is fine)."""
    names = {f"#j{i}": str(job_id) for i, job_id in enumerate(job_ids)}
    if not names:
        return
    try:
        aws.client("dynamodb").update_item(
            TableName=settings.idempotency_table,
            Key={"id": {"S": ITEM_KEY}},
            UpdateExpression="REMOVE " + ", ".join(f"jobs.{n}" for n in names),
            ConditionExpression="attribute_exists(jobs)",
            ExpressionAttributeNames=names,
        )
    except Exception as exc:
        if not _conditional_failed(exc):
            raise


def mark_checked(settings: Settings, job_id: int, now: int) -> None:
    """Record that the reconciler looked (the least recently looked-at go first)."""
    try:
        aws.client("dynamodb").update_item(
            TableName=settings.idempotency_table,
            Key={"id": {"S": ITEM_KEY}},
            UpdateExpression="SET jobs.#j.checked = :now",
            ConditionExpression="attribute_exists(jobs.#j)",
            ExpressionAttributeNames={"#j": str(job_id)},
            ExpressionAttributeValues={":now": {"N": str(now)}},
        )
    except Exception as exc:
        if not _conditional_failed(exc):
            raise
