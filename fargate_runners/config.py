"""One typed, validated configuration for ``cdk.json`` and for the construct's props.

:class:`RunnersConfig` is the ``cdk.json`` context (:func:`load_config`), :class:`RunnerProfile`
one runner profile, and ``FargateRunnersProps`` validates its plain-data fields through
:class:`ConstructSettings`: the three share their fields, their rules and their errors, so
a profile or URL built in Python gets exactly the checks a ``cdk.json`` value gets.

Every problem is reported at once as a :class:`ConfigError` (one line per problem: key path,
value, fix). Keys and values are documented in docs/configuration.md; the value
parsers are in :mod:`fargate_runners.config_values`, single-value rules with their sources
in :mod:`fargate_runners.rules`; how to add a key is in docs/configuration.md. This
module does not import ``aws_cdk``: the CLI and the local mode use it too.

Every key CDK does not own is ours and checked, in any spelling: an unknown or misspelt key
(``allowedRepositories``, ``allowed-repositories``, ``alowed_repositories``) is an error
with a "did you mean". Keys CDK owns (feature flags ``@aws-cdk/...``, ``aws:cdk:...``,
lookups ``availability-zones:...``, :data:`CDK_KEYS`) are left to CDK. Values given with
``-c key=value`` arrive as strings: numbers, booleans, JSON lists and comma-separated lists
are accepted in string form too. ``null`` at the top level means default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from lambda_fn import warm_pool
from lambda_fn.config import APP_ID_RE, KMS_KEY_ARN_RE, MATCH_MODES
from lambda_fn.contract import RUNNER_IMAGE_REPOSITORY, RUNNER_VERSION
from lambda_fn.errors import ConfigError as LambdaConfigError
from lambda_fn.policy import (
    DEFAULT_TAG_PROTECTION,
    TAG_PROTECTIONS,
    Policy,
    exact_branches,
    policy_from_dict,
    repository_match,
    repository_pattern_problem,
    tag_pattern,
)
from lambda_fn.routing import repository_allowed
from lambda_fn.runner_version import VERSION_RE as RUNNER_VERSION_RE
from lambda_fn.runner_version import version_from_image

from . import rules
from .config_errors import ConfigError, Problem, problems_from_validation
from .config_values import (
    EMAIL_RE,
    ENV_NAME_RE,
    RESERVED_ENV_PREFIXES,
    ROUTE_TABLE_ID_RE,
    SECRET_ARN_RE,
    SECRET_REF_RE,
    STACK_NAME_RE,
    TOPIC_ARN_RE,
    VPC_ID_RE,
    Bool,
    EnvMap,
    Int,
    Rule,
    RunnerGroupId,
    SecurityGroupIds,
    SubnetIds,
    check_secret_refs,
    checked,
    describe_allowed,
    list_of,
    matching,
    one_of,
    parse_bool,
    parse_environment_name,
    parse_github_api_url,
    parse_hook_path,
    parse_int,
    parse_labels,
    parse_name_prefix,
    parse_profile_name,
    parse_profiles,
    parse_registry,
    parse_source_cidrs,
    parse_str,
    parse_str_list,
    parse_str_map,
    parse_task_role_policies,
    parse_throttle_rate,
    parsed,
    raise_all,
    ranged,
    unique,
)
from .feasibility import arn_hint, capacity_problems, policy_problems
from .runner.managed_steps import step_env_problem

__all__ = [
    "CDK_KEYS",
    "DEFAULT_IMAGE",
    "DEFAULT_PROFILE_LABELS",
    "FARGATE_CPU_MEMORY",
    "LOG_RETENTION_DAYS",
    "PROFILE_KEYS",
    "SHARED_FIELDS",
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

DEFAULT_IMAGE = f"{RUNNER_IMAGE_REPOSITORY}:{RUNNER_VERSION}"
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

# ---------------------------------------------------------------------------
# The model base: errors are ConfigErrors, whether built from cdk.json or in Python
# ---------------------------------------------------------------------------


class _Model(BaseModel):
    # use_attribute_docstrings: the string under a field is its description, which
    # docs/configuration.md's tables are generated from (fargate_runners/config_doc.py).
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

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


# ---------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------


STEP_MODES = ("runner", "managed")
#: Profile keys that only a managed-steps profile may set.
MANAGED_STEP_KEYS = (
    "step_image", "managed_commands", "step_env", "step_role_policies", "step_secrets",
    "step_cpu", "step_memory",
)  # fmt: skip
_DIGEST_IMAGE_RE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_COMMAND_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
#: Profile keys that only a profile with ``warm_runners`` may set.
WARM_KEYS = ("warm_scope", "warm_days", "warm_hours", "warm_max_age_seconds")


def _hours_problem(value: str) -> str | None:
    try:
        warm_pool.parse_hours(value, "")
    except LambdaConfigError as exc:
        return str(exc).removeprefix(": ")
    return None


def _parse_command_map(value: Any, key: str = "") -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"{value!r} must be an object of name: [absolute path, args...]")
    commands: dict[str, tuple[str, ...]] = {}
    for name, argv in value.items():
        if not isinstance(argv, list | tuple) or not all(isinstance(a, str) for a in argv):
            raise ConfigError(f"{key}.{name}", f"{argv!r} must be a list of strings")
        commands[str(name)] = tuple(argv)
    return commands


class RunnerProfile(_Model):
    """One kind of runner: a Fargate task definition plus the labels that select it.

    Constructing one validates it (``ConfigError`` keys are relative to the profile, e.g.
    ``memory``; :func:`load_config` prefixes ``profiles[i].``).
    """

    KEY_KIND: ClassVar[str] = "profile key"

    name: Annotated[str, parsed(parse_profile_name)]
    """`^[a-z0-9][a-z0-9-]{0,30}$`, unique."""
    labels: Annotated[tuple[str, ...], parsed(parse_labels)]
    """Labels this profile serves; not a subset of (or equal to) an earlier profile's set, and
    no label of the other CPU architecture."""
    cpu: Int = 1024
    """Fargate CPU units: 256, 512, 1024, 2048, 4096, 8192, 16384."""
    memory: Int = 2048
    """MiB, valid for `cpu` per Fargate's table."""
    architecture: Annotated[str, parsed(one_of(ARCHITECTURES, upper=True))] = "ARM64"
    """`ARM64` or `X86_64`."""
    ephemeral_storage_gib: Annotated[int, parsed(ranged(*EPHEMERAL_STORAGE_RANGE))] = 21
    """21..200 GiB."""
    image: Annotated[str, parsed(checked(rules.image_problem))] = DEFAULT_IMAGE
    """Runner image (`[REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]`); must provide
    `/home/runner/run.sh`, uid 1001, bash and python3.

    Default: `ghcr.io/actions/actions-runner:<RUNNER_VERSION>` (`lambda_fn/contract.py`)."""
    #: The runner release the image holds, for images whose tag does not say it
    #: (``lambda_fn.runner_version``; docs/lifecycle.md, "Runner versions").
    runner_version: Annotated[
        str | None,
        parsed(matching(RUNNER_VERSION_RE, f"a runner release like '{RUNNER_VERSION}'")),
    ] = None
    """The runner release the image holds, for the daily version check ([Runner
    versions](lifecycle.md#runner-versions)); needed for any other image, or the check reports
    it unknown.

    Default: from an `actions-runner:X.Y.Z` tag."""
    capacity: Annotated[str, parsed(one_of(CAPACITIES, upper=True))] = "FARGATE"
    """`FARGATE`, `FARGATE_SPOT`, or `FARGATE_SPOT_THEN_FARGATE` (Spot, on-demand when Spot has
    no capacity)."""
    max_runners: Annotated[int | None, parsed(ranged(1, 10_000))] = None
    """At most this many pending or running tasks of the profile (1..10000); further jobs wait
    in the retry queue, with a log line and `JobsWaitingForCapacity{profile}`. Why a default: a
    burst of signed jobs (a matrix of 256) would otherwise start as many tasks as the region's
    Fargate vCPU quota allows, which every Fargate workload in the account shares; 64 vCPUs is
    ample for normal CI. Keep the sum over profiles below the account's "Fargate On-Demand vCPU
    resource count" quota (Service Quotas): synth warns above the default 4,000 vCPUs and
    refuses above 20,000 summed over profiles; `fargate-runners doctor` compares with your
    account's quota ([never-work.md](never-work.md)).

    Default: 64 vCPUs' worth: `64 * 1024 / cpu` (64 tasks of 1 vCPU, 16 of 4, 256 of 0.25)."""
    # Restricted profiles (checked at dispatch and by the runner's job-started hook):
    allowed_repositories: Rule = ()
    """`owner/repo` or `owner/*` the job's repository must match; makes the profile
    [restricted](security.md#restricted-profiles); an empty list is a synth error (omit the key
    to allow any)."""
    allowed_refs: Rule = ()
    """Globs on the job's full ref (`refs/heads/main`, `refs/tags/v*`); makes the profile
    [restricted](security.md#restricted-profiles); an empty list is a synth error (omit the key
    to allow any)."""
    allowed_workflows: Rule = ()
    """Globs on the workflow file (`.github/workflows/deploy.yml`); makes the profile
    [restricted](security.md#restricted-profiles); an empty list is a synth error (omit the key
    to allow any)."""
    allowed_events: Rule = ()
    """Events the run may come from (`push`, `workflow_dispatch`, ...); makes the profile
    [restricted](security.md#restricted-profiles); an empty list is a synth error (omit the key
    to allow any)."""
    required_env: Rule = ()
    """Names that must be set in the task (from `environment`/`secrets`); makes the profile
    [restricted](security.md#restricted-profiles); an empty list is a synth error (omit the key
    to allow any)."""
    #: How tags in allowed_refs are protected (lambda_fn.policy.TAG_PROTECTIONS).
    tag_protection: Annotated[str, parsed(one_of(TAG_PROTECTIONS))] = DEFAULT_TAG_PROTECTION
    """How tags that `allowed_refs` allows are protected
    ([tags](security.md#tags-reviewed-history-or-a-ruleset)): `branch-history` launches a tag
    run only when its commit is in the history of an exact `refs/heads/...` entry of
    `allowed_refs` (synth refuses tag patterns without one); `ruleset`: you state that a tag
    ruleset restricts who creates and updates these tags, and dispatch checks no history
    (`fargate-runners doctor` verifies the ruleset). Only with tag patterns."""
    #: Which jobs the labels select: all job labels among the profile's, or the same set.
    match: Annotated[str, parsed(one_of(MATCH_MODES))] = "subset"
    """`subset`: the profile serves jobs whose labels are all among its own; `exact`: only jobs
    whose label set equals its own (case-insensitive), so a `[self-hosted, linux]` job never
    starts a `[self-hosted, linux, deploy]` runner. Recommended for restricted profiles
    ([matching](security.md#label-matching-for-restricted-profiles))."""
    #: Every job must deploy to this GitHub environment (dispatch only: the runner cannot
    #: see it; lambda_fn.policy.environment_refusal).
    required_environment: Annotated[str | None, parsed(parse_environment_name)] = None
    """Restricts the profile: each job must deploy to this GitHub environment (`environment:` in
    the workflow; names compare case-insensitively, at most 255 characters). Decided at dispatch
    from the delivery's `deployment.environment`; a job without it is refused (200 `ignored`,
    rule `required_environment`). The runner cannot re-check it (no `GITHUB_*` variable names
    the environment): see [waiting-jobs.md](waiting-jobs.md#required_environment)."""
    # What the task gets:
    environment: EnvMap = Field(default_factory=dict)
    """Plain environment for the task (names starting `ACTIONS_`, `GITHUB_`, `RUNNER_` are
    reserved)."""
    secrets: Annotated[EnvMap, AfterValidator(check_secret_refs)] = Field(default_factory=dict)
    """`NAME: <Secrets Manager secret ARN>`, injected by ECS at start."""
    task_role_policies: Annotated[
        tuple[str | Mapping[str, Any], ...], parsed(parse_task_role_policies)
    ] = ()
    """Managed policy ARNs or IAM statements the **jobs** get; nothing else."""
    #: Customer-managed KMS keys that encrypt ``secrets`` (the execution role may decrypt).
    secrets_kms_key_arns: Annotated[
        tuple[str, ...],
        parsed(
            list_of(
                matching(
                    KMS_KEY_ARN_RE,
                    "a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; no aliases)",
                    arn="kms",
                )
            )
        ),
    ] = ()
    """Customer-managed KMS key ARNs that encrypt this profile's `secrets`: the execution role
    gets `kms:Decrypt` on them, only via Secrets Manager (the default `aws/secretsmanager` key
    needs nothing)."""
    registry_prefix: Annotated[str | None, parsed(parse_registry)] = None
    """Pull the image through a mirror: `123456789012.dkr.ecr.REGION.amazonaws.com/ghcr` turns
    `ghcr.io/actions/...` into `.../ghcr/actions/...` (ECR pull permissions are granted)."""
    subnet_ids: SubnetIds = ()
    """This profile's own subnets (e.g. private ones next to your database); needs the top-level
    `vpc_id`.

    Default: the top-level `subnet_ids`."""
    #: The operator's own security groups for this profile's runner tasks (default: a group
    #: the stack creates for this profile alone; docs/networks.md).
    security_group_ids: Annotated[SecurityGroupIds, AfterValidator(unique)] = ()
    """Your own security groups for this profile's runner tasks (its network identity, see
    [Networks](networks.md)); needs the top-level `vpc_id`.

    Default: a group the stack creates for this profile."""
    assign_public_ip: Annotated[bool | None, parsed(parse_bool)] = None
    """This profile's own public IP setting; `false` needs the top-level `vpc_id`.

    Default: the top-level `assign_public_ip`."""
    #: Organisation runner group for this profile's JIT runners (None: ``runner_group_id``).
    runner_group_id: RunnerGroupId | None = None
    """Organisation runner group for this profile's runners ([runner
    groups](security.md#runner-groups)); needs `runner_scope: org` (synth refuses it with
    `repo`: repository runners have no groups).

    Default: the top-level `runner_group_id`."""
    # Managed steps (steps == "managed"): each step is a task of a fixed step task definition.
    steps: Annotated[str, parsed(one_of(STEP_MODES))] = "runner"
    """`managed`: job steps never run in the runner's task; each allowed step is its own Fargate
    task ([managed-step profiles](managed-steps.md)). Then `task_role_policies` and `secrets`
    are refused (use `step_role_policies`, `step_secrets`)."""
    step_image: Annotated[str | None, parsed(parse_str)] = None
    """The one image steps run in, pinned by digest (`REPO@sha256:<64 hex>`); needs `/bin/sh`. A
    job's `container:` must be exactly this string. A private ECR image gets pull permissions.

    Default: required with `steps: managed`."""
    managed_commands: Annotated[dict[str, tuple[str, ...]], parsed(_parse_command_map)] = Field(
        default_factory=dict
    )
    """`name: [absolute path, args...]`; a `run:` step whose text, trimmed, is `name` runs that
    argv in the step image. Names: `^[a-z][a-z0-9-]{0,63}$`.

    Default: required with `steps: managed`."""
    step_env: Annotated[tuple[str, ...], parsed(parse_str_list)] = ()
    """Variable names a step may pass (from its `env:`) to the managed command; all others are
    dropped and named in the step log. Each must be `INPUT_<NAME>` (`A-Z`, `0-9`, `_`): an
    allowlisted namespace that no interpreter, tool, proxy client or loader reads, so a workflow
    cannot pass `GIT_CONFIG_*`, `*_OPTS`, `PYTHON*`, `LD_*`, proxies or CA bundles; synth and
    the hook both refuse other names ([step-env.md](step-env.md))."""
    step_role_policies: Annotated[
        tuple[str | Mapping[str, Any], ...], parsed(parse_task_role_policies)
    ] = ()
    """Managed policy ARNs or IAM statements of the **step** task role (the deploy permissions)."""
    step_secrets: Annotated[dict[str, str], parsed(parse_str_map)] = Field(default_factory=dict)
    """`NAME: <Secrets Manager secret ARN>`, ECS secrets of the step task definition (never in a
    `run_task` override); a name may not also be in `step_env`."""
    step_cpu: Int = 256
    """Fargate CPU units of each step task (same values as `cpu`)."""
    step_memory: Int = 512
    """MiB of each step task, valid for `step_cpu` (same table as `memory`)."""
    # Warm runners (docs/warm-runners.md; lambda_fn/warm_pool.py):
    warm_runners: Annotated[int, parsed(ranged(0, 1000))] = 0
    """Idle runners kept online for this profile so a job starts without waiting for a task
    ([warm runners](warm-runners.md)); counted under `max_runners` (synth refuses more)."""
    warm_scope: Annotated[str | None, parsed(parse_str)] = None
    """Where the warm runners register: `owner/name` with `runner_scope: repo`, the organisation
    with `org`; must be allowed by `allowed_repositories` (top-level and the profile's).

    Default: required with `warm_runners`."""
    warm_days: Annotated[tuple[str, ...], parsed(list_of(one_of(warm_pool.DAYS)))] = warm_pool.DAYS
    """Days the pool is kept: `mon` … `sun` (UTC).

    Default: all seven."""
    warm_hours: Annotated[str, parsed(checked(_hours_problem))] = "00-24"
    """UTC hours the pool is kept, `"HH-HH"`, start included, end excluded; `"22-06"` runs
    across midnight and belongs to the day it starts on."""
    warm_max_age_seconds: Annotated[int, parsed(ranged(*warm_pool.MAX_AGE_RANGE))] = (
        warm_pool.DEFAULT_MAX_AGE_SECONDS
    )
    """An idle warm runner older than this is replaced (900..86400), so no registration, runner
    version or config sits for days.

    Default: `14400` (4 h)."""

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
                    f"(allowed: {describe_allowed(allowed_memory)})",
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
        tagged = version_from_image(self.image)
        if self.runner_version and tagged and self.runner_version.removeprefix("v") != tagged:
            problems.append(
                Problem(
                    "runner_version",
                    f"{self.runner_version!r} differs from the image tag's {tagged!r}: "
                    "drop runner_version (the tag says it) or fix the image",
                )
            )
        problems += self._managed_step_problems()
        problems += self._warm_problems()
        problems += self._tag_problems()
        problems += [Problem(key, message) for key, message in policy_problems(self)]
        raise_all(problems)
        return self

    def _tag_problems(self) -> list[Problem]:
        """Tags are admitted only on reviewed history, or the operator says a ruleset guards them.

        Any writer can push a tag at a commit of their own, so a tag pattern alone
        (``refs/tags/v*``) admits unreviewed code. With ``branch-history`` dispatch
        needs an exact branch to look for the tag's commit in (glob branches cannot
        be searched: lambda_fn/admission.py).
        """
        given = "tag_protection" in self.model_fields_set
        tags = [p for p in self.allowed_refs if tag_pattern(p)]
        if not tags:
            if given:
                return [Problem("tag_protection", "is only used when allowed_refs allows tags")]
            return []
        if self.tag_protection != "branch-history" or exact_branches(self.policy):
            return []
        return [
            Problem(
                "tag_protection",
                f"'branch-history' (the default) in profile {self.name!r} admits a tag only "
                "when its commit is in an exact allowed branch's history, but allowed_refs "
                f"allows tags ({', '.join(tags)}) and names no exact branch: add the branch "
                'your tags are cut from (e.g. "refs/heads/main"), or set "tag_protection": '
                '"ruleset" once a tag ruleset restricts who creates and updates these tags',
            )
        ]

    def _warm_problems(self) -> list[Problem]:
        """The ``warm_*`` keys; the scope's shape is checked with ``runner_scope``."""
        if not self.warm_runners:
            return [
                Problem(name, "is only used with warm_runners")
                for name in WARM_KEYS
                if name in self.model_fields_set
            ]
        problems: list[Problem] = []
        if not self.warm_scope:
            problems.append(
                Problem(
                    "warm_scope",
                    "is required with warm_runners: the repository (owner/name) or, with "
                    "runner_scope org, the organisation the warm runners register in",
                )
            )
        if not self.warm_days:
            problems.append(Problem("warm_days", "must name at least one day"))
        if self.warm_runners > self.effective_max_runners:
            problems.append(
                Problem(
                    "warm_runners",
                    f"{self.warm_runners} is above max_runners ({self.effective_max_runners}): "
                    "the pool counts under max_runners",
                )
            )
        return problems

    def warm(self) -> warm_pool.WarmPool | None:
        """The Lambda's view of this profile's pool (None without ``warm_runners``)."""
        if not self.warm_runners or not self.warm_scope:
            return None
        return warm_pool.WarmPool(
            runners=self.warm_runners,
            scope=self.warm_scope,
            days=tuple(sorted({warm_pool.DAYS.index(d) for d in self.warm_days})),
            hours=warm_pool.parse_hours(self.warm_hours, "warm_hours"),
            max_age_seconds=self.warm_max_age_seconds,
        )

    @property
    def managed_steps(self) -> bool:
        """Whether job steps run as tasks of a step task definition (``steps: managed``)."""
        return self.steps == "managed"

    def _managed_step_problems(self) -> list[Problem]:
        """``steps`` and the ``step_*`` keys (docs/managed-steps.md)."""
        defaults = {name: type(self).model_fields[name].get_default(call_default_factory=True)
                    for name in MANAGED_STEP_KEYS}  # fmt: skip
        given = [name for name in MANAGED_STEP_KEYS if getattr(self, name) != defaults[name]]
        if not self.managed_steps:
            return [Problem(name, 'is only used with steps: "managed"') for name in given]
        problems: list[Problem] = []
        if not self.step_image or not _DIGEST_IMAGE_RE.match(self.step_image):
            problems.append(Problem(
                "step_image",
                f"{self.step_image!r} must be an image pinned by digest (REPO@sha256:<64 hex>)",
            ))  # fmt: skip
        if not self.managed_commands:
            problems.append(Problem("managed_commands", "is required with steps: managed"))
        for name, argv in self.managed_commands.items():
            key = f"managed_commands.{name}"
            if not _COMMAND_NAME_RE.match(name):
                problems.append(Problem(key, f"{name!r} must match ^[a-z][a-z0-9-]{{0,63}}$"))
            elif not argv or not argv[0].startswith("/"):
                problems.append(
                    Problem(key, f"{list(argv)!r} must be a list starting with an absolute path")
                )
            elif any(not arg or any(ch in arg for ch in "\0\r\n") for arg in argv):
                problems.append(
                    Problem(key, f"{list(argv)!r}: arguments must be non-empty single lines")
                )
        problems += self._step_env_problems()
        if self.step_memory not in FARGATE_CPU_MEMORY.get(self.step_cpu, ()):
            problems.append(
                Problem(
                    "step_memory",
                    f"{self.step_memory} is not valid with step_cpu {self.step_cpu} "
                    f"(allowed: {describe_allowed(FARGATE_CPU_MEMORY.get(self.step_cpu, ()))})",
                )
            )
        for key, instead in (
            ("task_role_policies", "step_role_policies"),
            ("secrets", "step_secrets"),
        ):
            if getattr(self, key):
                problems.append(
                    Problem(
                        key,
                        f"a managed-steps runner holds no permissions or secrets: use {instead} "
                        "for the step task",
                    )
                )
        return problems

    def _step_env_problems(self) -> list[Problem]:
        """What a workflow may pass to a step, and the step task's own secrets."""
        problems: list[Problem] = []
        for i, name in enumerate(self.step_env):
            problem = step_env_problem(name)
            if problem is not None:
                problems.append(Problem(f"step_env[{i}]", problem))
        for name, arn in self.step_secrets.items():
            key = f"step_secrets.{name}"
            if not ENV_NAME_RE.match(name) or name.startswith(RESERVED_ENV_PREFIXES):
                problems.append(Problem(key, f"{name!r} is not an allowed name"))
            elif name in self.step_env:
                problems.append(Problem(key, "is also in step_env: a step could override it"))
            elif not SECRET_REF_RE.match(arn):
                problems.append(
                    Problem(key, f"{arn!r} is not a Secrets Manager ARN{arn_hint('secret', arn)}")
                )
        return problems

    @property
    def policy(self) -> Policy:
        """The profile's policy (shared with the Lambda and the runner hook)."""
        data: dict[str, Any] = {
            key: list(getattr(self, key)) for key in POLICY_KEYS if getattr(self, key)
        }
        if self.tag_protection != DEFAULT_TAG_PROTECTION:
            data["tag_protection"] = self.tag_protection
        if self.required_environment is not None:
            data["required_environment"] = self.required_environment
        return policy_from_dict(self.name, data, where="")

    def lambda_entry(
        self,
        task_definition_arn: str,
        container_name: str,
        task_role_id: str,
        security_group_ids: Sequence[str] = (),
    ) -> dict[str, Any]:
        """This profile's item of the Lambda's ``RUNNER_PROFILES`` (see docs/contract.md).

        The one place that decides what the Lambda learns about a profile; the
        construct passes a task definition ARN and role id tokens, local mode
        real values. ``task_role_id`` binds each JIT config to one task's session;
        ``security_group_ids`` are the profile's own groups (the construct's, or the
        operator's ``security_group_ids``; empty: the stack-wide ``SECURITY_GROUP_IDS``).
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
        groups = list(security_group_ids or self.security_group_ids)
        if groups:
            entry["security_group_ids"] = groups
        if self.assign_public_ip is not None:
            entry["assign_public_ip"] = self.assign_public_ip
        if self.runner_group_id is not None:
            entry["runner_group_id"] = self.runner_group_id
        pool = self.warm()
        if pool is not None:
            entry["warm"] = pool.to_dict()
        if self.match != "subset":
            entry["match"] = self.match
        if self.effective_runner_version is not None:
            entry["runner_version"] = self.effective_runner_version
        return entry

    @property
    def effective_runner_version(self) -> str | None:
        """``runner_version``, or the release in an ``actions-runner:X.Y.Z`` image tag."""
        if self.runner_version:
            return self.runner_version.removeprefix("v")
        return version_from_image(self.image)

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

    The Lambda gives a job the first profile (config order) that serves its labels
    (lambda_fn/routing.py): a profile whose labels equal an earlier profile's, or are a
    subset of an earlier ``subset`` profile's, never gets a job (:func:`_shadows`).
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
            if _shadows(earlier, later):
                problems.append(Problem(f"{key}[{j}].labels", _shadowed(later, earlier, i, key)))
                break
    return problems


def _shadows(earlier: RunnerProfile, later: RunnerProfile) -> bool:
    """True when every job ``later`` would serve is taken by ``earlier`` (config order wins).

    An ``exact`` earlier profile takes only its own label set; a ``subset`` one every
    subset of its labels. ``later`` serves its own set (``exact``) or its subsets.
    """
    if later.label_set == earlier.label_set:
        return True
    return earlier.match == "subset" and later.label_set < earlier.label_set


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


def _org_restricted_problems(profiles: Sequence[RunnerProfile]) -> list[Problem]:
    """At ``runner_scope: org`` a restricted profile must name its repositories.

    An organisation runner serves every repository of the organisation (its runner group
    aside), and any of them can have a ``refs/heads/main`` or a ``push`` event, so a
    profile restricted by ``allowed_refs`` (or events, workflows, required_env) alone
    admits them all. ``owner/*`` names none either.
    """
    problems: list[Problem] = []
    for i, profile in enumerate(profiles):
        if not profile.policy.restricted:
            continue
        key = f"profiles[{i}].allowed_repositories"
        wildcards = [p for p in profile.allowed_repositories if p.endswith("/*")]
        if not profile.allowed_repositories:
            problems.append(
                Problem(
                    key,
                    f"is required for restricted profile {profile.name!r} with runner_scope "
                    "org: without it every repository of the organisation may run on it (any "
                    'of them can have a matching ref or event); list them, e.g. ["octo-org/app"]',
                )
            )
        elif wildcards:
            problems.append(
                Problem(
                    key,
                    f"{wildcards[0]!r} admits every repository of the organisation to restricted "
                    f"profile {profile.name!r} (runner_scope org): list the repositories by name",
                )
            )
    return problems


# ---------------------------------------------------------------------------
# Deployment-wide keys, shared by cdk.json and the construct's props
# ---------------------------------------------------------------------------


_ONLY_WITH_ENDPOINTS = "is only used with vpc_endpoints"


#: ``allowed_repositories: ["*"]``: every repository, stated (required with a GitHub App).
ALL_REPOSITORIES = "*"


def _allowed_repository_problem(value: str) -> str | None:
    return None if value == ALL_REPOSITORIES else repository_pattern_problem(value)


def lambda_allowed_repositories(patterns: Sequence[str]) -> tuple[str, ...]:
    """What the Lambda's ``ALLOWED_REPOSITORIES`` gets: ``["*"]`` is its empty list (any)."""
    return tuple(p for p in patterns if p != ALL_REPOSITORIES)


def _retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            "",
            f"{days} is not a CloudWatch Logs retention value "
            f"(allowed: {', '.join(str(d) for d in LOG_RETENTION_DAYS)})",
        )
    return days


class _Deployment(_Model):
    """Keys ``cdk.json`` and ``FargateRunnersProps`` share, and the rules between them."""

    profiles: Annotated[tuple[RunnerProfile, ...], parsed(parse_profiles)] = (
        RunnerProfile(name="default", labels=DEFAULT_PROFILE_LABELS),
    )
    """Runner profiles: the table below.

    Default: one profile `default`."""
    runner_scope: Annotated[str, parsed(one_of(RUNNER_SCOPES))] = "repo"
    """Register JIT runners on the `repo` or on its `org`."""
    runner_group_id: RunnerGroupId = 1
    """Runner group for the JIT config (org scope: your group's id); a profile's own
    `runner_group_id` overrides it."""
    allowed_repositories: Annotated[
        tuple[str, ...], parsed(list_of(checked(_allowed_repository_problem)))
    ] = ()
    """`owner/repo` or `owner/*` list (or comma-separated string); `["*"]` states every
    repository (required with `github_auth: app`).

    Default: empty = any."""
    github_api_url: Annotated[str, parsed(parse_github_api_url)] = DEFAULT_GITHUB_API_URL
    """`https://` only; GitHub Enterprise Server: `https://HOST/api/v3`; GHE.com:
    `https://api.SUBDOMAIN.ghe.com`."""
    subnet_ids: Annotated[SubnetIds, AfterValidator(unique)] = ()
    """Existing subnets (list or comma-separated); requires `vpc_id`."""
    assign_public_ip: Annotated[bool | None, parsed(parse_bool)] = None
    """Public IP for runner tasks (needed in public subnets without NAT); `false` needs
    `vpc_id`.

    Default: `true` for the new VPC, `false` for an existing one."""
    vpc_endpoints: Bool = False
    """For private subnets: interface endpoints (ECR API and Docker, CloudWatch Logs, Secrets
    Manager, STS) in `subnet_ids` and an S3 gateway endpoint; needs `vpc_id` (see
    [Networks](networks.md))."""
    vpc_endpoint_route_table_ids: Annotated[
        tuple[str, ...],
        parsed(list_of(matching(ROUTE_TABLE_ID_RE, "a route table id (rtb-...)"))),
    ] = ()
    """Route tables of those subnets, for the S3 gateway endpoint; required with
    `vpc_endpoints`."""
    api_gateway_logging: Annotated[str, parsed(one_of(API_GATEWAY_LOGGING))] = "off"
    """`off`: no API Gateway access/execution logs, the region-wide API Gateway logging role
    untouched; `existing`: your region already has that role, turn the logs on; `create`: this
    stack sets the role (region-wide, overwrites another stack's; see
    [Teardown](lifecycle.md#teardown))."""
    webhook_throttle_rate: Annotated[float, parsed(parse_throttle_rate)] = 20.0
    """API stage steady-state requests per second."""
    webhook_throttle_burst: Annotated[int, parsed(ranged(1, 5000))] = 40
    """API stage burst (1..5000)."""
    webhook_firewall: Bool = True
    """AWS WAF web ACL on the stage: requests from outside `webhook_source_cidrs` are refused
    (403) before the stage throttle, and each source is rate-limited; `false` removes it and its
    cost (about US$8/month, see [Cost](operations.md#cost))."""
    webhook_source_cidrs: Annotated[tuple[str, ...] | None, parsed(parse_source_cidrs)] = None
    """Where deliveries come from (IPv4 and IPv6 CIDRs; none broader than /8 or /16);
    **required** with a GitHub Enterprise Server `github_api_url` while `webhook_firewall` is
    on; when set, the list is fixed (no refresh).

    Default: unset: github.com's `hooks` ranges from `GET /meta`, refreshed hourly."""
    webhook_rate_limit: Annotated[int, parsed(ranged(*RATE_LIMIT_RANGE))] = 2000
    """Requests per source address per 5 minutes before the web ACL blocks that address
    (10..2000000000)."""
    retry_max_attempts: Annotated[int, parsed(ranged(1, 20))] = 8
    """Launch attempts (1..20) before a job goes to the dead-letter queue."""
    runner_idle_timeout_seconds: Annotated[int, parsed(ranged(0, 86_400))] = 900
    """A runner with no job after this long stops itself (`0` = off; the reconciler still cleans
    up after an hour)."""
    github_hook_path: Annotated[str | None, parsed(parse_hook_path)] = None
    """`repos/OWNER/REPO/hooks/ID`, `orgs/ORG/hooks/ID`, or `app/hook` (a GitHub App's own
    webhook): the webhook whose failed deliveries the reconciler redelivers, for a webhook made
    by hand.

    Default: unset: the webhook `fargate-runners setup` recorded."""
    detailed_tracing: Bool = False
    """X-Ray subsegments for the dispatcher's GitHub JIT call, `RunTask` and secret write: adds
    the X-Ray SDK as a layer and sets `TRACE_REMOTE_CALLS=true`; every cold start then pays the
    SDK's import (about 0.1-0.3 s, [performance](performance.md#tracing-the-trade)). Off,
    Lambda's active tracing still records each invocation."""
    log_retention_days: Annotated[int, parsed(parse_int), AfterValidator(_retention)] = 30
    """Retention of every log group (a CloudWatch-allowed value)."""
    log_removal_policy: Annotated[str, parsed(one_of(LOG_REMOVAL_POLICIES))] = "destroy"
    """What `cdk destroy` does with the stack's log groups: `destroy` or `retain` (see
    [Teardown](lifecycle.md#teardown))."""
    reconcile_interval_minutes: Annotated[int, parsed(ranged(1, 60))] = 5
    """How often the reconciler runs (1..60)."""

    def _existing_vpc(self) -> bool:
        raise NotImplementedError

    def _github_app(self) -> bool:
        """Whether the Lambdas authenticate as a GitHub App (and may get its webhook)."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Rules between keys (each key is valid on its own here)."""
        raise_all(self._problems())
        return self

    def _problems(self) -> list[Problem]:
        problems = _profile_set_problems(self.profiles, "profiles")
        problems += [Problem(k, m) for k, m in capacity_problems(self.profiles, "profiles")]
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
        problems += self._warm_scope_problems()
        if ALL_REPOSITORIES in self.allowed_repositories and len(self.allowed_repositories) > 1:
            problems.append(
                Problem("allowed_repositories", '"*" (every repository) must be the only item')
            )
        if self._github_app() and not self.allowed_repositories:
            problems.append(
                Problem(
                    "allowed_repositories",
                    "is required with a GitHub App: the App's own webhook delivers the jobs of "
                    "every account that installs it, so list the repositories (owner/repo or "
                    'owner/*), or ["*"] to accept every repository the App is installed on',
                )
            )
        if self.runner_scope == "org":
            problems += _org_restricted_problems(self.profiles)
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

    def _warm_scope_problems(self) -> list[Problem]:
        """A warm pool's scope must fit ``runner_scope`` and be a repository jobs may use."""
        problems: list[Problem] = []
        for i, profile in enumerate(self.profiles):
            scope = profile.warm_scope
            if not profile.warm_runners or not scope:
                continue
            key = f"profiles[{i}].warm_scope"
            problem = warm_pool.scope_problem(scope, self.runner_scope)
            if problem is not None:
                problems.append(Problem(key, f"{scope!r} {problem}"))
            elif self.runner_scope == "repo":
                allowed = lambda_allowed_repositories(self.allowed_repositories)
                if not repository_allowed(scope, allowed):
                    problems.append(Problem(key, f"{scope!r} is not in allowed_repositories"))
                patterns = profile.allowed_repositories
                if patterns and not any(repository_match(p, scope) for p in patterns):
                    problems.append(
                        Problem(key, f"{scope!r} is not in this profile's allowed_repositories")
                    )
        return problems

    def _network_problems(self) -> list[Problem]:
        """Runner tasks must reach GitHub and pull their image (docs/networks.md)."""
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
            if profile.security_group_ids:
                problems.append(
                    Problem(
                        f"profiles[{i}].security_group_ids",
                        f"needs {vpc} (and subnet_ids): the stack's own VPC is created at "
                        "deploy time, so no existing security group can be in it; without "
                        "the key the stack creates this profile's own group",
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


GITHUB_AUTH = ("pat", "app")


class RunnersConfig(_Deployment):
    """The whole app configuration, from the ``cdk.json`` context (docs/configuration.md)."""

    KEY_KIND: ClassVar[str] = "context key"

    stack_name: Annotated[
        str,
        parsed(
            matching(
                STACK_NAME_RE,
                "a valid CloudFormation stack name (letter first, then letters, digits, "
                "hyphens; at most 128)",
            )
        ),
    ] = DEFAULT_STACK_NAME
    """CloudFormation stack name (at most 112 characters with `webhook_firewall`, see the naming
    rule above); prefix of task definition families (`<stack>-runner-<profile>`), the cluster
    (`<stack>-runners`), the API (`<stack>-webhook`) and, lower-cased and cut to 20 characters,
    of runner names."""
    github_token_secret_arn: Annotated[
        str | None,
        parsed(
            matching(
                SECRET_ARN_RE,
                "a complete Secrets Manager secret ARN "
                "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)",
                arn="secret-complete",
            )
        ),
    ] = None
    """Complete ARN of an existing secret holding the PAT.

    Default: unset (new empty secret)."""
    vpc_id: Annotated[str | None, parsed(matching(VPC_ID_RE, "a VPC id (vpc-0123abcd...)"))] = None
    """Existing VPC for runner tasks; requires `subnet_ids`.

    Default: unset (new VPC)."""
    alarm_email: Annotated[str | None, parsed(matching(EMAIL_RE, "an e-mail address"))] = None
    """E-mail for the alarms (creates an SNS topic whose policy lets only this stack's alarms
    publish, over TLS; confirm the subscription).

    Default: unset (synth warns: no alarm reaches a person)."""
    alarm_topic_arn: Annotated[
        str | None,
        parsed(
            matching(TOPIC_ARN_RE, "an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", arn="sns")
        ),
    ] = None
    """Existing SNS topic for the alarms instead; its policy must allow
    `cloudwatch.amazonaws.com` to `sns:Publish` (the stack cannot change another owner's topic)."""
    #: How the Lambdas authenticate to GitHub (docs/security.md, "PAT or GitHub App").
    github_auth: Annotated[str, parsed(one_of(GITHUB_AUTH))] = "pat"
    """`pat`, or `app`: authenticate as a GitHub App whose private key lives only in KMS ([PAT
    or GitHub App](security.md#pat-or-github-app))."""
    github_app_id: Annotated[
        str | None, parsed(matching(APP_ID_RE, "a GitHub App ID or client ID"))
    ] = None
    """The App's ID (digits) or client ID (`Iv…`; GitHub Enterprise Server before 3.14: the App
    ID).

    Default: required with `app`."""
    github_app_key_arn: Annotated[
        str | None, parsed(matching(KMS_KEY_ARN_RE, "a KMS key ARN", arn="kms"))
    ] = None
    """An existing KMS key (`RSA_2048`, `SIGN_VERIFY`, origin `EXTERNAL`) to sign the App's JWT
    with.

    Default: unset: with `app`, a new such key awaiting `fargate-runners setup --private-key`."""

    def _existing_vpc(self) -> bool:
        return self.vpc_id is not None

    def _github_app(self) -> bool:
        return self.github_auth == "app"

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
        app = self.github_auth == "app"
        if app and self.github_app_id is None:
            problems.append(Problem("github_app_id", "is required with github_auth: app"))
        problems += [
            Problem(key, "is used only with github_auth: app")
            for key in ("github_app_id", "github_app_key_arn")
            if getattr(self, key) is not None and not app
        ]
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


class ConstructSettings(_Deployment):
    """The plain-data ``FargateRunnersProps`` fields, validated like ``cdk.json``.

    Fields have their ``cdk.json`` names, which are the props' names too (one name per
    setting, issue 26). The one exception is in errors: the rules between keys speak of
    ``vpc_id``, which the props give as the ``vpc`` object.
    """

    KEY_KIND: ClassVar[str] = "FargateRunnersProps field"
    KEY_NAMES: ClassVar[Mapping[str, str]] = {"vpc_id": "vpc"}

    #: ``props.vpc`` is set (an existing VPC, or one the user's app creates).
    existing_vpc: bool = False
    #: ``props.github_app`` is set (the Lambdas authenticate as a GitHub App).
    github_app: bool = False
    name_prefix: Annotated[str | None, parsed(parse_name_prefix)] = None
    runner_name_prefix: Annotated[str | None, parsed(checked(rules.runner_name_prefix_problem))] = (
        None
    )

    def _existing_vpc(self) -> bool:
        return self.existing_vpc

    def _github_app(self) -> bool:
        return self.github_app


#: The settings ``cdk.json`` and ``FargateRunnersProps`` share, under the same name and
#: type: what ``FargateRunnersStack`` passes from the one to the other as it is.
SHARED_FIELDS: tuple[str, ...] = tuple(_Deployment.model_fields)
#: ``FargateRunnersProps`` fields that ``ConstructSettings`` validates (same names).
PROPS_FIELDS: tuple[str, ...] = tuple(
    name for name in ConstructSettings.model_fields if name not in ("existing_vpc", "github_app")
)


def check_construct_props(props: Any) -> ConstructSettings:
    """Validate a ``FargateRunnersProps`` (duck-typed: no ``aws_cdk`` here) like cdk.json."""
    data = {name: getattr(props, name) for name in PROPS_FIELDS}
    data["existing_vpc"] = getattr(props, "vpc", None) is not None
    data["github_app"] = getattr(props, "github_app", None) is not None
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
    raise_all([Problem(key, problem) for problem in problems])
