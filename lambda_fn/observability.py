"""Logger, metrics and tracing shared by every module (Powertools).

Service name and metrics namespace come from the standard Powertools
variables (``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``),
with defaults so the package also works outside the stack.

Tracing the two remote calls (GitHub JIT config, ECS ``RunTask``) and the
secret write as X-Ray subsegments is opt-in: ``TRACE_REMOTE_CALLS=true``
(the stack sets it from its ``detailed_tracing`` setting). The Powertools
``Tracer`` imports the X-Ray SDK, whose global recorder builds its own botocore
session and clients on every cold start (the cost: docs/performance.md, "Tracing:
the trade"). Without it, Lambda's active
tracing still records each invocation (the function segment and its init
time), just not what happens inside. When on, the tracer is built on the
first traced call, never at import; ``POWERTOOLS_TRACE_DISABLED=true`` still
turns it off.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "runner-webhook")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "FargateRunners")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

F = TypeVar("F", bound=Callable[..., Any])


_TRUE = ("1", "true")


def remote_calls_traced() -> bool:
    """``TRACE_REMOTE_CALLS`` is on and Powertools' own switch is not off."""
    return (
        os.environ.get("TRACE_REMOTE_CALLS", "false").lower() in _TRUE
        and os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in _TRUE
    )


@functools.cache
def _tracer() -> Any:
    if not remote_calls_traced():
        return None
    try:
        from aws_lambda_powertools import Tracer

        return Tracer(service=SERVICE)
    except ImportError as exc:  # the X-Ray SDK layer is missing: run untraced, say so once
        logger.warning(
            "TRACE_REMOTE_CALLS is on but the X-Ray SDK is missing", extra={"error": str(exc)}
        )
        return None


def traced(fn: F) -> F:
    """Trace ``fn`` as an X-Ray subsegment (response not captured: it may hold secrets)."""
    wrapped: Callable[..., Any] | None = None

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal wrapped
        if wrapped is None:
            tracer = _tracer()
            wrapped = fn if tracer is None else tracer.capture_method(capture_response=False)(fn)
        return wrapped(*args, **kwargs)

    return call  # type: ignore[return-value]


def count(name: str, dimension: tuple[str, str] | None = None, value: float = 1) -> None:
    """Emit one count metric, optionally with its own dimension (e.g. ``("reason", "labels")``)."""
    _emit(name, "Count", value, dimension)


def milliseconds(name: str, value: float) -> None:
    """Emit one latency figure."""
    _emit(name, "Milliseconds", value, None)


def seconds(name: str, value: float, dimension: tuple[str, str]) -> None:
    """Emit one duration in seconds with its own dimension (e.g. ``("profile", "default")``)."""
    _emit(name, "Seconds", value, dimension)


def _emit(name: str, unit: str, value: float, dimension: tuple[str, str] | None) -> None:
    """On the shared ``metrics`` (dimension ``service``), or as a ``single_metric`` with
    ``service`` plus its own dimension (fargate_runners/dashboard.py: what widgets expect)."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    if dimension is None:
        metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)
        return
    with single_metric(name=name, unit=MetricUnit(unit), value=value, namespace=NAMESPACE) as m:
        m.add_dimension(name=dimension[0], value=dimension[1])
