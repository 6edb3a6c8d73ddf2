"""``setup`` at organisation scope: one runner group per restricted profile, from its policy.

The group admits the profile's repositories only (``visibility: selected``, ids resolved with
``GET /repos/{owner}/{repo}``), no public repository, and, where the plan offers it, only the
allowed workflows pinned to the allowed refs (``restricted_to_workflows``,
``selected_workflows``: "a ref, tag, or long SHA is required"). API:
https://docs.github.com/en/rest/actions/self-hosted-runner-groups (create: ``POST``, 201;
update: ``PATCH``, 200, which does not take repositories; repositories:
``PUT .../repositories``, 204). Workflow restriction is GitHub Enterprise Cloud / GHES >= 3.5
only (github/docs data/features/restrict-groups-to-workflows.yml).

``setup`` cannot change the deployed stack: after creating a group it prints the
``runner_group_id`` to put in the profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runners_cli.github import GitHub, GitHubError, message
from runners_cli.profiles import DEFAULT_RUNNER_GROUP_ID, RestrictedProfile, has_glob

Out = Any  # Callable[[str], None]

GHEC_NOTE = (
    "runner groups: limiting a group to selected workflows needs GitHub Enterprise Cloud or "
    "GHES >= 3.5; on other plans the group still limits repositories"
)


class GroupPlanError(GitHubError):
    """A profile whose group cannot be set up as asked (the message says what to change)."""


@dataclass
class GroupPlan:
    """What ``setup`` would send for one profile's group."""

    profile: str
    name: str
    repository_ids: list[int]
    workflows: list[str]
    #: The existing group (None: to be created).
    existing: dict[str, Any] | None = None
    existing_repository_ids: list[int] = field(default_factory=list)

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "visibility": "selected",
            "allows_public_repositories": False,
        }
        if not (self.existing or {}).get("workflow_restrictions_read_only"):
            body["restricted_to_workflows"] = True
            body["selected_workflows"] = list(self.workflows)
        return body

    def changes(self) -> list[str]:
        """What differs in the existing group (empty: nothing)."""
        if self.existing is None:
            return ["create"]
        found = [
            f"{key}: {self.existing.get(key)!r} -> {value!r}"
            for key, value in self.body.items()
            if key != "name" and _normal(self.existing.get(key)) != _normal(value)
        ]
        if sorted(self.existing_repository_ids) != sorted(self.repository_ids):
            before, after = sorted(self.existing_repository_ids), sorted(self.repository_ids)
            found.append(f"repositories: {before} -> {after}")
        return found


