"""CDK entry point: ``python -m cdk.app`` (cdk.json) or ``python cdk/app.py``.

Honours ``CDK_OUTDIR``. Needs no AWS credentials: the stack is
environment-agnostic and does no lookups.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from fargate_runners.config import load_config
from fargate_runners.stack import FargateRunnersStack

__all__ = ["build_app", "main"]


def build_app(
    context: dict[str, object] | None = None,
    *,
    outdir: str | None = None,
    nag: bool = True,
) -> tuple[cdk.App, FargateRunnersStack]:
    """The app with its one stack; cdk-nag AwsSolutions checks when ``nag``."""
    app = cdk.App(context=context, outdir=outdir)
    config = load_config(app.node.get_all_context())
    stack = FargateRunnersStack(app, "FargateRunners", config=config)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> None:
    # Nothing in the stack is region-specific; a region only keeps SDK-based code quiet.
    os.environ.setdefault("CDK_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    app, _ = build_app(outdir=os.environ.get("CDK_OUTDIR"))
    app.synth()


if __name__ == "__main__":
    main()
