"""Errors the CLI reports as one line and an exit code (2: usage/environment, 1: a check)."""

from __future__ import annotations


class CliError(Exception):
    """Printed as ``fargate-runners: error: <message>``; ``exit_code`` is returned."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
