"""Launch one runner for one queued job, at most once, whichever path asks.

:func:`launch_once` is the single entry point used by the webhook handler, the retry
consumer and the reconciler. It is made idempotent with Powertools idempotency on
DynamoDB, keyed on the job's ``idempotency_key`` alone (``lambda_fn.jobs``: the
``workflow_job.id``, or the id and the replacement number) with a fixed key prefix, so
the webhook Lambda, a redelivery and a retry all share one record: the first caller
launches, later callers get the stored result (or ``IdempotencyAlreadyInProgressError``
while the first is still running).

The typed :class:`~lambda_fn.jobs.Job`, profile included, is what Powertools is given and
what it hands to :func:`lambda_fn.launch.launch`: ``idempotent_function`` turns a
dataclass argument into a dict with ``dataclasses.asdict`` only to take the key from it
(``event_key_jmespath``), and calls the function with the object it was given
(aws_lambda_powertools/utilities/idempotency/base.py ``_prepare_data``, 3.37.0; docs:
https://docs.aws.amazon.com/powertools/python/latest/utilities/idempotency/ "Using
dataclasses"). Payload validation is off, so nothing but the key is compared with a
stored record.

If the launch fails, Powertools deletes the in-progress record, so the job can be tried
again (``lambda_fn.launch`` undoes what the failed attempt did first).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from lambda_fn import aws
from lambda_fn.config import get_settings
from lambda_fn.jobs import IDEMPOTENCY_KEY_PREFIX, Job
from lambda_fn.launch import launch

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig


def launch_once(job: Job, lambda_context: Any = None) -> dict[str, Any]:
    """Launch ``job`` unless some path already did; the result says which.

    Returns the launch result; ``"duplicate": True`` when it was replayed from
    the idempotency record. Raises Powertools' ``IdempotencyAlreadyInProgressError``
    while another path is launching the same job (same ``idempotency_key``).
    """
    config, launch_at_most_once = _for_settings()
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    result: dict[str, Any] = launch_at_most_once(job=job)
    return result


def register_invocation(lambda_context: Any) -> None:
    """Give Powertools this invocation's deadline for every :func:`launch_once` that follows.

    Without it an in-progress record has no ``in_progress_expiration``: if the Lambda dies
    mid-launch (a timeout), every path gets ``IdempotencyAlreadyInProgressError`` for the
    job until the record's own expiry, hours later. With it the record is released when the
    invocation's time is up (Powertools docs, idempotency, "Handling exceptions" and
    ``register_lambda_context``). The reconciler calls it once per run, since its launches
    happen deep inside its steps.
    """
    config, _ = _for_settings()
    config.register_lambda_context(lambda_context)


def _for_settings() -> tuple[IdempotencyConfig, Callable[..., dict[str, Any]]]:
    """:func:`_idempotent` for this Lambda's table, TTL and DynamoDB client."""
    settings = get_settings()
    return _idempotent(
        settings.idempotency_table, settings.idempotency_ttl_seconds, aws.client("dynamodb")
    )


def _launch(job: Job) -> dict[str, Any]:
    """What Powertools runs when no record of ``job.idempotency_key`` exists."""
    return launch(job, get_settings())


def _mark_replayed(response: Any, idempotent_data: Any) -> Any:
    """Powertools calls this only when it returns a stored result instead of running."""
    if isinstance(response, dict):
        return {**response, "duplicate": True}
    return response


@lru_cache(maxsize=4)
def _idempotent(
    table: str, ttl_seconds: int, dynamodb: Any
) -> tuple[IdempotencyConfig, Callable[..., dict[str, Any]]]:
    """:func:`_launch` under Powertools' idempotency on ``table``.

    Built on first use, not at import (importing ``lambda_fn.app`` touches no AWS and
    stays light), and kept per table, TTL and client so the persistence layer's client
    is reused by later invocations of a warm Lambda.
    """
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    config = IdempotencyConfig(
        # The job's own field (lambda_fn.jobs): the same hashed value as before the job
        # was a typed object, so records written by earlier versions still match.
        event_key_jmespath="idempotency_key",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=ttl_seconds,
        response_hook=_mark_replayed,
    )
    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb)
    wrapped = idempotent_function(
        _launch,
        data_keyword_argument="job",
        persistence_store=persistence,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    return config, wrapped


def reset() -> None:
    """Forget the cached idempotent launchers (tests)."""
    _idempotent.cache_clear()
