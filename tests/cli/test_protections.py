"""``doctor`` and ``setup`` on GitHub's side of a restricted profile: rulesets, branch
protection, environments, runner groups (against the one GitHub model)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from lambda_fn.policy import Policy
from runners_cli import commands
from runners_cli.github import GitHub as Client
from runners_cli.github import Target
from runners_cli.profiles import RestrictedProfile
from runners_cli.protections import ProtectionChecks, instances, ruleset_covers
from runners_cli.stack import Aws
from tests.kit.cli import (
    API,
    DEPLOY_WORKFLOW,
    PAT,
    REGION,
    STACK,
    GitHub,
    deploy,
    protect,
    seed_group,
)

ORG = Target("org", "octo-org")
REPO = Target("repo", "octo-org/app")


def deploy_profile(**extra: Any) -> dict[str, Any]:
    """A restricted profile as the Lambda's RUNNER_PROFILES carries it."""
    policy = {
        "profile": "deploy",
        "allowed_repositories": ["octo-org/app"],
        "allowed_refs": ["refs/heads/main", "refs/tags/v*"],
        "allowed_workflows": [".github/workflows/deploy.yml"],
        "allowed_events": ["push", "workflow_dispatch"],
        "deny_fork_pull_requests": True,
    }
    return {"name": "deploy", "labels": ["self-hosted", "deploy"], "policy": policy, **extra}


def deploy_stack(*, scope: str = "org", **extra: Any) -> None:
    profiles = [deploy_profile(**extra), {"name": "default", "labels": ["self-hosted"]}]
    deploy(function_env={"RUNNER_SCOPE": scope, "RUNNER_PROFILES": json.dumps(profiles)})


def setup(target: Target = ORG) -> tuple[int, str]:
    lines: list[str] = []
    code = commands.setup(Aws(REGION), STACK, target, PAT, api_url=API, out=lines.append)
    return code, "\n".join(lines)


def doctor(target: Target = ORG) -> tuple[int, str]:
    lines: list[str] = []
    code = commands.doctor(Aws(REGION), STACK, target, api_url=API, out=lines.append)
    return code, "\n".join(lines)


# --- doctor --------------------------------------------------------------------------------


def test_doctor_passes_a_protected_organisation(aws_env: None, github: GitHub) -> None:
    deploy_stack(runner_group_id=7)
    protect(github)
    seed_group(github)
    assert setup()[0] == 0
    code, text = doctor()
    assert code == 0, text
    # The network-path check needs the deployed subnets, which this fake stack has none of
    # (tests/cli/test_fargate_checks.py covers it): only GitHub's protections are judged here.
    warnings = [
        line
        for line in text.splitlines()
        if line.startswith("WARN") and "runner subnets reach GitHub" not in line
    ]
    assert "FAIL" not in text and not [w for w in warnings if "deploy" in w], text
    for expected in (
        "PASS  deploy: octo-org/app branch main takes only reviewed pull requests "
        "(ruleset: 1 approval(s))",
        "PASS  deploy: octo-org/app tags refs/tags/v* can be created and moved only by bypass "
        "actors (by release tags (Organization); who may bypass is not shown to this token)",
        "PASS  deploy: runner group 7 admits only its repositories and workflows (deploy)",
        "PASS  restricted profile deploy has its own runner group (group 7)",
    ):
        assert expected in text


def test_doctor_fails_an_unprotected_organisation_naming_each_fix(
    aws_env: None, github: GitHub
) -> None:
    deploy_stack(runner_group_id=7)
    seed_group(
        github,
        visibility="all",
        allows_public_repositories=True,
        restricted_to_workflows=False,
    )
    # An evaluate-mode ruleset protects nothing (GitHub leaves it out of the branch's rules).
    github.add_ruleset(
        "repos/octo-org/app",
        enforcement="evaluate",
        conditions={"ref_name": {"include": ["~ALL"], "exclude": []}},
        rules=[{"type": "pull_request", "parameters": {"required_approving_review_count": 2}}],
    )
    assert setup()[0] == 0  # the hook; the group is put right below by hand again
    seed_group(github, visibility="all", allows_public_repositories=True,
               restricted_to_workflows=False)  # fmt: skip
    code, text = doctor()
    assert code == 1
    assert (
        "FAIL  deploy: octo-org/app branch main takes only reviewed pull requests "
        "(no ruleset rule and no branch protection)\n"
        "      fix: add a branch ruleset on octo-org/app targeting refs/heads/main" in text
    )
    assert (
        "FAIL  deploy: runner group 7 admits only its repositories and workflows "
        "(visibility 'all': open to more repositories; public repositories allowed; not "
        "limited to selected workflows (GitHub Enterprise Cloud / GHES >= 3.5))\n"
        "      fix: fargate-runners setup --org octo-org" in text
    )
    # tag_protection defaults to branch-history: a missing tag ruleset is a warning
    assert "WARN  deploy: octo-org/app tags refs/tags/v* can be created and moved" in text
    assert "fix: add a tag ruleset on octo-org/app targeting refs/tags/v*" in text


