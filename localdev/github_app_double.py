"""GitHub's side of a GitHub App, plugged into the one GitHub model
(``localdev.github_model.GitHubModel.app``, so every transport serves it): JWT checks,
installations, installation tokens.

Built from GitHub's documentation:

* A JWT must be RS256, signed by the App's key, ``iss`` the App ID or client ID, ``exp``
  no more than 10 minutes ahead and not past; anything else is 401
  (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app).
* ``GET /repos/{o}/{r}/installation`` and ``GET /orgs/{org}/installation`` (JWT): 200 with
  the installation (id, account, permissions, repository_selection), 404 where the App is
  not installed (for a repository: nor given access to it)
  (https://docs.github.com/en/rest/apps/apps).
* ``POST /app/installations/{id}/access_tokens`` (JWT): 201 ``{"token", "expires_at",
  "permissions", "repository_selection"}``, the token valid one hour; 404 for an unknown
  installation. An expired token is answered 401 (same page).
* ``GET /app`` (JWT): the App, its ``permissions`` and ``events``.
* ``GET`` / ``PATCH /app/hook/config`` (JWT): the App's own webhook (``url``,
  ``content_type``, ``insecure_ssl``, ``secret`` shown as ``********``)
  (https://docs.github.com/en/rest/apps/webhooks).
* ``POST /app/installations/{id}/access_tokens`` takes ``repositories`` (names, not
  ``owner/name``; at most 500) and ``permissions`` (``{name: read|write}``), both
  optional: omitted, the token gets every repository / permission of the installation.
  A repository the installation cannot reach answers 422 "There is at least one
  repository that does not exist or is not accessible to the parent installation."
  (the message as GitHub sends it, quoted in tibdex/github-app-token#105); a permission
  above the installation's answers 422 "The permissions requested are not granted to
  this installation." (same page: "cannot be granted ... that the installation was not
  granted"). The answer lists the token's ``permissions`` and ``repositories``.
* An installation token works only on the accounts/repositories of its installation,
  and of its own ``repositories`` when it was given some, and within its (possibly
  narrowed) permissions: anything else is 403 "Resource not accessible by integration"
  (GitHub's answer to a token lacking access or permission: "Permissions required for
  GitHub Apps", https://docs.github.com/en/rest/authentication/permissions-required-for-github-apps;
  the message as seen in github.com/orgs/community/discussions/69154); an unknown or
  expired token is 401 "Bad credentials". Every token request is kept in
  ``token_requests`` (installation id and body) for tests to check.
* ``GET /apps/{app_slug}``: "If the GitHub App you specify is public, you can access this
  endpoint without authenticating. If ... private, you must authenticate"
  (https://docs.github.com/en/rest/apps/apps#get-an-app): without a token a private App
  answers 404.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The permission a repository / organisation endpoint needs from an installation token.
_PERMISSIONS: list[tuple[re.Pattern[str], str, str | None]] = [
    (re.compile(r"^actions/runners"), "administration", "organization_self_hosted_runners"),
    (re.compile(r"^actions/(jobs|runs)/"), "actions", None),
    (re.compile(r"^(git/|compare/)"), "contents", None),
    (re.compile(r"^hooks"), "repository_hooks", "organization_hooks"),
]
_SCOPED = re.compile(
    r"^/(?:repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)|orgs/(?P<org>[^/]+))(?:/(?P<rest>.*))?$"
)
_INSTALLATION = re.compile(r"^/(?:repos/[^/]+/[^/]+|orgs/[^/]+)/installation$")
_ACCESS_TOKENS = re.compile(r"^/app/installations/(?P<id>\d+)/access_tokens$")

Answer = tuple[int, Any]


def _error(status: int, message: str) -> Answer:
    return status, {
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": str(status),
    }


@dataclass
class Installation:
    """An installation of the App on one account (``login``)."""

    id: int
    login: str
    kind: str  # "Organization" or "User"
    permissions: dict[str, str]
    #: None: all the account's repositories; else only these repository names.
    repositories: list[str] | None = None

    def view(self, app_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "app_id": int(app_id) if app_id.isdigit() else 1,
            "account": {"login": self.login, "type": self.kind},
            "target_type": self.kind,
            "permissions": dict(self.permissions),
            "repository_selection": "all" if self.repositories is None else "selected",
        }

    def covers(self, owner: str, repo: str | None) -> bool:
        if owner.lower() != self.login.lower():
            return False
        return repo is None or self.repositories is None or repo in self.repositories


@dataclass
class GitHubAppDouble:
    """One GitHub App: its public key (DER SubjectPublicKeyInfo), installations, tokens."""

    app_id: str
    public_key_der: bytes
    client_id: str = "Iv23liTESTCLIENTID"
    installations: list[Installation] = field(default_factory=list)
    events: list[str] = field(default_factory=lambda: ["workflow_job"])
    #: The App's own webhook configuration (``secret`` is kept, shown masked).
    hook_config: dict[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    token_lifetime_seconds: int = 3600
    #: A public App can be installed by anyone (its page, ``GET /apps/{slug}`` unauthenticated).
    public: bool = False
    slug: str = "fargate-runners"
    #: (installation id, request body or None) of every token request, in order.
    token_requests: list[tuple[int, Any]] = field(default_factory=list)
    #: Claims of every JWT GitHub accepted, and every installation token it minted.
    accepted_jwts: list[dict[str, Any]] = field(default_factory=list)
    minted: list[str] = field(default_factory=list)
    #: token -> (installation id, expires, its repositories or None = all, its permissions).
    _tokens: dict[str, tuple[int, float, list[str] | None, dict[str, str]]] = field(
        default_factory=dict, repr=False
    )
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(50_000), repr=False)

    def install(
        self,
        login: str,
        *,
        kind: str = "Organization",
        permissions: dict[str, str] | None = None,
        repositories: list[str] | None = None,
    ) -> Installation:
        """Install the App on an account, by default with what the runners need."""
        granted = permissions if permissions is not None else self.runner_permissions(kind)
        installation = Installation(next(self._ids), login, kind, granted, repositories)
        self.installations.append(installation)
        return installation

    @staticmethod
    def runner_permissions(kind: str = "Organization") -> dict[str, str]:
        granted = {"administration": "write", "actions": "read", "contents": "read",
                   "metadata": "read", "repository_hooks": "write"}  # fmt: skip
        if kind == "Organization":
            granted |= {"organization_self_hosted_runners": "write", "organization_hooks": "write"}
        return granted

    def expire_tokens(self) -> None:
        """Every token minted so far is past its ``expires_at`` (GitHub: 401 from now on)."""
        now = self.clock()
        self._tokens = {token: (t[0], now - 1, t[2], t[3]) for token, t in self._tokens.items()}

    # -- answers ----------------------------------------------------------------------

    def answer(self, method: str, path: str, authorization: str, body: Any = None) -> Answer | None:
        """GitHub's answer to an App endpoint (JWT-authenticated), or None for other paths."""
        if method == "GET" and _INSTALLATION.match(path):
            return self._with_jwt(authorization, lambda: self._installation(path))
        if method == "POST" and (m := _ACCESS_TOKENS.match(path)):
            return self._with_jwt(authorization, lambda: self._access_token(int(m["id"]), body))
        if method == "GET" and path == "/app":
            return self._with_jwt(authorization, self._app)
        if path == "/app/hook/config" and method in ("GET", "PATCH"):
            return self._with_jwt(authorization, lambda: self._hook_config(method, body))
        return None

    def _hook_config(self, method: str, body: Any) -> Answer:
        if method == "PATCH":
            if not isinstance(body, dict):
                return _error(422, "Invalid request")
            keys = ("url", "content_type", "secret", "insecure_ssl")
            self.hook_config |= {k: str(v) for k, v in body.items() if k in keys}
        shown = dict(self.hook_config)
        if shown.get("secret"):
            shown["secret"] = "********"  # noqa: S105 - GitHub's mask
        return 200, shown

    def refusal(self, method: str, path: str, authorization: str) -> Answer | None:
        """GitHub's 401/403 for a request the App makes, or None when it is let through:
        ``/app/...`` (the App's own webhook) wants the JWT, the rest an installation token."""
        if path.startswith("/app/"):
            return self.jwt_refusal(authorization)
        return self.token_refusal(method, path, authorization)

    def knows_token(self, token: str) -> bool:
        """Whether ``token`` is a live installation token of this App."""
        known = self._tokens.get(token)
        return known is not None and self.clock() < known[1]

    def token_refusal(self, method: str, path: str, authorization: str) -> Answer | None:
        """None when ``authorization`` is a live installation token allowed on ``path``;
        else GitHub's 401 (unknown/expired token, or a JWT) or 403 (outside its scope)."""
        token = _bearer(authorization)
        known = self._tokens.get(token)
        if known is None or self.clock() >= known[1]:
            return _error(401, "Bad credentials")
        installation_id, _, repositories, permissions = known
        installation = next(i for i in self.installations if i.id == installation_id)
        m = _SCOPED.match(path)
        if m is None:
            return _error(403, "Resource not accessible by integration")
        owner = m["org"] or m["owner"]
        if not installation.covers(owner, None if m["org"] else m["repo"]):
            return _error(403, "Resource not accessible by integration")
        if m["repo"] and repositories is not None and m["repo"] not in repositories:
            return _error(403, "Resource not accessible by integration")
        needed = self._permission(bool(m["org"]), m["rest"] or "")
        level = permissions.get(needed or "", "")
        if needed is not None and not (level == "write" or (level == "read" and method == "GET")):
            return _error(403, "Resource not accessible by integration")
        return None

    def jwt_refusal(self, authorization: str) -> Answer | None:
        """None for a JWT GitHub accepts (claims recorded); else its 401."""
        token = _bearer(authorization)
        parts = token.split(".")
        if len(parts) != 3:
            return _error(401, "A JSON web token could not be decoded")
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except ValueError:
            return _error(401, "A JSON web token could not be decoded")
        if header.get("alg") != "RS256" or not self._signed(f"{parts[0]}.{parts[1]}", signature):
            return _error(401, "A JSON web token could not be decoded")
        now = self.clock()
        if str(claims.get("iss")) not in (self.app_id, self.client_id):
            return _error(401, "'Issuer' claim ('iss') must be an Integer")
        if not isinstance(claims.get("exp"), int) or claims["exp"] > now + 600:
            return _error(401, "'Expiration time' claim ('exp') is too far in the future")
        if claims["exp"] <= now:
            return _error(401, "'Expiration time' claim ('exp') is in the past")
        if not isinstance(claims.get("iat"), int) or claims["iat"] > now + 60:
            return _error(401, "'Issued at' claim ('iat') must be in the past")
        self.accepted_jwts.append({"header": header, **claims})
        return None

    def _with_jwt(self, authorization: str, then: Callable[[], Answer]) -> Answer:
        return self.jwt_refusal(authorization) or then()

    def _installation(self, path: str) -> Answer:
        m = _SCOPED.match(path.removesuffix("/installation"))
        assert m is not None
        owner = m["org"] or m["owner"]
        for installation in self.installations:
            if (m["org"] is None or installation.kind == "Organization") and installation.covers(
                owner, None if m["org"] else m["repo"]
            ):
                return 200, installation.view(self.app_id)
        return _error(404, "Not Found")

    def _access_token(self, installation_id: int, request: Any = None) -> Answer:
        self.token_requests.append((installation_id, request))
        installation = next((i for i in self.installations if i.id == installation_id), None)
        if installation is None:
            return _error(404, "Not Found")
        request = request if isinstance(request, dict) else {}
        repositories = request.get("repositories")
        if repositories is not None and (
            not isinstance(repositories, list)
            or not 0 < len(repositories) <= 500
            or not all(
                isinstance(r, str) and "/" not in r and installation.covers(installation.login, r)
                for r in repositories
            )
        ):
            return _error(
                422,
                "There is at least one repository that does not exist or is not "
                "accessible to the parent installation.",
            )
        granted = dict(installation.permissions)
        wanted = request.get("permissions")
        if wanted is not None:
            if not isinstance(wanted, dict) or not all(
                level in ("read", "write")
                and (granted.get(name) == "write" or granted.get(name) == level)
                for name, level in wanted.items()
            ):
                return _error(
                    422, "The permissions requested are not granted to this installation."
                )
            granted = {str(name): str(level) for name, level in wanted.items()}
        token = "ghs_" + secrets.token_urlsafe(27)
        expires = self.clock() + self.token_lifetime_seconds
        self._tokens[token] = (installation_id, expires, repositories, granted)
        self.minted.append(token)
        expires_at = datetime.fromtimestamp(int(expires), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        selected = repositories is not None or installation.repositories is not None
        body: dict[str, Any] = {
            "token": token,
            "expires_at": expires_at,
            "permissions": granted,
            "repository_selection": "selected" if selected else "all",
        }
        if repositories is not None:
            body["repositories"] = [{"name": r, "full_name": f"{installation.login}/{r}"}
                                    for r in repositories]  # fmt: skip
        return 201, body

    def app_by_slug(self, slug: str, authorization: str) -> Answer:
        """``GET /apps/{slug}``: public Apps to anyone, private ones only with a token."""
        if slug != self.slug or (not self.public and not _bearer(authorization)):
            return _error(404, "Not Found")
        return 200, {"slug": self.slug, "client_id": self.client_id, "events": self.events}

    def _app(self) -> Answer:
        permissions: dict[str, str] = {}
        for installation in self.installations:
            permissions |= installation.permissions
        body = {
            "id": int(self.app_id) if self.app_id.isdigit() else 1,
            "slug": self.slug,
            "client_id": self.client_id,
            "permissions": permissions,
            "events": self.events,
        }
        return 200, body

    @staticmethod
    def _permission(org: bool, rest: str) -> str | None:
        for pattern, repo_permission, org_permission in _PERMISSIONS:
            if pattern.match(rest):
                return org_permission if org else repo_permission
        return None

    def _signed(self, signing_input: str, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        key = serialization.load_der_public_key(self.public_key_der)
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            key.verify(signature, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


def _bearer(authorization: str) -> str:
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") else ""


def _unb64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
