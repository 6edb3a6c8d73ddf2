"""The configuration model's checks (fargate_runners/config.py, rules.py): no CDK synth.

Each test feeds a mistake a user makes and asserts the key path, the value and the fix
in the message; tests/infra/test_config.py holds the older per-key cases.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fargate_runners.config import ConfigError, RunnerProfile, load_config
from fargate_runners.rules import WORKFLOW_EVENTS, image_problem
from lambda_fn.config import load_settings
from lambda_fn.contract import RUNNER_VERSION
from lambda_fn.errors import ConfigError as LambdaConfigError

DEFAULT = {"name": "default", "labels": ["self-hosted", "linux"]}
EXISTING_VPC = {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0"]}
DIGEST = "sha256:" + "ab" * 32


def problems(context: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]
    return [str(p) for p in caught.value.problems]


def only_problem(context: dict[str, Any]) -> str:
    (problem,) = problems(context)
    return problem


# -- unknown keys, in any spelling -------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("allowedRepositories", "keys are lower_snake_case: did you mean 'allowed_repositories'?"),
        ("allowed-repositories", "keys are lower_snake_case: did you mean 'allowed_repositories'?"),
        ("Allowed_Repositories", "keys are lower_snake_case: did you mean 'allowed_repositories'?"),
        ("alowed_repositories", "did you mean 'allowed_repositories'?"),
        ("WebhookFirewall", "keys are lower_snake_case: did you mean 'webhook_firewall'?"),
    ],
)
def test_an_unknown_top_level_key_is_refused_in_any_spelling(key: str, suggestion: str) -> None:
    """Before, only lower_snake_case keys were checked: a camelCase restriction did nothing."""
    problem = only_problem({key: ["octo/app"]})
    assert problem.startswith(f"{key}: unknown context key ({suggestion})")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("allowedRefs", "keys are lower_snake_case: did you mean 'allowed_refs'?"),
        ("allowed-refs", "keys are lower_snake_case: did you mean 'allowed_refs'?"),
        ("alowed_refs", "did you mean 'allowed_refs'?"),
    ],
)
def test_an_unknown_profile_key_is_refused_in_any_spelling(key: str, expected: str) -> None:
    problem = only_problem({"profiles": [{**DEFAULT, key: ["refs/heads/main"]}]})
    assert problem.startswith(f"profiles[0].{key}: unknown profile key ({expected})")


def test_cdk_owned_keys_in_any_form_are_left_to_cdk() -> None:
    context = {
        "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
        "aws:cdk:enable-path-metadata": True,
        "vpc-provider:account=1:filter.vpc-id=vpc-1:region=x": {},
        "acknowledged-issue-numbers": [32775],
        "cli-telemetry": False,
    }
    assert load_config(context) == load_config({})


def test_an_unknown_key_does_not_hide_the_other_problems() -> None:
    found = problems({"runner_scop": "org", "assign_public_ip": False})
    assert found[0].startswith("runner_scop: unknown context key (did you mean 'runner_scope'?)")
    assert found[1].startswith("assign_public_ip: false: the stack's own VPC has public subnets")


# -- every problem at once ---------------------------------------------------------------


def test_every_problem_is_reported_at_once_one_line_each() -> None:
    found = problems(
        {
            "github_api_url": "http://ghe.example.com/api/v3",
            "runner_scope": "enterprise",
            "log_retention_days": 31,
            "allowed_repositories": ["octo"],
            "profiles": [
                {**DEFAULT, "cpu": "lots", "image": "Has Space"},
                {"name": "Bad_Name", "labels": ["x"], "allowed_events": ["psh"]},
            ],
        }
    )
    assert [line.split(":", 1)[0] for line in found] == [
        "profiles[0].cpu",
        "profiles[0].image",
        "profiles[1].name",
        "profiles[1].allowed_events[0]",
        "runner_scope",
        "allowed_repositories[0]",
        "github_api_url",
        "log_retention_days",
    ]
    assert "'lots' is not an integer" in found[0]
    assert "did you mean 'push'?" in found[3]


def test_rules_between_keys_are_all_reported_too() -> None:
    found = problems(
        {
            "assign_public_ip": False,
            "alarm_email": "ops@example.com",
            "alarm_topic_arn": "arn:aws:sns:us-east-1:123456789012:ops",
            "profiles": [
                {"name": "a", "labels": ["x", "y"], "subnet_ids": ["subnet-01234567"]},
                {"name": "b", "labels": ["x"]},
            ],
        }
    )
    keys = [line.split(":", 1)[0] for line in found]
    assert keys == [
        "profiles[1].labels",
        "assign_public_ip",
        "profiles[0].subnet_ids",
        "alarm_email",
    ]


def test_a_profile_reports_all_its_problems_relative_to_itself() -> None:
    with pytest.raises(ConfigError) as caught:
        RunnerProfile(name="a", labels=("x", "arm64"), memory=512, architecture="X86_64")
    assert [p.key for p in caught.value.problems] == ["memory", "labels"]
    assert caught.value.key == "memory"


# -- restriction lists and shadowed profiles ---------------------------------------------


@pytest.mark.parametrize("key", ["allowed_refs", "allowed_events", "required_env"])
def test_an_empty_restriction_list_is_refused_in_python_too(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: an empty list is not allowed"):
        RunnerProfile(name="a", labels=("x",), **{key: ()})


def test_a_profile_whose_labels_are_a_subset_of_an_earlier_one_is_refused() -> None:
    problem = only_problem(
        {
            "profiles": [
                {"name": "big", "labels": ["self-hosted", "linux", "big"]},
                {"name": "small", "labels": ["Self-Hosted", "linux"]},
            ]
        }
    )
    assert problem.startswith(
        "profiles[1].labels: Self-Hosted, linux is a subset of profiles[0].labels ('big'), "
        "which comes first, so no job can ever reach 'small'"
    )
    assert problem.endswith("list 'small' before 'big', or give it a label of its own")


def test_a_restricted_profile_listed_first_is_named_as_catching_ordinary_jobs() -> None:
    deploy = {"name": "deploy", "labels": ["self-hosted", "linux", "deploy"]}
    problem = only_problem({"profiles": [{**deploy, "allowed_refs": ["refs/heads/main"]}, DEFAULT]})
    assert "'deploy' is restricted, so the ordinary jobs meant for 'default' go to it" in problem
    assert "are refused" in problem
    # The fix the message gives works: the ordinary profile first.
    config = load_config({"profiles": [DEFAULT, {**deploy, "allowed_refs": ["refs/heads/main"]}]})
    assert [p.name for p in config.profiles] == ["default", "deploy"]


def test_an_exact_profile_first_does_not_shadow_a_smaller_label_set() -> None:
    """match: exact takes only its own label set, so [self-hosted, linux] jobs reach 'default'."""
    deploy = {"name": "deploy", "labels": ["self-hosted", "linux", "deploy"], "match": "exact"}
    small = {"name": "small", "labels": ["self-hosted", "linux"]}
    config = load_config({"profiles": [deploy, small]})
    entries = [p.lambda_entry("td", "runner", "AROA" + "X" * 12) for p in config.profiles]
    assert [e.get("match") for e in entries] == ["exact", None]  # subset: the default, omitted
    # An exact later profile is still shadowed by a subset one that comes first...
    later = {"name": "later", "labels": ["self-hosted"], "match": "exact"}
    assert "no job can ever reach 'later'" in only_problem({"profiles": [small, later]})
    # ...and two profiles with the same set always are.
    same = {**deploy, "name": "same"}
    assert "same label set as profiles[0].labels" in only_problem({"profiles": [deploy, same]})


def test_match_must_be_subset_or_exact() -> None:
    problem = only_problem({"profiles": [{**DEFAULT, "match": "fuzzy"}]})
    assert problem == "profiles[0].match: 'fuzzy' is not one of subset, exact"


# -- tags: reviewed history, or a ruleset the operator states -----------------------------


TAGS_ONLY = {
    "name": "deploy",
    "labels": ["self-hosted", "linux", "deploy"],
    "allowed_refs": ["refs/heads/release/*", "refs/tags/v*"],
}


def test_tags_without_an_exact_allowed_branch_are_refused_at_synth() -> None:
    """Any writer can push refs/tags/v0-x at their own commit: nothing would vouch for it."""
    problem = only_problem({"profiles": [DEFAULT, TAGS_ONLY]})
    assert problem.startswith(
        "profiles[1].tag_protection: 'branch-history' (the default) in profile 'deploy' admits "
        "a tag only when its commit is in an exact allowed branch's history, but allowed_refs "
        "allows tags (refs/tags/v*) and names no exact branch"
    )
    assert '"tag_protection": "ruleset"' in problem and "refs/heads/main" in problem
    assert "\n" not in problem


def test_the_ruleset_escape_and_an_exact_branch_are_accepted() -> None:
    ruleset = load_config({"profiles": [DEFAULT, {**TAGS_ONLY, "tag_protection": "ruleset"}]})
    policy = ruleset.profiles[1].policy
    assert (policy.tag_protection, policy.to_dict()["tag_protection"]) == ("ruleset", "ruleset")
    branch = {**TAGS_ONLY, "allowed_refs": ["refs/heads/main", "refs/tags/v*"]}
    entry = load_config({"profiles": [DEFAULT, branch]}).profiles[1].lambda_entry("td", "r", "")
    assert "tag_protection" not in entry["policy"]  # branch-history: the default, omitted
    assert load_settings_profiles(entry)[0].policy.tag_protection == "branch-history"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("rulesets", "'rulesets' is not one of branch-history, ruleset"),
        ("ruleset", "is only used when allowed_refs allows tags"),
    ],
)
def test_tag_protection_values_and_where_it_applies(value: str, message: str) -> None:
    profile = {**TAGS_ONLY, "allowed_refs": ["refs/heads/main"], "tag_protection": value}
    assert only_problem({"profiles": [DEFAULT, profile]}) == (
        f"profiles[1].tag_protection: {message}"
    )


def load_settings_profiles(entry: dict[str, Any]) -> Any:
    from lambda_fn.config import parse_profiles

    return parse_profiles(json.dumps([{**entry, "task_role_id": ""}]))


def test_overlapping_profiles_that_each_have_a_label_of_their_own_are_fine() -> None:
    config = load_config(
        {
            "profiles": [
                {"name": "a", "labels": ["self-hosted", "linux", "arm64"]},
                {"name": "b", "labels": ["self-hosted", "linux", "x64"], "architecture": "X86_64"},
            ]
        }
    )
    assert len(config.profiles) == 2


# -- images ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        f"ghcr.io/actions/actions-runner:{RUNNER_VERSION}",
        "ubuntu",
        "library/ubuntu:22.04",
        "localhost:5000/runner:1",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/runner:v1.2_3",
        f"ghcr.io/actions/actions-runner@{DIGEST}",
        f"ghcr.io/actions/actions-runner:{RUNNER_VERSION}@{DIGEST}",
        "registry.example.com/a__b/c-d.e:latest",
    ],
)
def test_image_references_docker_and_ecs_accept(image: str) -> None:
    assert image_problem(image) is None
    assert RunnerProfile(name="a", labels=("x",), image=image).image == image


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        ("ghcr.io/Actions/runner:1", "must be lower-case"),
        ("ghcr.io/actions/runner:", "is not a container image reference"),
        ("ghcr.io/actions/runner:-bad", "is not a container image reference"),
        ("ghcr.io//runner", "is not a container image reference"),
        ("-runner", "is not a container image reference"),
        ("https://ghcr.io/actions/runner", "is not a container image reference"),
        ("ghcr.io/actions/runner@sha256:abc", "is not a container image reference"),
        ("ghcr.io/actions/runner@sha512:" + "a" * 128, "only @sha256: digests"),
        ("ghcr.io/actions/runner@sha256:" + "a" * 63 + "g", "is not a container image"),
        ("ghcr.io/" + "a" * 250 + ":1", "longer than ECS allows"),
    ],
)
def test_bad_image_references_are_refused(image: str, fragment: str) -> None:
    problem = only_problem({"profiles": [{**DEFAULT, "image": image}]})
    assert problem.startswith(f"profiles[0].image: {image!r}")
    assert fragment in problem


# -- network reachability ----------------------------------------------------------------


def test_no_public_ip_in_the_stacks_own_vpc_is_refused() -> None:
    problem = only_problem({"assign_public_ip": False})
    assert problem.startswith(
        "assign_public_ip: false: the stack's own VPC has public subnets and no NAT gateway"
    )
    assert "set vpc_id and subnet_ids" in problem


def test_a_profile_without_public_ip_in_the_stacks_own_vpc_is_refused() -> None:
    problem = only_problem({"profiles": [{**DEFAULT, "assign_public_ip": "false"}]})
    assert problem.startswith("profiles[0].assign_public_ip: false: the stack's own VPC")


def test_profile_subnets_need_an_existing_vpc() -> None:
    problem = only_problem({"profiles": [{**DEFAULT, "subnet_ids": ["subnet-0123abcd"]}]})
    assert problem.startswith("profiles[0].subnet_ids: needs vpc_id (and subnet_ids)")


def test_private_subnets_of_an_existing_vpc_are_accepted() -> None:
    config = load_config(
        {
            **EXISTING_VPC,
            "assign_public_ip": False,
            "profiles": [{**DEFAULT, "subnet_ids": ["subnet-0123abcd"], "assign_public_ip": False}],
        }
    )
    assert config.effective_assign_public_ip is False


# -- GitHub URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://api.github.com", "must be an https:// URL"),
        ("https://github.com", "for github.com use https://api.github.com"),
        ("https://api.github.com/v3", "for github.com use https://api.github.com"),
        ("https://ghe.example.com", "use https://ghe.example.com/api/v3"),
        ("https://ghe.example.com/api", "use https://ghe.example.com/api/v3"),
        ("https://octo.ghe.com", "use https://api.SUBDOMAIN.ghe.com"),
        ("https://user:pw@ghe.example.com/api/v3", "must not have credentials"),
    ],
)
def test_github_api_url_must_be_a_rest_base_url(url: str, fragment: str) -> None:
    problem = problems({"github_api_url": url, "webhook_firewall": False})[0]
    assert problem.startswith(f"github_api_url: {url!r}")
    assert fragment in problem


@pytest.mark.parametrize(
    "url",
    [
        "https://api.github.com",
        "https://api.github.com/",
        "https://ghe.example.com/api/v3",
        "https://ghe.example.com:8443/api/v3/",
        "https://api.octo.ghe.com",
    ],
)
def test_github_api_urls_that_are_accepted(url: str) -> None:
    config = load_config({"github_api_url": url, "webhook_firewall": False})
    assert config.github_api_url == url.rstrip("/")


# -- events and architecture -------------------------------------------------------------


def test_a_misspelt_event_is_refused_with_a_suggestion_and_the_list() -> None:
    problem = only_problem({"profiles": [{**DEFAULT, "allowed_events": ["push", "pull_reqest"]}]})
    assert problem.startswith(
        "profiles[0].allowed_events[1]: 'pull_reqest' is not an event that triggers workflows "
        "(did you mean 'pull_request'?"
    )
    assert "workflow_dispatch" in problem


def test_workflow_call_is_refused_because_jobs_carry_the_callers_event() -> None:
    problem = only_problem({"profiles": [{**DEFAULT, "allowed_events": ["workflow_call"]}]})
    assert "carry the caller's event name" in problem


def test_every_documented_trigger_event_is_accepted() -> None:
    profile = RunnerProfile(name="a", labels=("x",), allowed_events=tuple(sorted(WORKFLOW_EVENTS)))
    assert set(profile.policy.allowed_events) == WORKFLOW_EVENTS


@pytest.mark.parametrize(
    ("architecture", "label", "other"),
    [("ARM64", "X64", "X86_64"), ("ARM64", "amd64", "X86_64"), ("X86_64", "ARM64", "ARM64")],
)
def test_labels_that_contradict_the_architecture_are_refused(
    architecture: str, label: str, other: str
) -> None:
    problem = only_problem(
        {"profiles": [{**DEFAULT, "labels": ["self-hosted", label], "architecture": architecture}]}
    )
    assert problem.startswith(
        f"profiles[0].labels: labels {label} promise {other} but the task runs on {architecture}"
    )


# -- names with length limits ------------------------------------------------------------


def test_a_stack_name_too_long_for_the_waf_metric_names_is_refused() -> None:
    name = "R" + "x" * 112  # 113 characters: "<name>-outside-sources" would be 129
    problem = only_problem({"stack_name": name})
    assert problem.startswith(f"stack_name: {name!r} is 113 characters: the WAF metric names")
    assert "use at most 112 characters" in problem
    assert load_config({"stack_name": name[:112]}).stack_name == name[:112]
    assert load_config({"stack_name": name, "webhook_firewall": False}).stack_name == name


def test_a_long_stack_name_is_fine_for_runner_names() -> None:
    """The Lambda's 20-character RUNNER_NAME_PREFIX is cut from the stack name by the construct
    (tests/infra/test_construct.py), so a 21+ character stack name is accepted."""
    assert load_config({"stack_name": "Platform-Continuous-Integration"}).stack_name


# -- one owner/repo rule -----------------------------------------------------------------

MINIMAL_LAMBDA_ENV = {
    "WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:w-AbCdEf",
    "GITHUB_TOKEN_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:t-AbCdEf",
    "ECS_CLUSTER": "c",
    "SUBNET_IDS": "subnet-1",
    "SECURITY_GROUP_IDS": "sg-1",
    "IDEMPOTENCY_TABLE": "t",
    "RUNNER_PROFILES": json.dumps(
        [{"name": "d", "labels": ["x"], "task_definition": "td", "container_name": "runner"}]
    ),
}


@pytest.mark.parametrize("pattern", ["acme_emu/app", "octo-org/*", "o/.github", "a/b.c_d-e"])
def test_one_owner_repo_rule_accepts_alike_everywhere(pattern: str) -> None:
    """``acme_emu/app`` (a managed user's repository) was refused at the top level only."""
    load_config({"allowed_repositories": [pattern]})
    load_config({"profiles": [{**DEFAULT, "allowed_repositories": [pattern]}]})
    load_settings({**MINIMAL_LAMBDA_ENV, "ALLOWED_REPOSITORIES": pattern})


@pytest.mark.parametrize(
    "pattern",
    ["acme.org/app", "-octo/app", "o/..", "octo/app-*", "a" * 40 + "/r", "o/" + "r" * 101],
)
def test_one_owner_repo_rule_refuses_alike_everywhere(pattern: str) -> None:
    message = f"{pattern!r} is not 'owner/repo' or 'owner/*'"
    assert only_problem({"allowed_repositories": [pattern]}) == (
        f"allowed_repositories[0]: {message}"
    )
    assert only_problem({"profiles": [{**DEFAULT, "allowed_repositories": [pattern]}]}) == (
        f"profiles[0].allowed_repositories[0]: {message}"
    )
    with pytest.raises(LambdaConfigError, match="is not 'owner/repo' or 'owner/\\*'"):
        load_settings({**MINIMAL_LAMBDA_ENV, "ALLOWED_REPOSITORIES": pattern})


# -- warm runners ---------------------------------------------------------------------------


def warm_profile(**keys: Any) -> dict[str, Any]:
    return {**DEFAULT, "warm_runners": 2, "warm_scope": "octo/app", **keys}


def test_a_warm_profile_reaches_the_lambda_as_its_own_model_reads_it() -> None:
    config = load_config({"profiles": [warm_profile(warm_days=["mon", "fri"], warm_hours="22-06")]})
    [profile] = config.profiles
    entry = profile.lambda_entry("arn:aws:ecs:us-east-1:1:task-definition/x:1", "runner", "")
    assert entry["warm"] == {
        "runners": 2, "scope": "octo/app", "days": ["mon", "fri"], "hours": "22-06",
        "max_age_seconds": 14400,
    }  # fmt: skip
    assert "warm" not in RunnerProfile(**DEFAULT).lambda_entry("arn", "runner", "")


@pytest.mark.parametrize(
    ("profile", "context", "fragment"),
    [
        ({**DEFAULT, "warm_scope": "octo/app"}, {}, "warm_scope: is only used with warm_runners"),
        ({**DEFAULT, "warm_runners": 1}, {}, "warm_scope: is required with warm_runners"),
        (warm_profile(max_runners=1), {}, "warm_runners: 2 is above max_runners (1)"),
        (warm_profile(warm_hours="9-5pm"), {}, "warm_hours"),
        (warm_profile(warm_days=["someday"]), {}, "warm_days[0]"),
        (warm_profile(warm_max_age_seconds=60), {}, "warm_max_age_seconds"),
        (warm_profile(), {"runner_scope": "org"}, "organisation name with runner_scope org"),
        (warm_profile(warm_scope="octo"), {}, "owner/name, with runner_scope repo"),
        (warm_profile(), {"allowed_repositories": ["other/*"]}, "not in allowed_repositories"),
        (
            warm_profile(allowed_repositories=["octo/deploy"]),
            {},
            "not in this profile's allowed_repositories",
        ),
    ],
)
def test_warm_pool_mistakes_are_refused(
    profile: dict[str, Any], context: dict[str, Any], fragment: str
) -> None:
    assert fragment in only_problem({"profiles": [profile], **context})


def test_the_lambda_refuses_a_pool_above_max_runners_too() -> None:
    from lambda_fn.config import parse_profiles

    item = {"name": "d", "labels": ["self-hosted"], "task_definition": "td", "container_name": "c",
            "max_runners": 1, "warm": {"runners": 2, "scope": "o/r"}}  # fmt: skip
    with pytest.raises(LambdaConfigError, match=r"warm.runners \(2\) is above max_runners \(1\)"):
        parse_profiles(json.dumps([item]))


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:kms:us-east-1:123456789012:key/abc",  # not a key id
        "arn:aws:kms:us-east-1:123456789012:key/mrk-1234",
        "arn:aws:kms:us-east-1:123456789012:alias/github-app",
    ],
)
def test_synth_refuses_the_key_arns_the_lambda_refuses(arn: str) -> None:
    """One KMS key ARN rule: synth accepting what the Lambda refuses would deploy a stack
    whose every delivery fails its configuration check."""
    context = {"github_auth": "app", "github_app_id": "12345", "github_app_key_arn": arn}
    assert only_problem(context).startswith("github_app_key_arn:")
    profile = {**DEFAULT, "secrets": {"TOKEN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:t-AbCdEf"},
               "secrets_kms_key_arns": [arn]}  # fmt: skip
    assert only_problem({"profiles": [profile]}).startswith("profiles[0].secrets_kms_key_arns[0]:")


