"""docs/contract.md: importing lambda_fn.app must not call AWS or GitHub."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_import_opens_no_connection_and_needs_no_configuration() -> None:
    script = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise AssertionError("network used at import time")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import lambda_fn.app
        assert callable(lambda_fn.app.handler)
        import sys
        assert "boto3" not in sys.modules, "boto3 imported eagerly"
        assert "lambda_fn.payload" not in sys.modules, "payload models imported eagerly"
        assert "lambda_fn.policy" not in sys.modules, "policy module imported eagerly"
        assert "pydantic" not in sys.modules, "pydantic imported eagerly"
        assert not any(m.startswith("fargate_runners") for m in sys.modules), "CDK package"
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEBHOOK", "GITHUB"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
