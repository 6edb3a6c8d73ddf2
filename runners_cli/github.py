"""The GitHub REST calls the CLI makes: token checks, webhooks, delivery history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from runners_cli.errors import CliError

DEFAULT_API_URL = "https://api.github.com"
HOOK_EVENTS = ["workflow_job"]
TIMEOUT = (5, 20)


@dataclass(frozen=True)
class Target:
    """Where runners and the webhook live: a repository or an organisation."""

    kind: str  # "repo" or "org"
    name: str  # "owner/repo" or "org"

    @classmethod
    def parse(cls, repo: str | None, org: str | None) -> Target | None:
        if repo:
            owner, sep, name = repo.partition("/")
            if not sep or not owner or not name or "/" in name:
                raise CliError(f"--repo must be OWNER/REPO, got {repo!r}")
            return cls("repo", repo)
        if org:
            if "/" in org:
                raise CliError(f"--org must be an organisation name, got {org!r}")
            return cls("org", org)
        return None

    @property
    def path(self) -> str:
        return f"repos/{self.name}" if self.kind == "repo" else f"orgs/{self.name}"

    @property
    def label(self) -> str:
        return f"repository {self.name}" if self.kind == "repo" else f"organisation {self.name}"

    @property
    def runner_permission(self) -> str:
        """What a token needs to manage self-hosted runners here."""
        if self.kind == "repo":
            return (
                "fine-grained token: repository permission 'Administration: write'; "
                "classic token: 'repo' scope"
            )
        return (
            "fine-grained token: organisation permission 'Self-hosted runners: write'; "
            "classic token: 'admin:org' scope"
        )

    @property
    def hook_permission(self) -> str:
        """What a token needs to manage this target's webhooks."""
        if self.kind == "repo":
            return (
                "fine-grained token: repository permission 'Webhooks: write'; "
                "classic token: 'admin:repo_hook' scope"
            )
        return (
            "fine-grained token: organisation permission 'Webhooks: write'; "
            "classic token: 'admin:org_hook' scope"
        )


