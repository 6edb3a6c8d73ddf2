"""CDK entry point: ``python -m cdk.app`` (cdk.json) or ``python cdk/app.py``.

Honours ``CDK_OUTDIR``. Needs no AWS credentials: the stack is
environment-agnostic and does no lookups.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from fargate_runners.config import ConfigError, load_config
from fargate_runners.stack import FargateRunnersStack

__all__ = ["build_app", "main"]


CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def feature_flags(path: Path = CDK_JSON) -> dict[str, object]:
    """The CDK feature flags ``cdk.json`` sets (every flag CDK recommends for new apps).

    The CLI passes them to the app itself; tests and tools that call :func:`build_app`
    get the same ones, so what they check is what ``cdk deploy`` deploys.
    """
    context = json.loads(path.read_text())["context"]
    return {key: value for key, value in context.items() if key.startswith("@aws-cdk")}


def build_app(
    context: dict[str, object] | None = None,
    *,
    outdir: str | None = None,
    nag: bool = True,
) -> tuple[cdk.App, FargateRunnersStack]:
    """The app with its one stack; cdk-nag AwsSolutions and Serverless checks when ``nag``."""
    app = cdk.App(context={**feature_flags(), **(context or {})}, outdir=outdir)
    config = load_config(app.node.get_all_context())
    stack = FargateRunnersStack(app, "FargateRunners", config=config)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app, stack


def main() -> None:
    """Synthesize; a configuration error prints one line per problem (no traceback), exit 2."""
    # Nothing in the stack is region-specific; a region only keeps SDK-based code quiet.
    os.environ.setdefault("CDK_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    try:
        app, _ = build_app(outdir=os.environ.get("CDK_OUTDIR"))
    except ConfigError as error:
        count = len(error.problems)
        plural = "s" * (count > 1)
        print(f"configuration: {count} problem{plural} (cdk.json context, -c):", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    app.synth()


if __name__ == "__main__":
    main()
