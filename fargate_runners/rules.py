"""Rules for single configuration values, each with the platform fact it rests on.

Plain functions returning a problem (``str``) or ``None``: :mod:`fargate_runners.config`
attaches them to keys. Standard library only, no ``aws_cdk``, no pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlparse

# The Lambda's own checks of the names synth derives (stdlib only, like this module).
from lambda_fn.config import JIT_SECRET_PREFIX_MAX
from lambda_fn.naming import runner_name_prefix_problem

__all__ = [
    "GITHUB_DOT_COM_API",
    "NAME_LIMITS",
    "WAF_METRIC_SUFFIXES",
    "WORKFLOW_EVENTS",
    "architecture_problem",
    "event_problem",
    "github_api_url_problem",
    "image_problem",
    "name_prefix_problems",
    "runner_name_prefix_problem",
]

GITHUB_DOT_COM_API = "https://api.github.com"

# --------------------------------------------------------------------------- events

#: Every event that can trigger a workflow, from "Events that trigger workflows"
#: (https://docs.github.com/en/actions/reference/workflows-and-actions/events-that-trigger-workflows),
#: minus ``workflow_call`` (see :data:`EVENT_HINTS`). ``allowed_events`` compares them with
#: the job's ``GITHUB_EVENT_NAME`` / the run's ``event``.
WORKFLOW_EVENTS = frozenset(
    {
        "branch_protection_rule", "check_run", "check_suite", "create", "delete",
        "deployment", "deployment_status", "discussion", "discussion_comment", "fork",
        "gollum", "image_version", "issue_comment", "issues", "label", "merge_group",
        "milestone", "page_build", "project", "project_card", "project_column", "public",
        "pull_request", "pull_request_review", "pull_request_review_comment",
        "pull_request_target", "push", "registry_package", "release", "repository_dispatch",
        "schedule", "status", "watch", "workflow_dispatch", "workflow_run",
    }
)  # fmt: skip

#: Names people write that never reach a job as its event.
EVENT_HINTS = {
    # "When a reusable workflow is triggered by a caller workflow, the github context is
    # always associated with the caller workflow" (docs.github.com/actions/using-workflows/
    # reusing-workflows): a called workflow's jobs carry the caller's event name.
    "workflow_call": "a called workflow's jobs carry the caller's event name: list the "
    "caller's events (e.g. push) instead",
    # The docs list it only to say: use issue_comment.
    "pull_request_comment": "comments on a pull request arrive as issue_comment: use that",
}


def event_problem(name: str) -> str | None:
    """Why ``name`` can never match a job's event, or ``None``."""
    if name in WORKFLOW_EVENTS:
        return None
    if name in EVENT_HINTS:
        return f"{name!r} is not a job's event name: {EVENT_HINTS[name]}"
    from difflib import get_close_matches

    close = get_close_matches(name, sorted(WORKFLOW_EVENTS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"{name!r} is not an event that triggers workflows ({hint}valid: "
        f"{', '.join(sorted(WORKFLOW_EVENTS))})"
    )


# --------------------------------------------------------------------------- images

# The reference grammar of github.com/distribution/reference (reference.go), which Docker
# and containerd parse image names with:
#   reference := name [ ":" tag ] [ "@" digest ];  name := [domain '/'] path
#   domain := host [':' port];  path-component := [a-z0-9]+ (separator [a-z0-9]+)*
#   separator := [_.] | __ | [-]+;  tag := [\w][\w.-]{0,127}
#   digest := algorithm ":" hex (at least 32 hex digits)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    rf"^(?:(?P<domain>{_HOST}(?::[0-9]+)?)/)?"
    rf"(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<algorithm>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*)"
    r":(?P<hex>[0-9a-fA-F]{32,}))?$"
)
#: ECS ContainerDefinition.image: up to 255 characters (everything before the '@' for a
#: digest); "the only supported hash function is sha256, and the hash value after sha256:
#: must be exactly 64 characters" (ECS API reference, ContainerDefinition).
_IMAGE_MAX = 255
_IMAGE_FIX = "expected [REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:<64 hex>], lower-case repository"


def image_problem(reference: str) -> str | None:
    """Why ECS could not pull ``reference``, or ``None``."""
    match = _IMAGE_RE.match(reference)
    if match is None:
        lowered = reference.lower()
        if lowered != reference and _IMAGE_RE.match(lowered):
            return f"{reference!r}: the repository part must be lower-case ({_IMAGE_FIX})"
        return f"{reference!r} is not a container image reference ({_IMAGE_FIX})"
    named = reference.split("@", 1)[0]
    if len(named) > _IMAGE_MAX:
        return f"{reference!r} is longer than ECS allows ({len(named)} > {_IMAGE_MAX} before '@')"
    algorithm, digest = match.group("algorithm"), match.group("hex")
    if algorithm is not None and (algorithm != "sha256" or len(digest) != 64):
        return f"{reference!r}: ECS accepts only @sha256: digests of exactly 64 hex digits"
    return None


# --------------------------------------------------------------------------- GitHub URL


