"""The bundle cache: where it lives, atomic entries, and what it refuses to reuse."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fargate_runners import bundle_cache
from fargate_runners.bundle_cache import (
    CACHE_DIR_ENV,
    CacheError,
    cache_root,
    ensure_entry,
    entry_is_valid,
)

KEY = "k" * 40


def writer(calls: list[Path], text: str = "installed") -> Callable[[Path], None]:
    def build(target: Path) -> None:
        calls.append(target)
        (target / "pkg").mkdir()
        (target / "pkg" / "__init__.py").write_text(text)
        (target / "pkg-1.0.dist-info").mkdir()
        (target / "pkg-1.0.dist-info" / "METADATA").write_text("Name: pkg\nVersion: 1.0\n")

    return build


def test_cache_root_precedence(tmp_path: Path) -> None:
    home = Path.home()
    assert cache_root({}) == home / ".cache" / "fargate-runners"
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "fargate-runners"
    # A relative XDG_CACHE_HOME is invalid (XDG base directory spec) and ignored.
    assert cache_root({"XDG_CACHE_HOME": "rel"}) == home / ".cache" / "fargate-runners"
    assert (
        cache_root({"XDG_CACHE_HOME": str(tmp_path), CACHE_DIR_ENV: str(tmp_path / "mine")})
        == tmp_path / "mine"
    )


def test_built_once_then_reused(tmp_path: Path) -> None:
    calls: list[Path] = []
    first = ensure_entry(tmp_path, KEY, writer(calls))
    second = ensure_entry(tmp_path, KEY, writer(calls))
    assert len(calls) == 1
    assert first == second == tmp_path / "bundles" / KEY / "content"
    assert (second / "pkg" / "__init__.py").read_text() == "installed"
    # Nothing but the entry is left behind.
    assert [p.name for p in (tmp_path / "bundles").iterdir()] == [KEY]


def test_failed_build_caches_nothing(tmp_path: Path) -> None:
    def broken(target: Path) -> None:
        (target / "half").write_text("x")
        raise RuntimeError("pip failed")

    with pytest.raises(RuntimeError, match="pip failed"):
        ensure_entry(tmp_path, KEY, broken)
    assert list((tmp_path / "bundles").iterdir()) == []


@pytest.mark.parametrize(
    "damage",
    [
        "no-manifest",
        "truncated-file",
        "extra-file",
        "missing-file",
        "edited-file",
        "bad-json",
        "other-key",
    ],
)
def test_a_damaged_entry_is_rebuilt(tmp_path: Path, damage: str) -> None:
    calls: list[Path] = []
    content = ensure_entry(tmp_path, KEY, writer(calls))
    entry = content.parent
    manifest = entry / "MANIFEST.json"
    init = content / "pkg" / "__init__.py"
    if damage == "no-manifest":  # a half-written entry: the manifest is written last
        manifest.unlink()
    elif damage == "truncated-file":
        init.write_text("inst")
    elif damage == "extra-file":
        (content / "pkg" / "evil.py").write_text("import os")
    elif damage == "missing-file":
        init.unlink()
    elif damage == "edited-file":
        init.write_text("INSTALLED")  # same size, other bytes
    elif damage == "bad-json":
        manifest.write_text("{")
    elif damage == "other-key":
        recorded = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**recorded, "key": "x" * 40}))
    assert not entry_is_valid(entry)

    again = ensure_entry(tmp_path, KEY, writer(calls))
    assert len(calls) == 2
    assert init.read_text() == "installed"
    assert sorted(p.name for p in (again / "pkg").iterdir()) == ["__init__.py"]
    assert entry_is_valid(entry)


def test_a_crashed_build_directory_is_never_used_and_is_cleaned_up(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    leftover = bundles / f".tmp-{KEY}-crashed"
    (leftover / "content").mkdir(parents=True)
    (leftover / "content" / "half").write_text("x")
    old = time.time() - bundle_cache.STALE_SECONDS - 10
    os.utime(leftover, (old, old))
    recent = bundles / f".tmp-{KEY}-running"
    recent.mkdir()

    calls: list[Path] = []
    content = ensure_entry(tmp_path, KEY, writer(calls))
    assert len(calls) == 1
    assert not (content / "half").exists()
    assert not leftover.exists()
    assert recent.exists()  # may be another process's build in progress


def test_concurrent_builders_all_get_a_complete_entry(tmp_path: Path) -> None:
    """xdist workers synthesizing at once: every one gets a complete entry, none fails."""
    start = threading.Barrier(4)
    seen: list[str] = []
    errors: list[BaseException] = []

    def slow(target: Path) -> None:
        (target / "a").write_text("1")
        time.sleep(0.2)
        (target / "b").write_text("2")

    def worker() -> None:
        try:
            start.wait()
            content = ensure_entry(tmp_path, KEY, slow)
            seen.append("".join(sorted(p.name for p in content.iterdir())))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen == ["ab"] * 4
    assert [p.name for p in (tmp_path / "bundles").iterdir()] == [KEY]


def test_unwritable_cache_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match=f"cannot create the bundle cache .*{CACHE_DIR_ENV}"):
        ensure_entry(blocker, KEY, writer([]))