# -- configs that can never work (docs/never-work.md) ----------------------------------------


def profile(**keys: Any) -> dict[str, Any]:
    return {"profiles": [{"name": "deploy", "labels": ["deploy"], **keys}]}


def refs_profile(refs: list[str], events: list[str]) -> dict[str, Any]:
    """``allowed_refs`` and ``allowed_events``; tags are said to be ruleset-protected."""
    keys: dict[str, Any] = {"allowed_refs": refs}
    if events:
        keys["allowed_events"] = events
    if any("tags" in ref or "**" in ref for ref in refs):
        keys["tag_protection"] = "ruleset"
    return profile(**keys)


@pytest.mark.parametrize(
    ("refs", "events", "expected"),
    [
        # Pull-request jobs never run at a tag (GITHUB_REF: refs/pull/N/merge or the base).
        (["refs/tags/v*"], ["pull_request"], "never at a tag"),
        (["refs/tags/v*"], ["pull_request_review", "pull_request_target"], "never at a tag"),
        # Only pull_request (and its reviews) run at refs/pull/...
        (["refs/pull/*/merge"], ["push", "workflow_dispatch"], "never at refs/pull/"),
        (["refs/pull/*/merge"], ["pull_request_target"], "run at the base branch"),
        # A ref outside refs/heads, refs/tags and refs/pull is never a job's GITHUB_REF.
        (["refs/remotes/origin/main"], [], "can match no ref a job runs at"),
    ],
)
def test_refs_and_events_that_admit_no_job_are_refused(
    refs: list[str], events: list[str], expected: str
) -> None:
    problem = only_problem(refs_profile(refs, events))
    assert problem.startswith(f"profiles[0].allowed_refs: [{', '.join(refs)}]")
    assert expected in problem


