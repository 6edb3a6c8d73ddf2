"""Typed, validated configuration read from the CDK context (``cdk.json``).

This module does not import ``aws_cdk``: it is plain Python so that it is fast
to test and usable from anywhere.

Context keys
============

Keys that look like ``lower_snake_case`` belong to this app; an unknown one is
an error (typos are caught at synth time). Any other key (CDK feature flags
such as ``@aws-cdk/...``, ``aws:cdk:...`` keys the CLI injects, lookups cached
in ``cdk.context.json``) is left to CDK. Values given on the command line with
``-c key=value`` arrive as strings: numbers, booleans, JSON lists and
comma-separated lists are accepted in string form too. ``null`` means default.

``stack_name`` (default ``FargateRunners``)
    CloudFormation stack name, ``^[A-Za-z][A-Za-z0-9-]{0,127}$``. Also the prefix of
    task definition families (``<stack_name>-runner-<profile>``) and, lowercased,
    of runner names.
``profiles`` (default: one profile ``default``, labels ``self-hosted, linux, arm64, fargate``)
    Runner profiles, see below.
``runner_scope`` (default ``repo``)
    Where just-in-time runners are registered: ``repo`` or ``org``.
``runner_group_id`` (default ``1``)
    Runner group id used for the JIT config (>= 1).
``allowed_repositories`` (default empty = any repository)
    List of ``owner/repo`` or ``owner/*``; a comma-separated string is accepted too.
``github_api_url`` (default ``https://api.github.com``)
    GitHub REST base URL, must be ``https://`` (GHES: ``https://HOST/api/v3``).
``github_token_secret_arn`` (default unset: a new, empty secret is created)
    Complete ARN of an existing Secrets Manager secret holding the PAT (plain string).
``github_auth`` (default ``pat``)
    How the Lambdas authenticate to GitHub: ``pat`` (the PAT in the token secret) or
    ``app`` (a GitHub App's installation tokens; its private key lives only in KMS,
    imported by ``fargate-runners setup --app-id ... --private-key app.pem``).
``github_app_id`` (required with ``github_auth: app``)
    The GitHub App's ID (digits) or client ID (``Iv…``): the JWT's issuer.
``github_app_key_arn`` (default unset: with ``github_auth: app`` the stack creates a KMS key,
    ``RSA_2048`` ``SIGN_VERIFY``, origin ``EXTERNAL``, awaiting the App key's import)
    An existing such KMS key (ARN) to sign the App's JWT with; only the dispatching Lambdas
    may ``kms:Sign`` with it.
``vpc_id`` (default unset: a new VPC)
    Existing VPC for runner tasks; requires ``subnet_ids``. No lookups are made.
``subnet_ids`` (default unset)
    Existing subnets for runner tasks (list or comma-separated); requires ``vpc_id``.
``assign_public_ip`` (default ``true`` for the new VPC, ``false`` for an existing VPC)
    Give runner tasks a public IP (needed in public subnets without NAT, to pull
    images and reach GitHub).
``log_retention_days`` (default ``30``)
    Retention of every log group; one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180,
    365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653.
``vpc_endpoints`` (default ``false``)
    Interface endpoints (ECR API and Docker, CloudWatch Logs, Secrets Manager, STS)
    in ``subnet_ids`` and an S3 gateway endpoint on ``vpc_endpoint_route_table_ids``,
    for runner tasks in private subnets; requires ``vpc_id``.
``vpc_endpoint_route_table_ids`` (default unset)
    Route tables of the private subnets, for the S3 gateway endpoint; required
    with ``vpc_endpoints``.
``log_removal_policy`` (default ``destroy``)
    What ``cdk destroy`` does with the stack's log groups: ``destroy`` or ``retain``.
``api_gateway_logging`` (default ``off``)
    ``off``: no API access or execution logs and the account-wide API Gateway
    CloudWatch role setting untouched; ``existing``: the region's API Gateway account
    already has that role, turn the logs on; ``create``: also set it (region-wide).
``webhook_throttle_rate`` (default ``20``)
    API stage steady-state rate limit, requests per second (> 0).
``webhook_throttle_burst`` (default ``40``)
    API stage burst limit (1..5000).
``webhook_firewall`` (default ``true``)
    An AWS WAF web ACL on the API stage that refuses requests from outside GitHub's
    webhook source ranges before they reach the stage throttle, and rate-limits each
    source. ``false`` removes it (and its cost; see the README).
``webhook_source_cidrs`` (default unset: github.com's ``hooks`` ranges from ``/meta``,
    refreshed hourly)
    The CIDRs deliveries come from (IPv4 and IPv6, none broader than /8 or /16);
    required for GitHub Enterprise Server (``github_api_url`` other than
    ``https://api.github.com``) when ``webhook_firewall`` is on. Given, the list is
    fixed: no refresh.
``webhook_rate_limit`` (default ``2000``)
    Requests per source address per 5 minutes before the web ACL blocks that address
    (10..2000000000).

The new VPC (when ``vpc_id`` is unset) has public subnets only in 2 AZs, no
NAT gateway (no hourly cost), and VPC flow logs to CloudWatch Logs.

Profile keys (each item of ``profiles``)
----------------------------------------

``name`` (required)
    ``^[a-z0-9][a-z0-9-]{0,30}$``, unique among profiles.
``labels`` (required)
    Non-empty list of labels (or a comma-separated string). A job runs on the profile
    whose labels contain all of the job's labels (case-insensitive); two profiles may
    not have the same label set.
``cpu`` (default ``1024``)
    Fargate task CPU units: 256, 512, 1024, 2048, 4096, 8192, 16384.
``memory`` (default ``2048``)
    Task memory in MiB, valid for ``cpu`` per Fargate's table (256: 512-2048;
    512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384; 4096: 8192-30720, steps of
    1024; 8192: 16384-61440, steps of 4096; 16384: 32768-122880, steps of 8192).
``architecture`` (default ``ARM64``)
    ``ARM64`` or ``X86_64``.
``ephemeral_storage_gib`` (default ``21``)
    Task ephemeral storage, 21..200 GiB.
``secrets_kms_key_arns`` (default empty)
    Customer-managed KMS keys of the profile's ``secrets``: the execution role may
    ``kms:Decrypt`` with them through Secrets Manager.
``image`` (default ``ghcr.io/actions/actions-runner:2.332.0``)
    Runner container image; it must provide ``/home/runner/run.sh`` and uid 1001.
``max_runners`` (default: 64 vCPUs' worth, see :func:`default_max_runners`)
    At most this many pending or running tasks of the profile (1..10000); further
    jobs wait in the retry queue.
``runner_group_id`` (default: the top-level ``runner_group_id``)
    Organisation runner group for this profile's runners (``runner_scope: org`` only).
``allowed_repositories``, ``allowed_refs``, ``allowed_workflows``, ``allowed_events``,
``required_env`` (default unset)
    Make the profile restricted. An empty list is an error: omit the key to allow any.

Adding a profile key: add a field to :class:`RunnerProfile`, a parser to
``_PROFILE_PARSERS`` (the one list of allowed keys) and, if the Lambda needs
it, an entry in ``fargate_runners.props.lambda_profile_entry``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlparse

from lambda_fn.policy import EMPTY_RULE_PROBLEM, Policy, PolicyError, policy_from_dict
from lambda_fn.source_ranges import SourceRanges, SourceRangesError

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_PROFILE_LABELS",
    "FARGATE_CPU_MEMORY",
    "LOG_RETENTION_DAYS",
    "PROFILE_KEYS",
    "TOP_LEVEL_KEYS",
    "ConfigError",
    "RunnerProfile",
    "RunnersConfig",
    "load_config",
]

DEFAULT_IMAGE = "ghcr.io/actions/actions-runner:2.332.0"
DEFAULT_PROFILE_LABELS = ("self-hosted", "linux", "arm64", "fargate")
DEFAULT_STACK_NAME = "FargateRunners"
DEFAULT_GITHUB_API_URL = "https://api.github.com"

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

EPHEMERAL_STORAGE_RANGE = (21, 200)

_PROFILE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_VPC_ID_RE = re.compile(r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_SUBNET_ID_RE = re.compile(r"^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_ROUTE_TABLE_ID_RE = re.compile(r"^rtb-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_SECRET_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)
_LABEL_RE = re.compile(r"^[^\s,]{1,100}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TOPIC_ARN_RE = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
_HOOK_PATH_RE = re.compile(
    r"^((repos/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|orgs/[A-Za-z0-9_-]+)/hooks/\d+|app/hook)$"
)
#: A GitHub App's ID (digits) or client ID (``Iv1.…``, ``Iv23…``), as lambda_fn/config.py.
_APP_ID_RE = re.compile(r"^([1-9][0-9]{0,18}|Iv[0-9A-Za-z.]{4,60})$")
GITHUB_AUTH = ("pat", "app")
_OUR_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class ConfigError(ValueError):
    """A configuration value is invalid; ``key`` names it (e.g. ``profiles[1].memory``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key nested under ``prefix``."""
        return ConfigError(f"{prefix}.{self.key}", self.problem)


# ---------------------------------------------------------------------------
# Scalar parsers. Each takes (value, key) and returns the typed value or raises
# ConfigError naming ``key``.
# ---------------------------------------------------------------------------


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ConfigError(key, f"{value!r} is not an integer")


def _runner_group_id(value: Any, key: str) -> int:
    group = _int(value, key)
    if group < 1:
        raise ConfigError(key, f"{group} must be >= 1")
    return group


def _number(value: Any, key: str) -> float:
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


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(key, f"{value!r} is not a boolean (true or false)")


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"{value!r} is not a string")
    text: str = value.strip()
    if not text:
        raise ConfigError(key, "must not be empty")
    return text


def _str_list(value: Any, key: str) -> tuple[str, ...]:
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
    return tuple(_str(item, f"{key}[{i}]") for i, item in enumerate(value))


def _one_of(value: Any, key: str, allowed: Sequence[str], *, upper: bool = False) -> str:
    text = _str(value, key)
    norm = text.upper() if upper else text.lower()
    if norm not in allowed:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(allowed)}")
    return norm


def _suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe_allowed(values: Sequence[int]) -> str:
    if len(values) <= 4:
        return ", ".join(str(v) for v in values)
    step = values[1] - values[0]
    return f"{values[0]} to {values[-1]} in steps of {step}"


# ---------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------


#: Profile keys that form its policy (``lambda_fn.policy.Policy`` fields).
POLICY_KEYS = (
    "allowed_repositories",
    "allowed_refs",
    "allowed_workflows",
    "allowed_events",
    "required_env",
)
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Variables the runner or entrypoint owns: a profile may not set them.
_RESERVED_ENV_PREFIXES = ("ACTIONS_", "GITHUB_", "RUNNER_")
_SECRET_REF_RE = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:\S+$")
_POLICY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(aws|\d{12}):policy/\S+$")


def _str_map(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be an object of NAME: value")
    return {str(k): _str(v, f"{key}.{k}") for k, v in value.items()}


def _policy_list(value: Any, key: str) -> tuple[str | Mapping[str, Any], ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(key, "must be a list of managed policy ARNs or IAM statements")
    return tuple(value)


def _check_task_role_policy(item: Any, key: str) -> None:
    if isinstance(item, str):
        if not _POLICY_ARN_RE.match(item):
            raise ConfigError(key, f"{item!r} is not a managed policy ARN")
        return
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


@dataclass(frozen=True)
class RunnerProfile:
    """One kind of runner: a Fargate task definition plus the labels that select it.

    Constructing one validates it (``ConfigError`` keys are relative to the
    profile, e.g. ``memory``; :func:`load_config` prefixes ``profiles[i].``).
    """

    name: str
    labels: tuple[str, ...]
    cpu: int = 1024
    memory: int = 2048
    architecture: str = "ARM64"
    ephemeral_storage_gib: int = 21
    image: str = DEFAULT_IMAGE
    capacity: str = "FARGATE"
    max_runners: int | None = None
    # Restricted profiles (checked at dispatch and by the runner's job-started hook):
    allowed_repositories: tuple[str, ...] = ()
    allowed_refs: tuple[str, ...] = ()
    allowed_workflows: tuple[str, ...] = ()
    allowed_events: tuple[str, ...] = ()
    required_env: tuple[str, ...] = ()
    # What the task gets:
    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    task_role_policies: tuple[str | Mapping[str, Any], ...] = ()
    #: Customer-managed KMS keys that encrypt ``secrets`` (the execution role may decrypt).
    secrets_kms_key_arns: tuple[str, ...] = ()
    registry_prefix: str | None = None
    subnet_ids: tuple[str, ...] = ()
    assign_public_ip: bool | None = None
    #: Organisation runner group for this profile's JIT runners (None: ``runner_group_id``).
    runner_group_id: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.labels, str) or not isinstance(self.labels, Sequence):
            raise ConfigError("labels", "must be a non-empty list of labels")
        object.__setattr__(self, "labels", tuple(self.labels))
        if not isinstance(self.name, str) or not _PROFILE_NAME_RE.match(self.name):
            raise ConfigError(
                "name",
                f"{self.name!r} must match ^[a-z0-9][a-z0-9-]{{0,30}}$ "
                "(lowercase letters, digits, hyphens; at most 31 characters)",
            )
        if not self.labels:
            raise ConfigError("labels", "must be a non-empty list of labels")
        for i, label in enumerate(self.labels):
            if not isinstance(label, str) or not _LABEL_RE.match(label):
                raise ConfigError(
                    f"labels[{i}]", f"{label!r} is not a valid label (no spaces or commas)"
                )
        lowered = [label.lower() for label in self.labels]
        for i, label in enumerate(lowered):
            if label in lowered[:i]:
                raise ConfigError(f"labels[{i}]", f"{self.labels[i]!r} is repeated")
        if self.cpu not in FARGATE_CPU_MEMORY:
            raise ConfigError(
                "cpu",
                f"{self.cpu} is not a Fargate cpu value "
                f"(allowed: {', '.join(str(c) for c in FARGATE_CPU_MEMORY)})",
            )
        allowed_memory = FARGATE_CPU_MEMORY[self.cpu]
        if self.memory not in allowed_memory:
            raise ConfigError(
                "memory",
                f"{self.memory} is not valid with cpu {self.cpu} "
                f"(allowed: {_describe_allowed(allowed_memory)})",
            )
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                "architecture",
                f"{self.architecture!r} is not one of {', '.join(ARCHITECTURES)}",
            )
        self._check_task_size()
        self._check_restrictions()

    def _check_task_size(self) -> None:
        """Fargate storage, image reference, capacity and runner cap."""
        low, high = EPHEMERAL_STORAGE_RANGE
        if not low <= self.ephemeral_storage_gib <= high:
            raise ConfigError(
                "ephemeral_storage_gib",
                f"{self.ephemeral_storage_gib} is outside {low}..{high}",
            )
        if not self.image or any(ch.isspace() for ch in self.image):
            raise ConfigError("image", f"{self.image!r} is not a container image reference")
        if self.capacity not in CAPACITIES:
            raise ConfigError(
                "capacity", f"{self.capacity!r} is not one of {', '.join(CAPACITIES)}"
            )
        if self.max_runners is not None and not 1 <= self.max_runners <= 10_000:
            raise ConfigError("max_runners", f"{self.max_runners} is outside 1..10000")

    def _check_restrictions(self) -> None:
        """Policy, task environment, secrets, role policies, registry and subnets."""
        self.policy  # validates the policy keys  # noqa: B018
        provided = set(self.environment) | set(self.secrets)
        for i, name in enumerate(self.required_env):
            if name not in provided:
                raise ConfigError(
                    f"required_env[{i}]",
                    f"{name!r} is neither in this profile's environment nor its secrets, "
                    "so every runner would refuse to start",
                )
        for name in (*self.environment, *self.secrets):
            if not _ENV_NAME_RE.match(name) or name.startswith(_RESERVED_ENV_PREFIXES):
                raise ConfigError(
                    "environment" if name in self.environment else "secrets",
                    f"{name!r} is not an allowed variable name (reserved: "
                    f"{', '.join(p + '*' for p in _RESERVED_ENV_PREFIXES)})",
                )
        for name in self.secrets:
            if name in self.environment:
                raise ConfigError(
                    f"secrets.{name}", f"{name!r} is also in this profile's environment"
                )
        for name, arn in self.secrets.items():
            if not _SECRET_REF_RE.match(arn):
                raise ConfigError(f"secrets.{name}", f"{arn!r} is not a Secrets Manager ARN")
        self._check_secret_keys()
        for i, item in enumerate(self.task_role_policies):
            _check_task_role_policy(item, f"task_role_policies[{i}]")
        if self.registry_prefix is not None and (
            not self.registry_prefix or any(c.isspace() for c in self.registry_prefix)
        ):
            raise ConfigError("registry_prefix", f"{self.registry_prefix!r} is not a registry")
        for i, subnet in enumerate(self.subnet_ids):
            if not _SUBNET_ID_RE.match(subnet):
                raise ConfigError(f"subnet_ids[{i}]", f"{subnet!r} is not a subnet id")

    def _check_secret_keys(self) -> None:
        for i, key in enumerate(self.secrets_kms_key_arns):
            if not _KMS_KEY_ARN_RE.match(key):
                raise ConfigError(
                    f"secrets_kms_key_arns[{i}]",
                    f"{key!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; no aliases)",
                )
        if self.secrets_kms_key_arns and not self.secrets:
            raise ConfigError("secrets_kms_key_arns", "is only used with secrets")

    @property
    def policy(self) -> Policy:
        """The profile's policy (shared with the Lambda and the runner hook)."""
        data = {key: list(getattr(self, key)) for key in POLICY_KEYS if getattr(self, key)}
        try:
            return policy_from_dict(self.name, data, where="")
        except PolicyError as exc:
            key, _, message = str(exc).partition(": ")
            raise ConfigError(key.lstrip(".") or "policy", message or str(exc)) from None

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


#: The allowed profile keys and how each is parsed: the ONE place to add a key.
_PROFILE_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "name": _str,
    "labels": _str_list,
    "cpu": _int,
    "memory": _int,
    "architecture": lambda v, k: _one_of(v, k, ARCHITECTURES, upper=True),
    "ephemeral_storage_gib": _int,
    "image": _str,
    "capacity": lambda v, k: _one_of(v, k, CAPACITIES, upper=True),
    "max_runners": _int,
    "allowed_repositories": _str_list,
    "allowed_refs": _str_list,
    "allowed_workflows": _str_list,
    "allowed_events": _str_list,
    "required_env": _str_list,
    "environment": _str_map,
    "secrets": _str_map,
    "task_role_policies": _policy_list,
    "secrets_kms_key_arns": _str_list,
    "registry_prefix": _str,
    "subnet_ids": _str_list,
    "assign_public_ip": _bool,
    "runner_group_id": _runner_group_id,
}
PROFILE_KEYS: frozenset[str] = frozenset(_PROFILE_PARSERS)
_REQUIRED_PROFILE_KEYS = ("name", "labels")