def github_api_url_problem(url: str) -> str | None:
    """Why ``url`` is not a GitHub REST base URL we may send a token to, or ``None``.

    github.com: ``https://api.github.com``; GitHub Enterprise Cloud with data residency:
    ``https://api.SUBDOMAIN.ghe.com``; GitHub Enterprise Server: ``https://HOST/api/v3``
    (docs.github.com "About the REST API": GHES serves it under ``/api/v3``).
    """
    parsed = urlparse(url)
    if parsed.scheme != "https" or not parsed.netloc:
        return f"{url!r} must be an https:// URL (the token travels with every request)"
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        return f"{url!r} must not have credentials, a query or a fragment"
    host, path = (parsed.hostname or "").lower(), parsed.path.rstrip("/")
    if host in ("github.com", "www.github.com", "api.github.com"):
        if host != "api.github.com" or path:
            return f"{url!r}: for github.com use {GITHUB_DOT_COM_API}"
        return None
    if host.endswith(".ghe.com"):
        if not host.startswith("api.") or path:
            return f"{url!r}: for GHE.com use https://api.SUBDOMAIN.ghe.com"
        return None
    if path != "/api/v3":
        return (
            f"{url!r}: a GitHub Enterprise Server's REST API is under /api/v3 "
            f"(use https://{parsed.netloc}/api/v3)"
        )
    return None


# --------------------------------------------------------------------------- labels

#: Architecture labels the runner gives itself (actions/runner src/Runner.Common/Util/
#: VarUtil.cs: X86, X64, ARM, ARM64), plus common spellings, compared case-insensitively.
_ARM_LABELS = frozenset({"arm", "arm64", "aarch64"})
_X86_LABELS = frozenset({"x64", "x86", "x86_64", "x86-64", "amd64"})
_OTHER_ARCHITECTURE = {"ARM64": _X86_LABELS, "X86_64": _ARM_LABELS}


def architecture_problem(architecture: str, labels: Iterable[str]) -> str | None:
    """A label that promises the other CPU architecture than the task has, or ``None``."""
    wrong = [label for label in labels if label.lower() in _OTHER_ARCHITECTURE[architecture]]
    if not wrong:
        return None
    other = "X86_64" if architecture == "ARM64" else "ARM64"
    return (
        f"labels {', '.join(wrong)} promise {other} but the task runs on {architecture}: "
        f"jobs that ask for them would run on the wrong CPU; set architecture to {other} "
        "or change the labels"
    )


# --------------------------------------------------------------------------- names

#: The WAF web ACL's CloudWatch metric names are ``<prefix><suffix>`` (fargate_runners/
#: firewall.py). "The name can be from one to 128 characters long" (AWS WAF API reference,
#: VisibilityConfig.MetricName).
WAF_METRIC_SUFFIXES = ("-webhook", "-outside-sources", "-other-hooks", "-rate-limited")
_WAF_METRIC_MAX = 128

#: (what, suffix, limit, source) for names built as ``<prefix><suffix>``.
NAME_LIMITS: tuple[tuple[str, str, int, str], ...] = (
    # lambda_fn/config.py refuses a longer JIT_SECRET_PREFIX (and the Lambda then answers
    # 500 to every delivery); the construct sets it to ``<prefix>/jit``.
    (
        "the JIT config secret prefix",
        "/jit",
        JIT_SECRET_PREFIX_MAX,
        "the Lambda's JIT_SECRET_PREFIX check",
    ),
    # ECS: cluster names and task definition families, "up to 255 letters (uppercase and
    # lowercase), numbers, underscores, and hyphens" (ECS API reference).
    ("the ECS cluster name", "-runners", 255, "ECS cluster names"),
)
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_FAMILY_MAX = 255


def name_prefix_problems(
    prefix: str, *, webhook_firewall: bool, profile_names: Iterable[str]
) -> list[str]:
    """Why names derived from ``prefix`` (the stack name by default) would fail at deploy.

    These pass synth and then fail in CloudFormation, or worse, deploy and make the
    Lambda's configuration check fail on every delivery.
    """
    if not _PREFIX_RE.match(prefix):
        return [
            f"{prefix!r} must be letters, digits and hyphens, starting with a letter or "
            "digit (it names ECS resources, WAF metrics and, lower-cased, the runners)"
        ]
    problems = []
    limits = list(NAME_LIMITS)
    if webhook_firewall:
        longest = max(WAF_METRIC_SUFFIXES, key=len)
        limits.append(("the WAF metric names", longest, _WAF_METRIC_MAX, "AWS WAF"))
    for what, suffix, limit, source in limits:
        if len(prefix) + len(suffix) > limit:
            problems.append(
                f"{prefix!r} is {len(prefix)} characters: {what} {prefix + suffix!r} would "
                f"exceed {limit} ({source}); use at most {limit - len(suffix)} characters"
            )
    for name in profile_names:
        family = f"{prefix}-runner-{name}"
        if len(family) > _FAMILY_MAX:
            problems.append(
                f"{prefix!r}: task definition family {family[:40]}... is {len(family)} "
                f"characters (ECS allows {_FAMILY_MAX}); shorten it or profile {name!r}"
            )
    return problems
