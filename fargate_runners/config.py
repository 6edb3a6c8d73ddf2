"""One typed, validated configuration for ``cdk.json`` and for the construct's props.

:class:`RunnersConfig` is the ``cdk.json`` context (:func:`load_config`), :class:`RunnerProfile`
one runner profile, and ``FargateRunnersProps`` validates its plain-data fields through
:class:`ConstructSettings`: the three share their fields, their rules and their errors, so
a profile or URL built in Python gets exactly the checks a ``cdk.json`` value gets.

Every problem is reported at once as a :class:`ConfigError` (one line per problem: key path,
value, fix). Keys and values are documented in README.md ("Configuration"); how to add a
key is in docs/configuration.md. This module does not import ``aws_cdk``: the CLI and the
local mode use it too.

Keys that look like ours are checked, in any spelling: an unknown or misspelt key
(``allowedRepositories``, ``allowed-repositories``, ``alowed_repositories``) is an error
with a "did you mean". Keys CDK owns (feature flags ``@aws-cdk/...``, ``aws:cdk:...``,
lookups ``availability-zones:...``, :data:`CDK_KEYS`) are left to CDK. Values given with
``-c key=value`` arrive as strings: numbers, booleans, JSON lists and comma-separated lists
are accepted in string form too. ``null`` at the top level means default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from lambda_fn.policy import (
    EMPTY_RULE_PROBLEM,
    Policy,
    PolicyError,
    policy_from_dict,
    repository_pattern_problem,
)
from lambda_fn.source_ranges import SourceRanges, SourceRangesError

from . import rules
from .config_errors import ConfigError, Problem, problems_from_validation

__all__ = [
    "CDK_KEYS",
    "DEFAULT_IMAGE",
    "DEFAULT_PROFILE_LABELS",
    "FARGATE_CPU_MEMORY",
    "LOG_RETENTION_DAYS",
    "PROFILE_KEYS",
    "TOP_LEVEL_KEYS",
    "ConfigError",
    "ConstructSettings",
    "Problem",
    "RunnerProfile",
    "RunnersConfig",
    "check_construct_props",
    "check_names",
    "load_config",
]

DEFAULT_IMAGE = "ghcr.io/actions/actions-runner:2.332.0"
DEFAULT_PROFILE_LABELS = ("self-hosted", "linux", "arm64", "fargate")
DEFAULT_STACK_NAME = "FargateRunners"
DEFAULT_GITHUB_API_URL = rules.GITHUB_DOT_COM_API

#: The runner container in every task definition (the Lambda overrides its environment).
CONTAINER_NAME = "runner"
#: FARGATE_SPOT_THEN_FARGATE: Spot, falling back to on-demand when Spot has no capacity.
CAPACITIES = ("FARGATE", "FARGATE_SPOT", "FARGATE_SPOT_THEN_FARGATE")
ARCHITECTURES = ("ARM64", "X86_64")
RUNNER_SCOPES = ("repo", "org")
LOG_REMOVAL_POLICIES = ("destroy", "retain")
API_GATEWAY_LOGGING = ("off", "existing", "create")
#: What one profile may hold by default, in vCPUs: a cap, so a burst of queued jobs (a
#: matrix of 256) cannot take the whole regional Fargate vCPU quota that every Fargate
#: workload in the account shares, yet large enough that normal CI never waits.
DEFAULT_PROFILE_VCPUS = 64
#: WAF rate-based rules count per source over a 5-minute window (min limit 10).
RATE_LIMIT_RANGE = (10, 2_000_000_000)
EPHEMERAL_STORAGE_RANGE = (21, 200)

#: Context keys without ':', '/' or '@' that the CDK CLI itself writes (``cdk acknowledge``,
#: ``cdk cli-telemetry``): left alone like every key with those characters.
CDK_KEYS = frozenset({"acknowledged-issue-numbers", "cli-telemetry"})


def default_max_runners(cpu: int) -> int:
    """``DEFAULT_PROFILE_VCPUS`` worth of tasks: 64 of 1 vCPU, 16 of 4 vCPU, 256 of 0.25."""
    return max(1, DEFAULT_PROFILE_VCPUS * 1024 // cpu)


def _steps(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


#: Fargate (Linux) task cpu -> allowed task memory in MiB.
FARGATE_CPU_MEMORY: Mapping[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: _steps(1024, 4096, 1024),
    1024: _steps(2048, 8192, 1024),
    2048: _steps(4096, 16384, 1024),
    4096: _steps(8192, 30720, 1024),
    8192: _steps(16384, 61440, 4096),
    16384: _steps(32768, 122880, 8192),
}

#: Retention values CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

#: Profile keys that form its policy (``lambda_fn.policy.Policy`` fields).
POLICY_KEYS = (
    "allowed_repositories",
    "allowed_refs",
    "allowed_workflows",
    "allowed_events",
    "required_env",
)

_PROFILE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_VPC_ID_RE = re.compile(r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_SUBNET_ID_RE = re.compile(r"^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_ROUTE_TABLE_ID_RE = re.compile(r"^rtb-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_SECRET_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)
_SECRET_REF_RE = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:\S+$")
_POLICY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(aws|\d{12}):policy/\S+$")
_LABEL_RE = re.compile(r"^[^\s,]{1,100}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TOPIC_ARN_RE = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
_HOOK_PATH_RE = re.compile(
    r"^(repos/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|orgs/[A-Za-z0-9_-]+)/hooks/\d+$"
)
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Variables the runner or entrypoint owns: a profile may not set them.
_RESERVED_ENV_PREFIXES = ("ACTIONS_", "GITHUB_", "RUNNER_")

T = TypeVar("T")

# ---------------------------------------------------------------------------
# Parsers: (value, key) -> typed value, or ConfigError naming ``key`` (relative to the
# field, "" for the field itself). They accept the string forms ``-c key=value`` gives.
# ---------------------------------------------------------------------------


def _int(value: Any, key: str = "") -> int:
    if isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ConfigError(key, f"{value!r} is not an integer")


def _number(value: Any, key: str = "") -> float:
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


def _bool(value: Any, key: str = "") -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(key, f"{value!r} is not a boolean (true or false)")


def _str(value: Any, key: str = "") -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"{value!r} is not a string")
    text: str = value.strip()
    if not text:
        raise ConfigError(key, "must not be empty")
    return text


def _str_list(value: Any, key: str = "") -> tuple[str, ...]:
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
    return _collect(value, _str, key)


def _str_map(value: Any, key: str = "") -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be an object of NAME: value")
    checked = _collect(list(value.items()), lambda item, _: _str(item[1], f"{key}.{item[0]}"))
    return {str(name): text for name, text in zip(value, checked, strict=True)}


def _collect(items: Sequence[Any], parse: Callable[[Any, str], T], key: str = "") -> tuple[T, ...]:
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


def _one_of(allowed: Sequence[str], *, upper: bool = False) -> Callable[[Any, str], str]:
    def parse(value: Any, key: str = "") -> str:
        text = _str(value, key)
        norm = text.upper() if upper else text.lower()
        if norm not in allowed:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(allowed)}")
        return norm

    return parse


def _ranged(low: int, high: int) -> Callable[[Any, str], int]:
    def parse(value: Any, key: str = "") -> int:
        number = _int(value, key)
        if not low <= number <= high:
            raise ConfigError(key, f"{number} is outside {low}..{high}")
        return number

    return parse


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[Any, str], str]:
    def parse(value: Any, key: str = "") -> str:
        text = _str(value, key)
        if not pattern.match(text):
            raise ConfigError(key, f"{text!r} is not {what}")
        return text

    return parse


def _checked(rule: Callable[[str], str | None]) -> Callable[[Any, str], str]:
    """A string parser from a :mod:`fargate_runners.rules` rule."""

    def parse(value: Any, key: str = "") -> str:
        text = _str(value, key)
        problem = rule(text)
        if problem is not None:
            raise ConfigError(key, problem)
        return text

    return parse


def _list_of(parse: Callable[[Any, str], str]) -> Callable[[Any, str], tuple[str, ...]]:
    def parse_list(value: Any, key: str = "") -> tuple[str, ...]:
        return _collect(_str_list(value, key), parse, key)

    return parse_list


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    for i, value in enumerate(values):
        if value in values[:i]:
            raise ConfigError(f"[{i}]", f"{value!r} is repeated")
    return values


def _parsed(parse: Callable[[Any, str], Any]) -> BeforeValidator:
    """Run ``parse`` before pydantic's own check; ``None`` (an optional key) passes."""
    return BeforeValidator(lambda value: value if value is None else parse(value, ""))


