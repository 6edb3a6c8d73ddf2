"""What stands in front of the webhook Lambda in AWS, modelled for the local endpoint.

In order, as a request meets them (``fargate_runners/firewall.py`` explains the order):

1. :class:`SourceFilter` -- the WAF web ACL's three rules: 403 for a source address
   outside the webhook source ranges (the same :class:`~lambda_fn.source_ranges.SourceRanges`
   the CDK app puts in the IP sets and the refresh Lambda keeps current); 403 unless
   ``User-Agent`` starts with ``GitHub-Hookshot/`` and ``X-GitHub-Hook-ID`` matches the
   recorded-hook pattern set (``hook_patterns``: in the local runtime read from the WAF
   regex pattern set that ``lambda_fn.hook_filter`` maintains, on every request, as WAF
   reads its current set); then 403 for a hook id that sent more than ``rate_limit``
   requests in the trailing window (the rate-based rule aggregates on the header, and
   counts every request that reaches it, blocked or not, and none that an earlier rule
   blocked).
2. :class:`StageThrottle` -- API Gateway's stage throttle: one token bucket shared by
   every caller (``rate`` tokens per second, ``burst`` deep), 429 when empty
   (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html).

Both take a ``clock`` so tests can run them in simulated time.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lambda_fn.hook_filter import HOOK_ID_HEADER, NOT_RECORDED_PATTERN, USER_AGENT_PREFIX, admits
from lambda_fn.source_ranges import SourceRanges

Clock = Callable[[], float]

WAF_BLOCKED = (403, b'{"message":"Forbidden"}')
THROTTLED = (429, b'{"message":"Too Many Requests"}')


def _nothing_recorded() -> Sequence[str]:
    return (NOT_RECORDED_PATTERN,)


@dataclass
class SourceFilter:
    """The web ACL: source ranges, then our hook only, then a per-hook rate limit."""

    ranges: SourceRanges
    rate_limit: int = 2000
    window_seconds: float = 300.0
    clock: Clock = time.monotonic
    #: The recorded-hook pattern set's current content (before ``setup``: matches nothing).
    hook_patterns: Callable[[], Sequence[str]] = _nothing_recorded
    blocked_outside: int = 0
    blocked_other_hooks: int = 0
    blocked_rate: int = 0
    _seen: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admits(self, source_ip: str, headers: Mapping[str, str] | None = None) -> bool:
        """Whether the web ACL lets a request through (``headers``: the request's)."""
        fields = {name.lower(): value for name, value in (headers or {}).items()}
        hook_id = fields.get(HOOK_ID_HEADER)
        with self._lock:
            if not self.ranges.contains(source_ip):
                self.blocked_outside += 1
                return False
            user_agent = fields.get("user-agent", "")
            if not user_agent.startswith(USER_AGENT_PREFIX) or not admits(
                tuple(self.hook_patterns()), hook_id
            ):
                self.blocked_other_hooks += 1
                return False
            assert hook_id is not None  # admitted: the header is there
            now = self.clock()
            seen = self._seen[hook_id]
            seen.append(now)
            while seen and seen[0] <= now - self.window_seconds:
                seen.popleft()
            if len(seen) > self.rate_limit:
                self.blocked_rate += 1
                return False
            return True


@dataclass
class StageThrottle:
    """API Gateway's stage throttle: a token bucket shared by all callers."""

    rate: float = 20.0
    burst: int = 40
    clock: Clock = time.monotonic
    throttled: int = 0
    _tokens: float = -1.0
    _updated: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admits(self) -> bool:
        with self._lock:
            now = self.clock()
            if self._tokens < 0:
                self._tokens, self._updated = float(self.burst), now
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens < 1:
                self.throttled += 1
                return False
            self._tokens -= 1
            return True
