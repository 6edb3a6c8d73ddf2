"""Value parsers of the configuration model (fargate_runners/config.py).

A parser takes ``(value, key)`` and returns the typed value or raises :class:`ConfigError`
naming ``key`` relative to its field (``""`` for the field itself, ``[1]``, ``.Effect``);
it accepts the string forms ``-c key=value`` gives. :func:`parsed` makes one a field's
``BeforeValidator``; the ``Annotated`` types below are ready-made field types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from lambda_fn.policy import EMPTY_RULE_PROBLEM, PolicyError, policy_from_dict
from lambda_fn.source_ranges import SourceRanges, SourceRangesError

from . import rules
from .config_errors import ConfigError, Problem
from .feasibility import arn_hint

PROFILE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
VPC_ID_RE = re.compile(r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
SUBNET_ID_RE = re.compile(r"^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
SECURITY_GROUP_ID_RE = re.compile(r"^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
ROUTE_TABLE_ID_RE = re.compile(r"^rtb-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
SECRET_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)
SECRET_REF_RE = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:\S+$")
POLICY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(aws|\d{12}):policy/\S+$")
LABEL_RE = re.compile(r"^[^\s,]{1,100}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TOPIC_ARN_RE = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
HOOK_PATH_RE = re.compile(
    r"^((repos/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|orgs/[A-Za-z0-9_-]+)/hooks/\d+|app/hook)$"
)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Variables the runner or entrypoint owns: a profile may not set them.
RESERVED_ENV_PREFIXES = ("ACTIONS_", "GITHUB_", "RUNNER_")

T = TypeVar("T")

# ---------------------------------------------------------------------------
# Parsers: (value, key) -> typed value, or ConfigError naming ``key`` (relative to the
# field, "" for the field itself). They accept the string forms ``-c key=value`` gives.
# ---------------------------------------------------------------------------


def parse_int(value: Any, key: str = "") -> int:
    if isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ConfigError(key, f"{value!r} is not an integer")


def parse_number(value: Any, key: str = "") -> float:
    if isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(key, f"{value!r} is not a number")


def parse_bool(value: Any, key: str = "") -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(key, f"{value!r} is not a boolean (true or false)")


def parse_str(value: Any, key: str = "") -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"{value!r} is not a string")
    text: str = value.strip()
    if not text:
        raise ConfigError(key, "must not be empty")
    return text


def parse_str_list(value: Any, key: str = "") -> tuple[str, ...]:
    """A list of strings; a JSON list or a comma-separated string is accepted too."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(key, f"is not a valid JSON list ({exc.msg})") from None
        else:
            value = [part for part in (p.strip() for p in text.split(",")) if part]
    if not isinstance(value, list | tuple):
        raise ConfigError(key, f"{value!r} is not a list of strings")
    return collect(value, parse_str, key)


def parse_str_map(value: Any, key: str = "") -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"{value!r} must be an object of NAME: value")
    checked = collect(list(value.items()), lambda item, _: parse_str(item[1], f"{key}.{item[0]}"))
    return {str(name): text for name, text in zip(value, checked, strict=True)}


def collect(items: Sequence[Any], parse: Callable[[Any, str], T], key: str = "") -> tuple[T, ...]:
    """``parse`` every item (key ``<key>[i]``); all failures in one ConfigError."""
    parsed: list[T] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        try:
            parsed.append(parse(item, f"{key}[{i}]"))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return tuple(parsed)


def one_of(allowed: Sequence[str], *, upper: bool = False) -> Callable[[Any, str], str]:
    def parse(value: Any, key: str = "") -> str:
        text = parse_str(value, key)
        norm = text.upper() if upper else text.lower()
        if norm not in allowed:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(allowed)}")
        return norm

    return parse


def ranged(low: int, high: int) -> Callable[[Any, str], int]:
    def parse(value: Any, key: str = "") -> int:
        number = parse_int(value, key)
        if not low <= number <= high:
            raise ConfigError(key, f"{number} is outside {low}..{high}")
        return number

    return parse


def matching(
    pattern: re.Pattern[str], what: str, *, arn: str | None = None
) -> Callable[[Any, str], str]:
    """A string matching ``pattern``; ``arn``: the ARN kind whose near misses (a name, an
    alias, a key id) get a suggestion (:func:`fargate_runners.feasibility.arn_hint`)."""

    def parse(value: Any, key: str = "") -> str:
        text = parse_str(value, key)
        if not pattern.match(text):
            hint = arn_hint(arn, text) if arn else ""
            raise ConfigError(key, f"{text!r} is not {what}{hint}")
        return text

    return parse


