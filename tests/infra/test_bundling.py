"""Local (Docker-free) bundling of the Lambda asset: failure modes, no synth."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import BundlingOptions, DockerImage
from aws_cdk import aws_lambda as lambda_

from fargate_runners.bundling import (
    CONSTRAINTS,
    PLACEHOLDER_IMAGE,
    BundlingError,
    LocalPipBundling,
    pip_platform,
    python_version,
)
from fargate_runners.props import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME

pytestmark = pytest.mark.infra

OPTIONS = BundlingOptions(image=DockerImage.from_registry(PLACEHOLDER_IMAGE))


def test_runtime_and_platform() -> None:
    assert python_version(LAMBDA_RUNTIME) == "3.14"
    assert pip_platform(LAMBDA_ARCHITECTURE) == "manylinux2014_aarch64"
    assert pip_platform(lambda_.Architecture.X86_64) == "manylinux2014_x86_64"
    with pytest.raises(ValueError, match="not a Python"):
        python_version(lambda_.Runtime.NODEJS_22_X)


def test_pip_command_targets_the_lambda_platform(tmp_path: Path) -> None:
    bundler = LocalPipBundling(tmp_path, python_version="3.14", platform="manylinux2014_aarch64")
    command = bundler.pip_command("/out")
    assert command[1:4] == ["-m", "pip", "install"]
    joined = " ".join(command)
    for part in (
        "--target /out", "--platform manylinux2014_aarch64", "--python-version 3.14",
        "--implementation cp", "--only-binary=:all:", "--quiet", "--disable-pip-version-check",
        f"-c {CONSTRAINTS}",
    ):  # fmt: skip
        assert part in joined


def test_layer_mode_installs_only_what_is_listed(tmp_path: Path) -> None:
    """The tracing layer: no --no-deps would drag botocore's dependencies in."""
    plain = LocalPipBundling(tmp_path, python_version="3.14", platform="manylinux2014_aarch64")
    layer = LocalPipBundling(
        tmp_path, python_version="3.14", platform="manylinux2014_aarch64", layer=True
    )
    assert "--no-deps" not in plain.pip_command("/out")
    assert "--no-deps" in layer.pip_command("/out")


def test_missing_lock_raises(tmp_path: Path) -> None:
    package = make_package(tmp_path, requirements="requests\n")
    bundler = LocalPipBundling(
        package,
        python_version="3.14",
        platform="manylinux2014_aarch64",
        constraints=tmp_path / "missing.txt",
    )
    with pytest.raises(BundlingError, match="version lock"):
        bundler.try_bundle(str(tmp_path / "out"), OPTIONS)


def make_package(root: Path, requirements: str | None) -> Path:
    package = root / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text("def handler(event, context):\n    return {}\n")
    (package / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    if requirements is not None:
        (package / "requirements.txt").write_text(requirements)
    return package


def test_copies_package_without_caches(tmp_path: Path) -> None:
    package = make_package(tmp_path, requirements=None)
    out = tmp_path / "out"
    out.mkdir()
    bundler = LocalPipBundling(package, python_version="3.14", platform="manylinux2014_aarch64")
    assert bundler.try_bundle(str(out), OPTIONS) is True
    assert (out / "pkg" / "app.py").is_file()
    assert not (out / "pkg" / "__pycache__").exists()


def test_pip_failure_raises_instead_of_falling_back_to_docker(tmp_path: Path) -> None:
    package = make_package(tmp_path, requirements="this is not a requirement ===\n")
    out = tmp_path / "out"
    out.mkdir()
    bundler = LocalPipBundling(package, python_version="3.14", platform="manylinux2014_aarch64")
    with pytest.raises(BundlingError, match="pip could not install"):
        bundler.try_bundle(str(out), OPTIONS)


def test_not_a_package_raises(tmp_path: Path) -> None:
    bundler = LocalPipBundling(tmp_path, python_version="3.14", platform="manylinux2014_aarch64")
    with pytest.raises(BundlingError, match="not a Python package"):
        bundler.try_bundle(str(tmp_path / "out"), OPTIONS)
