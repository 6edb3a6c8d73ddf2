"""Job-started hook: refuse jobs a restricted runner profile was not made for.

The runner runs ``ACTIONS_RUNNER_HOOK_JOB_STARTED`` (a ``.sh`` wrapper written
by ``entrypoint.sh``) with bash as the first pre-job step, condition ``always()``,
after "Set up job" has downloaded the job's actions; the wrapper execs this file.
It checks the job's ``GITHUB_REPOSITORY``, ``GITHUB_REF``,
``GITHUB_WORKFLOW_REF``, ``GITHUB_EVENT_NAME`` and the event file at
``GITHUB_EVENT_PATH`` against the profile's policy with
``policy.evaluate(..., strict=True)``. Anything it cannot read (policy file,
policy module, event file) refuses the job too (fail closed).

Names are not enough: GitHub gives a queued job to any online runner whose labels
include all the job's labels, and this check cannot ask GitHub. So a restricted
profile's runner then reads dispatch's *admission record* of the job's repository,
run and run attempt (``lambda_fn/admission_record.py``, docs/admission.md) from
DynamoDB (``--admission-table``) with the task role's own credentials, signed by
``aws_call.py``, and refuses the job unless the record exists, has not expired and
names the same commit. A warm runner may get its job before dispatch has written
the record: the lookup is repeated every ``--admission-poll`` seconds (default 2,
``RUNNER_ADMISSION_POLL_SECONDS`` in the entrypoint) for ``--admission-wait`` seconds.

A refusal is not just an exit code. A failing hook fails its step, but the
runner still evaluates every later step's ``if:``, so ``always()``,
``failure()`` and ``!cancelled()`` steps, action ``pre:`` and ``post:`` steps
would still run (actions/runner ``StepsRunner.cs``; docs/runner.md). So the
wrapper ``job-started.sh`` that ``entrypoint.sh`` writes runs this file with
SIGINT/SIGTERM/SIGHUP ignored and lets the job go on only if it exits 0 after
recording ``allowed``; otherwise the wrapper never returns, and the entrypoint
shuts the runner down (the Worker then skips every remaining step).

On refusal this prints
``::error::Job refused by runner profile '<name>': <rule>: <why>`` and exits 1;
with ``--state-dir`` it first writes ``<state-dir>/refused`` (that line). State
files: ``hook-started`` first thing, then ``allowed`` or ``refused``.

``--preflight`` (used by ``entrypoint.sh`` before it starts the runner):
validate the policy and check its ``required_env`` in the current environment;
exit 78 with a message on stderr if either fails.

Runs on the runner image's python3 (3.12; 3.10 compatible), standard library
only. ``policy.py`` and ``admission_record.py`` are loaded from this file's
directory (the entrypoint writes them side by side, with ``aws_call.py``) or, in a
source checkout, from ``../../lambda_fn/`` (this file is
``fargate_runners/runner/job_started.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

EXIT_REFUSED = 1
EXIT_CONFIG = 78  # EX_CONFIG: the task stops, nothing runs

_HERE = Path(__file__).resolve().parent
_POLICY_CANDIDATES = (_HERE / "policy.py", _HERE.parent.parent / "lambda_fn" / "policy.py")
_RECORD_CANDIDATES = (
    _HERE / "admission_record.py",
    _HERE.parent.parent / "lambda_fn" / "admission_record.py",
)
#: Seconds between two lookups of a record that is not there (yet); ``--admission-poll``.
ADMISSION_POLL_SECONDS = 2.0
#: The hook's rule name for a job dispatch did not admit (in the refusal line).
RULE_ADMISSION = "admission"


def load_sibling(name: str, candidates: Sequence[Path]) -> ModuleType:
    """Import the first of ``candidates`` that exists, by path, as module ``name``.

    Never via ``sys.path``, which a job could influence. Also used by
    ``managed_steps.py`` for its siblings.
    """
    sys.dont_write_bytecode = True  # no __pycache__ in the read-only hooks directory
    for candidate in candidates:
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location(name, candidate)
            if spec is None or spec.loader is None:  # pragma: no cover - defensive
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look the module up while loading
            spec.loader.exec_module(module)
            return module
    raise ImportError(f"{candidates[0].name} not found next to {Path(__file__).name}")


def load_policy_module() -> ModuleType:
    """Import ``policy.py`` by path."""
    return load_sibling("runner_policy", _POLICY_CANDIDATES)


def escape_data(text: str) -> str:
    """Escape a workflow-command message so it stays one line and one command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def refuse(profile: str, rule: str, explanation: str, state_dir: str | None = None) -> int:
    """Print the refusal; with a state dir, record it for the entrypoint."""
    line = f"Job refused by runner profile '{profile}': {rule}: {explanation}"
    print(f"::error::{escape_data(line)}", flush=True)
    if state_dir:
        print("This runner is shutting down: no further step of this job will run.", flush=True)
        _write_state(state_dir, "refused", escape_data(line))
    return EXIT_REFUSED


