"""One owner per fact (issue 26): each name or rule that crosses packages is defined once,
in ``lambda_fn``, and everything else reads it from there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_fn import contract
from lambda_fn.config import get_settings, load_settings
from lambda_fn.naming import (
    RUNNER_NAME_PREFIX_MAX,
    runner_name_prefix_from,
    runner_name_prefix_problem,
)
from tests.kit.settings import MINIMAL

ROOT = Path(__file__).resolve().parents[2]
#: The packages that ship or drive the code (tests may spell a value to pin it, as below).
CODE = ("lambda_fn", "fargate_runners", "runners_cli", "localdev", "bench", "cdk")


def code_files() -> list[Path]:
    return [path for package in CODE for path in sorted((ROOT / package).rglob("*.py"))]


# -- task tags ------------------------------------------------------------------------------


def test_the_task_tag_keys_never_change() -> None:
    """Tags are read back from tasks an older release started (the reconciler, teardown,
    ``fargate-runners status``): a renamed key would make those tasks look like no job's."""
    assert (
        contract.TAG_GITHUB_JOB_ID,
        contract.TAG_GITHUB_RUN_ID,
        contract.TAG_GITHUB_RUN_ATTEMPT,
        contract.TAG_GITHUB_REPOSITORY,
    ) == ("github:job-id", "github:run-id", "github:run-attempt", "github:repository")


def test_no_code_spells_a_task_tag_key() -> None:
    owner = ROOT / "lambda_fn" / "contract.py"
    keys = [
        value
        for name, value in vars(contract).items()
        if name.startswith("TAG_") and isinstance(value, str)
    ]
    spelled = [
        f"{path.relative_to(ROOT)}: {key}"
        for path in code_files()
        if path != owner
        for key in keys
        if f'"{key}"' in path.read_text(encoding="utf-8")
    ]
    assert not spelled, "use lambda_fn.contract.TAG_* instead of the literal: " + ", ".join(spelled)


def test_the_cli_reads_runner_tasks_through_the_lambdas_class() -> None:
    from lambda_fn.runner_task import RunnerTask
    from runners_cli import commands

    assert commands.RunnerTask is RunnerTask
    task = RunnerTask.from_ecs(
        {
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/c/0123456789abcdef",
            "lastStatus": "RUNNING",
            "tags": [
                {"key": contract.TAG_GITHUB_JOB_ID, "value": "42"},
                {"key": contract.TAG_GITHUB_REPOSITORY, "value": "octo-org/app"},
                {"key": contract.TAG_PROFILE, "value": "default"},
            ],
        }
    )
    assert (task.job_id, task.repository, task.profile) == (42, "octo-org/app", "default")
    assert task.task_id == "0123456789abcdef"
    assert task.owner_repo == ("octo-org", "app")


# -- the idle settings: one name per meaning ------------------------------------------------


def test_the_reconciler_backstop_has_its_own_name() -> None:
    settings = load_settings({**MINIMAL, "RECONCILER_IDLE_TIMEOUT_SECONDS": "1020"})
    assert settings.reconciler_idle_timeout_seconds == 1020
    assert contract.TASK_IDLE_TIMEOUT_ENV != "RECONCILER_IDLE_TIMEOUT_SECONDS"
    built = contract.lambda_environment(
        webhook_secret_arn="w",
        github_token_secret_arn="t",
        ecs_cluster="c",
        subnet_ids=["subnet-1"],
        security_group_ids=["sg-1"],
        idempotency_table="i",
        profiles_parameters=["p"],
        profiles_version="v",
        runner_name_prefix="fgr",
        jit_secret_prefix="fgr/jit",
        github_hook_parameter="h",
        service_name="s",
        task_idle_timeout_seconds=600,
    )
    assert built["RECONCILER_IDLE_TIMEOUT_SECONDS"] == "720"
    assert contract.TASK_IDLE_TIMEOUT_ENV not in built  # the task's, not the Lambda's


