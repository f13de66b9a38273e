"""VPC flow logs: which flows to the TLS port look like failed handshakes.

A flow record is one direction of one connection over one aggregation interval. A
handshake the load balancer refuses (DESIGN.md field case 1) leaves 3 packets each way:
SYN, ACK, ClientHello from the client (tcp-flags 2: no FIN), and SYN-ACK, ACK, RST back
(tcp-flags 22 = SYN-ACK + RST). A healthy short HTTPS connection has 16-18 packets each
way and closes with FIN (flags 3 / 19). The rules below look at one record at a time,
so both directions of a failed connection are flagged, each for its own reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from prober.logs import formats as logs_formats
from prober.logs.records import Flow, Item, Malformed

REQUIRED = ("srcaddr", "dstaddr", "srcport", "dstport", "packets")
# SYN, ACK and a ClientHello: fewer packets than that never carried a handshake
MIN_PACKETS = 3

WHY_RST = "RST"
WHY_NO_FIN = "SYN, no FIN"
WHY_NO_FLAGS = "few packets (no tcp-flags field)"


class VpcFlowLog:
    """Default version-2 format, or the fields of a header line / ``--vpc-fields``."""

    name = "vpc-flow"

    def __init__(self, fields: Sequence[str] | None = None, *, port: int = 443,
                 max_packets: int = 4) -> None:
        self.port = port
        self.max_packets = max_packets
        self._known = frozenset(logs_formats.vpc_field_names())
        bits = logs_formats.tcp_flag_bits()
        self._fin, self._syn, self._rst = bits["FIN"], bits["SYN"], bits["RST"]
        self._use(tuple(fields) if fields else logs_formats.vpc_default_fields())

    def is_header(self, tokens: Sequence[str]) -> bool:
        return len(tokens) >= 2 and all(t in self._known for t in tokens)

    def _use(self, fields: tuple[str, ...]) -> None:
        idx = {name: i for i, name in enumerate(fields)}
        self._n = len(fields)
        self._missing = [name for name in REQUIRED if name not in idx]
        get = idx.get
        self._src, self._dst = get("srcaddr", 0), get("dstaddr", 0)
        self._sport, self._dport = get("srcport", 0), get("dstport", 0)
        self._packets = get("packets", 0)
        self._proto, self._flags = get("protocol"), get("tcp-flags")
        self._action, self._status, self._start = get("action"), get("log-status"), get("start")

    def parse(self, line: str) -> Item:
        t = line.split()
        if len(t) != self._n:
            if self.is_header(t):
                self._use(tuple(t))
                return "flow-log header line"
            raise Malformed(f"{len(t)} fields, the flow-log format has {self._n} "
                            "(custom format? give --vpc-fields or keep the header line)")
        if self._missing:
            if self.is_header(t):
                return "flow-log header line"
            raise Malformed(f"the flow-log format has no {', '.join(self._missing)} field")
        if self._status is not None and t[self._status] in ("NODATA", "SKIPDATA"):
            return f"flow-log {t[self._status]} record"
        if self._proto is not None and t[self._proto] != "6":
            return "flow that is not TCP"
        sport, dport = t[self._sport], t[self._dport]
        if not (sport.isdigit() and dport.isdigit() and t[self._packets].isdigit()):
            if self.is_header(t):
                return "flow-log header line"
            raise Malformed("srcport/dstport/packets are not numbers")
        port = str(self.port)
        if dport == port:
            client, server = t[self._src], f"{t[self._dst]}:{dport}"
        elif sport == port:
            client, server = t[self._dst], f"{t[self._src]}:{sport}"
        else:
            return f"flow not to or from port {self.port}"
        packets = int(t[self._packets])
        flags: int | None = None
        if self._flags is not None and t[self._flags] != "-":
            try:
                flags = int(t[self._flags])
            except ValueError:
                raise Malformed(f"tcp-flags {t[self._flags][:20]!r} is not a number") from None
        accepted = self._action is None or t[self._action] == "ACCEPT"
        why = self.judge(packets, flags) if accepted else None
        start = t[self._start] if self._start is not None else None
        return Flow(client, server, packets, flags, why, start)

    def judge(self, packets: int, flags: int | None) -> str | None:
        """Why this record looks like a failed handshake, or None."""
        if not MIN_PACKETS <= packets <= self.max_packets:
            return None
        if flags is None:
            return WHY_NO_FLAGS
        if not flags & self._syn:
            return None  # opened in an earlier interval: its handshake is elsewhere
        if flags & self._rst:
            return WHY_RST
        if not flags & self._fin:
            return WHY_NO_FIN
        return None