def test_doctor_fails_tags_a_profile_says_a_ruleset_protects(aws_env: None, github: GitHub) -> None:
    profile = deploy_profile(runner_group_id=7)
    profile["policy"]["tag_protection"] = "ruleset"
    deploy(function_env={"RUNNER_SCOPE": "org", "RUNNER_PROFILES": json.dumps([profile])})
    seed_group(github)
    setup()
    code, text = doctor()
    assert code == 1
    assert (
        "FAIL  deploy: octo-org/app tags refs/tags/v* can be created and moved only by bypass "
        "actors (no active tag ruleset restricts creation, update for all of it)" in text
    )


def test_doctor_reads_legacy_branch_protection(aws_env: None, github: GitHub) -> None:
    deploy_stack(runner_group_id=7)
    seed_group(github)
    github.branch_protections["octo-org/app:main"] = {
        "required_pull_request_reviews": {
            "required_approving_review_count": 1,
            "dismiss_stale_reviews": True,
        },
        "allow_force_pushes": {"enabled": False},
        "allow_deletions": {"enabled": False},
        "enforce_admins": {"enabled": False},
    }
    setup()
    text = doctor()[1]
    assert (
        "PASS  deploy: octo-org/app branch main takes only reviewed pull requests "
        "(legacy branch protection: 1 approval(s), administrators exempt)" in text
    )


def test_doctor_warns_when_github_refuses_to_show_protections(
    aws_env: None, github: GitHub
) -> None:
    deploy_stack(runner_group_id=7)
    setup()
    github.fail("GET", r"/rules/branches/", 403, times=None)
    github.fail("GET", r"/rulesets$", 403, times=None)
    github.fail("GET", r"/runner-groups/7$", 403, times=None)
    _, text = doctor()
    assert "WARN  deploy: octo-org/app branch main takes only reviewed pull requests " in text
    assert "fix: give the token repository permission 'Metadata: read'" in text
    assert "WARN  deploy: runner group 7 admits only its repositories and workflows" in text
    assert "fix: give the token organisation permission 'Self-hosted runners: read'" in text
    assert "FAIL  deploy:" not in text


def test_doctor_names_a_group_that_admits_more(aws_env: None, github: GitHub) -> None:
    deploy_stack(runner_group_id=7)
    protect(github)
    setup()
    other = github.repository_id("octo-org/other")
    github.repository_ids["octo-org/other"] = other
    seed_group(
        github,
        repository_ids=[github.repository_id("octo-org/app"), other],
        selected_workflows=[
            DEPLOY_WORKFLOW,
            "octo-org/app/.github/workflows/deploy.yml@main",
            "octo-org/app/.github/workflows/ci.yml@refs/heads/main",
        ],
    )
    code, text = doctor()
    assert code == 1
    assert "also admits octo-org/other" in text
    assert "admits octo-org/app/.github/workflows/deploy.yml@main: short ref 'main'" in text
    assert "admits octo-org/app/.github/workflows/ci.yml@refs/heads/main: workflow not in" in text


def test_doctor_warns_that_repository_runners_can_be_taken(aws_env: None, github: GitHub) -> None:
    deploy_stack(scope="repo")
    text = doctor(REPO)[1]
    assert (
        "WARN  restricted profile deploy runs only the jobs it was made for (any job of the "
        "repository whose runs-on is a subset of [self-hosted, deploy] can take its runners" in text
    )
    assert 'fix: use "runner_scope": "org" with a runner group' in text


