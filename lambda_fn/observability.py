"""Logger, metrics and tracing shared by every module (Powertools).

Service name and metrics namespace come from the standard Powertools
variables (``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``),
with defaults so the package also works outside the stack.

The Powertools ``Tracer`` imports the X-Ray SDK as soon as it is built, which
costs more than importing boto3 itself. It is therefore built on the first
traced call, never at import, and not at all when tracing is disabled
(``POWERTOOLS_TRACE_DISABLED=true``).
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


@functools.cache
def _tracer() -> Any:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


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
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    if dimension is None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as m:
        m.add_dimension(name=dimension[0], value=dimension[1])


def milliseconds(name: str, value: float) -> None:
    """Emit one latency figure."""
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
