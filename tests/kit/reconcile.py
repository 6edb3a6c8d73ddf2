"""The reconciler run in-process; a task stopped as ECS stops it; a hook delivery record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3


def reconcile(now: datetime | None = None) -> dict[str, int]:
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import reconcile as run

    return dict(run(get_settings(), now))


def ecs() -> Any:
    return boto3.client("ecs", region_name="us-east-1")


def kill(task_arn: str, reason: str = "CannotPullContainerError: pull access denied") -> None:
    cluster = task_arn.split(":task/", 1)[1].split("/", 1)[0]
    ecs().stop_task(cluster=cluster, task=task_arn, reason=reason)


def delivery(
    delivery_id: int, guid: str, status_code: int, minutes_ago: int = 5, **extra: Any
) -> dict[str, Any]:
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "id": delivery_id,
        "guid": guid,
        "delivered_at": when.isoformat().replace("+00:00", "Z"),
        "redelivery": False,
        "status_code": status_code,
        "event": "workflow_job",
        "action": "queued",
        "hook_id": 12,  # tests.kit.github.TEST_HOOKS: repos/octo-org/app/hooks/12
        **extra,
    }