@pytest.mark.parametrize(
    ("refs", "events"),
    [
        # A merged pull request's jobs run at the branch it was merged into (GitHub's
        # definition of github.ref), so this pair admits `closed` jobs of merged PRs.
        (["refs/heads/main"], ["pull_request"]),
        (["refs/heads/main"], ["pull_request_target"]),
        (["refs/pull/*/merge"], ["pull_request"]),
        (["refs/**"], ["pull_request_target"]),
        (["refs/tags/v*", "refs/heads/main"], ["push"]),
    ],
)
def test_refs_and_events_that_can_meet_pass(refs: list[str], events: list[str]) -> None:
    load_config(refs_profile(refs, events))


@pytest.mark.parametrize(
    "pattern",
    [".github/workflows/deploy", ".github/workflows/deploy.json", ".github/workflows/*.txt"],
)
def test_workflow_patterns_that_match_no_workflow_file_are_refused(pattern: str) -> None:
    problem = only_problem(profile(allowed_workflows=[pattern]))
    assert problem.startswith(f"profiles[0].allowed_workflows: [{pattern}] can match no")
    assert ".yml or *.yaml" in problem


@pytest.mark.parametrize(
    "pattern",
    [
        ".github/workflows/deploy.yml",
        ".github/workflows/*.yaml",
        ".github/workflows/*",
        ".github/workflows/d*ml",
    ],
)
def test_workflow_patterns_that_can_match_pass(pattern: str) -> None:
    load_config(profile(allowed_workflows=[pattern]))