if {f.name for f in fields(RunnerProfile)} != PROFILE_KEYS:  # pragma: no cover
    raise RuntimeError("_PROFILE_PARSERS and RunnerProfile fields must list the same keys")


def _parse_profile(raw: Any, key: str) -> RunnerProfile:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be an object, got {type(raw).__name__}")
    for name in raw:
        if name not in PROFILE_KEYS:
            raise ConfigError(
                f"{key}.{name}",
                f"unknown profile key{_suggest(str(name), sorted(PROFILE_KEYS))}; "
                f"allowed: {', '.join(sorted(PROFILE_KEYS))}",
            )
    for name in _REQUIRED_PROFILE_KEYS:
        if name not in raw:
            raise ConfigError(f"{key}.{name}", "is required")
    values = {name: _PROFILE_PARSERS[name](value, f"{key}.{name}") for name, value in raw.items()}
    for name in POLICY_KEYS:
        if name in values and not values[name]:
            raise ConfigError(f"{key}.{name}", EMPTY_RULE_PROBLEM)
    try:
        return RunnerProfile(**values)
    except ConfigError as exc:
        raise exc.under(key) from None


def _parse_profiles(value: Any, key: str) -> tuple[RunnerProfile, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(key, f"is not valid JSON ({exc.msg})") from None
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(key, "must be a non-empty list of profile objects")
    profiles = tuple(_parse_profile(item, f"{key}[{i}]") for i, item in enumerate(value))
    check_profiles(profiles, key)
    return profiles


def check_profiles(profiles: Sequence[RunnerProfile], key: str = "profiles") -> None:
    """Cross-profile checks: unique names and unique (case-insensitive) label sets."""
    if not profiles:
        raise ConfigError(key, "must contain at least one profile")
    seen_names: dict[str, int] = {}
    seen_labels: dict[frozenset[str], int] = {}
    for i, profile in enumerate(profiles):
        if profile.name in seen_names:
            raise ConfigError(
                f"{key}[{i}].name",
                f"duplicate profile name {profile.name!r} "
                f"(also {key}[{seen_names[profile.name]}].name)",
            )
        seen_names[profile.name] = i
        if profile.label_set in seen_labels:
            raise ConfigError(
                f"{key}[{i}].labels",
                f"same label set as {key}[{seen_labels[profile.label_set]}].labels "
                "(labels compare case-insensitively)",
            )
        seen_labels[profile.label_set] = i


# ---------------------------------------------------------------------------
# Top level
# ---------------------------------------------------------------------------


def _repo_pattern(value: str, key: str) -> str:
    owner, sep, repo = value.partition("/")
    if (
        not sep
        or not _OWNER_RE.match(owner)
        or not (repo == "*" or (_REPO_RE.match(repo) and repo not in (".", "..")))
    ):
        raise ConfigError(key, f"{value!r} is not 'owner/repo' or 'owner/*'")
    return value


def _github_api_url(value: Any, key: str) -> str:
    text = _str(value, key)
    parsed = urlparse(text)
    if parsed.scheme != "https" or not parsed.netloc:
        raise ConfigError(key, f"{text!r} must be an https:// URL")
    if parsed.query or parsed.fragment:
        raise ConfigError(key, f"{text!r} must not have a query or fragment")
    return text.rstrip("/")


@dataclass(frozen=True)
class RunnersConfig:
    """The whole app configuration (see the module docstring for each key)."""

    stack_name: str = DEFAULT_STACK_NAME
    profiles: tuple[RunnerProfile, ...] = field(
        default_factory=lambda: (RunnerProfile(name="default", labels=DEFAULT_PROFILE_LABELS),)
    )
    runner_scope: str = "repo"
    runner_group_id: int = 1
    allowed_repositories: tuple[str, ...] = ()
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_token_secret_arn: str | None = None
    github_auth: str = "pat"
    github_app_id: str | None = None
    github_app_key_arn: str | None = None
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    assign_public_ip: bool | None = None
    vpc_endpoints: bool = False
    vpc_endpoint_route_table_ids: tuple[str, ...] = ()
    log_retention_days: int = 30
    log_removal_policy: str = "destroy"
    api_gateway_logging: str = "off"
    webhook_throttle_rate: float = 20.0
    webhook_throttle_burst: int = 40
    webhook_firewall: bool = True
    webhook_source_cidrs: tuple[str, ...] | None = None
    webhook_rate_limit: int = 2000
    retry_max_attempts: int = 8
    alarm_email: str | None = None
    alarm_topic_arn: str | None = None
    runner_idle_timeout_seconds: int = 900
    reconcile_interval_minutes: int = 5
    github_hook_path: str | None = None

    @property
    def uses_existing_vpc(self) -> bool:
        return self.vpc_id is not None

    @property
    def effective_assign_public_ip(self) -> bool:
        """Default: true for the new public-subnet-only VPC, false for an existing VPC."""
        if self.assign_public_ip is not None:
            return self.assign_public_ip
        return not self.uses_existing_vpc


TOP_LEVEL_KEYS: frozenset[str] = frozenset(f.name for f in fields(RunnersConfig))


def _stack_name(value: Any, key: str) -> str:
    name = _str(value, key)
    if not _STACK_NAME_RE.match(name):
        raise ConfigError(
            key,
            f"{name!r} is not a valid CloudFormation stack name "
            "(letter first, then letters, digits, hyphens; at most 128)",
        )
    return name


def _allowed_repositories(value: Any, key: str) -> tuple[str, ...]:
    repos = _str_list(value, key)
    return tuple(_repo_pattern(r, f"{key}[{i}]") for i, r in enumerate(repos))


def _secret_arn(value: Any, key: str) -> str:
    arn = _str(value, key)
    if not _SECRET_ARN_RE.match(arn):
        raise ConfigError(
            key,
            f"{arn!r} is not a complete Secrets Manager secret ARN "
            "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)",
        )
    return arn


def _log_retention_days(value: Any, key: str) -> int:
    days = _int(value, key)
    if days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            key,
            f"{days} is not a CloudWatch Logs retention value "
            f"(allowed: {', '.join(str(d) for d in LOG_RETENTION_DAYS)})",
        )
    return days