def test_a_deployed_stacks_old_name_still_sets_the_backstop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before the split the Lambda read RUNNER_IDLE_TIMEOUT_SECONDS as the reconciler's
    backstop; an environment that still has only it keeps that meaning."""
    old = {**MINIMAL, "RUNNER_IDLE_TIMEOUT_SECONDS": "1020"}
    assert load_settings(old).reconciler_idle_timeout_seconds == 1020
    both = {**old, "RECONCILER_IDLE_TIMEOUT_SECONDS": "300"}
    assert load_settings(both).reconciler_idle_timeout_seconds == 300
    with pytest.raises(Exception, match="RECONCILER_IDLE_TIMEOUT_SECONDS"):
        load_settings({**MINIMAL, "RUNNER_IDLE_TIMEOUT_SECONDS": "soon"})
    # The cached settings follow the old name too (it is part of the cache key).
    for name, value in MINIMAL.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RECONCILER_IDLE_TIMEOUT_SECONDS", raising=False)
    monkeypatch.setenv("RUNNER_IDLE_TIMEOUT_SECONDS", "1020")
    assert get_settings().reconciler_idle_timeout_seconds == 1020
    monkeypatch.setenv("RUNNER_IDLE_TIMEOUT_SECONDS", "2040")
    assert get_settings().reconciler_idle_timeout_seconds == 2040


# -- the runner name prefix: one rule -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("RunnersTest", "runnerstest"),
        ("Platform-Continuous-Integration-Runners", "platform-continuous"),  # cut, no '-'
        ("platform-ci-1c46ab23", "platform-ci-1c46ab23"),
        ("ci-", "ci"),  # an explicit prefix the construct used to cut the same way
        ("Team_CI.Runners", "team-ci-runners"),
        ("___", contract.LAMBDA_ENVIRONMENT["RUNNER_NAME_PREFIX"]),
    ],
)
def test_the_prefix_is_derived_one_way(name: str, prefix: str) -> None:
    assert runner_name_prefix_from(name) == prefix


@given(st.text(max_size=80))
def test_a_derived_prefix_is_always_one_the_lambda_accepts(name: str) -> None:
    prefix = runner_name_prefix_from(name)
    assert runner_name_prefix_problem(prefix) is None
    assert load_settings({**MINIMAL, "RUNNER_NAME_PREFIX": prefix}).runner_name_prefix == prefix


def test_the_lambda_and_the_construct_refuse_the_same_prefixes() -> None:
    from fargate_runners import rules

    assert rules.runner_name_prefix_problem is runner_name_prefix_problem
    for bad in ("Has Spaces", "-lead", "x" * (RUNNER_NAME_PREFIX_MAX + 1), ""):
        problem = runner_name_prefix_problem(bad)
        assert problem is not None and f"1-{RUNNER_NAME_PREFIX_MAX}" in problem


def test_local_mode_derives_the_prefix_as_the_construct_does() -> None:
    source = (ROOT / "localdev" / "provision.py").read_text(encoding="utf-8")
    assert "runner_name_prefix=runner_name_prefix_from(" in source
    assert not re.search(r"def _?runner_name_prefix", source)


# -- the runner version ---------------------------------------------------------------------


def test_the_docs_name_the_runner_version_the_code_runs() -> None:
    """docs/lifecycle.md ("Runner versions") states the default runner release for humans;
    it must move with the constant, and no page may name another release's image."""
    lifecycle = (ROOT / "docs" / "lifecycle.md").read_text(encoding="utf-8")
    assert f"`{contract.RUNNER_VERSION}`" in lifecycle
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    stale = {
        f"{page.name}: {version}"
        for page in pages
        for version in re.findall(r"actions-runner:(\d+\.\d+\.\d+)", page.read_text("utf-8"))
        if version != contract.RUNNER_VERSION
    }
    assert not stale, f"runner images other than RUNNER_VERSION's: {sorted(stale)}"
