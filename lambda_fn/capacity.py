"""``max_runners`` without listing every running task on every delivery.

A profile with ``max_runners`` has one counter item in the idempotency table,
``capacity#<profile>``: ``running`` (slots taken: tasks started and not yet seen
stopped, plus launches under way) and one ``pending_<slot>`` attribute per launch under
way (the epoch second it reserved). Every path that starts a task of the profile
(webhook, retry consumer, reconciler replacements and warm-pool top-ups) goes through
``reserve`` first:

1. **Below the cap**: one ``UpdateItem`` adds 1 to ``running`` and writes the launch's
   ``pending_<slot>``, on condition ``running < max_runners``. DynamoDB applies a
   conditional update atomically
   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate),
   so N concurrent deliveries never take more than the free slots, which the previous
   count-then-launch (a paged ``ListTasks`` per delivery) could not promise. When the
   task exists (``RunTask`` answered), ``launched`` removes ``pending_<slot>``; a launch
   that failed gives its slot back (``release``).
2. **At the cap** the counter may be high only because tasks stopped since it was last
   corrected. The item is read, the tasks are counted from ECS (the paged ``ListTasks``,
   now paid only here), and ``running`` is set to that count plus the launches still
   pending (younger than ``IN_FLIGHT_SECONDS``: their task may not exist yet) plus this
   one, with a compare-and-set on the ``running`` that was read: any reservation
   meanwhile makes the write fail, and the job waits (retry queue) rather than start past
   the cap. The reconciler makes the same correction once a run (``correct``).

So the counter never undercounts what runs or is being launched, and the cap holds under
concurrency; it overcounts only between corrections, which costs a recount at the cap.
One residual: ECS's read APIs are eventually consistent
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/Welcome.html), so a task whose
``RunTask`` answered a moment before the recount's ``ListTasks`` could be missed once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from lambda_fn import aws
from lambda_fn.config import Profile, Settings
from lambda_fn.errors import CapacityWaitError
from lambda_fn.observability import count, logger

KEY_PREFIX = "capacity#"
PENDING_PREFIX = "pending_"
#: Longer than any launch's reservation -> ``RunTask`` gap: the JIT call (bounded by
#: ``GITHUB_TIMEOUT_BUDGET_SECONDS``) and ``RunTask`` with its botocore retries. A pending
#: slot older than this belongs to a launch that died without giving it back.
IN_FLIGHT_SECONDS = 60

Clock = Callable[[], float]


def _key(profile: Profile) -> dict[str, Any]:
    return {"id": {"S": f"{KEY_PREFIX}{profile.name}"}}


def family(task_definition: str) -> str:
    """The task definition family of an ARN or ``family:revision``."""
    return task_definition.rsplit("/", 1)[-1].split(":", 1)[0]


def count_running(settings: Settings, profile: Profile) -> int:
    """Tasks of the profile's family that are pending or running (paged ``ListTasks``)."""
    total = 0
    paginator = aws.client("ecs").get_paginator("list_tasks")
    for page in paginator.paginate(
        cluster=settings.ecs_cluster,
        family=family(profile.task_definition),
        desiredStatus="RUNNING",
    ):
        total += len(page.get("taskArns", []))
    return total


def reserve(settings: Settings, profile: Profile, *, clock: Clock = time.time) -> str | None:
    """Take one of the profile's ``max_runners`` slots (its id), or raise
    ``CapacityWaitError``; None when the profile has no cap."""
    if profile.max_runners is None:
        return None
    from botocore.exceptions import ClientError

    slot = PENDING_PREFIX + secrets.token_hex(6)
    now = int(clock())
    try:
        aws.client("dynamodb").update_item(
            TableName=settings.idempotency_table,
            Key=_key(profile),
            UpdateExpression="ADD running :one SET #slot = :now",
            ConditionExpression="attribute_not_exists(running) OR running < :max",
            ExpressionAttributeNames={"#slot": slot},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":now": {"N": str(now)},
                ":max": {"N": str(profile.max_runners)},
            },
        )
        return slot
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise
    running = _recount(settings, profile, slot, now)
    if running is None:
        return slot
    # One place for every path (webhook, retry consumer, reconciler): the job waits in
    # the retry queue rather than start past the cap.
    logger.warning(
        "job waits: profile is at max_runners",
        extra={"running": running, "max_runners": profile.max_runners},
    )
    count("JobsWaitingForCapacity", ("profile", profile.name))
    raise CapacityWaitError(
        f"profile {profile.name} already runs {running} of {profile.max_runners} runners"
    )


