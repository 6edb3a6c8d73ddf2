"""Configurations that synthesize but can never work: what synth can prove about them.

Three kinds, each a rule with the platform fact it rests on (docs/never-work.md):

* a restricted profile whose rules together admit no job (:func:`policy_problems`);
* more Fargate vCPUs than a deployment can sensibly ask for (:func:`capacity_problems`,
  refused) or than a default account quota allows (:func:`capacity_warnings`, warned:
  ``fargate-runners doctor`` reads the account's own quota);
* names, aliases and key ids where an ARN is required (:func:`arn_hint`).

Standard library only (no ``aws_cdk``, no pydantic): :mod:`fargate_runners.config` calls it.
Only what is *provable* is refused: a rule that might admit a job passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol

__all__ = [
    "DEFAULT_FARGATE_VCPU_QUOTA",
    "FARGATE_QUOTA_CODES",
    "MAX_DEPLOYMENT_VCPUS",
    "arn_hint",
    "capacity_problems",
    "capacity_warnings",
    "policy_problems",
    "pool_totals",
    "pools",
    "vcpus",
]

# --------------------------------------------------------------------------- policies

#: ``GITHUB_REF`` per event, from GitHub's definition of ``github.ref``
#: (github/docs data/reusables/actions/ref-description.md, shown on
#: https://docs.github.com/en/actions/reference/workflows-and-actions/events-that-trigger-workflows
#: and .../variables-reference): "For pull request events except ``pull_request_target`` that
#: were not merged, it is ``refs/pull/<pr_number>/merge``"; "If the pull request was merged,
#: this is the branch it was merged into"; "``pull_request_target`` events have the ``ref``
#: from the base branch"; for other triggers "the branch or tag ref that triggered the
#: workflow run". So only these three events run at ``refs/pull/...``, and no
#: pull-request event runs at a tag.
PULL_REQUEST_MERGE_REF_EVENTS = frozenset(
    {"pull_request", "pull_request_review", "pull_request_review_comment"}
)
BRANCHES, TAGS, PULLS = "refs/heads/", "refs/tags/", "refs/pull/"


def _namespaces(event: str) -> frozenset[str]:
    """The ref namespaces a job of ``event`` can run at (its ``GITHUB_REF``)."""
    if event in PULL_REQUEST_MERGE_REF_EVENTS:
        return frozenset({PULLS, BRANCHES})
    if event == "pull_request_target":
        return frozenset({BRANCHES})
    return frozenset({BRANCHES, TAGS})


_WILDCARDS = re.compile(r"[*?]")


def _may_start_with(pattern: str, prefix: str) -> bool:
    """Whether glob ``pattern`` (lambda_fn.policy syntax) can match a value starting with
    ``prefix``: its literal part before the first wildcard starts with ``prefix`` or is a
    prefix of it (``refs/**`` and ``refs/*/x`` can match anything under ``refs/``)."""
    literal = _WILDCARDS.split(pattern, 1)[0]
    return literal.startswith(prefix) or prefix.startswith(literal)


#: "Workflow files use YAML syntax, and must have either a ``.yml`` or ``.yaml`` file
#: extension" (https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-syntax).
WORKFLOW_EXTENSIONS = (".yml", ".yaml")


def _workflow_may_match(pattern: str) -> bool:
    """Whether ``pattern`` can match a path ending in ``.yml`` or ``.yaml`` (any case).

    The value must end with the pattern's literal tail (after its last wildcard); with no
    wildcard at all the tail is the whole path.
    """
    parts = _WILDCARDS.split(pattern)
    tail = parts[-1].lower()
    if len(parts) == 1:
        return tail.endswith(WORKFLOW_EXTENSIONS)
    return any(tail.endswith(ext) or ext.endswith(tail) for ext in WORKFLOW_EXTENSIONS)


class _Policy(Protocol):
    @property
    def allowed_refs(self) -> tuple[str, ...]: ...
    @property
    def allowed_events(self) -> tuple[str, ...]: ...
    @property
    def allowed_workflows(self) -> tuple[str, ...]: ...


def _listed(values: Iterable[str]) -> str:
    return "[" + ", ".join(values) + "]"


def policy_problems(profile: _Policy) -> list[tuple[str, str]]:
    """``(key, message)`` for each rule that, with the others, admits no job at all."""
    problems: list[tuple[str, str]] = []
    refs, events = profile.allowed_refs, profile.allowed_events
    if refs:
        reachable = (
            frozenset().union(*(_namespaces(e) for e in events))
            if events
            else frozenset({BRANCHES, TAGS, PULLS})
        )
        if not any(_may_start_with(p, ns) for p in refs for ns in reachable):
            problems.append(("allowed_refs", _refs_message(refs, events, reachable)))
    workflows = profile.allowed_workflows
    if workflows and not any(_workflow_may_match(p) for p in workflows):
        problems.append(
            (
                "allowed_workflows",
                f"{_listed(workflows)} can match no workflow file: GitHub runs only "
                ".github/workflows/*.yml or *.yaml files; name the file with its extension "
                '(e.g. ".github/workflows/deploy.yml")',
            )
        )
    return problems


def _refs_message(refs: Sequence[str], events: Sequence[str], reachable: frozenset[str]) -> str:
    if not events:
        return (
            f"{_listed(refs)} can match no ref a job runs at (refs/heads/..., refs/tags/... "
            'or refs/pull/N/merge): e.g. "refs/heads/main" or "refs/tags/v*"'
        )
    runs_at = " or ".join(f"{ns}..." for ns in sorted(reachable))
    why = {
        frozenset({PULLS, BRANCHES}): "pull-request jobs run at refs/pull/N/merge (the base "
        "branch once merged), never at a tag",
        frozenset({BRANCHES}): "pull_request_target jobs run at the base branch",
    }.get(reachable, "these events run at a branch or a tag, never at refs/pull/...")
    return (
        f"{_listed(refs)} with allowed_events {_listed(events)} admits no job: {why} "
        f"({runs_at}); add the events these refs come from (e.g. push for tags), or "
        "allow the refs these events run at"
    )


# --------------------------------------------------------------------------- capacity

#: Service Quotas codes of the account's regional Fargate vCPU quotas (ServiceCode
#: ``fargate``): "Fargate On-Demand vCPU resource count" and "Fargate Spot vCPU resource
#: count", as ``aws service-quotas list-aws-default-service-quotas --service-code fargate``
#: lists them.
FARGATE_QUOTA_CODES = {"FARGATE": "L-3032A538", "FARGATE_SPOT": "L-36FBB829"}
#: The default value of both quotas in that listing. "New AWS accounts might have initial
#: lower quotas that can increase over time"
#: (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html):
#: doctor reads the account's own value.
DEFAULT_FARGATE_VCPU_QUOTA = 4000
#: A sanity cap on what one deployment may hold at once, in vCPUs (all profiles):
#: five times the default quota. Above it a config is a typo (an extra zero) or a plan
#: that needs a conversation with AWS first; it is refused.
MAX_DEPLOYMENT_VCPUS = 5 * DEFAULT_FARGATE_VCPU_QUOTA


class _Sized(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def cpu(self) -> int: ...
    @property
    def capacity(self) -> str: ...
    @property
    def effective_max_runners(self) -> int: ...


def vcpus(profile: _Sized) -> float:
    """What ``profile`` holds at ``max_runners``, in vCPUs (1024 cpu units each)."""
    return profile.effective_max_runners * profile.cpu / 1024


def pools(capacity: str) -> tuple[str, ...]:
    """The quotas a profile's tasks count against (Spot, then on-demand, counts for both)."""
    if capacity == "FARGATE_SPOT_THEN_FARGATE":
        return ("FARGATE_SPOT", "FARGATE")
    return (capacity,)


