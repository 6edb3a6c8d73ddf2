"""Size of the Lambda asset as deployed: ``lambda_fn/`` + its pip-installed requirements, zipped.

The dependencies are installed exactly as ``cdk deploy`` does, by
``fargate_runners.bundling.LocalPipBundling`` (same pip command, same platform and Python
version as the construct's ``LAMBDA_RUNTIME``/``LAMBDA_ARCHITECTURE``, same
pruning of what the runtime provides). They are cached under
``build/bench-asset/<sha256 of lambda_fn/requirements.txt>``; the current
``lambda_fn/`` sources are added at zip time, so code changes are always seen.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "lambda_fn"
CACHE = ROOT / "build" / "bench-asset"

#: What the Powertools public layer (``AWSLambdaPowertoolsPythonV3-*``) is assumed to
#: provide: Powertools built with its extras (tracer, parser, validation), i.e. these
#: top-level distributions. An assumption, not checked against a downloaded layer.
LAYER_PROVIDED = frozenset(
    {
        "aws_lambda_powertools",
        "pydantic",
        "pydantic_core",
        "annotated_types",
        "typing_extensions",
        "typing_inspection",
        "aws_xray_sdk",
        "wrapt",
        "jmespath",
        "fastjsonschema",
    }
)
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
_DIST_INFO = re.compile(r"^(?P<name>.+?)-\d[^/]*\.(dist-info|egg-info|data)$")


class PackageSkipped(RuntimeError):
    """The asset could not be built here (e.g. no package registry)."""


@dataclass
class AssetSize:
    """Zipped and unzipped bytes, per top-level distribution."""

    cached: bool
    python_version: str
    platform: str
    zipped: dict[str, int] = field(default_factory=dict)
    unzipped: dict[str, int] = field(default_factory=dict)
    files: int = 0
    zip_bytes: int = 0

    def summary(self) -> dict[str, Any]:
        without_layer_zipped = sum(
            size for name, size in self.zipped.items() if name not in LAYER_PROVIDED
        )
        without_layer_unzipped = sum(
            size for name, size in self.unzipped.items() if name not in LAYER_PROVIDED
        )
        top = sorted(self.unzipped, key=lambda name: self.unzipped[name], reverse=True)[:10]
        return {
            "status": "ok",
            "cached_dependencies": self.cached,
            "python_version": self.python_version,
            "platform": self.platform,
            "files": self.files,
            "zip_file_bytes": self.zip_bytes,
            "zipped_bytes": sum(self.zipped.values()),
            "unzipped_bytes": sum(self.unzipped.values()),
            "with_powertools_layer": {
                "zipped_bytes": without_layer_zipped,
                "unzipped_bytes": without_layer_unzipped,
                "assumed_layer_provides": sorted(LAYER_PROVIDED),
            },
            "top_packages": [
                {
                    "package": name,
                    "unzipped_bytes": self.unzipped[name],
                    "zipped_bytes": self.zipped[name],
                    "in_layer": name in LAYER_PROVIDED,
                }
                for name in top
            ],
        }


def requirements_key() -> str:
    return hashlib.sha256((SOURCE / "requirements.txt").read_bytes()).hexdigest()[:16]


def dependencies(cache: Path = CACHE) -> tuple[Path, dict[str, str], bool]:
    """The bundled dependencies (without ``lambda_fn``): (dir, meta, came from cache)."""
    target = cache / requirements_key()
    meta_file = target / ".bench-meta.json"
    if meta_file.is_file():
        meta: dict[str, str] = json.loads(meta_file.read_text(encoding="utf-8"))
        return target, meta, True

    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
    try:
        from aws_cdk import BundlingOptions, DockerImage

        from fargate_runners.bundling import (
            PLACEHOLDER_IMAGE,
            BundlingError,
            LocalPipBundling,
            pip_platform,
            python_version,
        )
        from fargate_runners.props import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
    except ImportError as exc:  # the CDK extra is not installed
        raise PackageSkipped(f"skipped: cdk bundling unavailable ({exc})") from None

    meta = {
        "python_version": python_version(LAMBDA_RUNTIME),
        "platform": pip_platform(LAMBDA_ARCHITECTURE),
    }
    bundler = LocalPipBundling(
        SOURCE, python_version=meta["python_version"], platform=meta["platform"]
    )
    staging = cache / f"{target.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        bundler.try_bundle(
            str(staging), BundlingOptions(image=DockerImage.from_registry(PLACEHOLDER_IMAGE))
        )
    except BundlingError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        first_line = str(exc).splitlines()[0] if str(exc) else "pip failed"
        raise PackageSkipped(f"skipped: no registry ({first_line})") from None
    shutil.rmtree(staging / SOURCE.name, ignore_errors=True)  # added fresh at zip time
    (staging / ".bench-meta.json").write_text(json.dumps(meta), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target, meta, False


def distribution(top_level: str) -> str:
    """``pydantic_core-2.1.dist-info`` -> ``pydantic_core``; ``typing_extensions.py`` -> itself."""
    match = _DIST_INFO.match(top_level)
    name = match.group("name") if match else top_level.removesuffix(".py")
    return name.lower().replace("-", "_").replace(".", "_")


def _files(root: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(_SKIP_SUFFIXES) or name == ".bench-meta.json":
                continue
            path = Path(dirpath) / name
            found.append((path, path.relative_to(root).as_posix()))
    return found


def measure(cache: Path = CACHE, zip_path: Path | None = None) -> AssetSize:
    """Zip (deflate, level 9) the asset and account for every entry."""
    deps, meta, cached = dependencies(cache)
    entries = [(path, f"{SOURCE.name}/{arc}") for path, arc in _files(SOURCE)] + _files(deps)
    size = AssetSize(
        cached=cached, python_version=meta["python_version"], platform=meta["platform"]
    )
    zipped: dict[str, int] = defaultdict(int)
    unzipped: dict[str, int] = defaultdict(int)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path, arcname in entries:
            archive.write(path, arcname)
        for info in archive.infolist():
            name = distribution(info.filename.split("/", 1)[0])
            zipped[name] += info.compress_size
            unzipped[name] += info.file_size
    size.zipped, size.unzipped = dict(zipped), dict(unzipped)
    size.files = len(entries)
    size.zip_bytes = buffer.getbuffer().nbytes
    if zip_path is not None:
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        zip_path.write_bytes(buffer.getvalue())
    return size


def run() -> dict[str, Any]:
    """The package-size summary, or ``{"status": "skipped: ..."}``."""
    try:
        return measure(zip_path=ROOT / "build" / "bench" / "lambda-asset.zip").summary()
    except PackageSkipped as exc:
        return {"status": str(exc)}
