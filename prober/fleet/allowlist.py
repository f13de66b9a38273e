"""An agent's allowlist: the networks and ports it may probe (``CIDR:PORTS``).

An agent is a probe that anyone able to write to the broker can aim; the allowlist is
what keeps it to the endpoints its operator meant. It is checked against the addresses
the agent itself resolved, after any override, just before the first connection.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from prober.core.errors import InputError


class AllowlistError(InputError):
    """An ``--allow`` value that cannot be read."""


@dataclass(frozen=True)
class Rule:
    net: ipaddress.IPv4Network | ipaddress.IPv6Network
    ports: tuple[tuple[int, int], ...]  # inclusive ranges
    text: str

    def permits(self, address: str, port: int) -> bool:
        ip = ipaddress.ip_address(address)
        return ip.version == self.net.version and ip in self.net and any(
            lo <= port <= hi for lo, hi in self.ports)


def parse_rule(text: str) -> Rule:
    """``10.0.0.0/8:443,8443``, ``127.0.0.1:1-65535``, ``::1/128:*``."""
    cidr, sep, ports = text.strip().rpartition(":")
    if not sep or not cidr:
        raise AllowlistError(f"--allow {text!r}: write CIDR:PORTS, e.g. 10.0.0.0/8:443,8443")
    cidr = cidr.removeprefix("[").removesuffix("]")
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise AllowlistError(f"--allow {text!r}: {cidr!r} is not a network (CIDR)") from None
    ranges: list[tuple[int, int]] = []
    for part in ports.split(","):
        lo_s, _, hi_s = part.strip().partition("-")
        if part.strip() == "*":
            ranges.append((1, 65535))
            continue
        if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()):
            raise AllowlistError(f"--allow {text!r}: ports are N, N-M or *, got {part!r}")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if not 1 <= lo <= hi <= 65535:
            raise AllowlistError(f"--allow {text!r}: port range {part!r} is not within 1-65535")
        ranges.append((lo, hi))
    return Rule(net, tuple(ranges), text.strip())


@dataclass(frozen=True)
class Allowlist:
    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, texts: list[str]) -> Allowlist:
        return cls(tuple(parse_rule(t) for t in texts))

    def permits(self, address: str, port: int) -> bool:
        return any(r.permits(address, port) for r in self.rules)

    def __str__(self) -> str:
        return " ".join(r.text for r in self.rules) or "(empty)"
