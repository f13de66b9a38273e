"""Per-flow TCP reassembly, just far enough to find the ClientHello.

Each direction of a connection is its own flow, keyed by (src, sport, dst, dport). A
flow's bytes are put in sequence order starting at the SYN's sequence number + 1 (or,
when the capture missed the SYN, at the first segment that starts like a hello).
Retransmitted and overlapping bytes are dropped, early segments wait until the gap
before them fills. As soon as the first bytes show what the flow carries, it is either
a ClientHello (kept until complete, then handed out) or anything else (forgotten).

A FIN or RST ends a flow only once every byte before it has arrived (captures reorder
too). A connection is counted once however often it was captured: a flow that already
gave its hello ignores later copies of its SYN and segments, from a second interface
or a second file of the same traffic.

Memory is bounded four ways: a hello may be at most ``max_hello`` bytes, a flow holds at
most ``max_pending`` early segments, all flows together hold at most ``max_buffered``
bytes, and at most ``max_flows`` flows are remembered (the least recently active goes
first). Every such cut is tallied.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from prober.capture.pcap_link import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Segment

MAX_HELLO = 1 << 17
MAX_PENDING = 64
MAX_FLOWS = 1 << 18
MAX_BUFFERED = 1 << 26
_MAX_RECORD = 16384 + 2048  # TLSCiphertext may exceed 2^14; a plaintext hello may not
_SEQ = 1 << 32

FlowKey = tuple[str, int, str, int]


@dataclass(frozen=True)
class HelloBytes:
    """The records (or the SSLv2 record) that carry one connection's first hello."""

    client: str
    client_port: int
    server: str
    server_port: int
    data: bytes
    ts: float  # when the hello's first byte was captured


@dataclass
class _Flow:
    base: int | None = None  # sequence number of stream byte 0
    buf: bytearray = field(default_factory=bytearray)
    # early segments by stream offset (once base is known) or by sequence number (before)
    pending: dict[int, tuple[bytes, float]] = field(default_factory=dict)
    parked: dict[int, tuple[bytes, float]] = field(default_factory=dict)
    first_ts: float = 0.0
    done: bool = False
    end_seq: int | None = None  # sequence number of a FIN/RST seen before the data was whole

    def size(self) -> int:
        return (len(self.buf) + sum(len(d) for d, _ in self.pending.values())
                + sum(len(d) for d, _ in self.parked.values()))


def hello_status(buf: bytes, max_hello: int = MAX_HELLO) -> tuple[str, int]:
    """What the start of a client's stream holds.

    ('more', 0): too few bytes to tell; ('hello', n): the first n bytes hold a whole
    hello; ('other', 0): not a hello (another protocol, a ServerHello, ...);
    ('bad', 0): TLS framing that contradicts itself.
    """
    if len(buf) < 3:
        return ("more", 0) if _could_start_hello(buf) else ("other", 0)
    if buf[0] & 0x80 and buf[2] == 1:
        # SSLv2-format CLIENT-HELLO: 2-byte header, length without the header
        n = 2 + ((buf[0] & 0x7F) << 8 | buf[1])
        return ("hello", n) if len(buf) >= n else ("more", 0)
    if buf[0] != 0x16 or buf[1] != 3:
        return ("other", 0)
    pos = 0
    msg = bytearray()
    need: int | None = None
    while True:
        if len(buf) < pos + 5:
            return ("more", 0)
        if buf[pos] != 0x16:
            # a hello's records are contiguous: anything else before its end is damage
            return ("bad", 0)
        length = int.from_bytes(buf[pos + 3:pos + 5], "big")
        if length == 0 or length > _MAX_RECORD:
            return ("bad", 0)
        if pos == 0 and len(buf) > 5 and buf[5] != 1:
            return ("other", 0)  # a ServerHello or another handshake message
        if len(buf) < pos + 5 + length:
            # wait for the whole record; the handshake header may already say too much
            if need is None and len(msg) + len(buf) - pos - 5 >= 4:
                head = (bytes(msg) + bytes(buf[pos + 5:]))[:4]
                if 4 + int.from_bytes(head[1:4], "big") > max_hello:
                    return ("bad", 0)
            return ("more", 0)
        msg += buf[pos + 5:pos + 5 + length]
        pos += 5 + length
        if need is None and len(msg) >= 4:
            need = 4 + int.from_bytes(msg[1:4], "big")
            if need > max_hello:
                return ("bad", 0)
        if need is not None and len(msg) >= need:
            return ("hello", pos)


