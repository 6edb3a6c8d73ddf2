"""``lambda_fn.naming``: a deployment recognises its own runners and nobody else's."""

from __future__ import annotations

import pytest

from lambda_fn.naming import launched_for, owns_runner, runner_name


def test_names_carry_prefix_deployment_and_job() -> None:
    name = runner_name("runners", "1c2fa620", 4242)
    assert name.startswith("runners-1c2fa620-4242-")
    assert len(name) == len("runners-1c2fa620-4242-") + 6
    assert owns_runner("runners", "1c2fa620", name)
    assert runner_name("runners", "1c2fa620", 4242) != name  # unique per attempt
    assert launched_for("runners", "1c2fa620", name) == 4242


def test_launched_for_is_none_for_runners_not_ours() -> None:
    assert launched_for("runners", "1c2fa620", "runners-9d8e7f60-4242-abcdef") is None
    assert launched_for("runners", "1c2fa620", "GitHub Actions 2") is None


@pytest.mark.parametrize(
    "name",
    [
        "runners-9d8e7f60-4242-abcdef",  # the same stack name deployed elsewhere
        "runners-b-1c2fa620-4242-abcdef",  # a deployment whose prefix starts like ours
        "runners-4242-abcdef",  # a deployment without an id
        "runners-1c2fa620-4242-abcdef-x",
        "runners-1c2fa620-job-abcdef",
        "someone-else",
    ],
)
def test_other_deployments_runners_are_not_ours(name: str) -> None:
    assert not owns_runner("runners", "1c2fa620", name)


def test_without_a_deployment_id_the_prefix_alone_names_runners() -> None:
    name = runner_name("fgr", "", 7)
    assert name.startswith("fgr-7-")
    assert owns_runner("fgr", "", name)
    assert not owns_runner("fgr", "", "fgr-1c2fa620-7-abcdef")
    # Names stay short: longest prefix, a stack-id group and a 16-digit job id.
    assert len(runner_name("a" * 20, "f" * 8, 10**15)) == 53


def test_pool_runners_are_ours_but_launched_for_no_job() -> None:
    from lambda_fn.naming import pool_runner_name

    name = pool_runner_name("runners", "1c2fa620")
    assert (
        name.startswith("runners-1c2fa620-pool-") and len(name) == len("runners-1c2fa620-pool-") + 8
    )
    assert owns_runner("runners", "1c2fa620", name)
    assert launched_for("runners", "1c2fa620", name) is None
    assert not owns_runner("runners", "9d8e7f60", name)
    assert not owns_runner("runners", "1c2fa620", "runners-1c2fa620-pool-abc")
