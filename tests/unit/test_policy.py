"""lambda_fn.policy: glob rules, validation, facts, evaluation (no mocks)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_fn.policy import (
    JobFacts,
    Policy,
    PolicyError,
    evaluate,
    exact_branches,
    facts_from_runner_env,
    facts_from_workflow_run,
    glob_match,
    glob_to_regex,
    missing_env,
    parse_workflow_ref,
    policy_from_dict,
    policy_from_json,
    tag_pattern,
)

DEPLOY = Policy(
    profile="deploy",
    allowed_repositories=("octo/app", "acme/*"),
    allowed_refs=("refs/heads/main", "refs/tags/v*"),
    allowed_workflows=(".github/workflows/deploy.yml", ".github/workflows/deploy-*.yml"),
    allowed_events=("push", "workflow_dispatch"),
    required_env=("DB_URL",),
)

GOOD = JobFacts(
    repository="octo/app",
    ref="refs/heads/main",
    workflow_path=".github/workflows/deploy.yml",
    event="push",
    from_fork=False,
)


def facts(**changes: Any) -> JobFacts:
    values = {
        "repository": GOOD.repository,
        "ref": GOOD.ref,
        "workflow_path": GOOD.workflow_path,
        "event": GOOD.event,
        "from_fork": GOOD.from_fork,
    }
    values.update(changes)
    return JobFacts(**values)


# ----------------------------------------------------------------------------- globs

segment = st.text(
    alphabet=st.characters(blacklist_characters="/*?", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
)
literal = st.text(
    alphabet=st.characters(blacklist_characters="*?", blacklist_categories=("Cs",)), max_size=30
)
segments = st.lists(segment, min_size=0, max_size=4)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("refs/heads/main", "refs/heads/main", True),
        ("refs/heads/main", "refs/heads/main2", False),
        ("refs/heads/main", "refs/heads/Main", False),
        ("refs/tags/v*", "refs/tags/v1.2.3", True),
        ("refs/tags/v*", "refs/tags/v", True),
        ("refs/tags/v*", "refs/tags/v1/evil", False),
        ("refs/heads/release/**", "refs/heads/release/1.0", True),
        ("refs/heads/release/**", "refs/heads/release/1.x/hotfix", True),
        ("refs/heads/release/**", "refs/heads/release", False),
        ("refs/heads/release/**", "refs/heads/release-1", False),
        ("refs/heads/**", "refs/heads/a/b/c", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/xb", False),
        ("**/b", "b", True),
        ("**/b", "x/y/b", True),
        ("**", "", True),
        ("**", "any/thing", True),
        ("refs/heads/feature-?", "refs/heads/feature-1", True),
        ("refs/heads/feature-?", "refs/heads/feature-12", False),
        ("refs/heads/feature-?", "refs/heads/feature-/", False),
        (".github/workflows/deploy-*.yml", ".github/workflows/deploy-prod.yml", True),
        (".github/workflows/deploy-*.yml", ".github/workflows/deploy-prod.yaml", False),
        (".github/workflows/deploy.yml", ".github/workflows/deployXyml", False),
        ("refs/heads/[ab]", "refs/heads/a", False),
        ("refs/heads/[ab]", "refs/heads/[ab]", True),
        ("refs/heads/a+", "refs/heads/aa", False),
        ("refs/heads/(x|y)", "refs/heads/x", False),
        ("refs/heads/{a,b}", "refs/heads/a", False),
        ("refs/heads/a\\*", "refs/heads/a\\anything", True),
    ],
)
def test_glob_examples(pattern: str, value: str, expected: bool) -> None:
    assert glob_match(pattern, value) is expected


def test_glob_regex_is_anchored() -> None:
    regex = glob_to_regex("refs/heads/main")
    assert regex.match("xrefs/heads/main") is None
    assert regex.match("refs/heads/main\n") is None


@given(prefix=literal, middle=segment, suffix=literal, slash_at=st.integers(min_value=0))
def test_star_never_matches_a_slash(prefix: str, middle: str, suffix: str, slash_at: int) -> None:
    position = slash_at % (len(middle) + 1)
    with_slash = middle[:position] + "/" + middle[position:]
    assert glob_match(prefix + "*" + suffix, prefix + middle + suffix)
    assert not glob_match(prefix + "*" + suffix, prefix + with_slash + suffix)


@given(prefix=literal, suffix=literal, value=st.characters(blacklist_categories=("Cs",)))
def test_question_mark_is_one_non_slash_character(prefix: str, suffix: str, value: str) -> None:
    assert glob_match(prefix + "?" + suffix, prefix + value + suffix) is (value != "/")


@given(pattern=literal, value=literal)
def test_literal_pattern_matches_only_itself(pattern: str, value: str) -> None:
    assert glob_match(pattern, pattern)
    assert glob_match(pattern, value) is (pattern == value)


@given(base=segments, rest=segments)
def test_double_star_matches_any_suffix_of_segments(base: list[str], rest: list[str]) -> None:
    root = "/".join(["refs", *base])
    assert glob_match(root + "/**", "/".join([root, *rest]) + ("" if rest else "/"))
    if rest:
        assert glob_match(root + "/**", "/".join([root, *rest]))


@given(head=segments, middle=segments, tail=segment)
def test_double_star_segment_matches_zero_or_more_segments(
    head: list[str], middle: list[str], tail: str
) -> None:
    pattern = "/".join([*head, "**", tail])
    assert glob_match(pattern, "/".join([*head, *middle, tail]))


@given(text=literal)
def test_regex_metacharacters_are_literal(text: str) -> None:
    pattern = "refs/heads/" + text + ".+()[]{}^$|\\"
    assert glob_match(pattern, pattern)
    assert not glob_match(pattern, "refs/heads/" + text + "x+()[]{}^$|\\")


# ----------------------------------------------------------------------------- policy_from_dict


def test_from_dict_builds_policy_and_forces_fork_denial() -> None:
    policy = policy_from_dict(
        "deploy",
        {
            "allowed_repositories": ["octo/app", "acme/*"],
            "allowed_refs": ["refs/heads/main", "refs/tags/v*"],
            "allowed_workflows": [".github/workflows/deploy.yml", ".github/workflows/deploy-*.yml"],
            "allowed_events": ["push", "workflow_dispatch"],
            "required_env": ["DB_URL"],
        },
    )
    assert policy == DEPLOY
    assert policy.deny_fork_pull_requests is True
    assert policy.restricted is True


@pytest.mark.parametrize("data", [None, {}])
def test_empty_policy_is_unrestricted(data: dict[str, Any] | None) -> None:
    policy = policy_from_dict("general", data)
    assert policy == Policy(profile="general")
    assert not policy.restricted
    assert evaluate(policy, JobFacts(repository=None), strict=True).allowed


def test_fork_denial_alone_is_restricted() -> None:
    policy = policy_from_dict("p", {"deny_fork_pull_requests": True})
    assert policy.restricted
    assert policy_from_dict("p", {"deny_fork_pull_requests": False}).restricted is False


def test_constructor_forces_fork_denial_for_restricted_policy() -> None:
    assert Policy(profile="p", allowed_events=("push",)).deny_fork_pull_requests is True
    assert Policy(profile="p", required_env=("X",)).deny_fork_pull_requests is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], r"^profiles\[deploy\]: policy must be an object"),
        ({"allowed_branches": []}, r"^profiles\[deploy\]: unknown key\(s\) allowed_branches"),
        ({"allowed_refs": "refs/heads/main"}, r"^profiles\[deploy\]\.allowed_refs: must be a list"),
        (
            {"allowed_refs": []},
            r"^profiles\[deploy\]\.allowed_refs: an empty list is not allowed.*omit the key",
        ),
        (
            {"allowed_repositories": ["octo/app"], "required_env": []},
            r"^profiles\[deploy\]\.required_env: an empty list",
        ),
        ({"allowed_refs": [1]}, r"^profiles\[deploy\]\.allowed_refs\[0\]: must be a string"),
        (
            {"allowed_refs": ["refs/heads/main", "main"]},
            r"^profiles\[deploy\]\.allowed_refs\[1\]: 'main' must be a full ref .*refs/heads/main",
        ),
        ({"allowed_refs": [""]}, r"^profiles\[deploy\]\.allowed_refs\[0\]: must be non-empty"),
        (
            {"allowed_refs": [" refs/x"]},
            r"allowed_refs\[0\]: must be non-empty without surrounding",
        ),
        ({"allowed_refs": ["refs/heads/a b"]}, r"allowed_refs\[0\]: .* contains whitespace"),
        (
            {"allowed_repositories": ["octo"]},
            r"^profiles\[deploy\]\.allowed_repositories\[0\]: 'octo' is not 'owner/repo'",
        ),
        ({"allowed_repositories": ["*/app"]}, r"allowed_repositories\[0\]"),
        (
            {"allowed_workflows": ["deploy.yml"]},
            r"^profiles\[deploy\]\.allowed_workflows\[0\]: 'deploy.yml' must be a workflow path",
        ),
        (
            {"allowed_workflows": [".github/workflows/d.yml@refs/heads/main"]},
            r"allowed_workflows\[0\]: .* without '@ref'",
        ),
        ({"allowed_events": ["Push"]}, r"^profiles\[deploy\]\.allowed_events\[0\]: 'Push'"),
        ({"allowed_events": ["pull_*"]}, r"allowed_events\[0\]: .*no wildcards"),
        ({"required_env": ["1X"]}, r"^profiles\[deploy\]\.required_env\[0\]: '1X' is not"),
        ({"deny_fork_pull_requests": "yes"}, r"deny_fork_pull_requests: must be true or false"),
        (
            {"allowed_events": ["push"], "deny_fork_pull_requests": False},
            r"deny_fork_pull_requests: cannot be false for a restricted profile",
        ),
        ({"profile": "other"}, r"^profiles\[deploy\]\.profile: 'other' does not match"),
    ],
)
def test_from_dict_errors_name_the_key(data: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_dict("deploy", data)


def test_policy_error_is_a_value_error_and_where_is_configurable() -> None:
    with pytest.raises(ValueError, match=r"^RUNNER_PROFILES\[2\]\.policy\.allowed_events\[0\]"):
        policy_from_dict("x", {"allowed_events": ["*"]}, where="RUNNER_PROFILES[2].policy")


def test_policy_from_json() -> None:
    assert policy_from_json(DEPLOY.to_json()) == DEPLOY
    with pytest.raises(PolicyError, match="not valid JSON"):
        policy_from_json("{")
    with pytest.raises(PolicyError, match="must be a JSON object"):
        policy_from_json("[]")
    with pytest.raises(PolicyError, match=r"policy\.profile: must be a non-empty string"):
        policy_from_json("{}")


ref_patterns = st.builds(
    lambda parts: "refs/" + "/".join(parts),
    st.lists(st.from_regex(r"[A-Za-z0-9._*?-]{1,8}", fullmatch=True), min_size=1, max_size=3),
)
workflow_patterns = st.from_regex(r"\.github/workflows/[A-Za-z0-9._*?-]{1,12}", fullmatch=True)
#: GitHub owners have no '.', may have '_' (managed users); a repository is never '.' or
#: '..' (here: never starts with '.', so no filter slows generation down).
repo_patterns = st.from_regex(
    r"[A-Za-z0-9][A-Za-z0-9_-]{0,7}/(\*|[A-Za-z0-9_-][A-Za-z0-9_.-]{0,7})", fullmatch=True
)
events = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    def small(strategy: st.SearchStrategy[str]) -> tuple[str, ...]:
        return tuple(draw(st.lists(strategy, max_size=3)))

    return Policy(
        profile=draw(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)),
        allowed_repositories=small(repo_patterns),
        allowed_refs=small(ref_patterns),
        allowed_workflows=small(workflow_patterns),
        allowed_events=small(events),
        deny_fork_pull_requests=draw(st.booleans()),
        required_env=small(env_names),
    )


@given(policy=policies())
def test_to_dict_round_trips_through_json(policy: Policy) -> None:
    data = json.loads(json.dumps(policy.to_dict()))
    assert policy_from_dict(policy.profile, data) == policy
    assert policy_from_json(policy.to_json()) == policy


# ----------------------------------------------------------------------------- workflow refs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "octo/app/.github/workflows/deploy.yml@refs/heads/main",
            ("octo/app", ".github/workflows/deploy.yml", "refs/heads/main"),
        ),
        (
            "octo/app/.github/workflows/ci.yml@refs/pull/12/merge",
            ("octo/app", ".github/workflows/ci.yml", "refs/pull/12/merge"),
        ),
        (
            "octo/app/.github/workflows/a@b.yml@refs/heads/x@y",
            ("octo/app", ".github/workflows/a@b.yml", "refs/heads/x@y"),
        ),
        (
            "octo/app/.github/workflows/ci.yml@0123abcd",
            ("octo/app", ".github/workflows/ci.yml", "0123abcd"),
        ),
    ],
)
def test_parse_workflow_ref(value: str, expected: tuple[str, str, str]) -> None:
    assert parse_workflow_ref(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "octo", "octo/app", "octo/app/", "octo/app/.github/workflows/ci.yml", "octo/app/x@"],
)
def test_parse_workflow_ref_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError, match="is not 'owner/repo/path@ref'"):
        parse_workflow_ref(value)


# ----------------------------------------------------------------------------- runner facts

RUNNER_ENV = {
    "GITHUB_REPOSITORY": "octo/app",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_WORKFLOW_REF": "octo/app/.github/workflows/deploy.yml@refs/heads/main",
    "GITHUB_EVENT_NAME": "push",
}


def pr_payload(head_repo: dict[str, Any] | None) -> dict[str, Any]:
    return {"pull_request": {"number": 1, "head": {"ref": "topic", "repo": head_repo}}}


def test_facts_from_runner_env_push() -> None:
    assert facts_from_runner_env(RUNNER_ENV, {"ref": "refs/heads/main"}) == GOOD


def test_facts_from_runner_env_missing_values_are_unknown() -> None:
    assert facts_from_runner_env({"GITHUB_WORKFLOW_REF": "garbage"}, None) == JobFacts(
        repository=None, ref=None, workflow_path=None, event=None, from_fork=None
    )


@pytest.mark.parametrize(
    "event",
    ["pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"],
)
@pytest.mark.parametrize(
    ("head_repo", "from_fork"),
    [
        ({"full_name": "octo/app", "fork": False}, False),
        ({"full_name": "OCTO/App", "fork": False}, False),
        ({"full_name": "evil/app", "fork": True}, True),
        ({"full_name": "evil/app", "fork": False}, True),
        ({"full_name": "octo/app", "fork": True}, True),
        ({"fork": False}, True),
        (None, True),
    ],
)
def test_fork_detection(event: str, head_repo: dict[str, Any] | None, from_fork: bool) -> None:
    env = {**RUNNER_ENV, "GITHUB_EVENT_NAME": event}
    assert facts_from_runner_env(env, pr_payload(head_repo)).from_fork is from_fork


def test_fork_detection_deleted_head_repository_key() -> None:
    env = {**RUNNER_ENV, "GITHUB_EVENT_NAME": "pull_request"}
    assert facts_from_runner_env(env, {"pull_request": {"head": {}}}).from_fork is True
    assert facts_from_runner_env(env, {"pull_request": {}}).from_fork is True


def test_fork_unknown_without_pull_request_payload() -> None:
    env = {**RUNNER_ENV, "GITHUB_EVENT_NAME": "pull_request"}
    assert facts_from_runner_env(env, None).from_fork is None
    assert facts_from_runner_env(env, {"action": "opened"}).from_fork is None


@pytest.mark.parametrize(
    ("run", "from_fork"),
    [
        ({"event": "pull_request", "head_repository": {"full_name": "evil/app"}}, True),
        ({"event": "pull_request", "head_repository": {"full_name": "octo/app"}}, False),
        ({"event": "push", "head_repository": {"full_name": "evil/app"}}, False),
        (None, None),
    ],
)
def test_workflow_run_event_triggered_by_fork(
    run: dict[str, Any] | None, from_fork: bool | None
) -> None:
    env = {**RUNNER_ENV, "GITHUB_EVENT_NAME": "workflow_run"}
    payload = {"workflow_run": run} if run is not None else {}
    assert facts_from_runner_env(env, payload).from_fork is from_fork


# ----------------------------------------------------------------------------- REST run facts


def rest_run(**changes: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "id": 42,
        "event": "push",
        "head_branch": "main",
        "path": ".github/workflows/deploy.yml",
        "repository": {"full_name": "octo/app"},
        "head_repository": {"full_name": "octo/app", "fork": False},
    }
    run.update(changes)
    return run


def test_facts_from_workflow_run_push() -> None:
    assert facts_from_workflow_run(rest_run()) == JobFacts(
        repository="octo/app",
        ref=None,
        workflow_path=".github/workflows/deploy.yml",
        event="push",
        from_fork=False,
        ref_candidates=("refs/heads/main", "refs/tags/main"),
    )


def test_facts_from_workflow_run_strips_ref_suffix_from_path() -> None:
    run = rest_run(path=".github/workflows/deploy.yml@refs/heads/main")
    assert facts_from_workflow_run(run).workflow_path == ".github/workflows/deploy.yml"


def test_facts_from_workflow_run_pull_request_from_fork() -> None:
    run = rest_run(event="pull_request", head_repository={"full_name": "evil/app", "fork": True})
    result = facts_from_workflow_run(run)
    assert result.from_fork is True
    assert result.ref is None
    assert result.ref_candidates == ()
    assert facts_from_workflow_run(rest_run(event="pull_request", head_repository=None)).from_fork


def test_facts_from_workflow_run_unknowns() -> None:
    result = facts_from_workflow_run({})
    assert result == JobFacts(repository=None)
    assert facts_from_workflow_run(rest_run(event="workflow_run")).from_fork is None


def test_dispatch_refuses_when_neither_branch_nor_tag_is_allowed() -> None:
    decision = evaluate(
        DEPLOY, facts_from_workflow_run(rest_run(head_branch="feature-x")), strict=False
    )
    assert not decision.allowed
    assert decision.rule == "allowed_refs"
    assert decision.message == (
        "ref refs/heads/feature-x or refs/tags/feature-x is not allowed "
        "(allowed: refs/heads/main, refs/tags/v*)"
    )
    for branch in ("main", "v1.2"):
        run = rest_run(head_branch=branch)
        assert evaluate(DEPLOY, facts_from_workflow_run(run), strict=False).allowed


# ----------------------------------------------------------------------------- evaluate


def test_allowed_job() -> None:
    decision = evaluate(DEPLOY, GOOD, strict=True)
    assert decision.allowed
    assert decision.rule == ""
    assert "deploy" in decision.message


@pytest.mark.parametrize(
    ("changes", "rule", "message"),
    [
        (
            {"repository": "octo/other"},
            "allowed_repositories",
            "repository octo/other is not allowed (allowed: octo/app, acme/*)",
        ),
        (
            {"event": "pull_request", "from_fork": True},
            "deny_fork_pull_requests",
            "jobs for pull requests from forks are not allowed (event pull_request)",
        ),
        (
            {"event": "pull_request"},
            "allowed_events",
            "event pull_request is not allowed (allowed: push, workflow_dispatch)",
        ),
        (
            {"ref": "refs/heads/feature-x"},
            "allowed_refs",
            "ref refs/heads/feature-x is not allowed (allowed: refs/heads/main, refs/tags/v*)",
        ),
        (
            {"workflow_path": ".github/workflows/ci.yml"},
            "allowed_workflows",
            "workflow .github/workflows/ci.yml is not allowed "
            "(allowed: .github/workflows/deploy.yml, .github/workflows/deploy-*.yml)",
        ),
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_each_rule_refuses_with_message(
    changes: dict[str, Any], rule: str, message: str, strict: bool
) -> None:
    decision = evaluate(DEPLOY, facts(**changes), strict=strict)
    assert (decision.allowed, decision.rule, decision.message) == (False, rule, message)


def test_repositories_compare_case_insensitively() -> None:
    assert evaluate(DEPLOY, facts(repository="OCTO/APP"), strict=True).allowed
    assert evaluate(DEPLOY, facts(repository="Acme/anything"), strict=True).allowed
    assert not evaluate(DEPLOY, facts(repository="acme/a/b"), strict=True).allowed


def test_rule_order_repository_first_then_forks_event_ref_workflow() -> None:
    everything_wrong = JobFacts(
        repository="evil/app",
        ref="refs/heads/x",
        workflow_path=".github/workflows/x.yml",
        event="pull_request",
        from_fork=True,
    )
    order = []
    current = everything_wrong
    fixes = {
        "allowed_repositories": {"repository": "octo/app"},
        "deny_fork_pull_requests": {"from_fork": False},
        "allowed_events": {"event": "push"},
        "allowed_refs": {"ref": "refs/heads/main"},
        "allowed_workflows": {"workflow_path": ".github/workflows/deploy.yml"},
    }
    while not (decision := evaluate(DEPLOY, current, strict=True)).allowed:
        order.append(decision.rule)
        values = {**current.__dict__, **fixes[decision.rule]}
        current = JobFacts(**values)
    assert order == list(fixes)


@pytest.mark.parametrize(
    ("changes", "rule", "fragment"),
    [
        ({"repository": None}, "allowed_repositories", "repository could not be determined"),
        ({"from_fork": None}, "deny_fork_pull_requests", "could not determine whether"),
        ({"event": None}, "allowed_events", "event could not be determined"),
        ({"ref": None}, "allowed_refs", "ref could not be determined"),
        ({"workflow_path": None}, "allowed_workflows", "workflow could not be determined"),
    ],
)
def test_unknown_facts_refuse_when_strict_and_pass_when_lenient(
    changes: dict[str, Any], rule: str, fragment: str
) -> None:
    strict = evaluate(DEPLOY, facts(**changes), strict=True)
    assert not strict.allowed
    assert strict.rule == rule
    assert fragment in strict.message
    assert evaluate(DEPLOY, facts(**changes), strict=False).allowed


def test_unknown_facts_pass_for_unrestricted_dimensions() -> None:
    policy = Policy(profile="refs-only", allowed_refs=("refs/heads/main",))
    unknown = JobFacts(repository=None, ref="refs/heads/main", from_fork=False)
    assert evaluate(policy, unknown, strict=True).allowed


def test_messages_do_not_carry_line_breaks() -> None:
    decision = evaluate(DEPLOY, facts(ref="refs/heads/x\n::error::forged"), strict=True)
    assert not decision.allowed
    assert "\n" not in decision.message
    assert re.search(r"'refs/heads/x\\n::error::forged'", decision.message)


def test_missing_env() -> None:
    policy = Policy(profile="p", required_env=("A", "B", "C"))
    assert missing_env(policy, {"A": "1", "B": ""}) == ["B", "C"]
    assert missing_env(policy, {"A": "1", "B": "2", "C": "3"}) == []
    assert missing_env(Policy(profile="p"), {}) == []


def test_to_dict_leaves_unset_rules_out() -> None:
    """An empty list is refused on the way in, so it is never written out either."""
    data = Policy(profile="p", allowed_events=("push",)).to_dict()
    assert data == {"profile": "p", "allowed_events": ["push"], "deny_fork_pull_requests": True}


# --- tags: which patterns allow them, which branches can vouch for them -------------------


@pytest.mark.parametrize(
    ("pattern", "tags"),
    [
        ("refs/tags/v*", True),
        ("refs/tags/release-1", True),
        ("refs/**", True),
        ("refs/*/v1", True),
        ("refs/t*", True),
        ("refs/heads/*", False),
        ("refs/heads/main", False),
        ("refs/pull/*/merge", False),
    ],
)
def test_tag_pattern_says_whether_a_pattern_can_match_a_tag(pattern: str, tags: bool) -> None:
    assert tag_pattern(pattern) is tags


def test_exact_branches_are_the_wildcard_free_heads_in_order() -> None:
    refs = ("refs/tags/v*", "refs/heads/stable", "refs/heads/release/*", "refs/heads/main")
    assert exact_branches(Policy("p", allowed_refs=refs)) == ("stable", "main")


def test_tag_protection_round_trips_and_is_checked() -> None:
    ruleset = policy_from_dict(
        "deploy", {"allowed_refs": ["refs/tags/v*"], "tag_protection": "ruleset"}
    )
    assert policy_from_json(ruleset.to_json()) == ruleset
    assert DEPLOY.tag_protection == "branch-history" and "tag_protection" not in DEPLOY.to_dict()
    with pytest.raises(PolicyError, match=r"^profiles\[deploy\].tag_protection: 'none' is not"):
        policy_from_dict("deploy", {"allowed_refs": ["refs/tags/v*"], "tag_protection": "none"})
