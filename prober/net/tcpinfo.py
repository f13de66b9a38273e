"""Linux TCP_INFO: what the kernel knows about a connection (ACKs, retransmits, RTT)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

_TCP_INFO = getattr(socket, "TCP_INFO", 11)
_NOTSENT_OFFSET = 144


@dataclass(frozen=True)
class TcpInfo:
    state: int
    retransmits: int
    unacked: int
    rtt_us: int
    total_retrans: int
    bytes_acked: int
    bytes_received: int
    notsent_bytes: int
    last_ack_recv_ms: int
    snd_mss: int  # the largest segment this side sends: a hello above it takes two

    @property
    def all_acked(self) -> bool:
        return self.unacked == 0 and self.notsent_bytes == 0


# the fields read, at their offsets in struct tcp_info (linux/tcp.h): state, retransmits (u8);
# unacked, last_ack_recv, rtt (u32); total_retrans (u32); bytes_acked, bytes_received (u64)
_STATE = struct.Struct("=BxB")
_U32S = struct.Struct("=I")
_OFF_SND_MSS, _OFF_UNACKED, _OFF_LAST_ACK_RECV, _OFF_RTT, _OFF_TOTAL_RETRANS = (
    16, 24, 56, 68, 100)
_U64S = struct.Struct("=2Q")
_OFF_BYTES_ACKED = 120


def read(sock: socket.socket) -> TcpInfo | None:
    """TCP_INFO of a socket, or None where the platform does not provide it."""
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 232)
    except (OSError, AttributeError):
        return None
    if len(raw) < 136:  # kernels before 4.1 lack bytes_acked
        return None
    state, retransmits = _STATE.unpack_from(raw)
    u32 = _U32S.unpack_from
    bytes_acked, bytes_received = _U64S.unpack_from(raw, _OFF_BYTES_ACKED)
    notsent = u32(raw, _NOTSENT_OFFSET)[0] if len(raw) >= 148 else 0
    return TcpInfo(state=state, retransmits=retransmits, unacked=u32(raw, _OFF_UNACKED)[0],
                   rtt_us=u32(raw, _OFF_RTT)[0], total_retrans=u32(raw, _OFF_TOTAL_RETRANS)[0],
                   bytes_acked=bytes_acked, bytes_received=bytes_received,
                   notsent_bytes=notsent, last_ack_recv_ms=u32(raw, _OFF_LAST_ACK_RECV)[0],
                   snd_mss=u32(raw, _OFF_SND_MSS)[0])