def _describe_allowed(values: Sequence[int]) -> str:
    if len(values) <= 4:
        return ", ".join(str(v) for v in values)
    step = values[1] - values[0]
    return f"{values[0]} to {values[-1]} in steps of {step}"


# -- value types: a field is ``name: <type> = default`` --------------------------------

Int = Annotated[int, _parsed(_int)]
Bool = Annotated[bool, _parsed(_bool)]
Text = Annotated[str, _parsed(_str)]
SubnetIds = Annotated[
    tuple[str, ...], _parsed(_list_of(_matching(_SUBNET_ID_RE, "a subnet id (subnet-0123abcd...)")))
]


def _runner_group_id(value: Any, key: str = "") -> int:
    group = _int(value, key)
    if group < 1:
        raise ConfigError(key, f"{group} must be >= 1")
    return group


RunnerGroupId = Annotated[int, _parsed(_runner_group_id)]


# ---------------------------------------------------------------------------
# The model base: errors are ConfigErrors, whether built from cdk.json or in Python
# ---------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: How an unknown key of this model is called in errors.
    KEY_KIND: ClassVar[str] = "key"
    #: Field name -> how the user spells it, for error keys (the construct's props).
    KEY_NAMES: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._error(exc, data) from None

    @classmethod
    def validated(cls, data: Mapping[str, Any]) -> Self:
        """Validate ``data`` (e.g. parsed JSON); raise :class:`ConfigError` with every problem."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise cls._error(exc, data) from None

    @classmethod
    def _error(cls, exc: ValidationError, data: Mapping[str, Any]) -> ConfigError:
        """Every problem: when only unknown keys failed, also what the rest would fail.

        Pydantic runs the rules between keys only once every key is valid; an unknown
        key (a typo) must not hide them, so they run again without the unknown keys.
        """
        problems = problems_from_validation(exc, cls)
        errors = exc.errors(include_url=False)
        if all(error["type"] == "extra_forbidden" for error in errors):
            known = data
            for error in errors:
                known = _without(known, error["loc"])
            try:
                cls.model_validate(known)
            except ValidationError as rest:
                problems += problems_from_validation(rest, cls)
        return ConfigError(problems).renamed(cls.KEY_NAMES)

    @classmethod
    def _name(cls, key: str) -> str:
        return cls.KEY_NAMES.get(key, key)


def _without(data: Any, loc: Sequence[int | str]) -> Any:
    """``data`` (JSON-like) without the key at ``loc``; unchanged if ``loc`` is not there."""
    if not loc:
        return data
    head, rest = loc[0], loc[1:]
    if isinstance(data, Mapping) and head in data:
        if not rest:
            return {key: value for key, value in data.items() if key != head}
        return {**data, head: _without(data[head], rest)}
    if isinstance(data, list | tuple) and isinstance(head, int) and head < len(data):
        items = list(data)
        items[head] = _without(items[head], rest)
        return items
    return data


def _raise_all(problems: Sequence[Problem]) -> None:
    if problems:
        raise ConfigError(problems)


# ---------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------


def _labels(value: Any, key: str = "") -> tuple[str, ...]:
    if value is not None and not isinstance(value, str | list | tuple):
        raise ConfigError(key, "must be a non-empty list of labels")
    labels = _str_list(value, key)
    if not labels:
        raise ConfigError(key, "must be a non-empty list of labels")
    problems = [
        Problem(f"{key}[{i}]", f"{label!r} is not a valid label (no spaces or commas)")
        for i, label in enumerate(labels)
        if not _LABEL_RE.match(label)
    ]
    lowered = [label.lower() for label in labels]
    problems += [
        Problem(f"{key}[{i}]", f"{labels[i]!r} is repeated (labels compare case-insensitively)")
        for i, label in enumerate(lowered)
        if label in lowered[:i]
    ]
    _raise_all(problems)
    return labels


def _policy_rule(values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
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
    _raise_all(problems)
    return values


def _env_map(values: dict[str, str]) -> dict[str, str]:
    problems = [
        Problem(
            "",
            f"{name!r} is not an allowed variable name (reserved: "
            f"{', '.join(p + '*' for p in _RESERVED_ENV_PREFIXES)})",
        )
        for name in values
        if not _ENV_NAME_RE.match(name) or name.startswith(_RESERVED_ENV_PREFIXES)
    ]
    _raise_all(problems)
    return values


def _secret_refs(values: dict[str, str]) -> dict[str, str]:
    _raise_all(
        [
            Problem(f".{name}", f"{arn!r} is not a Secrets Manager ARN")
            for name, arn in values.items()
            if not _SECRET_REF_RE.match(arn)
        ]
    )
    return values


def _task_role_policies(value: Any, key: str = "") -> tuple[str | Mapping[str, Any], ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(key, "must be a list of managed policy ARNs or IAM statements")
    return _collect(value, _task_role_policy, key)


def _task_role_policy(item: Any, key: str) -> str | Mapping[str, Any]:
    if isinstance(item, str):
        if not _POLICY_ARN_RE.match(item):
            raise ConfigError(key, f"{item!r} is not a managed policy ARN")
        return item
    if not isinstance(item, Mapping):
        raise ConfigError(key, "must be a managed policy ARN or an IAM statement object")
    unknown = set(item) - {"Effect", "Action", "Resource", "Condition", "Sid"}
    if unknown:
        raise ConfigError(key, f"unknown statement keys: {', '.join(sorted(unknown))}")
    if item.get("Effect", "Allow") not in ("Allow", "Deny"):
        raise ConfigError(f"{key}.Effect", "must be Allow or Deny")
    for part in ("Action", "Resource"):
        value = item.get(part)
        if not value or not (
            isinstance(value, str)
            or (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value))
        ):
            raise ConfigError(f"{key}.{part}", "is required: a string or a list of strings")
    return item


def _registry(value: Any, key: str = "") -> str:
    text = _str(value, key)
    if any(c.isspace() for c in text):
        raise ConfigError(key, f"{text!r} is not a registry")
    return text


def _profile_name(value: Any, key: str = "") -> str:
    name = _str(value, key)
    if not _PROFILE_NAME_RE.match(name):
        raise ConfigError(
            key,
            f"{name!r} must match ^[a-z0-9][a-z0-9-]{{0,30}}$ "
            "(lowercase letters, digits, hyphens; at most 31 characters)",
        )
    return name


Rule = Annotated[tuple[str, ...], _parsed(_str_list), AfterValidator(_policy_rule)]
EnvMap = Annotated[dict[str, str], _parsed(_str_map), AfterValidator(_env_map)]


class RunnerProfile(_Model):
    """One kind of runner: a Fargate task definition plus the labels that select it.

    Constructing one validates it (``ConfigError`` keys are relative to the profile, e.g.
    ``memory``; :func:`load_config` prefixes ``profiles[i].``).
    """

    KEY_KIND: ClassVar[str] = "profile key"

    name: Annotated[str, _parsed(_profile_name)]
    labels: Annotated[tuple[str, ...], _parsed(_labels)]
    cpu: Int = 1024
    memory: Int = 2048
    architecture: Annotated[str, _parsed(_one_of(ARCHITECTURES, upper=True))] = "ARM64"
    ephemeral_storage_gib: Annotated[int, _parsed(_ranged(*EPHEMERAL_STORAGE_RANGE))] = 21
    image: Annotated[str, _parsed(_checked(rules.image_problem))] = DEFAULT_IMAGE
    capacity: Annotated[str, _parsed(_one_of(CAPACITIES, upper=True))] = "FARGATE"
    max_runners: Annotated[int | None, _parsed(_ranged(1, 10_000))] = None
    # Restricted profiles (checked at dispatch and by the runner's job-started hook):
    allowed_repositories: Rule = ()
    allowed_refs: Rule = ()
    allowed_workflows: Rule = ()
    allowed_events: Rule = ()
    required_env: Rule = ()
    # What the task gets:
    environment: EnvMap = Field(default_factory=dict)
    secrets: Annotated[EnvMap, AfterValidator(_secret_refs)] = Field(default_factory=dict)
    task_role_policies: Annotated[
        tuple[str | Mapping[str, Any], ...], _parsed(_task_role_policies)
    ] = ()
    #: Customer-managed KMS keys that encrypt ``secrets`` (the execution role may decrypt).
    secrets_kms_key_arns: Annotated[
        tuple[str, ...],
        _parsed(
            _list_of(
                _matching(
                    _KMS_KEY_ARN_RE, "a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; no aliases)"
                )
            )
        ),
    ] = ()
    registry_prefix: Annotated[str | None, _parsed(_registry)] = None
    subnet_ids: SubnetIds = ()
    assign_public_ip: Annotated[bool | None, _parsed(_bool)] = None
    #: Organisation runner group for this profile's JIT runners (None: ``runner_group_id``).
    runner_group_id: RunnerGroupId | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Rules between this profile's keys (each key is valid on its own here)."""
        problems: list[Problem] = []
        allowed_memory = FARGATE_CPU_MEMORY.get(self.cpu)
        if allowed_memory is None:
            problems.append(
                Problem(
                    "cpu",
                    f"{self.cpu} is not a Fargate cpu value "
                    f"(allowed: {', '.join(str(c) for c in FARGATE_CPU_MEMORY)})",
                )
            )
        elif self.memory not in allowed_memory:
            problems.append(
                Problem(
                    "memory",
                    f"{self.memory} is not valid with cpu {self.cpu} "
                    f"(allowed: {_describe_allowed(allowed_memory)})",
                )
            )
        architecture = rules.architecture_problem(self.architecture, self.labels)
        if architecture is not None:
            problems.append(Problem("labels", architecture))
        provided = set(self.environment) | set(self.secrets)
        problems += [
            Problem(
                f"required_env[{i}]",
                f"{name!r} is neither in this profile's environment nor its secrets, "
                "so every runner would refuse to start",
            )
            for i, name in enumerate(self.required_env)
            if name not in provided
        ]
        problems += [
            Problem(f"secrets.{name}", f"{name!r} is also in this profile's environment")
            for name in self.secrets
            if name in self.environment
        ]
        if self.secrets_kms_key_arns and not self.secrets:
            problems.append(Problem("secrets_kms_key_arns", "is only used with secrets"))
        _raise_all(problems)
        return self

    @property
    def policy(self) -> Policy:
        """The profile's policy (shared with the Lambda and the runner hook)."""
        data = {key: list(getattr(self, key)) for key in POLICY_KEYS if getattr(self, key)}
        return policy_from_dict(self.name, data, where="")

    def lambda_entry(
        self, task_definition_arn: str, container_name: str, task_role_id: str
    ) -> dict[str, Any]:
        """This profile's item of the Lambda's ``RUNNER_PROFILES`` (see docs/contract.md).

        The one place that decides what the Lambda learns about a profile; the
        construct passes a task definition ARN and role id tokens, local mode
        real values. ``task_role_id`` binds each JIT config to one task's session.
        """
        entry: dict[str, Any] = {
            "name": self.name,
            "labels": list(self.labels),
            "task_definition": task_definition_arn,
            "container_name": container_name,
            "task_role_id": task_role_id,
            "capacity": self.capacity,
        }
        entry["max_runners"] = self.effective_max_runners
        if self.policy.restricted:
            entry["policy"] = self.policy.to_dict()
        if self.subnet_ids:
            entry["subnet_ids"] = list(self.subnet_ids)
        if self.assign_public_ip is not None:
            entry["assign_public_ip"] = self.assign_public_ip
        if self.runner_group_id is not None:
            entry["runner_group_id"] = self.runner_group_id
        return entry

    @property
    def effective_max_runners(self) -> int:
        """``max_runners``, or the default cap for this profile's task size."""
        return self.max_runners if self.max_runners is not None else default_max_runners(self.cpu)

    @property
    def effective_image(self) -> str:
        """``image`` with its registry replaced by ``registry_prefix`` (e.g. an ECR cache)."""
        if not self.registry_prefix:
            return self.image
        first, _, rest = self.image.partition("/")
        has_registry = bool(rest) and ("." in first or ":" in first or first == "localhost")
        path = rest if has_registry else self.image
        return f"{self.registry_prefix.rstrip('/')}/{path}"

    @property
    def label_set(self) -> frozenset[str]:
        """The labels, lowercased, as GitHub compares them."""
        return frozenset(label.lower() for label in self.labels)


