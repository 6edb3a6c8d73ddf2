"""boto3 clients, created on first use and reused while the container is warm.

Clients are cached per (service, region, endpoint) so a process whose
environment changes (tests, the local demo pointing at moto) never talks to a
stale endpoint. boto3 itself is imported here, lazily: a cold start pays for it
only on the first request that needs AWS.
"""

from __future__ import annotations

import os
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
