"""Runner profiles kept in SSM parameters, so their number is not bound by Lambda's 4 KB.

Lambda caps a function's whole environment at 4 KB
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html), which held
about eight profiles. The construct instead writes the profiles, in match order, as JSON
arrays into standard-tier String parameters of at most 4,096 characters each
(https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html;
standard tier: free, no throughput surcharge) and names them, in order, in
``RUNNER_PROFILES_PARAMETERS``. The Lambda reads them once per execution environment with
``ssm:GetParameters`` (at most 10 names per call,
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameters.html),
concatenates the arrays and parses them exactly as it parses ``RUNNER_PROFILES``.

Why not re-read: the settings cache is keyed on the environment, and the construct puts a
fingerprint of the profiles in ``RUNNER_PROFILES_VERSION``; any change of a profile
(labels, policy, a new task definition revision) changes that variable, so the deploy
updates the functions' configuration *after* the parameters (the environment references
them) and every new execution environment reads the new values.

``RUNNER_PROFILES`` (the environment variable) stays readable and, when set, wins: local
tests and older stacks set it directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from lambda_fn.errors import ConfigError, TransientError

#: A standard-tier String parameter's largest value (characters).
PARAMETER_VALUE_LIMIT = 4096
#: ``GetParameters`` takes at most this many names per call.
GET_PARAMETERS_BATCH = 10


def chunk_entries(
    entries: Sequence[dict[str, Any]],
    size_of: Callable[[Sequence[dict[str, Any]]], int],
    limit: int = PARAMETER_VALUE_LIMIT,
) -> list[list[dict[str, Any]]]:
    """Split profile entries, in order, into groups whose JSON fits one parameter.

    ``size_of`` measures a group's JSON (the construct passes a worst-case estimate for
    values that are still tokens at synth). A single entry bigger than ``limit`` is a
    ``ValueError`` naming the profile: it could never be stored.
    """
    groups: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    for entry in entries:
        if size_of([entry]) > limit:
            raise ValueError(
                f"profiles[{entry.get('name')!r}]: its entry is about {size_of([entry])} "
                f"characters, over the {limit} one SSM parameter holds; shorten its labels "
                "and policy lists"
            )
        if current and size_of([*current, entry]) > limit:
            groups.append(current)
            current = []
        current.append(entry)
    if current:
        groups.append(current)
    return groups


def compact_size(entries: Sequence[dict[str, Any]]) -> int:
    """Characters of ``entries`` as compact JSON (what a parameter stores)."""
    return len(json.dumps(list(entries), separators=(",", ":")))


def read_profiles(names: Sequence[str]) -> str:
    """The profiles stored under ``names``, in order, as one JSON array (text).

    A missing parameter is a ``ConfigError`` (the deployment is broken, retrying does not
    help); an SSM error is a ``TransientError`` (the caller's retry path applies).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from lambda_fn.aws import client

    ssm = client("ssm")
    values: dict[str, str] = {}
    try:
        for start in range(0, len(names), GET_PARAMETERS_BATCH):
            batch = list(names[start : start + GET_PARAMETERS_BATCH])
            answer = ssm.get_parameters(Names=batch)
            for parameter in answer.get("Parameters", []):
                values[str(parameter["Name"])] = str(parameter["Value"])
            missing = answer.get("InvalidParameters") or []
            if missing:
                raise ConfigError(
                    f"RUNNER_PROFILES_PARAMETERS: parameter {missing[0]!r} does not exist "
                    "(deploy the stack again)"
                )
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"cannot read the runner profiles from SSM: {exc}") from None
    entries: list[Any] = []
    for name in names:
        try:
            chunk = json.loads(values[name])
        except (KeyError, json.JSONDecodeError):
            raise ConfigError(
                f"RUNNER_PROFILES_PARAMETERS: parameter {name!r} does not hold a JSON array"
            ) from None
        if not isinstance(chunk, list):
            raise ConfigError(
                f"RUNNER_PROFILES_PARAMETERS: parameter {name!r} does not hold a JSON array"
            )
        entries.extend(chunk)
    return json.dumps(entries)