def _write_state(state_dir: str | None, name: str, text: str = "") -> None:
    if not state_dir:
        return
    path = Path(state_dir) / name
    try:
        pending = path.with_name(f".{name}.tmp")
        pending.write_text(text + "\n", encoding="utf-8")
        pending.replace(path)  # the entrypoint never sees half a file
    except OSError as exc:
        print(f"job-started hook: could not write {path}: {exc}", file=sys.stderr)


def _profile_name_hint(text: str | None) -> str:
    """Best-effort profile name for error lines when the policy itself is invalid."""
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("profile"), str) and data["profile"]:
            return str(data["profile"])
    return "unknown"


def _read_event(path: str | None) -> tuple[Mapping[str, Any] | None, str | None]:
    """(payload, error): payload ``None`` without a path; an error if unreadable."""
    if not path:
        return None, None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"could not read the event file {path}: {exc}"
    if not isinstance(data, dict):
        return None, f"the event file {path} does not hold a JSON object"
    return data, None


def _load(policy_file: str | None) -> tuple[Any, Any, str, str | None]:
    """(policy module, Policy or None, profile name, error)."""
    text: str | None = None
    if not policy_file:
        return None, None, "unknown", "no policy file given (RUNNER_POLICY_FILE is not set)"
    try:
        text = Path(policy_file).read_text(encoding="utf-8")
    except OSError as exc:
        return None, None, "unknown", f"could not read policy file {policy_file}: {exc}"
    name = _profile_name_hint(text)
    try:
        module = load_policy_module()
    except Exception as exc:  # any failure to load the rules fails closed
        return None, None, name, f"could not load policy.py: {exc}"
    try:
        policy = module.policy_from_json(text)
    except module.PolicyError as exc:
        return module, None, name, f"invalid policy file {policy_file}: {exc}"
    return module, policy, policy.profile, None


class AdmissionSource(NamedTuple):
    """Where the profile's admission records are: table, region, how long to wait and
    how often to look meanwhile.

    A ``NamedTuple``, not a dataclass: ``managed_steps.py`` loads this file by path
    without registering it in ``sys.modules``, which dataclasses need.
    """

    table: str
    region: str
    wait_seconds: float
    poll_seconds: float = ADMISSION_POLL_SECONDS


def admission_problem(
    policy_module: ModuleType,
    profile: str,
    source: AdmissionSource,
    env: Mapping[str, str],
    payload: Mapping[str, Any] | None,
) -> str | None:
    """Why dispatch's admission record does not admit this job; ``None`` if it does."""
    records = load_sibling("runner_admission_record", _RECORD_CANDIDATES)
    try:
        job = records.runner_job(env, payload, policy_module.PULL_REQUEST_EVENTS)
        key = records.key(profile, job.repository, job.run_id, job.run_attempt)
    except records.RecordError as exc:
        return f"cannot name the job's admission record: {exc}"
    if not source.region:
        return "no region for the admission table (RUNNER_ADMISSION_REGION or AWS_REGION)"
    aws = load_sibling("runner_aws_call", (_HERE / "aws_call.py",))
    deadline = time.monotonic() + source.wait_seconds
    waiting_said = False
    while True:
        found, problem = _lookup(aws, records, source, env, key)
        if found is not None:
            reason = records.refusal(found, profile, job, time.time())
            if reason is None:
                return None
            return f"admission record {key} does not admit this job: {reason}"
        if time.monotonic() >= deadline:
            return (
                f"dispatch did not admit {job.repository} run {job.run_id} attempt "
                f"{job.run_attempt} for this profile: {problem}"
            )
        if not waiting_said:
            print(f"waiting up to {source.wait_seconds:g} s for admission record {key}",
                  file=sys.stderr, flush=True)  # fmt: skip
            waiting_said = True
        time.sleep(max(0.0, min(source.poll_seconds, deadline - time.monotonic())))


