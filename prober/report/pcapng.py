"""``--pcap FILE``: the packets of prober's own attempts as pcapng, one comment per attempt.

The pcapng block format (SHB, one IDB of raw IP packets, an EPB per packet) is a few
dozen lines, so it is written here rather than pulled in as a dependency. Each attempt's
first packet carries an ``opt_comment`` naming the attempt, its profile and its outcome:
Wireshark shows it beside the frame, ``tshark -T fields -e frame.comment`` reads it back,
and with ``--keylog`` the TLS 1.3 server flight in the same file decrypts.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from prober import __version__
from prober.core.attempt import AttemptResult
from prober.net.packets import RawPacket, by_connection, packets_between

LINKTYPE_RAW = 101  # every captured packet starts at its IP header (cooked packet socket)
_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT, _SHB_USERAPPL = 0, 1, 4
# an attempt's packets: from just before it started until our closing RST has come back
_BEFORE_S, _AFTER_S = 0.05, 0.5


@dataclass(frozen=True)
class Frame:
    ts: float  # wall clock
    data: bytes
    comment: str | None = None


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _options(opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    body = b"".join(struct.pack("<HH", code, len(v)) + _pad(v) for code, v in opts)
    return body + struct.pack("<HH", _OPT_END, 0)


def _block(kind: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


def header() -> bytes:
    """Section header and the one interface (raw IPv4/IPv6, timestamps in microseconds)."""
    shb = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + _options(
        [(_SHB_USERAPPL, f"prober {__version__}".encode())])
    idb = struct.pack("<HHI", LINKTYPE_RAW, 0, 0)
    return _block(_SHB, shb) + _block(_IDB, idb)


def packet_block(frame: Frame) -> bytes:
    us = round(frame.ts * 1_000_000)
    body = struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, len(frame.data), len(frame.data))
    opts = [(_OPT_COMMENT, frame.comment.encode("utf-8"))] if frame.comment else []
    return _block(_EPB, body + _pad(frame.data) + _options(opts))


def write(out: BinaryIO, frames: Iterable[Frame]) -> int:
    """Write a whole pcapng file; returns the number of packets."""
    out.write(header())
    n = 0
    for f in frames:
        out.write(packet_block(f))
        n += 1
    return n


def attempt_comment(r: AttemptResult) -> str:
    detail = f" ({r.detail})" if r.detail else ""
    return f"prober attempt {r.id}: profile {r.profile}, outcome {r.outcome}{detail}"


def attempt_frames(results: Iterable[AttemptResult], packets: list[RawPacket]) -> list[Frame]:
    """The whole packets of each attempt's own connection, in time order; the first packet
    of each attempt carries its comment. Packets without their bytes (a header-only
    capture) and packets of no attempt are left out."""
    conns = by_connection(packets)
    frames: list[Frame] = []
    for r in sorted(results, key=lambda r: r.id):
        obs = r.obs
        if obs is None or obs.local_port is None or r.address is None:
            continue
        end = r.started_at + (obs.t_end or 0.0) + _AFTER_S
        mine = [p for p, _ in packets_between(conns, r.address, r.port, obs.local_port,
                                              r.started_at - _BEFORE_S, end)
                if p.data is not None]
        for i, p in enumerate(mine):
            assert p.data is not None
            frames.append(Frame(p.ts, p.data, attempt_comment(r) if i == 0 else None))
    frames.sort(key=lambda f: f.ts)
    return frames


def write_attempts(path: str, results: Iterable[AttemptResult], packets: list[RawPacket]
                   ) -> int:
    """``--pcap FILE``: returns the number of packets written."""
    with open(path, "wb") as fh:
        return write(fh, attempt_frames(results, packets))
