"""Runner-profile policy: which jobs a restricted profile's runners may take.

One implementation, two checkpoints:

* at dispatch, the webhook Lambda builds :class:`JobFacts` from the GitHub API
  (:func:`facts_from_workflow_run`) and calls ``evaluate(..., strict=False)``:
  facts it cannot know pass, the runner checks them;
* in the runner, the job-started hook builds facts from the job's environment
  and event file (:func:`facts_from_runner_env`) and calls
  ``evaluate(..., strict=True)``: a fact it cannot determine refuses the job.

This module is copied into the runner image and must run there on Python 3.10
with the standard library only: no imports from other ``lambda_fn`` modules,
no 3.11+ APIs.

Glob patterns (``allowed_refs``, ``allowed_workflows``; ``owner/*`` in
``allowed_repositories``) are deliberately small and predictable:

* ``*`` matches any run of characters within one path segment (never ``/``);
* ``?`` matches exactly one character other than ``/``;
* ``**`` matches any run of characters across segments, including none.
  As a whole segment it may also stand for *no* segment: ``a/**/b`` matches
  ``a/b`` and ``a/x/y/b``; ``**/b`` matches ``b`` and ``x/b``;
  ``refs/heads/release/**`` matches ``refs/heads/release/1.0`` and
  ``refs/heads/release/1.x/hotfix`` (but not ``refs/heads/release``);
* every other character is literal, including ``[``, ``]``, ``{``, ``.``,
  ``+`` and ``\\``: there are no character classes, braces or escapes.

Patterns match the whole value. Refs and workflow paths are compared
case-sensitively (as Git and GitHub do); repositories case-insensitively.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "EMPTY_RULE_PROBLEM",
    "PULL_REQUEST_EVENTS",
    "RULE_ENVIRONMENT",
    "RULE_EVENTS",
    "RULE_FORKS",
    "RULE_REFS",
    "RULE_REPOSITORIES",
    "RULE_WORKFLOWS",
    "TAG_PROTECTIONS",
    "Decision",
    "JobFacts",
    "Policy",
    "PolicyError",
    "environment_refusal",
    "evaluate",
    "exact_branches",
    "facts_from_runner_env",
    "facts_from_workflow_run",
    "glob_match",
    "glob_to_regex",
    "missing_env",
    "parse_workflow_ref",
    "policy_from_dict",
    "policy_from_json",
    "repository_pattern_problem",
    "tag_pattern",
]

#: Events whose payload carries a ``pull_request`` and whose head may be a fork.
PULL_REQUEST_EVENTS = frozenset(
    {
        "pull_request",
        "pull_request_target",
        "pull_request_review",
        "pull_request_review_comment",
    }
)

# Rule names are the policy keys, so an error points straight at the config.
RULE_REPOSITORIES = "allowed_repositories"
RULE_FORKS = "deny_fork_pull_requests"
RULE_EVENTS = "allowed_events"
RULE_REFS = "allowed_refs"
RULE_WORKFLOWS = "allowed_workflows"
#: Dispatch-only: the runner cannot see the job's environment (see :func:`environment_refusal`).
RULE_ENVIRONMENT = "required_environment"

WORKFLOWS_DIR = ".github/workflows/"

#: Why an empty rule list is refused (policy loader and synth use the same words).
EMPTY_RULE_PROBLEM = (
    "an empty list is not allowed (it would not say whether nothing or everything "
    "is allowed): omit the key to allow any, or list what is allowed"
)

_LIST_KEYS = (
    "allowed_repositories",
    "allowed_refs",
    "allowed_workflows",
    "allowed_events",
    "required_env",
)
_KNOWN_KEYS = frozenset(
    (*_LIST_KEYS, "deny_fork_pull_requests", "profile", "tag_protection", RULE_ENVIRONMENT)
)

#: How a restricted profile's tags (``refs/tags/...`` in ``allowed_refs``) are protected.
#: ``branch-history``: dispatch admits a tag run only when its commit is in the history of
#: an exact branch ``allowed_refs`` allows (``lambda_fn.admission``); ``ruleset``: the
#: operator states that a tag ruleset restricts who creates and updates these tags, and
#: dispatch does no ancestry check (``fargate-runners doctor`` verifies the ruleset).
TAG_PROTECTIONS = ("branch-history", "ruleset")
DEFAULT_TAG_PROTECTION = "branch-history"
_WILDCARDS = re.compile(r"[*?]")
#: "An environment name may not exceed 255 characters" (docs.github.com, actions/how-tos/
#: deploy/configure-and-manage-deployments/manage-environments).
MAX_ENVIRONMENT_NAME = 255

#: The one ``owner/repo`` / ``owner/*`` rule (cdk.json, profiles, the Lambda's
#: ALLOWED_REPOSITORIES). Owner: a GitHub account name, letters, digits and hyphens, at most
#: 39 characters, plus '_' because Enterprise Managed Users are named ``handle_SHORTCODE``
#: (docs.github.com/en/enterprise-cloud@latest/admin/managing-iam/iam-configuration-reference/
#: username-considerations-for-external-authentication). Repository: letters, digits, '.',
#: '-', '_', at most 100, not '.' or '..'; or '*' for every repository of the owner.
_REPOSITORY_PATTERN = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}/(\*|(?!\.\.?$)[A-Za-z0-9._-]{1,100})$"
)
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PolicyError(ValueError):
    """A policy document is invalid; the message names the offending key."""


# --------------------------------------------------------------------------- globs


@lru_cache(maxsize=512)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob (see the module docstring) to a regex anchored at both ends."""
    parts: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        if pattern.startswith("**", i):
            at_segment_start = i == 0 or pattern[i - 1] == "/"
            followed_by_slash = pattern.startswith("/", i + 2)
            if at_segment_start and followed_by_slash:
                # "**/" as whole segment(s): zero or more leading segments.
                parts.append("(?:.*/)?")
                i += 3
            else:
                parts.append(".*")
                i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile(r"\A" + "".join(parts) + r"\Z", re.DOTALL)