def _throttle_rate(value: Any, key: str) -> float:
    rate = _number(value, key)
    if not rate > 0:
        raise ConfigError(key, f"{rate:g} must be > 0")
    return rate


def _throttle_burst(value: Any, key: str) -> int:
    burst = _int(value, key)
    if not 1 <= burst <= 5000:
        raise ConfigError(key, f"{burst} is outside 1..5000")
    return burst


def _ranged(low: int, high: int) -> Callable[[Any, str], int]:
    def parse(value: Any, key: str) -> int:
        number = _int(value, key)
        if not low <= number <= high:
            raise ConfigError(key, f"{number} is outside {low}..{high}")
        return number

    return parse


def _email(value: Any, key: str) -> str:
    email = _str(value, key)
    if not _EMAIL_RE.match(email):
        raise ConfigError(key, f"{email!r} is not an e-mail address")
    return email


def _topic_arn(value: Any, key: str) -> str:
    arn = _str(value, key)
    if not _TOPIC_ARN_RE.match(arn):
        raise ConfigError(key, f"{arn!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
    return arn


def _source_cidrs(value: Any, key: str) -> tuple[str, ...]:
    try:
        return SourceRanges.parse(_str_list(value, key), key).all
    except SourceRangesError as exc:
        where, _, problem = str(exc).partition(": ")
        raise ConfigError(where, problem) from None


def _hook_path(value: Any, key: str) -> str:
    path = _str(value, key).strip("/")
    if not _HOOK_PATH_RE.match(path):
        raise ConfigError(
            key,
            f"{path!r} must look like repos/OWNER/REPO/hooks/ID, orgs/ORG/hooks/ID or app/hook",
        )
    return path


#: Top-level keys parsed on their own; the network keys (vpc_id, subnet_ids,
#: assign_public_ip) depend on each other and are handled by _load_network.
_TOP_LEVEL_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "stack_name": _stack_name,
    "profiles": _parse_profiles,
    "runner_scope": lambda v, k: _one_of(v, k, RUNNER_SCOPES),
    "runner_group_id": _runner_group_id,
    "allowed_repositories": _allowed_repositories,
    "github_api_url": _github_api_url,
    "github_token_secret_arn": _secret_arn,
    "github_auth": lambda v, k: _one_of(v, k, GITHUB_AUTH),
    "github_app_id": lambda v, k: _matching(v, k, _APP_ID_RE, "a GitHub App ID or client ID"),
    "github_app_key_arn": lambda v, k: _matching(v, k, _KMS_KEY_ARN_RE, "a KMS key ARN"),
    "log_retention_days": _log_retention_days,
    "log_removal_policy": lambda v, k: _one_of(v, k, LOG_REMOVAL_POLICIES),
    "api_gateway_logging": lambda v, k: _one_of(v, k, API_GATEWAY_LOGGING),
    "webhook_throttle_rate": _throttle_rate,
    "webhook_throttle_burst": _throttle_burst,
    "webhook_firewall": _bool,
    "webhook_source_cidrs": _source_cidrs,
    "webhook_rate_limit": _ranged(*RATE_LIMIT_RANGE),
    "retry_max_attempts": _ranged(1, 20),
    "alarm_email": _email,
    "alarm_topic_arn": _topic_arn,
    "runner_idle_timeout_seconds": _ranged(0, 86_400),
    "reconcile_interval_minutes": _ranged(1, 60),
    "github_hook_path": _hook_path,
}
_NETWORK_KEYS = frozenset(
    {"vpc_id", "subnet_ids", "assign_public_ip", "vpc_endpoints", "vpc_endpoint_route_table_ids"}
)

