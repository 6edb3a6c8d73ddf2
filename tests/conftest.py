"""Shared fixtures: fake AWS (moto), fake GitHub (responses), the handler's logs.

Everything the handler touches is real code talking through the real client
libraries: boto3 -> moto's in-process backend, requests -> ``responses``
intercepting at the HTTP adapter. The helpers live in ``tests.kit`` (importable, no
tests); this file only turns them into fixtures.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from lambda_fn.aws import reset_caches
from tests.kit.github import TEST_HOOKS, FakeGitHub
from tests.kit.world import FakeAws, create_stack_resources


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    from moto import mock_aws  # after tests.kit set the fake credentials

    with mock_aws():
        resources = create_stack_resources()
        for key, value in resources.env().items():
            monkeypatch.setenv(key, value)
        reset_caches()
        yield resources
    reset_caches()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeGitHub(mock)
        for hook_id, scope in TEST_HOOKS.items():
            fake.add_hook(scope, "https://abc123.execute-api.test/prod/webhook", hook_id=hook_id)
        yield fake


@pytest.fixture
def lambda_logs() -> Iterator[io.StringIO]:
    """The handler's structured log lines, exactly as Lambda would ship them."""
    from lambda_fn.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The GitHub client's backoff waits are recorded, not slept.

    Only that one name is replaced: replacing ``time.sleep`` itself (as this fixture once
    did) turned every polling loop of the process, moto's server and the doubles included,
    into a busy loop.
    """
    slept: list[float] = []
    monkeypatch.setattr("lambda_fn.github.backoff_sleep", slept.append)
    return slept


CDK_TEST_DIRS = ("infra", "upgrade")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that synthesizes runs on one xdist worker (with ``--dist loadgroup``).

    A process's first synth pays for starting the jsii kernel and CDK's template validation
    (about 10 s of CPU); grouped, one worker pays it instead of each. Without xdist the mark
    does nothing.
    """
    tests_dir = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests_dir)
        if relative.parts[0] in CDK_TEST_DIRS:
            item.add_marker(pytest.mark.xdist_group("cdk"))
