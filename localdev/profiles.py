"""Runner profiles into SSM parameters, as the construct stores them (for local mode,
the benchmarks and the tests).

The deployed Lambda reads its profiles from the SSM parameters named in
``RUNNER_PROFILES_PARAMETERS`` (``lambda_fn/profile_store.py``); local mode, the
benchmarks and the tests store them the same way, split with the same
:func:`lambda_fn.profile_store.chunk_entries`, so they exercise the read path the
deployed Lambda uses. ``RUNNER_PROFILES`` (inline) stays the documented compatibility
path for older stacks and is not set here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from lambda_fn.profile_store import chunk_entries, compact_size


def store_profiles(ssm: Any, prefix: str, entries: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Write ``entries`` (match order) under ``/<prefix>/runner-profiles/<n>``; return the
    two environment variables that name them (``RUNNER_PROFILES_PARAMETERS``) and
    fingerprint them (``RUNNER_PROFILES_VERSION``: a change re-keys the settings cache, as
    a deploy's new fingerprint does)."""
    names: list[str] = []
    for index, group in enumerate(chunk_entries(entries, compact_size)):
        name = f"/{prefix.strip('/')}/runner-profiles/{index}"
        ssm.put_parameter(
            Name=name,
            Value=json.dumps(group, separators=(",", ":")),
            Type="String",
            Overwrite=True,
        )
        names.append(name)
    version = hashlib.sha256(json.dumps(list(entries), sort_keys=True).encode()).hexdigest()[:16]
    return {"RUNNER_PROFILES_PARAMETERS": ",".join(names), "RUNNER_PROFILES_VERSION": version}


def read_profiles(ssm: Any, env: dict[str, str]) -> list[dict[str, Any]]:
    """The profiles ``env`` names (parameters, or ``RUNNER_PROFILES`` when set), in order."""
    inline = env.get("RUNNER_PROFILES", "").strip()
    if inline:
        return list(json.loads(inline))
    entries: list[dict[str, Any]] = []
    for name in filter(None, env.get("RUNNER_PROFILES_PARAMETERS", "").split(",")):
        entries.extend(json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"]))
    return entries