def _lookup(
    aws: ModuleType, records: ModuleType, source: AdmissionSource, env: Mapping[str, str], key: str
) -> tuple[Any, str]:
    """(record, "") or (None, why not): one strongly consistent ``GetItem``."""
    try:
        answer = aws.api("dynamodb", source.region, env).call(
            "GetItem",
            {"TableName": source.table, "Key": {"id": {"S": key}}, "ConsistentRead": True},
        )
    except (aws.ReasonError, aws.AwsError) as exc:
        return None, f"the lookup of {key} failed ({exc})"
    item = answer.get("Item")
    if not isinstance(item, dict):
        return None, f"no admission record {key}"
    try:
        return records.from_item(item), ""
    except records.RecordError as exc:
        return None, f"admission record {key} is malformed ({exc})"


def run_hook(
    policy_file: str | None,
    state_dir: str | None,
    env: Mapping[str, str],
    admission: AdmissionSource | None = None,
) -> int:
    _write_state(state_dir, "hook-started")
    module, policy, name, error = _load(policy_file)
    if error is not None:
        return refuse(name, "policy_file", error, state_dir)
    if not policy.restricted:
        _write_state(state_dir, "allowed")
        return 0
    payload, error = _read_event(env.get("GITHUB_EVENT_PATH"))
    if error is not None:
        return refuse(name, "event_file", error, state_dir)
    facts = module.facts_from_runner_env(env, payload)
    decision = module.evaluate(policy, facts, strict=True)
    if not decision.allowed:
        return refuse(name, decision.rule, decision.message, state_dir)
    if admission is None:
        return refuse(name, RULE_ADMISSION, "no admission table is configured", state_dir)
    problem = admission_problem(module, name, admission, env, payload)
    if problem is not None:
        return refuse(name, RULE_ADMISSION, problem, state_dir)
    _write_state(state_dir, "allowed")
    print(
        f"runner profile '{name}': job allowed ({facts.repository} {facts.ref} "
        f"{facts.workflow_path} {facts.event}; admitted by dispatch)",
        file=sys.stderr,
    )
    return 0


def run_preflight(
    policy_file: str | None, env: Mapping[str, str], admission: AdmissionSource | None = None
) -> int:
    module, policy, _, error = _load(policy_file)
    if error is not None:
        print(f"invalid runner policy: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if policy.restricted and admission is None:
        print(
            "RUNNER_ADMISSION_TABLE is not set: a restricted profile's runner checks each job "
            "against dispatch's admission records (the task definition must provide it)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    missing = module.missing_env(policy, env)
    if missing:
        print(f"required environment variable(s) not set: {', '.join(missing)}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    environ = os.environ if env is None else env
    parser = argparse.ArgumentParser(description="Runner-profile job-started hook")
    parser.add_argument("--policy-file", default=environ.get("RUNNER_POLICY_FILE"))
    parser.add_argument("--state-dir", default=None, help="where the entrypoint watches")
    parser.add_argument("--preflight", action="store_true")
    parser.add_argument("--admission-table", default="", help="the admission records' table")
    parser.add_argument("--admission-region", default="", help="default: $AWS_REGION")
    parser.add_argument("--admission-wait", type=float, default=30.0, help="seconds")
    parser.add_argument(
        "--admission-poll",
        type=float,
        default=ADMISSION_POLL_SECONDS,
        help=f"seconds between two lookups (default {ADMISSION_POLL_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    if not args.admission_poll > 0:
        parser.error("--admission-poll must be a positive number of seconds")
    admission = (
        AdmissionSource(
            args.admission_table,
            args.admission_region or environ.get("AWS_REGION", ""),
            max(0.0, args.admission_wait),
            args.admission_poll,
        )
        if args.admission_table
        else None
    )
    if args.preflight:
        return run_preflight(args.policy_file, environ, admission)
    try:
        return run_hook(args.policy_file, args.state_dir, environ, admission)
    except Exception as exc:  # fail closed on anything unexpected
        return refuse("unknown", "hook_error", f"{type(exc).__name__}: {exc}", args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
