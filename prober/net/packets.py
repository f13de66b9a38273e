"""A packet capture of one endpoint's traffic: the IP TTL, IP ID and TCP window of every
packet (``diagnose --capture``).

A packet socket (``AF_PACKET``, cooked, so every packet starts at its IP header) reads
everything to and from the target's port while the plan runs, in its own thread, into
a bounded list; a kernel filter (classic BPF) keeps other traffic out where possible.
Afterwards each attempt gets the packets of its own connection (its local port, within
its time span), which is what lets a finding say "the RST came from 2 hops closer than
the server". Opening the socket needs root or CAP_NET_RAW; without them the run goes
on and the findings say what could not be checked.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from dataclasses import dataclass, replace

MAX_PACKETS = 50_000  # whole run; beyond that packets are counted, not kept
SNAPLEN = 256  # IP + TCP headers with options fit; payload is not needed
# whole packets (--pcap): loopback with GSO hands over up to 64 kB at once; the bytes kept
# over the whole run are bounded as the packet count is
SNAPLEN_FULL = 1 << 18
MAX_FULL_BYTES = 256 << 20
RCVBUF = 4 << 20
# after stop(): read until the wire is quiet this long (the resets and FINs of the last
# attempts are still queued or on their way), and never for more than DRAIN_MAX_S
DRAIN_QUIET_S = 0.1
DRAIN_MAX_S = 1.0
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)
_TCP_FLAGS = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "A"))


@dataclass(frozen=True)
class RawPacket:
    ts: float  # wall clock, as AttemptResult.started_at
    src: str
    sport: int
    dst: str
    dport: int
    flags: str
    ttl: int
    ip_id: int | None
    window: int
    length: int  # TCP payload bytes
    # the whole packet from its IP header on, in full-snaplen mode only (--pcap)
    data: bytes | None = None


def flags_text(bits: int) -> str:
    return "".join(ch for bit, ch in _TCP_FLAGS if bits & bit)


def _tcp(seg: bytes, payload_total: int) -> tuple[int, int, str, int, int] | None:
    """(sport, dport, flags, window, payload length) of a TCP header."""
    if len(seg) < 20:
        return None
    sport, dport, _seq, _ack, off_flags, window = struct.unpack_from("!HHIIHH", seg)
    doff = (off_flags >> 12) * 4
    return sport, dport, flags_text(off_flags & 0x3F), window, max(0, payload_total - doff)


def parse_ipv4(data: bytes, ts: float) -> RawPacket | None:
    if len(data) < 20 or data[0] >> 4 != 4 or data[9] != 6:
        return None
    ihl = (data[0] & 0x0F) * 4
    total, ip_id, frag = struct.unpack_from("!HHH", data, 2)
    if frag & 0x1FFF:
        return None  # a later fragment carries no TCP header
    t = _tcp(data[ihl:], total - ihl)
    if t is None:
        return None
    return RawPacket(ts, socket.inet_ntoa(data[12:16]), t[0], socket.inet_ntoa(data[16:20]),
                     t[1], t[2], data[8], ip_id, t[3], t[4])


def parse_ipv6(data: bytes, ts: float) -> RawPacket | None:
    # extension headers before TCP are rare on a handshake: not followed
    if len(data) < 60 or data[0] >> 4 != 6 or data[6] != 6:
        return None
    plen = struct.unpack_from("!H", data, 4)[0]
    t = _tcp(data[40:], plen)
    if t is None:
        return None
    src = str(ipaddress.IPv6Address(data[8:24]))
    dst = str(ipaddress.IPv6Address(data[24:40]))
    return RawPacket(ts, src, t[0], dst, t[1], t[2], data[7], None, t[3], t[4])


def bpf_tcp_port(port: int, v6: bool = False) -> bytes:
    """Classic BPF over a cooked packet: IPv4, TCP, not a fragment, either port ==
    ``port``; with ``v6``, IPv6 with TCP right after its fixed header (no extension
    header, as parse_ipv6 reads it). The socket takes every ethertype (ETH_P_ALL), so
    without it all the host's traffic would be copied up to Python."""
    if v6:
        ins = [
            (0x28, 0, 0, 0xFFFFF000),  # ldh proto  (SKF_AD_PROTOCOL: the ethertype)
            (0x15, 0, 7, ETH_P_IPV6),  # jeq #0x86dd  else drop
            (0x30, 0, 0, 6),  # ldb [6]          next header
            (0x15, 0, 5, 6),  # jeq #6           else drop
            (0x28, 0, 0, 40),  # ldh [40]        source port
            (0x15, 2, 0, port),  # jeq #port        accept
            (0x28, 0, 0, 42),  # ldh [42]        destination port
            (0x15, 0, 1, port),  # jeq #port        accept, else drop
            (0x06, 0, 0, 0x40000),  # ret #262144     accept
            (0x06, 0, 0, 0),  # ret #0           drop
        ]
        return b"".join(struct.pack("HBBI", *i) for i in ins)
    ins = [
        (0x28, 0, 0, 0xFFFFF000),  # ldh proto  (SKF_AD_PROTOCOL: the ethertype)
        (0x15, 0, 10, ETH_P_IP),  # jeq #0x800   else drop
        (0x30, 0, 0, 9),  # ldb [9]          protocol
        (0x15, 0, 8, 6),  # jeq #6           else drop
        (0x28, 0, 0, 6),  # ldh [6]          flags + fragment offset
        (0x45, 6, 0, 0x1FFF),  # jset #0x1fff    fragment: drop
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf) IP header length
        (0x48, 0, 0, 0),  # ldh [x+0]        source port
        (0x15, 2, 0, port),  # jeq #port        accept
        (0x48, 0, 0, 2),  # ldh [x+2]        destination port
        (0x15, 0, 1, port),  # jeq #port        accept, else drop
        (0x06, 0, 0, 0x40000),  # ret #262144     accept
        (0x06, 0, 0, 0),  # ret #0           drop
    ]
    return b"".join(struct.pack("HBBI", *i) for i in ins)


