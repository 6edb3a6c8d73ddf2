"""Environment variables -> typed, validated settings.

Every variable the Lambda reads is listed in ``lambda_fn.contract`` with its default
(``None`` = required); ``docs/contract.md`` documents the same table. Settings are
parsed once per distinct environment and cached, so a warm invocation pays a
dictionary lookup, while tests (or a long-lived local server) that change the
environment still see the new values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from lambda_fn.contract import (
    LAMBDA_ENVIRONMENT,
    LEGACY_LAMBDA_ENVIRONMENT,
    PROFILE_OPTIONAL_KEYS,
    PROFILE_REQUIRED_KEYS,
    RUNNER_VERSION,
)
from lambda_fn.errors import ConfigError
from lambda_fn.naming import runner_name_prefix_problem

if TYPE_CHECKING:  # imported only when a profile has a policy (kept off the cold start)
    from lambda_fn.policy import Policy
    from lambda_fn.warm_pool import WarmPool


#: GitHub cancels a job queued for self-hosted runners for at least 24 hours (the
#: cancellation itself may take up to 48 h): "Job queue time" in
#: docs.github.com/en/actions/reference/usage-limits-for-self-hosted-runners.
#: Nothing here launches for a job older than this (retry queue, replay window).
QUEUED_JOB_LIMIT_SECONDS = 24 * 3600
#: The reconciler redelivers failed ``workflow_job`` deliveries up to this old.
REDELIVERY_LOOKBACK_SECONDS = 6 * 3600

#: name -> default (``None`` means required): the contract's table, owned there.
ENV_DEFAULTS = LAMBDA_ENVIRONMENT
#: Every variable the settings depend on: the table's and the old names still read.
_ENV_NAMES = (*ENV_DEFAULTS, *LEGACY_LAMBDA_ENVIRONMENT)
#: New name -> the old one read when it is unset (``LEGACY_LAMBDA_ENVIRONMENT``).
_FALLBACKS = {new: old for old, new in LEGACY_LAMBDA_ENVIRONMENT.items()}

#: The longest JIT_SECRET_PREFIX the Lambda accepts (synth checks names against it).
JIT_SECRET_PREFIX_MAX = 200
#: Secrets Manager names allow letters, digits and /_+=.@- (no trailing '/': we add it).
_SECRET_PREFIX = re.compile(r"^[A-Za-z0-9_+=.@-]+(/[A-Za-z0-9_+=.@-]+)*$")
#: An IAM role's unique id (``RoleId``): "AROA" then upper-case letters and digits.
_ROLE_ID = re.compile(r"^AROA[A-Z0-9]{8,124}$")
_DEPLOYMENT_ID = re.compile(r"^[a-z0-9]{0,16}$")
#: A GitHub App's numeric App ID, or its client ID (``Iv1.…``, ``Iv23…``): either is the JWT's
#: ``iss`` (docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/
#: generating-a-json-web-token-jwt-for-a-github-app).
APP_ID_RE = re.compile(r"^([1-9][0-9]{0,18}|Iv[0-9A-Za-z.]{4,60})$")
#: A KMS key ARN by key id (a UUID, or ``mrk-`` and 32 hex for a multi-Region key; no
#: aliases): the Lambda's rule for GITHUB_APP_KEY_ARN, which synth applies to every key ARN.
KMS_KEY_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/"
    r"(mrk-[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12})$"
)


CAPACITIES = ("FARGATE", "FARGATE_SPOT", "FARGATE_SPOT_THEN_FARGATE")
#: How a profile's labels select jobs (``lambda_fn.routing.match_profile``).
MATCH_MODES = ("subset", "exact")


@dataclass(frozen=True)
class Profile:
    """A runner profile: which labels it serves and which fixed task definition it runs."""

    name: str
    labels: tuple[str, ...]
    task_definition: str
    container_name: str
    #: Unique id (``RoleId``, ``AROA…``) of the profile's task role: the JIT config's secret
    #: is readable only by the session ``<task_role_id>:<task id>`` (see lambda_fn/jit_secret.py).
    task_role_id: str = ""
    #: FARGATE, FARGATE_SPOT, or FARGATE_SPOT_THEN_FARGATE (Spot, on-demand if Spot is out).
    capacity: str = "FARGATE"
    #: At most this many running tasks; further jobs wait in the retry queue. None = no cap.
    max_runners: int | None = None
    #: Restricted profiles: the rules checked at dispatch and by the runner's hook.
    policy: Policy | None = None
    #: Subnets / public IP for this profile's tasks instead of the stack-wide ones.
    subnet_ids: tuple[str, ...] = ()
    #: This profile's own security groups (its network identity) instead of the stack-wide
    #: ``SECURITY_GROUP_IDS``, which stays the fallback for entries without them.
    security_group_ids: tuple[str, ...] = ()
    assign_public_ip: Literal["ENABLED", "DISABLED"] | None = None
    #: Organisation runner group for this profile's runners instead of ``RUNNER_GROUP_ID``.
    runner_group_id: int | None = None
    #: Idle runners kept online for this profile (``lambda_fn.warm_pool``); None = no pool.
    warm: WarmPool | None = None
    #: ``subset``: jobs whose labels are all among the profile's; ``exact``: the same set.
    match: Literal["subset", "exact"] = "subset"
    #: The runner release the profile's image holds (``X.Y.Z``; ``lambda_fn.runner_version``);
    #: None = unknown (a custom image without ``runner_version``).
    runner_version: str | None = None
    #: Keys this version does not interpret, kept verbatim.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label_set(self) -> frozenset[str]:
        """Labels lower-cased: GitHub compares runner labels case-insensitively."""
        return frozenset(label.lower() for label in self.labels)


@dataclass(frozen=True)
class Settings:
    """Everything the handler needs from its environment, validated."""

    webhook_secret_arn: str
    github_token_secret_arn: str
    github_api_url: str
    ecs_cluster: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    assign_public_ip: Literal["ENABLED", "DISABLED"]
    profiles: tuple[Profile, ...]
    runner_scope: Literal["repo", "org"]
    runner_group_id: int
    allowed_repositories: tuple[str, ...]
    idempotency_table: str
    retry_queue_url: str | None
    dead_letter_queue_url: str | None
    retry_max_attempts: int
    retry_base_delay_seconds: int
    runner_name_prefix: str
    #: This deployment's identity in runner names and tags (see ``lambda_fn.naming``).
    deployment_id: str
    #: The reconciler stops a runner task that has had no job for this long (a backstop
    #: behind the task's own watchdog, ``contract.TASK_IDLE_TIMEOUT_ENV``).
    reconciler_idle_timeout_seconds: int
    max_replacements: int
    github_hook_path: str | None
    github_hook_parameter: str | None
    secrets_max_age_seconds: int
    #: The de-duplication window: how long a launched job is remembered, and how old a
    #: job may be for a ``queued`` delivery to start anything (older: a replay, ignored).
    idempotency_ttl_seconds: int
    github_timeout_budget_seconds: float
    jit_secret_prefix: str = "fargate-runners/jit"  # noqa: S105 - a name prefix
    #: ``pat`` (the PAT in ``github_token_secret_arn``) or ``app`` (a GitHub App's
    #: installation tokens, its JWT signed by the KMS key ``github_app_key_arn``).
    github_auth: Literal["pat", "app"] = "pat"
    github_app_id: str = ""
    github_app_key_arn: str = ""


def get_settings() -> Settings:
    """Settings for the current process environment (cached per distinct environment)."""
    return _parse_cached(tuple(os.environ.get(name) for name in _ENV_NAMES))


@lru_cache(maxsize=8)
def _parse_cached(values: tuple[str | None, ...]) -> Settings:
    env = {name: value for name, value in zip(_ENV_NAMES, values, strict=True) if value is not None}
    return load_settings(env)


def load_settings(env: Mapping[str, str]) -> Settings:
    """Parse and validate ``env``; raise ``ConfigError`` naming the first bad variable."""

    def get(name: str) -> str:
        value = env.get(name, "").strip() or env.get(_FALLBACKS.get(name, ""), "").strip()
        if value:
            return value
        default = ENV_DEFAULTS[name]
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default

    assign_public_ip = get("ASSIGN_PUBLIC_IP").upper()
    if assign_public_ip not in ("ENABLED", "DISABLED"):
        raise ConfigError(f"ASSIGN_PUBLIC_IP must be ENABLED or DISABLED, got {assign_public_ip!r}")

    runner_scope = get("RUNNER_SCOPE").lower()
    if runner_scope not in ("repo", "org"):
        raise ConfigError(f"RUNNER_SCOPE must be 'repo' or 'org', got {runner_scope!r}")

    api_url = get("GITHUB_API_URL").rstrip("/")
    if not api_url.startswith(("https://", "http://")):
        raise ConfigError(f"GITHUB_API_URL must be an http(s) URL, got {api_url!r}")

    allowed = _split_csv(get("ALLOWED_REPOSITORIES"))
    if allowed:  # the one owner/repo rule; imported only when there is something to check
        from lambda_fn.policy import repository_pattern_problem

        for pattern in allowed:
            problem = repository_pattern_problem(pattern)
            if problem is not None:
                raise ConfigError(f"ALLOWED_REPOSITORIES: {problem}")

    prefix = get("RUNNER_NAME_PREFIX")
    problem = runner_name_prefix_problem(prefix)
    if problem is not None:
        raise ConfigError(f"RUNNER_NAME_PREFIX: {problem}")

    jit_secret_prefix = get("JIT_SECRET_PREFIX")
    if (
        not _SECRET_PREFIX.match(jit_secret_prefix)
        or len(jit_secret_prefix) > JIT_SECRET_PREFIX_MAX
    ):
        raise ConfigError(
            "JIT_SECRET_PREFIX must be up to 200 letters, digits or /_+=.@- "
            f"(no leading, trailing or double '/'), got {jit_secret_prefix!r}"
        )

    profiles = parse_profiles(_profiles_text(env), runner_scope)
    if runner_scope != "org":
        grouped = [p.name for p in profiles if p.runner_group_id is not None]
        if grouped:
            raise ConfigError(
                f"RUNNER_PROFILES: profile {grouped[0]!r} sets runner_group_id, but runner "
                "groups exist only for organisation runners (RUNNER_SCOPE=org)"
            )
    deployment_id = env.get("DEPLOYMENT_ID", "").strip()
    if not _DEPLOYMENT_ID.match(deployment_id):
        raise ConfigError(
            f"DEPLOYMENT_ID must be at most 16 lower-case letters or digits, got {deployment_id!r}"
        )

    github_auth, app_id, app_key_arn = _github_auth(get)

    retry_queue_url = env.get("RETRY_QUEUE_URL", "").strip() or None
    dead_letter_queue_url = env.get("DEAD_LETTER_QUEUE_URL", "").strip() or None

    return Settings(
        webhook_secret_arn=get("WEBHOOK_SECRET_ARN"),
        github_token_secret_arn=get("GITHUB_TOKEN_SECRET_ARN"),
        github_api_url=api_url,
        ecs_cluster=get("ECS_CLUSTER"),
        subnet_ids=_required_list(get("SUBNET_IDS"), "SUBNET_IDS"),
        security_group_ids=_required_list(get("SECURITY_GROUP_IDS"), "SECURITY_GROUP_IDS"),
        assign_public_ip=assign_public_ip,  # type: ignore[arg-type]  # checked above
        profiles=profiles,
        runner_scope=runner_scope,  # type: ignore[arg-type]  # checked above
        runner_group_id=_positive_int(get("RUNNER_GROUP_ID"), "RUNNER_GROUP_ID"),
        allowed_repositories=allowed,
        idempotency_table=get("IDEMPOTENCY_TABLE"),
        retry_queue_url=retry_queue_url,
        dead_letter_queue_url=dead_letter_queue_url,
        retry_max_attempts=_positive_int(get("RETRY_MAX_ATTEMPTS"), "RETRY_MAX_ATTEMPTS"),
        retry_base_delay_seconds=_positive_int(
            get("RETRY_BASE_DELAY_SECONDS"), "RETRY_BASE_DELAY_SECONDS"
        ),
        runner_name_prefix=prefix,
        deployment_id=deployment_id,
        reconciler_idle_timeout_seconds=_positive_int(
            get("RECONCILER_IDLE_TIMEOUT_SECONDS"), "RECONCILER_IDLE_TIMEOUT_SECONDS"
        ),
        max_replacements=_non_negative_int(get("MAX_REPLACEMENTS"), "MAX_REPLACEMENTS"),
        github_hook_path=hook_path(env.get("GITHUB_HOOK_PATH", "")),
        github_hook_parameter=_parameter_name(env.get("GITHUB_HOOK_PARAMETER", "")),
        secrets_max_age_seconds=_positive_int(
            get("SECRETS_MAX_AGE_SECONDS"), "SECRETS_MAX_AGE_SECONDS"
        ),
        idempotency_ttl_seconds=_dedup_window(get("IDEMPOTENCY_TTL_SECONDS")),
        github_timeout_budget_seconds=float(
            _positive_int(get("GITHUB_TIMEOUT_BUDGET_SECONDS"), "GITHUB_TIMEOUT_BUDGET_SECONDS")
        ),
        jit_secret_prefix=jit_secret_prefix,
        github_auth=github_auth,
        github_app_id=app_id,
        github_app_key_arn=app_key_arn,
    )


def _profiles_text(env: Mapping[str, str]) -> str:
    """``RUNNER_PROFILES`` when set (local mode, older stacks), else the SSM parameters
    named by ``RUNNER_PROFILES_PARAMETERS`` (what the construct deploys:
    ``lambda_fn/profile_store.py``)."""
    inline = env.get("RUNNER_PROFILES", "").strip()
    if inline:
        return inline
    names = _split_csv(env.get("RUNNER_PROFILES_PARAMETERS", ""))
    if not names:
        raise ConfigError("RUNNER_PROFILES or RUNNER_PROFILES_PARAMETERS is required but not set")
    from lambda_fn.profile_store import read_profiles

    return read_profiles(names)


def _github_auth(get: Callable[[str], str]) -> tuple[Literal["pat", "app"], str, str]:
    """``GITHUB_AUTH`` and, for ``app``, the App id and its KMS key (both required then)."""
    auth = get("GITHUB_AUTH").lower()
    if auth == "pat":
        return "pat", "", ""
    if auth != "app":
        raise ConfigError(f"GITHUB_AUTH must be 'pat' or 'app', got {auth[:20]!r}")
    values: list[str] = []
    for name, pattern, what in (
        ("GITHUB_APP_ID", APP_ID_RE, "the GitHub App's ID or client ID"),
        ("GITHUB_APP_KEY_ARN", KMS_KEY_ARN_RE, "a KMS key ARN"),
    ):
        value = get(name)
        if not pattern.match(value):
            raise ConfigError(f"{name} must be {what}, got {value[:200]!r}")
        values.append(value)
    return "app", values[0], values[1]


def parse_profiles(raw: str, runner_scope: str = "repo") -> tuple[Profile, ...]:
    """Parse ``RUNNER_PROFILES`` (a JSON array of objects) in config order."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"RUNNER_PROFILES is not valid JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(data, list) or not data:
        raise ConfigError("RUNNER_PROFILES must be a non-empty JSON array of profiles")

    profiles: list[Profile] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        where = f"RUNNER_PROFILES[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be an object")
        for key in PROFILE_REQUIRED_KEYS:
            if key == "labels":
                continue
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConfigError(f"{where}.{key} must be a non-empty string")
        labels = item.get("labels")
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(label, str) and label.strip() for label in labels)
        ):
            raise ConfigError(f"{where}.labels must be a non-empty list of strings")
        name = item["name"]
        if name in seen:
            raise ConfigError(f"{where}.name {name!r} is used by more than one profile")
        seen.add(name)
        capacity = item.get("capacity") or "FARGATE"
        if capacity not in CAPACITIES:
            raise ConfigError(f"{where}.capacity must be one of {', '.join(CAPACITIES)}")
        max_runners = item.get("max_runners")
        if max_runners is not None and (
            not isinstance(max_runners, int) or isinstance(max_runners, bool) or max_runners < 1
        ):
            raise ConfigError(f"{where}.max_runners must be a positive integer or null")
        # Optional, because docs/contract.md's profile shape has no such key: without it the
        # sealed JIT config is bound to no identity at all (jit_secret.task_userid), so the
        # task cannot read it and no runner starts -- closed, with a warning per launch.
        task_role_id = item.get("task_role_id") or ""
        if not isinstance(task_role_id, str) or (task_role_id and not _ROLE_ID.match(task_role_id)):
            raise ConfigError(f"{where}.task_role_id must be the task role's unique id (AROA...)")
        known = {*PROFILE_REQUIRED_KEYS, *PROFILE_OPTIONAL_KEYS}
        profiles.append(
            Profile(
                name=name,
                labels=tuple(label.strip() for label in labels),
                task_definition=item["task_definition"],
                container_name=item["container_name"],
                task_role_id=task_role_id,
                capacity=capacity,
                max_runners=max_runners,
                policy=_profile_policy(name, item.get("policy"), f"{where}.policy"),
                subnet_ids=_profile_subnets(item.get("subnet_ids"), f"{where}.subnet_ids"),
                security_group_ids=_profile_ids(
                    item.get("security_group_ids"), f"{where}.security_group_ids", "security group"
                ),
                assign_public_ip=_profile_public_ip(item.get("assign_public_ip"), where),
                runner_group_id=_profile_runner_group(item.get("runner_group_id"), where),
                warm=_profile_warm(item.get("warm"), f"{where}.warm", runner_scope, max_runners),
                match=_profile_match(item.get("match", "subset"), where),
                runner_version=_profile_runner_version(item.get("runner_version"), where),
                extra={key: value for key, value in item.items() if key not in known},
            )
        )
    return tuple(profiles)


