"""A user-level cache of the pip-installed part of the Lambda bundle, one entry per lock.

Installing the webhook Lambda's dependencies (and the tracing layer's) with pip is what
made every synth slow (tens of seconds) and made it need a package index every time.
What pip installs depends only on the inputs in :func:`cache_key` (the requirements, the
version lock, the Lambda's Python version and platform, the pip command and the pruning
rules), so it is built once per such key and copied from here afterwards: a second
synth is a directory copy, and works with no index reachable. The ``lambda_fn/`` source is
not cached (it is copied fresh on every synth; it changes far more often than the lock).

Where: ``$FARGATE_RUNNERS_CACHE_DIR``, else ``$XDG_CACHE_HOME/fargate-runners``, else
``~/.cache/fargate-runners`` (entries under ``bundles/``). Deleting it is always safe.

Concurrency (pytest-xdist workers, two ``cdk synth`` at once): an entry is built in a
private temporary directory next to its final place and renamed into place in one
``rename(2)``, which is atomic on one filesystem; whoever renames second discards its own
copy and uses the winner's. So an entry is either absent or complete, never half-written,
and no lock is needed. An entry also carries a manifest (every file's size and SHA-256),
checked before each use: an entry that does not match it (a file edited, truncated or
removed, a crash while copying it out by hand) is moved aside and rebuilt, so nothing but
what pip installed under the lock reaches a Lambda asset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = [
    "CACHE_DIR_ENV",
    "CacheError",
    "cache_root",
    "ensure_entry",
    "entry_is_valid",
]

#: Overrides where bundles are cached.
CACHE_DIR_ENV = "FARGATE_RUNNERS_CACHE_DIR"

#: The files of an entry: its manifest and the installed tree.
MANIFEST = "MANIFEST.json"
CONTENT = "content"

#: Temporary build directories older than this are a crashed build's and are removed.
STALE_SECONDS = 3600

_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"


class CacheError(RuntimeError):
    """The cache directory cannot be used (not creatable or not writable)."""


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$FARGATE_RUNNERS_CACHE_DIR``, ``$XDG_CACHE_HOME/fargate-runners`` or ``~/.cache/...``."""
    env = os.environ if environ is None else environ
    explicit = env.get(CACHE_DIR_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    # The XDG base directory spec: a relative XDG_CACHE_HOME is invalid and is ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "fargate-runners"


def ensure_entry(root: Path, key: str, build: Callable[[Path], None]) -> Path:
    """The ``content`` directory of a valid entry for ``key``, built with ``build`` if needed.

    ``build(directory)`` fills an empty directory (raising on failure: nothing is cached
    then). Safe to call from several processes at once.
    """
    bundles = root / "bundles"
    try:
        bundles.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(
            f"cannot create the bundle cache {bundles} ({exc.strerror or exc}); set "
            f"{CACHE_DIR_ENV} to a writable directory"
        ) from None
    entry = bundles / key
    if entry_is_valid(entry):
        return entry / CONTENT
    if entry.exists():
        _discard(entry)
    _remove_stale(bundles)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{key}-", dir=bundles))
    except OSError as exc:
        raise CacheError(
            f"cannot write to the bundle cache {bundles} ({exc.strerror or exc}); set "
            f"{CACHE_DIR_ENV} to a writable directory"
        ) from None
    try:
        content = staging / CONTENT
        content.mkdir()
        build(content)
        (staging / MANIFEST).write_text(json.dumps({"key": key, "files": _manifest(content)}))
        try:
            staging.rename(entry)
        except OSError:
            # Another process renamed its (complete) entry into place first: use that one.
            if not entry_is_valid(entry):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return entry / CONTENT


def entry_is_valid(entry: Path) -> bool:
    """The entry exists, and its content is exactly what its manifest lists."""
    try:
        recorded = json.loads((entry / MANIFEST).read_text())
        return (
            recorded.get("key") == entry.name
            and (entry / CONTENT).is_dir()
            and recorded.get("files") == _manifest(entry / CONTENT)
        )
    except (OSError, ValueError, AttributeError):
        return False


def _manifest(content: Path) -> dict[str, list[int | str]]:
    """``{relative path: [size, sha256]}`` of every file under ``content``."""
    files: dict[str, list[int | str]] = {}
    for directory, _dirs, names in os.walk(content):
        for name in names:
            path = Path(directory, name)
            data = path.read_bytes()
            files[path.relative_to(content).as_posix()] = [
                len(data),
                hashlib.sha256(data).hexdigest(),
            ]
    return files


def _discard(entry: Path) -> None:
    """Move an invalid entry out of the way (atomically), then delete it."""
    trash = entry.with_name(f"{_TRASH_PREFIX}{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        entry.rename(trash)
    except FileNotFoundError:
        return  # another process moved it first
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale(bundles: Path) -> None:
    """Delete what crashed builds left behind (never a build that may still be running)."""
    cutoff = time.time() - STALE_SECONDS
    for leftover in bundles.iterdir():
        if leftover.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    shutil.rmtree(leftover, ignore_errors=True)