def _could_start_hello(buf: bytes) -> bool:
    if not buf:
        return True
    if buf[0] & 0x80:
        return True
    return buf[0] == 0x16 and (len(buf) < 2 or buf[1] == 3)


def _starts_hello(payload: bytes) -> bool:
    """A segment that can be stream byte 0 of a client hello (when the SYN was missed)."""
    if len(payload) >= 6 and payload[0] == 0x16 and payload[1] == 3 and payload[5] == 1:
        return True
    return len(payload) >= 5 and bool(payload[0] & 0x80) and payload[2] == 1 and payload[3] <= 3


class Reassembler:
    """Feed segments in capture order; collect the hellos each call returns."""

    def __init__(self, *, max_flows: int = MAX_FLOWS, max_hello: int = MAX_HELLO,
                 max_pending: int = MAX_PENDING, max_buffered: int = MAX_BUFFERED) -> None:
        self.max_flows = max_flows
        self.max_hello = max_hello
        self.max_pending = max_pending
        self.max_buffered = max_buffered
        self.buffered = 0
        self.flows: OrderedDict[FlowKey, _Flow] = OrderedDict()
        self.seen: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()

    def feed(self, seg: Segment) -> HelloBytes | None:
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        flow = self.flows.get(key)
        if seg.flags & TCP_SYN:
            if seg.flags & TCP_ACK:
                # the server's side of a connection: its bytes are never a client hello
                if flow is None:
                    self._put(key, _Flow(done=True))
                else:
                    self._drop(flow)
            elif flow is None or flow.base != (seg.seq + 1) % _SEQ:
                # (a SYN with the flow's own ISN is a retransmission or the same packet
                # captured again: the flow goes on)
                if flow is not None:
                    self._drop(flow)
                self.seen["connections (SYN)"] += 1
                self._put(key, _Flow(base=(seg.seq + 1) % _SEQ))
            return None
        if flow is None:
            if not seg.payload:
                return None
            flow = _Flow()
            self._put(key, flow)
        else:
            self.flows.move_to_end(key)
        if flow.done:
            return None
        out = self._data(key, flow, seg) if seg.payload else None
        if seg.flags & (TCP_FIN | TCP_RST) and not flow.done:
            flow.end_seq = (seg.seq + len(seg.payload)) % _SEQ
        if flow.end_seq is not None and not flow.done and flow.base is not None \
                and (flow.end_seq - flow.base) % _SEQ <= len(flow.buf):
            # everything the client sent before closing is here, and it is no whole hello
            if flow.buf:
                self.malformed["hello incomplete when the connection closed"] += 1
            self._drop(flow)
        if self.buffered > self.max_buffered:
            self._shed()
        return out

    def finish(self) -> None:
        """End of the capture: count the hellos still waiting for bytes."""
        for flow in self.flows.values():
            if not flow.done and flow.buf:
                self.malformed["hello incomplete at the end of the capture"] += 1
            elif not flow.done and flow.pending:
                self.malformed["hello start never captured (only later segments)"] += 1
            elif not flow.done and flow.parked:
                # no SYN and nothing like a hello: a connection older than the capture
                self.seen["flows whose start was not captured"] += 1
        self.flows.clear()
        self.buffered = 0

    # -- bookkeeping -------------------------------------------------------------------

    def _put(self, key: FlowKey, flow: _Flow) -> None:
        self.flows[key] = flow
        self.flows.move_to_end(key)
        while len(self.flows) > self.max_flows:
            _, old = self.flows.popitem(last=False)
            if not old.done:
                self.malformed["flows dropped to bound memory"] += 1
            self._drop(old)

    def _drop(self, flow: _Flow) -> None:
        """Done with this flow: free its bytes, keep the tombstone."""
        self.buffered -= flow.size()
        flow.buf, flow.pending, flow.parked = bytearray(), {}, {}
        flow.done = True

    def _shed(self) -> None:
        """Over the byte budget: give up the least recently active unfinished flows."""
        for flow in self.flows.values():
            if self.buffered <= self.max_buffered // 2:
                return
            if not flow.done and flow.size():
                self.malformed["flows dropped to bound memory"] += 1
                self._drop(flow)

    # -- the stream --------------------------------------------------------------------

    def _data(self, key: FlowKey, flow: _Flow, seg: Segment) -> HelloBytes | None:
        if seg.cut:
            self.malformed["hello cut short by the capture's snaplen"] += 1
            self._drop(flow)
            return None
        if flow.base is None:
            if not _starts_hello(seg.payload):
                # maybe an early segment of a hello whose first segment comes later
                flow.parked[seg.seq] = (seg.payload, seg.ts)
                self.buffered += len(seg.payload)
                if len(flow.parked) > self.max_pending:
                    # a long stream that never began with a hello: the capture started
                    # after the connection did, or this is the server's side
                    self.seen["flows whose start was not captured"] += 1
                    self._drop(flow)
                return None
            flow.base = seg.seq
            parked, flow.parked = flow.parked, {}
            for seq, (data, ts) in parked.items():
                self.buffered -= len(data)
                self._add(flow, (seq - flow.base) % _SEQ, data, ts)
        self._add(flow, (seg.seq - flow.base) % _SEQ, seg.payload, seg.ts)
        self._drain(flow)
        if len(flow.pending) > self.max_pending:
            self.malformed["too many out-of-order segments (flow dropped)"] += 1
            self._drop(flow)
            return None
        return self._check(key, flow)

    def _add(self, flow: _Flow, off: int, payload: bytes, ts: float) -> None:
        """Put ``payload`` at stream offset ``off`` (mod 2^32), or keep it until it fits."""
        if off >= _SEQ // 2:
            # starts before byte 0 (a retransmission overlapping the SYN): keep the rest
            skip = _SEQ - off
            if skip >= len(payload):
                self.seen["retransmitted segments"] += 1
                return
            payload, off = payload[skip:], 0
        end = len(flow.buf)
        if off > end:
            if off in flow.pending:
                self.buffered -= len(flow.pending[off][0])
            flow.pending[off] = (payload, ts)
            self.buffered += len(payload)
            return
        if off + len(payload) <= end:
            self.seen["retransmitted segments"] += 1
            return
        if off < end:
            self.seen["retransmitted segments"] += 1  # partly new: keep the new part
        if end == 0:
            flow.first_ts = ts
        new = payload[end - off:]
        flow.buf += new
        self.buffered += len(new)

    def _drain(self, flow: _Flow) -> None:
        """Move early segments into the stream once the gap before them is filled."""
        while flow.pending:
            off = min(flow.pending)
            if off > len(flow.buf):
                return
            data, ts = flow.pending.pop(off)
            self.buffered -= len(data)
            self._add(flow, off, data, ts)

    def _check(self, key: FlowKey, flow: _Flow) -> HelloBytes | None:
        # a hello of max_hello bytes fits in this many record bytes (headers included)
        status, n = hello_status(bytes(flow.buf[:self.max_hello + 5 * 64]), self.max_hello)
        if status == "more":
            if len(flow.buf) > self.max_hello:
                self.malformed["hello larger than the bound"] += 1
                self._drop(flow)
            return None
        data = bytes(flow.buf[:n])
        ts = flow.first_ts
        self._drop(flow)
        if status == "other":
            self.seen["flows that are not a TLS client's"] += 1
            return None
        if status == "bad":
            self.malformed["TLS records that cannot be a ClientHello"] += 1
            return None
        src, sport, dst, dport = key
        return HelloBytes(src, sport, dst, dport, data, ts)
