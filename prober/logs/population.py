"""The client population a set of logs shows: who connects, with which protocol and suite.

A what-if engine asks it "if every connection of these (protocol, suite) groups failed,
how much would that be?" and answers like "3.2% of the connections in these logs (41
client IPs, TLSv1.1 / ECDHE-RSA-AES256-SHA)". Counts are connections as the logs count
them: ALB connection logs, NLB logs and server error lines have one line per connection;
ALB access logs, Classic ELB access logs and CloudFront standard logs one line per HTTP
request (a keep-alive connection counts once per request; Classic ELB TCP/SSL listeners
log one line per connection).

Protocols are registry names (``TLSv1.0`` ... ``TLSv1.3``); suites carry both the IANA
and the OpenSSL name. A group whose protocol or suite the logs did not show (a failure
before negotiation, a server error line) has ``None`` there and ``known`` False.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prober.wire import registry

GroupKey = tuple[str | None, str | None, str | None]  # protocol, suite IANA, suite OpenSSL


@lru_cache(maxsize=256)
def normalise_protocol(raw: str | None) -> str | None:
    """``TLSv1.2``, ``TLSv1`` (OpenSSL), ``tlsv12`` (NLB), ``TLSv1.3`` -> registry name."""
    if raw is None or raw in ("", "-", "(NONE)"):
        return None
    text = raw.strip()
    if text.lower().startswith("tlsv1") and len(text) == 6 and text[-1].isdigit():
        text = f"TLSv1.{text[-1]}"  # NLB writes tlsv10 ... tlsv13
    try:
        return registry.version_name(registry.version_value(text))
    except registry.UnknownName:
        return text


@lru_cache(maxsize=4096)
def suite_names(raw: str | None) -> tuple[str | None, str | None]:
    """A suite as logged (OpenSSL name, or IANA name) -> (IANA name, OpenSSL name);
    a name no registry knows is kept as the OpenSSL name, the IANA one then None."""
    if raw is None or raw in ("", "-", "(NONE)"):
        return None, None
    try:
        cs = registry.suite(registry.suite_value(raw))
    except registry.UnknownName:
        return None, raw
    if cs is None:
        return None, raw
    return cs.name, cs.openssl_name or raw


def group_key(protocol: str | None, suite: str | None) -> GroupKey:
    iana, openssl = suite_names(suite)
    return normalise_protocol(protocol), iana, openssl


@dataclass(frozen=True)
class ClientGroup:
    protocol: str | None
    suite_iana: str | None
    suite_openssl: str | None
    connections: int
    client_ips: int
    failed: int = 0  # of these connections, how many already failed in the logs

    @property
    def key(self) -> GroupKey:
        return self.protocol, self.suite_iana, self.suite_openssl

    @property
    def known(self) -> bool:
        """Protocol and suite both seen: a policy can be checked against it."""
        return self.protocol is not None and self.suite_openssl is not None

    @property
    def label(self) -> str:
        return label(self.key)


def label(key: GroupKey) -> str:
    protocol, iana, openssl = key
    return f"{protocol or '-'} / {openssl or iana or '-'}"


@dataclass(frozen=True)
class Client:
    ip: str
    connections: int
    failed: int
    # (group, connections, failed), most connections first
    groups: tuple[tuple[GroupKey, int, int], ...]


@dataclass(frozen=True)
class Impact:
    """What a set of groups weighs in the population."""

    connections: int
    total_connections: int
    client_ips: int  # distinct over all the groups
    groups: tuple[ClientGroup, ...]
    unit: str = "connections"  # what one count is (see Population.unit)

    @property
    def share(self) -> float:
        return self.connections / self.total_connections if self.total_connections else 0.0

    def describe(self) -> str:
        """``3.2% of the connections in these logs (41 client IPs, TLSv1.1 /
        ECDHE-RSA-AES256-SHA)``"""
        names = ", ".join(g.label for g in self.groups[:3])
        if len(self.groups) > 3:
            names += f" and {len(self.groups) - 3} more"
        ips = f"{self.client_ips} client IP{'s' if self.client_ips != 1 else ''}"
        inside = f"{ips}, {names}" if names else ips
        return f"{percent(self.share)} of the {self.unit} in these logs ({inside})"


def percent(share: float) -> str:
    if share == 0:
        return "0%"
    if share < 0.001:
        return "<0.1%"
    return f"{share * 100:.1f}%"


class Population:
    """Connections per (protocol, suite) group and per client IP."""

    def __init__(self, unit: str = "connections") -> None:
        # what one count is: "connections", "requests" (HTTP access logs), or
        # "connections and requests" when both kinds of log were read
        self.unit = unit
        self._cells: dict[GroupKey, dict[str, list[int]]] = {}  # ip -> [connections, failed]
        self.total_connections = 0
        self.failed_connections = 0
        self._ips: int | None = None

    # -- building ---------------------------------------------------------------------
    def add(self, ip: str, protocol: str | None, suite: str | None, *, failed: bool = False,
            count: int = 1) -> None:
        """Count ``count`` connections of ``ip``; protocol and suite as any log spells them."""
        self.add_key(group_key(protocol, suite), ip, count, count if failed else 0)

    def add_key(self, key: GroupKey, ip: str, connections: int, failed: int = 0) -> None:
        cell = self._cells.setdefault(key, {}).setdefault(ip, [0, 0])
        cell[0] += connections
        cell[1] += failed
        self.total_connections += connections
        self.failed_connections += failed
        self._ips = None

    def merge(self, other: Population) -> None:
        for key, ips in other._cells.items():
            for ip, (n, failed) in ips.items():
                self.add_key(key, ip, n, failed)

    # -- reading ----------------------------------------------------------------------
    @property
    def client_ips(self) -> int:
        """Distinct client IPs over all groups."""
        if self._ips is None:
            self._ips = len({ip for ips in self._cells.values() for ip in ips})
        return self._ips

    def groups(self) -> list[ClientGroup]:
        """Every group, most connections first."""
        out = [self._group(key) for key in self._cells]
        out.sort(key=lambda g: (-g.connections, label(g.key)))
        return out

    def group(self, protocol: str | None, suite: str | None) -> ClientGroup | None:
        key = group_key(protocol, suite)
        return self._group(key) if key in self._cells else None

    def _group(self, key: GroupKey) -> ClientGroup:
        ips = self._cells[key]
        return ClientGroup(*key, connections=sum(c[0] for c in ips.values()),
                           client_ips=len(ips), failed=sum(c[1] for c in ips.values()))

    def ips(self, group: ClientGroup | GroupKey) -> frozenset[str]:
        key = group.key if isinstance(group, ClientGroup) else group
        return frozenset(self._cells.get(key, ()))

    def share(self, group: ClientGroup) -> float:
        return group.connections / self.total_connections if self.total_connections else 0.0

    def impact(self, affected: Callable[[ClientGroup], bool] | Iterable[ClientGroup]) -> Impact:
        """Weight of the groups a predicate selects (or of the groups given): connections,
        share of all connections, distinct client IPs."""
        if callable(affected):
            chosen = [g for g in self.groups() if affected(g)]
        else:
            chosen = sorted(affected, key=lambda g: -g.connections)
        ips: set[str] = set()
        for g in chosen:
            ips.update(self._cells.get(g.key, ()))
        return Impact(sum(g.connections for g in chosen), self.total_connections, len(ips),
                      tuple(chosen), self.unit)

    def clients(self) -> list[Client]:
        """Every client IP, most connections first."""
        per: dict[str, list[tuple[GroupKey, int, int]]] = {}
        for key, ips in self._cells.items():
            for ip, (n, failed) in ips.items():
                per.setdefault(ip, []).append((key, n, failed))
        out = []
        for ip, rows in per.items():
            rows.sort(key=lambda r: -r[1])
            out.append(Client(ip, sum(r[1] for r in rows), sum(r[2] for r in rows), tuple(rows)))
        out.sort(key=lambda c: (-c.connections, c.ip))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "total_connections": self.total_connections,
            "failed_connections": self.failed_connections,
            "client_ips": self.client_ips,
            "groups": [group_json(g, self.total_connections) for g in self.groups()],
        }


def group_json(g: ClientGroup, total: int) -> dict[str, Any]:
    return {"protocol": g.protocol, "suite_iana": g.suite_iana, "suite_openssl": g.suite_openssl,
            "connections": g.connections, "failed": g.failed, "client_ips": g.client_ips,
            "share": round(g.connections / total, 6) if total else 0.0}