if set(_TOP_LEVEL_PARSERS) | _NETWORK_KEYS != TOP_LEVEL_KEYS:  # pragma: no cover
    raise RuntimeError(
        "_TOP_LEVEL_PARSERS, _NETWORK_KEYS and RunnersConfig must list the same keys"
    )


def load_config(context: Mapping[str, Any]) -> RunnersConfig:
    """Build a validated :class:`RunnersConfig` from CDK context values.

    Raises :class:`ConfigError` naming the offending key.
    """
    ours = {k: v for k, v in context.items() if _OUR_KEY_RE.match(k)}
    for key in ours:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(
                key,
                f"unknown context key{_suggest(key, sorted(TOP_LEVEL_KEYS))}; "
                f"allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}",
            )
    # ``null`` in cdk.json means "use the default".
    ours = {k: v for k, v in ours.items() if v is not None}
    values: dict[str, Any] = {
        key: parse(ours[key], key) for key, parse in _TOP_LEVEL_PARSERS.items() if key in ours
    }
    _load_network(ours, values)
    _check_runner_groups(values)
    _check_github_app(values)
    if "alarm_email" in values and "alarm_topic_arn" in values:
        raise ConfigError("alarm_email", "give alarm_email or alarm_topic_arn, not both")
    if (
        values.get("webhook_firewall", True)
        and "webhook_source_cidrs" not in values
        and values.get("github_api_url", DEFAULT_GITHUB_API_URL) != DEFAULT_GITHUB_API_URL
    ):
        raise ConfigError(
            "webhook_source_cidrs",
            "is required with a GitHub Enterprise Server github_api_url: list the addresses "
            "your server delivers webhooks from (or set webhook_firewall to false)",
        )
    return RunnersConfig(**values)