def _profile_warm(
    data: Any, where: str, runner_scope: str, max_runners: int | None
) -> WarmPool | None:
    if data is None:
        return None
    from lambda_fn.warm_pool import WarmPool

    pool = WarmPool.from_dict(data, where, runner_scope)
    if max_runners is not None and pool.runners > max_runners:
        raise ConfigError(f"{where}.runners ({pool.runners}) is above max_runners ({max_runners})")
    return pool


def _profile_policy(name: str, data: Any, where: str) -> Policy | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be an object")
    from lambda_fn.policy import PolicyError, policy_from_dict

    try:
        policy = policy_from_dict(
            name, {k: v for k, v in data.items() if k != "profile"}, where=where
        )
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    return policy if policy.restricted else None


def _profile_match(data: Any, where: str) -> Literal["subset", "exact"]:
    if data not in MATCH_MODES:
        raise ConfigError(f"{where}.match must be one of {', '.join(MATCH_MODES)}, got {data!r}")
    return "exact" if data == "exact" else "subset"


def _profile_runner_version(data: Any, where: str) -> str | None:
    if data is None:
        return None
    from lambda_fn.runner_version import parse_version

    if not isinstance(data, str) or parse_version(data) is None:
        raise ConfigError(
            f"{where}.runner_version must be a runner release like {RUNNER_VERSION!r}, got {data!r}"
        )
    return data.removeprefix("v")


