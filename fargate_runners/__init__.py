"""Ephemeral GitHub Actions runners on AWS Fargate, as a CDK construct library.

Use it in your own CDK app::

    from fargate_runners import FargateRunners, FargateRunnersProps, RunnerProfile

    FargateRunners(stack, "Runners", FargateRunnersProps(
        profiles=[RunnerProfile(name="default", labels=("self-hosted", "linux", "arm64"))],
    ))

or deploy the repository's app (``cdk.json`` -> :func:`load_config` ->
:class:`FargateRunnersStack`). Modules, one job each:

- :mod:`fargate_runners.config`: ``cdk.json`` context / construct props -> validated config.
- :mod:`fargate_runners.construct`: :class:`FargateRunners`, the construct.
- :mod:`fargate_runners.stack`: :class:`FargateRunnersStack`, the construct plus a VPC,
  secrets, alarm topic and the outputs the CLI reads.
- :mod:`fargate_runners.bundling`: the webhook Lambda asset, bundled with pip under the
  package's own version lock (``constraints.txt``, shipped in the wheel), no Docker.
- :mod:`fargate_runners.runner_files`: what the runner task gets (``runner/``, shipped in
  the wheel) besides its stock image.

The construct classes are imported lazily: ``fargate_runners.config`` (used by the CLI and
local mode) must not pull in ``aws_cdk``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ConfigError, RunnerProfile, RunnersConfig, load_config
    from .construct import FargateRunners, FargateRunnersProps
    from .stack import FargateRunnersStack

__all__ = [
    "ConfigError",
    "FargateRunners",
    "FargateRunnersProps",
    "FargateRunnersStack",
    "RunnerProfile",
    "RunnersConfig",
    "load_config",
]

_HOME = {
    "ConfigError": ".config",
    "RunnerProfile": ".config",
    "RunnersConfig": ".config",
    "load_config": ".config",
    "FargateRunners": ".construct",
    "FargateRunnersProps": ".construct",
    "FargateRunnersStack": ".stack",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOME[name], __name__), name)
