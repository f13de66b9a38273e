"""``--capture``: each attempt gets the packets of its own connection (its local port,
within its time span) from the packet capture of :mod:`prober.net.packets`, which is
what lets a finding say "the RST came from 2 hops closer than the server".
"""

from __future__ import annotations

import ipaddress
from typing import Any

from prober.core.attempt import AttemptResult
from prober.net.packets import Capture, RawPacket, by_connection

PER_ATTEMPT = 60  # kept per attempt in the JSON

# (remote address, remote port, local port): the connection a packet belongs to
_Conn = tuple[str, int, int]


def packets_of(r: AttemptResult, conns: dict[_Conn, list[tuple[RawPacket, bool]]],
               address: str, port: int) -> list[dict[str, Any]]:
    """The captured packets of one attempt's connection, as JSON."""
    obs = r.obs
    if obs is None or obs.local_port is None:
        return []
    start = r.started_at - 0.05
    end = r.started_at + (obs.t_end or 0.0) + 0.5  # our closing RST comes last
    out = []
    for p, incoming in conns.get((address, port, obs.local_port), ()):
        if not start <= p.ts <= end:
            continue
        out.append({"t_ms": round((p.ts - r.started_at) * 1000, 3),
                    "dir": "in" if incoming else "out", "flags": p.flags, "ttl": p.ttl,
                    "ip_id": p.ip_id, "win": p.window, "len": p.length})
        if len(out) >= PER_ATTEMPT:
            break
    return out


def attach(results: list[AttemptResult], cap: Capture) -> int:
    """Give every attempt its packets (``data["packets"]``); returns how many were kept."""
    conns = by_connection(cap.packets)
    n = 0
    for r in results:
        if r.address is None:
            continue
        pk = packets_of(r, conns, str(ipaddress.ip_address(r.address)), r.port)
        r.data["packets"] = pk
        n += len(pk)
    return n