def test_max_runners_beyond_the_sanity_cap_is_refused_with_the_figures() -> None:
    context = profile(max_runners=10000, cpu=16384, memory=32768)
    assert only_problem(context) == (
        "profiles[0].max_runners: 10000 runners of 16 vCPU = 160000 vCPUs (all profiles: "
        "160000) is above the sanity cap of 20000 vCPUs per deployment: lower max_runners "
        "(docs/configuration.md)"
    )
    load_config(profile(max_runners=1250, cpu=16384, memory=32768))  # 20,000: the cap itself


def test_the_cap_counts_every_profile_and_names_the_largest() -> None:
    profiles = [
        {"name": f"p{i}", "labels": [f"l{i}"], "max_runners": 2000, "cpu": 4096, "memory": 8192}
        for i in range(2)
    ] + [{"name": "big", "labels": ["big"], "max_runners": 2000, "cpu": 8192, "memory": 16384}]
    (problem,) = problems({"profiles": profiles})
    assert problem.startswith("profiles[2].max_runners: 2000 runners of 8 vCPU = 16000 vCPUs")
    assert "(all profiles: 32000)" in problem


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            {"github_app_key_arn": "arn:aws:kms:eu-west-1:123456789012:alias/app"},
            "github_app_key_arn: 'arn:aws:kms:eu-west-1:123456789012:alias/app' is not a KMS "
            "key ARN: an alias ARN names no key, and IAM grants on key ARNs; use the key ARN "
            "arn:aws:kms:eu-west-1:123456789012:key/KEY-ID (aws kms describe-key --key-id "
            "alias/app shows it)",
        ),
        (
            {"github_app_key_arn": "1234abcd-12ab-34cd-56ef-1234567890ab"},
            "use its ARN, arn:aws:kms:REGION:ACCOUNT:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
        (
            {"github_token_secret_arn": "runners/token"},
            "'runners/token' is not a complete Secrets Manager secret ARN "
            "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX): a secret name; use its "
            "ARN, arn:aws:secretsmanager:REGION:ACCOUNT:secret:runners/token-XXXXXX",
        ),
        (
            {"github_token_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:tok"},
            "a partial ARN; use the complete ARN with the 6-character suffix",
        ),
        ({"alarm_topic_arn": "alerts"}, "use its ARN, arn:aws:sns:REGION:ACCOUNT:alerts"),
    ],
)
def test_names_and_aliases_where_an_arn_is_needed_get_the_arn_form(
    keys: dict[str, Any], expected: str
) -> None:
    context: dict[str, Any] = {"github_auth": "app", "github_app_id": "1", **keys}
    context["allowed_repositories"] = ["*"]
    assert expected in only_problem(context)


