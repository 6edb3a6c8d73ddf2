"""GITHUB_AUTH=app: the JWT KMS signs, installation lookup and token caching, expiry, 401 and
404, through the real handler, retry and reconciler code against moto's KMS and the GitHub
double (``FakeGitHub`` with GitHub's App side, ``localdev.github_app_double``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import Stubber
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lambda_fn.errors import GitHubPermanentError, SecretMissingError, SecretUnavailableError
from lambda_fn.github_auth import (
    TOKEN_REFRESH_MARGIN_SECONDS,
    GitHubApp,
    GitHubAppNotInstalledError,
    installation_resource,
)
from localdev.github_app_double import GitHubAppDouble
from localdev.github_model import APP_HOOK_ID
from tests.kit.events import deliver, queued_payload
from tests.kit.github import APP_ID, FakeGitHub, use_github_app
from tests.kit.world import GITHUB_API, PAT, FakeAws, use_retry_queue


class Clock:
    """Wall-clock time both sides (our Lambda, GitHub) read; tests move it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def calls(github: FakeGitHub, method: str, contains: str) -> list[Any]:
    return [
        c for c in github.mock.calls if c.request.method == method and contains in c.request.url
    ]


@pytest.fixture
def app(fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> GitHubAppDouble:
    return use_github_app(fake_aws, github, monkeypatch)


def app_client(app: GitHubAppDouble, clock: Clock) -> GitHubApp:
    """Our side of the App, on the same clock as GitHub's side."""
    app.clock = clock
    key_arn = boto3.client("kms").list_keys()["Keys"][0]["KeyArn"]
    return GitHubApp(GITHUB_API, APP_ID, key_arn, session=requests.Session(), clock=clock)


def test_the_jwt_is_rs256_signed_by_the_kms_key_with_githubs_claims(
    app: GitHubAppDouble,
) -> None:
    clock = Clock()
    token = app_client(app, clock).jwt()
    header, payload, signature = token.split(".")
    assert json.loads(unb64(header)) == {"alg": "RS256", "typ": "JWT"}
    claims = json.loads(unb64(payload))
    # iat 60 s back (clock drift), exp at most 10 minutes ahead, iss the App ID.
    assert claims == {"iat": int(clock.now) - 60, "exp": int(clock.now) + 540, "iss": APP_ID}
    public = serialization.load_der_public_key(app.public_key_der)
    assert isinstance(public, rsa.RSAPublicKey)
    # Raises InvalidSignature unless KMS signed exactly header.payload with RS256.
    public.verify(
        unb64(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_the_jwt_is_reused_until_shortly_before_it_expires(app: GitHubAppDouble) -> None:
    clock = Clock()
    ours = app_client(app, clock)
    first = ours.jwt()
    clock.now += 400
    assert ours.jwt() == first
    clock.now += 30  # exp - 120 s: sign a new one
    second = ours.jwt()
    assert second != first
    assert json.loads(unb64(second.split(".")[1]))["iat"] == int(clock.now) - 60


def test_a_webhook_delivery_launches_with_an_installation_token(
    fake_aws: FakeAws, github: FakeGitHub, app: GitHubAppDouble
) -> None:
    status, body = deliver(queued_payload(job_id=1))
    assert (status, body["status"]) == (200, "launched")
    assert len(app.minted) == 1
    assert github.authorizations == [f"Bearer {app.minted[0]}"]
    assert PAT not in json.dumps([dict(c.request.headers) for c in github.mock.calls])
    installation = calls(github, "GET", "/installation")
    assert [c.request.url for c in installation] == [
        f"{GITHUB_API}/repos/octo-org/app/installation"
    ]

    # The token was asked for this repository and the one permission JIT configs need.
    runners = {"administration": "write"}
    assert app.token_requests == [(app.installations[0].id, {"repositories": ["app"],
                                                             "permissions": runners})]  # fmt: skip

    status, body = deliver(queued_payload(job_id=2, repo="octo-org/other"))
    assert (status, body["status"]) == (200, "launched")
    # Another repository of the same installation: its own token, for that repository only.
    assert len(calls(github, "GET", "/installation")) == 2
    assert len(app.minted) == 2
    assert app.token_requests[1][1] == {"repositories": ["other"], "permissions": runners}
    assert github.authorizations == [f"Bearer {t}" for t in app.minted]

    # The same repository again: the cached token (tokens live an hour).
    assert deliver(queued_payload(job_id=3, repo="octo-org/app"))[0] == 200
    assert len(app.minted) == 2
    assert github.authorizations[-1] == f"Bearer {app.minted[0]}"


def test_a_token_scoped_to_one_repository_is_refused_on_another(app: GitHubAppDouble) -> None:
    """The GitHub model enforces a token's repositories and permissions: GitHub's 403."""
    from lambda_fn.github import GitHubClient

    ours = app_client(app, Clock())
    token = ours.token("repos/octo-org/app/actions/runners", False)
    session = requests.Session()
    for path in ("repos/octo-org/other/actions/runners", "repos/octo-org/app/actions/jobs/1"):
        gh = GitHubClient(GITHUB_API, lambda _p, _f: token, session=session)
        with pytest.raises(GitHubPermanentError) as refused:
            gh._request("GET", path, expected=(200,))
        assert refused.value.status == 403, path
        assert "Resource not accessible by integration" in str(refused.value)


@pytest.mark.parametrize(
    ("path", "repositories", "permissions"),
    [
        ("repos/octo-org/app/actions/runners/generate-jitconfig", ["app"],
         {"administration": "write"}),
        ("orgs/octo-org/actions/runners/generate-jitconfig", None,
         {"organization_self_hosted_runners": "write"}),
        ("repos/octo-org/app/actions/runs/7", ["app"], {"actions": "read"}),
        ("repos/octo-org/app/actions/jobs/7", ["app"], {"actions": "read"}),
        ("repos/octo-org/app/git/ref/heads/main", ["app"], {"contents": "read"}),
        ("repos/octo-org/app/compare/a...b?per_page=1", ["app"], {"contents": "read"}),
        ("repos/octo-org/app/hooks/5/deliveries?per_page=100", ["app"],
         {"repository_hooks": "read"}),
        ("repos/octo-org/app/hooks/5/deliveries/9/attempts", ["app"],
         {"repository_hooks": "write"}),
    ],
)  # fmt: skip
def test_each_call_gets_a_token_for_its_repository_and_one_permission(
    app: GitHubAppDouble, path: str, repositories: list[str] | None, permissions: dict[str, str]
) -> None:
    ours = app_client(app, Clock())
    ours.token(path, False)
    ((_, request),) = app.token_requests
    expected: dict[str, Any] = {"permissions": permissions}
    if repositories is not None:
        expected["repositories"] = repositories
    assert request == expected


def test_a_call_without_a_known_permission_gets_no_token(app: GitHubAppDouble) -> None:
    ours = app_client(app, Clock())
    with pytest.raises(GitHubPermanentError, match="no installation token permission"):
        ours.token("repos/octo-org/app/contents/README.md", False)
    assert app.token_requests == []


def test_org_runners_use_the_organisation_installation(
    fake_aws: FakeAws, github: FakeGitHub, app: GitHubAppDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_SCOPE", "org")
    status, _ = deliver(queued_payload(job_id=3))
    assert status == 200
    assert [c.request.url for c in calls(github, "GET", "/installation")] == [
        f"{GITHUB_API}/orgs/octo-org/installation"
    ]
    assert github.jit_requests[0]["url"].startswith(f"{GITHUB_API}/orgs/octo-org/")


def test_a_token_is_replaced_shortly_before_it_expires(app: GitHubAppDouble) -> None:
    clock = Clock()
    ours = app_client(app, clock)
    first = ours.token("repos/octo-org/app/actions/runners", False)
    clock.now += 3600 - TOKEN_REFRESH_MARGIN_SECONDS - 1
    assert ours.token("repos/octo-org/app/actions/runners/5", False) == first
    clock.now += 2
    second = ours.token("repos/octo-org/app/actions/runners", False)
    assert second != first
    assert app.minted == [first, second]


def test_401_mints_a_new_token_once(
    fake_aws: FakeAws, github: FakeGitHub, app: GitHubAppDouble
) -> None:
    """GitHub stops accepting the cached token (revoked, or our clock is off): one 401,
    then the installation is looked up again and a new token minted."""
    assert deliver(queued_payload(job_id=10))[0] == 200
    app.expire_tokens()
    status, body = deliver(queued_payload(job_id=11))
    assert (status, body["status"]) == (200, "launched")
    assert len(app.minted) == 2
    assert github.authorizations == [f"Bearer {t}" for t in app.minted]
    jit = calls(github, "POST", "generate-jitconfig")
    assert [c.response.status_code for c in jit] == [201, 401, 201]


def test_a_token_github_keeps_refusing_fails_after_one_refresh(app: GitHubAppDouble) -> None:
    clock = Clock()
    ours = app_client(app, clock)
    from lambda_fn.github import GitHubClient

    gh = GitHubClient(GITHUB_API, ours.token, session=requests.Session())
    gh.list_runners("repos/octo-org/app")
    app.token_lifetime_seconds = 0  # every new token is already expired at GitHub
    app.expire_tokens()
    with pytest.raises(GitHubPermanentError) as failure:
        gh.list_runners("repos/octo-org/app")
    assert failure.value.status == 401
    assert len(app.minted) == 2  # one refresh, not a loop


def test_not_installed_is_a_clear_permanent_error_and_the_webhook_answers_502(
    fake_aws: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_retry_queue(fake_aws, monkeypatch)
    use_github_app(fake_aws, github, monkeypatch, install=False)
    status, body = deliver(queued_payload(job_id=20))
    assert status == 502
    assert body["status"] == "error"
    assert f"the GitHub App {APP_ID} is not installed on repository octo-org/app" in body["reason"]
    assert github.jit_requests == []
    assert fake_aws.tasks() == []
    # Parked for an operator (install the App, then replay), like any permanent failure.
    parked = fake_aws.messages(fake_aws.dead_letter_queue_url)
    assert [m["job"]["job_id"] for m in parked] == [20]


def test_a_repository_the_installation_was_not_given_is_not_installed(
    app: GitHubAppDouble,
) -> None:
    app.installations[0].repositories = ["app"]
    ours = app_client(app, Clock())
    ours.token("repos/octo-org/app/actions/runners", False)
    with pytest.raises(GitHubAppNotInstalledError, match="not among those it was given"):
        ours.token("repos/octo-org/secret/actions/runners", False)


def test_an_uninstalled_app_is_looked_up_again_once(app: GitHubAppDouble) -> None:
    ours = app_client(app, Clock())
    ours.token("repos/octo-org/app/actions/runners", False)
    app.installations.clear()
    reinstalled = app.install("octo-org")
    # The cached installation id is gone at GitHub (404 on access_tokens): a new lookup.
    ours.token("repos/octo-org/app/actions/runners", True)
    assert ours.installation_id("repos/octo-org/app") == reinstalled.id


def test_a_missing_permission_is_githubs_403(app: GitHubAppDouble) -> None:
    app.installations[0].permissions.pop("administration")
    from lambda_fn.github import GitHubClient

    gh = GitHubClient(GITHUB_API, app_client(app, Clock()).token, session=requests.Session())
    # Asking for a permission the installation lacks is GitHub's 422 at token creation.
    with pytest.raises(GitHubPermanentError, match="administration: write") as failure:
        gh.list_runners("repos/octo-org/app")
    assert failure.value.status == 422


def test_the_retry_consumer_uses_the_same_tokens(
    fake_aws: FakeAws, github: FakeGitHub, app: GitHubAppDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn.retry import handler as retry_handler
    from tests.kit.events import LambdaContext

    use_retry_queue(fake_aws, monkeypatch)
    github.set_jit(status=503, json={"message": "unavailable"})
    assert deliver(queued_payload(job_id=30))[0] == 202
    github.set_jit(callback=github.jit_callback)
    messages = fake_aws.messages(fake_aws.retry_queue_url)
    event = {
        "Records": [{"messageId": "m1", "body": json.dumps(m), "attributes": {}} for m in messages]
    }
    assert retry_handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert len(fake_aws.tasks()) == 1
    # The webhook's runners token, reused by the retry path (which also reads the job:
    # a token of its own, with actions: read).
    scopes = [request["permissions"] for _, request in app.token_requests]
    assert scopes.count({"administration": "write"}) == 1
    assert set(map(json.dumps, scopes)) <= {
        json.dumps({"administration": "write"}),
        json.dumps({"actions": "read"}),
    }


def test_the_reconciler_redelivers_from_the_apps_own_webhook(
    fake_aws: FakeAws, github: FakeGitHub, app: GitHubAppDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.kit.reconcile import delivery, reconcile

    monkeypatch.setenv("GITHUB_HOOK_PATH", "app/hook")
    github.deliveries = [
        delivery(1, "a", 502, hook_id=APP_HOOK_ID),
        delivery(2, "b", 200, hook_id=APP_HOOK_ID),
    ]
    report = reconcile()
    assert github.redelivered == [1]
    assert report["redelivered"] == 1
    assert report.get("step_errors", 0) == 0
    listed = calls(github, "GET", "/app/hook/deliveries")
    assert listed and all(c.response.status_code == 200 for c in listed)
    assert app.accepted_jwts  # the App's webhook is read with the JWT, not a token


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("KMSInvalidStateException", SecretMissingError),  # PendingImport: setup not run
        ("AccessDeniedException", SecretMissingError),
        ("ThrottlingException", SecretUnavailableError),
    ],
)
def test_kms_failures_are_told_apart(code: str, error: type[Exception]) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    ours = GitHubApp(GITHUB_API, APP_ID, arn, kms=kms)
    with Stubber(kms) as stub:
        stub.add_client_error("sign", code)
        with pytest.raises(error) as failure:
            ours.jwt()
    if code == "KMSInvalidStateException":
        assert "fargate-runners setup --app-id" in str(failure.value)


def test_a_pending_import_key_answers_500_misconfigured(
    fake_aws: FakeAws, github: FakeGitHub, app: GitHubAppDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto signs with any key regardless of state, so the state error is injected."""
    from lambda_fn import aws

    kms = aws.client("kms")
    with Stubber(kms) as stub:
        stub.add_client_error("sign", "KMSInvalidStateException")
        status, body = deliver(queued_payload(job_id=40))
    assert (status, body["reason"]) == (500, "dispatcher is misconfigured; see its logs")
    assert fake_aws.tasks() == []


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("repos/o/r/actions/runners?per_page=100&page=1", "repos/o/r"),
        ("orgs/o/actions/runners/generate-jitconfig", "orgs/o"),
        ("repos/o/r", "repos/o/r"),
    ],
)
def test_installation_resource(path: str, resource: str) -> None:
    assert installation_resource(path) == resource


@pytest.mark.parametrize("path", ["meta", "user", "repos/o", "orgs/"])
def test_a_path_no_installation_serves_is_refused(path: str) -> None:
    with pytest.raises(GitHubPermanentError, match="no GitHub App installation"):
        installation_resource(path)


def test_the_pat_path_is_unchanged(fake_aws: FakeAws, github: FakeGitHub) -> None:
    assert deliver(queued_payload(job_id=50))[0] == 200
    assert github.authorizations == [f"Bearer {PAT}"]
    assert calls(github, "GET", "/installation") == []


def test_the_lambda_has_no_jwt_or_crypto_library() -> None:
    """The JWT is built by hand and KMS signs it: nothing in the asset can hold a key."""
    import ast
    from pathlib import Path

    import lambda_fn

    package = Path(lambda_fn.__file__).parent
    imported: set[str] = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    requirements = (package / "requirements.txt").read_text().lower()
    for library in ("cryptography", "jwt", "jose", "jwcrypto", "authlib"):
        assert library not in imported
        assert library not in requirements
