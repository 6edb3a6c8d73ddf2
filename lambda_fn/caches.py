"""The one reset of every per-process cache of the Lambdas' code.

A warm container keeps boto3 clients, the parsed settings, secrets, idempotent launchers,
GitHub App tokens and the HTTP session between invocations (each module caches its own,
keyed by what it depends on). A process that changes what they depend on (the tests, the
local mode, the benchmarks) calls :func:`reset_caches` instead of picking which ones to
clear, so none is forgotten; ``tests/unit/test_caches.py`` fails when a module gains a
cache this does not clear.

Only modules already imported are touched: an unimported module has nothing cached,
and importing it here would add its import time to what a benchmark measures.
"""

from __future__ import annotations

import sys

__all__ = ["reset_caches"]


def reset_caches() -> None:
    """Forget every cached client, setting, secret, launcher, App token, tracer and session.

    Not cleared, on purpose: ``lambda_fn.policy``'s compiled patterns (a pure function of
    their arguments) and the per-thread sessions of ``lambda_fn.github.thread_session``
    (each belongs to its thread, which ends with its batch).
    """
    loaded = sys.modules
    if "lambda_fn.aws" in loaded:
        from lambda_fn import aws

        aws.reset()
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
