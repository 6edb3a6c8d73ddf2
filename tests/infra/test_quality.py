"""cdk-nag AwsSolutions, cfn-lint, the Lambda asset and the app entry points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import NO_BUNDLING, REPO_ROOT, Synth, findings

pytestmark = pytest.mark.infra


# -- cdk-nag -----------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["main_synth", "existing_vpc_synth"])
def test_cdk_nag_reports_nothing_unacknowledged(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    synth: Synth = request.getfixturevalue(fixture)  # its synth would have raised on errors
    report = synth.validation_report
    assert findings(report) == set(), json.dumps(report, indent=1)[:4000]


def test_every_acknowledgment_matches_a_finding(audit_synth: Synth) -> None:
    """With acknowledgments switched off, the findings are exactly the acknowledged ones."""
    found = {(path.rsplit("/Resource", 1)[0], rule) for path, rule, _ in findings(
        audit_synth.validation_report
    )}  # fmt: skip
    acknowledged = set()
    for scope, rule in audit_synth.acknowledgments:
        matches = {f for f in found if f[1] == rule and f[0].startswith(scope)}
        assert matches, f"stale acknowledgment {rule} on {scope}"
        acknowledged |= matches
    assert found - acknowledged == set()
    assert len(audit_synth.acknowledgments) == len(set(audit_synth.acknowledgments))


def test_acknowledgments_are_narrow(audit_synth: Synth) -> None:
    rules = sorted(rule for _, rule in audit_synth.acknowledgments)
    for rule in rules:
        if rule.startswith(("AwsSolutions-IAM5", "AwsSolutions-IAM4")):
            assert "[" in rule, f"{rule} must name the finding"
    # Expected set (two profiles): revisions of each family, tasks of the cluster, X-Ray.
    iam5 = [r for r in rules if r.startswith("AwsSolutions-IAM5")]
    assert len(iam5) == 4, iam5
    assert sum(":task-definition/RunnersTest-runner-" in r for r in iam5) == 2


# -- cfn-lint ------------------------------------------------------------------------


def cfn_lint() -> list[str]:
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    if exe is None:
        pytest.skip("cfn-lint is not installed")
    return [exe]


@pytest.mark.parametrize("fixture", ["main_synth", "existing_vpc_synth"])
def test_cfn_lint_clean(request: pytest.FixtureRequest, fixture: str) -> None:
    synth: Synth = request.getfixturevalue(fixture)
    result = subprocess.run(
        [*cfn_lint(), "-i", "W3005", "--", str(synth.template_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the Lambda asset ------------------------------------------------------------------


def asset_dir(synth: Synth) -> Path:
    (function,) = synth.resources("AWS::Lambda::Function").values()
    key = function["Properties"]["Code"]["S3Key"]
    path = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    assert path.is_dir(), sorted(p.name for p in synth.outdir.iterdir())
    return path


def test_lambda_asset_contents(main_synth: Synth) -> None:
    if not (REPO_ROOT / "lambda_fn" / "app.py").is_file():
        pytest.skip("lambda_fn/app.py does not exist yet")
    bundle = asset_dir(main_synth)
    assert (bundle / "lambda_fn" / "app.py").is_file()
    assert (bundle / "lambda_fn" / "__init__.py").is_file()
    for package in ("aws_lambda_powertools", "requests", "pydantic", "aws_xray_sdk"):
        assert (bundle / package).is_dir(), package
    core = list((bundle / "pydantic_core").glob("_pydantic_core.*.so"))
    assert len(core) == 1, core
    assert "aarch64" in core[0].name
    assert "cpython-314" in core[0].name  # the Lambda runtime's Python, not the build machine's
    # The Lambda runtime provides boto3/botocore; no byte code from the build machine.
    for provided in ("boto3", "botocore", "s3transfer", "bin"):
        assert not (bundle / provided).exists(), provided
    assert not list(bundle.rglob("__pycache__"))
    assert not list(bundle.rglob("*.pyc"))
    for so in bundle.rglob("*.so"):
        assert "x86_64" not in so.name, so


def test_lambda_asset_size(main_synth: Synth) -> None:
    bundle = asset_dir(main_synth)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert size < 50 * 1024 * 1024  # unzipped; Lambda's limit is 250 MB


# -- entry points ------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        CDK_DISABLE_CLI_TELEMETRY="true",
        CDK_CONTEXT_JSON=json.dumps(NO_BUNDLING),
        **extra,
    )
    return env


def test_app_runs_as_a_script_without_credentials(tmp_path: Path) -> None:
    """``CDK_OUTDIR=... python cdk/app.py`` from another directory, no AWS_* variables."""
    outdir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "cdk" / "app.py")],
        cwd=tmp_path,
        env=clean_env(CDK_OUTDIR=str(outdir)),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((outdir / "FargateRunners.template.json").read_text())
    assert "WebhookUrl" in template["Outputs"]
    assert findings(json.loads((outdir / "validation-report.json").read_text())) == set()
