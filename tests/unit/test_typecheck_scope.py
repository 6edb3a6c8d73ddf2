"""mypy follows only the aws_cdk modules the code imports (pyproject.toml): keep that true.

A module left out of the list is skipped, so everything taken from it would be ``Any`` and
go unchecked without a word from mypy; a module listed but no longer imported only costs
time. Both directions fail here.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _checked_packages() -> list[str]:
    """The packages ``make typecheck`` hands to mypy."""
    line = re.search(r"^\t\$\(BIN\)/mypy (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert line, "Makefile: no mypy line in the typecheck target"
    return line.group(1).split()


def _imported_cdk_modules(packages: list[str]) -> set[str]:
    found: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {a.name for a in node.names if a.name.split(".")[0] == "aws_cdk"}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    if node.module == "aws_cdk":
                        found.add("aws_cdk")
                        # `from aws_cdk import aws_ecs as ecs` imports a module; names
                        # like Stack or Duration are the top module's own.
                        found |= {f"aws_cdk.{a.name}" for a in node.names if "_" in a.name}
                    elif node.module.startswith("aws_cdk."):
                        found.add(node.module)
    return found


def _followed_cdk_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    followed: set[str] = set()
    for override in config["overrides"]:
        if override.get("follow_imports") == "normal":
            modules = override["module"]
            followed |= {modules} if isinstance(modules, str) else set(modules)
    return followed


def test_mypy_follows_exactly_the_cdk_modules_the_code_imports() -> None:
    imported = _imported_cdk_modules(_checked_packages())
    assert "aws_cdk.aws_ecs" in imported  # the scan itself works
    followed = _followed_cdk_modules()
    assert not imported - followed, (
        f"imported but skipped by mypy (add to pyproject.toml): {sorted(imported - followed)}"
    )
    assert not followed - imported, (
        f"followed but never imported (remove from pyproject.toml): {sorted(followed - imported)}"
    )
