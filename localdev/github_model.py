"""One model of GitHub's REST API: the state, the routing and the status codes.

Every GitHub double in this repository is this model behind a thin transport:

- :class:`localdev.github_stub.GitHubStub` -- an HTTP server (local mode, ``make demo``);
- ``tests/kit/github.py`` ``FakeGitHub`` -- a ``responses`` registration (the ``github`` fixture);
- ``bench/fakes.py`` ``FakeGitHubAdapter`` -- a ``requests`` transport adapter (benchmarks).

A transport turns a request into a :class:`Call` and gives it to :meth:`GitHubModel.handle`,
which answers ``(status, headers, JSON body or None)`` and records the request (never the
token). The model answers what GitHub documents, status codes included:

=======  ==========================================================  ============================
method   path (``{scope}`` = ``repos/{o}/{r}`` or ``orgs/{org}``)     answers
=======  ==========================================================  ============================
GET      /meta                                                       200 (no token) / 401 bad one
GET      /user                                                       200 (+ ``X-OAuth-Scopes``)
GET      /{scope}                                                    200
POST     /{scope}/actions/runners/generate-jitconfig                 201 / 409 name taken / 422
GET      /{scope}/actions/runners?per_page&page                      200 paged, ``Link``
GET      /{scope}/actions/runners/{id}                               200 / 404
DELETE   /{scope}/actions/runners/{id}                               204 / 422 busy / 404
GET      /repos/{o}/{r}/actions/jobs/{id}                            200
GET      /repos/{o}/{r}/actions/runs/{id}                            200 / 404
GET      /repos/{o}/{r}/actions/runs/{id}/pending_deployments        200 / 404
POST     /repos/{o}/{r}/actions/runs/{id}/pending_deployments        200 / 422 / 404
GET      /repos/{o}/{r}/deployments/{id}/statuses                    200 newest first / 404
GET      /{scope}/hooks                                              200
POST     /{scope}/hooks                                              201
PATCH    /{scope}/hooks/{id}                                         200 / 404
GET      /{scope}/hooks/{id}/deliveries?per_page&cursor              200 newest first, ``Link``
POST     /{scope}/hooks/{id}/deliveries/{id}/attempts                202 / 404
GET      /app/hook/deliveries?per_page&cursor                        200 newest first (App JWT)
POST     /app/hook/deliveries/{id}/attempts                          202 / 404 (App JWT)
GET      /apps/{app_slug}                                            200 / 404 private, no token
GET      /repos/{o}/{r}/git/ref/{heads|tags}/{name}                  200 / 404
GET      /repos/{o}/{r}/git/tags/{sha}                               200 / 404
GET      /repos/{o}/{r}/compare/{base}...{head}                      200 / 404
GET      /repos/{o}/{r}/releases/latest                              200 / 404 (no token needed)
GET      /repos/{o}/{r}/releases?per_page&page                       200 newest first (no token)
GET      /{scope}/actions/runners/downloads                          200
GET      /repos/{o}/{r}/rules/branches/{branch}                      200 (active rules only)
GET      /repos/{o}/{r}/rulesets?targets&includes_parents            200 summaries
GET      /repos/{o}/{r}/rulesets/{id}                                200 / 404
GET      /repos/{o}/{r}/branches/{branch}/protection                 200 / 404 not protected
GET      /repos/{o}/{r}/environments/{name}                          200 / 404
GET      /orgs/{org}/actions/runner-groups                           200
POST     /orgs/{org}/actions/runner-groups                           201 / 422 no name
GET      /orgs/{org}/actions/runner-groups/{id}                      200 / 404
PATCH    /orgs/{org}/actions/runner-groups/{id}                      200 / 404 / 422
GET      /orgs/{org}/actions/runner-groups/{id}/repositories         200 / 404
PUT      /orgs/{org}/actions/runner-groups/{id}/repositories         204 / 404
=======  ==========================================================  ============================

Sources for the behaviour (each handler cites its own):

- self-hosted runners, JIT config, delete, list (``per_page`` max 100, ``page``):
  https://docs.github.com/en/rest/actions/self-hosted-runners. A JIT name already
  registered answers ``409 Already exists - A runner with the name ... already exists``
  (seen from GitHub in https://github.com/ubicloud/ubicloud/pull/692 and
  https://github.com/runs-on/runs-on/pull/30). Deleting a runner that is running a job
  answers ``422 Bad request - Runner "..." is still running a job`` (actions-runner-controller,
  ``controllers/actions.summerwind.net/runner_graceful_stop.go`` ``unregisterRunner``, relies on
  it; so does ``lambda_fn.cleanup.release``).
- webhook deliveries (cursor pagination through ``Link``, ``per_page`` max 100) and
  redelivery (202, sent later as a new delivery with the same ``guid``):
  https://docs.github.com/en/rest/repos/webhooks#list-deliveries-for-a-repository-webhook,
  https://docs.github.com/en/webhooks/testing-and-troubleshooting-webhooks/redelivering-webhooks.
- releases (``releases/latest`` is the newest full release, neither draft nor prerelease;
  404 when there is none; drafts are listed only to users with push access, never here):
  https://docs.github.com/en/rest/releases/releases#get-the-latest-release and
  #list-releases. Runner downloads (``os``, ``architecture``, ``download_url``,
  ``filename``, ``sha256_checksum``; 200):
  https://docs.github.com/en/rest/actions/self-hosted-runners#list-runner-applications-for-an-organization
  and #list-runner-applications-for-a-repository.
- environments waiting for approval: a job gated by a protection rule has status
  ``waiting`` (``GET .../actions/jobs/{id}``), its run lists the environment under
  ``pending_deployments``, and its deployment's statuses read ``waiting``; approving
  (``POST .../pending_deployments``, or :meth:`GitHubModel.approve`) clears the pending
  entry, adds a ``queued`` status and moves the job to ``queued``
  (https://docs.github.com/en/rest/actions/workflow-runs#get-pending-deployments-for-a-workflow-run,
  ...#review-pending-deployments-for-a-workflow-run,
  https://docs.github.com/en/rest/deployments/statuses#list-deployment-statuses; the job
  statuses ``waiting``/``queued``: https://docs.github.com/en/rest/actions/workflow-jobs).
- rate limits: 403 or 429 with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``
  (primary), or with ``retry-after`` (secondary):
  https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api#rate-limit-errors.
  Every answer carries the ``x-ratelimit-*`` headers.
- a request without a token answers 401 ``Requires authentication``; a wrong token 401
  ``Bad credentials`` (https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api).
- GitHub App authentication: with ``app`` set (a
  :class:`localdev.github_app_double.GitHubAppDouble`), the App's own endpoints (``/app``,
  ``/app/installations/{id}/access_tokens``, ``/{scope}/installation``, ``/app/hook/config``)
  are answered by it, ``/app/...`` wants the App's JWT, and every other non-public endpoint
  a live installation token allowed there (or ``valid_token``); see that module for the
  sources. Without an App, ``/app/...`` and ``/{scope}/installation`` answer 401 ``A JSON
  web token could not be decoded`` (GitHub cannot read a PAT as a JWT). The App's own
  webhook deliveries (https://docs.github.com/en/rest/apps/webhooks) are those of
  ``deliveries`` with ``hook_id`` :data:`APP_HOOK_ID`.

Fault injection is one mechanism: :meth:`GitHubModel.fail` answers the next ``times``
requests matching a method and a pattern with a given status, headers and body (``times=None``:
until :meth:`GitHubModel.clear_faults`); :meth:`GitHubModel.rate_limited` builds GitHub's
rate-limit answers on it.

Adding an endpoint (e.g. ``GET /repos/{o}/{r}/installation``) is two small steps:

1. write a handler method ``def get_repo_installation(self, call: Call, p: Params) -> Answer``
   on :class:`GitHubModel` (``p`` holds the path's named groups; keep any state it needs as a
   dataclass field) and cite the doc page in its docstring;
2. add one line to :data:`ROUTES`:
   ``Route("GET", _REPO + r"/installation", GitHubModel.get_repo_installation)``
   (``public=True`` if GitHub serves it without a token).

Every transport serves it at once; nothing else changes.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from lambda_fn.contract import RUNNER_VERSION
from localdev.github_app_double import GitHubAppDouble

DOCS = "https://docs.github.com/rest"

#: What a handler answers: status, extra headers, JSON body (None: no body).
Answer = tuple[int, dict[str, str], Any]
#: The named groups of a route's path pattern.
Params = dict[str, str]

_SCOPE = r"/(?:repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)|orgs/(?P<org>[^/]+))"
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_GROUPS = r"/orgs/(?P<org>[^/]+)/actions/runner-groups"
#: Endpoints only a GitHub App's JWT opens (answered by ``GitHubModel.app``).
_APP_ONLY = re.compile(r"/app(?:/.*)?|" + _SCOPE + r"/installation")
#: The ``hook_id`` of the App's own webhook deliveries in ``GitHubModel.deliveries``
#: (GitHub shows them under ``/app/hook/deliveries``, no hook id of their own).
APP_HOOK_ID = 0


@dataclass(frozen=True)
class Call:
    """One request as the model sees it. ``token`` is checked, never recorded."""

    method: str
    path: str
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    body: Any = None
    token: str | None = None
    #: scheme://host[/api/v3] the client used, for the ``Link`` headers of paged answers.
    base_url: str = ""

    def param(self, name: str, default: int, maximum: int | None = None) -> int:
        """An integer query parameter (GitHub falls back to the default on junk)."""
        try:
            value = int(self.query.get(name, [str(default)])[0])
        except ValueError:
            value = default
        value = max(1, value)
        return min(value, maximum) if maximum is not None else value


@dataclass(frozen=True)
class RecordedRequest:
    """One request the model answered. The token itself is never kept."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorized: bool
    status: int