def checked(rule: Callable[[str], str | None]) -> Callable[[Any, str], str]:
    """A string parser from a :mod:`fargate_runners.rules` rule."""

    def parse(value: Any, key: str = "") -> str:
        text = parse_str(value, key)
        problem = rule(text)
        if problem is not None:
            raise ConfigError(key, problem)
        return text

    return parse


def list_of(parse: Callable[[Any, str], str]) -> Callable[[Any, str], tuple[str, ...]]:
    def parse_list(value: Any, key: str = "") -> tuple[str, ...]:
        return collect(parse_str_list(value, key), parse, key)

    return parse_list


def unique(values: tuple[str, ...]) -> tuple[str, ...]:
    for i, value in enumerate(values):
        if value in values[:i]:
            raise ConfigError(f"[{i}]", f"{value!r} is repeated")
    return values


def parsed(parse: Callable[[Any, str], Any]) -> BeforeValidator:
    """Run ``parse`` before pydantic's own check; ``None`` (an optional key) passes."""
    return BeforeValidator(lambda value: value if value is None else parse(value, ""))


def describe_allowed(values: Sequence[int]) -> str:
    if len(values) <= 4:
        return ", ".join(str(v) for v in values)
    step = values[1] - values[0]
    return f"{values[0]} to {values[-1]} in steps of {step}"


# -- value types: a field is ``name: <type> = default`` --------------------------------

Int = Annotated[int, parsed(parse_int)]
Bool = Annotated[bool, parsed(parse_bool)]
SubnetIds = Annotated[
    tuple[str, ...], parsed(list_of(matching(SUBNET_ID_RE, "a subnet id (subnet-0123abcd...)")))
]
SecurityGroupIds = Annotated[
    tuple[str, ...],
    parsed(list_of(matching(SECURITY_GROUP_ID_RE, "a security group id (sg-0123abcd...)"))),
]


def parse_runner_group_id(value: Any, key: str = "") -> int:
    group = parse_int(value, key)
    if group < 1:
        raise ConfigError(key, f"{group} must be >= 1")
    return group


RunnerGroupId = Annotated[int, parsed(parse_runner_group_id)]


def raise_all(problems: Sequence[Problem]) -> None:
    if problems:
        raise ConfigError(problems)


def parse_labels(value: Any, key: str = "") -> tuple[str, ...]:
    if value is not None and not isinstance(value, str | list | tuple):
        raise ConfigError(key, f"{value!r} must be a non-empty list of labels")
    labels = parse_str_list(value, key)
    if not labels:
        raise ConfigError(key, "must be a non-empty list of labels")
    problems = [
        Problem(f"{key}[{i}]", f"{label!r} is not a valid label (no spaces or commas)")
        for i, label in enumerate(labels)
        if not LABEL_RE.match(label)
    ]
    lowered = [label.lower() for label in labels]
    problems += [
        Problem(f"{key}[{i}]", f"{labels[i]!r} is repeated (labels compare case-insensitively)")
        for i, label in enumerate(lowered)
        if label in lowered[:i]
    ]
    raise_all(problems)
    return labels