def test_exact_matching_changes_the_repository_scope_warning(aws_env: None, github: GitHub) -> None:
    deploy_stack(scope="repo", match="exact")
    text = doctor(REPO)[1]
    assert "dispatch launches it only for jobs labelled exactly [self-hosted, deploy]" in text


# --- the checks for keys other branches add (read with getattr) ----------------------------


@dataclass(frozen=True)
class DeployPolicy(Policy):
    """A policy with ``required_environment`` (``Policy`` gains it on another branch)."""

    required_environment: str | None = None


def checks(github: GitHub, **policy: Any) -> tuple[list[tuple[str, bool, str, str]], list[Any]]:
    added: list[tuple[str, bool, str, str]] = []
    warned: list[Any] = []

    def add(name: str, ok: bool, detail: str = "", fix: str = "") -> bool:
        added.append((name, ok, detail, fix))
        return ok

    def warn(name: str, detail: str, fix: str) -> None:
        warned.append((name, detail, fix))

    profile = RestrictedProfile(
        "deploy",
        ("deploy",),
        DeployPolicy(profile="deploy", allowed_repositories=("octo-org/app",), **policy),
        runner_group_id=7,
    )
    ProtectionChecks(Client(PAT, API), add, warn).profile(profile, ["octo-org/app"])
    return added, warned


def test_environment_with_reviewers_passes(github: GitHub) -> None:
    github.environments["octo-org/app:production"] = {
        "protection_rules": [
            {"type": "required_reviewers", "prevent_self_review": True,
             "reviewers": [{"type": "Team", "reviewer": {"id": 3}}]},
        ],
        "can_admins_bypass": False,
    }  # fmt: skip
    added, _ = checks(github, allowed_refs=("refs/heads/x",), required_environment="production")
    assert ("deploy: octo-org/app environment production needs a reviewer's approval", True,
            "1 reviewer(s)", "") in added  # fmt: skip


def test_environment_missing_or_without_reviewers_fails(github: GitHub) -> None:
    added, _ = checks(github, allowed_refs=("refs/heads/x",), required_environment="production")
    (env,) = [a for a in added if "environment" in a[0]]
    assert env[1:3] == (False, "no such environment")
    assert "add required reviewers" in env[3]
    github.environments["octo-org/app:production"] = {"protection_rules": [{"type": "wait_timer"}]}
    added, _ = checks(github, allowed_refs=("refs/heads/x",), required_environment="production")
    assert [a[1:3] for a in added if "environment" in a[0]] == [(False, "no required reviewers")]


def test_tag_protection_ruleset_makes_a_missing_tag_ruleset_a_failure(github: GitHub) -> None:
    added, warned = checks(github, allowed_refs=("refs/tags/v*",), tag_protection="ruleset")
    (tag,) = added
    assert tag[1] is False and "no active tag ruleset restricts creation, update" in tag[2]
    assert not warned
    # a disabled ruleset does not count; an active one does
    for enforcement in ("disabled", "active"):
        github.add_ruleset(
            "repos/octo-org/app", target="tag", enforcement=enforcement,
            conditions={"ref_name": {"include": ["refs/tags/**/*"], "exclude": []}},
            rules=[{"type": "creation"}, {"type": "update"}],
        )  # fmt: skip
        added, _ = checks(github, allowed_refs=("refs/tags/v*",), tag_protection="ruleset")
        assert added[0][1] is (enforcement == "active")


# --- pattern coverage --------------------------------------------------------------------------


def cond(*include: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"ref_name": {"include": list(include), "exclude": list(exclude)}}


@pytest.mark.parametrize(
    ("conditions", "covered"),
    [
        (cond("~ALL"), True),
        (cond("refs/tags/v*"), True),
        (cond("refs/tags/**/*"), True),
        (cond("refs/tags/*"), True),
        (cond("refs/tags/v1*"), False),  # v2 is not covered
        (cond("refs/tags/v?"), False),  # v10 is not covered
        (cond("refs/tags/release-*"), False),
        (cond("refs/tags/v*", exclude=("refs/tags/v0*",)), False),
        (cond("~ALL", exclude=("refs/tags/*",)), False),
        (cond("refs/tags/[v]*"), True),
        (cond("refs/tags/[!v]*"), False),
    ],
)
def test_ruleset_covers_a_tag_glob(conditions: dict[str, Any], covered: bool) -> None:
    assert ruleset_covers(conditions, "refs/tags/v*", "main") is covered