def glob_match(pattern: str, value: str) -> bool:
    """True if ``value`` matches the whole ``pattern`` (case-sensitive)."""
    return glob_to_regex(pattern).match(value) is not None


def repository_match(pattern: str, repository: str) -> bool:
    """An ``allowed_repositories`` glob against ``owner/name``, case-insensitively."""
    return glob_match(pattern.lower(), repository.lower())


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """What a runner profile accepts. An empty tuple means "no restriction".

    A restricted profile (any rule set) always refuses pull requests from
    forks: ``deny_fork_pull_requests`` is forced to ``True`` whenever another
    rule is set, and :func:`policy_from_dict` rejects an explicit ``false``
    next to other rules rather than silently ignoring it.
    """

    profile: str
    allowed_repositories: tuple[str, ...] = ()
    allowed_refs: tuple[str, ...] = ()
    allowed_workflows: tuple[str, ...] = ()
    allowed_events: tuple[str, ...] = ()
    deny_fork_pull_requests: bool = False
    required_env: tuple[str, ...] = ()
    #: One of :data:`TAG_PROTECTIONS`; only dispatch reads it (the runner cannot ask GitHub).
    tag_protection: str = DEFAULT_TAG_PROTECTION
    #: The deployment environment every job must name (``environment:``); checked at
    #: dispatch from the delivery's ``deployment.environment`` (:func:`environment_refusal`).
    required_environment: str | None = None

    def __post_init__(self) -> None:
        for key in _LIST_KEYS:
            value = getattr(self, key)
            if not isinstance(value, tuple):
                object.__setattr__(self, key, tuple(value))
        if self._has_rules():
            object.__setattr__(self, "deny_fork_pull_requests", True)

    def _has_rules(self) -> bool:
        return any(getattr(self, key) for key in _LIST_KEYS) or bool(self.required_environment)

    @property
    def restricted(self) -> bool:
        """True if any rule is set (then fork pull requests are always refused)."""
        return self.deny_fork_pull_requests or self._has_rules()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; ``policy_from_dict(p.profile, p.to_dict()) == p``.

        Unset rules are left out: an empty list is not a valid policy value
        (see :func:`policy_from_dict`).
        """
        data: dict[str, Any] = {"profile": self.profile}
        for key in _LIST_KEYS:
            values = getattr(self, key)
            if values:
                data[key] = list(values)
        if self.required_environment:
            data[RULE_ENVIRONMENT] = self.required_environment
        data["deny_fork_pull_requests"] = self.deny_fork_pull_requests
        if self.tag_protection != DEFAULT_TAG_PROTECTION:
            data["tag_protection"] = self.tag_protection
        return data

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_dict` (what travels in ``RUNNER_POLICY_JSON``)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)


def policy_from_dict(
    profile_name: str, data: Mapping[str, Any] | None, *, where: str | None = None
) -> Policy:
    """Validate ``data`` (a profile's ``policy`` object) and build a :class:`Policy`.

    ``where`` prefixes error messages (default ``profiles[<name>]``), e.g.
    ``profiles[deploy].allowed_refs[0]: must start with 'refs/' ...``.
    ``None`` or ``{}`` is an unrestricted policy. A ``profile`` key, if present
    (as in :meth:`Policy.to_dict`), must equal ``profile_name``. A rule given
    as an empty list is an error, not "no restriction": ``"allowed_refs": []``
    reads as "no ref is allowed" to some and "any ref" to others, so it fails
    closed and the message says to omit the key.
    """
    prefix = where if where is not None else f"profiles[{profile_name}]"
    if (
        not isinstance(profile_name, str)
        or not profile_name.strip()
        or _CONTROL.search(profile_name)
    ):
        raise PolicyError(
            f"{prefix}: profile name must be a non-empty string, got {profile_name!r}"
        )
    if data is None:
        return Policy(profile=profile_name)
    if not isinstance(data, Mapping):
        raise PolicyError(f"{prefix}: policy must be an object, got {type(data).__name__}")
    unknown = sorted(str(key) for key in data if key not in _KNOWN_KEYS)
    if unknown:
        raise PolicyError(
            f"{prefix}: unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_KNOWN_KEYS))})"
        )
    if "profile" in data and data["profile"] != profile_name:
        raise PolicyError(
            f"{prefix}.profile: {data['profile']!r} does not match profile name {profile_name!r}"
        )

    lists = {key: _string_list(data, key, prefix) for key in _LIST_KEYS}
    for key, values in lists.items():
        for index, value in enumerate(values):
            _VALIDATORS[key](value, f"{prefix}.{key}[{index}]")

    environment = _environment_name(data, prefix)
    has_rules = any(lists.values()) or environment is not None
    deny_forks = data.get("deny_fork_pull_requests")
    if deny_forks is None:
        deny_forks = has_rules
    elif not isinstance(deny_forks, bool):
        raise PolicyError(
            f"{prefix}.deny_fork_pull_requests: must be true or false, "
            f"got {type(deny_forks).__name__}"
        )
    elif has_rules and not deny_forks:
        raise PolicyError(
            f"{prefix}.deny_fork_pull_requests: cannot be false for a restricted profile "
            "(one with allowed_*, required_env or required_environment rules)"
        )

    tag_protection = data.get("tag_protection", DEFAULT_TAG_PROTECTION)
    if tag_protection not in TAG_PROTECTIONS:
        raise PolicyError(
            f"{prefix}.tag_protection: {tag_protection!r} is not one of "
            f"{', '.join(TAG_PROTECTIONS)}"
        )

    return Policy(
        profile=profile_name,
        allowed_repositories=lists["allowed_repositories"],
        allowed_refs=lists["allowed_refs"],
        allowed_workflows=lists["allowed_workflows"],
        allowed_events=lists["allowed_events"],
        deny_fork_pull_requests=deny_forks,
        required_env=lists["required_env"],
        tag_protection=tag_protection,
        required_environment=environment,
    )


def _environment_name(data: Mapping[str, Any], prefix: str) -> str | None:
    """``required_environment``: absent, or a name GitHub would accept for an environment."""
    value = data.get(RULE_ENVIRONMENT)
    if value is None:
        return None
    where = f"{prefix}.{RULE_ENVIRONMENT}"
    if not isinstance(value, str):
        raise PolicyError(
            f"{where}: must be an environment name (a string), got {type(value).__name__}; "
            "omit the key to allow jobs without an environment"
        )
    if not value or value != value.strip() or _CONTROL.search(value):
        raise PolicyError(
            f"{where}: {value!r} must be non-empty, without surrounding spaces or control "
            "characters (the name of the GitHub environment, e.g. production)"
        )
    if len(value) > MAX_ENVIRONMENT_NAME:
        raise PolicyError(
            f"{where}: longer than {MAX_ENVIRONMENT_NAME} characters (GitHub's limit for "
            "an environment name)"
        )
    return value


def policy_from_json(text: str) -> Policy:
    """Parse the JSON form of :meth:`Policy.to_dict` (which carries ``profile``)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"policy: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy: must be a JSON object, got {type(data).__name__}")
    name = data.get("profile")
    if not isinstance(name, str) or not name:
        raise PolicyError("policy.profile: must be a non-empty string")
    return policy_from_dict(name, data, where=f"policy[{name}]")


