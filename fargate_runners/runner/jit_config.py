"""Fetch this task's JIT runner config, write the runner's files, consume the secret.

Run by entrypoint.sh before the runner starts, as
``python3 jit_config.py --runner-root "$RUNNER_HOME"``; standard library only
(the stock actions-runner image has python3 and curl, no AWS SDK).

1. Read the task role's credentials from the ECS container credentials
   endpoint and
2. call Secrets Manager ``GetSecretValue`` on ``RUNNER_JIT_SECRET_ID`` with
   ``curl --aws-sigv4``, both through ``aws_call.py`` (written next to this
   file; credentials and body reach curl on stdin, never its command line).
   The Lambda stores the secret right after ``run_task``, so the task may be
   first: ``ResourceNotFoundException`` and ``AccessDeniedException`` (the
   tag condition cannot match a secret that does not exist yet) are retried
   every ``--retry-seconds`` (default 2) until ``--wait-seconds``.
3. Decode it as the runner does with ``ACTIONS_RUNNER_INPUT_JITCONFIG``
   (actions/runner src/Runner.Listener/Runner.cs, v2.332.0: base64 of a JSON
   object "file name -> base64 content", each entry written to the runner
   root) and write the same files (``.runner``, ``.credentials``,
   ``.credentials_rsaparams``), mode 0600. The runner then starts configured,
   with no JIT config in any environment block.
4. ``DeleteSecret`` with ``ForceDeleteWithoutRecovery``: a second read fails.

Exit 0 when the files are written (a failed delete only warns: the secret
stays readable by this task alone, and the reconciler removes it once the task
is gone); otherwise exit 1 with one line ``jit_config: <reason>`` on stderr.
Nothing here prints the config or the credentials.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any


def _load_aws_call() -> ModuleType:
    """``aws_call.py`` from this file's directory, by path (never via ``sys.path``)."""
    sys.dont_write_bytecode = True  # no __pycache__ in the read-only hooks directory
    spec = importlib.util.spec_from_file_location(
        "runner_aws_call", Path(__file__).resolve().parent / "aws_call.py"
    )
    if spec is None or spec.loader is None:  # pragma: no cover - defensive
        raise ImportError("aws_call.py not found next to jit_config.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while loading
    spec.loader.exec_module(module)
    return module


aws = _load_aws_call()

#: The Lambda stores the secret within seconds of run_task; a task takes longer to start.
DEFAULT_WAIT_SECONDS = 120
#: Seconds between two reads of a secret that is not readable yet (``--retry-seconds``).
RETRY_SECONDS = 2.0
#: Files the runner needs before it can start without a JIT config (Runner.cs, ConfigurationStore).
REQUIRED_FILES = (".runner", ".credentials")
#: Errors that mean "not there yet" or "try again", not "give up".
RETRYABLE_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "ThrottlingException",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)


#: A one-line reason to refuse to start the runner.
JitConfigError = aws.ReasonError
AwsError = aws.AwsError


def log(message: str) -> None:
    print(f"jit_config: {message}", file=sys.stderr, flush=True)


Call = Callable[[str, Mapping[str, Any]], dict[str, Any]]


