"""Today's synth of each configuration, once per session for every comparison."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .baseline import contexts, synthesize_today


@pytest.fixture(scope="session")
def today_template(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], dict[str, Any]]:
    """``name`` -> the template today's code synthesizes for that configuration of
    ``contexts.json`` (each synthesized once: a synth takes 10-60 s)."""
    cache: dict[str, dict[str, Any]] = {}

    def template(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = synthesize_today(contexts()[name], tmp_path_factory.mktemp(name))
        return cache[name]

    return template
