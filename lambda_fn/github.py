"""GitHub REST client: just-in-time runner configs, runner removal, job status.

One ``requests.Session`` per process keeps the TLS connection to GitHub warm
across invocations. Retries are a small explicit loop rather than urllib3's
``Retry`` because the whole exchange must fit GitHub's 10-second delivery
timeout: we honour ``Retry-After`` only while it fits a time budget, and give
up early (raising ``GitHubTransientError``) so the caller can queue the job
instead of blocking until GitHub marks the delivery failed.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests

from lambda_fn.errors import GitHubPermanentError, GitHubTransientError

API_VERSION = "2022-11-28"
USER_AGENT = "fargate-gha-runners/0.1 (+python-requests)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Workflow job statuses for which a runner is still needed (anything else: started or done).
JOB_STATUSES_NEEDING_RUNNER = frozenset({"queued", "waiting", "pending", "requested"})
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 5.0
MAX_ATTEMPTS = 3
BACKOFF_BASE = 0.25

TokenProvider = Callable[[str, bool], str]
"""The bearer token for a request to an API path (``repos/O/R/...``, ``orgs/O/...``,
``app/...``, relative to the API URL): the PAT, or a GitHub App's token for that path
(``lambda_fn.github_auth``). ``True`` asks for a fresh one: GitHub refused the last with
401 (a rotated PAT, an expired or revoked installation token)."""

_HINTS = {
    401: (
        "GitHub rejected the token: put a valid PAT in the GitHub token secret (GitHub App: "
        "check GITHUB_APP_ID and that the App's private key was imported into its KMS key)"
    ),
    403: (
        "the token may not manage self-hosted runners here: a repository needs "
        "'Administration: write', an organisation 'Self-hosted runners: write' "
        "(classic PAT: repo / admin:org; a GitHub App: the same permissions, accepted "
        "by the installation)"
    ),
    404: "not found, or the token cannot see it: check the repository/organisation and token scope",
    409: "a runner with this name already exists",
    422: "GitHub refused the request as invalid: check RUNNER_GROUP_ID and the profile labels",
}


@dataclass(frozen=True)
class JitConfig:
    """A just-in-time runner registration. ``encoded`` is a credential: never log it."""

    runner_id: int
    runner_name: str
    encoded: str = field(repr=False)


API_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": API_VERSION,
    "User-Agent": USER_AGENT,
}


@functools.cache
def shared_session() -> requests.Session:
    """The process-wide session (created on first use, reused while the container is warm)."""
    return requests.Session()


_THREAD = threading.local()


def thread_session() -> requests.Session:
    """A session of the calling thread's own, for calls made from worker threads.

    ``requests`` does not promise that one ``Session`` may be used from several threads at
    once (https://github.com/psf/requests/issues/2766: one session per thread), while
    urllib3's connection pools, which its adapters hold, are thread-safe
    (https://pypi.org/project/urllib3/). So each thread gets its own ``Session`` (cookies,
    settings) mounted with the process-wide session's adapters: the warm connections are
    still shared.
    """
    session: requests.Session | None = getattr(_THREAD, "session", None)
    if session is None:
        session = requests.Session()
        for prefix, adapter in shared_session().adapters.items():
            session.mount(prefix, adapter)
        _THREAD.session = session
    return session


def scope_path(scope: str, owner: str, repo: str) -> str:
    """The REST path prefix where runners are registered: a repository or its organisation."""
    return f"orgs/{owner}" if scope == "org" else f"repos/{owner}/{repo}"


#: The wait between attempts when a client is given none of its own. Looked up at each wait,
#: so the tests replace this one name (``tests/conftest.py``) and record the waits instead
#: of sleeping, without touching ``time.sleep`` for the rest of the process.
backoff_sleep: Callable[[float], None] = time.sleep


class GitHubClient:
    """The few GitHub calls the dispatcher makes, with bounded retries."""

    def __init__(
        self,
        api_url: str,
        token: TokenProvider | None,
        *,
        session: requests.Session | None = None,
        budget_seconds: float = 6.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        shared_budget: bool = False,
    ) -> None:
        """``budget_seconds`` bounds each call; with ``shared_budget`` all calls together."""
        self._api_url = api_url.rstrip("/")
        self._token = token
        self._session = session or shared_session()
        self._budget = budget_seconds
        self._sleep = sleep
        self._clock = clock or time.monotonic
        self._deadline = self._clock() + budget_seconds if shared_budget else None

    def generate_jitconfig(
        self, scope: str, name: str, labels: Sequence[str], runner_group_id: int
    ) -> JitConfig:
        """Register a single-use runner and return its encoded JIT configuration."""
        body = self._request(
            "POST",
            f"{scope}/actions/runners/generate-jitconfig",
            json={
                "name": name,
                "runner_group_id": runner_group_id,
                "labels": list(labels),
                "work_folder": "_work",
            },
            expected=(201,),
        )
        try:
            return JitConfig(
                runner_id=int(body["runner"]["id"]),
                runner_name=str(body["runner"].get("name", name)),
                encoded=str(body["encoded_jit_config"]),
            )
        except (KeyError, TypeError, ValueError):
            raise GitHubTransientError(
                "generate-jitconfig answered without a runner config"
            ) from None

    def delete_runner(self, scope: str, runner_id: int) -> None:
        """Remove a runner registration; a runner that is already gone is fine."""
        self._request("DELETE", f"{scope}/actions/runners/{runner_id}", expected=(204, 404))

    def list_runners(self, scope: str, max_pages: int = 10) -> list[dict[str, Any]]:
        """Registered self-hosted runners at ``scope`` (up to ``max_pages`` x 100)."""
        runners: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            body = self._request(
                "GET", f"{scope}/actions/runners?per_page=100&page={page}", expected=(200,)
            )
            batch = body.get("runners") or []
            runners.extend(batch)
            if len(batch) < 100:
                break
        return runners

    def list_deliveries(self, hook_path: str, max_pages: int = 5) -> list[dict[str, Any]]:
        """Recent deliveries of a webhook (``repos/O/R/hooks/ID`` or ``orgs/O/hooks/ID``),
        newest first, following GitHub's cursor pagination (``Link: rel="next"``) for up to
        ``max_pages`` x 100 (https://docs.github.com/en/rest/repos/webhooks#list-deliveries-for-a-repository-webhook,
        .../orgs/webhooks#list-deliveries-for-an-organization-webhook)."""
        deliveries: list[dict[str, Any]] = []
        url: str | None = f"{hook_path}/deliveries?per_page=100"
        for _ in range(max_pages):
            if url is None:
                break
            response = self._exchange("GET", url, expected=(200,))
            page = _json_or_empty(response).get("items", [])
            deliveries.extend(d for d in page if isinstance(d, dict))
            url = response.links.get("next", {}).get("url")
            if url is not None and not url.startswith(f"{self._api_url}/"):
                url = None  # never send the token anywhere but the configured API
        return deliveries

    def redeliver(self, hook_path: str, delivery_id: int) -> None:
        """Ask GitHub to send a delivery again: ``POST .../deliveries/{id}/attempts`` answers
        202 Accepted and GitHub delivers it later, as a new delivery with the same ``guid``
        and ``redelivery: true`` (400/422 are refusals; GitHub never redelivers by itself:
        https://docs.github.com/en/webhooks/testing-and-troubleshooting-webhooks/redelivering-webhooks)."""
        self._request("POST", f"{hook_path}/deliveries/{delivery_id}/attempts", expected=(200, 202))

    def get_installation(self, resource: str) -> dict[str, Any]:
        """This App's installation on ``repos/O/R`` or ``orgs/O`` (JWT): ``GET
        {resource}/installation`` answers 200, or 404 where the App is not installed
        (for a repository: nor given access to it)
        (https://docs.github.com/en/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app,
        ...#get-an-organization-installation-for-the-authenticated-app)."""
        return self._request("GET", f"{resource}/installation", expected=(200,))

    def create_installation_token(
        self,
        installation_id: int,
        *,
        repositories: Sequence[str] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A new installation access token (JWT): 201 ``{"token", "expires_at",
        "permissions"}``, valid one hour; 401/403/404/422 are refusals. ``repositories``
        (names, not ``owner/name``) and ``permissions`` narrow it; omitted, the token has
        all of the installation's
        (https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app)."""
        body: dict[str, Any] = {}
        if repositories is not None:
            body["repositories"] = list(repositories)
        if permissions is not None:
            body["permissions"] = dict(permissions)
        return self._request(
            "POST",
            f"app/installations/{installation_id}/access_tokens",
            json=body or None,
            expected=(201,),
        )

    def get_public_app(self, slug: str) -> dict[str, Any] | None:
        """``GET /apps/{slug}`` sent without a token: the App if it is public, None (404)
        if it is private -- "If the GitHub App you specify is private, you must
        authenticate ... to access this endpoint"
        (https://docs.github.com/en/rest/apps/apps#get-an-app). Use a client built with
        no token provider."""
        try:
            return self._request("GET", f"apps/{quote(slug, safe='')}", expected=(200,))
        except GitHubPermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def get_app(self) -> dict[str, Any]:
        """``GET /app`` (JWT): the App itself, its ``permissions`` and ``events``."""
        return self._request("GET", "app", expected=(200,))

    def get_meta(self) -> dict[str, Any]:
        """``GET /meta``: GitHub's published address ranges (no token needed or sent)."""
        return self._request("GET", "meta", expected=(200,))

    def get_latest_release(self, owner: str, repo: str) -> dict[str, Any]:
        """``GET /repos/{o}/{r}/releases/latest``: the newest published full release (not a
        draft or prerelease), with ``tag_name`` and ``published_at``
        (https://docs.github.com/en/rest/releases/releases#get-the-latest-release)."""
        return self._request("GET", f"repos/{owner}/{repo}/releases/latest", expected=(200,))

    def list_releases(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """``GET /repos/{o}/{r}/releases?per_page=100``: the newest 100 releases, newest first
        (https://docs.github.com/en/rest/releases/releases#list-releases)."""
        body = self._request("GET", f"repos/{owner}/{repo}/releases?per_page=100", expected=(200,))
        return [item for item in body.get("items", []) if isinstance(item, dict)]

    def list_runner_downloads(self, scope: str) -> list[dict[str, Any]]:
        """``GET /{scope}/actions/runners/downloads``: the runner builds this server offers
        (``os``, ``architecture``, ``filename``, ``download_url``...); needs admin on the
        repository or organisation
        (https://docs.github.com/en/rest/actions/self-hosted-runners#list-runner-applications-for-an-organization)."""
        body = self._request("GET", f"{scope}/actions/runners/downloads", expected=(200,))
        return [item for item in body.get("items", []) if isinstance(item, dict)]

    def get_run(self, owner: str, repo: str, run_id: int) -> dict[str, Any]:
        """A workflow run: event, workflow path, head branch and head repository."""
        return self._request("GET", f"repos/{owner}/{repo}/actions/runs/{run_id}", expected=(200,))

    def get_ref(self, owner: str, repo: str, ref: str) -> dict[str, Any] | None:
        """A branch (``heads/NAME``) or tag (``tags/NAME``); ``None`` if it does not exist.

        ``GET /repos/{o}/{r}/git/ref/{ref}`` matches the name exactly and answers
        404 for a missing ref (unlike ``git/refs/``, which lists prefix matches):
        docs.github.com/en/rest/git/refs#get-a-reference. ``ref`` must be a valid
        Git ref name (see ``lambda_fn.refs``); it is percent-encoded, ``/`` kept.
        """
        try:
            return self._request(
                "GET", f"repos/{owner}/{repo}/git/ref/{quote(ref, safe='/')}", expected=(200,)
            )
        except GitHubPermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def get_tag_object(self, owner: str, repo: str, sha: str) -> dict[str, Any]:
        """An annotated tag object (``GET /repos/{o}/{r}/git/tags/{sha}``): what it points to."""
        return self._request("GET", f"repos/{owner}/{repo}/git/tags/{sha}", expected=(200,))

    def compare_commits(self, owner: str, repo: str, base: str, head: str) -> str:
        """How ``head`` relates to ``base``: ``ahead`` (base is an ancestor of head),
        ``identical``, ``behind`` or ``diverged``.

        ``GET /repos/{o}/{r}/compare/{base}...{head}``:
        docs.github.com/en/rest/commits/commits#compare-two-commits.
        """
        body = self._request(
            "GET", f"repos/{owner}/{repo}/compare/{base}...{head}?per_page=1", expected=(200,)
        )
        return str(body.get("status", ""))

    def get_job(self, owner: str, repo: str, job_id: int) -> dict[str, Any]:
        """A workflow job as GitHub sees it now (status ``queued``, ``in_progress``...)."""
        return self._request("GET", f"repos/{owner}/{repo}/actions/jobs/{job_id}", expected=(200,))

    def pending_environments(self, owner: str, repo: str, run_id: int) -> list[str]:
        """Names of the environments a run's jobs still wait on (protection rules).

        ``GET /repos/{o}/{r}/actions/runs/{run_id}/pending_deployments`` answers an array
        of ``{"environment": {"id", "name", ...}, "wait_timer", "reviewers", ...}``; an
        empty array means nothing waits (read access is enough:
        https://docs.github.com/en/rest/actions/workflow-runs#get-pending-deployments-for-a-workflow-run).
        """
        path = f"repos/{owner}/{repo}/actions/runs/{run_id}/pending_deployments"
        body = self._request("GET", path, expected=(200,))
        items = body.get("items")
        if not isinstance(items, list):
            raise GitHubTransientError("pending_deployments answered without a list")
        names: list[str] = []
        for item in items:
            environment = item.get("environment") if isinstance(item, dict) else None
            name = environment.get("name") if isinstance(environment, dict) else None
            if not isinstance(name, str) or not name:  # cannot tell what waits: not "nothing"
                raise GitHubTransientError("pending_deployments answered an item without a name")
            names.append(name)
        return names

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        expected: tuple[int, ...],
    ) -> dict[str, Any]:
        return _json_or_empty(self._exchange(method, path, json=json, expected=expected))

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        expected: tuple[int, ...],
    ) -> requests.Response:
        """One call with bounded retries; the response when its status is ``expected``."""
        url = path if path.startswith(("https://", "http://")) else f"{self._api_url}/{path}"
        deadline = self._clock() + self._budget
        if self._deadline is not None:
            deadline = min(deadline, self._deadline)
        refreshed_token = False
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise GitHubTransientError(f"{method} {path}: no time left for GitHub")
            headers = dict(API_HEADERS)
            if self._token is not None:  # None: an unauthenticated endpoint (GET /meta)
                token = self._token(url.removeprefix(f"{self._api_url}/"), refreshed_token)
                headers["Authorization"] = f"Bearer {token}"
            try:
                response = self._session.request(
                    method,
                    url,
                    json=json,
                    headers=headers,
                    timeout=(min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining)),
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                delay = _backoff(attempt)
                if attempt >= MAX_ATTEMPTS or self._clock() + delay >= deadline:
                    raise GitHubTransientError(
                        f"{method} {path}: {type(exc).__name__} talking to GitHub"
                    ) from None
                (self._sleep or backoff_sleep)(delay)
                continue

            status = response.status_code
            if status in expected:
                return response
            if status == 401 and not refreshed_token and self._token is not None:
                refreshed_token = True  # rotated PAT, expired installation token: once more
                continue
            if status in RETRY_STATUSES or _is_rate_limited(response):
                retry_after = _retry_after(response)
                delay = retry_after if retry_after is not None else _backoff(attempt)
                if attempt >= MAX_ATTEMPTS or self._clock() + delay >= deadline:
                    raise GitHubTransientError(
                        f"{method} {path}: GitHub answered {status}",
                        status=status,
                        retry_after=retry_after,
                    )
                (self._sleep or backoff_sleep)(delay)
                continue
            raise GitHubPermanentError(
                f"{method} {path}: GitHub answered {status} ({_message(response)}); "
                f"{_HINTS.get(status, 'see the GitHub REST API documentation')}",
                status=status,
            )


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0.25 s, 0.5 s, 1 s ... (randomised)."""
    return random.uniform(0, BACKOFF_BASE * 2 ** (attempt - 1))  # noqa: S311 (not crypto)


def _is_rate_limited(response: requests.Response) -> bool:
    """GitHub signals rate limits with 403 as well as 429 (primary and secondary limits)."""
    if response.status_code != 403:
        return False
    return "retry-after" in response.headers or response.headers.get("x-ratelimit-remaining") == "0"


def _retry_after(response: requests.Response) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or HTTP date) or ``x-ratelimit-reset``."""
    value = response.headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    reset = response.headers.get("x-ratelimit-reset")
    if reset and reset.isdigit() and response.headers.get("x-ratelimit-remaining") == "0":
        return max(0.0, float(reset) - time.time())
    return None


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        raise GitHubTransientError(
            f"GitHub answered {response.status_code} with non-JSON"
        ) from None
    return data if isinstance(data, dict) else {"items": data}


def _message(response: requests.Response) -> str:
    """GitHub's short error message (never contains our token), truncated."""
    try:
        message = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    return (message or response.reason or "no message")[:200]