def _check_github_app(values: Mapping[str, Any]) -> None:
    """``github_app_id`` goes with ``github_auth: app`` (and the key ARN only with it)."""
    app = values.get("github_auth") == "app"
    if app and "github_app_id" not in values:
        raise ConfigError("github_app_id", "is required with github_auth: app")
    for key in ("github_app_id", "github_app_key_arn"):
        if key in values and not app:
            raise ConfigError(key, "is used only with github_auth: app")


def _matching(value: Any, key: str, pattern: re.Pattern[str], what: str) -> str:
    text = _str(value, key)
    if not pattern.match(text):
        raise ConfigError(key, f"{text[:100]!r} is not {what}")
    return text


def _check_runner_groups(values: Mapping[str, Any]) -> None:
    """A profile's ``runner_group_id`` needs organisation runners.

    Runner groups exist only for organisation (and enterprise) runners; a
    repository's runners are all in its default group, so a group id with
    ``runner_scope: repo`` would bind nothing. Refused rather than ignored,
    because the operator meant to bind the profile's runners on GitHub's side.
    """
    if values.get("runner_scope", "repo") == "org":
        return
    for i, profile in enumerate(values.get("profiles", ())):
        if profile.runner_group_id is not None:
            raise ConfigError(
                f"profiles[{i}].runner_group_id",
                "runner groups exist only for organisation runners: set runner_scope to "
                "org, or remove the key",
            )


