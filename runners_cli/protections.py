"""``doctor``: GitHub's own protections around each restricted (deploy) profile.

A restricted profile checks names (repository, ref, workflow, event); what makes those names
mean *reviewed code* is on GitHub's side (docs/security.md, "Deploy protections"):

- each allowed branch takes changes only through pull requests with at least one approval
  (rules API, https://docs.github.com/en/rest/repos/rules#get-rules-for-a-branch; else legacy
  branch protection, https://docs.github.com/en/rest/branches/branch-protection);
- each allowed tag pattern is covered by an *active* tag ruleset that restricts creation and
  update (https://docs.github.com/en/rest/repos/rules#get-all-repository-rulesets; GitHub has
  no "rules for a tag" endpoint, so the patterns are compared here);
- the environment the profile requires has required reviewers
  (https://docs.github.com/en/rest/deployments/environments#get-an-environment);
- at organisation scope, the profile's runner group admits only the allowed repositories and
  only workflows pinned to allowed refs
  (https://docs.github.com/en/rest/actions/self-hosted-runner-groups);
- at repository scope there are no runner groups, so the profile's runners can be given other
  jobs of the repository (and refuse them): a warning that names the fix.

Each FAIL names its fix; an answer that says the token may not read something is a WARN that
names the permission (fine-grained names as each endpoint's "Fine-grained access tokens"
section lists them).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from lambda_fn.policy import glob_match, glob_to_regex
from runners_cli.github import GitHub, message
from runners_cli.profiles import DEFAULT_RUNNER_GROUP_ID, RestrictedProfile, has_glob, ref_allowed

METADATA_READ = "repository permission 'Metadata: read' (classic token: 'repo')"
ADMINISTRATION_READ = "repository permission 'Administration: read' (classic token: 'repo')"
ACTIONS_READ = "repository permission 'Actions: read' (classic token: 'repo')"
GROUPS_READ = "organisation permission 'Self-hosted runners: read' (classic token: 'admin:org')"
SETUP_GROUP = (
    "fargate-runners setup --org {org} (creates or updates the group; --dry-run shows how)"
)

Add = Callable[[str, bool, str, str], bool]
Warn = Callable[[str, str, str], None]


def fnmatch_regex(pattern: str) -> re.Pattern[str]:
    """A ruleset ref pattern as GitHub reads it: Ruby ``File.fnmatch`` with ``FNM_PATHNAME``
    (github/docs data/reusables/repositories/about-fnmatch.md): ``*`` and ``?`` never match
    ``/``, ``**/`` matches any number of directories, ``[...]`` is a class, ``\\`` escapes."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append("[" + ("^/" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif pattern[i] == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


_WILDCARD = re.compile(r"\*\*|\*|\?")
#: Stand-ins for a policy glob's wildcards: empty, ordinary and awkward (dots, dashes, a
#: slash where ``**`` allows one), so a ruleset pattern must match every kind to cover it.
_STAND_INS = {"**": ("", "x", "a/b.c"), "*": ("", "x", "1.2-rc_Z"), "?": ("q", "9")}


def instances(pattern: str) -> list[str]:
    """Refs a policy glob matches, one per combination of stand-ins (at most 81)."""
    parts = _WILDCARD.split(pattern)
    wildcards = _WILDCARD.findall(pattern)[:4]
    if len(_WILDCARD.findall(pattern)) > 4:
        return [pattern]  # too many wildcards to sample: only the literal (never covers)
    found = []
    for choice in itertools.product(*(_STAND_INS[w] for w in wildcards)):
        found.append("".join(p + c for p, c in zip(parts, (*choice, ""), strict=False)))
    return found


def ruleset_covers(conditions: dict[str, Any], pattern: str, default_branch: str) -> bool:
    """Whether a ruleset's ``conditions.ref_name`` includes every ref ``pattern`` (a policy
    glob) can name, and excludes none of them. Decided on the pattern itself and on sampled
    refs it matches, so it errs towards "not covered" (a FAIL to look at, never a false PASS
    for the patterns a profile uses: a prefix and one or two wildcards)."""
    ref_name = conditions.get("ref_name") or {}
    samples = instances(pattern)

    def matches(rule: str, ref: str) -> bool:
        if rule == "~ALL":
            return True
        if rule == "~DEFAULT_BRANCH":
            return ref == f"refs/heads/{default_branch}"
        return fnmatch_regex(rule).match(ref) is not None

    included = any(
        matches(rule, pattern) and all(matches(rule, ref) for ref in samples)
        for rule in ref_name.get("include") or []
    )
    excluded = any(
        matches(rule, ref) or (not rule.startswith("~") and glob_match(pattern, rule))
        for rule in ref_name.get("exclude") or []
        for ref in [pattern, *samples]
    )
    return included and not excluded


class ProtectionChecks:
    """The checks for one profile, reported through ``doctor``'s ``add``/``warn``."""

    def __init__(self, github: GitHub, add: Add, warn: Warn) -> None:
        self.github = github
        self.add = add
        self.warn = warn
        self._repos: dict[str, dict[str, Any] | None] = {}

    def get(self, path: str) -> tuple[int, Any]:
        response = self.github.request("GET", path)
        if response.status_code != 200:
            return response.status_code, message(response)
        return 200, response.json()

    # -- per repository ----------------------------------------------------------------

    def repository(self, full_name: str, profile: str) -> dict[str, Any] | None:
        if full_name not in self._repos:
            status, body = self.get(f"repos/{full_name}")
            self._repos[full_name] = body if status == 200 else None
            if status != 200:
                self.warn(
                    f"{profile}: {full_name} readable",
                    f"{status} ({body})",
                    f"give the token access to {full_name} ({METADATA_READ})",
                )
        return self._repos[full_name]

    def profile(self, profile: RestrictedProfile, repositories: Iterable[str]) -> None:
        for full_name in repositories:
            repo = self.repository(full_name, profile.name)
            if repo is None:
                continue
            default_branch = str(repo.get("default_branch") or "main")
            for ref in profile.policy.allowed_refs or ("refs/heads/" + default_branch,):
                if ref.startswith("refs/heads/") and not has_glob(ref):
                    self.branch(profile, full_name, ref.removeprefix("refs/heads/"))
                elif ref.startswith("refs/heads/"):
                    self.ref_pattern(profile, full_name, ref, "branch", default_branch)
                elif ref.startswith("refs/tags/"):
                    self.ref_pattern(profile, full_name, ref, "tag", default_branch)
            if profile.required_environment:
                self.environment(profile, full_name, profile.required_environment)

    def branch(self, profile: RestrictedProfile, repo: str, branch: str) -> None:
        """Pull requests with >= 1 approval: from rulesets, else from legacy protection."""
        name = f"{profile.name}: {repo} branch {branch} takes only reviewed pull requests"
        fix = (
            f"add a branch ruleset on {repo} targeting refs/heads/{branch}, enforcement Active, "
            "with 'Require a pull request before merging' (1+ approvals, dismiss stale "
            "approvals), 'Restrict deletions' and 'Block force pushes'"
        )
        status, rules = self.get(f"repos/{repo}/rules/branches/{quote(branch, safe='')}")
        if status != 200:
            self.warn(
                name, f"rules unreadable: {status} ({rules})", f"give the token {METADATA_READ}"
            )
            return
        approvals = max(
            (
                int((rule.get("parameters") or {}).get("required_approving_review_count") or 0)
                for rule in rules
                if rule.get("type") == "pull_request"
            ),
            default=0,
        )
        if approvals >= 1:
            types = {rule.get("type") for rule in rules}
            fresh = any(
                (rule.get("parameters") or {}).get(key)
                for rule in rules
                if rule.get("type") == "pull_request"
                for key in ("dismiss_stale_reviews_on_push", "require_last_push_approval")
            )
            self._reviewed(name, f"ruleset: {approvals} approval(s)", types, fresh, fix)
            return
        status, legacy = self.get(f"repos/{repo}/branches/{quote(branch, safe='')}/protection")
        if status == 200:
            reviews = legacy.get("required_pull_request_reviews") or {}
            count = int(reviews.get("required_approving_review_count") or 0)
            if count >= 1:
                types = {"pull_request"}
                if not (legacy.get("allow_force_pushes") or {}).get("enabled"):
                    types.add("non_fast_forward")
                if not (legacy.get("allow_deletions") or {}).get("enabled"):
                    types.add("deletion")
                fresh = bool(reviews.get("dismiss_stale_reviews")) or bool(
                    reviews.get("require_last_push_approval")
                )
                detail = f"legacy branch protection: {count} approval(s)"
                if not (legacy.get("enforce_admins") or {}).get("enabled"):
                    detail += ", administrators exempt"
                self._reviewed(name, detail, types, fresh, fix)
                return
            self.add(name, False, "legacy branch protection requires no approval", fix)
        elif status == 404 and "not protected" in str(legacy).lower():
            self.add(name, False, "no ruleset rule and no branch protection", fix)
        else:
            self.warn(
                name,
                f"no ruleset requires approvals; legacy protection unreadable: {status} ({legacy})",
                f"give the token {ADMINISTRATION_READ}, or use a ruleset: {fix}",
            )

    def _reviewed(self, name: str, detail: str, types: set[Any], fresh: bool, fix: str) -> None:
        missing = [
            label
            for rule, label in (("non_fast_forward", "force pushes"), ("deletion", "deletion"))
            if rule not in types
        ]
        if not fresh:
            missing.append("new commits after approval (no stale-approval dismissal)")
        if missing:
            self.warn(name, f"{detail}, but allows {', '.join(missing)}", fix)
        else:
            self.add(name, True, detail, "")

    def ref_pattern(
        self, profile: RestrictedProfile, repo: str, pattern: str, target: str, default: str
    ) -> None:
        """A glob ref is covered by active rulesets of ``target`` with the needed rules."""
        if target == "tag":
            needed = {"creation", "update"}
            name = (
                f"{profile.name}: {repo} tags {pattern} can be created and moved only by "
                "bypass actors"
            )
            fix = (
                f"add a tag ruleset on {repo} targeting {pattern}, enforcement Active, with "
                "'Restrict creations', 'Restrict updates' and 'Restrict deletions'; bypass: only "
                "the release managers"
            )
        else:
            needed = {"pull_request"}
            name = f"{profile.name}: {repo} branches {pattern} take only reviewed pull requests"
            fix = (
                f"add a branch ruleset on {repo} targeting {pattern}, enforcement Active, with "
                "'Require a pull request before merging' (1+ approvals)"
            )
        status, listed = self.get(
            f"repos/{repo}/rulesets?targets={target}&includes_parents=true&per_page=100"
        )
        if status != 200:
            self.warn(
                name, f"rulesets unreadable: {status} ({listed})", f"give the token {METADATA_READ}"
            )
            return
        found: set[str] = set()
        covering: list[str] = []
        for summary in listed:
            if summary.get("enforcement") != "active" or summary.get("target", target) != target:
                continue
            status, ruleset = self.get(f"repos/{repo}/rulesets/{summary['id']}")
            if status != 200:
                continue
            if not ruleset_covers(ruleset.get("conditions") or {}, pattern, default):
                continue
            types = set()
            for rule in ruleset.get("rules") or []:
                params = rule.get("parameters") or {}
                if rule.get("type") == "pull_request" and not params.get(
                    "required_approving_review_count"
                ):
                    continue
                types.add(str(rule.get("type")))
            if types & needed:
                found |= types & needed
                covering.append(f"{ruleset.get('name')} ({ruleset.get('source_type', '?')})")
        missing = needed - found
        detail = (
            f"by {', '.join(covering)}"
            + ("; who may bypass is not shown to this token" if covering else "")
            if not missing
            else f"no active {target} ruleset restricts {', '.join(sorted(missing))} for all of it"
        )
        if not missing or target != "tag" or profile.tag_protection == "ruleset":
            self.add(name, not missing, detail, fix)
        else:
            # The dispatcher admits a tag only at a commit of an allowed branch
            # (tag_protection: branch-history): reviewed code, but any writer may still
            # point a new tag at an old reviewed commit (a rollback).
            rollback = (
                " (dispatch still requires the tag's commit in an allowed branch: a writer "
                "can re-deploy an older reviewed commit)"
            )
            self.warn(name, detail + rollback, fix)

    def environment(self, profile: RestrictedProfile, repo: str, environment: str) -> None:
        name = f"{profile.name}: {repo} environment {environment} needs a reviewer's approval"
        fix = (
            f"in {repo} Settings -> Environments -> {environment}: add required reviewers "
            "(and 'Prevent self-review'); on Free/Pro/Team plans this needs a public repository"
        )
        status, body = self.get(f"repos/{repo}/environments/{quote(environment, safe='')}")
        if status == 404:
            self.add(name, False, "no such environment", fix)
            return
        if status != 200:
            self.warn(name, f"unreadable: {status} ({body})", f"give the token {ACTIONS_READ}")
            return
        reviewers = [
            reviewer
            for rule in body.get("protection_rules") or []
            if rule.get("type") == "required_reviewers"
            for reviewer in rule.get("reviewers") or []
        ]
        if not reviewers:
            self.add(name, False, "no required reviewers", fix)
            return
        self_review = any(
            rule.get("prevent_self_review")
            for rule in body.get("protection_rules") or []
            if rule.get("type") == "required_reviewers"
        )
        detail = f"{len(reviewers)} reviewer(s)"
        if body.get("can_admins_bypass", True):
            detail += ", administrators may bypass"
        if self_review:
            self.add(name, True, detail, "")
        else:
            self.warn(name, detail + ", but whoever starts a deploy may approve it", fix)

    # -- runner groups (organisation scope) ------------------------------------------------

    def runner_group(self, profile: RestrictedProfile, org: str) -> None:
        """The group admits only the allowed repositories and pinned, allowed workflows."""
        group_id = profile.runner_group_id
        if group_id == DEFAULT_RUNNER_GROUP_ID:
            return  # doctor's stack checks already warn about the default group
        fix = SETUP_GROUP.format(org=org)
        name = f"{profile.name}: runner group {group_id} admits only its repositories and workflows"
        status, group = self.get(f"orgs/{org}/actions/runner-groups/{group_id}")
        if status == 404:
            self.add(name, False, f"no runner group {group_id} in {org}", fix)
            return
        if status != 200:
            self.warn(name, f"unreadable: {status} ({group})", f"give the token {GROUPS_READ}")
            return
        problems = []
        if group.get("visibility") != "selected":
            problems.append(f"visibility {group.get('visibility')!r}: open to more repositories")
        if group.get("allows_public_repositories"):
            problems.append("public repositories allowed")
        problems += self._group_repositories(profile, org, group_id, group)
        problems += self._group_workflows(profile, group)
        self.add(name, not problems, "; ".join(problems) or str(group.get("name", "")), fix)

    def _group_repositories(
        self, profile: RestrictedProfile, org: str, group_id: int, group: dict[str, Any]
    ) -> list[str]:
        if group.get("visibility") != "selected":
            return []
        status, body = self.get(
            f"orgs/{org}/actions/runner-groups/{group_id}/repositories?per_page=100"
        )
        if status != 200:
            return [f"its repositories are unreadable ({status}): the token needs {GROUPS_READ}"]
        names = {str(r.get("full_name", "")).lower() for r in body.get("repositories") or []}
        exact, globs = profile.exact_repositories()
        problems = []
        extra = sorted(
            n for n in names if not any(glob_match(p.lower(), n) for p in (*exact, *globs))
        )
        if extra:
            problems.append(f"also admits {', '.join(extra)}")
        missing = sorted(r for r in exact if r.lower() not in names)
        if missing:
            problems.append(f"does not admit {', '.join(missing)} (their jobs get no runner)")
        return problems

    def _group_workflows(self, profile: RestrictedProfile, group: dict[str, Any]) -> list[str]:
        if not group.get("restricted_to_workflows"):
            return ["not limited to selected workflows (GitHub Enterprise Cloud / GHES >= 3.5)"]
        selected = [str(w) for w in group.get("selected_workflows") or []]
        if not selected:
            return ["limited to selected workflows, but none is selected"]
        return [
            f"admits {entry}: {why}"
            for entry in selected
            if (why := self._pin_problem(profile, entry))
        ]

    @staticmethod
    def _pin_problem(profile: RestrictedProfile, entry: str) -> str | None:
        """Why a ``selected_workflows`` entry (``owner/repo/path@ref``) is more than the
        profile allows (None: fine)."""
        path_part, sep, ref = entry.rpartition("@")
        owner, _, rest = path_part.partition("/")
        repo, _, path = rest.partition("/")
        if not sep or not owner or not repo or not path or not ref:
            return "not owner/repo/path@ref"
        policy = profile.policy
        if policy.allowed_repositories and not any(
            glob_match(p.lower(), f"{owner}/{repo}".lower()) for p in policy.allowed_repositories
        ):
            return "repository not in allowed_repositories"
        if policy.allowed_workflows and not any(
            glob_to_regex(p).match(path) for p in policy.allowed_workflows
        ):
            return "workflow not in allowed_workflows"
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            return None  # a commit: reviewed if the commit is (not checked here)
        if ref.startswith("refs/"):
            return None if ref_allowed(policy, ref) else "ref not in allowed_refs"
        # A short name may be a branch or a tag (anyone with write access can create a tag):
        # both readings must be allowed.
        if ref_allowed(policy, f"refs/heads/{ref}") and ref_allowed(policy, f"refs/tags/{ref}"):
            return None
        return f"short ref {ref!r} (a branch or a tag of that name): pin refs/heads/{ref}"
