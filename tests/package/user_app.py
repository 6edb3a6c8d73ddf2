"""A team's own CDK app using the installed library: what `make package-check` runs.

Run from a directory outside the repository, with a virtualenv that has only the wheel
(``pip install "fargate_gha_runners-*.whl[cdk]"``). It synthesizes two instances in one
stack and a third in a second stack, then checks what a deploy would need: the Lambda asset
holds the handler and its dependencies at the versions of the wheel's own lock, and no
two instances share a physical name. Exits non-zero, naming the problem, otherwise.

``make package-check`` runs it twice, the second time with ``cdk.out`` removed and no
package index reachable: the Lambda bundle then comes from the bundle cache the first run
filled (``fargate_runners/bundle_cache.py``). ``cli_check.py`` then reads its ``Team``
stack.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import aws_cdk as cdk

from fargate_runners import FargateRunners, FargateRunnersProps, RunnerProfile

OUT = Path("cdk.out")


def main() -> None:
    import fargate_runners

    here = Path(fargate_runners.__file__).resolve()
    if "site-packages" not in here.parts:
        sys.exit(f"fargate_runners was imported from {here}, not from the installed wheel")

    app = cdk.App(outdir=str(OUT))
    team = cdk.Stack(app, "Team")
    profiles = [RunnerProfile(name="default", labels=("self-hosted", "linux", "arm64"))]
    deploy = [
        RunnerProfile(
            name="deploy",
            labels=("self-hosted", "linux", "deploy"),
            allowed_repositories=("acme/app",),
            allowed_refs=("refs/heads/main",),
            allowed_events=("push",),
        )
    ]
    instances = [
        FargateRunners(team, "Ci", FargateRunnersProps(profiles=profiles)),
        FargateRunners(team, "Deploy", FargateRunnersProps(profiles=deploy)),
        FargateRunners(cdk.Stack(app, "Other"), "Ci", FargateRunnersProps(profiles=profiles)),
    ]
    app.synth()

    check_names(instances)
    check_lambda_asset()
    print("package check: OK (3 instances, 2 stacks; Lambda asset complete and pinned)")


def check_names(instances: list[FargateRunners]) -> None:
    seen: dict[str, str] = {}
    for runners in instances:
        for name in (
            runners.cluster_physical_name,
            runners.jit_secret_prefix,
            runners.runner_name_prefix,
            *(td.family for td in runners.task_definitions.values()),
        ):
            if name in seen:
                sys.exit(f"{runners.node.path} and {seen[name]} share the name {name!r}")
            seen[name] = runners.node.path


def pinned() -> dict[str, str]:
    lock = resources.files("fargate_runners").joinpath("constraints.txt").read_text()
    pins = {}
    for line in lock.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[normalize(name)] = version.strip()
    return pins


def normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def check_lambda_asset() -> None:
    assets = [p for p in OUT.glob("asset.*") if (p / "lambda_fn" / "app.py").is_file()]
    if not assets:
        sys.exit("no Lambda asset holds lambda_fn/app.py")
    pins = pinned()
    for asset in assets:
        dists = {}
        for info in asset.glob("*.dist-info"):
            name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
            dists[normalize(name)] = version
        for needed in ("aws-lambda-powertools", "requests", "urllib3"):
            if needed not in dists:
                sys.exit(f"{asset}: the Lambda asset lacks {needed}")
        for unwanted in ("pydantic", "aws-xray-sdk", "boto3", "botocore"):
            if unwanted in dists:
                sys.exit(f"{asset}: the Lambda asset should not carry {unwanted}")
        wrong = {n: (v, pins.get(n)) for n, v in dists.items() if pins.get(n) != v}
        if wrong:
            sys.exit(f"{asset}: bundled versions differ from the lock: {json.dumps(wrong)}")


if __name__ == "__main__":
    main()
