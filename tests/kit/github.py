"""The GitHub model (``localdev.github_model``) behind ``responses``, and the App."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import responses

from localdev.github_app_double import GitHubAppDouble
from localdev.github_model import Call, GitHubModel
from tests.kit.world import GITHUB_API, FakeAws


class FakeGitHub(GitHubModel):
    """The GitHub model (``localdev.github_model``) served through ``responses``: every
    request ``requests`` sends to ``base_url`` reaches :meth:`GitHubModel.handle`.

    What the tests read besides the model's state is derived from what was sent
    (``mock.calls``), so it cannot disagree with it.
    """

    def __init__(self, mock: responses.RequestsMock, base_url: str = GITHUB_API, **state: Any):
        super().__init__(**state)
        self.mock = mock
        self.base_url = base_url
        self._jit_override: Callable[[Any], Any] | None = None
        for method in (
            responses.GET,
            responses.POST,
            responses.PATCH,
            responses.PUT,
            responses.DELETE,
        ):
            mock.add_callback(
                method, re.compile(re.escape(base_url) + r"/.*"), callback=self._callback
            )

    def _callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self._jit_override is not None and JIT_PATH.search(urlsplit(request.url).path):
            return self._jit_override(request)  # type: ignore[no-any-return]
        return self.jit_callback(request)

    def jit_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """The model's own answer to ``request`` (a ``set_jit`` callback can fall back to it)."""
        parts = urlsplit(request.url)
        raw = request.body or b""
        credentials = request.headers.get("Authorization", "")
        call = Call(
            method=request.method,
            path=parts.path.removeprefix(urlsplit(self.base_url).path),
            query=parse_qs(parts.query),
            body=json.loads(raw) if raw else None,
            token=credentials.partition(" ")[2].strip() or None,
            base_url=self.base_url,
        )
        status, headers, body = self.handle(call)
        headers = {**headers, "Content-Type": "application/json; charset=utf-8"}
        return status, headers, "" if body is None else json.dumps(body)

    def set_jit(self, callback: Any = None, **response: Any) -> None:
        """How generate-jitconfig answers from now on: a ``responses`` callback, or a fixed
        ``status``/``json`` (a fault without end); ``set_jit(github.jit_callback)`` restores
        the model's answer."""
        self.clear_faults("POST", JIT_PATH.pattern)
        self._jit_override = None
        if callback is not None and callback != self.jit_callback:
            self._jit_override = callback
        elif callback is None:
            body = response.get("json", {"message": "injected failure"})
            self.fail("POST", JIT_PATH.pattern, response["status"], times=None, body=body)

    def _sent(self, method: str, path: re.Pattern[str], status: int | None = None) -> list[Any]:
        return [
            c.request
            for c in self.mock.calls
            if c.request.method == method
            and path.search(urlsplit(c.request.url).path)
            and (status is None or getattr(c.response, "status_code", None) == status)
        ]

    @property
    def jit_requests(self) -> list[dict[str, Any]]:
        """The generate-jitconfig requests GitHub granted: body, ``url`` and ``headers``."""
        return [
            {"url": r.url, "headers": dict(r.headers), **json.loads(r.body)}
            for r in self._sent("POST", JIT_PATH, 201)
        ]

    @property
    def authorizations(self) -> list[str]:
        """The ``Authorization`` headers of the granted generate-jitconfig requests."""
        return [r.headers.get("Authorization", "") for r in self._sent("POST", JIT_PATH, 201)]

    @property
    def deleted_runners(self) -> list[int]:
        """Runner ids GitHub deleted (answered 204)."""
        return [int(r.url.rsplit("/", 1)[-1]) for r in self._sent("DELETE", RUNNER_PATH, 204)]

    @property
    def meta_requests(self) -> list[dict[str, str]]:
        """The headers of every ``GET /meta``."""
        return [dict(r.headers) for r in self._sent("GET", re.compile(r"/meta$"))]


JIT_PATH = re.compile(r"/actions/runners/generate-jitconfig$")
RUNNER_PATH = re.compile(r"/actions/runners/\d+$")
#: The webhooks the tests' stacks were set up with (``GITHUB_HOOK_PATH`` / the SSM parameter).
TEST_HOOKS = {12: "repos/octo-org/app", 99: "orgs/octo-org"}


#: The App of the App-mode tests (a numeric App ID is the JWT's ``iss``).
APP_ID = "424242"


def use_github_app(
    fake: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, *, install: bool = True
) -> GitHubAppDouble:
    """Switch the handler to ``GITHUB_AUTH=app``: an RSA_2048 SIGN_VERIFY key in moto's KMS
    (moto makes the key material: its ImportKeyMaterial is missing, see tests/cli), and
    GitHub's side of the App knowing that key's public half. ``install``: on octo-org."""
    kms = boto3.client("kms", region_name=fake.region)
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    public = kms.get_public_key(KeyId=key["Arn"])["PublicKey"]
    github.app = GitHubAppDouble(APP_ID, public)
    if install:
        github.app.install("octo-org")
    for name, value in (
        ("GITHUB_AUTH", "app"),
        ("GITHUB_APP_ID", APP_ID),
        ("GITHUB_APP_KEY_ARN", key["Arn"]),
    ):
        monkeypatch.setenv(name, value)
    return github.app
