"""Lambda asset bundling without Docker.

The webhook function's asset is the ``lambda_fn/`` package plus its
dependencies (``lambda_fn/requirements.txt``) installed by pip for the
Lambda's Python version and CPU architecture (``--platform manylinux2014_*
--only-binary=:all:``), so compiled wheels (``pydantic_core``,
``charset_normalizer``) match the Lambda runtime, not the build machine.

``boto3``/``botocore``/``s3transfer`` come with the Lambda runtime; pip pulls
``botocore`` in through ``aws-xray-sdk``, so it is removed from the bundle
(tens of MB, and a bundled copy would shadow the runtime's matching boto3).

Every version in the bundle is the one the test-suite ran with: pip installs
under ``constraints.txt`` (the repository's lock of every transitive
dependency), so a dependency released after the last test run cannot slip in.

Docker is never used: :class:`LocalPipBundling` either succeeds or raises,
so CDK never falls back to the placeholder image.

pip runs once per lock, not once per synth: what it installs is cached per
:meth:`LocalPipBundling.cache_key` (a content hash of every input of the install) in a
user-level cache (:mod:`fargate_runners.bundle_cache`), and copied from there afterwards,
so a second synth takes seconds and needs no package index. The package's own source is
copied fresh on every synth.

The same bundler builds the optional tracing layer (``layer_code``): only the
requirements, installed under ``python/`` as Lambda layers expect, without
their dependencies (each one the layer needs is listed itself).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import cast

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from .bundle_cache import CacheError, cache_root, ensure_entry

__all__ = [
    "BUNDLER_VERSION",
    "PLACEHOLDER_IMAGE",
    "RUNTIME_PROVIDED",
    "TRACING_REQUIREMENTS",
    "BundlingError",
    "LocalPipBundling",
    "lambda_code",
    "layer_code",
    "pip_platform",
    "python_version",
]

#: Never pulled: local bundling raises instead of returning False.
PLACEHOLDER_IMAGE = "local-bundling-only/no-docker-fallback"

#: The lock every install (tests, CI, the Lambda bundle) uses.
CONSTRAINTS = Path(__file__).resolve().parent / "constraints.txt"

#: What the ``detailed_tracing`` layer holds: the X-Ray SDK the Powertools tracer needs.
TRACING_REQUIREMENTS = Path(__file__).resolve().parent / "tracing_layer" / "requirements.txt"

#: Top-level names (packages, their dist-info and scripts) the Lambda runtime provides.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "bin")

#: Part of every cache key: bump it when what ends up in a bundle changes for the same
#: inputs (a change to the pip command or to :data:`RUNTIME_PROVIDED` changes the key by
#: itself).
BUNDLER_VERSION = "1"

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache")


class BundlingError(RuntimeError):
    """Local bundling of the Lambda asset failed."""


def python_version(runtime: lambda_.Runtime) -> str:
    """``python3.14`` -> ``3.14``."""
    name = runtime.name
    if not name.startswith("python"):
        raise ValueError(f"{name} is not a Python Lambda runtime")
    return name.removeprefix("python")


def pip_platform(architecture: lambda_.Architecture) -> str:
    """The manylinux platform tag for a Lambda architecture."""
    arch = architecture.name
    if arch == lambda_.Architecture.ARM_64.name:
        return "manylinux2014_aarch64"
    if arch == lambda_.Architecture.X86_64.name:
        return "manylinux2014_x86_64"
    raise ValueError(f"unsupported Lambda architecture {arch}")


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """Copies the package into ``<output>/<package>/`` and pip-installs its requirements.

    With ``layer=True``: no package, the requirements alone (``--no-deps``) under
    ``<output>/python/``.
    """

    def __init__(
        self,
        source_dir: Path,
        *,
        python_version: str,
        platform: str,
        constraints: Path | None = CONSTRAINTS,
        layer: bool = False,
    ) -> None:
        self.source_dir = Path(source_dir).resolve()
        self.python_version = python_version
        self.platform = platform
        self.constraints = constraints
        self.layer = layer

    @property
    def requirements(self) -> Path:
        return self.source_dir / "requirements.txt"

    def pip_command(self, output_dir: str) -> list[str]:
        pinned = ["-c", str(self.constraints)] if self.constraints is not None else []
        if self.layer:
            pinned.append("--no-deps")
        return [
            sys.executable, "-m", "pip", "install",
            "--target", output_dir,
            "-r", str(self.requirements),
            *pinned,
            "--platform", self.platform,
            "--python-version", self.python_version,
            "--implementation", "cp",
            "--only-binary=:all:",
            "--no-compile",
            "--quiet",
            "--disable-pip-version-check",
        ]  # fmt: skip

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        try:
            self._bundle(Path(output_dir))
        except BundlingError:
            raise
        except Exception as exc:  # pragma: no cover - defensive: always a clear message
            raise BundlingError(
                f"local bundling of {self.source_dir} failed ({exc}); Docker bundling is "
                "not supported by this app"
            ) from exc
        return True

    def cache_key(self) -> str:
        """SHA-256 of everything that decides what pip installs, and how it is pruned.

        The requirements' and the lock's contents (not their paths), the target Python
        and platform, the pip command's options, pip's own version, the pruned names and
        :data:`BUNDLER_VERSION`. The package's source is not part of it: it is not cached.
        """
        placeholders = {
            sys.executable: "<python>",
            str(self.requirements): "<requirements>",
            str(self.constraints): "<constraints>",
            "<target>": "<target>",
        }
        material = {
            "bundler": BUNDLER_VERSION,
            "requirements": _sha256(self.requirements),
            "constraints": _sha256(self.constraints) if self.constraints is not None else None,
            "python_version": self.python_version,
            "platform": self.platform,
            "layer": self.layer,
            "command": [placeholders.get(arg, arg) for arg in self.pip_command("<target>")],
            "pip": _version("pip"),
            "runtime_provided": list(RUNTIME_PROVIDED),
        }
        encoded = json.dumps(material, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:40]

    def _bundle(self, output: Path) -> None:
        if not self.layer and not (self.source_dir / "__init__.py").is_file():
            raise BundlingError(f"{self.source_dir} is not a Python package (no __init__.py)")
        if self.constraints is not None and not self.constraints.is_file():
            raise BundlingError(f"the version lock {self.constraints} is missing")
        if self.layer:
            output = output / "python"
            output.mkdir(parents=True, exist_ok=True)
        else:
            package_dir = output / self.source_dir.name
            shutil.copytree(self.source_dir, package_dir, ignore=_IGNORED, dirs_exist_ok=True)
        if self.requirements.is_file():
            try:
                installed = ensure_entry(cache_root(), self.cache_key(), self._install)
            except CacheError as exc:
                raise BundlingError(str(exc)) from None
            shutil.copytree(installed, output, dirs_exist_ok=True)
        _prune(output)

    def _install(self, target: Path) -> None:
        """pip-install the requirements into the empty directory ``target``, pruned."""
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            self.pip_command(str(target)),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BundlingError(
                f"pip could not install {self.requirements} for Python "
                f"{self.python_version} on {self.platform} (exit {result.returncode}); "
                "a package index must be reachable for the first synth of a new lock "
                f"(later synths use the cache in {cache_root()}).\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        _prune(target)


def _prune(output: Path) -> None:
    """Remove what the Lambda runtime provides, and byte-code caches."""
    for entry in output.iterdir():
        top = entry.name.split("-", 1)[0].lower()
        if top in RUNTIME_PROVIDED or entry.name == "__pycache__":
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    for cache in list(output.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "none"


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def lambda_code(
    source_dir: Path, *, runtime: lambda_.Runtime, architecture: lambda_.Architecture
) -> lambda_.Code:
    """A Lambda ``Code`` asset for ``source_dir`` bundled locally (no Docker)."""
    return _code(source_dir, runtime=runtime, architecture=architecture, layer=False)


def layer_code(
    requirements_dir: Path, *, runtime: lambda_.Runtime, architecture: lambda_.Architecture
) -> lambda_.Code:
    """A layer ``Code`` asset: ``requirements_dir/requirements.txt`` under ``python/``."""
    return _code(requirements_dir, runtime=runtime, architecture=architecture, layer=True)


def _code(
    source_dir: Path,
    *,
    runtime: lambda_.Runtime,
    architecture: lambda_.Architecture,
    layer: bool,
) -> lambda_.Code:
    version = python_version(runtime)
    platform = pip_platform(architecture)
    bundler = LocalPipBundling(source_dir, python_version=version, platform=platform, layer=layer)
    return lambda_.Code.from_asset(
        str(source_dir),
        exclude=["**/__pycache__", "**/*.pyc", "**/*.pyo", ".pytest_cache", ".mypy_cache"],
        bundling=BundlingOptions(
            image=DockerImage.from_registry(PLACEHOLDER_IMAGE),
            # jsii calls try_bundle(output_dir, options) positionally; the generated
            # Protocol spells options as keyword arguments, hence the cast.
            local=cast(ILocalBundling, bundler),
            # Not used by the local bundler; here so the asset hash changes with them.
            environment={
                "PIP_PLATFORM": platform,
                "PYTHON_VERSION": version,
                "CONSTRAINTS_SHA256": _sha256(CONSTRAINTS),
            },
        ),
    )
