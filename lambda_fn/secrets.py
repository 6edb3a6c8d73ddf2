"""The two secrets (webhook secret, GitHub PAT) via Powertools parameters, cached.

Values are held only in memory and never logged. A cache entry lives
``SECRETS_MAX_AGE_SECONDS`` (default 300 s); GitHub's 401 makes the client ask
for a fresh PAT once, so a rotated token is picked up immediately.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from lambda_fn import aws
from lambda_fn.errors import SecretMissingError, SecretUnavailableError

_MISSING_CODES = frozenset({"ResourceNotFoundException", "InvalidRequestException"})


def get_secret_string(arn: str, max_age: int, *, force: bool = False) -> str:
    """The SecretString of ``arn``; raises ``SecretMissingError`` / ``SecretUnavailableError``."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    provider = _provider(aws.client("secretsmanager"))
    try:
        value = provider.get(arn, max_age=max_age, force_fetch=force)
    except GetParameterError as exc:
        code = aws.error_code(exc.__context__) if exc.__context__ else ""
        name = arn.rsplit(":", 1)[-1]
        if code in _MISSING_CODES:
            raise SecretMissingError(
                f"secret {name} does not exist or has no value yet ({code}): "
                f"aws secretsmanager put-secret-value --secret-id {arn} --secret-string ..."
            ) from None
        raise SecretUnavailableError(f"could not read secret {name}: {code or 'error'}") from None
    if not isinstance(value, str) or not value.strip():
        raise SecretMissingError(f"secret {arn.rsplit(':', 1)[-1]} is empty")
    return value.strip()


@lru_cache(maxsize=4)
def _provider(client: Any) -> Any:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client)


def reset() -> None:
    """Drop cached values (tests)."""
    _provider.cache_clear()
