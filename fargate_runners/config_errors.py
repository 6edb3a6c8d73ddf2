"""``ConfigError``: every configuration problem at once, one line each.

A line is ``<key path>: <the value and what is wrong with it>; <the fix>``, e.g.
``profiles[1].memory: 3000 is not valid with cpu 256 (allowed: 512, 1024, 2048)``.
:func:`problems_from_validation` turns a pydantic ``ValidationError`` into such lines:
validators raise :class:`ConfigError` with keys relative to where they sit, and
pydantic's own error kinds (missing key, unknown key, wrong shape) get words here.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "Problem", "join_key", "problems_from_validation", "suggest_key"]


class Problem(NamedTuple):
    """One configuration problem: ``key`` is a path such as ``profiles[1].memory``."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(ValueError):
    """One or more invalid configuration values; ``str()`` is one line per problem.

    ``ConfigError(key, problem)`` for one problem, ``ConfigError(problems)`` for several.
    ``key`` and ``problem`` are the first problem's (what callers and tests used before).
    """

    def __init__(self, key: str | Iterable[Problem], problem: str | None = None) -> None:
        if isinstance(key, str):
            problems: tuple[Problem, ...] = (Problem(key, problem or ""),)
        else:
            problems = tuple(key)
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
        self.key = problems[0].key
        self.problem = problems[0].message

    def under(self, prefix: str) -> ConfigError:
        """The same problems with their keys nested under ``prefix``."""
        return ConfigError(Problem(join_key(prefix, p.key), p.message) for p in self.problems)

    def renamed(self, names: Mapping[str, str]) -> ConfigError:
        """The same problems with the first segment of each key renamed per ``names``."""
        return ConfigError(Problem(_rename(p.key, names), p.message) for p in self.problems)


def join_key(base: str, relative: str) -> str:
    """``profiles[1]`` + ``memory`` -> ``profiles[1].memory``; + ``[0]`` -> ``profiles[1][0]``."""
    if not base or not relative:
        return base or relative
    return base + relative if relative[0] in "[." else f"{base}.{relative}"


def _rename(key: str, names: Mapping[str, str]) -> str:
    head = re.match(r"[^.\[]*", key)
    first = head.group(0) if head else ""
    return names.get(first, first) + key[len(first) :]


def _loc_key(loc: Sequence[int | str]) -> str:
    key = ""
    for part in loc:
        key = f"{key}[{part}]" if isinstance(part, int) else join_key(key, str(part))
    return key


_SNAKE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def suggest_key(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a misspelt key (any case or separator), or ``""``."""
    known = sorted(known)
    normal = _SNAKE_BOUNDARY.sub("_", key).replace("-", "_").replace(" ", "_").lower()
    if normal in known:
        return f" (keys are lower_snake_case: did you mean {normal!r}?)"
    close = difflib.get_close_matches(normal, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel]:
    """The model class that holds the key at ``loc`` (following nested model fields)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        nested = _nested_model(field.annotation)
        if nested is not None:
            model = nested
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def problems_from_validation(exc: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """One :class:`Problem` per error in ``exc`` (raised validating ``model``).

    An unknown key is named with its model's ``KEY_KIND`` (``profile key``).
    """
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        where = _loc_key(loc)
        cause = error.get("ctx", {}).get("error")
        kind = error["type"]
        if isinstance(cause, ConfigError):
            problems.extend(cause.under(where).problems)
        elif kind == "missing":
            problems.append(Problem(where, "is required"))
        elif kind == "extra_forbidden":
            holder = _model_at(model, loc[:-1])
            what = getattr(holder, "KEY_KIND", "key")
            allowed = sorted(holder.model_fields)
            problems.append(
                Problem(
                    where,
                    f"unknown {what}{suggest_key(str(loc[-1]), allowed)}; "
                    f"allowed: {', '.join(allowed)}",
                )
            )
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            problems.append(
                Problem(where, f"must be an object, got {type(error['input']).__name__}")
            )
        else:
            problems.append(Problem(where, f"{error['input']!r}: {error['msg']}"))
    return problems
