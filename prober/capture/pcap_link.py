"""Link, network and transport headers of one captured frame, down to a TCP segment.

Link types: Ethernet (with any number of 802.1Q/802.1ad tags), Linux cooked capture v1
and v2 (what ``tcpdump -i any`` writes), raw IP, BSD loopback. IPv4 and IPv6 (extension
headers skipped). VXLAN on UDP 4789 (what AWS VPC traffic mirroring sends) is opened and
its inner Ethernet frame decoded in turn.

Every frame that is not a TCP segment is tallied in ``seen`` (why it was passed over)
or in ``malformed`` (a header that contradicts itself); nothing here raises.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from prober.capture.pcap_file import Frame

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW as some BSDs number it in files written there
_RAW_ALIASES = (12, 14)

LINKTYPE_NAMES = {
    LINKTYPE_NULL: "BSD loopback", LINKTYPE_ETHERNET: "Ethernet", LINKTYPE_RAW: "raw IP",
    12: "raw IP", 14: "raw IP", LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked v1", LINKTYPE_LINUX_SLL2: "Linux cooked v2",
    LINKTYPE_IPV4: "raw IPv4", LINKTYPE_IPV6: "raw IPv6",
}

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
VXLAN_PORT = 4789
# address families a BSD loopback header may name for IPv6 (Linux, *BSD, macOS)
_AF_INET = 2
_AF_INET6 = (10, 24, 28, 30)
_IPV6_EXT = (0, 43, 60, 51)
_MAX_DEPTH = 3  # VXLAN inside VXLAN inside VXLAN is damage or an attack, not traffic


@dataclass(frozen=True)
class Segment:
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    flags: int
    payload: bytes
    ts: float
    cut: bool  # the capture kept fewer payload bytes than were sent (snaplen)


TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


@dataclass
class Tally:
    seen: Counter[str]
    malformed: Counter[str]

    @classmethod
    def new(cls) -> Tally:
        return cls(Counter(), Counter())


def tcp_segment(frame: Frame, tally: Tally) -> Segment | None:
    """The TCP segment a frame carries (after VXLAN decapsulation), or None."""
    cut = len(frame.data) < frame.wire_len
    return _link(frame.linktype, frame.data, frame.ts, cut, tally, 0)


def _link(linktype: int, data: bytes, ts: float, cut: bool, tally: Tally,
          depth: int) -> Segment | None:
    if linktype == LINKTYPE_ETHERNET:
        return _ethernet(data, ts, cut, tally, depth)
    if linktype in (LINKTYPE_RAW, *_RAW_ALIASES, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return _ip(data, ts, cut, tally, depth)
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            tally.malformed["Linux cooked header truncated"] += 1
            return None
        return _ethertype(int.from_bytes(data[14:16], "big"), data[16:], ts, cut, tally, depth)
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            tally.malformed["Linux cooked v2 header truncated"] += 1
            return None
        return _ethertype(int.from_bytes(data[0:2], "big"), data[20:], ts, cut, tally, depth)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            tally.malformed["loopback header truncated"] += 1
            return None
        # DLT_NULL holds the family in the writer's byte order; either reading is small
        fam = int.from_bytes(data[:4], "big")
        if fam > 0xFFFF:
            fam = int.from_bytes(data[:4], "little")
        if fam == _AF_INET or fam in _AF_INET6:
            return _ip(data[4:], ts, cut, tally, depth)
        tally.seen["loopback frame of another family"] += 1
        return None
    tally.seen[f"link type {linktype} not supported"] += 1
    return None


def _ethernet(data: bytes, ts: float, cut: bool, tally: Tally, depth: int) -> Segment | None:
    if len(data) < 14:
        tally.malformed["Ethernet header truncated"] += 1
        return None
    etype = int.from_bytes(data[12:14], "big")
    pos = 14
    while etype in _VLAN_TAGS:
        if len(data) < pos + 4:
            tally.malformed["VLAN tag truncated"] += 1
            return None
        etype = int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 4
    return _ethertype(etype, data[pos:], ts, cut, tally, depth)


def _ethertype(etype: int, data: bytes, ts: float, cut: bool, tally: Tally,
               depth: int) -> Segment | None:
    if etype in (ETH_IPV4, ETH_IPV6):
        return _ip(data, ts, cut, tally, depth)
    tally.seen["not IP (ARP, LLDP, ...)"] += 1
    return None


def _ip(data: bytes, ts: float, cut: bool, tally: Tally, depth: int) -> Segment | None:
    if not data:
        tally.malformed["empty IP packet"] += 1
        return None
    version = data[0] >> 4
    if version == 4:
        return _ipv4(data, ts, cut, tally, depth)
    if version == 6:
        return _ipv6(data, ts, cut, tally, depth)
    tally.malformed[f"IP version {version}"] += 1
    return None


def _ipv4(data: bytes, ts: float, cut: bool, tally: Tally, depth: int) -> Segment | None:
    ihl = (data[0] & 0x0F) * 4
    if len(data) < 20 or ihl < 20 or len(data) < ihl:
        tally.malformed["IPv4 header truncated or bad length"] += 1
        return None
    total = int.from_bytes(data[2:4], "big")
    frag = int.from_bytes(data[6:8], "big")
    proto = data[9]
    if total < ihl:
        # TSO/GRO captures write 0 here; trust the frame
        total = len(data)
    if total < len(data):
        data = data[:total]  # Ethernet padding after the datagram
    elif total > len(data):
        cut = True
    if frag & 0x3FFF:
        tally.seen["IP fragment (not reassembled)"] += 1
        return None
    src, dst = str(IPv4Address(data[12:16])), str(IPv4Address(data[16:20]))
    return _transport(proto, data[ihl:], src, dst, ts, cut, tally, depth)


def _ipv6(data: bytes, ts: float, cut: bool, tally: Tally, depth: int) -> Segment | None:
    if len(data) < 40:
        tally.malformed["IPv6 header truncated"] += 1
        return None
    plen = int.from_bytes(data[4:6], "big")
    nxt = data[6]
    src = _v6(data[8:24])
    dst = _v6(data[24:40])
    body = data[40:]
    if plen and plen < len(body):
        body = body[:plen]
    elif plen > len(body):
        cut = True
    for _ in range(8):  # a chain longer than this is not a real packet
        if nxt not in _IPV6_EXT and nxt != 44:
            break
        if nxt == 44:
            tally.seen["IP fragment (not reassembled)"] += 1
            return None
        if len(body) < 8:
            tally.malformed["IPv6 extension header truncated"] += 1
            return None
        size = (body[1] + 2) * 4 if nxt == 51 else (body[1] + 1) * 8
        nxt, body = body[0], body[size:]
    return _transport(nxt, body, src, dst, ts, cut, tally, depth)


def _transport(proto: int, data: bytes, src: str, dst: str, ts: float, cut: bool,
               tally: Tally, depth: int) -> Segment | None:
    if proto == 6:
        return _tcp(data, src, dst, ts, cut, tally)
    if proto == 17:
        return _udp(data, ts, cut, tally, depth)
    tally.seen["not TCP (ICMP, ...)"] += 1
    return None


def _tcp(data: bytes, src: str, dst: str, ts: float, cut: bool,
         tally: Tally) -> Segment | None:
    if len(data) < 20:
        tally.malformed["TCP header truncated"] += 1
        return None
    sport, dport, seq, _ack, off_flags = struct.unpack_from(">HHIIH", data)
    doff = (off_flags >> 12) * 4
    if doff < 20 or doff > len(data):
        tally.malformed["TCP header length bad or truncated"] += 1
        return None
    tally.seen["TCP segments"] += 1
    return Segment(src, dst, sport, dport, seq, off_flags & 0x3F, data[doff:], ts, cut)


def _udp(data: bytes, ts: float, cut: bool, tally: Tally, depth: int) -> Segment | None:
    if len(data) < 8:
        tally.malformed["UDP header truncated"] += 1
        return None
    dport = int.from_bytes(data[2:4], "big")
    if dport != VXLAN_PORT:
        tally.seen["UDP (not VXLAN)"] += 1
        return None
    vx = data[8:]
    # RFC 7348: flags 0x08 (valid VNI), then reserved, VNI, reserved
    if len(vx) < 8 or not vx[0] & 0x08:
        tally.malformed["VXLAN header truncated or without the VNI flag"] += 1
        return None
    if depth >= _MAX_DEPTH:
        tally.malformed["VXLAN nested too deep"] += 1
        return None
    tally.seen["VXLAN frames opened"] += 1
    return _ethernet(vx[8:], ts, cut, tally, depth + 1)


def _v6(raw: bytes) -> str:
    # written as inet_ntop writes it: an IPv4-mapped address keeps its dotted quad
    a = IPv6Address(raw)
    return f"::ffff:{a.ipv4_mapped}" if a.ipv4_mapped is not None else str(a)