def launched(settings: Settings, profile: Profile, slot: str | None) -> None:
    """The slot's task exists (``RunTask`` answered): it is counted by ECS from now on."""
    _update_quietly(settings, profile, slot, "REMOVE #slot", {})


def release(settings: Settings, profile: Profile, slot: str | None) -> None:
    """Give back the slot of a launch that failed before or at ``RunTask``."""
    _update_quietly(
        settings, profile, slot, "ADD running :minus REMOVE #slot", {":minus": {"N": "-1"}}
    )


def correct(settings: Settings, profile: Profile, *, clock: Clock = time.time) -> bool:
    """The reconciler's correction: ``running`` := ECS's count + launches under way,
    unless a reservation changed the counter meanwhile; True when it was set."""
    if profile.max_runners is None:
        return False
    return _recount(settings, profile, None, int(clock()), take=False) is None


def _recount(
    settings: Settings, profile: Profile, slot: str | None, now: int, *, take: bool = True
) -> int | None:
    """Read the item, count from ECS, compare-and-set; None when set (and, with ``take``,
    the slot taken), else the count that leaves no room."""
    from botocore.exceptions import ClientError

    assert profile.max_runners is not None
    ddb = aws.client("dynamodb")
    old = (
        ddb.get_item(
            TableName=settings.idempotency_table, Key=_key(profile), ConsistentRead=True
        ).get("Item")
        or {}
    )
    pending = {
        name: int(value.get("N", "0"))
        for name, value in old.items()
        if name.startswith(PENDING_PREFIX)
    }
    in_flight = sum(1 for at in pending.values() if now - at < IN_FLIGHT_SECONDS)
    running = count_running(settings, profile) + in_flight
    if take and running >= profile.max_runners:
        return running
    names: dict[str, str] = {}
    values: dict[str, Any] = {":running": {"N": str(running + (1 if take else 0))}}
    update = "SET running = :running"
    if take and slot is not None:
        names["#slot"] = slot
        values[":now"] = {"N": str(now)}
        update += ", #slot = :now"
    stale = [name for name, at in pending.items() if now - at >= IN_FLIGHT_SECONDS]
    for index, name in enumerate(stale[:50]):
        names[f"#stale{index}"] = name
    if stale:
        update += " REMOVE " + ", ".join(f"#stale{i}" for i in range(min(len(stale), 50)))
    if "running" in old:
        condition = "running = :seen"
        values[":seen"] = old["running"]
    else:
        condition = "attribute_not_exists(running)"
    try:
        ddb.update_item(
            TableName=settings.idempotency_table,
            Key=_key(profile),
            UpdateExpression=update,
            ConditionExpression=condition,
            **({"ExpressionAttributeNames": names} if names else {}),
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            return running  # a reservation or release meanwhile: its view is newer
        raise
    return None


def _update_quietly(
    settings: Settings,
    profile: Profile,
    slot: str | None,
    update: str,
    values: dict[str, Any],
) -> None:
    """Best effort: a missed update only overcounts until the next correction."""
    if profile.max_runners is None or slot is None:
        return
    try:
        aws.client("dynamodb").update_item(
            TableName=settings.idempotency_table,
            Key=_key(profile),
            UpdateExpression=update,
            ConditionExpression="attribute_exists(#slot)",
            ExpressionAttributeNames={"#slot": slot},
            **({"ExpressionAttributeValues": values} if values else {}),
        )
    except Exception as exc:
        logger.warning("runner slot not updated", extra={"error": type(exc).__name__})
