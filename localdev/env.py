"""Point the in-process webhook handler at a local (or real) environment.

The handler reads ``os.environ`` and caches boto3 clients, secrets and its
idempotent launcher per process. Its caches are keyed by the values they depend
on, but a reset after changing the environment keeps a long-lived process (the
demo, ``serve``, a benchmark) from ever using a stale client or secret.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from lambda_fn.aws import reset_caches


@contextlib.contextmanager
def handler_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ`` for the block, then restore what was there."""
    saved = {name: os.environ.get(name) for name in env}
    # An inherited AWS_PROFILE would override the fake credentials of a local stack.
    profile = os.environ.pop("AWS_PROFILE", None) if "AWS_ACCESS_KEY_ID" in env else None
    os.environ.update(env)
    reset_caches()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if profile is not None:
            os.environ["AWS_PROFILE"] = profile
        reset_caches()
