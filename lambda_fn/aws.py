"""boto3 clients, created on first use and reused while the container is warm.

Clients are cached per (service, region, endpoint) so a process whose
environment changes (tests, the local demo pointing at moto) never talks to a
stale endpoint. boto3 itself is imported here, lazily: a cold start pays for it
only on the first request that needs AWS.

:func:`reset_caches` is the one reset of every per-process cache of ``lambda_fn`` (these
clients, the parsed settings, secrets, idempotent launchers, GitHub App tokens, the tracer
and the HTTP session): a process that changes what they depend on (the tests, local mode,
the benchmarks) calls it instead of picking which to clear, so none is forgotten;
``tests/unit/test_caches.py`` fails when a module gains a cache it does not clear. Only
modules already imported are touched: an unimported module has nothing cached, and
importing it here would add its import time to what a benchmark measures.
"""

from __future__ import annotations

import os
import sys
import threading
from functools import lru_cache
from typing import Any

_LOCK = threading.Lock()


def region() -> str | None:
    """The current region (Lambda sets ``AWS_REGION``)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def client(service: str) -> Any:
    """A shared boto3 client for ``service`` in the current region/endpoint."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    with _LOCK:  # a boto3 Session must not create clients from two threads at once
        return _client(service, region(), endpoint)


@lru_cache(maxsize=1)
def _session() -> Any:
    """One Session per process: its loader parses botocore's endpoint data once, not per
    client (the saving: docs/performance.md, "Findings and what was done")."""
    import boto3

    return boto3.session.Session()


@lru_cache(maxsize=16)
def _client(service: str, region: str | None, endpoint: str | None) -> Any:
    from botocore.config import Config

    config = Config(
        # "standard" retries throttling and 5xx with backoff; keep it short: GitHub waits 10 s.
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=5,
        tcp_keepalive=True,
    )
    return _session().client(service, region_name=region, endpoint_url=endpoint, config=config)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def reset() -> None:
    """Forget cached clients (tests, or after the process's credentials change)."""
    _client.cache_clear()
    _session.cache_clear()


def reset_caches() -> None:
    """Forget every cached client, setting, secret, launcher, App token, tracer and session.

    Not cleared, on purpose: ``lambda_fn.policy``'s compiled patterns (a pure function of
    their arguments) and the per-thread sessions of ``lambda_fn.github.thread_session``
    (each belongs to its thread, which ends with its batch).
    """
    loaded = sys.modules
    reset()
    if "lambda_fn.config" in loaded:
        from lambda_fn import config

        config._parse_cached.cache_clear()
    if "lambda_fn.secrets" in loaded:
        from lambda_fn import secrets

        secrets.reset()
    if "lambda_fn.idempotent_launch" in loaded:
        from lambda_fn import idempotent_launch

        idempotent_launch.reset()
    if "lambda_fn.github_auth" in loaded:
        from lambda_fn import github_auth

        github_auth.reset()
    if "lambda_fn.github" in loaded:
        from lambda_fn import github

        github.shared_session.cache_clear()
    if "lambda_fn.observability" in loaded:
        from lambda_fn import observability

        observability._tracer.cache_clear()
