"""``detailed_tracing``: X-Ray subsegments around the dispatcher's remote calls.

Lambda's active tracing (always on) records every invocation: its segment, the
init phase and the total. Subsegments for the GitHub JIT call, ``RunTask`` and
the secret write need the X-Ray SDK in the function, and importing it adds to
every cold start (it builds its own botocore session and clients; the cost:
docs/performance.md, "Tracing: the trade"). So it is not in the Lambda asset: when an operator turns
``detailed_tracing`` on, this construct adds it as a layer built from the same
version lock (``tracing_layer/requirements.txt``) and sets
``TRACE_REMOTE_CALLS=true`` (read by ``lambda_fn/observability.py``).

A layer of our own rather than the public Powertools layer: the code comes from
``constraints.txt`` (the versions the tests ran), not from another account's
published layer, and needs no per-region ARN.
"""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .bundling import TRACING_REQUIREMENTS, layer_code

#: What the functions' environment gains with detailed tracing.
TRACING_ENVIRONMENT = {"TRACE_REMOTE_CALLS": "true"}


class DetailedTracing(Construct):
    """The X-Ray SDK layer for the dispatcher functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
    ) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "XRaySdk",
            code=layer_code(
                TRACING_REQUIREMENTS.parent, runtime=runtime, architecture=architecture
            ),
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
            description="AWS X-Ray SDK for the runner dispatcher's detailed_tracing",
        )
