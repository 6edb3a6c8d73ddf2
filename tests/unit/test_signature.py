"""X-Hub-Signature-256 verification."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from lambda_fn.signature import sign, signature_is_valid

SECRET = b"It's a Secret to Everybody"


def test_matches_githubs_documented_example() -> None:
    # docs.github.com "Validating webhook deliveries": secret and payload from the example.
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_is_valid(SECRET, b"Hello, World!", header)


@given(st.binary(max_size=2048))
def test_own_signature_verifies_and_any_bit_flip_does_not(body: bytes) -> None:
    header = sign(SECRET, body)
    assert header == "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert signature_is_valid(SECRET, body, header)
    assert not signature_is_valid(SECRET, body + b"x", header)
    assert not signature_is_valid(b"other", body, header)


def test_malformed_headers_are_rejected() -> None:
    body = b"{}"
    good = sign(SECRET, body)
    for header in (
        None,
        "",
        "sha256=",
        good.upper(),
        good[7:],
        "sha1=" + good[7:],
        good + "00",
        "sha256=é",
    ):
        assert not signature_is_valid(SECRET, body, header), header


def test_empty_secret_never_verifies() -> None:
    assert not signature_is_valid(b"", b"{}", sign(b"", b"{}"))
