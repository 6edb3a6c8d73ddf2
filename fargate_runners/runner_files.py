"""What the runner task receives besides its image: the entrypoint, hook and policy.

There is no custom image to build. The runner's files (``runner/entrypoint.sh``, the hook,
the policy module...) are the same for every profile, so they travel ONCE per deployment:
gzip+base64 values in one ECS environment file (an S3 object, :func:`shared_environment`,
:func:`env_file_text`), read by each task's execution role at start. Each task
definition holds only what differs per profile (policy JSON, admission table, idle
timeout, version) and a short :func:`bootstrap_command` that checks the shared values
against the digest it was built with, then runs the entrypoint from them. Plain Python
(no ``aws_cdk``) so tests and local tools build the same values (docs/runner.md, "How
the task gets its files").
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from lambda_fn import admission_record, policy
from lambda_fn.contract import TASK_IDLE_TIMEOUT_ENV
from lambda_fn.policy import Policy

#: The task's files, shipped inside this package (package data), so an installed wheel has them.
RUNNER_DIR = Path(__file__).resolve().parent / "runner"
ENTRYPOINT = RUNNER_DIR / "entrypoint.sh"
HOOK = RUNNER_DIR / "job_started.py"
JIT_FETCH = RUNNER_DIR / "jit_config.py"
AWS_CALL = RUNNER_DIR / "aws_call.py"
STEPS_HOOK = RUNNER_DIR / "managed_steps.py"
#: The task runs the Lambda's own policy module: one implementation of the rules.
POLICY_MODULE = Path(policy.__file__).resolve()
#: ... and its own admission record format (what dispatch writes, the hook reads).
ADMISSION_MODULE = Path(admission_record.__file__).resolve()


def encode(path: Path) -> str:
    """gzip (fixed mtime, so synth output is stable) then base64."""
    return base64.b64encode(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)).decode()


#: The shared files, by the variable that carries each (gzip+base64), in the order the
#: bootstrap hashes them. The managed-steps hook is here too: one file for every profile;
#: the entrypoint unpacks it only with ``RUNNER_STEPS_JSON`` (per profile, inline).
SHARED_FILES: dict[str, Path] = {
    "RUNNER_ENTRYPOINT_SH_GZ_B64": ENTRYPOINT,
    "RUNNER_POLICY_PY_GZ_B64": POLICY_MODULE,
    "RUNNER_HOOK_PY_GZ_B64": HOOK,
    "RUNNER_JIT_PY_GZ_B64": JIT_FETCH,
    "RUNNER_AWS_PY_GZ_B64": AWS_CALL,
    "RUNNER_ADMISSION_PY_GZ_B64": ADMISSION_MODULE,
    "RUNNER_STEPS_PY_GZ_B64": STEPS_HOOK,
}
#: The variable holding the entrypoint, which the bootstrap decodes and runs.
ENTRYPOINT_VARIABLE = "RUNNER_ENTRYPOINT_SH_GZ_B64"
#: The environment file's name: ECS requires the ``.env`` extension (API_EnvironmentFile),
#: and CDK keeps the extension in the asset's object key (``<sha256>.env``).
ENV_FILE_NAME = "runner-files.env"
#: The ECS agent reads an environment file with Go's default ``bufio.Scanner``
#: (amazon-ecs-agent, agent/taskresource/envFiles/envfile.go, readEnvVarsFromFile), whose
#: longest line is 64 KiB (bufio.MaxScanTokenSize); a longer line fails the task's start.
ENV_FILE_LINE_LIMIT = 64 * 1024
#: Linux refuses to exec with any one "NAME=value" string over MAX_ARG_STRLEN, 32 pages
#: = 128 KiB (include/uapi/linux/binfmts.h); the bootstrap also passes the entrypoint as one
#: argument (``bash -c "$script"``), under the same limit.
ARG_STRLEN_LIMIT = 128 * 1024
#: The exit code of a task whose files are missing, altered or undecodable (EX_CONFIG,
#: as the entrypoint's own configuration errors).
BOOTSTRAP_EXIT = 78
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


@functools.cache
def _encoded_files() -> tuple[tuple[str, str], ...]:
    return tuple((name, encode(path)) for name, path in SHARED_FILES.items())


def shared_environment() -> dict[str, str]:
    """The profile-independent values: every entry of :data:`SHARED_FILES`, encoded.

    What the construct writes into the deployment's environment file, and what tests and
    the local mode give a task that runs :func:`bootstrap_command`. Deterministic (gzip
    with a fixed mtime), so the asset hash is stable across synths.
    """
    return dict(_encoded_files())


def files_digest(values: Mapping[str, str]) -> str:
    """sha256 of the shared values as the bootstrap hashes them: each value and a newline,
    in :data:`SHARED_FILES` order (``printf '%s\\n' "$A" "$B" ... | sha256sum``)."""
    text = "".join(f"{values[name]}\n" for name in SHARED_FILES)
    return hashlib.sha256(text.encode()).hexdigest()


def env_file_text(values: Mapping[str, str]) -> str:
    """``NAME=VALUE`` lines as ECS reads an environment file, refusing what it would misread.

    ECS takes each line as is (no quoting, no escapes; a line starting with ``#`` is a
    comment; API_EnvironmentFile), so a value may hold no line break, and each line must
    stay under the agent's line limit and Linux's per-string limit.
    """
    lines = []
    for name, value in values.items():
        line = f"{name}={value}"
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"environment file: {name!r} is not a plain variable name")
        if "\n" in value or "\r" in value:
            raise ValueError(f"environment file: {name} holds a line break")
        limit = min(ENV_FILE_LINE_LIMIT, ARG_STRLEN_LIMIT) - 1
        if len(line.encode()) > limit:
            raise ValueError(
                f"environment file: {name} is {len(line.encode())} bytes, over the {limit} "
                "one line may hold (ECS agent's line limit); shrink that file"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_env_file(values: Mapping[str, str]) -> Path:
    """Write :func:`env_file_text` to a content-addressed path (the CDK asset's source).

    The path is named by the content's digest, so repeated synths reuse it and the
    asset's hash (taken from the content) is the same every time.
    """
    text = env_file_text(values)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"fargate-runners-files-{digest}"
    folder.mkdir(exist_ok=True)
    path = folder / ENV_FILE_NAME
    if not path.exists() or path.read_text() != text:
        # Written beside it, then renamed: a concurrent synth never reads half a file.
        handle, staged = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with open(handle, "w") as out:
            out.write(text)
        Path(staged).replace(path)
    return path


def bootstrap_script(digest: str) -> str:
    """The task's inline command: check the shared values, then run the entrypoint.

    Fails closed (exit 78, nothing started) when a value is missing (the environment file
    did not load), when the values differ from the ones this task definition was built
    with (``digest``: an altered S3 object, a partial read), or when the entrypoint does
    not decode. ``exec`` keeps the process ECS signals (the container's first process).
    """
    names = list(SHARED_FILES)
    quoted = " ".join(f'"${name}"' for name in names)
    return (
        "set -euo pipefail\n"
        f"fail() {{ printf 'bootstrap: %s\\n' \"$1\" >&2; exit {BOOTSTRAP_EXIT}; }}\n"
        f"for name in {' '.join(names)}; do\n"
        '  [[ -n "${!name:-}" ]] || fail "$name is not set: the task definition\'s '
        f'environment file ({ENV_FILE_NAME}) did not load"\n'
        "done\n"
        f"sum=\"$(printf '%s\\n' {quoted} | sha256sum)\" || fail 'sha256sum failed'\n"
        f'[[ "${{sum%% *}}" == {digest} ]] || fail "the runner files are not the ones '
        'this task definition was built with (sha256 ${sum%% *}); not running them"\n'
        f'script="$(printf \'%s\' "${ENTRYPOINT_VARIABLE}" | base64 -d | gzip -dc)" ||\n'
        f'  fail "{ENTRYPOINT_VARIABLE} is not valid gzip+base64"\n'
        f"unset {ENTRYPOINT_VARIABLE}\n"
        'exec bash -c "$script"\n'
    )


def bootstrap_command(values: Mapping[str, str] | None = None) -> list[str]:
    """The container command: :func:`bootstrap_script` for ``values`` (default: these files)."""
    return ["bash", "-c", bootstrap_script(files_digest(values or shared_environment()))]


#: The container's ``stopTimeout``: how long ECS waits after SIGTERM before SIGKILL.
#: 120 s is Fargate's maximum (the default is 30 s), so a cancelled job's steps get the
#: runner's own 7.5 s SIGINT + 2.5 s SIGTERM and the Worker can still upload the log.
STOP_TIMEOUT_SECONDS = 120
#: The entrypoint's grace before it kills the runner's session: inside ``stopTimeout``,
#: with time left to kill what remains and exit before ECS's SIGKILL.
STOP_GRACE_SECONDS = STOP_TIMEOUT_SECONDS - 15


def runner_environment(
    policy: Policy, idle_timeout_seconds: int, admission: tuple[str, str] | None = None
) -> dict[str, str]:
    """Per-profile environment of the runner container in the task definition (nothing
    secret); the shared files come from the environment file (:func:`shared_environment`).

    ``admission`` is (table name, region) of the admission records, for a restricted
    ``policy`` (its hook refuses every job without it; docs/admission.md).
    """
    if policy.restricted and admission is None:
        raise ValueError(f"profile {policy.profile}: a restricted profile needs admission records")
    return {
        "RUNNER_POLICY_JSON": policy.to_json(),
        **(
            {"RUNNER_ADMISSION_TABLE": admission[0], "RUNNER_ADMISSION_REGION": admission[1]}
            if admission is not None and policy.restricted
            else {}
        ),
        TASK_IDLE_TIMEOUT_ENV: str(idle_timeout_seconds),
        "RUNNER_STOP_GRACE_SECONDS": str(STOP_GRACE_SECONDS),
    }


def runner_version_environment(profile: str, version: str | None) -> dict[str, str]:
    """What the entrypoint needs to report the runner version it finds (docs/runner.md)."""
    env = {"RUNNER_PROFILE": profile}
    if version:
        env["RUNNER_EXPECTED_VERSION"] = version
    return env


#: ``runner_event`` values of the entrypoint's JSON log lines -> the metric each one counts
#: (a metric filter on the runner log group, dimension ``profile``; docs/runner.md).
RUNNER_EVENT_METRICS = {
    "self_update": "RunnerSelfUpdates",
    "version_refused": "RunnerVersionRefused",
}


#: The step container's user: not root (any uid works without an /etc/passwd entry).
STEP_USER = "1000"
#: Exit code of the step dispatcher for a name that is not a managed command.
STEP_REFUSED_EXIT = 126


def step_entry_point(commands: Mapping[str, Sequence[str]]) -> list[str]:
    """The step container's fixed entry point: name (the one command override) -> argv.

    ECS lets ``RunTask`` override a container's ``command`` but not its
    ``entryPoint`` (API_ContainerOverride), so whoever may start a step task can
    choose only among the managed commands, never run anything else in the step image.
    """
    cases = "".join(
        f"  {shlex.quote(name)}) exec {shlex.join(argv)} ;;\n" for name, argv in commands.items()
    )
    script = (
        'case "${1-}" in\n'
        f"{cases}"
        '  *) echo "managed step: not a managed command: ${1-}" >&2; '
        f"exit {STEP_REFUSED_EXIT} ;;\n"
        "esac\n"
    )
    # sh -c SCRIPT NAME ARG...: $0 = "managed-step", $1 = the command override.
    return ["/bin/sh", "-c", script, "managed-step"]


def steps_environment(steps_json: str) -> dict[str, str]:
    """What a managed-steps runner container gets besides :func:`runner_environment`.

    ``steps_json`` is the hook's configuration (``managed_steps.StepsConfig``); the hook's
    code is in the shared environment file (``RUNNER_STEPS_PY_GZ_B64``).
    """
    return {"RUNNER_STEPS_JSON": steps_json}