@dataclass
class Fault:
    """Answer the next ``remaining`` matching requests (None: every one) with this."""

    method: str
    pattern: re.Pattern[str]
    status: int
    remaining: int | None
    headers: dict[str, str]
    body: Any
    #: a primary rate limit: ``x-ratelimit-reset`` this many seconds after the answer.
    reset_in: int | None = None


@dataclass
class Hook:
    """A webhook: where deliveries go, the secret they are signed with, what it sends."""

    id: int
    scope: str
    url: str
    secret: str = ""
    events: list[str] = field(default_factory=lambda: ["workflow_job"])
    active: bool = True
    content_type: str = "json"

    def view(self) -> dict[str, Any]:
        """The hook as the REST API shows it (the secret masked, as GitHub does)."""
        config = {"url": self.url, "content_type": self.content_type, "insecure_ssl": "0"}
        if self.secret:
            config["secret"] = "********"  # noqa: S105 (GitHub's mask, not a secret)
        return {
            "id": self.id,
            "type": "Repository" if self.scope.startswith("repos/") else "Organization",
            "name": "web",
            "active": self.active,
            "events": list(self.events),
            "config": config,
        }


@dataclass(frozen=True)
class Route:
    """``method`` + a full-match path regex -> a :class:`GitHubModel` handler."""

    method: str
    pattern: str
    handler: Callable[[GitHubModel, Call, Params], Answer]
    public: bool = False


NOT_FOUND: dict[str, str] = {"message": "Not Found", "documentation_url": DOCS, "status": "404"}


def not_found() -> Answer:
    return 404, {}, dict(NOT_FOUND)


def scope_of(p: Params) -> str:
    """``repos/O/R`` or ``orgs/O`` from a route's named groups."""
    return f"orgs/{p['org']}" if p.get("org") else f"repos/{p['owner']}/{p['repo']}"


def git_ref_answer(refs: Mapping[str, Mapping[str, str]], ref: str) -> tuple[int, Any]:
    """``GET /repos/{o}/{r}/git/ref/{ref}`` over ``refs`` (``"heads/main"`` -> object).

    https://docs.github.com/en/rest/git/refs#get-a-reference: the ref is ``heads/<branch>``
    or ``tags/<tag>``, matched exactly (no prefix matching, unlike ``git/refs``); a missing
    ref answers 404. The object is ``{"type": "commit", "sha"}`` for branches and lightweight
    tags, ``{"type": "tag", "sha"}`` (a tag object) for annotated tags.
    """
    target = refs.get(unquote(ref))
    if target is None:
        return 404, dict(NOT_FOUND)
    return 200, {"ref": f"refs/{unquote(ref)}", "node_id": "REF_x", "object": dict(target)}


def compare_answer(parents: Mapping[str, Sequence[str]], base: str, head: str) -> tuple[int, Any]:
    """``GET /repos/{o}/{r}/compare/{base}...{head}`` over a commit graph (sha -> parents).

    https://docs.github.com/en/rest/commits/commits#compare-two-commits: ``status`` is
    ``identical``, ``ahead`` (head has commits since base: base is in head's history),
    ``behind`` or ``diverged``; an unknown commit answers 404.
    """
    known = set(parents) | {p for ps in parents.values() for p in ps}
    if base not in known or head not in known:
        return 404, dict(NOT_FOUND)

    def history(sha: str) -> set[str]:
        seen, todo = {sha}, [sha]
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    of_base, of_head = history(base), history(head)
    status = (
        "identical" if base == head
        else "ahead" if base in of_head
        else "behind" if head in of_base
        else "diverged"
    )  # fmt: skip
    body = {
        "status": status,
        "ahead_by": len(of_head - of_base),
        "behind_by": len(of_base - of_head),
    }
    return 200, {**body, "commits": [], "files": []}


def git_tag_answer(tag_objects: Mapping[str, Mapping[str, Any]], sha: str) -> tuple[int, Any]:
    """``GET /repos/{o}/{r}/git/tags/{sha}``: an annotated tag object and what it tags, or 404.

    https://docs.github.com/en/rest/git/tags#get-a-tag; ``tag_objects`` maps the tag object's
    sha to ``{"tag": name, "object": {"type", "sha"}}``.
    """
    tag = tag_objects.get(sha)
    if tag is None:
        return 404, dict(NOT_FOUND)
    return 200, {"sha": sha, "node_id": "TAG_x", **tag}


def runner_downloads(version: str) -> list[dict[str, Any]]:
    """The linux x64 and arm64 runner builds of ``version``, as the downloads endpoint lists
    them (``download_url`` is where github.com serves the release asset)."""
    builds = []
    for os_name, arch in (("linux", "x64"), ("linux", "arm64")):
        filename = f"actions-runner-{os_name}-{arch}-{version}.tar.gz"
        builds.append(
            {
                "os": os_name,
                "architecture": arch,
                "download_url": (
                    f"https://github.com/actions/runner/releases/download/v{version}/{filename}"
                ),
                "filename": filename,
                "sha256_checksum": "0" * 64,
            }
        )
    return builds