def _figure(value: float) -> str:
    return f"{value:g}"


def capacity_problems(profiles: Sequence[_Sized], key: str) -> list[tuple[str, str]]:
    """The whole deployment above :data:`MAX_DEPLOYMENT_VCPUS`: named at its largest profile."""
    total = sum(vcpus(p) for p in profiles)
    if total <= MAX_DEPLOYMENT_VCPUS:
        return []
    i, largest = max(enumerate(profiles), key=lambda item: vcpus(item[1]))
    return [
        (
            f"{key}[{i}].max_runners",
            f"{largest.effective_max_runners} runners of {_figure(largest.cpu / 1024)} vCPU "
            f"= {_figure(vcpus(largest))} vCPUs (all profiles: {_figure(total)}) is above the "
            f"sanity cap of {MAX_DEPLOYMENT_VCPUS} vCPUs per deployment: lower max_runners "
            "(docs/configuration.md)",
        )
    ]


def pool_totals(profiles: Iterable[_Sized]) -> dict[str, float]:
    """vCPUs per Fargate quota (``FARGATE``, ``FARGATE_SPOT``) at every profile's max."""
    totals = dict.fromkeys(FARGATE_QUOTA_CODES, 0.0)
    for profile in profiles:
        for pool in pools(profile.capacity):
            totals[pool] += vcpus(profile)
    return totals


