"""Writing small capture files by hand: pcap and pcapng of TCP connections carrying any
bytes, with the timestamps and interface options a test chooses.

Frames are Ethernet / IPv4 / TCP; a connection is its SYN then its data segments.
Checksums are left zero (nothing reading captures checks them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prober.wire.buffer import u16, u24, vec

SYN, ACK, PSH = 0x02, 0x10, 0x08


@dataclass(frozen=True)
class Packet:
    frame: bytes
    ts: float = 1_700_000_000.0


def tcp_frame(payload: bytes, *, sport: int, dport: int = 443, seq: int = 1000,
              flags: int = PSH | ACK, src: str = "192.0.2.10", dst: str = "198.51.100.1"
              ) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 6, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    return eth + ip + tcp + payload


def connection(data: bytes, *, sport: int, ts: float = 1_700_000_000.0,
               segment: int = 1400) -> list[Packet]:
    """A SYN, then ``data`` in segments of ``segment`` bytes."""
    isn = 1000
    out = [Packet(tcp_frame(b"", sport=sport, seq=isn, flags=SYN), ts)]
    for i in range(0, len(data), segment):
        out.append(Packet(tcp_frame(data[i:i + segment], sport=sport, seq=isn + 1 + i),
                          ts + 0.001 * (1 + i // segment)))
    return out


def pcap(packets: Iterable[Packet], *, nanoseconds: bool = False) -> bytes:
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = bytearray(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, 1))
    scale = 10**9 if nanoseconds else 10**6
    for p in packets:
        sec = int(p.ts)
        frac = round((p.ts - sec) * scale)
        out += struct.pack("<IIII", sec, frac, len(p.frame), len(p.frame)) + p.frame
    return bytes(out)


def _block(btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def pcapng(packets: Sequence[tuple[int, Packet]] | Iterable[tuple[int, Packet]], *,
           tsresol: int | None = None, tsoffset: int | None = None,
           raw_ticks: dict[int, int] | None = None) -> bytes:
    """One section, one Ethernet interface with the given ``if_tsresol`` byte and
    ``if_tsoffset`` seconds; each packet as an Enhanced Packet Block.  A packet's
    timestamp is ``ts`` in the interface's units unless ``raw_ticks`` gives, by its
    index, the 64-bit tick count to write instead."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts += _option(9, bytes([tsresol]))
    if tsoffset is not None:
        opts += _option(14, struct.pack("<q", tsoffset))
    if opts:
        opts += _option(0, b"")
    idb = _block(1, struct.pack("<HHI", 1, 0, 262144) + opts)
    out = bytearray(shb + idb)
    units = 10**6
    if tsresol is not None:
        units = 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol
    for i, (_, p) in enumerate(packets):
        ticks = (raw_ticks or {}).get(i, int(p.ts * units))
        hi, lo = ticks >> 32 & 0xFFFFFFFF, ticks & 0xFFFFFFFF
        out += _block(6, struct.pack("<IIIII", 0, hi, lo, len(p.frame), len(p.frame)) + p.frame)
    return bytes(out)


# -- ClientHellos as a client would send them (or would not) ---------------------------------


def client_hello(*, version: int = 0x0303, suites: Sequence[int] = (0x1301, 0xC02F),
                 extensions: Sequence[tuple[int, bytes]] | None = (),
                 session_id: bytes = bytes(32)) -> bytes:
    """One record holding a ClientHello with exactly these fields."""
    body = (u16(version) + bytes(32) + vec(session_id, 1)
            + vec(b"".join(u16(s) for s in suites), 2) + vec(b"\x00", 1))
    if extensions is not None:
        body += vec(b"".join(u16(t) + vec(b, 2) for t, b in extensions), 2)
    msg = b"\x01" + u24(len(body)) + body
    return b"\x16\x03\x01" + u16(len(msg)) + msg


def sslv2_hello(specs: Sequence[int], *, version: int = 0x0002,
                challenge: bytes = bytes(16)) -> bytes:
    raw = b"".join(s.to_bytes(3, "big") for s in specs)
    body = (b"\x01" + u16(version) + u16(len(raw)) + u16(0) + u16(len(challenge)) + raw
            + challenge)
    return u16(0x8000 | len(body)) + body