def fnmatch_regex(pattern: str) -> re.Pattern[str]:
    """A ruleset ref pattern as GitHub matches it: Ruby ``File.fnmatch`` with
    ``File::FNM_PATHNAME`` (github/docs data/reusables/repositories/about-fnmatch.md):
    ``*`` and ``?`` never match ``/``, ``**/`` matches any number of directories,
    ``[...]`` is a character class (``[!...]``/``[^...]`` negated), ``\\`` escapes."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append("[" + ("^/" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif pattern[i] == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def ref_name_matches(conditions: Mapping[str, Any], ref: str, default_branch: str = "main") -> bool:
    """A ruleset's ``conditions.ref_name`` against a full ref: one ``include`` matches
    (``~ALL``: every ref; ``~DEFAULT_BRANCH``: the default branch) and no ``exclude`` does
    (OpenAPI ``repository-ruleset-conditions``, ``ref_name.include``/``exclude``)."""
    ref_name = conditions.get("ref_name") or {}

    def matches(pattern: str) -> bool:
        if pattern == "~ALL":
            return True
        if pattern == "~DEFAULT_BRANCH":
            return ref == f"refs/heads/{default_branch}"
        return fnmatch_regex(pattern).match(ref) is not None

    return any(matches(p) for p in ref_name.get("include") or []) and not any(
        matches(p) for p in ref_name.get("exclude") or []
    )


def _default_jit_config(runner_name: str) -> str:
    """GitHub's ``encoded_jit_config`` shape (what the runner decodes), with fake values."""
    from localdev.runner_double import configured_files, jit_config

    return jit_config(configured_files(runner_name))


#: A job as ``GET .../actions/jobs/{id}`` shows it, where a test or the demo says nothing else.
DEFAULT_JOB: dict[str, Any] = {
    "run_id": 777,
    "run_attempt": 1,
    "head_branch": "main",
    "head_sha": "0" * 40,
    "labels": ["self-hosted", "linux", "arm64"],
    "status": "queued",
}


