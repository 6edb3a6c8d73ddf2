"""GitHub's ``X-Hub-Signature-256``: HMAC-SHA256 of the raw body, compared in constant time.

Kept apart from the payload checks so that rejecting a bad request reads
nothing else.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="
MAX_BODY_BYTES = 1024 * 1024  # workflow_job payloads are a few KiB


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_is_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of ``X-Hub-Signature-256`` against the body."""
    if not header or not header.startswith(SIGNATURE_PREFIX) or not secret:
        return False
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii", "replace"))
