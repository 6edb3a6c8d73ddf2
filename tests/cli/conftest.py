"""A deployed stack in moto (``localdev.fake_stack``) and GitHub behind ``responses``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses
from moto import mock_aws

from localdev.fake_stack import (  # noqa: F401 - the names tests/cli imports from here
    ALARMS,
    API,
    PAT,
    REGION,
    STACK,
    WEBHOOK_URL,
    Deployed,
    deploy,
)
from tests.cli.kms_import import kms_import  # noqa: F401 - a fixture for the App tests
from tests.conftest import FakeGitHub


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


class GitHub(FakeGitHub):
    """The one GitHub model (``localdev.github_model``) as the CLI meets it: one valid token."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        super().__init__(mock, base_url=API, valid_token=PAT)

    def seed_hook(self, rest: dict[str, Any], scope: str = "repos/octo-org/app") -> None:
        """A webhook that already exists, given as the REST API shows it."""
        config = rest["config"]
        hook = self.add_hook(
            scope, config["url"], "x" if "secret" in config else "",
            hook_id=rest["id"], events=rest["events"],
        )  # fmt: skip
        hook.active, hook.content_type = rest["active"], config["content_type"]

    def hook_views(self) -> list[dict[str, Any]]:
        return [hook.view() for hook in self.hooks.values()]

    def sent(self) -> list[tuple[str, str]]:
        """(method, path) of every request, in order (``authorizations`` lines up with it)."""
        return [(c.request.method, urlsplit(c.request.url).path) for c in self.mock.calls]

    @property
    def authorizations(self) -> list[str]:
        """The ``Authorization`` header of every request (to tell the PAT from an
        installation token), in the order of :meth:`sent`."""
        return [c.request.headers.get("Authorization", "") for c in self.mock.calls]

    def writes(self) -> list[tuple[str, str]]:
        return [
            (r.method, r.path)
            for r in self.requests
            if r.method in ("POST", "PUT", "PATCH", "DELETE")
        ]


@pytest.fixture
def github() -> Iterator[GitHub]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield GitHub(mock)