def _attach_filter(sock: socket.socket, prog: bytes) -> None:
    import ctypes

    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HL", len(prog) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _timestamp(ancdata: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(data) >= 16:
            sec, usec = struct.unpack_from("qq", data)
            return float(sec) + float(usec) / 1e6
    return time.time()


class Capture:
    """Records the packets to and from ``address:port`` until ``stop()``."""

    def __init__(self, address: str, port: int, family: int, limit: int = MAX_PACKETS,
                 full: bool = False) -> None:
        self.address = str(ipaddress.ip_address(address))
        self.port = port
        self.v6 = family == socket.AF_INET6
        self.limit = limit
        self.full = full
        self.snaplen = SNAPLEN_FULL if full else SNAPLEN
        self.packets: list[RawPacket] = []
        self.dropped = 0
        self._kept_bytes = 0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the packet socket (OSError/PermissionError when not allowed) and start."""
        # ETH_P_ALL, not the IP ethertype: a socket bound to one protocol is handed
        # incoming packets only, and the prober's own SYN, hello and ACKs are evidence too
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
            try:
                _attach_filter(sock, bpf_tcp_port(self.port, self.v6))
            except OSError:
                pass  # filtered below in Python anyway
            sock.settimeout(0.2)  # how quickly stop() is noticed
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._loop, name="prober-capture", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        parse = parse_ipv6 if self.v6 else parse_ipv4
        proto = ETH_P_IPV6 if self.v6 else ETH_P_IP
        drain_until = 0.0
        while True:
            if not drain_until and self._stop.is_set():
                drain_until = time.monotonic() + DRAIN_MAX_S
                sock.settimeout(DRAIN_QUIET_S)
            elif drain_until and time.monotonic() > drain_until:
                return
            try:
                data, anc, _flags, addr = sock.recvmsg(self.snaplen, socket.CMSG_SPACE(16))
            except TimeoutError:
                if drain_until:
                    return
                continue
            except OSError:
                return
            # loopback shows every packet twice: once leaving, once arriving
            if addr[1] != proto or (addr[2] == PACKET_OUTGOING and addr[0] == "lo"):
                continue
            p = parse(data, _timestamp(anc))
            if p is None or not self._ours(p):
                continue
            if len(self.packets) >= self.limit or (
                    self.full and self._kept_bytes + len(data) > MAX_FULL_BYTES):
                self.dropped += 1
                continue
            if self.full:
                self._kept_bytes += len(data)
                p = replace(p, data=data)
            self.packets.append(p)

    def _ours(self, p: RawPacket) -> bool:
        return (p.dst == self.address and p.dport == self.port) or (
            p.src == self.address and p.sport == self.port)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(DRAIN_MAX_S + 1)
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# (remote address, remote port, local port): the connection a packet belongs to
Conn = tuple[str, int, int]


def by_connection(packets: list[RawPacket]) -> dict[Conn, list[tuple[RawPacket, bool]]]:
    """The packets of each connection, in capture order, with whether each came in: one
    pass, so matching them to attempts does not rescan the capture per attempt."""
    out: dict[Conn, list[tuple[RawPacket, bool]]] = {}
    for p in packets:
        sent = (p.dst, p.dport, p.sport)
        out.setdefault(sent, []).append((p, False))
        came = (p.src, p.sport, p.dport)
        if came != sent:  # a packet to itself is only counted as sent
            out.setdefault(came, []).append((p, True))
    return out


def packets_between(conns: dict[Conn, list[tuple[RawPacket, bool]]], address: str, port: int,
                    local_port: int, start: float, end: float
                    ) -> list[tuple[RawPacket, bool]]:
    """The packets of one connection within [start, end] (wall clock): a local port is
    reused by later attempts, so its time span is what tells them apart."""
    key = (str(ipaddress.ip_address(address)), port, local_port)
    return [(p, came) for p, came in conns.get(key, ()) if start <= p.ts <= end]


def open_capture(address: str, port: int, family: int, full: bool = False
                 ) -> tuple[Capture | None, str]:
    """A started capture, or None and why it could not be opened; ``full`` keeps whole
    packets (for a pcap) instead of their headers."""
    cap = Capture(address, port, family, full=full)
    try:
        cap.start()
    except PermissionError:
        return None, "no raw socket: needs root or CAP_NET_RAW"
    except (OSError, AttributeError) as e:
        # AttributeError: no AF_PACKET on this platform
        return None, f"no packet socket: {e}"
    return cap, "ok"
