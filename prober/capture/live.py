"""Capturing the ClientHellos of real clients, sans I/O: captured hellos grouped by client
configuration (:func:`prober.profiles.identity.client_identity`), and what profile
document a capture becomes. The listener that receives them is :mod:`prober.net.listener`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from prober.net.host import hostname
from prober.net.listener import CapturedHello
from prober.profiles.identity import client_identity
from prober.profiles.importer import doc_from_hello, slug
from prober.wire import peertext
from prober.wire.buffer import DecodeError
from prober.wire.clienthello import (
    ClientHello,
    SSLv2Hello,
    decode_alpn,
    decode_server_name,
)
from prober.wire.constants import ExtensionType
from prober.wire.fingerprint import ja3, ja4

# --- sans-I/O: captures -> profile documents ------------------------------------------------


@dataclass
class CaptureGroup:
    """The hellos of one client configuration; the first one becomes the profile."""

    name: str
    key: str
    hellos: list[CapturedHello] = field(default_factory=list)

    @property
    def first(self) -> CapturedHello:
        return self.hellos[0]


@dataclass
class ClientInfo:
    """What the person capturing knows about the client (written into the profile)."""

    name: str = ""
    version: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)  # library, build, ...


class CaptureBook:
    """Groups captured hellos by client configuration and names the groups."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.groups: list[CaptureGroup] = []

    def add(self, c: CapturedHello) -> tuple[CaptureGroup, bool]:
        """Record one hello; returns its group and whether the group is new."""
        key = client_identity(c.hello)
        for grp in self.groups:
            if grp.key == key:
                grp.hellos.append(c)
                return grp, False
        grp = CaptureGroup(self._next_name(c.hello, key), key, [c])
        self.groups.append(grp)
        return grp, True

    def _next_name(self, hello: ClientHello | SSLv2Hello, key: str) -> str:
        if self.name:
            n = len(self.groups) + 1
            return self.name if n == 1 else f"{self.name}-{n}"
        head = ja4(hello).split("_")[0] if isinstance(hello, ClientHello) else "sslv2"
        return f"captured-{head}-{key[:6]}"

    def documents(self, info: ClientInfo, *, mode: str, host: str | None = None
                  ) -> list[tuple[CaptureGroup, dict[str, Any]]]:
        return [(g, capture_doc(g, info, mode=mode, host=host)) for g in self.groups]


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")


def capture_doc(group: CaptureGroup, info: ClientInfo, *, mode: str,
                host: str | None = None) -> dict[str, Any]:
    """The profile document of one capture group (``origin: captured``)."""
    first = group.first
    host = host or hostname()
    when = _iso(first.at)
    client = {k: v for k, v in (("name", info.name), ("version", info.version)) if v}
    client.update(info.details)
    who = f"{info.name} {info.version}".strip() or "a client"
    description = info.description or (
        f"{who}: the ClientHello it sent to `prober profiles capture` from {first.peer}")
    doc = doc_from_hello(first.raw, name=group.name, origin="captured", description=description,
                         client=client or None,
                         source=f"prober profiles capture on {host}, {when}",
                         tags=list(info.tags) or None)
    hello = first.hello
    capture: dict[str, Any] = {"at": when, "from": first.peer, "listener": first.listener,
                               "host": host, "mode": mode, "connections": len(group.hellos)}
    if isinstance(hello, ClientHello):
        sni = hello.extension(ExtensionType.SERVER_NAME)
        alpn = hello.extension(ExtensionType.ALPN)
        capture["sni"] = capture["alpn"] = None
        with contextlib.suppress(DecodeError):
            name = decode_server_name(sni) if sni is not None else None
            capture["sni"] = None if name is None else peertext.json_value(name)
        with contextlib.suppress(DecodeError):
            capture["alpn"] = None if alpn is None else [
                peertext.json_value(a) for a in decode_alpn(alpn)]
        variants = sorted({ja3(h) for h in (c.hello for c in group.hellos)
                           if isinstance(h, ClientHello)})
        if len(variants) > 1:
            # same configuration, other extension order or GREASE values (Chrome)
            capture["ja3_variants"] = variants
    doc["extra"]["capture"] = capture
    return doc


def profile_filename(name: str) -> str:
    return f"{slug(name)}.yaml"


