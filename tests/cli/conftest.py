"""Fixtures of the CLI tests: a deployed stack in moto and GitHub behind ``responses``
(the helpers are in ``tests.kit.cli``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from moto import mock_aws

from tests.kit.cli import ALARMS, Deployed, GitHub, deploy
from tests.kit.kms_import import kms_import  # noqa: F401 - a fixture for the App tests


@pytest.fixture(autouse=True)
def stack_alarms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    ALARMS.clear()
    monkeypatch.setattr("runners_cli.commands.stack_alarm_names", lambda aws, name: list(ALARMS))
    yield ALARMS
    ALARMS.clear()


@pytest.fixture
def aws_env() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def deployed(aws_env: None) -> Deployed:
    return deploy()


@pytest.fixture
def github() -> Iterator[GitHub]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield GitHub(mock)