PROFILE_KEYS: frozenset[str] = frozenset(RunnerProfile.model_fields)


def _profile_set_problems(profiles: Sequence[RunnerProfile], key: str) -> list[Problem]:
    """Unique names, and no profile that can never be picked.

    The Lambda gives a job the first profile (config order) whose labels include all
    of the job's labels (lambda_fn/routing.py): a profile whose labels are a subset of
    an earlier profile's never gets a job.
    """
    problems: list[Problem] = []
    for j, later in enumerate(profiles):
        names = [p.name for p in profiles[:j]]
        if later.name in names:
            problems.append(
                Problem(
                    f"{key}[{j}].name",
                    f"duplicate profile name {later.name!r} "
                    f"(also {key}[{names.index(later.name)}].name)",
                )
            )
        for i, earlier in enumerate(profiles[:j]):
            if later.label_set <= earlier.label_set:
                problems.append(Problem(f"{key}[{j}].labels", _shadowed(later, earlier, i, key)))
                break
    return problems


def _shadowed(later: RunnerProfile, earlier: RunnerProfile, i: int, key: str) -> str:
    if later.label_set == earlier.label_set:
        return f"same label set as {key}[{i}].labels (labels compare case-insensitively)"
    why = (
        f"{', '.join(later.labels)} is a subset of {key}[{i}].labels ({earlier.name!r}), "
        f"which comes first, so no job can ever reach {later.name!r}"
    )
    if earlier.policy.restricted and not later.policy.restricted:
        why += (
            f"; worse, {earlier.name!r} is restricted, so the ordinary jobs meant for "
            f"{later.name!r} go to it and are refused"
        )
    return f"{why}: list {later.name!r} before {earlier.name!r}, or give it a label of its own"


