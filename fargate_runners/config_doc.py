"""The configuration reference's key tables, rendered from the models' fields.

``docs/configuration.md`` holds two generated tables, the ``cdk.json`` context keys
(:class:`~fargate_runners.config.RunnersConfig`) and the profile keys
(:class:`~fargate_runners.config.RunnerProfile`), each between a pair of marker comments.
A key's row is its name, a type read from its annotation, its default and its meaning:
the docstring under the field (pydantic's ``use_attribute_docstrings``). A docstring
paragraph starting ``Default:`` replaces the default read from the model, for defaults
that are decided elsewhere (a new VPC, the top-level value, 64 vCPUs' worth...).

    python -m fargate_runners.config_doc          # rewrite the tables in docs/configuration.md
    python -m fargate_runners.config_doc --check  # exit 1 if they differ (tests/unit/test_docs.py)

Nothing here lists keys: a new field shows up in the table, and a field without a
docstring fails the check.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .config import RunnerProfile, RunnersConfig

#: The file the tables live in, relative to the repository root.
DOC_PATH = Path("docs/configuration.md")
#: Table name -> the model whose fields it lists.
TABLES: Mapping[str, type[BaseModel]] = {
    "context-keys": RunnersConfig,
    "profile-keys": RunnerProfile,
}
REGENERATE = "python -m fargate_runners.config_doc"
_DEFAULT_PREFIX = "Default:"


def _type_name(annotation: Any) -> str:
    """A reader's name for a field type: ``string``, ``list of strings``, ``object``..."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        item = args[0] if args else Any
        if item is RunnerProfile:
            return "list of profiles"
        return "list of strings" if item is str else "list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "object"
    names = {str: "string", bool: "boolean", int: "integer", float: "number"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _literal(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple | list):
        return "`[]`" if not value else f"`{list(value)!r}`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value!r}`"
    return f"`{value}`"


def _split(description: str) -> tuple[str, str | None]:
    """The meaning and the ``Default:`` paragraph (None without one), each on one line."""
    meaning: list[str] = []
    default: str | None = None
    for paragraph in description.strip().split("\n\n"):
        text = " ".join(paragraph.split())
        if text.startswith(_DEFAULT_PREFIX):
            default = text.removeprefix(_DEFAULT_PREFIX).strip().removesuffix(".")
        else:
            meaning.append(text)
    return " ".join(meaning).removesuffix("."), default


def row(name: str, field: FieldInfo) -> str:
    """One table row; ``ValueError`` for a field without a docstring."""
    if not field.description:
        raise ValueError(f"{name}: the field has no docstring (its meaning in the reference)")
    meaning, default = _split(field.description)
    if default is None:
        value = field.get_default(call_default_factory=True)
        default = "required" if field.is_required() else _literal(value)
    cells = (f"`{name}`", _type_name(field.annotation), default, meaning)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def table(model: type[BaseModel]) -> str:
    """The key table of ``model``, in field order."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines += [row(name, field) for name, field in model.model_fields.items()]
    return "\n".join(lines)


def _markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- generated: {name} ({REGENERATE}); do not edit by hand -->",
        f"<!-- end generated: {name} -->",
    )


def render(text: str) -> str:
    """``text`` (the document) with every generated table replaced by today's."""
    for name, model in TABLES.items():
        begin, end = _markers(name)
        pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), flags=re.DOTALL)
        found = pattern.search(text)
        if found is None:
            raise ValueError(f"{DOC_PATH}: the markers of table {name!r} are missing: {begin}")
        text = f"{text[: found.start()]}{begin}\n{table(model)}\n{end}{text[found.end() :]}"
    return text


def main(argv: Sequence[str] | None = None, root: Path | None = None) -> int:
    """Rewrite the tables (exit 0), or with ``--check`` report whether they are current."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = (root or Path.cwd()) / DOC_PATH
    current = path.read_text()
    wanted = render(current)
    if "--check" in args:
        if wanted != current:
            print(f"{DOC_PATH}: the configuration tables are out of date; run: {REGENERATE}")
            return 1
        return 0
    if wanted != current:
        path.write_text(wanted)
        print(f"{DOC_PATH}: tables updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