@dataclass
class GitHubModel:
    """GitHub's state and answers. Thread-safe: every transport calls :meth:`handle`."""

    #: runner id -> runner object as the runners API shows it, plus ``scope`` ("repos/O/R").
    #: A runner put here without ``scope`` belongs to every scope (a test shortcut).
    runners: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: encoded JIT configs handed out, in order.
    issued_configs: list[str] = field(default_factory=list)
    #: job id -> fields that differ from :data:`DEFAULT_JOB` (labels, run_id, head_branch...).
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: job id -> status to report (default "queued").
    job_status: dict[int, str] = field(default_factory=dict)
    #: run id -> the run as ``GET .../actions/runs/{id}`` shows it (others: 404).
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: What ``GET /meta`` answers (only ``hooks`` matters here).
    meta: dict[str, Any] = field(
        default_factory=lambda: {"hooks": ["192.30.252.0/22", "2a0a:a440::/29"]}
    )
    hooks: dict[int, Hook] = field(default_factory=dict)
    #: GitHub's delivery log, oldest first: REST fields plus ``hook_id`` (and ``_body`` to
    #: redeliver, never shown). Listed newest first, as GitHub does.
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    #: delivery ids a redelivery was asked for, in order.
    redelivered: list[int] = field(default_factory=list)
    #: git refs of every repository: "heads/main" / "tags/v1" -> {"type", "sha"}.
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: annotated tag objects: sha -> {"tag", "object": {"type", "sha"}}.
    tag_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the commit graph for compare: sha -> parent shas.
    parents: dict[str, list[str]] = field(default_factory=dict)
    #: Releases per repository ("actions/runner" -> [{tag_name, published_at, draft,
    #: prerelease, ...}]), in any order; see :meth:`add_release`.
    releases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: What ``GET /{scope}/actions/runners/downloads`` lists (every scope alike): the runner
    #: builds this server offers. Default: linux x64 and arm64 of :data:`RUNNER_VERSION`.
    runner_downloads: list[dict[str, Any]] = field(
        default_factory=lambda: runner_downloads(RUNNER_VERSION)
    )
    #: Rulesets (repository and organisation level), each as ``GET .../rulesets/{id}`` shows
    #: it (``name``, ``target``, ``enforcement``, ``conditions``, ``rules``,
    #: ``bypass_actors``) plus ``scope``: ``repos/O/R`` or ``orgs/O`` (the latter applies to
    #: every repository of the organisation here). See :meth:`add_ruleset`.
    rulesets: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: The caller may edit rulesets: only then does GitHub show ``bypass_actors``.
    ruleset_writer: bool = False
    #: Legacy branch protection: ``"O/R:branch"`` -> the object ``GET .../protection`` shows.
    branch_protections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Deployment environments: ``"O/R:name"`` -> the environment as ``GET`` shows it.
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Organisation runner groups (besides each organisation's built-in "Default", id 1):
    #: id -> the group as the API shows it plus ``org`` and ``repository_ids``.
    runner_groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: ``owner/repo`` (lower case) -> repository id (others: a stable id from the name).
    repository_ids: dict[str, int] = field(default_factory=dict)
    #: run id -> environments its jobs wait on, as ``pending_deployments`` lists them.
    pending_deployments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: deployment id -> {"environment", "run_id", "job_ids", "statuses" (oldest first)}.
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: The one token GitHub accepts (None: any non-empty token).
    valid_token: str | None = None
    #: GitHub's side of a GitHub App (GITHUB_AUTH=app). When set, its endpoints are served
    #: and every other non-public request needs ``valid_token`` or an installation token
    #: allowed there (with ``valid_token`` None: an installation token).
    app: GitHubAppDouble | None = None
    #: ``X-OAuth-Scopes`` of ``GET /user`` (None: a fine-grained token, no header).
    classic_scopes: str | None = None
    #: ``encoded_jit_config`` for a runner name (the bench passes a cheaper one).
    encode_jit: Callable[[str], str] = field(default=_default_jit_config, repr=False)
    requests: list[RecordedRequest] = field(default_factory=list)
    rate_limit: int = 5000
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000), repr=False)
    _faults: list[Fault] = field(default_factory=list, repr=False)
    #: repository id -> full name, for every id :meth:`repository_id` handed out.
    _repository_names: dict[int, str] = field(default_factory=dict, repr=False)

    # -- fault injection ------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        times: int | None = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = ...,
    ) -> None:
        """Answer the next ``times`` requests (None: all, until :meth:`clear_faults`) whose
        method is ``method`` and whose path, or ``path?query``, matches regex
        ``path_pattern`` (searched) with ``status``, ``headers`` and ``body`` instead of
        the model's answer."""
        answer = {"message": "injected failure"} if body is ... else body
        with self._lock:
            self._faults.append(
                Fault(
                    method.upper(), re.compile(path_pattern), status, times, dict(headers or {}),
                    answer,
                )
            )  # fmt: skip

    def rate_limited(
        self,
        method: str,
        path_pattern: str,
        *,
        times: int | None = 1,
        status: int = 403,
        retry_after: int | None = None,
        reset_in: int = 60,
    ) -> None:
        """GitHub's rate-limit answer (403 or 429): the primary limit (``x-ratelimit-remaining:
        0`` and ``x-ratelimit-reset``), or with ``retry_after`` a secondary limit."""
        if retry_after is not None:
            headers = {"retry-after": str(retry_after)}
            message = "You have exceeded a secondary rate limit."
        else:
            headers = {"x-ratelimit-remaining": "0"}
            message = "API rate limit exceeded."
        body = {"message": message, "documentation_url": DOCS}
        self.fail(method, path_pattern, status, times=times, headers=headers, body=body)
        if retry_after is None:
            with self._lock:
                self._faults[-1].reset_in = reset_in

    def clear_faults(self, method: str | None = None, path_pattern: str | None = None) -> None:
        """Forget injected faults (all, or those for one method and pattern)."""
        with self._lock:
            self._faults = [
                f
                for f in self._faults
                if method is not None
                and (f.method != method.upper() or f.pattern.pattern != path_pattern)
            ]

    def _fault_for(self, call: Call) -> Fault | None:
        target = call.path + ("?" + urlencode(call.query, doseq=True) if call.query else "")
        for fault in self._faults:
            if fault.remaining == 0 or fault.method != call.method:
                continue
            if fault.pattern.search(call.path) or fault.pattern.search(target):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    # -- the entry point of every transport ----------------------------------------------

    def handle(self, call: Call) -> Answer:
        """The answer to one request: (status, headers, JSON body or None). Recorded."""
        with self._lock:
            status, headers, body = self._answer(call)
            used = len(self.requests) + 1
            self.requests.append(
                RecordedRequest(
                    call.method,
                    call.path,
                    {k: list(v) for k, v in call.query.items()},
                    call.body,
                    bool(call.token),
                    status,
                )
            )
        rate = {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(max(0, self.rate_limit - used)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }
        return status, {**rate, **headers}, body

    def _answer(self, call: Call) -> Answer:
        fault = self._fault_for(call)
        if fault is not None:
            headers = dict(fault.headers)
            if fault.reset_in is not None:
                headers["x-ratelimit-reset"] = str(int(time.time()) + fault.reset_in)
            return fault.status, headers, fault.body
        authorization = f"Bearer {call.token}" if call.token else ""
        if self.app is not None:
            answered = self.app.answer(call.method, call.path, authorization, call.body)
            if answered is not None:
                return answered[0], {}, answered[1]
        elif _APP_ONLY.fullmatch(call.path):
            return 401, {}, {"message": "A JSON web token could not be decoded", "status": "401"}
        for route, params in _matches(call):
            if route.public and call.token and self._refused_on_public(call.token):
                # A public endpoint still checks a token it is sent: a wrong one is 401,
                # not an anonymous answer (``GITHUB_TOKEN=foo gh api repos/fastai/nbdev``
                # answers ``Bad credentials (HTTP 401)``: AnswerDotAI/nbdev#1027).
                return 401, {}, {"message": "Bad credentials", "status": "401"}
            if not route.public:
                if not call.token:
                    return 401, {}, {"message": "Requires authentication", "status": "401"}
                if self.app is not None and (
                    call.token != self.valid_token or call.path.startswith("/app/")
                ):
                    refused = self.app.refusal(call.method, call.path, authorization)
                    if refused is not None:
                        return refused[0], {}, refused[1]
                elif self.valid_token is not None and call.token != self.valid_token:
                    return 401, {}, {"message": "Bad credentials", "status": "401"}
            return route.handler(self, call, params)
        return not_found()

    def _refused_on_public(self, token: str) -> bool:
        """A token GitHub does not know: not ``valid_token`` (when set), nor a live
        installation token of the App (when there is one)."""
        if self.valid_token is not None and token == self.valid_token:
            return False
        if self.app is not None:
            return not self.app.knows_token(token)
        return self.valid_token is not None

    def calls(self, method: str | None = None, contains: str = "") -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and a path substring."""
        with self._lock:
            recorded = list(self.requests)
        return [
            r
            for r in recorded
            if (method is None or r.method == method.upper()) and contains in r.path
        ]

    def new_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # -- meta, user, repositories and organizations --------------------------------------

    def get_meta(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/meta/meta#get-github-meta-information (public)."""
        return 200, {}, dict(self.meta)

    def get_user(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/users/users#get-the-authenticated-user; a classic
        token's scopes come back in ``X-OAuth-Scopes``."""
        headers = {} if self.classic_scopes is None else {"X-OAuth-Scopes": self.classic_scopes}
        return 200, headers, {"login": "octocat", "id": 1}

    def get_scope(self, call: Call, p: Params) -> Answer:
        """A repository or organization: every one exists here
        (https://docs.github.com/en/rest/repos/repos#get-a-repository: ``id``, ``name``,
        ``full_name``, ``owner.login``, ``private``)."""
        if p.get("org"):
            return 200, {}, {"id": 1, "login": p["org"]}
        full_name = f"{p['owner']}/{p['repo']}"
        return (
            200,
            {},
            {
                "id": self.repository_id(full_name),
                "name": p["repo"],
                "full_name": full_name,
                "owner": {"login": p["owner"]},
                "private": True,
                "default_branch": "main",
            },
        )

    def repository_id(self, full_name: str) -> int:
        """The repository's id: ``repository_ids``, else a stable number from the name."""
        known = self.repository_ids.get(full_name.lower())
        repo_id = known if known is not None else 100_000 + zlib.crc32(full_name.lower().encode())
        self._repository_names.setdefault(repo_id, full_name)
        return repo_id

    # -- self-hosted runners ---------------------------------------------------------------

    def generate_jitconfig(self, call: Call, p: Params) -> Answer:
        """201 with the runner and its ``encoded_jit_config``; 422 without ``name``/``labels``/
        ``runner_group_id``; 409 when the scope has a runner of that name
        (https://docs.github.com/en/rest/actions/self-hosted-runners#create-configuration-for-a-just-in-time-runner-for-a-repository).
        The new runner is offline until the runner program connects."""
        body = call.body if isinstance(call.body, dict) else {}
        if not body.get("name") or not body.get("labels") or "runner_group_id" not in body:
            message = "Invalid request: name, runner_group_id and labels are required"
            return 422, {}, {"message": message, "documentation_url": DOCS, "status": "422"}
        name, scope = str(body["name"]), scope_of(p)
        if any(r["name"] == name and r.get("scope") == scope for r in self.runners.values()):
            message = f"Already exists - A runner with the name {name} already exists."
            return 409, {}, {"message": message, "documentation_url": DOCS, "status": "409"}
        runner_id = next(self._ids)
        runner = {
            "id": runner_id,
            "name": name,
            "os": "linux",
            "status": "offline",
            "busy": False,
            "labels": [{"id": i + 1, "name": str(label)} for i, label in enumerate(body["labels"])],
            "runner_group_id": body["runner_group_id"],
            "scope": scope,
        }
        self.runners[runner_id] = runner
        encoded = self.encode_jit(name)
        self.issued_configs.append(encoded)
        return 201, {}, {"runner": _public(runner), "encoded_jit_config": encoded}

    def list_runners(self, call: Call, p: Params) -> Answer:
        """``per_page`` (default 30, max 100) and ``page``, ``total_count`` of all, ``Link``
        to the next and last pages (https://docs.github.com/en/rest/actions/self-hosted-runners#list-self-hosted-runners-for-a-repository,
        https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api)."""
        scope = scope_of(p)
        mine = [_public(r) for r in self.runners.values() if r.get("scope", scope) == scope]
        per_page, page = call.param("per_page", 30, 100), call.param("page", 1)
        last = max(1, -(-len(mine) // per_page))
        links = []
        if page < last:
            links.append((page + 1, "next"))
            links.append((last, "last"))
        headers = _link_header(call, [({"per_page": per_page, "page": n}, rel) for n, rel in links])
        batch = mine[(page - 1) * per_page : page * per_page]
        return 200, headers, {"total_count": len(mine), "runners": batch}

    def _runner(self, p: Params) -> dict[str, Any] | None:
        runner = self.runners.get(int(p["runner_id"]))
        if runner is None or runner.get("scope", scope_of(p)) != scope_of(p):
            return None
        return runner

    def get_runner(self, call: Call, p: Params) -> Answer:
        runner = self._runner(p)
        return not_found() if runner is None else (200, {}, _public(runner))

    def delete_runner(self, call: Call, p: Params) -> Answer:
        """204; 404 if there is no such runner; 422 while it runs a job -- GitHub refuses to
        remove a busy runner (https://docs.github.com/en/rest/actions/self-hosted-runners#delete-a-self-hosted-runner-from-a-repository;
        the message as actions-runner-controller's runner_graceful_stop.go quotes it).
        ``lambda_fn.cleanup.release`` relies on the 422 to leave a busy runner running."""
        runner = self._runner(p)
        if runner is None:
            return not_found()
        if runner.get("busy"):
            message = f'Bad request - Runner "{runner["name"]}" is still running a job"'
            return 422, {}, {"message": message, "documentation_url": DOCS, "status": "422"}
        del self.runners[runner["id"]]
        return 204, {}, None

    def list_runner_downloads(self, call: Call, p: Params) -> Answer:
        """200 with the runner builds offered (admin on the scope is needed on GitHub;
        https://docs.github.com/en/rest/actions/self-hosted-runners#list-runner-applications-for-an-organization,
        #list-runner-applications-for-a-repository)."""
        return 200, {}, [dict(item) for item in self.runner_downloads]

    # -- releases ----------------------------------------------------------------------------

    def add_release(
        self, repository: str, tag: str, published_at: str, *, prerelease: bool = False,
        draft: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """Publish a release of ``repository`` ("owner/name")."""
        release = {
            "id": self.new_id(),
            "tag_name": tag,
            "name": tag,
            "draft": draft,
            "prerelease": prerelease,
            "created_at": published_at,
            "published_at": None if draft else published_at,
        }
        self.releases.setdefault(repository.lower(), []).append(release)
        return release

    def _listed_releases(self, p: Params) -> list[dict[str, Any]]:
        """Newest first; drafts are shown only to users with push access (not modelled)."""
        found = self.releases.get(f"{p['owner']}/{p['repo']}".lower(), [])
        shown = [r for r in found if not r["draft"]]
        return sorted(shown, key=lambda r: str(r["created_at"]), reverse=True)

    def get_latest_release(self, call: Call, p: Params) -> Answer:
        """The most recent full release (not draft, not prerelease), by ``created_at``; 404
        when the repository has none
        (https://docs.github.com/en/rest/releases/releases#get-the-latest-release)."""
        full = [r for r in self._listed_releases(p) if not r["prerelease"]]
        return (200, {}, dict(full[0])) if full else not_found()

    def list_releases(self, call: Call, p: Params) -> Answer:
        """200, newest first, ``per_page`` (max 100) and ``page`` with a ``Link`` header
        (https://docs.github.com/en/rest/releases/releases#list-releases)."""
        per_page, page = call.param("per_page", 30, 100), call.param("page", 1)
        listed = self._listed_releases(p)
        chunk = listed[(page - 1) * per_page : page * per_page]
        links = []
        if page * per_page < len(listed):
            links.append(({"per_page": per_page, "page": page + 1}, "next"))
        return 200, _link_header(call, links), [dict(r) for r in chunk]

    # -- jobs and runs ------------------------------------------------------------------

    def get_job(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/actions/workflow-jobs#get-a-job-for-a-workflow-run;
        every job id is known here (:data:`DEFAULT_JOB` unless ``jobs`` says otherwise)."""
        job_id = int(p["job_id"])
        job = {**DEFAULT_JOB, **self.jobs.get(job_id, {}), "id": job_id}
        job["status"] = self.job_status.get(job_id, job["status"])
        return 200, {}, job

    def get_run(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/actions/workflow-runs#get-a-workflow-run; 404 for
        a run not in ``runs``."""
        run = self.runs.get(int(p["run_id"]))
        return not_found() if run is None else (200, {}, run)

    # -- environments waiting for approval ------------------------------------------------

    def wait_for_approval(
        self, job_id: int, run_id: int, environment: str, *, deployment_id: int | None = None
    ) -> int:
        """Gate ``job_id`` on ``environment`` (required reviewers): the job is ``waiting``,
        the run lists the environment as pending, the deployment's first status is
        ``waiting``. Returns the deployment id (what the webhook's ``deployment.id`` says)."""
        with self._lock:
            deployment_id = deployment_id or next(self._ids)
            self.jobs.setdefault(job_id, {})["run_id"] = run_id
            self.job_status[job_id] = "waiting"
            pending = self.pending_deployments.setdefault(run_id, [])
            if not any(_same_env(p["environment"]["name"], environment) for p in pending):
                pending.append(_pending_item(next(self._ids), environment))
            deployment = self.deployments.setdefault(
                deployment_id,
                {"environment": environment, "run_id": run_id, "job_ids": [], "statuses": []},
            )
            deployment["job_ids"].append(job_id)
            deployment["statuses"].append(self._deployment_status("waiting", environment))
        return deployment_id

    def approve(self, run_id: int, environment: str, *, state: str = "approved") -> list[int]:
        """A reviewer approves (or rejects) ``environment`` for the run: the pending entry goes,
        each gated job moves to ``queued`` (rejected: ``completed``) and its deployment gets
        a ``queued`` (``failure``) status. Returns the job ids that moved."""
        with self._lock:
            pending = self.pending_deployments.get(run_id, [])
            self.pending_deployments[run_id] = [
                p for p in pending if not _same_env(p["environment"]["name"], environment)
            ]
            moved: list[int] = []
            for deployment in self.deployments.values():
                if deployment["run_id"] != run_id or not _same_env(
                    deployment["environment"], environment
                ):
                    continue
                status = "queued" if state == "approved" else "failure"
                deployment["statuses"].append(self._deployment_status(status, environment))
                for job_id in deployment["job_ids"]:
                    if self.job_status.get(job_id) == "waiting":
                        self.job_status[job_id] = "queued" if state == "approved" else "completed"
                        moved.append(job_id)
        return moved

    def _deployment_status(self, state: str, environment: str) -> dict[str, Any]:
        return {
            "id": next(self._ids),
            "state": state,
            "environment": environment,
            "description": "",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def get_pending_deployments(self, call: Call, p: Params) -> Answer:
        """200 with the environments the run's jobs wait on (``environment{id,name}``,
        ``wait_timer``, ``wait_timer_started_at``, ``current_user_can_approve``,
        ``reviewers``); an empty array when nothing waits; 404 for an unknown run
        (https://docs.github.com/en/rest/actions/workflow-runs#get-pending-deployments-for-a-workflow-run)."""
        run_id = int(p["run_id"])
        if run_id not in self.runs and run_id not in self.pending_deployments:
            return not_found()
        return 200, {}, [dict(item) for item in self.pending_deployments.get(run_id, [])]

    def review_pending_deployments(self, call: Call, p: Params) -> Answer:
        """Approve or reject: body ``environment_ids``, ``state`` (``approved``|``rejected``)
        and ``comment``, all required (422 otherwise); 200 with the deployments
        (https://docs.github.com/en/rest/actions/workflow-runs#review-pending-deployments-for-a-workflow-run)."""
        run_id = int(p["run_id"])
        body = call.body if isinstance(call.body, dict) else {}
        ids, state = body.get("environment_ids"), body.get("state")
        if (
            not isinstance(ids, list)
            or state not in ("approved", "rejected")
            or ("comment" not in body)
        ):
            message = "Invalid request: environment_ids, state and comment are required"
            return 422, {}, {"message": message, "documentation_url": DOCS, "status": "422"}
        pending = self.pending_deployments.get(run_id)
        if pending is None and run_id not in self.runs:
            return not_found()
        names = [
            item["environment"]["name"]
            for item in pending or []
            if item["environment"]["id"] in ids
        ]
        for name in names:
            self.approve(run_id, name, state=str(state))
        answered = [
            {"id": deployment_id, "environment": d["environment"]}
            for deployment_id, d in self.deployments.items()
            if d["run_id"] == run_id and any(_same_env(d["environment"], n) for n in names)
        ]
        return 200, {}, answered

    def list_deployment_statuses(self, call: Call, p: Params) -> Answer:
        """200, newest first (``state``: ``error``, ``failure``, ``inactive``, ``in_progress``,
        ``queued``, ``pending``, ``success``, ``waiting``); 404 for an unknown deployment
        (https://docs.github.com/en/rest/deployments/statuses#list-deployment-statuses).
        Newest first is what GitHub's list shows and cdk-github-runners PR #416 relies on;
        GitHub's page does not say it (unverified)."""
        deployment = self.deployments.get(int(p["deployment_id"]))
        if deployment is None:
            return not_found()
        return 200, {}, [dict(status) for status in reversed(deployment["statuses"])]

    # -- webhooks, deliveries, redelivery ----------------------------------------------------

    def add_hook(self, scope: str, url: str, secret: str = "", *, hook_id: int | None = None,
                 events: Sequence[str] = ("workflow_job",)) -> Hook:  # fmt: skip
        """Register a webhook (``scope`` is ``repos/O/R`` or ``orgs/O``)."""
        with self._lock:
            hook = Hook(hook_id or next(self._ids), scope, url, secret, list(events))
            self.hooks[hook.id] = hook
        return hook

    def _hook(self, p: Params) -> Hook | None:
        hook = self.hooks.get(int(p["hook_id"]))
        return hook if hook is not None and hook.scope == scope_of(p) else None

    def list_hooks(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/repos/webhooks#list-repository-webhooks."""
        scope = scope_of(p)
        return 200, {}, [h.view() for h in self.hooks.values() if h.scope == scope]

    def create_hook(self, call: Call, p: Params) -> Answer:
        """201 (https://docs.github.com/en/rest/repos/webhooks#create-a-repository-webhook);
        422 without ``config.url``."""
        body = call.body if isinstance(call.body, dict) else {}
        config = body.get("config") or {}
        if not config.get("url"):
            return 422, {}, {"message": "Validation Failed", "errors": [{"field": "config.url"}]}
        hook = self.add_hook(scope_of(p), config["url"], config.get("secret", ""),
                             events=body.get("events", ["push"]))  # fmt: skip
        self._update_hook(hook, body)
        return 201, {}, hook.view()

    def update_hook(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/repos/webhooks#update-a-repository-webhook."""
        hook = self._hook(p)
        if hook is None:
            return not_found()
        self._update_hook(hook, call.body if isinstance(call.body, dict) else {})
        return 200, {}, hook.view()

    @staticmethod
    def _update_hook(hook: Hook, body: Mapping[str, Any]) -> None:
        config = body.get("config") or {}
        hook.active = bool(body.get("active", hook.active))
        hook.events = list(body.get("events", hook.events))
        hook.url = config.get("url", hook.url)
        hook.secret = config.get("secret", hook.secret)
        hook.content_type = config.get("content_type", hook.content_type)

    def list_deliveries(self, call: Call, p: Params) -> Answer:
        """Newest first, ``per_page`` (default 30, max 100), the next page through a ``cursor``
        in ``Link`` (https://docs.github.com/en/rest/repos/webhooks#list-deliveries-for-a-repository-webhook)."""
        hook = self._hook(p)
        return not_found() if hook is None else self._deliveries_page(call, hook.id)

    def list_app_deliveries(self, call: Call, p: Params) -> Answer:
        """The App's own webhook, paged alike
        (https://docs.github.com/en/rest/apps/webhooks#list-deliveries-for-an-app-webhook)."""
        return self._deliveries_page(call, APP_HOOK_ID)

    def _deliveries_page(self, call: Call, hook_id: int) -> Answer:
        log = [_delivery_view(d) for d in reversed(self.deliveries) if d.get("hook_id") == hook_id]
        per_page = call.param("per_page", 30, 100)
        cursor = call.query.get("cursor", [""])[0]
        start = next((i for i, d in enumerate(log) if str(d["id"]) == cursor), 0)
        page, rest = log[start : start + per_page], log[start + per_page :]
        links = [({"per_page": per_page, "cursor": rest[0]["id"]}, "next")] if rest else []
        return 200, _link_header(call, links), page

    def redeliver(self, call: Call, p: Params) -> Answer:
        """202 Accepted; GitHub sends it later, as a new delivery with the same ``guid`` and
        ``redelivery: true`` (:meth:`on_redeliver`). 404 for an unknown delivery
        (https://docs.github.com/en/rest/repos/webhooks#redeliver-a-delivery-for-a-repository-webhook)."""
        hook = self._hook(p)
        original = self._delivery(None if hook is None else hook.id, int(p["delivery_id"]))
        if hook is None or original is None:
            return not_found()
        self.redelivered.append(original["id"])
        self.on_redeliver(hook, original)
        return 202, {}, {}

    def redeliver_app(self, call: Call, p: Params) -> Answer:
        """202 / 404, as for a repository webhook
        (https://docs.github.com/en/rest/apps/webhooks#redeliver-a-delivery-for-an-app-webhook).
        Recorded only: the model keeps no URL for the App's webhook."""
        original = self._delivery(APP_HOOK_ID, int(p["delivery_id"]))
        if original is None:
            return not_found()
        self.redelivered.append(original["id"])
        return 202, {}, {}

    def _delivery(self, hook_id: int | None, delivery_id: int) -> dict[str, Any] | None:
        return next(
            (d for d in self.deliveries if d["id"] == delivery_id and d.get("hook_id") == hook_id),
            None,
        )

    def on_redeliver(self, hook: Hook, delivery: dict[str, Any]) -> None:
        """Send a redelivery: the HTTP transport does (asynchronously); others only record."""

    # -- apps --------------------------------------------------------------------------------

    def get_app_by_slug(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/apps/apps#get-an-app: served to anyone for a
        public App; a private App needs a token, and answers 404 without one."""
        if self.app is None:
            return not_found()
        authorization = f"Bearer {call.token}" if call.token else ""
        status, body = self.app.app_by_slug(p["slug"], authorization)
        return status, {}, body

    # -- git -------------------------------------------------------------------------------

    def get_git_ref(self, call: Call, p: Params) -> Answer:
        status, body = git_ref_answer(self.refs, p["ref"])
        return status, {}, body

    def get_git_tag(self, call: Call, p: Params) -> Answer:
        status, body = git_tag_answer(self.tag_objects, p["sha"])
        return status, {}, body

    def compare(self, call: Call, p: Params) -> Answer:
        status, body = compare_answer(self.parents, p["base"], p["head"])
        return status, {}, body

    # -- rulesets, branch protection, environments ---------------------------------------

    def add_ruleset(self, scope: str, **ruleset: Any) -> dict[str, Any]:
        """Store a ruleset (``scope`` ``repos/O/R`` or ``orgs/O``); returns it with its id."""
        with self._lock:
            ruleset_id = int(ruleset.pop("id", None) or next(self._ids))
            stored = {
                "id": ruleset_id,
                "name": "ruleset",
                "target": "branch",
                "enforcement": "active",
                "conditions": {"ref_name": {"include": [], "exclude": []}},
                "rules": [],
                "bypass_actors": [],
                **ruleset,
                "scope": scope,
            }
            self.rulesets[ruleset_id] = stored
        return stored

    def _rulesets_for(self, owner: str, repo: str, parents: bool) -> list[dict[str, Any]]:
        """Rulesets that apply to the repository: its own, and (``parents``) its org's."""
        own, org = f"repos/{owner}/{repo}".lower(), f"orgs/{owner}".lower()
        return [
            r for r in self.rulesets.values()
            if r["scope"].lower() == own or (parents and r["scope"].lower() == org)
        ]  # fmt: skip

    @staticmethod
    def _ruleset_source(ruleset: Mapping[str, Any]) -> tuple[str, str]:
        kind, _, name = str(ruleset["scope"]).partition("/")
        return ("Repository" if kind == "repos" else "Organization"), name

    def _ruleset_view(self, ruleset: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
        source_type, source = self._ruleset_source(ruleset)
        view = {
            "id": ruleset["id"],
            "name": ruleset["name"],
            "target": ruleset["target"],
            "source_type": source_type,
            "source": source,
            "enforcement": ruleset["enforcement"],
            "node_id": f"RRS_{ruleset['id']}",
        }
        if full:
            view["conditions"] = ruleset["conditions"]
            view["rules"] = ruleset["rules"]
            if self.ruleset_writer:
                view["bypass_actors"] = ruleset["bypass_actors"]
        return view

    def list_rulesets(self, call: Call, p: Params) -> Answer:
        """Summaries (no ``conditions``, ``rules`` or ``bypass_actors``: those come from the
        single ruleset), filtered by ``targets`` (comma-separated ``branch``, ``tag``,
        ``push``) and, with ``includes_parents`` (default true), the organisation's too
        (https://docs.github.com/en/rest/repos/rules#get-all-repository-rulesets; the
        enforcement is shown whatever it is)."""
        parents = call.query.get("includes_parents", ["true"])[0].lower() != "false"
        targets = {t for t in call.query.get("targets", [""])[0].split(",") if t}
        found = [
            self._ruleset_view(r, full=False)
            for r in self._rulesets_for(p["owner"], p["repo"], parents)
            if not targets or r["target"] in targets
        ]
        return 200, {}, found

    def get_ruleset(self, call: Call, p: Params) -> Answer:
        """One ruleset with ``conditions`` and ``rules``; ``bypass_actors`` only for a caller
        with write access to it (https://docs.github.com/en/rest/repos/rules#get-a-repository-ruleset:
        "bypass_actors ... only returned ... with write access"); 404 when it does not apply
        to the repository."""
        parents = call.query.get("includes_parents", ["true"])[0].lower() != "false"
        ruleset = next(
            (r for r in self._rulesets_for(p["owner"], p["repo"], parents)
             if r["id"] == int(p["ruleset_id"])),
            None,
        )  # fmt: skip
        return not_found() if ruleset is None else (200, {}, self._ruleset_view(ruleset, full=True))

    def get_branch_rules(self, call: Call, p: Params) -> Answer:
        """Every rule of an *active* branch ruleset (the repository's or its organisation's)
        whose ``conditions.ref_name`` includes ``refs/heads/<branch>`` and does not exclude it;
        rulesets in ``evaluate`` or ``disabled`` are left out; the branch need not exist;
        each rule names its ``ruleset_source_type``, ``ruleset_source`` and ``ruleset_id``
        (https://docs.github.com/en/rest/repos/rules#get-rules-for-a-branch). Legacy branch
        protection is not among them (a separate API). Patterns: :func:`ref_name_matches`."""
        ref = f"refs/heads/{unquote(p['branch'])}"
        rules: list[dict[str, Any]] = []
        for ruleset in self._rulesets_for(p["owner"], p["repo"], parents=True):
            if ruleset["target"] != "branch" or ruleset["enforcement"] != "active":
                continue
            if not ref_name_matches(ruleset.get("conditions") or {}, ref):
                continue
            source_type, source = self._ruleset_source(ruleset)
            for rule in ruleset["rules"]:
                rules.append(
                    {**rule, "ruleset_source_type": source_type, "ruleset_source": source,
                     "ruleset_id": ruleset["id"]}
                )  # fmt: skip
        return 200, {}, rules

    def get_branch_protection(self, call: Call, p: Params) -> Answer:
        """Legacy branch protection of one branch; 404 ``Branch not protected`` without it
        (https://docs.github.com/en/rest/branches/branch-protection#get-branch-protection:
        200 / 404; needs ``administration: read``: without it GitHub answers 403/404 too)."""
        key = f"{p['owner']}/{p['repo']}:{unquote(p['branch'])}".lower()
        found = {k.lower(): v for k, v in self.branch_protections.items()}.get(key)
        if found is None:
            body = {"message": "Branch not protected", "documentation_url": DOCS, "status": "404"}
            return 404, {}, body
        return 200, {}, found

    def get_environment(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/deployments/environments#get-an-environment:
        ``name``, ``protection_rules`` (``required_reviewers`` with ``reviewers`` and
        ``prevent_self_review``, ``wait_timer``, ``branch_policy``),
        ``deployment_branch_policy``, ``can_admins_bypass``; 404 for an unknown name (the
        name is URL-encoded in the path)."""
        key = f"{p['owner']}/{p['repo']}:{unquote(p['name'])}".lower()
        found = {k.lower(): v for k, v in self.environments.items()}.get(key)
        if found is None:
            return not_found()
        return 200, {}, {"name": unquote(p["name"]), "protection_rules": [], **found}

    # -- runner groups -----------------------------------------------------------------------

    def _groups(self, org: str) -> dict[int, dict[str, Any]]:
        """The organisation's groups: the built-in "Default" (id 1, every repository)
        and the stored ones."""
        default = {
            "id": 1, "name": "Default", "visibility": "all", "default": True,
            "allows_public_repositories": True, "restricted_to_workflows": False,
            "selected_workflows": [], "workflow_restrictions_read_only": False,
            "org": org, "repository_ids": [],
        }  # fmt: skip
        groups = {1: default}
        groups.update(
            {i: g for i, g in self.runner_groups.items() if g["org"].lower() == org.lower()}
        )
        return groups

    def _group_view(self, group: Mapping[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in group.items() if k not in ("org", "repository_ids")}
        base = f"/orgs/{group['org']}/actions/runner-groups/{group['id']}"
        view["runners_url"] = base + "/runners"
        if group.get("visibility") == "selected":
            view["selected_repositories_url"] = base + "/repositories"
        return view

    def list_runner_groups(self, call: Call, p: Params) -> Answer:
        """``{total_count, runner_groups}``
        (https://docs.github.com/en/rest/actions/self-hosted-runner-groups#list-self-hosted-runner-groups-for-an-organization)."""
        groups = [self._group_view(g) for g in self._groups(p["org"]).values()]
        return 200, {}, {"total_count": len(groups), "runner_groups": groups}

    def get_runner_group(self, call: Call, p: Params) -> Answer:
        """https://docs.github.com/en/rest/actions/self-hosted-runner-groups#get-a-self-hosted-runner-group-for-an-organization;
        404 for an unknown id."""
        group = self._groups(p["org"]).get(int(p["group_id"]))
        return not_found() if group is None else (200, {}, self._group_view(group))

    _GROUP_FIELDS = (
        "name", "visibility", "allows_public_repositories", "restricted_to_workflows",
        "selected_workflows",
    )  # fmt: skip

    def create_runner_group(self, call: Call, p: Params) -> Answer:
        """201 with the group; ``name`` required (422), ``visibility`` (default ``all``),
        ``selected_repository_ids``, ``allows_public_repositories`` (default false),
        ``restricted_to_workflows`` (default false), ``selected_workflows``
        (https://docs.github.com/en/rest/actions/self-hosted-runner-groups#create-a-self-hosted-runner-group-for-an-organization)."""
        body = call.body if isinstance(call.body, dict) else {}
        if not body.get("name"):
            return 422, {}, {"message": "Validation Failed", "errors": [{"field": "name"}]}
        group_id = next(self._ids)
        group = {
            "id": group_id, "name": str(body["name"]), "visibility": body.get("visibility", "all"),
            "default": False,
            "allows_public_repositories": bool(body.get("allows_public_repositories", False)),
            "restricted_to_workflows": bool(body.get("restricted_to_workflows", False)),
            "selected_workflows": list(body.get("selected_workflows", [])),
            "workflow_restrictions_read_only": False,
            "org": p["org"], "repository_ids": list(body.get("selected_repository_ids", [])),
        }  # fmt: skip
        self.runner_groups[group_id] = group
        return 201, {}, self._group_view(group)

    def update_runner_group(self, call: Call, p: Params) -> Answer:
        """``name`` (required: 422 without), ``visibility``, ``allows_public_repositories``,
        ``restricted_to_workflows``, ``selected_workflows``; repositories are set with
        ``PUT .../repositories``, not here; 404 for an unknown id
        (https://docs.github.com/en/rest/actions/self-hosted-runner-groups#update-a-self-hosted-runner-group-for-an-organization).
        Workflow fields of a group whose ``workflow_restrictions_read_only`` is true stay as
        they are (an enterprise fixes them)."""
        group = self.runner_groups.get(int(p["group_id"]))
        if group is None or group["org"].lower() != p["org"].lower():
            return not_found()
        body = call.body if isinstance(call.body, dict) else {}
        if not body.get("name"):
            return 422, {}, {"message": "Validation Failed", "errors": [{"field": "name"}]}
        for key in self._GROUP_FIELDS:
            if key in body:
                if group.get("workflow_restrictions_read_only") and "workflow" in key:
                    continue
                group[key] = body[key]
        return 200, {}, self._group_view(group)

    def list_group_repositories(self, call: Call, p: Params) -> Answer:
        """``{total_count, repositories}``; 404 for an unknown group
        (https://docs.github.com/en/rest/actions/self-hosted-runner-groups#list-repository-access-to-a-self-hosted-runner-group-in-an-organization)."""
        group = self._groups(p["org"]).get(int(p["group_id"]))
        if group is None:
            return not_found()
        for full_name in self.repository_ids:
            self.repository_id(full_name)
        repos = [
            {"id": i, "full_name": self._repository_names.get(i, f"{p['org']}/repo-{i}")}
            for i in group["repository_ids"]
        ]
        return 200, {}, {"total_count": len(repos), "repositories": repos}

    def set_group_repositories(self, call: Call, p: Params) -> Answer:
        """Replace the group's repositories with ``selected_repository_ids``: 204; 404 for an
        unknown group
        (https://docs.github.com/en/rest/actions/self-hosted-runner-groups#set-repository-access-for-a-self-hosted-runner-group-in-an-organization)."""
        group = self.runner_groups.get(int(p["group_id"]))
        if group is None or group["org"].lower() != p["org"].lower():
            return not_found()
        body = call.body if isinstance(call.body, dict) else {}
        group["repository_ids"] = [int(i) for i in body.get("selected_repository_ids", [])]
        return 204, {}, None


#: Every endpoint the model serves. To add one: a handler method and a line here.
ROUTES: tuple[Route, ...] = (
    Route("GET", r"/meta", GitHubModel.get_meta, public=True),
    Route("GET", r"/user", GitHubModel.get_user),
    Route("GET", _SCOPE, GitHubModel.get_scope),
    Route("POST", _SCOPE + r"/actions/runners/generate-jitconfig", GitHubModel.generate_jitconfig),
    Route("GET", _SCOPE + r"/actions/runners", GitHubModel.list_runners),
    Route("GET", _SCOPE + r"/actions/runners/(?P<runner_id>\d+)", GitHubModel.get_runner),
    Route("DELETE", _SCOPE + r"/actions/runners/(?P<runner_id>\d+)", GitHubModel.delete_runner),
    Route("GET", _REPO + r"/actions/jobs/(?P<job_id>\d+)", GitHubModel.get_job),
    Route("GET", _REPO + r"/actions/runs/(?P<run_id>\d+)", GitHubModel.get_run),
    Route(
        "GET",
        _REPO + r"/actions/runs/(?P<run_id>\d+)/pending_deployments",
        GitHubModel.get_pending_deployments,
    ),
    Route(
        "POST",
        _REPO + r"/actions/runs/(?P<run_id>\d+)/pending_deployments",
        GitHubModel.review_pending_deployments,
    ),
    Route(
        "GET",
        _REPO + r"/deployments/(?P<deployment_id>\d+)/statuses",
        GitHubModel.list_deployment_statuses,
    ),
    Route("GET", _SCOPE + r"/hooks", GitHubModel.list_hooks),
    Route("POST", _SCOPE + r"/hooks", GitHubModel.create_hook),
    Route("PATCH", _SCOPE + r"/hooks/(?P<hook_id>\d+)", GitHubModel.update_hook),
    Route("GET", _SCOPE + r"/hooks/(?P<hook_id>\d+)/deliveries", GitHubModel.list_deliveries),
    Route(
        "POST",
        _SCOPE + r"/hooks/(?P<hook_id>\d+)/deliveries/(?P<delivery_id>\d+)/attempts",
        GitHubModel.redeliver,
    ),
    Route("GET", r"/app/hook/deliveries", GitHubModel.list_app_deliveries),
    Route("POST", r"/app/hook/deliveries/(?P<delivery_id>\d+)/attempts", GitHubModel.redeliver_app),
    Route("GET", r"/apps/(?P<slug>[^/]+)", GitHubModel.get_app_by_slug, public=True),
    Route("GET", _REPO + r"/git/ref/(?P<ref>.+)", GitHubModel.get_git_ref),
    Route("GET", _REPO + r"/git/tags/(?P<sha>[0-9a-f]+)", GitHubModel.get_git_tag),
    Route("GET", _REPO + r"/compare/(?P<base>[^./]+)\.\.\.(?P<head>[^./]+)", GitHubModel.compare),
    Route("GET", _REPO + r"/releases/latest", GitHubModel.get_latest_release, public=True),
    Route("GET", _REPO + r"/releases", GitHubModel.list_releases, public=True),
    Route("GET", _SCOPE + r"/actions/runners/downloads", GitHubModel.list_runner_downloads),
    Route("GET", _REPO + r"/rules/branches/(?P<branch>.+)", GitHubModel.get_branch_rules),
    Route("GET", _REPO + r"/rulesets", GitHubModel.list_rulesets),
    Route("GET", _REPO + r"/rulesets/(?P<ruleset_id>\d+)", GitHubModel.get_ruleset),
    Route("GET", _REPO + r"/branches/(?P<branch>.+)/protection", GitHubModel.get_branch_protection),
    Route("GET", _REPO + r"/environments/(?P<name>[^/]+)", GitHubModel.get_environment),
    Route("GET", _GROUPS, GitHubModel.list_runner_groups),
    Route("POST", _GROUPS, GitHubModel.create_runner_group),
    Route("GET", _GROUPS + r"/(?P<group_id>\d+)", GitHubModel.get_runner_group),
    Route("PATCH", _GROUPS + r"/(?P<group_id>\d+)", GitHubModel.update_runner_group),
    Route("GET", _GROUPS + r"/(?P<group_id>\d+)/repositories", GitHubModel.list_group_repositories),
    Route("PUT", _GROUPS + r"/(?P<group_id>\d+)/repositories", GitHubModel.set_group_repositories),
)
_COMPILED = tuple((route, re.compile(route.pattern)) for route in ROUTES)


def _matches(call: Call) -> list[tuple[Route, Params]]:
    found = []
    for route, pattern in _COMPILED:
        if route.method == call.method and (m := pattern.fullmatch(call.path)):
            found.append((route, {k: v for k, v in m.groupdict().items() if v is not None}))
    return found


def _link_header(call: Call, links: list[tuple[dict[str, Any], str]]) -> dict[str, str]:
    """GitHub's ``Link`` header (RFC 8288) for the given query strings and relations."""
    if not links:
        return {}
    return {
        "Link": ", ".join(
            f'<{call.base_url}{call.path}?{urlencode(query)}>; rel="{rel}"' for query, rel in links
        )
    }


def _delivery_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery as the REST API lists it (no body)."""
    return {k: v for k, v in entry.items() if not k.startswith("_")}


def _same_env(a: str, b: str) -> bool:
    """ "Environment names are not case sensitive" (docs.github.com, manage-environments)."""
    return a.casefold() == b.casefold()


def _pending_item(environment_id: int, name: str) -> dict[str, Any]:
    """One ``pending_deployments`` item, the fields GitHub's schema lists."""
    return {
        "environment": {"id": environment_id, "node_id": "EN_x", "name": name, "url": "",
                        "html_url": ""},
        "wait_timer": 0,
        "wait_timer_started_at": None,
        "current_user_can_approve": True,
        "reviewers": [{"type": "User", "reviewer": {"login": "octocat", "id": 1}}],
    }  # fmt: skip


def _public(runner: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in runner.items() if k != "scope"}
