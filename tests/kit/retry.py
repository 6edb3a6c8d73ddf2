"""The retry path: drain the queue as Lambda's SQS event source would; tasks per job."""

from __future__ import annotations

from typing import Any

import boto3

from lambda_fn import contract
from tests.kit.events import LambdaContext
from tests.kit.world import FakeAws


def drain(fake_aws: FakeAws, rounds: int = 20) -> list[dict[str, Any]]:
    """Feed the retry queue to the consumer as Lambda's SQS event source would."""
    from lambda_fn.retry import handler
    from localdev.sqs_source import deliver_batch

    sqs = boto3.client("sqs", region_name=fake_aws.region)
    responses_seen: list[dict[str, Any]] = []
    for _ in range(rounds):
        result = deliver_batch(sqs, fake_aws.retry_queue_url, handler, LambdaContext())
        if result is None:
            break
        responses_seen.append(result)
    return responses_seen


def tasks_per_job(fake_aws: FakeAws) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in fake_aws.tasks():
        tags = {t["key"]: t["value"] for t in task.get("tags", [])}
        counts[tags[contract.TAG_GITHUB_JOB_ID]] = (
            counts.get(tags[contract.TAG_GITHUB_JOB_ID], 0) + 1
        )
    return counts
