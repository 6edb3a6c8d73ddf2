"""Hostile or broken input with a valid signature: a clear 4xx, nothing started, no 5xx.

Complements the contract tests with the malformed bodies a public endpoint
sees, and fuzzes the payload handling with hypothesis.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.world import FakeAws


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (
            '{"action": "queued", "x": "\udcff"}'.encode("utf-8", "surrogateescape"),
            "not valid JSON",
        ),
        (b"\xff\xfe\x00\x01garbage", "not valid JSON"),
        (json.dumps(queued_payload())[:-20].encode(), "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400(
    fake_aws: FakeAws, github: FakeGitHub, body: bytes, reason: str
) -> None:
    status, answer = deliver(body, base64_encoded=True)
    assert status == 400, answer
    assert reason in answer["message"]
    assert github.jit_requests == []
    assert fake_aws.tasks() == []


def test_utf16_json_is_accepted_as_json(fake_aws: FakeAws, github: FakeGitHub) -> None:
    """JSON may be UTF-16 (RFC 8259 readers accept it); it is the same payload."""
    status, answer = deliver(json.dumps(queued_payload()).encode("utf-16"), base64_encoded=True)
    assert status == 200, answer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    ("action",),
    ("workflow_job",),
    ("workflow_job", "id"),
    ("workflow_job", "run_id"),
    ("workflow_job", "labels"),
    ("workflow_job", "run_attempt"),
    ("workflow_job", "head_branch"),
    ("repository",),
    ("repository", "name"),
    ("repository", "owner"),
    ("repository", "owner", "login"),
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    replacements=st.lists(st.tuples(st.sampled_from(FIELDS), json_values), min_size=1, max_size=3)
)
def test_fuzzed_payloads_never_crash_the_handler(
    fake_aws: FakeAws, github: FakeGitHub, replacements: list[tuple[tuple[str, ...], Any]]
) -> None:
    """Any field replaced by any JSON value: a 2xx or a 400, never a 5xx; 400 starts nothing."""
    payload = queued_payload(job_id=1)
    for path, value in replacements:
        target = payload
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = value
    tasks_before = len(fake_aws.tasks())
    status, answer = deliver(payload)
    assert status in (200, 202, 400), answer
    if status == 400:
        assert len(fake_aws.tasks()) == tasks_before