def _profile_runner_group(data: Any, where: str) -> int | None:
    if data is None:
        return None
    if not isinstance(data, int) or isinstance(data, bool) or data < 1:
        raise ConfigError(f"{where}.runner_group_id must be a positive integer")
    return data


def _profile_subnets(data: Any, where: str) -> tuple[str, ...]:
    return _profile_ids(data, where, "subnet")


def _profile_ids(data: Any, where: str, what: str) -> tuple[str, ...]:
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(s, str) and s for s in data):
        raise ConfigError(f"{where} must be a list of {what} ids")
    return tuple(data)


def _profile_public_ip(data: Any, where: str) -> Literal["ENABLED", "DISABLED"] | None:
    if data is None:
        return None
    if not isinstance(data, bool):
        raise ConfigError(f"{where}.assign_public_ip must be true or false")
    return "ENABLED" if data else "DISABLED"


def _split_csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _required_list(raw: str, name: str) -> tuple[str, ...]:
    items = _split_csv(raw)
    if not items:
        raise ConfigError(f"{name} must list at least one id")
    return items


_HOOK_PATH = re.compile(
    r"^((repos/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|orgs/[A-Za-z0-9_-]+)/hooks/\d+|app/hook)$"
)
#: The GitHub App's own webhook (GITHUB_AUTH=app): its deliveries are ``app/hook/deliveries``.
APP_HOOK_PATH = "app/hook"


