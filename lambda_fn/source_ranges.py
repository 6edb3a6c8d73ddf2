"""Where GitHub's webhook deliveries come from: CIDR lists, parsed and checked.

One implementation for everything that filters by source address: the CDK
app (the WAF IP sets' first contents), the scheduled refresh
(``lambda_fn.refresh_sources``, which keeps those IP sets current) and the
local endpoint's model of the WAF (``localdev.firewall``).

GitHub publishes the addresses its webhooks are delivered from in the
``hooks`` field of ``GET /meta`` (unauthenticated), and changes them from time
to time: https://docs.github.com/en/rest/meta/meta#get-github-meta-information,
https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/about-githubs-ip-addresses
(for example https://github.blog/changelog/2026-10-29-webhook-ip-ranges-added-to-the-meta-api
added three IPv4 ranges). GitHub Enterprise Server delivers from the appliance's own
addresses, which only its operator knows: the stack takes them as configuration.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: ``hooks`` of https://api.github.com/meta when this was written (2026-11). Only the
#: IP sets' first contents: the scheduled refresh replaces them with the live list.
GITHUB_HOOKS_SNAPSHOT = (
    "192.30.252.0/22",
    "185.199.108.0/22",
    "140.82.112.0/20",
    "143.55.64.0/20",
    "9.234.98.160/28",
    "9.234.98.176/28",
    "9.234.106.48/28",
    "2a0a:a440::/29",
    "2606:50c0::/32",
)

#: Broader than this is not a list of webhook senders but a mistake (or an attack on
#: the list): refused, so a bad answer can never open the endpoint to everyone.
MIN_PREFIX = {4: 8, 6: 16}
#: An AWS WAF IP set holds at most 10,000 addresses
#: (https://docs.aws.amazon.com/waf/latest/developerguide/limits.html).
MAX_RANGES = 10_000


class SourceRangesError(ValueError):
    """A CIDR list that must not be used to filter webhook sources."""


@dataclass(frozen=True)
class SourceRanges:
    """GitHub's webhook source networks, split by IP version (as WAF IP sets are)."""

    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]

    @classmethod
    def parse(cls, cidrs: Iterable[Any], where: str = "ranges") -> SourceRanges:
        """Validate and normalise a CIDR list; raise ``SourceRangesError`` naming ``where``.

        Host bits are cleared (``10.0.0.1/8`` -> ``10.0.0.0/8``), duplicates dropped,
        order kept stable (sorted) so an unchanged list compares equal.
        """
        if isinstance(cidrs, str | bytes) or not isinstance(cidrs, Iterable):
            raise SourceRangesError(f"{where}: must be a list of CIDR strings")
        networks: dict[int, set[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {
            4: set(),
            6: set(),
        }
        for i, cidr in enumerate(cidrs):
            if not isinstance(cidr, str):
                raise SourceRangesError(f"{where}[{i}]: {cidr!r} is not a CIDR string")
            try:
                network = ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                raise SourceRangesError(f"{where}[{i}]: {cidr!r} is not a CIDR range") from None
            if "/" not in cidr:
                raise SourceRangesError(f"{where}[{i}]: {cidr!r} needs a prefix length (/32)")
            if network.prefixlen < MIN_PREFIX[network.version]:
                raise SourceRangesError(
                    f"{where}[{i}]: {cidr!r} is broader than /{MIN_PREFIX[network.version]}: "
                    "that is not a list of webhook senders"
                )
            networks[network.version].add(network)
        total = len(networks[4]) + len(networks[6])
        if total == 0:
            raise SourceRangesError(f"{where}: is empty (it would refuse every delivery)")
        if max(len(networks[4]), len(networks[6])) > MAX_RANGES:
            raise SourceRangesError(f"{where}: more than {MAX_RANGES} ranges of one IP version")
        return cls(
            ipv4=tuple(str(n) for n in sorted(networks[4])),
            ipv6=tuple(str(n) for n in sorted(networks[6])),
        )

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> SourceRanges:
        """The ``hooks`` ranges of a ``GET /meta`` answer."""
        if "hooks" not in meta:
            raise SourceRangesError("GitHub's /meta answer has no 'hooks' field")
        return cls.parse(meta["hooks"], "meta.hooks")

    @property
    def all(self) -> tuple[str, ...]:
        return self.ipv4 + self.ipv6

    def contains(self, address: str) -> bool:
        """Whether ``address`` (an IP, as API Gateway's ``sourceIp``) is in a range."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        ranges = self.ipv4 if ip.version == 4 else self.ipv6
        return any(ip in ipaddress.ip_network(cidr) for cidr in ranges)