class GitHubError(CliError):
    """A GitHub call answered something unexpected (exit 1)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message, exit_code=1)
        self.status = status


class GitHub:
    """A minimal client: bearer token, API version header, JSON in and out."""

    def __init__(
        self, token: str, api_url: str = DEFAULT_API_URL, session: requests.Session | None = None
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._session = session or requests.Session()
        self._headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "fargate-runners-cli",
            "Authorization": f"Bearer {token}",
        }

    def request(
        self, method: str, path: str, *, json: dict[str, Any] | None = None
    ) -> requests.Response:
        url = path if path.startswith("http") else f"{self.api_url}/{path.lstrip('/')}"
        try:
            return self._session.request(
                method, url, json=json, headers=self._headers, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise GitHubError(
                f"cannot reach GitHub at {self.api_url}: {type(exc).__name__}"
            ) from None

    def get_json(self, path: str) -> Any:
        response = self.request("GET", path)
        if response.status_code != 200:
            raise GitHubError(
                f"GET {path}: GitHub answered {response.status_code} ({message(response)})",
                response.status_code,
            )
        return response.json()

    def paginate(self, path: str, limit: int = 1000) -> list[dict[str, Any]]:
        """A list endpoint, following ``Link: rel="next"``."""
        items: list[dict[str, Any]] = []
        url: str | None = f"{path}{'&' if '?' in path else '?'}per_page=100"
        while url and len(items) < limit:
            response = self.request("GET", url)
            if response.status_code != 200:
                raise GitHubError(
                    f"GET {path}: GitHub answered {response.status_code} ({message(response)})",
                    response.status_code,
                )
            data = response.json()
            items.extend(data if isinstance(data, list) else [])
            url = response.links.get("next", {}).get("url")
        return items[:limit]

    # -- checks ----------------------------------------------------------------

    def whoami(self) -> tuple[str, str]:
        """(login, scopes) of the token; raises ``GitHubError`` if GitHub rejects it."""
        response = self.request("GET", "user")
        if response.status_code == 401:
            raise GitHubError(
                "GitHub rejected the token (401 Bad credentials): create a new one "
                "(https://github.com/settings/personal-access-tokens)",
                401,
            )
        if response.status_code != 200:
            raise GitHubError(
                f"GET /user: GitHub answered {response.status_code} ({message(response)})",
                response.status_code,
            )
        login = str(response.json().get("login", "?"))
        scopes = response.headers.get("X-OAuth-Scopes")
        if scopes is None:  # only classic tokens report scopes
            return login, "fine-grained token"
        return login, f"classic token, scopes: {scopes or '(none)'}"

    def check_target(self, target: Target) -> None:
        """The token can see the repository or organisation."""
        response = self.request("GET", target.path)
        if response.status_code == 200:
            return
        if response.status_code in (403, 404):
            raise GitHubError(
                f"the token cannot see {target.label} ({response.status_code}): check the name, "
                "and that the token's resource owner / repository access includes it",
                response.status_code,
            )
        raise GitHubError(f"GET /{target.path}: GitHub answered {response.status_code}")

    def check_runner_permission(self, target: Target) -> None:
        """The token can manage self-hosted runners (list them: 200)."""
        response = self.request("GET", f"{target.path}/actions/runners?per_page=1")
        if response.status_code == 200:
            return
        if response.status_code in (403, 404):
            raise GitHubError(
                f"the token cannot manage self-hosted runners of {target.label} "
                f"({response.status_code}); it needs {target.runner_permission}",
                response.status_code,
            )
        raise GitHubError(
            f"GET /{target.path}/actions/runners: GitHub answered {response.status_code}"
        )

    # -- webhooks ------------------------------------------------------------------

    def hooks(self, target: Target) -> list[dict[str, Any]]:
        try:
            return self.paginate(f"{target.path}/hooks")
        except GitHubError as exc:
            if exc.status in (403, 404):
                raise GitHubError(
                    f"the token cannot read the webhooks of {target.label} ({exc.status}); "
                    f"it needs {target.hook_permission}",
                    exc.status,
                ) from None
            raise

    def find_hook(self, target: Target, url: str) -> dict[str, Any] | None:
        for hook in self.hooks(target):
            if hook.get("config", {}).get("url") == url:
                return hook
        return None

    def ensure_hook(
        self, target: Target, url: str, secret: str, *, resend_secret: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """Create or update the webhook; returns ("created"|"updated"|"unchanged", hook).

        GitHub never shows a hook's secret (only ``"********"``), so an existing
        hook that has *a* secret keeps it unless ``resend_secret``.
        """
        config = {"url": url, "content_type": "json", "insecure_ssl": "0", "secret": secret}
        existing = self.find_hook(target, url)
        if existing is None:
            body = {"name": "web", "active": True, "events": HOOK_EVENTS, "config": config}
            response = self.request("POST", f"{target.path}/hooks", json=body)
            if response.status_code != 201:
                raise GitHubError(
                    self._hook_failure("create", target, response), response.status_code
                )
            return "created", dict(response.json())
        differences = hook_differences(existing)
        if not differences and not resend_secret:
            return "unchanged", existing
        body = {"active": True, "events": HOOK_EVENTS, "config": config}
        response = self.request("PATCH", f"{target.path}/hooks/{existing['id']}", json=body)
        if response.status_code != 200:
            raise GitHubError(self._hook_failure("update", target, response), response.status_code)
        return "updated", dict(response.json())

    def _hook_failure(self, verb: str, target: Target, response: requests.Response) -> str:
        hint = (
            f"; the token needs {target.hook_permission}"
            if response.status_code in (403, 404)
            else ""
        )
        return (
            f"could not {verb} the webhook of {target.label}: GitHub answered "
            f"{response.status_code} ({message(response)}){hint}"
        )

    def failed_deliveries(
        self, target: Target, hook_id: int, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Recent deliveries of the hook that got an HTTP status >= 400 (newest first)."""
        data = self.get_json(f"{target.path}/hooks/{hook_id}/deliveries?per_page={limit}")
        return [d for d in data if int(d.get("status_code") or 0) >= 400]


def hook_differences(hook: dict[str, Any]) -> list[str]:
    """What about an existing hook differs from what the stack needs (empty: nothing)."""
    config = hook.get("config", {})
    problems = []
    if not hook.get("active", False):
        problems.append("inactive")
    if sorted(hook.get("events", [])) != HOOK_EVENTS:
        problems.append(f"events {hook.get('events')} (want ['workflow_job'])")
    if config.get("content_type") != "json":
        problems.append(f"content type {config.get('content_type')!r} (want 'json')")
    if str(config.get("insecure_ssl", "0")) != "0":
        problems.append("TLS verification disabled")
    if not config.get("secret"):
        problems.append("no secret")
    return problems


def message(response: requests.Response) -> str:
    """GitHub's error message, short."""
    try:
        text = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        text = ""
    return (text or response.reason or "no message")[:160]
