"""Fetch this task's JIT runner config, write the runner's files, consume the secret.

Run by entrypoint.sh before the runner starts, as
``python3 jit_config.py --runner-root "$RUNNER_HOME"``; standard library only
(the stock actions-runner image has python3 and curl, no AWS SDK).

1. Read the task role's credentials from the ECS container credentials
   endpoint (``http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``,
   or ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN``
   as the AWS SDKs accept; the local mode uses the latter).
2. Call Secrets Manager ``GetSecretValue`` on ``RUNNER_JIT_SECRET_ID`` with
   ``curl --aws-sigv4`` (curl's maintained SigV4 signer, not a hand-written
   one). Credentials and the request body go to curl on stdin as a config
   file (``--config -``), never on its command line (visible in /proc).
   The Lambda stores the secret right after ``run_task``, so the task may be
   first: ``ResourceNotFoundException`` and ``AccessDeniedException`` (the
   tag condition cannot match a secret that does not exist yet) are retried
   until ``--wait-seconds``.
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
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ECS_CREDENTIALS_HOST = "http://169.254.170.2"
#: The Lambda stores the secret within seconds of run_task; a task takes longer to start.
DEFAULT_WAIT_SECONDS = 120
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


class JitConfigError(Exception):
    """A one-line reason to refuse to start the runner."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    token: str = ""


class AwsError(Exception):
    """An AWS JSON-protocol error answer (``__type`` + message) or a transport failure."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def log(message: str) -> None:
    print(f"jit_config: {message}", file=sys.stderr, flush=True)


# -- credentials ------------------------------------------------------------------


def container_credentials(env: Mapping[str, str], timeout: float = 5.0) -> Credentials:
    """The task role's temporary credentials, as the SDKs' container provider gets them."""
    relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
    full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    headers = {}
    if relative:
        url = ECS_CREDENTIALS_HOST + relative
    elif full:
        url = full
        token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "")
        if token:
            headers["Authorization"] = token
    else:
        raise JitConfigError(
            "no container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not set "
            "(the task definition needs a task role)"
        )
    if not url.startswith(("http://", "https://")):
        raise JitConfigError("the container credentials URI is not http(s)")
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            data = json.load(answer)
        return Credentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("Token", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JitConfigError(
            f"cannot read the task role's credentials: {type(exc).__name__}"
        ) from None


# -- Secrets Manager through curl --------------------------------------------------


def _quoted(value: str) -> str:
    """A curl config-file value: double-quoted, with \\ and " escaped."""
    if any(ch in value for ch in "\r\n\0"):
        raise JitConfigError("refusing a value with a line break for curl's config")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def curl_config(
    url: str, region: str, credentials: Credentials, action: str, body: Mapping[str, Any]
) -> str:
    """What curl reads on stdin: URL, signer, credentials, headers and body."""
    lines = {
        "url": url,
        "aws-sigv4": f"aws:amz:{region}:secretsmanager",
        "user": f"{credentials.access_key_id}:{credentials.secret_access_key}",
        "request": "POST",
        "data-binary": json.dumps(body, separators=(",", ":")),
    }
    headers = [
        f"X-Amz-Target: secretsmanager.{action}",
        "Content-Type: application/x-amz-json-1.1",
    ]
    if credentials.token:
        headers.append(f"X-Amz-Security-Token: {credentials.token}")
    text = "".join(f"{key} = {_quoted(value)}\n" for key, value in lines.items())
    text += "".join(f"header = {_quoted(header)}\n" for header in headers)
    return text


#: One marker line after the body carries the HTTP status (``--write-out``).
_STATUS_MARK = "\n@@jit-config-status@@"


@dataclass(frozen=True)
class SecretsManager:
    """Secrets Manager's JSON API, each call signed by ``curl --aws-sigv4``."""

    url: str
    region: str
    credentials: Credentials
    curl: str = "curl"

    def call(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One call; raises ``AwsError`` on an error answer or a transport failure."""
        argv = [
            self.curl, "--config", "-", "--silent", "--show-error", "--max-time", "10",
            "--write-out", _STATUS_MARK + "%{http_code}",
        ]  # fmt: skip
        config = curl_config(self.url, self.region, self.credentials, action, body)
        try:
            # A fixed argv (no shell); everything variable, secrets included, is on stdin.
            done = subprocess.run(  # noqa: S603
                argv, input=config, capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AwsError("CurlFailed", type(exc).__name__) from None
        payload, _, status_text = done.stdout.rpartition(_STATUS_MARK)
        if done.returncode != 0 or not status_text.isdigit():
            reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise AwsError("CurlFailed", reason[0][:200])
        status = int(status_text)
        try:
            answer = json.loads(payload) if payload.strip() else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status != 200:
            code = str(answer.get("__type", f"HTTP{status}")).rsplit("#", 1)[-1]
            message = str(answer.get("message") or answer.get("Message") or "")[:200]
            raise AwsError(code, message, status)
        return answer


Call = Callable[[str, Mapping[str, Any]], dict[str, Any]]


def fetch(call: Call, secret_id: str, wait_seconds: float, interval: float = 2.0) -> str:
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


def endpoint(region: str, env: Mapping[str, str]) -> str:
    """Secrets Manager's endpoint; ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` as the SDKs honour it."""
    return (
        env.get("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        or f"https://secretsmanager.{region}.amazonaws.com/"
    )


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
    url = endpoint(region, env)
    credentials = container_credentials(env)

    call = SecretsManager(url, region, credentials, args.curl).call
    files = decode(fetch(call, secret_id, wait_seconds(args, env)))
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
    parser.add_argument("--curl", default="curl", help="curl executable (needs --aws-sigv4)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args, os.environ)
    except JitConfigError as exc:
        log(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
