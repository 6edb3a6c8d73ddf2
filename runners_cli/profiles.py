"""The deployed stack's restricted profiles, as the webhook Lambda sees them (``RUNNER_PROFILES``).

``doctor`` and ``setup`` read the deployed function's environment rather than ``cdk.json``: what
they check or set up on GitHub must match what is running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambda_fn.policy import Policy, PolicyError, glob_to_regex, policy_from_dict
from runners_cli.errors import CliError

#: Every organisation's "Default" runner group: open to all its repositories.
DEFAULT_RUNNER_GROUP_ID = 1


@dataclass(frozen=True)
class RestrictedProfile:
    """One restricted profile of the deployed stack."""

    name: str
    labels: tuple[str, ...]
    policy: Policy
    #: The group its JIT runners register in (org scope): the profile's, else the stack's.
    runner_group_id: int
    #: ``"exact"`` when dispatch launches only for jobs with exactly these labels
    #: (the per-profile ``match`` key; ``None`` before that key exists).
    match: str | None = None

    @property
    def required_environment(self) -> str | None:
        """The environment a job must deploy to (``Policy.required_environment``, if any)."""
        value = getattr(self.policy, "required_environment", None)
        return str(value) if value else None

    @property
    def tag_protection(self) -> str:
        """How the profile's tags are protected: ``branch-history`` (dispatch admits a tag only
        at a commit of an allowed branch) or ``ruleset`` (a tag ruleset, which doctor checks)."""
        return self.policy.tag_protection

    def exact_repositories(self) -> tuple[list[str], list[str]]:
        """(``owner/repo`` entries, ``owner/*`` entries) of ``allowed_repositories``."""
        exact = [r for r in self.policy.allowed_repositories if not has_glob(r)]
        globs = [r for r in self.policy.allowed_repositories if has_glob(r)]
        return exact, globs


def has_glob(value: str) -> bool:
    """True if a policy pattern has a wildcard (``*``, ``?``; see ``lambda_fn.policy``)."""
    return "*" in value or "?" in value


def ref_allowed(policy: Policy, ref: str) -> bool:
    """``ref`` (a full ref) is allowed by ``allowed_refs`` (unset: any)."""
    return not policy.allowed_refs or any(glob_to_regex(p).match(ref) for p in policy.allowed_refs)


def restricted_profiles(
    env: Mapping[str, str], entries: list[Any] | None = None
) -> list[RestrictedProfile]:
    """The restricted profiles in a webhook function's environment (``RUNNER_PROFILES``),
    or among ``entries`` (read from the SSM parameters, ``stack.deployed_profiles``)."""
    try:
        if entries is None:
            entries = json.loads(env.get("RUNNER_PROFILES") or "[]")
        default_group = int(env.get("RUNNER_GROUP_ID") or DEFAULT_RUNNER_GROUP_ID)
    except ValueError as exc:
        raise CliError(
            f"RUNNER_PROFILES / RUNNER_GROUP_ID of the webhook function: {exc}"
        ) from None
    profiles = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not entry.get("policy"):
            continue
        name = str(entry.get("name"))
        try:
            policy = policy_from_dict(name, entry["policy"])
        except PolicyError as exc:
            raise CliError(f"RUNNER_PROFILES of the webhook function: {exc}") from None
        if not policy.restricted:
            continue
        match = entry.get("match")
        profiles.append(
            RestrictedProfile(
                name=name,
                labels=tuple(str(label) for label in entry.get("labels", [])),
                policy=policy,
                runner_group_id=int(entry.get("runner_group_id") or default_group),
                match=str(match) if match else None,
            )
        )
    return profiles
