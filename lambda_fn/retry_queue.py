"""The retry queue: backoff, and the two ways a job leaves our hands.

A job whose launch failed transiently travels as a ``RetryMessage`` (the job
plus how many attempts were made; its body is defined in ``lambda_fn.jobs``). The
consumer re-sends it with a growing ``DelaySeconds`` instead of relying on the
queue's visibility timeout, so the delay grows with each attempt and waiting for
capacity does not use up attempts. What cannot be retried goes to the dead-letter
queue with its reason, so an operator can replay it (see docs/deliveries.md, "Failure
handling").
"""

from __future__ import annotations

import time
from typing import Any

from lambda_fn import aws
from lambda_fn.config import QUEUED_JOB_LIMIT_SECONDS, Settings
from lambda_fn.errors import TransientError
from lambda_fn.jobs import Job, RetryMessage

MAX_SQS_DELAY_SECONDS = 900
#: GitHub cancels a job that stayed queued for 24 hours; retrying beyond that is pointless.
JOB_QUEUE_LIMIT_SECONDS = QUEUED_JOB_LIMIT_SECONDS


def backoff_seconds(attempt: int, base: int) -> int:
    """Delay before attempt ``attempt + 1``: base, 2x, 4x ... capped at SQS's 15 minutes.

    With the defaults (base 20 s, 8 attempts) the waits are 20, 40, 80, 160,
    320, 640, 900 s: about 36 minutes from the first failure to the DLQ.
    """
    return int(min(MAX_SQS_DELAY_SECONDS, base * 2 ** max(0, attempt - 1)))


def send(queue_url: str, message: RetryMessage, delay_seconds: int = 0) -> None:
    """Put ``message`` on a queue; failures are transient (the caller keeps the job)."""
    send_raw(
        queue_url,
        message.to_json(),
        delay_seconds,
        {
            "job_id": {"DataType": "Number", "StringValue": str(message.job.job_id)},
            "attempt": {"DataType": "Number", "StringValue": str(message.attempt)},
        },
    )


def send_raw(
    queue_url: str,
    body: str,
    delay_seconds: int = 0,
    attributes: dict[str, Any] | None = None,
) -> None:
    """Send a body as it is (also used to park unreadable messages in the DLQ)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        aws.client("sqs").send_message(
            QueueUrl=queue_url,
            MessageBody=body,
            DelaySeconds=max(0, min(MAX_SQS_DELAY_SECONDS, int(delay_seconds))),
            MessageAttributes=attributes or {},
        )
    except (BotoCoreError, ClientError) as exc:
        raise TransientError(f"could not send to {queue_url.rsplit('/', 1)[-1]}: {exc}") from None


def enqueue_retry(settings: Settings, message: RetryMessage) -> int:
    """Schedule the next attempt; returns the delay used."""
    if not settings.retry_queue_url:
        raise TransientError("RETRY_QUEUE_URL is not set")
    delay = backoff_seconds(message.attempt, settings.retry_base_delay_seconds)
    send(settings.retry_queue_url, message, delay)
    return delay


def dead_letter(settings: Settings, message: RetryMessage, reason: str) -> bool:
    """Park a job for an operator. Returns False when no DLQ is configured.

    The parked copy starts again at attempt 1 (the reason keeps the history),
    so a job replayed to the retry queue after a fix gets a full set of retries.
    """
    if not settings.dead_letter_queue_url:
        return False
    parked = RetryMessage(message.job, 1, message.first_failed_at, reason)
    send(settings.dead_letter_queue_url, parked)
    return True


def first_failure(job: Job, error: str) -> RetryMessage:
    return RetryMessage(job=job, attempt=1, first_failed_at=time.time(), last_error=error)


def as_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def describe(message: RetryMessage) -> dict[str, Any]:
    """Log keys for a message (no secrets in it: the job carries ids and names only)."""
    return {
        "job_id": message.job.job_id,
        "attempt": message.attempt,
        "profile": message.job.profile.name,
    }
