"""Exceptions shared by the dispatcher modules.

The split that matters is *transient* versus *permanent*: a transient failure
(GitHub 5xx/429/timeout, ECS capacity or throttling) is worth retrying, a
permanent one (bad token, missing permission, bad configuration) is not.
"""

from __future__ import annotations


class DispatchError(Exception):
    """Base class for every error the dispatcher raises on purpose."""


class ConfigError(DispatchError):
    """The Lambda's environment is missing or malformed; the message names the variable."""


class TransientError(DispatchError):
    """A failure that may succeed if tried again later."""


class PermanentError(DispatchError):
    """A failure that will not go away by retrying (needs an operator)."""


class GitHubTransientError(TransientError):
    """GitHub answered 5xx/429 or did not answer in time, after the client's own retries."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class GitHubPermanentError(PermanentError):
    """GitHub refused the request (bad token, no permission, unknown repository, ...)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class LaunchTransientError(TransientError):
    """ECS could not start the task now (capacity, throttling, service error)."""


class LaunchPermanentError(PermanentError):
    """ECS rejected the task (bad task definition, missing permission, bad network config)."""


class SecretError(DispatchError):
    """A secret could not be read or is empty."""


class SecretUnavailableError(SecretError, TransientError):
    """Secrets Manager failed or throttled: retry later."""


class SecretMissingError(SecretError, PermanentError):
    """The secret does not exist or has no value yet: an operator must fill it."""


class CapacityWaitError(TransientError):
    """The profile already runs ``max_runners`` tasks: the job waits instead of failing."""
