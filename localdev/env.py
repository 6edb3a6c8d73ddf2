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


def reset_handler_caches() -> None:
    """Drop the handler's cached clients, secrets, launchers, GitHub App and HTTP session,
    and parsed settings: what a new Lambda execution environment starts without. The one
    reset the local mode, the benchmarks and the tests use."""
    from lambda_fn import aws, dispatch, github, github_auth, secrets
    from lambda_fn import config as handler_config

    aws.reset()
    secrets.reset()
    dispatch.reset()
    github_auth.reset()
    handler_config._parse_cached.cache_clear()
    github.shared_session.cache_clear()


@contextlib.contextmanager
def handler_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ`` for the block, then restore what was there."""
    saved = {name: os.environ.get(name) for name in env}
    # An inherited AWS_PROFILE would override the fake credentials of a local stack.
    profile = os.environ.pop("AWS_PROFILE", None) if "AWS_ACCESS_KEY_ID" in env else None
    os.environ.update(env)
    reset_handler_caches()
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
        reset_handler_caches()