def tag_pattern(pattern: str) -> bool:
    """True if an ``allowed_refs`` pattern can match a tag (``refs/tags/...``).

    Its literal part before the first wildcard either starts with ``refs/tags/`` or is a
    prefix of it: ``refs/tags/v*``, ``refs/**`` and ``refs/*/v1`` can; ``refs/heads/*``
    cannot.
    """
    literal = _WILDCARDS.split(pattern, 1)[0]
    return literal.startswith("refs/tags/") or "refs/tags/".startswith(literal)


def exact_branches(policy: Policy) -> tuple[str, ...]:
    """Branch names of the wildcard-free ``refs/heads/...`` patterns, in policy order.

    The branches a tag's commit may be found in (``tag_protection: branch-history``);
    glob patterns are not among them: see ``lambda_fn.admission``.
    """
    return tuple(
        p.removeprefix("refs/heads/")
        for p in policy.allowed_refs
        if p.startswith("refs/heads/") and len(p) > len("refs/heads/") and not _WILDCARDS.search(p)
    )


def _string_list(data: Mapping[str, Any], key: str, prefix: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise PolicyError(f"{prefix}.{key}: must be a list of strings, got {type(value).__name__}")
    if not value:
        raise PolicyError(f"{prefix}.{key}: {EMPTY_RULE_PROBLEM}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise PolicyError(
                f"{prefix}.{key}[{index}]: must be a string, got {type(item).__name__}"
            )
        if not item or item != item.strip():
            raise PolicyError(
                f"{prefix}.{key}[{index}]: must be non-empty without surrounding spaces, "
                f"got {item!r}"
            )
    return tuple(value)


def repository_pattern_problem(value: str) -> str | None:
    """Why ``value`` is not ``owner/repo`` or ``owner/*`` (see ``_REPOSITORY_PATTERN``)."""
    if _REPOSITORY_PATTERN.match(value):
        return None
    return f"{value!r} is not 'owner/repo' or 'owner/*'"


def _check_repository_pattern(value: str, where: str) -> None:
    problem = repository_pattern_problem(value)
    if problem is not None:
        raise PolicyError(f"{where}: {problem}")


def _check_event_name(value: str, where: str) -> None:
    if not _EVENT_NAME.match(value):
        raise PolicyError(
            f"{where}: {value!r} is not an event name (like push or workflow_dispatch; "
            "no wildcards)"
        )


def _check_env_name(value: str, where: str) -> None:
    if not _ENV_NAME.match(value):
        raise PolicyError(f"{where}: {value!r} is not an environment variable name")


def _check_ref_pattern(value: str, where: str) -> None:
    if not value.startswith("refs/"):
        raise PolicyError(
            f"{where}: {value!r} must be a full ref starting with 'refs/' "
            f"(e.g. refs/heads/{value} or refs/tags/{value})"
        )
    if _WHITESPACE_OR_CONTROL.search(value):
        raise PolicyError(f"{where}: {value!r} contains whitespace or control characters")


def _check_workflow_pattern(value: str, where: str) -> None:
    if not value.startswith(WORKFLOWS_DIR):
        raise PolicyError(
            f"{where}: {value!r} must be a workflow path starting with {WORKFLOWS_DIR!r} "
            f"(e.g. {WORKFLOWS_DIR}deploy.yml)"
        )
    if "@" in value:
        raise PolicyError(f"{where}: {value!r} must be a path without '@ref'")
    if _CONTROL.search(value):
        raise PolicyError(f"{where}: {value!r} contains control characters")


_VALIDATORS: dict[str, Callable[[str, str], None]] = {
    "allowed_repositories": _check_repository_pattern,
    "allowed_refs": _check_ref_pattern,
    "allowed_workflows": _check_workflow_pattern,
    "allowed_events": _check_event_name,
    "required_env": _check_env_name,
}


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class JobFacts:
    """What is known about a job; ``None`` means "could not be determined".

    ``ref_candidates`` is used only while ``ref`` is ``None``: refs one of
    which the job runs at (the REST API names a branch *or* a tag only by its
    short name). A lenient check refuses if none of them is allowed.
    """

    repository: str | None
    ref: str | None = None
    workflow_path: str | None = None
    event: str | None = None
    from_fork: bool | None = None
    ref_candidates: tuple[str, ...] = ()


def parse_workflow_ref(value: str) -> tuple[str, str, str]:
    """Split ``GITHUB_WORKFLOW_REF`` into ``(repository, path, ref)``.

    ``octo/app/.github/workflows/deploy.yml@refs/heads/main`` ->
    ``("octo/app", ".github/workflows/deploy.yml", "refs/heads/main")``.
    The split is at the first ``@refs/`` (else the last ``@``), so an ``@``
    in a file name or branch name does not confuse it. Raises ``ValueError``.
    """
    owner, sep1, rest = value.partition("/")
    name, sep2, rest = rest.partition("/")
    if not (owner and sep1 and name and sep2 and rest):
        raise ValueError(f"workflow ref {value!r} is not 'owner/repo/path@ref'")
    marker = rest.find("@refs/")
    if marker >= 0:
        path, ref = rest[:marker], rest[marker + 1 :]
    else:
        path, _, ref = rest.rpartition("@")
    if not path or not ref:
        raise ValueError(f"workflow ref {value!r} is not 'owner/repo/path@ref'")
    return f"{owner}/{name}", path, ref


def _is_fork(head_repo: Any, repository: str | None) -> bool | None:
    """Fork decision for a pull request's head repository object."""
    if not isinstance(head_repo, Mapping):
        return True  # head repository deleted (or hidden): treat as a fork
    if head_repo.get("fork") is True:
        return True
    full_name = head_repo.get("full_name")
    if not isinstance(full_name, str) or not full_name:
        return True
    if repository is None:
        return None
    return full_name.lower() != repository.lower()


def facts_from_runner_env(
    env: Mapping[str, str], event_payload: Mapping[str, Any] | None
) -> JobFacts:
    """Facts as a job-started hook sees them (``GITHUB_*`` env and the event file).

    ``from_fork``: for pull-request events (:data:`PULL_REQUEST_EVENTS`) it is
    ``True`` if ``pull_request.head.repo`` is missing (deleted fork), has
    ``fork: true``, or names another repository than ``GITHUB_REPOSITORY``;
    ``None`` without a payload. For ``workflow_run`` it is ``True`` if the
    triggering run came from a pull request whose head repository differs.
    Other events: ``False``. Unknown event: ``None``.
    """
    repository = env.get("GITHUB_REPOSITORY") or None
    ref = env.get("GITHUB_REF") or None
    event = env.get("GITHUB_EVENT_NAME") or None
    workflow_path: str | None = None
    workflow_ref = env.get("GITHUB_WORKFLOW_REF")
    if workflow_ref:
        try:
            _, workflow_path, _ = parse_workflow_ref(workflow_ref)
        except ValueError:
            workflow_path = None

    from_fork: bool | None
    if event is None:
        from_fork = None
    elif event in PULL_REQUEST_EVENTS:
        pull_request = event_payload.get("pull_request") if event_payload is not None else None
        if not isinstance(pull_request, Mapping):
            from_fork = None
        else:
            head = pull_request.get("head")
            head_repo = head.get("repo") if isinstance(head, Mapping) else None
            from_fork = _is_fork(head_repo, repository)
    elif event == "workflow_run":
        run = event_payload.get("workflow_run") if event_payload is not None else None
        if not isinstance(run, Mapping):
            from_fork = None
        elif run.get("event") in PULL_REQUEST_EVENTS:
            from_fork = _is_fork(run.get("head_repository"), repository)
        else:
            from_fork = False
    else:
        from_fork = False

    return JobFacts(
        repository=repository,
        ref=ref,
        workflow_path=workflow_path,
        event=event,
        from_fork=from_fork,
    )


def facts_from_workflow_run(run: Mapping[str, Any]) -> JobFacts:
    """Facts from ``GET /repos/{owner}/{repo}/actions/runs/{run_id}``.

    * ``path`` may carry an ``@ref`` suffix (dynamic workflows): it is stripped.
    * ``ref`` is always ``None``: ``head_branch`` is a *short* name that is a
      branch or a tag (tag pushes, ``release``, ``workflow_dispatch`` on a
      tag) and the answer does not say which. Instead ``ref_candidates`` is
      ``(refs/heads/<x>, refs/tags/<x>)`` and a lenient check refuses only if
      neither is allowed. For pull-request events ``head_branch`` is the
      fork's branch, not the ref the job runs at: no candidates.
    * ``from_fork`` for pull-request events compares ``head_repository`` with
      ``repository`` (missing head repository -> fork); ``None`` for
      ``workflow_run`` (the triggering run is not in this answer); else False.
    """
    repo_obj = run.get("repository")
    repository = repo_obj.get("full_name") if isinstance(repo_obj, Mapping) else None
    if not isinstance(repository, str) or not repository:
        repository = None
    event = run.get("event")
    if not isinstance(event, str) or not event:
        event = None

    path = run.get("path")
    workflow_path = None
    if isinstance(path, str) and path:
        workflow_path = path.split("@", 1)[0] or None

    from_fork: bool | None
    candidates: tuple[str, ...] = ()
    if event is None or event == "workflow_run":
        from_fork = None
    elif event in PULL_REQUEST_EVENTS:
        from_fork = _is_fork(run.get("head_repository"), repository)
    else:
        from_fork = False
    branch = run.get("head_branch")
    if event not in PULL_REQUEST_EVENTS and isinstance(branch, str) and branch:
        if branch.startswith("refs/"):
            candidates = (branch,)
        else:
            candidates = (f"refs/heads/{branch}", f"refs/tags/{branch}")

    return JobFacts(
        repository=repository,
        ref=None,
        workflow_path=workflow_path,
        event=event,
        from_fork=from_fork,
        ref_candidates=candidates,
    )


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Decision:
    """The verdict; ``rule`` is the policy key that refused (``""`` if allowed)."""

    allowed: bool
    rule: str
    message: str


def _show(value: str) -> str:
    """A value for a message: as-is if printable, else its repr (no line breaks)."""
    return value if value and value.isprintable() else repr(value)


def _allowed_list(patterns: Iterable[str]) -> str:
    return f"(allowed: {', '.join(patterns)})"


def _refuse(rule: str, message: str) -> Decision:
    return Decision(allowed=False, rule=rule, message=message)


def _unknown(rule: str, what: str, patterns: tuple[str, ...]) -> Decision:
    return _refuse(rule, f"{what} could not be determined {_allowed_list(patterns)}")


def evaluate(policy: Policy, facts: JobFacts, *, strict: bool) -> Decision:
    """Check ``facts`` against ``policy``: repository, fork PRs, event, ref, workflow.

    ``strict=True`` (runner): a fact that is ``None`` for a restricted
    dimension refuses the job. ``strict=False`` (dispatch): it passes, the
    runner checks it again strictly. The first refusing rule wins.
    """
    for check in (_check_repository, _check_forks, _check_event, _check_ref, _check_workflow):
        refusal = check(policy, facts, strict)
        if refusal is not None:
            return refusal
    if not policy.restricted:
        return Decision(True, "", f"runner profile '{policy.profile}' is not restricted")
    return Decision(True, "", f"job matches runner profile '{policy.profile}'")


def _check_repository(policy: Policy, facts: JobFacts, strict: bool) -> Decision | None:
    patterns = policy.allowed_repositories
    if not patterns:
        return None
    if facts.repository is None:
        return _unknown(RULE_REPOSITORIES, "repository", patterns) if strict else None
    if any(repository_match(p, facts.repository) for p in patterns):
        return None
    return _refuse(
        RULE_REPOSITORIES,
        f"repository {_show(facts.repository)} is not allowed {_allowed_list(patterns)}",
    )


def _check_forks(policy: Policy, facts: JobFacts, strict: bool) -> Decision | None:
    if not policy.deny_fork_pull_requests or facts.from_fork is False:
        return None
    event = _show(facts.event or "")
    if facts.from_fork is None:
        if not strict:
            return None
        return _refuse(
            RULE_FORKS,
            f"could not determine whether the job comes from a fork (event {event}); "
            "jobs from forks are not allowed",
        )
    return _refuse(RULE_FORKS, f"jobs for pull requests from forks are not allowed (event {event})")


def _check_event(policy: Policy, facts: JobFacts, strict: bool) -> Decision | None:
    patterns = policy.allowed_events
    if not patterns:
        return None
    if facts.event is None:
        return _unknown(RULE_EVENTS, "event", patterns) if strict else None
    if facts.event in patterns:
        return None
    return _refuse(
        RULE_EVENTS, f"event {_show(facts.event)} is not allowed {_allowed_list(patterns)}"
    )


def _check_ref(policy: Policy, facts: JobFacts, strict: bool) -> Decision | None:
    patterns = policy.allowed_refs
    if not patterns:
        return None
    if facts.ref is not None:
        refs: tuple[str, ...] = (facts.ref,)
    elif strict:
        return _unknown(RULE_REFS, "ref", patterns)
    else:
        refs = facts.ref_candidates
    if not refs or any(glob_match(p, ref) for p in patterns for ref in refs):
        return None
    shown = " or ".join(_show(ref) for ref in refs)
    return _refuse(RULE_REFS, f"ref {shown} is not allowed {_allowed_list(patterns)}")


def _check_workflow(policy: Policy, facts: JobFacts, strict: bool) -> Decision | None:
    patterns = policy.allowed_workflows
    if not patterns:
        return None
    if facts.workflow_path is None:
        return _unknown(RULE_WORKFLOWS, "workflow", patterns) if strict else None
    if any(glob_match(p, facts.workflow_path) for p in patterns):
        return None
    return _refuse(
        RULE_WORKFLOWS,
        f"workflow {_show(facts.workflow_path)} is not allowed {_allowed_list(patterns)}",
    )


def environment_refusal(policy: Policy, environment: str | None) -> Decision | None:
    """``required_environment`` against the environment the job deploys to, or ``None``.

    Decided at dispatch only, from the signed delivery's ``deployment.environment``
    (``None``: the delivery has no ``deployment``, the job names no environment). The
    runner cannot check it: no ``GITHUB_*`` variable carries the environment name
    (actions/runner ``src/Runner.Worker/GitHubContext.cs``), so :func:`evaluate` leaves
    it out. Names compare case-insensitively, as GitHub's do ("Environment names are not
    case sensitive": docs.github.com, manage-environments).
    """
    required = policy.required_environment
    if not required:
        return None
    if environment is None:
        return _refuse(
            RULE_ENVIRONMENT,
            f"the job deploys to no environment (required: environment {_show(required)})",
        )
    if environment.casefold() != required.casefold():
        return _refuse(
            RULE_ENVIRONMENT,
            f"the job deploys to environment {_show(environment)} "
            f"(required: environment {_show(required)})",
        )
    return None


def missing_env(policy: Policy, env: Mapping[str, str]) -> list[str]:
    """``required_env`` names that are unset or empty in ``env``, in policy order."""
    return [name for name in policy.required_env if not env.get(name)]