def capacity_warnings(profiles: Sequence[_Sized]) -> list[str]:
    """One line per Fargate quota the profiles' maxima exceed at its default value."""
    warnings = []
    for pool, total in pool_totals(profiles).items():
        if total > DEFAULT_FARGATE_VCPU_QUOTA:
            kind = "Spot" if pool == "FARGATE_SPOT" else "On-Demand"
            warnings.append(
                f"max_runners of all profiles add up to {_figure(total)} {kind} vCPUs, above "
                f"the default Fargate {kind} vCPU quota ({DEFAULT_FARGATE_VCPU_QUOTA}, "
                f"{FARGATE_QUOTA_CODES[pool]}): tasks beyond your account's quota are refused "
                "and their jobs stay queued. Run fargate-runners doctor to compare with your "
                "account's quota; request an increase in Service Quotas, or lower max_runners"
            )
    return warnings


# --------------------------------------------------------------------------- ARNs

_KEY_ID = r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})"
_KMS_ALIAS_ARN = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(alias/\S+)$")
_KMS_KEY_ID = re.compile(rf"^{_KEY_ID}$")
_SECRET_PARTIAL_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:\S+$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]+$")


def arn_hint(kind: str, value: str) -> str:
    """A suggestion (``": use ..."``) for a name, alias or key id given where an ARN of
    ``kind`` (``kms``, ``secret``, ``secret-complete``, ``sns``, ``policy``) is needed."""
    if kind == "kms":
        alias = _KMS_ALIAS_ARN.match(value)
        if alias:
            partition, region, account, name = alias.groups()
            return (
                f": an alias ARN names no key, and IAM grants on key ARNs; use the key ARN "
                f"arn:{partition}:kms:{region}:{account}:key/KEY-ID "
                f"(aws kms describe-key --key-id {name} shows it)"
            )
        if value.startswith("alias/"):
            return (
                ": an alias names no key; use the key ARN arn:aws:kms:REGION:ACCOUNT:key/KEY-ID "
                f"(aws kms describe-key --key-id {value} shows it)"
            )
        if _KMS_KEY_ID.match(value):
            return f": a key id; use its ARN, arn:aws:kms:REGION:ACCOUNT:key/{value}"
        return ""
    if kind in ("secret", "secret-complete"):
        if kind == "secret-complete" and _SECRET_PARTIAL_ARN.match(value):
            return (
                ": a partial ARN; use the complete ARN with the 6-character suffix Secrets "
                "Manager adds (aws secretsmanager describe-secret --secret-id NAME shows it)"
            )
        if not value.startswith("arn:") and _PLAIN_NAME.match(value):
            return (
                f": a secret name; use its ARN, arn:aws:secretsmanager:REGION:ACCOUNT:secret:"
                f"{value}-XXXXXX (aws secretsmanager describe-secret --secret-id {value} "
                "shows it)"
            )
        return ""
    if kind == "sns" and not value.startswith("arn:") and _PLAIN_NAME.match(value):
        return f": a topic name; use its ARN, arn:aws:sns:REGION:ACCOUNT:{value}"
    if kind == "policy" and not value.startswith("arn:") and _PLAIN_NAME.match(value):
        name = value.removeprefix("policy/")
        return (
            f": a policy name; use its ARN, arn:aws:iam::aws:policy/{name} (AWS managed) or "
            f"arn:aws:iam::ACCOUNT:policy/{name} (your own)"
        )
    return ""