def _profiles(value: Any, key: str = "") -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(key, f"is not valid JSON ({exc.msg})") from None
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(key, "must be a non-empty list of profile objects")
    return value


# ---------------------------------------------------------------------------
# Deployment-wide keys, shared by cdk.json and the construct's props
# ---------------------------------------------------------------------------


def _github_api_url(value: Any, key: str = "") -> str:
    return _checked(rules.github_api_url_problem)(value, key).rstrip("/")


def _source_cidrs(value: Any, key: str = "") -> tuple[str, ...]:
    try:
        return SourceRanges.parse(_str_list(value, key), "").all
    except SourceRangesError as exc:
        where, _, problem = str(exc).partition(": ")
        raise ConfigError(where, problem) from None


def _hook_path(value: Any, key: str = "") -> str:
    path = _str(value, key).strip("/")
    if not _HOOK_PATH_RE.match(path):
        raise ConfigError(
            key, f"{path!r} must look like repos/OWNER/REPO/hooks/ID or orgs/ORG/hooks/ID"
        )
    return path


def _throttle_rate(value: Any, key: str = "") -> float:
    rate = _number(value, key)
    if not rate > 0:
        raise ConfigError(key, f"{rate:g} must be > 0")
    return rate


_ONLY_WITH_ENDPOINTS = "is only used with vpc_endpoints"


