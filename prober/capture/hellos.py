"""Captured ClientHellos grouped into client profiles.

Two hellos belong to one profile when they come from one client configuration
(:func:`prober.profiles.identity.client_identity`, as for live capture); the group is
named after their JA4. What a group remembers about where it was seen is bounded
(``MAX_TRACKED`` distinct values per field), so a capture of millions of connections
keeps a small footprint.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prober.profiles.identity import client_identity
from prober.profiles.importer import doc_from_hello, slug
from prober.report.timestamps import iso_ms
from prober.wire import peertext
from prober.wire.clienthello import (
    ClientHello,
    SSLv2Hello,
    decode_server_name,
)
from prober.wire.constants import ExtensionType
from prober.wire.fingerprint import ja3, ja4

MAX_TRACKED = 10_000
SHOWN = 20  # values of each kind written into a profile's extra


@dataclass(frozen=True)
class SeenHello:
    raw: bytes
    hello: ClientHello | SSLv2Hello
    client: str
    client_port: int
    server: str
    server_port: int
    ts: float  # NaN when the capture's timestamp was out of range
    source: str  # the capture file
    frame: int = 0  # the frame (1-based, in its file) that completed the hello

    @property
    def sni(self) -> str | None:
        if isinstance(self.hello, SSLv2Hello):
            return None
        body = self.hello.extension(ExtensionType.SERVER_NAME)
        if body is None:
            return None
        try:
            return decode_server_name(body)
        except ValueError:
            return None


def fingerprint(hello: ClientHello | SSLv2Hello) -> str:
    """JA4, or for an SSLv2 hello (which JA4 does not cover) a hash of its cipher specs."""
    if isinstance(hello, ClientHello):
        return ja4(hello)
    specs = ",".join(f"{s:06x}" for s in hello.cipher_specs)
    return f"sslv2_{hello.version:04x}_{hashlib.sha256(specs.encode()).hexdigest()[:12]}"


class _Bounded(Counter[Any]):
    """A Counter that stops learning new keys at MAX_TRACKED (old keys keep counting)."""

    overflow = False

    def see(self, key: Any) -> None:
        if key in self or len(self) < MAX_TRACKED:
            self[key] += 1
        else:
            self.overflow = True


@dataclass
class HelloGroup:
    fingerprint: str
    identity: str
    first: SeenHello  # the hello the profile is made from
    count: int = 0
    clients: _Bounded = field(default_factory=_Bounded)
    server_ports: _Bounded = field(default_factory=_Bounded)
    sni: _Bounded = field(default_factory=_Bounded)  # "" counts hellos without SNI
    sources: _Bounded = field(default_factory=_Bounded)
    first_seen: float = float("inf")
    last_seen: float = float("-inf")
    name: str = ""

    @property
    def ja3(self) -> str | None:
        h = self.first.hello
        return ja3(h) if isinstance(h, ClientHello) else None

    def add(self, seen: SeenHello) -> None:
        self.count += 1
        self.clients.see(seen.client)
        self.server_ports.see(seen.server_port)
        self.sni.see(seen.sni or "")
        self.sources.see(seen.source)
        if math.isfinite(seen.ts):
            self.first_seen = min(self.first_seen, seen.ts)
            self.last_seen = max(self.last_seen, seen.ts)

    def span(self) -> tuple[str | None, str | None]:
        """First and last seen (ISO 8601), None when no hello had a usable time."""
        if not math.isfinite(self.first_seen):
            return None, None
        return iso_ms(self.first_seen), iso_ms(self.last_seen)

    def top_sni(self) -> list[str]:
        return [s for s, _ in self.sni.most_common() if s]


class Grouper:
    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], HelloGroup] = {}

    def add(self, seen: SeenHello) -> None:
        key = (fingerprint(seen.hello), client_identity(seen.hello))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = HelloGroup(key[0], key[1], seen)
        group.add(seen)

    def groups(self) -> list[HelloGroup]:
        """Most seen first; each with a unique profile name."""
        out = sorted(self._groups.values(), key=lambda g: (-g.count, g.fingerprint, g.identity))
        assign_names(out)
        return out


def assign_names(groups: list[HelloGroup]) -> None:
    """JA4 plus the most common SNI; a numeric suffix where two groups would collide."""
    used: set[str] = set()
    for g in groups:
        sni = g.top_sni()
        base = g.fingerprint + (f"-{slug(sni[0])[:60].strip('-')}" if sni else "")
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        g.name = name


def profile_doc(g: HelloGroup) -> dict[str, Any]:
    files = [os.path.basename(s) for s, _ in g.sources.most_common()]
    n_clients = len(g.clients)
    doc = doc_from_hello(
        g.first.raw, name=g.name, origin="imported",
        description=(f"{g.count} ClientHello{'s' if g.count != 1 else ''} from {n_clients} "
                     f"client address{'es' if n_clients != 1 else ''} in a capture"),
        source="pcap: " + ", ".join(files[:SHOWN]))
    doc["extra"].update(_facts(g, files))
    return doc


def _facts(g: HelloGroup, files: list[str]) -> dict[str, Any]:
    return {
        "count": g.count,
        "client_ips": [ip for ip, _ in g.clients.most_common(SHOWN)],
        "client_ip_count": len(g.clients),
        "client_ips_overflow": g.clients.overflow,
        "server_ports": sorted(p for p, _ in g.server_ports.most_common(SHOWN)),
        "sni": [peertext.json_value(s) for s in g.top_sni()[:SHOWN]],
        "hellos_without_sni": g.sni.get("", 0),
        "first_seen": g.span()[0],
        "last_seen": g.span()[1],
        "files": files[:SHOWN],
    }