def fetch(call: Call, secret_id: str, wait_seconds: float, interval: float = RETRY_SECONDS) -> str:
    """``GetSecretValue`` until it answers, at most ``wait_seconds``; the SecretString."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            answer = call("GetSecretValue", {"SecretId": secret_id})
        except AwsError as exc:
            if exc.code not in RETRYABLE_CODES and exc.code != "CurlFailed" and exc.status < 500:
                raise JitConfigError(f"cannot read {secret_id}: {exc}") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JitConfigError(
                    f"{secret_id} was not readable within {wait_seconds:g} s (last error {exc}); "
                    "the launch that started this task did not store its config"
                ) from None
            time.sleep(min(interval, remaining))
            continue
        value = answer.get("SecretString")
        if not isinstance(value, str) or not value:
            raise JitConfigError(f"{secret_id} has no SecretString")
        return value


# -- the runner's files ------------------------------------------------------------


def decode(encoded: str) -> dict[str, bytes]:
    """The JIT config as the runner decodes it: file name -> content."""
    try:
        files = json.loads(base64.b64decode(encoded, validate=True))
        if not isinstance(files, dict):
            raise ValueError("not an object")
        decoded = {
            str(name): base64.b64decode(str(value), validate=True) for name, value in files.items()
        }
    except (ValueError, binascii.Error):
        raise JitConfigError("the stored JIT config is not base64 JSON of base64 files") from None
    for name in decoded:
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            raise JitConfigError(f"the JIT config names a file outside the runner root: {name!r}")
    missing = [name for name in REQUIRED_FILES if name not in decoded]
    if missing:
        raise JitConfigError(f"the JIT config lacks {', '.join(missing)}")
    return decoded


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    """Write each file in the runner root, owner-only, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    for name, content in files.items():
        path = root / name
        try:
            fd = os.open(path, flags, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.chmod(path, 0o600)
        except OSError as exc:
            raise JitConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- main ----------------------------------------------------------------------------


def wait_seconds(args: argparse.Namespace, env: Mapping[str, str]) -> float:
    """How long the secret may take to appear (the Lambda stores it after run_task)."""
    if args.wait_seconds is not None:
        return float(args.wait_seconds)
    raw = env.get("RUNNER_JIT_WAIT_SECONDS", "") or str(DEFAULT_WAIT_SECONDS)
    try:
        value = float(raw)
    except ValueError:
        raise JitConfigError(f"RUNNER_JIT_WAIT_SECONDS must be a number, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise JitConfigError(f"RUNNER_JIT_WAIT_SECONDS must be in (0, 3600], got {raw!r}")
    return value


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    root = Path(args.runner_root)
    if not root.is_dir():
        raise JitConfigError(f"runner root {root} is not a directory")
    secret_id = args.secret_id or env.get("RUNNER_JIT_SECRET_ID", "")
    region = args.region or env.get("RUNNER_JIT_SECRET_REGION") or env.get("AWS_REGION", "")
    if not secret_id:
        raise JitConfigError(
            "RUNNER_JIT_SECRET_ID is not set; the task was not started by the webhook"
        )
    if not region:
        raise JitConfigError("RUNNER_JIT_SECRET_REGION is not set")
    call = aws.api("secretsmanager", region, env, args.curl).call
    files = decode(fetch(call, secret_id, wait_seconds(args, env), args.retry_seconds))
    write_files(root, files)
    try:
        call("DeleteSecret", {"SecretId": secret_id, "ForceDeleteWithoutRecovery": True})
    except AwsError as exc:
        log(f"warning: could not delete {secret_id} ({exc}); the reconciler removes it")
    log(f"wrote {', '.join(sorted(files))} to {root} from {secret_id}; the secret is consumed")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner-root", required=True, help="where the runner's files go")
    parser.add_argument("--secret-id", default="", help="default: $RUNNER_JIT_SECRET_ID")
    parser.add_argument("--region", default="", help="default: $RUNNER_JIT_SECRET_REGION")
    parser.add_argument(
        "--wait-seconds", type=float, default=None, help="default: $RUNNER_JIT_WAIT_SECONDS or 120"
    )
    parser.add_argument(
        "--retry-seconds",
        type=float,
        default=RETRY_SECONDS,
        help=f"seconds between two reads of a secret not readable yet (default {RETRY_SECONDS:g})",
    )
    parser.add_argument("--curl", default="curl", help="curl executable (needs --aws-sigv4)")
    args = parser.parse_args(argv)
    if not args.retry_seconds > 0:
        parser.error("--retry-seconds must be a positive number of seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args, os.environ)
    except JitConfigError as exc:
        log(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