def check_policy_rule(values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    """One policy key, checked by the policy module the Lambda and the runner use."""
    field = str(info.field_name)
    if not values:
        raise ConfigError("", EMPTY_RULE_PROBLEM)
    problems = []
    for i, value in enumerate(values):
        try:
            policy_from_dict("profile", {field: [value]}, where="")
        except PolicyError as exc:
            problems.append(Problem(f"[{i}]", str(exc).partition(": ")[2] or str(exc)))
            continue
        if field == "allowed_events":
            problem = rules.event_problem(value)
            if problem is not None:
                problems.append(Problem(f"[{i}]", problem))
    raise_all(problems)
    return values


def parse_environment_name(value: Any, key: str = "") -> str:
    """``required_environment``: checked by the policy module the Lambda uses."""
    if not isinstance(value, str):
        raise ConfigError(
            key, f"{value!r} is not a string (the name of a GitHub environment, e.g. production)"
        )
    try:
        policy_from_dict("profile", {"required_environment": value}, where="")
    except PolicyError as exc:
        raise ConfigError(key, str(exc).partition(": ")[2] or str(exc)) from None
    return value


def check_env_names(values: dict[str, str]) -> dict[str, str]:
    problems = [
        Problem(
            "",
            f"{name!r} is not an allowed variable name (reserved: "
            f"{', '.join(p + '*' for p in RESERVED_ENV_PREFIXES)})",
        )
        for name in values
        if not ENV_NAME_RE.match(name) or name.startswith(RESERVED_ENV_PREFIXES)
    ]
    raise_all(problems)
    return values


def check_secret_refs(values: dict[str, str]) -> dict[str, str]:
    raise_all(
        [
            Problem(f".{name}", f"{arn!r} is not a Secrets Manager ARN{arn_hint('secret', arn)}")
            for name, arn in values.items()
            if not SECRET_REF_RE.match(arn)
        ]
    )
    return values


def parse_task_role_policies(value: Any, key: str = "") -> tuple[str | Mapping[str, Any], ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(key, f"{value!r} must be a list of managed policy ARNs or IAM statements")
    return collect(value, parse_task_role_policy, key)


def parse_task_role_policy(item: Any, key: str) -> str | Mapping[str, Any]:
    if isinstance(item, str):
        if not POLICY_ARN_RE.match(item):
            raise ConfigError(
                key, f"{item!r} is not a managed policy ARN{arn_hint('policy', item)}"
            )
        return item
    if not isinstance(item, Mapping):
        raise ConfigError(key, f"{item!r} must be a managed policy ARN or an IAM statement object")
    unknown = set(item) - {"Effect", "Action", "Resource", "Condition", "Sid"}
    if unknown:
        raise ConfigError(key, f"unknown statement keys: {', '.join(sorted(unknown))}")
    if item.get("Effect", "Allow") not in ("Allow", "Deny"):
        raise ConfigError(f"{key}.Effect", f"{item['Effect']!r} must be Allow or Deny")
    for part in ("Action", "Resource"):
        value = item.get(part)
        if not value or not (
            isinstance(value, str)
            or (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value))
        ):
            raise ConfigError(f"{key}.{part}", "is required: a string or a list of strings")
    return item


def parse_registry(value: Any, key: str = "") -> str:
    text = parse_str(value, key)
    if any(c.isspace() for c in text):
        raise ConfigError(key, f"{text!r} is not a registry")
    return text


def parse_profile_name(value: Any, key: str = "") -> str:
    name = parse_str(value, key)
    if not PROFILE_NAME_RE.match(name):
        raise ConfigError(
            key,
            f"{name!r} must match ^[a-z0-9][a-z0-9-]{{0,30}}$ "
            "(lowercase letters, digits, hyphens; at most 31 characters)",
        )
    return name


Rule = Annotated[tuple[str, ...], parsed(parse_str_list), AfterValidator(check_policy_rule)]
EnvMap = Annotated[dict[str, str], parsed(parse_str_map), AfterValidator(check_env_names)]


def parse_profiles(value: Any, key: str = "") -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(key, f"is not valid JSON ({exc.msg})") from None
    if not isinstance(value, list | tuple):
        raise ConfigError(key, f"{value!r} must be a non-empty list of profile objects")
    if not value:
        raise ConfigError(key, "must be a non-empty list of profile objects")
    return value


def parse_github_api_url(value: Any, key: str = "") -> str:
    return checked(rules.github_api_url_problem)(value, key).rstrip("/")


def parse_source_cidrs(value: Any, key: str = "") -> tuple[str, ...]:
    try:
        return SourceRanges.parse(parse_str_list(value, key), "").all
    except SourceRangesError as exc:
        where, _, problem = str(exc).partition(": ")
        raise ConfigError(where, problem) from None


def parse_hook_path(value: Any, key: str = "") -> str:
    path = parse_str(value, key).strip("/")
    if not HOOK_PATH_RE.match(path):
        raise ConfigError(
            key,
            f"{path!r} must look like repos/OWNER/REPO/hooks/ID, orgs/ORG/hooks/ID or app/hook",
        )
    return path


def parse_throttle_rate(value: Any, key: str = "") -> float:
    rate = parse_number(value, key)
    if not rate > 0:
        raise ConfigError(key, f"{rate:g} must be > 0")
    return rate


def parse_name_prefix(value: Any, key: str = "") -> str:
    text = parse_str(value, key)
    # Checked against the profiles in check_names, where the prefix is final.
    problems = rules.name_prefix_problems(text, webhook_firewall=False, profile_names=())
    if problems:
        raise ConfigError(key, problems[0])
    return text