def hook_path(raw: str, name: str = "GITHUB_HOOK_PATH") -> str | None:
    """A webhook's REST path (``repos/O/R/hooks/ID``, ``orgs/O/hooks/ID``, or ``app/hook``
    for a GitHub App's own webhook); None if empty."""
    path = raw.strip().strip("/")
    if not path:
        return None
    if not _HOOK_PATH.match(path):
        raise ConfigError(
            f"{name} must be repos/OWNER/REPO/hooks/ID, orgs/ORG/hooks/ID or app/hook, "
            f"got {path[:200]!r}"
        )
    return path


#: The webhook SSM parameter's value until ``fargate-runners setup`` records the webhook
#: (SSM parameters cannot be empty); the CDK app writes it, the reconciler reads it.
HOOK_NOT_RECORDED = "not-recorded"
#: An SSM parameter name: simple (``CFN-WebhookHookParameter...``, what CloudFormation
#: generates for an unnamed parameter) or a hierarchy, which must begin with '/'
#: (naming constraints of https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html).
_PARAMETER_NAME = re.compile(r"^(?:/[A-Za-z0-9_.\-/]{1,1010}|[A-Za-z0-9_.\-]{1,1011})$")


def _parameter_name(raw: str) -> str | None:
    name = raw.strip()
    if not name:
        return None
    if not _PARAMETER_NAME.match(name):
        raise ConfigError(f"GITHUB_HOOK_PARAMETER must be an SSM parameter name, got {name!r}")
    return name


def _dedup_window(raw: str) -> int:
    """``IDEMPOTENCY_TTL_SECONDS``: the one setting for the de-duplication window.

    At least the reconciler's redelivery look-back plus its longest interval
    (60 min), so a job redelivered by the reconciler never looks like a
    replay; at most GitHub's 24-hour queue limit (an older job is cancelled, or
    about to be, and nothing of ours would launch it, so the window never needs
    to be longer).
    """
    name = "IDEMPOTENCY_TTL_SECONDS"
    value = _int_at_least(raw, name, REDELIVERY_LOOKBACK_SECONDS + 3600)
    if value > QUEUED_JOB_LIMIT_SECONDS:
        raise ConfigError(
            f"{name} must be at most {QUEUED_JOB_LIMIT_SECONDS} (GitHub cancels a job "
            f"queued for 24 hours or more), got {value}"
        )
    return value


def _positive_int(raw: str, name: str) -> int:
    return _int_at_least(raw, name, 1)


def _non_negative_int(raw: str, name: str) -> int:
    return _int_at_least(raw, name, 0)


def _int_at_least(raw: str, name: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value