class _Deployment(_Model):
    """Keys ``cdk.json`` and ``FargateRunnersProps`` share, and the rules between them."""

    profiles: Annotated[tuple[RunnerProfile, ...], _parsed(_profiles)] = (
        RunnerProfile(name="default", labels=DEFAULT_PROFILE_LABELS),
    )
    runner_scope: Annotated[str, _parsed(_one_of(RUNNER_SCOPES))] = "repo"
    runner_group_id: RunnerGroupId = 1
    allowed_repositories: Annotated[
        tuple[str, ...], _parsed(_list_of(_checked(repository_pattern_problem)))
    ] = ()
    github_api_url: Annotated[str, _parsed(_github_api_url)] = DEFAULT_GITHUB_API_URL
    subnet_ids: Annotated[SubnetIds, AfterValidator(_unique)] = ()
    assign_public_ip: Annotated[bool | None, _parsed(_bool)] = None
    vpc_endpoints: Bool = False
    vpc_endpoint_route_table_ids: Annotated[
        tuple[str, ...],
        _parsed(_list_of(_matching(_ROUTE_TABLE_ID_RE, "a route table id (rtb-...)"))),
    ] = ()
    api_gateway_logging: Annotated[str, _parsed(_one_of(API_GATEWAY_LOGGING))] = "off"
    webhook_throttle_rate: Annotated[float, _parsed(_throttle_rate)] = 20.0
    webhook_throttle_burst: Annotated[int, _parsed(_ranged(1, 5000))] = 40
    webhook_firewall: Bool = True
    webhook_source_cidrs: Annotated[tuple[str, ...] | None, _parsed(_source_cidrs)] = None
    webhook_rate_limit: Annotated[int, _parsed(_ranged(*RATE_LIMIT_RANGE))] = 2000
    retry_max_attempts: Annotated[int, _parsed(_ranged(1, 20))] = 8
    runner_idle_timeout_seconds: Annotated[int, _parsed(_ranged(0, 86_400))] = 900
    github_hook_path: Annotated[str | None, _parsed(_hook_path)] = None

    def _existing_vpc(self) -> bool:
        raise NotImplementedError

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Rules between keys (each key is valid on its own here)."""
        _raise_all(self._problems())
        return self

    def _problems(self) -> list[Problem]:
        problems = _profile_set_problems(self.profiles, "profiles")
        problems += self._network_problems()
        if self.runner_scope != "org":
            # Runner groups exist only for organisation (and enterprise) runners: with
            # repo scope the binding the operator asked for would not exist.
            problems += [
                Problem(
                    f"profiles[{i}].runner_group_id",
                    "runner groups exist only for organisation runners: set runner_scope "
                    "to org, or remove the key",
                )
                for i, profile in enumerate(self.profiles)
                if profile.runner_group_id is not None
            ]
        if (
            self.webhook_firewall
            and self.webhook_source_cidrs is None
            and self.github_api_url != DEFAULT_GITHUB_API_URL
        ):
            problems.append(
                Problem(
                    "webhook_source_cidrs",
                    "is required with a GitHub Enterprise Server or GHE.com github_api_url: "
                    "list the addresses your server delivers webhooks from (or set "
                    "webhook_firewall to false)",
                )
            )
        return problems

    def _network_problems(self) -> list[Problem]:
        """Runner tasks must reach GitHub and pull their image (README: Networks)."""
        vpc = self._name("vpc_id")
        if self._existing_vpc():
            if self.vpc_endpoints and not self.vpc_endpoint_route_table_ids:
                return [
                    Problem(
                        "vpc_endpoint_route_table_ids",
                        "is required with vpc_endpoints (the S3 gateway endpoint goes on "
                        "these route tables)",
                    )
                ]
            if self.vpc_endpoint_route_table_ids and not self.vpc_endpoints:
                return [Problem("vpc_endpoint_route_table_ids", _ONLY_WITH_ENDPOINTS)]
            return []
        # The stack's own VPC: public subnets only, no NAT gateway.
        no_nat = (
            "the stack's own VPC has public subnets and no NAT gateway, so a task without a "
            "public IP cannot pull its image or reach GitHub"
        )
        problems = []
        if self.vpc_endpoints:
            problems.append(
                Problem(
                    "vpc_endpoints",
                    f"needs {vpc} and subnet_ids (private subnets): the new VPC is public-only",
                )
            )
        elif self.vpc_endpoint_route_table_ids:
            problems.append(Problem("vpc_endpoint_route_table_ids", _ONLY_WITH_ENDPOINTS))
        if self.subnet_ids:
            problems.append(Problem("vpc_id", "is required when subnet_ids is set"))
        if self.assign_public_ip is False:
            problems.append(
                Problem(
                    "assign_public_ip",
                    f"false: {no_nat}; remove the key, or set {vpc} and subnet_ids to "
                    "subnets with a NAT gateway or proxy",
                )
            )
        for i, profile in enumerate(self.profiles):
            if profile.subnet_ids:
                problems.append(
                    Problem(
                        f"profiles[{i}].subnet_ids",
                        f"needs {vpc} (and subnet_ids): the stack's own VPC is created at "
                        "deploy time, so no existing subnet can be in it",
                    )
                )
            if profile.assign_public_ip is False:
                problems.append(
                    Problem(
                        f"profiles[{i}].assign_public_ip",
                        f"false: {no_nat}; remove the key, or set {vpc} and subnet_ids",
                    )
                )
        return problems


# ---------------------------------------------------------------------------
# cdk.json
# ---------------------------------------------------------------------------


def _retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            "",
            f"{days} is not a CloudWatch Logs retention value "
            f"(allowed: {', '.join(str(d) for d in LOG_RETENTION_DAYS)})",
        )
    return days


class RunnersConfig(_Deployment):
    """The whole app configuration, from the ``cdk.json`` context (see README.md)."""

    KEY_KIND: ClassVar[str] = "context key"

    stack_name: Annotated[
        str,
        _parsed(
            _matching(
                _STACK_NAME_RE,
                "a valid CloudFormation stack name (letter first, then letters, digits, "
                "hyphens; at most 128)",
            )
        ),
    ] = DEFAULT_STACK_NAME
    github_token_secret_arn: Annotated[
        str | None,
        _parsed(
            _matching(
                _SECRET_ARN_RE,
                "a complete Secrets Manager secret ARN "
                "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)",
            )
        ),
    ] = None
    vpc_id: Annotated[str | None, _parsed(_matching(_VPC_ID_RE, "a VPC id (vpc-0123abcd...)"))] = (
        None
    )
    log_retention_days: Annotated[int, _parsed(_int), AfterValidator(_retention)] = 30
    log_removal_policy: Annotated[str, _parsed(_one_of(LOG_REMOVAL_POLICIES))] = "destroy"
    alarm_email: Annotated[str | None, _parsed(_matching(_EMAIL_RE, "an e-mail address"))] = None
    alarm_topic_arn: Annotated[
        str | None,
        _parsed(_matching(_TOPIC_ARN_RE, "an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")),
    ] = None
    reconcile_interval_minutes: Annotated[int, _parsed(_ranged(1, 60))] = 5

    def _existing_vpc(self) -> bool:
        return self.vpc_id is not None

    def _problems(self) -> list[Problem]:
        problems = super()._problems()
        if self.vpc_id is not None and not self.subnet_ids:
            given = "subnet_ids" in self.model_fields_set
            problems.append(
                Problem(
                    "subnet_ids",
                    "must list at least one subnet" if given else "is required when vpc_id is set",
                )
            )
        if self.alarm_email is not None and self.alarm_topic_arn is not None:
            problems.append(Problem("alarm_email", "give alarm_email or alarm_topic_arn, not both"))
        problems += [
            Problem("stack_name", problem)
            for problem in rules.name_prefix_problems(
                self.stack_name,
                webhook_firewall=self.webhook_firewall,
                profile_names=[p.name for p in self.profiles],
            )
        ]
        return problems

    @property
    def uses_existing_vpc(self) -> bool:
        return self.vpc_id is not None

    @property
    def effective_assign_public_ip(self) -> bool:
        """Default: true for the new public-subnet-only VPC, false for an existing VPC."""
        if self.assign_public_ip is not None:
            return self.assign_public_ip
        return not self.uses_existing_vpc


TOP_LEVEL_KEYS: frozenset[str] = frozenset(RunnersConfig.model_fields)


def _is_cdk_key(key: str) -> bool:
    return key in CDK_KEYS or any(mark in key for mark in ":/@")


def load_config(context: Mapping[str, Any]) -> RunnersConfig:
    """Build a validated :class:`RunnersConfig` from CDK context values.

    Raises :class:`ConfigError` listing every problem found.
    """
    # ``null`` in cdk.json means "use the default".
    ours = {
        key: value for key, value in context.items() if not _is_cdk_key(key) and value is not None
    }
    return RunnersConfig.validated(ours)


# ---------------------------------------------------------------------------
# The construct's props
# ---------------------------------------------------------------------------


def _name_prefix(value: Any, key: str = "") -> str:
    text = _str(value, key)
    # Checked against the profiles in check_names, where the prefix is final.
    problems = rules.name_prefix_problems(text, webhook_firewall=False, profile_names=())
    if problems:
        raise ConfigError(key, problems[0])
    return text


class ConstructSettings(_Deployment):
    """The plain-data ``FargateRunnersProps`` fields, validated like ``cdk.json``.

    Fields keep their ``cdk.json`` names; errors use the props' names (``KEY_NAMES``).
    """

    KEY_KIND: ClassVar[str] = "FargateRunnersProps field"
    KEY_NAMES: ClassVar[Mapping[str, str]] = {
        "vpc_id": "vpc",
        "webhook_throttle_rate": "throttling_rate_limit",
        "webhook_throttle_burst": "throttling_burst_limit",
    }

    #: ``props.vpc`` is set (an existing VPC, or one the user's app creates).
    existing_vpc: bool = False
    name_prefix: Annotated[str | None, _parsed(_name_prefix)] = None
    runner_name_prefix: Annotated[
        str | None, _parsed(_checked(rules.runner_name_prefix_problem))
    ] = None

    def _existing_vpc(self) -> bool:
        return self.existing_vpc


#: ``FargateRunnersProps`` attribute -> ``ConstructSettings`` field.
_PROPS_FIELDS = {
    ConstructSettings.KEY_NAMES.get(name, name): name
    for name in ConstructSettings.model_fields
    if name != "existing_vpc"
}


def check_construct_props(props: Any) -> ConstructSettings:
    """Validate a ``FargateRunnersProps`` (duck-typed: no ``aws_cdk`` here) like cdk.json."""
    data = {field: getattr(props, attribute) for attribute, field in _PROPS_FIELDS.items()}
    data["existing_vpc"] = getattr(props, "vpc", None) is not None
    return ConstructSettings.validated(data)


def check_names(
    prefix: str,
    *,
    key: str,
    webhook_firewall: bool,
    profiles: Iterable[RunnerProfile],
) -> None:
    """Names built from ``prefix`` must fit the AWS and Lambda limits (see rules.py)."""
    problems = rules.name_prefix_problems(
        prefix, webhook_firewall=webhook_firewall, profile_names=[p.name for p in profiles]
    )
    _raise_all([Problem(key, problem) for problem in problems])
