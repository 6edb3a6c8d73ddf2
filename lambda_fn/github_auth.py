"""Which bearer token a GitHub request carries: the PAT, or a GitHub App's.

``token_provider(settings)`` is the one call every path (webhook, retry consumer,
reconciler, completed-job cleanup) uses, through :func:`github_client`:

* ``GITHUB_AUTH=pat`` (default): the PAT from Secrets Manager, as before.
* ``GITHUB_AUTH=app``: for a request to ``repos/O/R/...`` or ``orgs/O/...``, the
  installation access token of the App's installation there; for ``app/...`` (the
  App's own webhook deliveries), the App's JWT.

The App's private key never leaves KMS: it was imported into an asymmetric
``RSA_2048`` ``SIGN_VERIFY`` key (``fargate-runners setup``, docs/github-app.md), and the
JWT is signed with ``kms:Sign`` (``RSASSA_PKCS1_V1_5_SHA_256`` over the raw
``header.payload`` bytes: RS256, RFC 7518 section 3.3). No JWT or crypto library here.

What GitHub documents and this module relies on:

* JWT: ``iat`` 60 s in the past (clock drift), ``exp`` at most 10 minutes ahead, ``iss``
  the App ID or client ID, ``alg`` RS256
  (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app).
* The installation of a repository or organisation: ``GET /repos/{o}/{r}/installation``,
  ``GET /orgs/{org}/installation`` (JWT), 404 where the App is not installed.
* ``POST /app/installations/{id}/access_tokens`` (JWT): 201 with ``token`` and
  ``expires_at`` (one hour); an expired token is answered 401
  (https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app).

* The token request's ``repositories`` (names, up to 500) and ``permissions``
  (``{name: read|write}``) narrow the token; omitted, it has every repository and
  every permission of the installation. Requesting more than the installation has
  answers 422 (same page).

Each token is scoped to one use (:func:`token_scope`): the path's repository (none
for ``orgs/...``, the organisation's runners) and only the permission that kind of
call needs, per GitHub's "Permissions required for GitHub Apps"
(https://docs.github.com/en/rest/authentication/permissions-required-for-github-apps):
``administration: write`` for repository runners and JIT configs,
``organization_self_hosted_runners: write`` for organisation ones, ``actions: read``
for runs and jobs, ``contents: read`` for git refs, tags and compare,
``deployments: read``, ``repository_hooks``/``organization_hooks`` (read to list
deliveries, write to redeliver). A path outside these is refused before any token is
minted (fail closed).

Caches live in the warm process only (never logged, never written anywhere): the
installation id per repository/organisation, the token per (installation, repository,
permissions) until ``TOKEN_REFRESH_MARGIN`` before ``expires_at`` (tokens live one
hour, so a repository's launches mint about three tokens an hour: runners, runs/jobs,
refs), and the JWT until shortly before its ``exp``. A 401 asks for a fresh token once
(``GitHubClient``): the installation is looked up again and a new token minted.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from lambda_fn import aws
from lambda_fn.config import Settings
from lambda_fn.errors import (
    GitHubPermanentError,
    SecretMissingError,
    SecretUnavailableError,
)
from lambda_fn.github import GitHubClient, TokenProvider
from lambda_fn.secrets import get_secret_string

#: KMS's name for RS256: RSASSA-PKCS1-v1_5 with SHA-256.
SIGNING_ALGORITHM = "RSASSA_PKCS1_V1_5_SHA_256"
#: GitHub's advice: iat 60 s in the past, against clock drift.
JWT_BACKDATE_SECONDS = 60
#: exp - iat = 10 minutes, so exp is 9 minutes ahead: under GitHub's 10-minute cap even
#: with our clock up to a minute behind GitHub's.
JWT_LIFETIME_SECONDS = 600
#: A cached JWT is signed again this long before its exp.
JWT_REFRESH_MARGIN_SECONDS = 120
#: An installation token (valid one hour) is replaced this long before ``expires_at``,
#: so a token handed out never expires during the calls of one invocation.
TOKEN_REFRESH_MARGIN_SECONDS = 300
#: KMS errors that may pass by themselves; any other means the key is unusable.
_KMS_TRANSIENT = frozenset(
    {"ThrottlingException", "KMSInternalException", "DependencyTimeoutException"}
)


class GitHubAppNotInstalledError(GitHubPermanentError):
    """The App has no installation covering this repository or organisation."""


def token_provider(settings: Settings) -> TokenProvider:
    """The bearer token for each GitHub request, as ``settings.github_auth`` says."""
    if settings.github_auth == "app":
        return github_app(
            settings.github_api_url,
            settings.github_app_id,
            settings.github_app_key_arn,
            settings.github_timeout_budget_seconds,
        ).token

    def pat(path: str, fresh: bool) -> str:
        return get_secret_string(
            settings.github_token_secret_arn, settings.secrets_max_age_seconds, force=fresh
        )

    return pat


def github_client(
    settings: Settings, budget_seconds: float | None = None, *, shared_budget: bool = False
) -> GitHubClient:
    """A client whose token is the PAT or the GitHub App's (:func:`token_provider`).

    ``budget_seconds`` caps one call's time including retries (default: the
    configured ``GITHUB_TIMEOUT_BUDGET_SECONDS``); with ``shared_budget`` it
    caps all the client's calls together.
    """
    return GitHubClient(
        settings.github_api_url,
        token_provider(settings),
        budget_seconds=budget_seconds or settings.github_timeout_budget_seconds,
        shared_budget=shared_budget,
    )


@lru_cache(maxsize=4)
def github_app(api_url: str, app_id: str, key_arn: str, budget_seconds: float) -> GitHubApp:
    """One ``GitHubApp`` per App and key in this process, so its caches outlive a call."""
    return GitHubApp(api_url, app_id, key_arn, budget_seconds=budget_seconds)


def installation_resource(path: str) -> str:
    """``repos/O/R`` or ``orgs/O``: the account whose installation serves ``path``."""
    parts = path.split("?", 1)[0].split("/")
    if len(parts) >= 3 and parts[0] == "repos" and parts[1] and parts[2]:
        return "/".join(parts[:3])
    if len(parts) >= 2 and parts[0] == "orgs" and parts[1]:
        return "/".join(parts[:2])
    raise GitHubPermanentError(
        f"{path.split('?', 1)[0][:100]}: no GitHub App installation serves this path"
    )


#: At most this many tokens are kept (the expired ones go first, then the oldest).
MAX_CACHED_TOKENS = 256

#: (repository name or None, sorted (permission, level) pairs): what one token may do.
TokenScope = tuple[str | None, tuple[tuple[str, str], ...]]

#: Path (after ``repos/O/R/`` or ``orgs/O/``) -> permission for a repository, for an
#: organisation (None: no such organisation endpoint), and level.
_SCOPES: tuple[tuple[re.Pattern[str], str, str | None, str], ...] = (
    (re.compile(r"actions/runners(/.*)?"), "administration",
     "organization_self_hosted_runners", "write"),
    (re.compile(r"actions/(runs|jobs)/.+"), "actions", None, "read"),
    (re.compile(r"(git/(ref|refs|tags)|compare)/.+"), "contents", None, "read"),
    (re.compile(r"deployments(/.*)?"), "deployments", None, "read"),
    (re.compile(r"hooks/\d+/deliveries/\d+/attempts"), "repository_hooks",
     "organization_hooks", "write"),
    (re.compile(r"hooks(/.*)?"), "repository_hooks", "organization_hooks", "read"),
)  # fmt: skip


def token_scope(path: str) -> TokenScope:
    """The repository and the one permission an installation token for ``path`` needs.

    Raises ``GitHubPermanentError`` for a path no rule covers: no token is minted
    with more than a known call needs.
    """
    parts = path.split("?", 1)[0].split("/")
    repository: str | None
    if len(parts) >= 4 and parts[0] == "repos":
        repository, rest = parts[2], "/".join(parts[3:])
    elif len(parts) >= 3 and parts[0] == "orgs":
        repository, rest = None, "/".join(parts[2:])
    else:
        rest = ""
        repository = None
    for pattern, repo_permission, org_permission, level in _SCOPES:
        if rest and pattern.fullmatch(rest):
            permission = repo_permission if repository is not None else org_permission
            if permission is not None:
                return repository, ((permission, level),)
    raise GitHubPermanentError(
        f"{path.split('?', 1)[0][:100]}: no installation token permission is defined for "
        "this call (lambda_fn.github_auth.token_scope)"
    )


@dataclass
class _Cached:
    value: str = field(repr=False)
    refresh_at: float


class GitHubApp:
    """A GitHub App whose JWT KMS signs; hands out installation tokens per account."""

    def __init__(
        self,
        api_url: str,
        app_id: str,
        key_arn: str,
        *,
        kms: Any = None,
        session: Any = None,
        clock: Callable[[], float] = time.time,
        budget_seconds: float = 6.0,
    ) -> None:
        self.app_id = app_id
        self.key_arn = key_arn
        self.api_url = api_url
        self._kms = kms
        self._clock = clock
        #: The App's own calls (installation lookup, token): authenticated by the JWT.
        self.api = GitHubClient(
            api_url, self._jwt_for, session=session, budget_seconds=budget_seconds
        )
        self._lock = threading.RLock()
        self._jwt: _Cached | None = None
        self._installations: dict[str, int] = {}
        self._tokens: dict[tuple[int, TokenScope], _Cached] = {}

    def token(self, path: str, fresh: bool) -> str:
        """The JWT for ``app/...``; else an installation token scoped to this call."""
        if path == "app" or path.startswith("app/"):
            return self.jwt(fresh=fresh)
        resource = installation_resource(path)
        scope = token_scope(path)
        with self._lock:
            if fresh:
                self._forget(resource)
            installation_id = self.installation_id(resource)
            cached = self._tokens.get((installation_id, scope))
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            return self._new_token(resource, installation_id, scope)

    def installation(self, resource: str) -> dict[str, Any]:
        """The installation object (id, account, permissions) on ``repos/O/R`` or ``orgs/O``."""
        try:
            found = self.api.get_installation(resource)
        except GitHubPermanentError as exc:
            if exc.status == 404:
                message = not_installed(self.app_id, resource)
                raise GitHubAppNotInstalledError(message, 404) from None
            raise
        if not isinstance(found.get("id"), int):
            raise GitHubPermanentError(f"GET {resource}/installation answered without an id")
        return found

    def installation_id(self, resource: str) -> int:
        with self._lock:
            if resource not in self._installations:
                self._installations[resource] = int(self.installation(resource)["id"])
            return self._installations[resource]

    def create_token(
        self,
        installation_id: int,
        *,
        repositories: list[str] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A new installation token (``token``, ``expires_at``, ``permissions``), limited to
        ``repositories`` (names) and ``permissions`` where given."""
        answer = self.api.create_installation_token(
            installation_id, repositories=repositories, permissions=permissions
        )
        if not isinstance(answer.get("token"), str) or not answer["token"]:
            raise GitHubPermanentError("access_tokens answered without a token", 201)
        return answer

    def jwt(self, *, fresh: bool = False) -> str:
        """The App's JWT (cached until ``JWT_REFRESH_MARGIN_SECONDS`` before its exp)."""
        with self._lock:
            now = self._clock()
            if not fresh and self._jwt is not None and now < self._jwt.refresh_at:
                return self._jwt.value
            issued = int(now) - JWT_BACKDATE_SECONDS
            expires = issued + JWT_LIFETIME_SECONDS
            token = self._sign_jwt({"iat": issued, "exp": expires, "iss": self.app_id})
            self._jwt = _Cached(token, expires - JWT_REFRESH_MARGIN_SECONDS)
            return token

    def _jwt_for(self, path: str, fresh: bool) -> str:
        return self.jwt(fresh=fresh)

    def _new_token(self, resource: str, installation_id: int, scope: TokenScope) -> str:
        repository, permissions = scope
        repositories = None if repository is None else [repository]
        wanted = dict(permissions)
        try:
            answer = self.create_token(
                installation_id, repositories=repositories, permissions=wanted
            )
        except GitHubPermanentError as exc:
            if exc.status == 422:
                raise GitHubPermanentError(
                    f"GitHub refused a token for {resource} with "
                    + ", ".join(f"{name}: {level}" for name, level in permissions)
                    + (f" on repository {repository}" if repository else "")
                    + ": give the App that permission (its settings, 'Permissions') and accept "
                    "it on the installation, and give the installation that repository",
                    422,
                ) from None
            if exc.status != 404:
                raise
            # The installation is gone (uninstalled, or reinstalled with a new id): once more.
            self._forget(resource)
            installation_id = self.installation_id(resource)
            answer = self.create_token(
                installation_id, repositories=repositories, permissions=wanted
            )
        token = str(answer["token"])
        self._keep(
            (installation_id, scope), _Cached(token, self._refresh_at(answer.get("expires_at")))
        )
        return token

    def _keep(self, key: tuple[int, TokenScope], cached: _Cached) -> None:
        """Cache a token; beyond ``MAX_CACHED_TOKENS`` drop the expired, then the oldest."""
        self._tokens[key] = cached
        if len(self._tokens) > MAX_CACHED_TOKENS:
            now = self._clock()
            for stale in [k for k, v in self._tokens.items() if v.refresh_at <= now]:
                del self._tokens[stale]
            while len(self._tokens) > MAX_CACHED_TOKENS:
                del self._tokens[next(iter(self._tokens))]

    def _refresh_at(self, expires_at: Any) -> float:
        """When to replace a token; a token without a readable ``expires_at`` is not kept."""
        try:
            expires = datetime.fromisoformat(str(expires_at).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
        return expires - TOKEN_REFRESH_MARGIN_SECONDS

    def _forget(self, resource: str) -> None:
        installation_id = self._installations.pop(resource, None)
        if installation_id is not None:
            for key in [k for k in self._tokens if k[0] == installation_id]:
                del self._tokens[key]

    def _sign_jwt(self, claims: dict[str, Any]) -> str:
        header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")))
        payload = _b64url(json.dumps(claims, separators=(",", ":")))
        signing_input = f"{header}.{payload}"
        signature = self._kms_sign(signing_input.encode())
        return f"{signing_input}.{_b64url(signature)}"

    def _kms_sign(self, message: bytes) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        kms = self._kms or aws.client("kms")
        try:
            answer = kms.sign(
                KeyId=self.key_arn,
                Message=message,
                MessageType="RAW",
                SigningAlgorithm=SIGNING_ALGORITHM,
            )
        except ClientError as exc:
            code = aws.error_code(exc)
            if code in _KMS_TRANSIENT:
                raise SecretUnavailableError(f"KMS cannot sign the App's JWT now: {code}") from None
            raise SecretMissingError(
                f"the GitHub App key {self.key_arn} cannot sign ({code}): "
                + (
                    "import the App's private key: fargate-runners setup --app-id ... "
                    "--private-key app.pem"
                    if code == "KMSInvalidStateException"
                    else "check the key exists, is enabled, is RSA_2048 SIGN_VERIFY, and that "
                    "this function may kms:Sign with it"
                )
            ) from None
        except BotoCoreError as exc:
            raise SecretUnavailableError(
                f"KMS could not sign the App's JWT now: {type(exc).__name__}"
            ) from None
        return bytes(answer["Signature"])


def not_installed(app_id: str, resource: str) -> str:
    """What to do when the App is not installed where the runners register."""
    kind, _, name = resource.partition("/")
    where = f"repository {name}" if kind == "repos" else f"organisation {name}"
    return (
        f"the GitHub App {app_id} is not installed on {where}"
        + (" (or the repository is not among those it was given)" if kind == "repos" else "")
        + ": install it there (its settings page, 'Install App') with the 'Self-hosted runners' "
        "permission, or remove the repository from ALLOWED_REPOSITORIES"
    )


def _b64url(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def reset() -> None:
    """Forget the Apps and their cached tokens (tests)."""
    github_app.cache_clear()
