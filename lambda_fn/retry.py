"""SQS consumer of the retry queue: the same launch code, the same de-duplication.

For each message: ask GitHub whether the job still needs a runner (a job
that was cancelled or picked up meanwhile is dropped), check again from
GitHub's view of the job that it may have a runner of the profile the message
names (``admission.recheck``: labels, repository, the profile's policy; a
refused job is dropped), then ``launch_once``. Outcomes:

* launched, or already launched by another path -> done;
* still transient -> re-sent with ``attempt + 1`` and a longer delay, or to the
  dead-letter queue once ``RETRY_MAX_ATTEMPTS`` is reached;
* waiting (profile at ``max_runners``, or another path is launching it right
  now) -> re-sent with the same attempt count;
* permanent -> dead-letter queue with the reason;
* a body that is not a job, or names a profile the configuration no longer has (the
  profile is resolved once, when the message is read) -> dead-letter queue unchanged.

If even the re-send fails, the record is reported in ``batchItemFailures`` so
SQS keeps it; the queue's own redrive policy is the last safety net.
"""

from __future__ import annotations

from typing import Any

from lambda_fn.admission import recheck
from lambda_fn.config import Settings, get_settings
from lambda_fn.errors import (
    CapacityWaitError,
    GitHubPermanentError,
    PermanentError,
    SecretMissingError,
    TransientError,
)
from lambda_fn.github import JOB_STATUSES_NEEDING_RUNNER
from lambda_fn.github_auth import github_client
from lambda_fn.idempotent_launch import launch_once
from lambda_fn.jobs import Job, RetryMessage, UnknownProfileError
from lambda_fn.observability import count, logger, metrics
from lambda_fn.retry_queue import (
    JOB_QUEUE_LIMIT_SECONDS,
    as_text,
    dead_letter,
    describe,
    enqueue_retry,
    send,
    send_raw,
)

WAIT_DELAY_SECONDS = 60


def read_job(settings: Settings, job: Job) -> dict[str, Any] | None:
    """GitHub's current view of the job, or None when it cannot be read right now."""
    try:
        return github_client(settings).get_job(job.owner, job.repo, job.job_id)
    except (TransientError, GitHubPermanentError) as exc:
        # Unknown is not "done": go on; the re-check and the launch decide.
        logger.warning("could not read the job", extra={"error": str(exc)})
        return None


def retry_once(message: RetryMessage, context: Any = None) -> str:
    """Handle one message; returns the outcome (for logs, metrics and tests)."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
    )

    settings = get_settings()
    logger.append_keys(**describe(message))
    if message.age_seconds() > JOB_QUEUE_LIMIT_SECONDS:
        return _finish("expired", "job waited longer than GitHub keeps jobs queued")

    github_job = read_job(settings, message.job)
    status = github_job.get("status") if github_job is not None else None
    if status is not None and status not in JOB_STATUSES_NEEDING_RUNNER:
        return _finish("dropped", f"job is {status} on GitHub")

    try:
        refusal = recheck(settings, message.job, github_job)
        if refusal is not None:
            return _finish("refused", refusal)
        result = launch_once(message.job, context)
    except (IdempotencyAlreadyInProgressError, CapacityWaitError) as exc:
        _wait(settings, message, as_text(exc))
        return "waiting"
    except (TransientError, IdempotencyPersistenceLayerError) as exc:
        if message.attempt >= settings.retry_max_attempts:
            return _park(settings, message, f"gave up after {message.attempt} attempts: {exc}")
        following = RetryMessage(
            message.job, message.attempt + 1, message.first_failed_at, as_text(exc)
        )
        delay = enqueue_retry(settings, following)
        logger.warning(
            "launch failed again, retrying later", extra={"delay": delay, "error": str(exc)}
        )
        count("RetriesScheduled")
        return "retrying"
    except (PermanentError, SecretMissingError) as exc:
        return _park(settings, message, f"permanent failure: {exc}")

    outcome = "duplicate" if result.get("duplicate") else "launched"
    if outcome == "launched":
        count("RunnersLaunched", ("profile", message.job.profile.name))
        count("RetriesSucceeded")
    logger.info("retry finished", extra={"outcome": outcome, "task_arn": result.get("task_arn")})
    return outcome


def _finish(outcome: str, reason: str) -> str:
    logger.info("job no longer needs a runner", extra={"outcome": outcome, "reason": reason})
    count("JobsDropped", ("reason", outcome))
    return outcome


def _wait(settings: Settings, message: RetryMessage, reason: str) -> None:
    if not settings.retry_queue_url:
        raise TransientError("RETRY_QUEUE_URL is not set")
    waiting = RetryMessage(message.job, message.attempt, message.first_failed_at, reason)
    send(settings.retry_queue_url, waiting, WAIT_DELAY_SECONDS)
    logger.info("job waits for capacity", extra={"reason": reason})


def _park(settings: Settings, message: RetryMessage, reason: str) -> str:
    count("JobsDeadLettered")
    if not dead_letter(settings, message, reason):
        # No DLQ configured: let SQS keep the message (and its redrive policy decide).
        raise TransientError(f"no DEAD_LETTER_QUEUE_URL to park the job: {reason}")
    logger.error("job moved to the dead-letter queue", extra={"reason": reason})
    return "dead_lettered"


def record_handler(record: Any, lambda_context: Any = None) -> str:
    """One SQS record. Raising marks it failed (it stays on the queue)."""
    settings = get_settings()
    try:
        message = RetryMessage.from_json(record.body, settings.profiles)
    except UnknownProfileError as exc:
        # Renamed or removed since the job was queued: kept as it is in the dead-letter
        # queue, so an operator can replay it once the profile is back.
        return _park_raw(settings, record.body, "retry message for an unknown profile", exc)
    except (ValueError, KeyError, TypeError) as exc:
        return _park_raw(settings, record.body, "unreadable retry message", exc)
    return retry_once(message, lambda_context)


def _park_raw(settings: Settings, body: str, what: str, exc: Exception) -> str:
    """A message that cannot become a job here: to the DLQ unchanged (else SQS keeps it)."""
    logger.error(what, extra={"error": str(exc)})
    if not settings.dead_letter_queue_url:
        raise exc
    send_raw(settings.dead_letter_queue_url, body)
    count("JobsDeadLettered")
    return "dead_lettered"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch handler with partial batch failures (``batchItemFailures``)."""
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    count("RetryBatches")
    # Report failures per item even when all fail, rather than failing the invocation.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
