"""Linux TCP_INFO: what the kernel knows about a connection (ACKs, retransmits, RTT)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

_TCP_INFO = getattr(socket, "TCP_INFO", 11)
# struct tcp_info (linux/tcp.h): 8 u8 fields, then u32 rto .. reordering
_LAYOUT = struct.Struct("=8B21I")
_FIELDS_U32 = ("rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans",
               "fackets", "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv",
               "pmtu", "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss",
               "reordering")
_NOTSENT = struct.Struct("=I")
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

    @property
    def all_acked(self) -> bool:
        return self.unacked == 0 and self.notsent_bytes == 0


def read(sock: socket.socket) -> TcpInfo | None:
    """TCP_INFO of a socket, or None where the platform does not provide it."""
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 232)
    except (OSError, AttributeError):
        return None
    if len(raw) < 136:  # kernels before 4.1 lack bytes_acked
        return None
    vals = _LAYOUT.unpack_from(raw)
    u8s, u32s = vals[:8], vals[8:29]
    rcv_rtt_space_total = struct.unpack_from("=3I", raw, 92)
    named = dict(zip(_FIELDS_U32, u32s, strict=True))
    bytes_acked, bytes_received = struct.unpack_from("=2Q", raw, 120)
    notsent = _NOTSENT.unpack_from(raw, _NOTSENT_OFFSET)[0] if len(raw) >= 148 else 0
    return TcpInfo(state=u8s[0], retransmits=u8s[2], unacked=named["unacked"],
                   rtt_us=named["rtt"], total_retrans=rcv_rtt_space_total[2],
                   bytes_acked=bytes_acked, bytes_received=bytes_received,
                   notsent_bytes=notsent, last_ack_recv_ms=named["last_ack_recv"])
