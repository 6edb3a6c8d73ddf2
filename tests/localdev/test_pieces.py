"""The local pieces one by one: moto provisioning, GitHub stand-in, endpoint, deliveries."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from localdev import deliveries
from localdev.endpoint import LambdaContext, WebhookServer, api_gateway_event
from localdev.github_stub import GitHubStub
from localdev.moto_server import MotoServer
from localdev.provision import LocalStack, provision, read_cdk_context

TWO_PROFILES: dict[str, Any] = {
    "stack_name": "LocalTest",
    "profiles": [
        {"name": "small", "labels": ["self-hosted", "linux", "arm64"]},
        {
            "name": "big",
            "labels": ["self-hosted", "linux", "x64", "big"],
            "cpu": 4096,
            "memory": 8192,
            "architecture": "X86_64",
        },
    ],
    "allowed_repositories": ["octo-org/*"],
}


# --- provision ---------------------------------------------------------------------------------


@pytest.fixture
def local(clean_moto: MotoServer) -> LocalStack:
    return provision(clean_moto.url, TWO_PROFILES, github_api_url="http://127.0.0.1:1/")


def test_provision_creates_what_the_stack_creates(local: LocalStack) -> None:
    ecs = local.client("ecs")
    assert ecs.describe_clusters(clusters=[local.cluster])["clusters"][0]["status"] == "ACTIVE"
    assert set(local.task_definitions) == {"small", "big"}
    big = ecs.describe_task_definition(taskDefinition=local.task_definitions["big"])[
        "taskDefinition"
    ]
    assert big["family"] == "LocalTest-runner-big"
    assert big["runtimePlatform"]["cpuArchitecture"] == "X86_64"
    (container,) = big["containerDefinitions"]
    assert (container["name"], container["cpu"], container["memory"]) == ("runner", 4096, 8192)
    ec2 = local.client("ec2")
    attribute = ec2.describe_vpc_attribute(VpcId=local.vpc_id, Attribute="enableDnsHostnames")
    assert attribute["EnableDnsHostnames"]["Value"] is True
    table = local.client("dynamodb").describe_table(TableName=local.table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    sqs = local.client("sqs")
    redrive = sqs.get_queue_attributes(QueueUrl=local.retry_queue_url, AttributeNames=["All"])
    assert "retry-dlq" in json.loads(redrive["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
    secret = local.client("secretsmanager").get_secret_value(SecretId=local.webhook_secret_arn)
    assert secret["SecretString"] == local.webhook_secret


def test_provision_env_is_valid_handler_configuration(
    local: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn.config import load_settings

    # The profiles are in local moto's SSM, as the construct's are in the account's.
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, local.env[name])
    monkeypatch.setenv("AWS_DEFAULT_REGION", local.env.get("AWS_DEFAULT_REGION", "us-east-1"))
    settings = load_settings(local.env)
    assert [p.name for p in settings.profiles] == ["small", "big"]
    assert settings.allowed_repositories == ("octo-org/*",)
    assert settings.retry_queue_url == local.retry_queue_url
    assert settings.dead_letter_queue_url == local.dead_letter_queue_url
    assert settings.github_api_url == "http://127.0.0.1:1"
    assert local.env["AWS_ENDPOINT_URL"] == local.endpoint_url
    assert local.env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert local.with_github("http://x/")["GITHUB_API_URL"] == "http://x"


def test_repo_cdk_json_provisions(clean_moto: MotoServer) -> None:
    local = provision(clean_moto.url, read_cdk_context())
    assert list(local.task_definitions) == [p.name for p in local.config.profiles]


# --- GitHub stand-in -----------------------------------------------------------------------


@pytest.fixture
def stub() -> Any:
    with GitHubStub() as github:
        yield github


AUTH = {"Authorization": "Bearer ghp_secretvalue"}


def test_stub_issues_jit_configs_and_manages_runners(stub: GitHubStub) -> None:
    answer = requests.post(
        f"{stub.url}/repos/o/r/actions/runners/generate-jitconfig",
        json={"name": "r-1", "labels": ["self-hosted"], "runner_group_id": 1},
        headers=AUTH,
        timeout=5,
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["runner"]["name"] == "r-1"
    # GitHub's shape, which the runner (and runner/jit_config.py) decodes: base64 JSON of
    # file name -> base64 content.
    files = json.loads(base64.b64decode(body["encoded_jit_config"]))
    assert set(files) == {".runner", ".credentials", ".credentials_rsaparams"}
    assert json.loads(base64.b64decode(files[".runner"]))["agentName"] == "r-1"
    runner_id = body["runner"]["id"]
    runner = requests.get(
        f"{stub.url}/repos/o/r/actions/runners/{runner_id}", headers=AUTH, timeout=5
    )
    # Registered, not yet connected: offline until the runner program starts.
    assert runner.json()["status"] == "offline" and runner.json()["busy"] is False
    listed = requests.get(
        f"{stub.url}/repos/o/r/actions/runners?per_page=100", headers=AUTH, timeout=5
    )
    assert listed.json()["total_count"] == 1
    assert (
        requests.get(f"{stub.url}/orgs/o/actions/runners", headers=AUTH, timeout=5).json()[
            "total_count"
        ]
        == 0
    )
    deleted = requests.delete(
        f"{stub.url}/repos/o/r/actions/runners/{runner_id}", headers=AUTH, timeout=5
    )
    assert deleted.status_code == 204
    again = requests.delete(
        f"{stub.url}/repos/o/r/actions/runners/{runner_id}", headers=AUTH, timeout=5
    )
    assert again.status_code == 404
    job = requests.get(f"{stub.url}/repos/o/r/actions/jobs/77", headers=AUTH, timeout=5).json()
    assert (job["id"], job["status"]) == (77, "queued")
    assert (
        requests.get(f"{stub.url}/repos/o/r/actions/runs/9", headers=AUTH, timeout=5).status_code
        == 404
    )
    stub.runs[9] = {"id": 9, "event": "push"}
    assert (
        requests.get(f"{stub.url}/repos/o/r/actions/runs/9", headers=AUTH, timeout=5).json()["id"]
        == 9
    )
    assert stub.calls("POST")[0].query == {}
    assert stub.calls("GET", "runners")[1].query == {"per_page": ["100"]}


def test_stub_serves_git_refs_tags_and_comparisons_like_github(stub: GitHubStub) -> None:
    """Exact-match refs (404 when missing), annotated tag objects, compare statuses."""
    a, b, c, t = "a" * 40, "b" * 40, "c" * 40, "7" * 40
    stub.refs.update(
        {"heads/release/1.x": {"type": "commit", "sha": b}, "tags/v1": {"type": "tag", "sha": t}}
    )
    stub.tag_objects[t] = {"tag": "v1", "object": {"type": "commit", "sha": a}}
    stub.parents.update({b: [a], c: [a]})

    def get(path: str) -> requests.Response:
        return requests.get(f"{stub.url}/repos/o/r/{path}", headers=AUTH, timeout=5)

    branch = get("git/ref/heads/release/1.x")
    assert branch.status_code == 200
    assert branch.json()["ref"] == "refs/heads/release/1.x"
    assert branch.json()["object"] == {"type": "commit", "sha": b}
    assert get("git/ref/heads/release").status_code == 404  # a prefix is not a match
    assert get("git/ref/tags/v1").json()["object"]["type"] == "tag"
    assert get(f"git/tags/{t}").json()["object"] == {"type": "commit", "sha": a}
    assert get(f"git/tags/{a}").status_code == 404
    statuses = [
        get(f"compare/{x}...{y}").json()["status"] for x, y in ((a, b), (b, a), (b, c), (a, a))
    ]
    assert statuses == ["ahead", "behind", "diverged", "identical"]
    assert get(f"compare/{a}...{'d' * 40}").status_code == 404
    stub.jobs[5] = {"labels": ["self-hosted"], "run_id": 9, "head_branch": "main"}
    assert get("actions/jobs/5").json()["labels"] == ["self-hosted"]


def test_stub_org_scope_and_conflicts(stub: GitHubStub) -> None:
    url = f"{stub.url}/orgs/octo/actions/runners/generate-jitconfig"
    first = requests.post(
        url, json={"name": "n", "labels": ["a"], "runner_group_id": 1}, headers=AUTH, timeout=5
    )
    second = requests.post(
        url, json={"name": "n", "labels": ["a"], "runner_group_id": 1}, headers=AUTH, timeout=5
    )
    assert (first.status_code, second.status_code) == (201, 409)
    assert requests.post(url, json={"labels": ["a"]}, headers=AUTH, timeout=5).status_code == 422
    no_group = {"name": "m", "labels": ["a"]}  # runner_group_id is required
    assert requests.post(url, json=no_group, headers=AUTH, timeout=5).status_code == 422


def test_stub_refuses_to_delete_a_busy_runner_like_github(stub: GitHubStub) -> None:
    """GitHub answers 422 while the runner runs a job; lambda_fn.cleanup.release relies on it."""
    url = f"{stub.url}/repos/o/r/actions/runners"
    body = {"name": "b", "labels": ["a"], "runner_group_id": 1}
    runner_id = requests.post(
        f"{url}/generate-jitconfig", json=body, headers=AUTH, timeout=5
    ).json()["runner"]["id"]
    stub.runners[runner_id].update(status="online", busy=True)
    busy = requests.delete(f"{url}/{runner_id}", headers=AUTH, timeout=5)
    assert busy.status_code == 422
    assert "is still running a job" in busy.json()["message"]
    assert runner_id in stub.runners
    stub.runners[runner_id]["busy"] = False
    assert requests.delete(f"{url}/{runner_id}", headers=AUTH, timeout=5).status_code == 204


def test_stub_pages_runners_and_answers_rate_limits_like_github(stub: GitHubStub) -> None:
    url = f"{stub.url}/orgs/o/actions/runners"
    for i in range(5):
        body = {"name": f"p{i}", "labels": ["a"], "runner_group_id": 1}
        requests.post(f"{url}/generate-jitconfig", json=body, headers=AUTH, timeout=5)
    first = requests.get(url, params={"per_page": 2}, headers=AUTH, timeout=5)
    assert first.json()["total_count"] == 5 and len(first.json()["runners"]) == 2
    assert first.links["next"]["url"] == f"{url}?per_page=2&page=2"
    assert first.links["last"]["url"] == f"{url}?per_page=2&page=3"
    last = requests.get(first.links["last"]["url"], headers=AUTH, timeout=5)
    assert [r["name"] for r in last.json()["runners"]] == ["p4"] and "next" not in last.links
    assert int(last.headers["x-ratelimit-remaining"]) < int(first.headers["x-ratelimit-remaining"])
    stub.rate_limited("GET", "/actions/runners$", status=403)
    stub.rate_limited("GET", "/actions/runners$", status=429, retry_after=7)
    primary = requests.get(url, headers=AUTH, timeout=5)
    assert (primary.status_code, primary.headers["x-ratelimit-remaining"]) == (403, "0")
    assert int(primary.headers["x-ratelimit-reset"]) > 0
    secondary = requests.get(url, headers=AUTH, timeout=5)
    assert (secondary.status_code, secondary.headers["retry-after"]) == (429, "7")
    assert requests.get(url, headers=AUTH, timeout=5).status_code == 200


def test_stub_never_stores_the_token_and_needs_one(stub: GitHubStub) -> None:
    assert requests.get(f"{stub.url}/repos/o/r/actions/jobs/1", timeout=5).status_code == 401
    requests.get(f"{stub.url}/repos/o/r/actions/jobs/1", headers=AUTH, timeout=5)
    assert [r.authorized for r in stub.requests] == [False, True]
    assert "secretvalue" not in repr(stub.requests)


def test_stub_plays_github_for_a_github_app(stub: GitHubStub) -> None:
    """The App side (shared with the tests' FakeGitHub): tokens only from a JWT KMS signed."""
    import boto3
    from moto import mock_aws

    from lambda_fn.github_auth import GitHubApp
    from localdev.github_app_double import GitHubAppDouble

    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        stub.app = GitHubAppDouble("7", kms.get_public_key(KeyId=key)["PublicKey"])
        stub.app.install("o")
        token = GitHubApp(stub.url, "7", key, kms=kms).token("repos/o/r/actions/jobs/1", False)
    jobs = f"{stub.url}/repos/o/r/actions/jobs/1"
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(jobs, headers=bearer, timeout=5).status_code == 200
    assert requests.get(jobs, headers=AUTH, timeout=5).status_code == 401  # not a token it minted
    other = f"{stub.url}/repos/elsewhere/r/actions/jobs/1"
    assert requests.get(other, headers=bearer, timeout=5).status_code == 403


def test_stub_injected_failures(stub: GitHubStub) -> None:
    stub.fail("POST", "generate-jitconfig", 503, times=2, headers={"Retry-After": "1"})
    url = f"{stub.url}/repos/o/r/actions/runners/generate-jitconfig"
    statuses = [
        requests.post(
            url,
            json={"name": f"n{i}", "labels": ["a"], "runner_group_id": 1},
            headers=AUTH,
            timeout=5,
        )
        for i in range(3)
    ]
    assert [s.status_code for s in statuses] == [503, 503, 201]
    assert statuses[0].headers["Retry-After"] == "1"


# --- endpoint -----------------------------------------------------------------------------------


def test_event_shape_for_text_and_binary_bodies() -> None:
    headers = [("X-Hub-Signature-256", "sha256=1"), ("X-Dup", "a"), ("X-Dup", "b")]
    event = api_gateway_event("POST", "/webhook?x=1&x=2", headers, b'{"a":1}', resource="/webhook")
    assert event["body"] == '{"a":1}' and event["isBase64Encoded"] is False
    assert event["headers"]["X-Dup"] == "b"
    assert event["multiValueHeaders"]["X-Dup"] == ["a", "b"]
    assert event["queryStringParameters"] == {"x": "2"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    context = event["requestContext"]
    assert context["resourcePath"] == "/webhook" and context["stage"] == "local"
    assert context["requestId"]
    binary = api_gateway_event("POST", "/webhook", [], b"\xff\xfe", resource="/webhook")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\xfe"


def test_endpoint_round_trip_and_api_gateway_errors() -> None:
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        assert context.get_remaining_time_in_millis() > 0
        print("a line the handler printed")
        if event["headers"].get("X-Fail"):
            raise RuntimeError("boom")
        return {
            "statusCode": 202,
            "multiValueHeaders": {"X-Multi": ["1", "2"]},
            "body": base64.b64encode(b"\x00binary").decode(),
            "isBase64Encoded": True,
        }

    with WebhookServer(handler) as server:
        answer = requests.post(server.url, data=b"\xff", timeout=5)
        assert answer.status_code == 202
        assert answer.content == b"\x00binary"
        assert answer.headers["X-Multi"] == "1, 2"
        assert answer.headers["x-amzn-RequestId"] == seen[0]["requestContext"]["requestId"]
        assert seen[0]["isBase64Encoded"] is True
        assert requests.get(server.url, timeout=5).status_code == 403
        missing = requests.post(server.base_url + "/other", timeout=5)
        assert (
            missing.status_code == 403
            and missing.json()["message"] == "Missing Authentication Token"
        )
        assert requests.post(server.url, headers={"X-Fail": "1"}, timeout=5).status_code == 502
        assert server.output.count("a line the handler printed") == 2
        assert [i.status for i in server.invocations] == [202, 502]


def test_lambda_context_counts_down() -> None:
    context = LambdaContext(timeout_seconds=1.0)
    assert 0 < context.get_remaining_time_in_millis() <= 1000


# --- deliveries -------------------------------------------------------------------------------


def test_signed_delivery_verifies_with_the_handlers_check() -> None:
    from lambda_fn.signature import signature_is_valid

    delivery = deliveries.build(deliveries.workflow_job_payload(1, ["a"]), "s3cret")
    assert signature_is_valid(b"s3cret", delivery.body, delivery.headers["X-Hub-Signature-256"])
    assert not signature_is_valid(b"other", delivery.body, delivery.headers["X-Hub-Signature-256"])
    again = deliveries.redelivery(delivery)
    assert (again.body, again.delivery_id) == (delivery.body, delivery.delivery_id)
    unsigned = deliveries.build({"zen": "hi"}, None, event="ping")
    assert "X-Hub-Signature-256" not in unsigned.headers
    burst = deliveries.queued_burst("s", ["a"], 3)
    assert len({d.delivery_id for d in burst}) == 3


# --- what stands in front of the endpoint (localdev.firewall) -----------------------------------


def test_source_filter_refuses_outsiders_and_other_hooks_then_rate_limits_each_hook() -> None:
    from lambda_fn.source_ranges import SourceRanges
    from localdev.firewall import SourceFilter

    def hook(hook_id: str) -> dict[str, str]:
        return {"User-Agent": "GitHub-Hookshot/abc123", "X-GitHub-Hook-ID": hook_id}

    now = [0.0]
    waf = SourceFilter(
        SourceRanges.parse(["192.30.252.0/22"]),
        rate_limit=3,
        window_seconds=300,
        clock=lambda: now[0],
        hook_patterns=lambda: ("^7$", "^8$"),
    )
    assert not waf.admits("10.0.0.1", hook("7"))  # outside GitHub's ranges
    assert not waf.admits("192.30.252.1", hook("9"))  # a stranger's hook
    assert not waf.admits("192.30.252.1", {"X-GitHub-Hook-ID": "7"})  # not GitHub's agent
    assert [waf.admits("192.30.252.1", hook("7")) for _ in range(4)] == [True, True, True, False]
    assert waf.admits("192.30.252.1", hook("8"))  # per hook: another recorded hook is not limited
    now[0] = 301.0  # the trailing window has passed
    assert waf.admits("192.30.252.1", hook("7"))
    assert (waf.blocked_outside, waf.blocked_other_hooks, waf.blocked_rate) == (1, 2, 1)


def test_stage_throttle_is_one_bucket_refilled_at_the_rate() -> None:
    from localdev.firewall import StageThrottle

    now = [0.0]
    throttle = StageThrottle(rate=20, burst=40, clock=lambda: now[0])
    assert sum(throttle.admits() for _ in range(50)) == 40
    now[0] = 0.5
    assert sum(throttle.admits() for _ in range(50)) == 10
    assert throttle.throttled == 50


def test_stub_serves_meta_without_a_token_and_keeps_a_delivery_log(stub: GitHubStub) -> None:
    meta = requests.get(f"{stub.url}/meta", timeout=5)
    assert meta.status_code == 200
    assert meta.json()["hooks"] == ["127.0.0.2/32"]
    hook = stub.add_hook("repos/octo/app", "http://127.0.0.1:9/webhook", "s")  # nothing listens
    entry = stub.deliver(hook, "workflow_job", {"action": "queued"})
    assert (entry["status_code"], entry["redelivery"], entry["action"]) == (0, False, "queued")
    headers = {"Authorization": "Bearer x"}
    listed = requests.get(
        f"{stub.url}/repos/octo/app/hooks/{hook.id}/deliveries", headers=headers, timeout=5
    )
    assert [d["guid"] for d in listed.json()] == [entry["guid"]]
    assert "_body" not in listed.json()[0]
    base = f"{stub.url}/repos/octo/app/hooks/{hook.id}/deliveries"
    assert requests.post(f"{base}/999999/attempts", headers=headers, timeout=5).status_code == 404
    assert (
        requests.post(f"{base}/{entry['id']}/attempts", headers=headers, timeout=5).status_code
        == 202
    )
    stub.wait_for_redeliveries()
    again = stub.deliveries[-1]
    assert (again["guid"], again["redelivery"]) == (entry["guid"], True)
    other = f"{stub.url}/orgs/octo/hooks/{hook.id}/deliveries"
    assert requests.get(other, headers=headers, timeout=5).status_code == 404  # another scope
