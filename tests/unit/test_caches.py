"""``lambda_fn.aws.reset_caches`` clears every per-process cache of ``lambda_fn``.

Tests, local mode and the benchmarks call it when the environment changes; a cache it
missed would hand one test's client, secret or settings to the next.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import lambda_fn
from lambda_fn.aws import reset_caches

#: Caches that depend on nothing but their arguments: nothing to forget.
PURE = {"lambda_fn.policy.glob_to_regex"}


def module_caches() -> dict[str, Any]:
    """Every module-level ``functools`` cache of every ``lambda_fn`` module, by name."""
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(lambda_fn.__path__, "lambda_fn."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if callable(getattr(value, "cache_clear", None)) and value.__module__ == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def test_every_cache_is_known() -> None:
    caches = module_caches()
    assert "lambda_fn.aws._client" in caches  # the scan sees them
    assert set(caches) >= PURE


def test_reset_clears_every_cache_that_depends_on_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each cache is swapped for a recorder under its module-level name (the name the
    modules' own ``reset()`` functions clear it by), so nothing is called for real."""
    cleared: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def cache_clear(self) -> None:
            cleared.append(self.name)

    caches = [name for name in module_caches() if name not in PURE]
    for name in caches:
        module, attribute = name.rsplit(".", 1)
        monkeypatch.setattr(importlib.import_module(module), attribute, Recorder(name))
    reset_caches()
    missed = sorted(set(caches) - set(cleared))
    assert not missed, f"reset_caches() does not clear {missed}"
