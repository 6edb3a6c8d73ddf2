"""The README's configuration reference must match the code (issue: docs a newcomer can follow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fargate_runners.config import PROFILE_KEYS, TOP_LEVEL_KEYS
from lambda_fn.config import ENV_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCUMENTED = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", README))


@pytest.mark.parametrize("key", sorted(TOP_LEVEL_KEYS))
def test_every_context_key_is_documented(key: str) -> None:
    assert key in DOCUMENTED, f"cdk.json context key {key!r} is missing from README.md"


@pytest.mark.parametrize("key", sorted(PROFILE_KEYS))
def test_every_profile_key_is_documented(key: str) -> None:
    assert key in DOCUMENTED, f"profile key {key!r} is missing from README.md"


@pytest.mark.parametrize("name", sorted(ENV_DEFAULTS))
def test_every_lambda_variable_is_documented(name: str) -> None:
    assert name in DOCUMENTED, f"Lambda environment variable {name!r} is missing from README.md"


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    named = set(re.findall(r"(?:`|^)make ([a-z][a-z-]*)", README, flags=re.MULTILINE))
    assert named, "the README names no make target"
    assert named <= targets, f"README names missing targets: {sorted(named - targets)}"