def _load_network(ours: Mapping[str, Any], values: dict[str, Any]) -> None:
    has_vpc = "vpc_id" in ours
    has_subnets = "subnet_ids" in ours
    if has_vpc and not has_subnets:
        raise ConfigError("subnet_ids", "is required when vpc_id is set")
    if has_subnets and not has_vpc:
        raise ConfigError("vpc_id", "is required when subnet_ids is set")
    if has_vpc:
        vpc_id = _str(ours["vpc_id"], "vpc_id")
        if not _VPC_ID_RE.match(vpc_id):
            raise ConfigError("vpc_id", f"{vpc_id!r} is not a VPC id (vpc-0123abcd...)")
        subnets = _str_list(ours["subnet_ids"], "subnet_ids")
        if not subnets:
            raise ConfigError("subnet_ids", "must list at least one subnet")
        for i, subnet in enumerate(subnets):
            if not _SUBNET_ID_RE.match(subnet):
                raise ConfigError(
                    f"subnet_ids[{i}]", f"{subnet!r} is not a subnet id (subnet-0123abcd...)"
                )
            if subnet in subnets[:i]:
                raise ConfigError(f"subnet_ids[{i}]", f"{subnet!r} is repeated")
        values["vpc_id"] = vpc_id
        values["subnet_ids"] = subnets
    if "assign_public_ip" in ours:
        values["assign_public_ip"] = _bool(ours["assign_public_ip"], "assign_public_ip")
    _load_vpc_endpoints(ours, values)


def _load_vpc_endpoints(ours: Mapping[str, Any], values: dict[str, Any]) -> None:
    endpoints = _bool(ours.get("vpc_endpoints", False), "vpc_endpoints")
    tables = _str_list(ours.get("vpc_endpoint_route_table_ids", []), "vpc_endpoint_route_table_ids")
    if not endpoints:
        if tables:
            raise ConfigError("vpc_endpoint_route_table_ids", "is only used with vpc_endpoints")
        return
    if "vpc_id" not in values:
        raise ConfigError(
            "vpc_endpoints",
            "needs vpc_id and subnet_ids (private subnets): the new VPC is public-only",
        )
    if not tables:
        raise ConfigError(
            "vpc_endpoint_route_table_ids",
            "is required with vpc_endpoints (the S3 gateway endpoint goes on these route tables)",
        )
    for i, table in enumerate(tables):
        if not _ROUTE_TABLE_ID_RE.match(table):
            raise ConfigError(
                f"vpc_endpoint_route_table_ids[{i}]", f"{table!r} is not a route table id (rtb-...)"
            )
    values["vpc_endpoints"] = True
    values["vpc_endpoint_route_table_ids"] = tables