def test_profile_arns_suggest_the_arn_form() -> None:
    context = profile(
        secrets={"TOKEN": "deploy-token"},
        secrets_kms_key_arns=["alias/deploy"],
        task_role_policies=["ReadOnlyAccess"],
    )
    found = "\n".join(problems(context))
    assert (
        "profiles[0].secrets.TOKEN: 'deploy-token' is not a Secrets Manager ARN: a secret name; "
        "use its ARN, arn:aws:secretsmanager:REGION:ACCOUNT:secret:deploy-token-XXXXXX"
    ) in found
    assert "profiles[0].secrets_kms_key_arns[0]: 'alias/deploy' is not a KMS key ARN" in found
    assert "describe-key --key-id alias/deploy" in found
    assert (
        "profiles[0].task_role_policies[0]: 'ReadOnlyAccess' is not a managed policy ARN: a "
        "policy name; use its ARN, arn:aws:iam::aws:policy/ReadOnlyAccess"
    ) in found


@pytest.mark.parametrize(
    ("keys", "value"),
    [
        ({"labels": 5}, "5"),
        ({"environment": ["A=1"]}, "['A=1']"),
        (
            {"task_role_policies": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]},
            "'Maybe'",
        ),
        ({"task_role_policies": "arn:aws:iam::aws:policy/X"}, "'arn:aws:iam::aws:policy/X'"),
    ],
)
def test_messages_show_the_refused_value(keys: dict[str, Any], value: str) -> None:
    context = {"profiles": [{"name": "deploy", "labels": ["deploy"], **keys}]}
    assert value in "\n".join(problems(context))
