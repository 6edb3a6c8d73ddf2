"""The Lambda environment's size, measured the way Lambda measures it.

Lambda rejects a function whose environment variables exceed 4 KB
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html,
https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). What it
measures is the variables serialized as one compact JSON object: its error says
``...exceeded the 4KB limit. String measured: {"KEY":"value",...}``. Every
quote, colon and comma counts, and so does JSON escaping (``RUNNER_PROFILES``
holds JSON, so each of its quotes costs two bytes).

At synth most values are still tokens (ARNs, names CloudFormation generates),
so the construct passes, for each token, a realistic worst-case sample of what
it resolves to (longest region name, 12-digit account, CloudFormation's
generated-name length). A token without a sample is an error: guessing low
would let a configuration through that fails at deploy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Token

from .config_errors import ConfigError

__all__ = [
    "LAMBDA_ENV_LIMIT_BYTES",
    "SAFETY_MARGIN_BYTES",
    "check_environment_size",
    "measured_size",
]

#: Lambda's limit on the serialized environment.
LAMBDA_ENV_LIMIT_BYTES = 4096
#: Head-room for what the samples cannot know exactly (generated-name suffixes).
SAFETY_MARGIN_BYTES = 256


def _serialized(environment: Mapping[str, str]) -> str:
    return json.dumps(dict(environment), separators=(",", ":"), ensure_ascii=False)


def measured_size(environment: Mapping[str, str]) -> int:
    """Bytes of the compact JSON object Lambda measures (UTF-8)."""
    return len(_serialized(environment).encode())


def _contribution(key: str, value: str) -> int:
    """Bytes one variable adds to the measured object (``"KEY":"value",``)."""
    return measured_size({key: value}) - len("{}") + len(",")


def check_environment_size(environment: Mapping[str, str], token_samples: Mapping[str, str]) -> int:
    """Fail at synth, naming the biggest variables, when Lambda would reject the env.

    ``token_samples`` holds, for each key whose value is (or contains) a token, a
    realistic sample of the resolved value. Returns the estimated size.
    """
    resolved: dict[str, str] = {}
    for key, value in environment.items():
        if Token.is_unresolved(value):
            if key not in token_samples:
                raise ValueError(f"no size estimate for the token in Lambda variable {key}")
            resolved[key] = token_samples[key]
        else:
            resolved[key] = value
    size = measured_size(resolved)
    allowed = LAMBDA_ENV_LIMIT_BYTES - SAFETY_MARGIN_BYTES
    if size > allowed:
        biggest = sorted(resolved.items(), key=lambda item: -_contribution(*item))[:3]
        named = ", ".join(f"{key} {_contribution(key, value)} bytes" for key, value in biggest)
        raise ConfigError(
            "lambda_environment",
            f"would be about {size} bytes as Lambda measures it "
            f"(compact JSON), over the {allowed} this stack allows (Lambda's limit is "
            f"{LAMBDA_ENV_LIMIT_BYTES}, less {SAFETY_MARGIN_BYTES} of margin). Biggest: {named}. "
            "Use fewer subnets or a shorter stack name (profiles are stored in SSM "
            "parameters, not here)",
        )
    return size
