"""Deliveries, events and environment shared by the benchmarks.

The payload, signed delivery, API Gateway event and Lambda context come from
``localdev`` (``localdev.deliveries``, ``localdev.lambda_events``): one builder for
the tests, the benchmarks and the local endpoint. Deliberately free of ``lambda_fn``
(and ``requests``) imports at module level (signing is ``hmac``), so a cold-start
child can build its events before the timer starts without pre-importing the code
under test.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from localdev.deliveries import workflow_job_payload
from localdev.lambda_events import LambdaContext, webhook_event

__all__ = ["LambdaContext"]

REGION = "us-east-1"
ACCOUNT = "123456789012"
GITHUB_API = "https://api.github.test"
WEBHOOK_SECRET = "whsec-" + "b3nchm4rk" * 4
PAT = "ghp_" + "BENCHMARKTOKEN" + "x" * 22
OWNER = "octo-org"
REPO = "app"

#: The labels a job asks for that the "default" profile serves.
MATCHING_LABELS = ("self-hosted", "linux", "arm64")
#: Labels no profile serves: the delivery is ignored.
UNMATCHED_LABELS = ("self-hosted", "windows", "gpu")

#: Credentials and switches every benchmark process uses (never real AWS).
BASE_ENV: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_SERVICE_NAME": "runner-webhook",
    "POWERTOOLS_METRICS_NAMESPACE": "FargateRunnersBench",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


def profile_entries(default_task_definition: str, big_task_definition: str) -> list[dict[str, Any]]:
    """The profiles as the stack stores them (two profiles, like the tests)."""
    return [
        {
            "name": "default",
            "labels": ["self-hosted", "linux", "arm64", "fargate"],
            "task_definition": default_task_definition,
            "container_name": "runner",
            "task_role_id": "AROABENCHDEFAULTROLE1",
        },
        {
            "name": "big",
            "labels": ["self-hosted", "linux", "x64", "fargate", "big"],
            "task_definition": big_task_definition,
            "container_name": "runner",
            "task_role_id": "AROABENCHBIGTASKROLE1",
        },
    ]


def lambda_env(
    *,
    ssm: Any,
    webhook_secret_arn: str,
    token_secret_arn: str,
    cluster: str,
    subnet_id: str,
    security_group_id: str,
    table: str,
    task_definitions: Mapping[str, str],
    github_api_url: str = GITHUB_API,
) -> dict[str, str]:
    """The Lambda's environment for the given resources: the construct's own builder
    (``lambda_fn.contract.lambda_environment``), the profiles stored through ``ssm`` (a
    client of moto or of :class:`bench.fakes.FakeAws`) as the construct stores them."""
    from lambda_fn.contract import lambda_environment
    from localdev.profiles import store_profiles

    entries = profile_entries(task_definitions["default"], task_definitions["big"])
    stored = store_profiles(ssm, "bench", entries)
    built = lambda_environment(
        webhook_secret_arn=webhook_secret_arn,
        github_token_secret_arn=token_secret_arn,
        github_api_url=github_api_url,
        ecs_cluster=cluster,
        subnet_ids=[subnet_id],
        security_group_ids=[security_group_id],
        profiles_parameters=stored["RUNNER_PROFILES_PARAMETERS"].split(","),
        profiles_version=stored["RUNNER_PROFILES_VERSION"],
        idempotency_table=table,
        runner_name_prefix="bench",
        jit_secret_prefix="bench/jit",  # noqa: S106 - a name prefix, not a secret
        github_hook_parameter="",
        service_name=BASE_ENV["POWERTOOLS_SERVICE_NAME"],
        metrics_namespace=BASE_ENV["POWERTOOLS_METRICS_NAMESPACE"],
    )
    return {**BASE_ENV, **built}


def queued_payload(
    job_id: int, labels: tuple[str, ...] = MATCHING_LABELS, run_id: int | None = None
) -> dict[str, Any]:
    """A ``workflow_job`` ``queued`` payload shaped like GitHub's (``localdev.deliveries``)."""
    return workflow_job_payload(
        job_id,
        labels,
        repository=f"{OWNER}/{REPO}",
        run_id=run_id if run_id is not None else 10_000_000 + job_id,
    )


def api_event(body: bytes, delivery_id: str) -> dict[str, Any]:
    """An API Gateway REST proxy event for ``POST /webhook`` delivering ``body``, signed
    with :data:`WEBHOOK_SECRET`."""
    return webhook_event(
        body,
        WEBHOOK_SECRET,
        delivery_id=delivery_id,
        user_agent="GitHub-Hookshot/bench",
        request_id=f"req-{delivery_id}",
    )


def job_event(job_id: int, delivery_id: str, labels: tuple[str, ...] = MATCHING_LABELS) -> Any:
    """A signed API Gateway event delivering job ``job_id``."""
    body = json.dumps(queued_payload(job_id, labels)).encode()
    return api_event(body, delivery_id)


class NullWriter:
    """A text stream that drops what it is given (log lines are still formatted)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


@contextlib.contextmanager
def environment(values: Mapping[str, str], *, unset: tuple[str, ...] = ()) -> Iterator[None]:
    """Set ``values`` (and remove ``unset``) in ``os.environ``; restore everything after."""
    saved = dict(os.environ)
    os.environ.update(values)
    for name in unset:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def quiet_lambda_output() -> Iterator[None]:
    """Send the handler's log lines and EMF metrics to a null stream (still serialised)."""
    import sys

    from lambda_fn.observability import logger

    handler = logger.registered_handler
    null = NullWriter()
    previous = handler.setStream(null)  # type: ignore[attr-defined]
    stdout = sys.stdout
    sys.stdout = null
    try:
        yield
    finally:
        sys.stdout = stdout
        handler.setStream(previous)  # type: ignore[attr-defined]
