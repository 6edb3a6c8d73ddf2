"""Issues 14 and 23 end to end: floods from outside GitHub and through it, ours in between.

The local endpoint runs the real handler behind models of what AWS puts in
front of it (``localdev.firewall``): the web ACL, whose source list is read from
the GitHub stand-in's ``/meta`` by the same client and parser as the refresh
Lambda, then the stage throttle (rate 20/s, burst 40) on a clock the test moves.
The GitHub stand-in delivers the signed jobs from its ``hooks`` address
(127.0.0.2) and keeps GitHub's delivery log; the flood comes from 127.0.0.9, or
(issue 23) from GitHub itself: a stranger's webhook aimed at our URL, delivered from
the same GitHub address as ours. The web ACL model's recorded-hook rule reads a WAF
regex pattern set in moto that ``lambda_fn.hook_filter.sync`` keeps on the webhook
``setup`` recorded, as the hook filter Lambda does in AWS.
"""

from __future__ import annotations

import http.client
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from lambda_fn import contract
from localdev import deliveries
from localdev.firewall import StageThrottle
from localdev.github_stub import Hook
from localdev.runtime import LocalRuntime, local_runtime

CONTEXT: dict[str, Any] = {
    "stack_name": "Abuse",
    "profiles": [{"name": "default", "labels": ["self-hosted", "linux", "arm64"]}],
}
LABELS = ["self-hosted", "linux", "arm64"]
ATTACKER = "127.0.0.9"
#: Each round the clock moves 0.5 s: 10 new tokens at 20/s, against 21 requests. Without
#: the web ACL the bucket's burst (40) is spent in round 3, whatever the number of jobs, and
#: every round after is round 4 again (the flood takes the 10 new tokens, the job is
#: throttled): 10 jobs show what 30 did (2 admitted, the rest throttled), at a third of the
#: HTTP requests.
JOBS = 10
FLOOD_PER_JOB = 20
ROUND_SECONDS = 0.5


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def junk(url: str) -> int:
    """One unsigned POST from the attacker's address; the HTTP status."""
    target = urlsplit(url)
    connection = http.client.HTTPConnection(
        target.hostname or "", target.port, timeout=10, source_address=(ATTACKER, 0)
    )
    try:
        connection.request(
            "POST", target.path, body=b'{"action":"queued"}',
            headers={"Content-Type": "application/json", "X-GitHub-Event": "workflow_job"},
        )  # fmt: skip
        return connection.getresponse().status
    finally:
        connection.close()


def flood_with_jobs(
    runtime: LocalRuntime, first_job: int
) -> tuple[Counter[int], list[dict[str, Any]]]:
    """Interleave the flood with signed deliveries; (flood statuses, GitHub's delivery log)."""
    hook = runtime.github.add_hook(
        "repos/octo-org/app", runtime.webhook_url, runtime.webhook_secret
    )
    record_webhook(runtime)
    throttle = runtime.endpoint.throttle
    assert isinstance(throttle, StageThrottle) and isinstance(throttle.clock, ManualClock)
    flood: Counter[int] = Counter()
    log = []
    for job_id in range(first_job, first_job + JOBS):
        flood.update(junk(runtime.webhook_url) for _ in range(FLOOD_PER_JOB))
        payload = deliveries.workflow_job_payload(job_id, LABELS)
        log.append(runtime.github.deliver(hook, "workflow_job", payload))
        throttle.clock.now += ROUND_SECONDS
    return flood, log


def tasks_per_job(runtime: LocalRuntime) -> Counter[str]:
    tags = [{t["key"]: t["value"] for t in task["tags"]} for task in runtime.stack.tasks()]
    return Counter(tag[contract.TAG_GITHUB_JOB_ID] for tag in tags)


@pytest.fixture
def protected() -> Iterator[LocalRuntime]:
    throttle = StageThrottle(rate=20, burst=40, clock=ManualClock())
    with local_runtime(CONTEXT, web_acl=True, throttle=throttle) as runtime:
        yield runtime


@pytest.fixture
def unprotected() -> Iterator[LocalRuntime]:
    """``webhook_firewall: false``: only the throttle stands in front."""
    throttle = StageThrottle(rate=20, burst=40, clock=ManualClock())
    with local_runtime(CONTEXT, throttle=throttle) as runtime:
        yield runtime


def test_flood_from_outside_github_never_reaches_the_throttle(protected: LocalRuntime) -> None:
    flood, log = flood_with_jobs(protected, 10_000)
    assert flood == Counter({403: JOBS * FLOOD_PER_JOB})  # all refused by the web ACL
    assert [d["status_code"] for d in log] == [200] * JOBS  # no signed delivery was throttled
    assert protected.endpoint.throttle is not None
    assert protected.endpoint.throttle.throttled == 0
    assert protected.endpoint.source_filter is not None
    assert protected.endpoint.source_filter.blocked_outside == JOBS * FLOOD_PER_JOB
    assert tasks_per_job(protected) == Counter({str(10_000 + i): 1 for i in range(JOBS)})
    # Nothing failed, so the reconciler has nothing to redeliver.
    record_webhook(protected)
    assert reconcile().get("redelivered", 0) == 0