def _normal(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value


def pinned_workflows(profile: RestrictedProfile) -> list[str]:
    """Each allowed repository x allowed workflow x allowed ref, as ``selected_workflows``
    entries (``octo-org/app/.github/workflows/deploy.yml@refs/heads/main``).

    Full refs, so a tag can never be read as the branch of the same name. A glob cannot be
    pinned: such refs are left out (the group then runs only the pinned ones) and a profile
    with no pinnable ref or workflow is refused."""
    policy = profile.policy
    refs = [r for r in policy.allowed_refs if not has_glob(r)]
    workflows = [w for w in policy.allowed_workflows if not has_glob(w)]
    if not workflows:
        raise GroupPlanError(
            f"profile {profile.name}: allowed_workflows must name workflow files (no globs) to "
            "pin them in a runner group, e.g. .github/workflows/deploy.yml"
        )
    if not refs:
        raise GroupPlanError(
            f"profile {profile.name}: allowed_refs has no exact ref to pin (globs such as "
            "refs/tags/v* cannot be pinned): add refs/heads/main, or limit the group by hand"
        )
    repositories, _ = profile.exact_repositories()
    return [f"{repo}/{wf}@{ref}" for repo in repositories for wf in workflows for ref in refs]


def plan(github: GitHub, org: str, stack_name: str, profile: RestrictedProfile) -> GroupPlan:
    """Read what exists (GET only) and work out the group the profile needs."""
    exact, globs = profile.exact_repositories()
    if globs or not exact:
        raise GroupPlanError(
            f"profile {profile.name}: allowed_repositories must list repositories "
            f"(owner/repo, no owner/*) for a runner group limited to them; got "
            f"{list(profile.policy.allowed_repositories) or 'none (any repository)'}"
        )
    ids = []
    for full_name in exact:
        if full_name.split("/", 1)[0].lower() != org.lower():
            raise GroupPlanError(
                f"profile {profile.name}: {full_name} is not in {org}; an organisation's runner "
                "group admits only its own repositories"
            )
        ids.append(int(github.get_json(f"repos/{full_name}")["id"]))
    workflows = pinned_workflows(profile)
    name = f"{stack_name}-{profile.name}"[:100]
    group = _existing(github, org, profile, name)
    found = GroupPlan(profile.name, name, ids, workflows, existing=group)
    if group is not None:
        name = str(group.get("name") or name)
        found.name = name
        found.existing_repository_ids = [
            int(r["id"])
            for r in github.get_json(
                f"orgs/{org}/actions/runner-groups/{group['id']}/repositories?per_page=100"
            ).get("repositories", [])
        ]
    return found


def _existing(
    github: GitHub, org: str, profile: RestrictedProfile, name: str
) -> dict[str, Any] | None:
    if profile.runner_group_id != DEFAULT_RUNNER_GROUP_ID:
        response = github.request(
            "GET", f"orgs/{org}/actions/runner-groups/{profile.runner_group_id}"
        )
        if response.status_code == 404:
            raise GroupPlanError(
                f"profile {profile.name}: runner_group_id {profile.runner_group_id} is not a "
                f"runner group of {org}: fix the id, or remove it so setup creates one"
            )
        if response.status_code != 200:
            raise GitHubError(
                f"GET runner group {profile.runner_group_id}: {response.status_code} "
                f"({message(response)})",
                response.status_code,
            )
        return dict(response.json())
    groups = github.get_json(f"orgs/{org}/actions/runner-groups?per_page=100")
    return next((g for g in groups.get("runner_groups", []) if g.get("name") == name), None)


def apply(github: GitHub, org: str, found: GroupPlan) -> dict[str, Any]:
    """Create or update the group as planned; returns it."""
    base = f"orgs/{org}/actions/runner-groups"
    if found.existing is None:
        body = {**found.body, "selected_repository_ids": found.repository_ids}
        response = github.request("POST", base, json=body)
        if response.status_code != 201:
            raise GitHubError(_failure("create", found, response), response.status_code)
        return dict(response.json())
    group_id = found.existing["id"]
    response = github.request("PATCH", f"{base}/{group_id}", json=found.body)
    if response.status_code != 200:
        raise GitHubError(_failure("update", found, response), response.status_code)
    if sorted(found.existing_repository_ids) != sorted(found.repository_ids):
        put = github.request(
            "PUT",
            f"{base}/{group_id}/repositories",
            json={"selected_repository_ids": found.repository_ids},
        )
        if put.status_code != 204:
            raise GitHubError(_failure("set the repositories of", found, put), put.status_code)
    return dict(response.json())


def _failure(verb: str, found: GroupPlan, response: Any) -> str:
    hint = (
        "; the token needs organisation permission 'Self-hosted runners: write' "
        "(classic: 'admin:org')"
        if response.status_code in (403, 404)
        else ""
    )
    return (
        f"could not {verb} runner group {found.name!r} for profile {found.profile}: GitHub "
        f"answered {response.status_code} ({message(response)}){hint}"
    )


def setup_groups(
    github: GitHub,
    org: str,
    stack_name: str,
    profiles: list[RestrictedProfile],
    *,
    dry_run: bool,
    out: Out,
) -> int:
    """Plan (and unless ``dry_run`` apply) each profile's group; 1 if any failed."""
    out(GHEC_NOTE)
    failed = 0
    for profile in profiles:
        try:
            found = plan(github, org, stack_name, profile)
        except GitHubError as exc:
            out(f"runner group: {exc.message}")
            failed += 1
            continue
        changes = found.changes()
        label = f"runner group {found.name!r} (profile {profile.name})"
        if found.existing is not None and found.existing.get("workflow_restrictions_read_only"):
            out(f"{label}: its enterprise fixes the workflow restriction; leaving it as it is")
        if not changes:
            out(f"{label}: unchanged (id {found.existing and found.existing['id']})")
            continue
        if dry_run:
            verb = "would create" if found.existing is None else "would update"
            out(f"{label}: {verb}: " + _describe(found, changes))
            continue
        try:
            group = apply(github, org, found)
        except GitHubError as exc:
            out(f"runner group: {exc.message}")
            failed += 1
            continue
        if found.existing is None:
            out(f"{label}: created, id {group['id']}: " + _describe(found, changes))
            out(
                f'  set "runner_group_id": {group["id"]} in profile {profile.name} (cdk.json) '
                "and cdk deploy: until then its runners register in group "
                f"{profile.runner_group_id}"
            )
        else:
            out(f"{label}: updated (id {group['id']}): " + "; ".join(changes))
    if dry_run:
        out("runner groups: dry run, nothing was changed")
    return 1 if failed else 0


def _describe(found: GroupPlan, changes: list[str]) -> str:
    if found.existing is not None:
        return "; ".join(changes)
    workflows = ", ".join(found.workflows)
    return (
        f"visibility selected, repositories {found.repository_ids}, no public repositories, "
        f"workflows {workflows}"
    )