def test_default_branch_condition() -> None:
    assert ruleset_covers(cond("~DEFAULT_BRANCH"), "refs/heads/main", "main")
    assert not ruleset_covers(cond("~DEFAULT_BRANCH"), "refs/heads/main", "trunk")


def test_instances_sample_each_wildcard() -> None:
    assert "refs/tags/v" in instances("refs/tags/v*")
    assert "refs/heads/release/a/b.c/x" in instances("refs/heads/release/**/*")


# --- setup: the runner group ---------------------------------------------------------------


def test_setup_creates_the_runner_group_and_prints_its_id(aws_env: None, github: GitHub) -> None:
    deploy_stack()
    app_id = github.repository_id("octo-org/app")
    code, text = setup()
    assert code == 0, text
    (group,) = github.runner_groups.values()
    assert group["name"] == "FargateRunners-deploy"
    assert group["visibility"] == "selected"
    assert group["allows_public_repositories"] is False
    assert group["restricted_to_workflows"] is True
    assert group["selected_workflows"] == [DEPLOY_WORKFLOW]  # refs/tags/v* cannot be pinned
    assert group["repository_ids"] == [app_id]
    assert f'set "runner_group_id": {group["id"]} in profile deploy' in text
    assert "GitHub Enterprise Cloud or GHES >= 3.5" in text
    # idempotent: a second setup changes nothing
    before = len(github.writes())
    code, text = setup()
    assert "unchanged" in text
    assert [w for w in github.writes()[before:] if "runner-groups" in w[1]] == []


def test_setup_updates_the_profiles_group(aws_env: None, github: GitHub) -> None:
    deploy_stack(runner_group_id=7)
    seed_group(github, visibility="all", selected_workflows=[], repository_ids=[])
    code, text = setup()
    assert code == 0, text
    group = github.runner_groups[7]
    assert group["visibility"] == "selected"
    assert group["selected_workflows"] == [DEPLOY_WORKFLOW]
    assert group["repository_ids"] == [github.repository_id("octo-org/app")]
    assert ("PATCH", "/orgs/octo-org/actions/runner-groups/7") in github.writes()
    assert ("PUT", "/orgs/octo-org/actions/runner-groups/7/repositories") in github.writes()
    assert "updated (id 7): visibility: 'all' -> 'selected'" in text


def test_setup_keeps_workflow_settings_an_enterprise_fixed(aws_env: None, github: GitHub) -> None:
    deploy_stack(runner_group_id=7)
    seed_group(
        github, visibility="all", selected_workflows=[], workflow_restrictions_read_only=True
    )
    code, text = setup()
    assert code == 0, text
    (patch,) = [r for r in github.requests if r.method == "PATCH" and "runner-groups" in r.path]
    assert "selected_workflows" not in patch.body and "restricted_to_workflows" not in patch.body
    assert "its enterprise fixes the workflow restriction" in text


def test_setup_dry_run_writes_nothing(aws_env: None, github: GitHub) -> None:
    deploy_stack(runner_group_id=7)
    seed_group(github, visibility="all")
    lines: list[str] = []
    code = commands.plan_runner_groups(Aws(REGION), STACK, ORG, api_url=API, out=lines.append)
    assert code == 0
    assert github.writes() == []
    text = "\n".join(lines)
    assert "would update: visibility: 'all' -> 'selected'" in text
    assert "dry run, nothing was changed" in text
    assert github.runner_groups[7]["visibility"] == "all"


def test_setup_refuses_a_group_it_cannot_limit(aws_env: None, github: GitHub) -> None:
    profile = deploy_profile()
    profile["policy"]["allowed_repositories"] = ["octo-org/*"]
    deploy(function_env={"RUNNER_SCOPE": "org", "RUNNER_PROFILES": json.dumps([profile])})
    code, text = setup()
    assert code == 1
    assert "allowed_repositories must list repositories (owner/repo, no owner/*)" in text
    assert not github.runner_groups
