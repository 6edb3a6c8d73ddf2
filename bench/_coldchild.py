"""One cold-start measurement in a fresh interpreter (run by :mod:`bench.coldstart`).

``python -m bench._coldchild MODE OUT.json``; modes:

- ``boto3``: time ``import boto3`` (the floor).
- ``deps``: time ``import boto3, requests`` (what the fakes pre-import in ``first``).
- ``app``: time ``import lambda_fn.app``.
- ``first`` / ``first-traced``: set up moto (``mock_aws``) and ``responses``
  *before* the timer, then time ``import lambda_fn.app``, the first queued
  delivery, and a second (new job) delivery. ``first`` is as deployed by
  default (remote calls not traced); ``first-traced`` sets
  ``TRACE_REMOTE_CALLS=true`` (the stack's ``detailed_tracing``).

The result goes to ``OUT.json`` (the handler's own log lines go to stdout).
With ``BENCH_COLD_SHARED_LOADER`` set, the fakes' setup takes half the CPU time and the
figures are not comparable (``localdev.botocore_data``: the fakes leave fewer objects
behind for the first delivery's garbage collection; measured 0.61-0.69 s without, 0.44-0.52 s
with): the tests use it.
A line ``BENCH-TIMER-START`` is written to stderr where the timer starts, so a
``-X importtime`` run can tell the fakes' imports from the handler's.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

MARKER = "BENCH-TIMER-START"
#: Set (to anything non-empty) in a ``first`` child's environment: the fakes' setup parses
#: botocore's data once (``localdev.botocore_data``). For correctness runs only.
SHARED_LOADER_ENV = "BENCH_COLD_SHARED_LOADER"


def _maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def _mark() -> None:
    sys.stderr.write(MARKER + "\n")
    sys.stderr.flush()


def _import_only(modules: tuple[str, ...]) -> dict[str, Any]:
    import importlib

    _mark()
    started = time.perf_counter()
    for module in modules:
        importlib.import_module(module)
    elapsed = time.perf_counter() - started
    return {"import_s": elapsed, "maxrss_kib": _maxrss_kib()}


def _create_resources() -> dict[str, str]:
    """What ``cdk deploy`` would create, in the active moto backend; the Lambda env.

    Deliberately not ``localdev.provision``: that imports ``fargate_runners.config`` and
    ``lambda_fn.policy``, which would then be loaded before the timer starts
    and hide part of the import cost this child measures.
    """
    import boto3

    from bench.fixtures import PAT, REGION, WEBHOOK_SECRET, lambda_env
    from lambda_fn.contract import RUNNER_IMAGE_REPOSITORY, RUNNER_VERSION

    sm = boto3.client("secretsmanager", region_name=REGION)
    webhook = sm.create_secret(Name="runners/webhook-secret", SecretString=WEBHOOK_SECRET)["ARN"]
    token = sm.create_secret(Name="runners/github-token", SecretString=PAT)["ARN"]
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="runners", Description="runners", VpcId=vpc)[
        "GroupId"
    ]
    ecs = boto3.client("ecs", region_name=REGION)
    cluster = ecs.create_cluster(clusterName="runners")["cluster"]["clusterName"]
    task_definitions = {}
    for name in ("default", "big"):
        task_definitions[name] = ecs.register_task_definition(
            family=f"runners-runner-{name}",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="1024",
            memory="2048",
            containerDefinitions=[
                {
                    "name": "runner",
                    "image": f"{RUNNER_IMAGE_REPOSITORY}:{RUNNER_VERSION}",
                    "cpu": 1024,
                    "memory": 2048,
                    "essential": True,
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="runners-idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return lambda_env(
        ssm=boto3.client("ssm", region_name=REGION),
        webhook_secret_arn=webhook,
        token_secret_arn=token,
        cluster=cluster,
        subnet_id=subnet,
        security_group_id=group,
        table="runners-idempotency",
        task_definitions=task_definitions,
    )


def _first_delivery(trace: bool) -> dict[str, Any]:
    import re

    import responses
    from moto import mock_aws

    from bench.fixtures import BASE_ENV, GITHUB_API, LambdaContext, job_event

    os.environ.update(BASE_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    if trace:
        os.environ["TRACE_REMOTE_CALLS"] = "true"

    jit_url = re.compile(
        re.escape(GITHUB_API) + r"/repos/[^/]+/[^/]+/actions/runners/generate-jitconfig"
    )
    issued: list[int] = []

    def jit(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        issued.append(len(issued) + 1)
        answer = {
            "runner": {"id": len(issued), "name": body["name"], "labels": body["labels"]},
            "encoded_jit_config": "ZW5jb2RlZA==",
        }
        return 201, {"Content-Type": "application/json"}, json.dumps(answer)

    from localdev.botocore_data import share_loader

    restore_loader = share_loader() if os.environ.get(SHARED_LOADER_ENV) else None
    with mock_aws():
        os.environ.update(_create_resources())
        with responses.RequestsMock(assert_all_requests_are_fired=False) as github:
            github.add_callback(responses.POST, jit_url, callback=jit)
            first_event = job_event(4242, "cold-1")
            second_event = job_event(4243, "cold-2")
            context = LambdaContext()
            preloaded = sorted(
                name
                for name in ("boto3", "botocore", "requests", "urllib3", "pydantic", "jmespath")
                if name in sys.modules
            )
            rss_before = _maxrss_kib()
            if restore_loader is not None:
                restore_loader()

            _mark()
            t0 = time.perf_counter()
            from lambda_fn.app import handler

            t1 = time.perf_counter()
            first = handler(first_event, context)
            t2 = time.perf_counter()
            second = handler(second_event, context)
            t3 = time.perf_counter()
            rss_after = _maxrss_kib()

            import boto3

            ecs = boto3.client("ecs", region_name=os.environ["AWS_REGION"])
            tasks = len(ecs.list_tasks(cluster=os.environ["ECS_CLUSTER"])["taskArns"])
    statuses = [json.loads(answer["body"]).get("status") for answer in (first, second)]
    return {
        "import_s": t1 - t0,
        "first_delivery_s": t2 - t1,
        "second_delivery_s": t3 - t2,
        "maxrss_kib": rss_after,
        "maxrss_before_timer_kib": rss_before,
        "preloaded_by_fakes": preloaded,
        "statuses": statuses,
        "tasks_started": tasks,
        "jit_configs_issued": len(issued),
    }


def main(argv: list[str]) -> int:
    mode, out = argv[0], argv[1]
    if mode == "boto3":
        result = _import_only(("boto3",))
    elif mode == "deps":
        result = _import_only(("boto3", "requests"))
    elif mode == "app":
        result = _import_only(("lambda_fn.app",))
    elif mode in ("first", "first-traced"):
        result = _first_delivery(trace=mode == "first-traced")
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result["mode"] = mode
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
