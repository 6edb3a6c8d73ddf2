"""Local (Docker-free) bundling of the Lambda asset: failure modes, no synth."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aws_cdk import BundlingOptions, DockerImage
from aws_cdk import aws_lambda as lambda_

from fargate_runners.bundle_cache import CACHE_DIR_ENV
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

#: Nothing answers here: pip cannot reach any index.
OFFLINE = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_NO_INDEX": "1"}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own bundle cache (never the user's)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    return cache


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


def bundler_for(package: Path, constraints: Path = CONSTRAINTS) -> LocalPipBundling:
    return LocalPipBundling(
        package,
        python_version="3.14",
        platform="manylinux2014_aarch64",
        constraints=constraints,
    )


def bundle(bundler: LocalPipBundling, out: Path) -> Path:
    out.mkdir()
    assert bundler.try_bundle(str(out), OPTIONS) is True
    return out


@pytest.fixture(scope="module")
def idna_bundled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the bundle, the cache it filled) of a first bundling of a package that requires
    ``idna``: pip installs once for the tests below, which each copy that cache."""
    root = tmp_path_factory.mktemp("idna")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_DIR_ENV, str(root / "cache"))
        first = bundle(bundler_for(make_package(root, requirements="idna\n")), root / "first")
    return first, root / "cache"


def test_second_bundling_needs_no_index(
    tmp_path: Path,
    private_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    idna_bundled: tuple[Path, Path],
) -> None:
    """pip runs once per lock; with no index reachable the next bundling uses the cache."""
    first, filled = idna_bundled
    shutil.copytree(filled, private_cache)
    package = make_package(tmp_path, requirements="idna\n")
    assert (first / "idna-3.20.dist-info").is_dir()  # the lock's version

    (package / "app.py").write_text("CHANGED = True\n")  # the source is never cached
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    second = bundle(bundler_for(package), tmp_path / "second")
    assert (second / "idna-3.20.dist-info").is_dir()
    assert (second / "pkg" / "app.py").read_text() == "CHANGED = True\n"
    assert not (second / "pkg" / "__pycache__").exists()
    first_files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*"))
    second_files = sorted(p.relative_to(second).as_posix() for p in second.rglob("*"))
    assert first_files == second_files

    # Without that cache, the same offline bundling fails: the cache is what made it work.
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "empty-cache"))
    with pytest.raises(BundlingError, match="pip could not install"):
        bundle(bundler_for(package), tmp_path / "third")


def test_a_half_written_entry_is_not_used(
    tmp_path: Path,
    private_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    idna_bundled: tuple[Path, Path],
) -> None:
    shutil.copytree(idna_bundled[1], private_cache)  # the entry a first bundling leaves
    package = make_package(tmp_path, requirements="idna\n")
    bundler = bundler_for(package)
    entry = private_cache / "bundles" / bundler.cache_key()
    (entry / "MANIFEST.json").unlink()  # what a copy interrupted before its manifest leaves
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BundlingError, match="pip could not install"):
        bundle(bundler, tmp_path / "second")


def test_the_key_follows_every_input_of_the_install(tmp_path: Path) -> None:
    package = make_package(tmp_path, requirements="idna\n")
    lock = tmp_path / "lock.txt"
    lock.write_text("idna==3.20\n")
    base = bundler_for(package, lock).cache_key()
    assert bundler_for(package, lock).cache_key() == base  # stable

    (package / "app.py").write_text("# source changes do not matter\n")
    assert bundler_for(package, lock).cache_key() == base

    lock.write_text("idna==3.10\n")
    changed_lock = bundler_for(package, lock).cache_key()
    assert changed_lock != base
    lock.write_text("idna==3.20\n")

    (package / "requirements.txt").write_text("idna\nrequests\n")
    assert bundler_for(package, lock).cache_key() not in {base, changed_lock}
    (package / "requirements.txt").write_text("idna\n")

    others = {
        LocalPipBundling(package, python_version="3.13", platform="manylinux2014_aarch64",
                         constraints=lock).cache_key(),
        LocalPipBundling(package, python_version="3.14", platform="manylinux2014_x86_64",
                         constraints=lock).cache_key(),
        LocalPipBundling(package, python_version="3.14", platform="manylinux2014_aarch64",
                         constraints=lock, layer=True).cache_key(),
        LocalPipBundling(package, python_version="3.14", platform="manylinux2014_aarch64",
                         constraints=None).cache_key(),
    }  # fmt: skip
    assert len(others) == 4
    assert base not in others
    assert bundler_for(package, lock).cache_key() == base


def test_unusable_cache_dir_is_a_bundling_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker))
    package = make_package(tmp_path, requirements="idna\n")
    with pytest.raises(BundlingError, match=f"bundle cache .*set {CACHE_DIR_ENV}"):
        bundle(bundler_for(package), tmp_path / "out")