def test_without_the_web_acl_the_flood_starves_github_until_the_reconciler_redelivers(
    unprotected: LocalRuntime,
) -> None:
    """The attack of issue 14, and the recovery: every job launched exactly once."""
    flood, log = flood_with_jobs(unprotected, 20_000)
    failed = [d for d in log if d["status_code"] == 429]
    assert len(failed) >= JOBS // 2, Counter(d["status_code"] for d in log)  # the attack works
    assert set(flood) == {401, 429}  # junk that got through was refused by the HMAC check
    launched_before = tasks_per_job(unprotected)
    assert len(launched_before) == JOBS - len(failed)

    throttle = unprotected.endpoint.throttle
    assert throttle is not None and isinstance(throttle.clock, ManualClock)
    throttle.clock.now += 60  # the flood is over
    record_webhook(unprotected)
    report = reconcile()
    unprotected.github.wait_for_redeliveries()
    assert report["redelivered"] == len(failed)
    assert tasks_per_job(unprotected) == Counter({str(20_000 + i): 1 for i in range(JOBS)})
    # Once each: one redelivery per failed delivery, and a second run asks for none.
    redeliveries = Counter(d["guid"] for d in unprotected.github.deliveries if d["redelivery"])
    assert redeliveries == Counter({d["guid"]: 1 for d in failed})
    assert reconcile().get("redelivered", 0) == 0


def record_webhook(runtime: LocalRuntime, hook: Hook | None = None) -> None:
    """What ``fargate-runners setup`` does after creating the webhook, and what follows in
    AWS: the parameter's change runs the hook filter Lambda (with the web ACL)."""
    if hook is None:
        (hook,) = runtime.github.hooks.values()
    runtime.stack.client("ssm").put_parameter(
        Name=runtime.stack.hook_parameter, Value=f"{hook.scope}/hooks/{hook.id}", Overwrite=True
    )
    if runtime.endpoint.source_filter is not None:
        from lambda_fn.hook_filter import sync

        sync()


#: Our hook's rate limit in this test, and the stranger's deliveries: 1.5 times the limit
#: (the web ACL's default limit is 2,000 per 5 minutes; 3,000 deliveries over HTTP cost
#: 30 s of CPU to prove what 30 against a limit of 20 prove: were the stranger's requests
#: counted against ours, ours would be over the limit and blocked).
STRANGER_RATE_LIMIT = 20
STRANGER_DELIVERIES = 30


def test_a_strangers_webhook_through_github_cannot_silence_ours(protected: LocalRuntime) -> None:
    """Issue 23: GitHub's addresses deliver every customer's webhooks. More deliveries of a
    stranger's hook than our hook's rate limit, aimed at our URL, from the very address ours
    come from, then ours: admitted (the stranger's never counted against it) and launched."""
    github = protected.github
    ours = github.add_hook("repos/octo-org/app", protected.webhook_url, protected.webhook_secret)
    theirs = github.add_hook("repos/stranger/spam", protected.webhook_url, "their-own-secret")
    source_filter = protected.endpoint.source_filter
    assert source_filter is not None
    source_filter.rate_limit = STRANGER_RATE_LIMIT
    assert STRANGER_DELIVERIES > STRANGER_RATE_LIMIT
    payload = deliveries.workflow_job_payload(30_000, LABELS)

    # Before setup has recorded a hook the web ACL admits no delivery (fail closed).
    assert github.deliver(ours, "workflow_job", payload)["status_code"] == 403
    record_webhook(protected, ours)

    statuses = Counter(
        github.deliver(theirs, "workflow_job", payload)["status_code"]
        for _ in range(STRANGER_DELIVERIES)
    )
    assert statuses == Counter({403: STRANGER_DELIVERIES})  # all from GitHub, none ours
    assert source_filter.blocked_other_hooks == STRANGER_DELIVERIES + 1
    assert source_filter.blocked_rate == 0

    assert github.deliver(ours, "workflow_job", payload)["status_code"] == 200
    assert tasks_per_job(protected) == Counter({"30000": 1})


def test_the_rate_limit_is_per_hook_and_needs_the_hookshot_agent(
    protected: LocalRuntime,
) -> None:
    """Our own hook over the limit is blocked; a request from a GitHub address without
    GitHub's User-Agent or hook id header is blocked before the rate rule could skip it."""
    ours = protected.github.add_hook(
        "repos/octo-org/app", protected.webhook_url, protected.webhook_secret
    )
    record_webhook(protected, ours)
    source_filter = protected.endpoint.source_filter
    assert source_filter is not None
    headers = {"User-Agent": "GitHub-Hookshot/x", "X-GitHub-Hook-ID": str(ours.id)}
    assert source_filter.admits(protected.github.hook_source, headers)
    assert not source_filter.admits(protected.github.hook_source, {"User-Agent": "curl/8"})
    assert not source_filter.admits(
        protected.github.hook_source, {**headers, "User-Agent": "curl/8"}
    )
    assert not source_filter.admits(
        protected.github.hook_source, {"User-Agent": "GitHub-Hookshot/x"}
    )
    source_filter.rate_limit = 3
    results = [source_filter.admits(protected.github.hook_source, headers) for _ in range(4)]
    assert results == [True, True, False, False]  # 1 above + 2 = 3 admitted, then blocked
    assert source_filter.blocked_rate == 2


def reconcile() -> Counter[str]:
    from lambda_fn.config import get_settings
    from lambda_fn.reconciler import reconcile as run

    return run(get_settings())
