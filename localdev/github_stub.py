"""A GitHub REST API stand-in: the calls the webhook handler and reconciler make.

It serves, for ``repos/{owner}/{repo}`` and ``orgs/{org}`` scopes::

    POST   {scope}/actions/runners/generate-jitconfig   201 runner + encoded_jit_config
    GET    {scope}/actions/runners?per_page=N           200 {"total_count", "runners"}
    GET    {scope}/actions/runners/{id}                 200 / 404
    DELETE {scope}/actions/runners/{id}                 204 / 404
    GET    repos/{owner}/{repo}/actions/jobs/{id}       200 {"id", "status": "queued", ...}
    GET    repos/{owner}/{repo}/actions/runs/{id}       200 {"id", "status": "queued"}
    GET    meta                                         200 {"hooks": [...]} (no token needed)
    GET    {scope}/hooks/{id}/deliveries                200 [delivery, ...] newest first
    POST   {scope}/hooks/{id}/deliveries/{id}/attempts  202, then redelivers (same guid)

It also plays GitHub's webhook sender: :meth:`GitHubStub.add_hook` registers a
webhook (URL, secret) and :meth:`GitHubStub.deliver` POSTs a signed delivery to
it *from* ``hook_source`` (a loopback address, the one ``/meta`` lists under
``hooks``), recording the answer as GitHub's delivery log does. GitHub never
retries a failed delivery on its own; a redelivery is asked for through the API
and sent asynchronously, as a new delivery with the same ``guid`` and
``redelivery: true``
(https://docs.github.com/en/webhooks/testing-and-troubleshooting-webhooks/redelivering-webhooks).
    GET    repos/{owner}/{repo}/git/ref/{heads|tags}/{name}   200 ref / 404
    GET    repos/{owner}/{repo}/git/tags/{sha}          200 annotated tag object / 404
    GET    repos/{owner}/{repo}/compare/{base}...{head} 200 {"status": "ahead"...} / 404

Every request is recorded (method, path, query, JSON body, whether an
``Authorization`` header was present -- never its value). A request without
one is answered 401, as GitHub does. With ``app`` set (a
``localdev.github_app_double.GitHubAppDouble``), GitHub's App endpoints are served
and every other request needs a live installation token allowed there.
:meth:`GitHubStub.fail` makes the next matching requests fail (5xx, 429...) to exercise retries.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from localdev._background import BackgroundHTTPServer, Service
from localdev.github_app_double import GitHubAppDouble
from localdev.runner_double import configured_files, jit_config

_SCOPE = r"/(?:repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)|orgs/(?P<org>[^/]+))"
_JIT = re.compile(_SCOPE + r"/actions/runners/generate-jitconfig$")
_RUNNERS = re.compile(_SCOPE + r"/actions/runners$")
_RUNNER = re.compile(_SCOPE + r"/actions/runners/(?P<id>\d+)$")
_JOB = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/jobs/(?P<id>\d+)$")
_RUN = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/runs/(?P<id>\d+)$")
_DELIVERIES = re.compile(_SCOPE + r"/hooks/(?P<hook>\d+)/deliveries$")
_ATTEMPTS = re.compile(_SCOPE + r"/hooks/(?P<hook>\d+)/deliveries/(?P<id>\d+)/attempts$")
_GIT_REF = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/git/ref/(?P<ref>.+)$")
_GIT_TAG = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/git/tags/(?P<sha>[0-9a-f]+)$")
_COMPARE = re.compile(
    r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/compare/(?P<base>[^./]+)\.\.\.(?P<head>[^./]+)$"
)

_NOT_FOUND = {
    "message": "Not Found",
    "documentation_url": "https://docs.github.com/rest",
    "status": "404",
}


def git_ref_answer(refs: Mapping[str, Mapping[str, str]], ref: str) -> tuple[int, Any]:
    """``GET /repos/{o}/{r}/git/ref/{ref}`` over ``refs`` (``"heads/main"`` -> object).

    As GitHub documents it (docs.github.com/en/rest/git/refs#get-a-reference):
    the ref is ``heads/<branch>`` or ``tags/<tag>``, matched exactly (no
    prefix matching, unlike ``git/refs``); a missing ref answers 404. The
    object is ``{"type": "commit", "sha"}`` for branches and lightweight tags,
    ``{"type": "tag", "sha"}`` (a tag object) for annotated tags.
    """
    target = refs.get(unquote(ref))
    if target is None:
        return 404, _NOT_FOUND
    return 200, {"ref": f"refs/{unquote(ref)}", "node_id": "REF_x", "object": dict(target)}


def compare_answer(parents: Mapping[str, Sequence[str]], base: str, head: str) -> tuple[int, Any]:
    """``GET /repos/{o}/{r}/compare/{base}...{head}`` over a commit graph (sha -> parents).

    docs.github.com/en/rest/commits/commits#compare-two-commits: ``status`` is
    ``identical``, ``ahead`` (head has commits since base: base is in head's
    history), ``behind`` or ``diverged``; an unknown commit answers 404.
    """
    known = set(parents) | {p for ps in parents.values() for p in ps}
    if base not in known or head not in known:
        return 404, _NOT_FOUND

    def history(sha: str) -> set[str]:
        seen, todo = {sha}, [sha]
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    of_base, of_head = history(base), history(head)
    ahead_by, behind_by = len(of_head - of_base), len(of_base - of_head)
    status = (
        "identical" if base == head
        else "ahead" if base in of_head
        else "behind" if head in of_base
        else "diverged"
    )  # fmt: skip
    body = {"status": status, "ahead_by": ahead_by, "behind_by": behind_by}
    return 200, {**body, "commits": [], "files": []}


def git_tag_answer(tag_objects: Mapping[str, Mapping[str, Any]], sha: str) -> tuple[int, Any]:
    """``GET /repos/{o}/{r}/git/tags/{sha}``: an annotated tag object and what it tags, or 404.

    docs.github.com/en/rest/git/tags#get-a-tag; ``tag_objects`` maps the tag
    object's sha to ``{"tag": name, "object": {"type", "sha"}}``.
    """
    tag = tag_objects.get(sha)
    if tag is None:
        return 404, _NOT_FOUND
    return 200, {"sha": sha, "node_id": "TAG_x", **tag}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received. The token itself is never kept."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorized: bool
    status: int


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    remaining: int
    headers: dict[str, str]


@dataclass(frozen=True)
class Hook:
    """A webhook: where deliveries go and the secret they are signed with."""

    id: int
    scope: str
    url: str
    secret: str


@dataclass
class GitHubStub(Service):
    """The stand-in server. ``start()`` binds 127.0.0.1 on a free port."""

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    #: runner id -> runner object (as the runners API shows it), scope path under "scope".
    runners: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: encoded JIT configs handed out, in order (the demo checks they reach the task).
    issued_configs: list[str] = field(default_factory=list)
    #: job id -> status to report (default "queued").
    job_status: dict[int, str] = field(default_factory=dict)
    #: Where this "GitHub" sends webhook deliveries from (listed in /meta ``hooks``).
    hook_source: str = "127.0.0.2"
    hooks: dict[int, Hook] = field(default_factory=dict)
    #: GitHub's delivery log, oldest first (``body``/``headers`` kept to redeliver).
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    #: job id -> fields of the job as GitHub shows it (labels, run_id, head_branch, head_sha).
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: git refs of every repository: "heads/main" / "tags/v1" -> {"type", "sha"}.
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: annotated tag objects: sha -> {"tag", "object": {"type", "sha"}}.
    tag_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the commit graph for compare: sha -> parent shas.
    parents: dict[str, list[str]] = field(default_factory=dict)
    #: GitHub's side of a GitHub App (GITHUB_AUTH=app); None: any token is accepted.
    app: GitHubAppDouble | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _failures: list[_Failure] = field(default_factory=list, repr=False)
    _http: BackgroundHTTPServer = field(
        default_factory=lambda: BackgroundHTTPServer("github-stub"), repr=False
    )
    _senders: list[threading.Thread] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        """Base URL to use as ``GITHUB_API_URL``."""
        return self._http.base_url

    def start(self) -> GitHubStub:
        """Start serving in a daemon thread; returns self."""
        if self._http.running:
            return self
        stub = self

        class Handler(_StubHandler):
            owner = stub

        self._http.start(self.host, self.port, Handler)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        self._http.stop()

    def fail(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and regex ``path_pattern``
        (searched in the path) with ``status`` instead of the normal answer."""
        with self._lock:
            self._failures.append(
                _Failure(method.upper(), re.compile(path_pattern), status, times, headers or {})
            )

    def calls(self, method: str | None = None, contains: str = "") -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and a path substring."""
        with self._lock:
            recorded = list(self.requests)
        return [
            r
            for r in recorded
            if (method is None or r.method == method.upper()) and contains in r.path
        ]

    # -- GitHub as the webhook sender ------------------------------------------

    def add_hook(self, scope: str, url: str, secret: str) -> Hook:
        """Register a webhook (``scope`` is ``repos/O/R`` or ``orgs/O``)."""
        with self._lock:
            hook = Hook(next(self._ids), scope, url, secret)
            self.hooks[hook.id] = hook
        return hook

    def deliver(self, hook: Hook, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Sign and POST one delivery from ``hook_source``; the delivery log entry."""
        body = json.dumps(payload).encode()
        return self._send(hook, event, body, str(uuid.uuid4()), redelivery=False)

    def wait_for_redeliveries(self, timeout: float = 30.0) -> None:
        """Block until the redeliveries asked for so far have been sent."""
        with self._lock:
            senders, self._senders = self._senders, []
        for sender in senders:
            sender.join(timeout)

    def _send(
        self, hook: Hook, event: str, body: bytes, guid: str, *, redelivery: bool
    ) -> dict[str, Any]:
        from localdev.deliveries import USER_AGENT, sign

        target = urlsplit(hook.url)
        connection = http.client.HTTPConnection(
            target.hostname or "127.0.0.1",
            target.port or 80,
            timeout=10,
            source_address=(self.hook_source, 0),
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(hook.id),
            "X-Hub-Signature-256": sign(hook.secret, body),
        }
        try:
            connection.request("POST", target.path or "/", body=body, headers=headers)
            status = connection.getresponse().status
        except OSError:  # GitHub logs a delivery it could not complete with no status
            status = 0
        finally:
            connection.close()
        action = json.loads(body).get("action")
        with self._lock:
            entry = {
                "id": next(self._ids),
                "guid": guid,
                "delivered_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "redelivery": redelivery,
                "status_code": status,
                "status": "OK" if 200 <= status < 300 else "failed",
                "event": event,
                "action": action,
                "hook_id": hook.id,
                "_body": body,
            }
            self.deliveries.append(entry)
        return _delivery_view(entry)

    def _redeliver(self, hook: Hook, delivery_id: int) -> tuple[int, dict[str, str], Any]:
        original = next((d for d in self.deliveries if d["id"] == delivery_id), None)
        if original is None or original["hook_id"] != hook.id:
            return 404, {}, {"message": "Not Found"}
        sender = threading.Thread(
            target=self._send,
            args=(hook, original["event"], original["_body"], original["guid"]),
            kwargs={"redelivery": True},
            name="github-stub-redelivery",
            daemon=True,
        )
        self._senders.append(sender)
        sender.start()
        return 202, {}, {}

    # -- request handling (called from server threads) --------------------

    def _injected_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.remaining > 0 and failure.method == method and failure.pattern.search(path):
                failure.remaining -= 1
                return failure
        return None

    def handle(
        self, method: str, path: str, body: Any, authorization: str
    ) -> tuple[int, dict[str, str], Any]:
        """The answer to one request: (status, extra headers, JSON body or None)."""
        with self._lock:
            failure = self._injected_failure(method, path)
            if failure is not None:
                return failure.status, failure.headers, {"message": "injected failure"}
            if method == "GET" and path == "/meta":  # public: no token needed
                return (
                    200,
                    {},
                    {
                        "verifiable_password_authentication": False,
                        "hooks": [f"{self.hook_source}/32"],
                    },
                )
            if not authorization.strip():
                return 401, {}, {"message": "Requires authentication"}
            if self.app is not None:
                answer = self.app.answer(method, path, authorization, body)
                answer = answer or self.app.refusal(method, path, authorization)
                if answer is not None:
                    return answer[0], {}, answer[1]
            return self._route(method, path, body)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and (m := _JIT.match(path)):
            return self._generate_jitconfig(_scope_of(m), body)
        if method == "GET" and (m := _RUNNERS.match(path)):
            scope = _scope_of(m)
            runners = [_public(r) for r in self.runners.values() if r["scope"] == scope]
            return 200, {}, {"total_count": len(runners), "runners": runners}
        if m := _RUNNER.match(path):
            runner = self.runners.get(int(m["id"]))
            if runner is None or runner["scope"] != _scope_of(m):
                return 404, {}, {"message": "Not Found"}
            if method == "GET":
                return 200, {}, _public(runner)
            if method == "DELETE":
                del self.runners[int(m["id"])]
                return 204, {}, None
        if (m := _DELIVERIES.match(path)) or (m := _ATTEMPTS.match(path)):
            hook = self.hooks.get(int(m["hook"]))
            if hook is None or hook.scope != _scope_of(m):
                return 404, {}, {"message": "Not Found"}
            if method == "POST" and "id" in m.groupdict() and m["id"] is not None:
                return self._redeliver(hook, int(m["id"]))
            if method == "GET" and _DELIVERIES.match(path):
                log = [_delivery_view(d) for d in self.deliveries if d["hook_id"] == hook.id]
                return 200, {}, list(reversed(log))[:100]
        if method == "GET" and (read := self._job_answer(path)) is not None:
            return read[0], {}, read[1]
        return 404, {}, {"message": "Not Found (not served by the local GitHub stand-in)"}

    def _job_answer(self, path: str) -> tuple[int, Any] | None:
        """What the dispatcher reads about a job: the job, its run, the git refs and tags."""
        if m := _JOB.match(path):
            job_id = int(m["id"])
            job = {**self.jobs.get(job_id, {}), "id": job_id}
            return 200, {**job, "status": self.job_status.get(job_id, "queued")}
        if m := _RUN.match(path):
            return 200, {"id": int(m["id"]), "status": "queued"}
        if m := _GIT_REF.match(path):
            return git_ref_answer(self.refs, m["ref"])
        if m := _GIT_TAG.match(path):
            return git_tag_answer(self.tag_objects, m["sha"])
        if m := _COMPARE.match(path):
            return compare_answer(self.parents, m["base"], m["head"])
        return None

    def _generate_jitconfig(self, scope: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("labels"):
            return 422, {}, {"message": "Invalid request: name and labels are required"}
        name = str(body["name"])
        if any(r["name"] == name and r["scope"] == scope for r in self.runners.values()):
            return 409, {}, {"message": "Already exists - A runner with the same name exists"}
        runner_id = next(self._ids)
        labels = [{"id": i + 1, "name": str(label)} for i, label in enumerate(body["labels"])]
        runner = {
            "id": runner_id,
            "name": name,
            "os": "linux",
            "status": "online",
            "busy": False,
            "labels": labels,
            "runner_group_id": body.get("runner_group_id", 1),
            "scope": scope,
        }
        self.runners[runner_id] = runner
        # GitHub's shape (what the runner and runner/jit_config.py decode), fake values.
        encoded = jit_config(configured_files(name))
        self.issued_configs.append(encoded)
        answer = {"runner": _public(runner), "encoded_jit_config": encoded}
        return 201, {}, answer


def _scope_of(match: re.Match[str]) -> str:
    if match["org"]:
        return f"orgs/{match['org']}"
    return f"repos/{match['owner']}/{match['repo']}"


def _delivery_view(entry: dict[str, Any]) -> dict[str, Any]:
    """A delivery as the REST API lists it (no body)."""
    return {k: v for k, v in entry.items() if not k.startswith("_")}


def _public(runner: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in runner.items() if k != "scope"}


class _StubHandler(BaseHTTPRequestHandler):
    owner: GitHubStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are recorded, not logged."""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = {"_unparsed": raw[:200].decode("utf-8", "replace")}
        authorization = self.headers.get("Authorization", "")
        authorized = bool(authorization.strip())
        status, headers, answer = self.owner.handle(self.command, parts.path, body, authorization)
        with self.owner._lock:
            self.owner.requests.append(
                RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    body=body,
                    authorized=authorized,
                    status=status,
                )
            )
        payload = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve
    do_DELETE = _serve
    do_PATCH = _serve
    do_PUT = _serve
