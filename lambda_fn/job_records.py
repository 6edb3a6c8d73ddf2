"""What our own records say about a job, so the reconciler need not ask GitHub.

Two kinds of item in the idempotency table (``id`` key, TTL attribute ``expiration``),
next to the launch records:

- ``job-state#<job id>``: the job has started or ended. Written by the webhook when
  GitHub sends the job's ``in_progress`` or ``completed`` delivery
  (https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_job), one
  ``UpdateItem`` each, for jobs one of our profiles serves. Such a job never needs a
  runner again: a re-run is a new job with a new id.
- ``task-check#<task ARN>``: GitHub's answer to ``GET actions/jobs/{id}`` for a job whose
  runners had all stopped, keyed by the job's *last stopped task*. The reconciler asks
  once per stopped task, not on every run for the hour ECS keeps listing it; a new
  replacement that stops is a new task, so the job is asked about again.

Why not the task's exit alone: an ephemeral runner takes *any* queued job whose labels it
has (docs/runner.md), so the task started for job A may have run job B while A is still
queued; "this task ran a job" says nothing about A. Only A's own deliveries do.

Deliveries can be lost (GitHub never retries a failed one by itself); a job without a
record is simply asked about, once per stopped task, as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from lambda_fn import aws
from lambda_fn.config import Settings

JOB_PREFIX = "job-state#"
TASK_PREFIX = "task-check#"
#: BatchGetItem reads at most 100 items per request
#: (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html).
BATCH = 100
MAX_UNPROCESSED_ROUNDS = 5


def mark_job(settings: Settings, job_id: int, state: str) -> None:
    """Record that GitHub reported the job ``state`` (``in_progress`` or ``completed``)."""
    expiration = int(time.time()) + settings.idempotency_ttl_seconds
    aws.client("dynamodb").update_item(
        TableName=settings.idempotency_table,
        Key={"id": {"S": f"{JOB_PREFIX}{job_id}"}},
        UpdateExpression="SET job_state = :state, expiration = :expiration",
        ExpressionAttributeValues={
            ":state": {"S": state[:16]},
            ":expiration": {"N": str(expiration)},
        },
    )


def remember_check(settings: Settings, task_arn: str, status: str) -> None:
    """Record GitHub's status of the job whose last stopped task is ``task_arn``."""
    expiration = int(time.time()) + settings.idempotency_ttl_seconds
    aws.client("dynamodb").put_item(
        TableName=settings.idempotency_table,
        Item={
            "id": {"S": f"{TASK_PREFIX}{task_arn}"},
            "job_status": {"S": status[:32]},
            "expiration": {"N": str(expiration)},
        },
    )


def lookup(
    settings: Settings, job_ids: Iterable[int], task_arns: Iterable[str]
) -> tuple[set[int], dict[str, str]]:
    """(jobs recorded as started or ended, task ARN -> recorded job status)."""
    keys = [f"{JOB_PREFIX}{j}" for j in sorted(set(job_ids))]
    keys += [f"{TASK_PREFIX}{a}" for a in sorted(set(task_arns))]
    now = time.time()
    done: set[int] = set()
    checked: dict[str, str] = {}
    for item in _batch_get(settings, keys):
        # DynamoDB deletes expired items within days, not at once: an expired one is absent.
        if float(item.get("expiration", {}).get("N", "0")) < now:
            continue
        key = item["id"]["S"]
        if key.startswith(JOB_PREFIX):
            done.add(int(key.removeprefix(JOB_PREFIX)))
        elif "job_status" in item:
            checked[key.removeprefix(TASK_PREFIX)] = item["job_status"]["S"]
    return done, checked


def _batch_get(settings: Settings, keys: list[str]) -> list[dict[str, Any]]:
    ddb = aws.client("dynamodb")
    table = settings.idempotency_table
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH):
        request: dict[str, Any] = {
            table: {
                "Keys": [{"id": {"S": k}} for k in keys[start : start + BATCH]],
                "ProjectionExpression": "id, job_status, expiration",
            }
        }
        for _ in range(MAX_UNPROCESSED_ROUNDS):
            response = ddb.batch_get_item(RequestItems=request)
            found.extend(response.get("Responses", {}).get(table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        # Keys still unprocessed count as "no record": those jobs are asked about.
    return found
