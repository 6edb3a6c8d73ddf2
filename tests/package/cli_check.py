"""The installed CLI finds a pip-installed app's deployment: what `make package-check` runs last.

Run by the wheel's virtualenv from the directory where ``user_app.py`` synthesized (its
``cdk.out``), outside the repository. It starts a moto server (``localdev.moto_server``)
on a free port, creates the synthesized ``Team`` stack (two instances, ``Ci`` and
``Deploy``) in it with ``localdev.fake_stack``, and runs the installed
``fargate-runners status`` and ``doctor`` against it through ``AWS_ENDPOINT_URL`` (which
boto3 reads: https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).

It checks that the CLI names the instance it was asked for (and reads that instance's
cluster, not the other's), that without ``--instance`` it says in one line which to
choose, and that nothing ends in a traceback or in "deploy the current version". The
failed doctor checks allowed are the ones moto cannot satisfy (:data:`EXPECTED_FAILS`).
Exits non-zero, naming the problem, otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STACK = "Team"
INSTANCES = ("Ci", "Deploy")
REGION = "eu-west-1"
TEMPLATE = Path("cdk.out") / f"{STACK}.template.json"

#: Doctor checks moto cannot pass: the token secret is created empty (the user sets it with
#: ``setup``), and moto's CloudFormation creates no AWS::CloudWatch::Alarm.
EXPECTED_FAILS = ("GitHub token secret has a value", "alarms reach a person")

#: What the CLI says when a stack lacks the outputs it needs: never right for a stack the
#: installed library just synthesized.
STALE_STACK = "deploy the current version"


def main() -> None:
    for module in ("runners_cli", "localdev"):
        here = Path(__import__(module).__file__ or "").resolve()
        if "site-packages" not in here.parts:
            sys.exit(f"{module} was imported from {here}, not from the installed wheel")
    from localdev import moto_server
    from localdev.fake_stack import deploy_synthesized

    synthesized = json.loads(TEMPLATE.read_text())
    with moto_server.start() as server, tempfile.TemporaryDirectory() as home:
        env = aws_environment(server.url, Path(home))
        os.environ.clear()
        os.environ.update(env)
        deployed = deploy_synthesized(synthesized, name=STACK, region=REGION)
        clusters = {}
        for record in deployed.outputs.values():
            value = json.loads(record)
            clusters[value["instance"]] = value.get("ClusterName", "")
        if sorted(clusters) != sorted(INSTANCES):
            sys.exit(f"stack {STACK} holds the instances {sorted(clusters)}, not {INSTANCES}")
        for command in ("status", "doctor"):
            check_needs_instance(command, env)
        for instance in INSTANCES:
            other = next(c for i, c in clusters.items() if i != instance)
            check_status(instance, clusters[instance], other, env)
            check_doctor(instance, env)
    print(
        f"package check: OK (the installed CLI finds {STACK}/{INSTANCES[0]} and "
        f"{STACK}/{INSTANCES[1]} in moto)"
    )


def aws_environment(endpoint: str, home: Path) -> dict[str, str]:
    """This process's environment without any AWS or Python path setting, plus moto's.

    No profile, config or credentials file of the user's is read (``HOME`` is empty), and
    no ``PYTHONPATH`` can put a source tree before the installed wheel.
    """
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PYTHON", "GITHUB_")) and k != "HOME"
    }
    return {
        **keep,
        "HOME": str(home),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "package-check",
        "AWS_SECRET_ACCESS_KEY": "package-check",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        # GitHub is never reached: nothing listens on port 9 (discard).
        "GITHUB_API_URL": "http://127.0.0.1:9",
    }


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed ``fargate-runners`` (next to this interpreter) from outside the
    repository; a traceback or a stale-stack hint fails the check at once."""
    command = [str(Path(sys.executable).parent / "fargate-runners"), *args, "--stack", STACK]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    output = result.stdout + result.stderr
    shown = " ".join(command[1:])
    if "Traceback" in output:
        sys.exit(f"`fargate-runners {shown}` ended in a traceback:\n{output}")
    if STALE_STACK in output:
        sys.exit(f"`fargate-runners {shown}` took the new stack for an old one:\n{output}")
    return result


def check_needs_instance(command: str, env: dict[str, str]) -> None:
    result = cli([command], env)
    lines = result.stderr.strip().splitlines()
    wanted = f"holds 2 fargate-runners instances ({', '.join(INSTANCES)}): pass --instance NAME"
    if result.returncode != 2 or len(lines) != 1 or wanted not in lines[0]:
        sys.exit(
            f"`fargate-runners {command}` without --instance: expected exit 2 and one line "
            f"saying {wanted!r}, got exit {result.returncode}:\n{result.stdout}{result.stderr}"
        )


def check_status(instance: str, cluster: str, other: str, env: dict[str, str]) -> None:
    result = cli(["status", "--instance", instance], env)
    first = result.stdout.splitlines()[0] if result.stdout else ""
    if result.returncode != 0 or not first.startswith(f"stack {STACK}/{instance} ("):
        sys.exit(
            f"`fargate-runners status --instance {instance}`: expected exit 0 and "
            f"'stack {STACK}/{instance}', got exit {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )
    if f"cluster {cluster}" not in first or other in result.stdout:
        sys.exit(f"status --instance {instance} did not read cluster {cluster}:\n{result.stdout}")


def check_doctor(instance: str, env: dict[str, str]) -> None:
    result = cli(["doctor", "--instance", instance], env)
    lines = result.stdout.splitlines()
    found = f"PASS  stack {STACK}/{instance} found in {REGION}"
    failed = [line for line in lines if line.startswith("FAIL  ")]
    unexpected = [line for line in failed if not line[6:].startswith(EXPECTED_FAILS)]
    if result.returncode not in (0, 1) or not lines or not lines[0].startswith(found):
        sys.exit(
            f"`fargate-runners doctor --instance {instance}`: expected {found!r} first, got "
            f"exit {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    if "PASS  stack outputs present" not in lines or unexpected:
        sys.exit(
            f"`fargate-runners doctor --instance {instance}`: failed checks moto should "
            f"pass: {unexpected or 'stack outputs present'}\n{result.stdout}"
        )


if __name__ == "__main__":
    main()
