"""One attempt on a socket: connect, send the hello, read the flight, note what TCP saw.

Everything that is decided about the bytes happens in ``prober.wire``; this module
only moves bytes and records timings, how the connection ended and what the
kernel's TCP_INFO says about the ClientHello being ACKed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from prober.net import tcpinfo
from prober.wire.clienthello import BuiltHello
from prober.wire.serverflight import Flight, FlightReader
from prober.wire.starttls import Preamble, PreambleResult

# how the read phase ended
END_COMPLETE = "complete"  # the flight reader is done (complete, alert, not-tls, bad)
END_RST = "rst"
END_FIN = "fin"
END_TIMEOUT = "timeout"

# how the connect phase failed
CONNECT_REFUSED = "refused"
CONNECT_TIMEOUT = "connect-timeout"
CONNECT_UNREACHABLE = "unreachable"

# ACK polling schedule (s): dense at first (LAN peers ACK in well under a millisecond)
_ACK_POLL = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.5)


@dataclass
class TransportSpec:
    """How the hello is cut up on the way out (for DPI/middlebox tests)."""

    # sizes of the first TLS record fragments; the rest goes in records of up to 16 kB
    record_sizes: list[int] = field(default_factory=list)
    # sizes of the first TCP segments (each sent with TCP_NODELAY, then a pause)
    segment_sizes: list[int] = field(default_factory=list)
    pause_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"record_sizes": self.record_sizes, "segment_sizes": self.segment_sizes,
                "pause_ms": self.pause_ms}


# the deadline of each phase of an attempt (connect, then the server's flight), unless told
DEFAULT_TIMEOUT_S = 5.0


@dataclass
class Deadlines:
    connect: float = DEFAULT_TIMEOUT_S
    read: float = DEFAULT_TIMEOUT_S


@dataclass
class Observation:
    """What one attempt saw, before classification."""

    address: str
    port: int
    local_address: str | None = None
    local_port: int | None = None
    connect_error: str | None = None
    connect_errno: int | None = None
    send_error: str | None = None
    end: str | None = None
    end_errno: int | None = None
    flight: Flight | None = None
    hello_bytes: int = 0
    # seconds since the attempt started
    t_connect: float | None = None
    t_sent: float | None = None
    t_acked: float | None = None
    t_first_byte: float | None = None
    t_end: float | None = None
    acked: bool | None = None
    tcp_unacked: int | None = None
    tcp_retransmits: int | None = None
    tcp_rtt_us: int | None = None
    tcp_snd_mss: int | None = None
    extra_sends: int = 0
    # the STARTTLS preamble, when the attempt had one, and when it was done
    starttls: PreambleResult | None = None
    t_starttls: float | None = None


def _segments(data: bytes, sizes: list[int]) -> list[bytes]:
    out = []
    pos = 0
    for s in sizes:
        if pos >= len(data):
            break
        out.append(data[pos : pos + s])
        pos += s
    if pos < len(data):
        out.append(data[pos:])
    return out


async def run_attempt(address: str, port: int, family: int, built: BuiltHello, *,
                      record_sizes: list[int] | None = None,
                      segment_sizes: list[int] | None = None, pause_ms: float = 0.0,
                      deadlines: Deadlines | None = None, starttls: str | None = None,
                      server_name: str | None = None) -> Observation:
    """One attempt. With ``starttls`` (a prober.wire.starttls protocol) the plaintext
    preamble runs first, within the read deadline, and the hello follows only once the
    server said go; ``server_name`` is the domain the preamble names (XMPP)."""
    dl = deadlines or Deadlines()
    loop = asyncio.get_running_loop()
    obs = Observation(address=address, port=port)
    t0 = time.monotonic()
    preamble = Preamble(starttls, server_name) if starttls else None
    conn = _Connection(obs, t0, preamble, loop)
    try:
        try:
            # a connection made just as the deadline fires is closed by the cancellation
            # and counted as a timeout: the deadline is the user's, not a guess
            async with asyncio.timeout(dl.connect):
                await loop.create_connection(lambda: conn, address, port, family=family,
                                             proto=socket.IPPROTO_TCP)
        except TimeoutError:
            obs.connect_error = CONNECT_TIMEOUT
            return obs
        except ConnectionRefusedError as e:
            obs.connect_error, obs.connect_errno = CONNECT_REFUSED, e.errno
            return obs
        except OSError as e:
            # EHOSTUNREACH and friends; any other connect failure is no path either
            obs.connect_errno = e.errno
            obs.connect_error = CONNECT_UNREACHABLE
            return obs
        if preamble is not None and not await conn.preamble_phase(dl.read):
            return obs
        await conn.exchange(loop, FlightReader(built), built.records(record_sizes or []),
                            segment_sizes or [], pause_ms, dl.read)
        return obs
    finally:
        obs.t_end = time.monotonic() - t0
        had_transport = conn.transport is not None
        conn.close()
        if had_transport:
            # the transport closes its socket (the RST) on the loop's next turn: wait for
            # it, so a caller's next connection never overlaps this one and a
            # per-endpoint cap holds on the wire, not only in the scheduler
            await asyncio.sleep(0)


def abort(sock: socket.socket) -> None:
    # RST instead of FIN: no TIME_WAIT left behind by thousands of short probes
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


_LINGER_RST = struct.pack("ii", 1, 0)


class _Connection(asyncio.Protocol):
    """The callbacks of one attempt's connection.

    A protocol rather than awaited reads: the event loop hands over bytes without a
    future, a task wake-up or a cancelled read per segment, which is most of what an
    attempt costs besides the handshake itself.  The attempt keeps its own duplicate of
    the socket so that TCP_INFO can still be read after the transport has given up on a
    reset connection, and so that the final close is a RST whoever closes first.
    """

    # made once connected (exchange): a connect failure reads nothing and has no flight
    reader: FlightReader

    def __init__(self, obs: Observation, t0: float, preamble: Preamble | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.obs = obs
        self.t0 = t0
        # the STARTTLS preamble: it is fed from the first byte (a greeting may arrive
        # before the coroutine that connected runs again) and settles preamble_done
        self.preamble = preamble
        self.preamble_done: asyncio.Future[None] | None = (
            loop.create_future() if preamble is not None and loop is not None else None)
        self.transport: asyncio.Transport | None = None
        self.sock: socket.socket | None = None
        self.sending = True
        # what the server says, and whether it closed, before the whole hello was out:
        # taken in after sending, as a client that writes and then reads sees it
        self.early = bytearray()
        self.early_end: tuple[str, int | None] | None = None
        self.ended: asyncio.Future[None] | None = None
        self.timers: list[asyncio.TimerHandle] = []
        self.closed = False

    # -- protocol callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        obs = self.obs
        obs.t_connect = time.monotonic() - self.t0
        # uvloop's transports do not subclass asyncio.Transport, but have its methods
        self.transport = cast(asyncio.Transport, transport)
        raw = transport.get_extra_info("socket")
        self.sock = socket.socket(raw.family, socket.SOCK_STREAM, 0, os.dup(raw.fileno()))
        local = transport.get_extra_info("sockname")
        obs.local_address, obs.local_port = local[0], local[1]
        if self.preamble is not None:
            first = self.preamble.start()  # LDAP, XMPP, PostgreSQL speak first
            if first:
                self.transport.write(first)
            self._preamble_settled()

    def data_received(self, data: bytes) -> None:
        obs = self.obs
        if obs.end is not None:
            return
        if self._in_preamble():
            # plaintext of the preamble: the TLS timings start after it
            reply = self.preamble.feed(data) if self.preamble is not None else b""
            if reply and self.transport is not None and not self.transport.is_closing():
                self.transport.write(reply)
            self._preamble_settled()
            return
        if obs.t_first_byte is None:
            obs.t_first_byte = time.monotonic() - self.t0
        if self.sending:
            # what a server says before it has our hello (a banner) is read after it,
            # as a blocking client would
            self.early += data
            return
        self._feed(data)

    def eof_received(self) -> bool:
        if self._in_preamble():
            self._preamble_closed(END_FIN)
            return True
        self._end(END_FIN)
        return True  # the attempt closes, with a RST

    def connection_lost(self, exc: Exception | None) -> None:
        how, errno = (END_RST, exc.errno) if isinstance(exc, OSError) else (END_FIN, None)
        if self._in_preamble() and not self.closed:
            self._preamble_closed(how, errno)
            return
        self._end(how, errno)

    # -- the STARTTLS preamble ------------------------------------------------------

    def _in_preamble(self) -> bool:
        return self.preamble is not None and not self.preamble.done

    def _preamble_closed(self, how: str, errno: int | None = None) -> None:
        assert self.preamble is not None
        self.preamble.closed(how)
        self.obs.end, self.obs.end_errno = how, errno
        self._preamble_settled()

    def _preamble_settled(self) -> None:
        fut = self.preamble_done
        if self.preamble is not None and self.preamble.done and fut is not None \
                and not fut.done():
            fut.set_result(None)

    async def preamble_phase(self, read_s: float) -> bool:
        """Wait for the preamble to end (within ``read_s``); True when the hello may go."""
        p, fut, obs = self.preamble, self.preamble_done, self.obs
        assert p is not None and fut is not None
        try:
            async with asyncio.timeout(read_s):
                await fut
        except TimeoutError:
            p.timed_out(read_s)
            obs.end = END_TIMEOUT
        obs.starttls = p.result
        obs.t_starttls = time.monotonic() - self.t0
        if not p.ready:
            return False
        if p.leftover:
            # bytes after the server's go-ahead belong to the TLS stream: read after the
            # hello, as a client that writes and then reads would
            obs.t_first_byte = obs.t_starttls
            self.early += p.leftover
        return True

    # -- the attempt ----------------------------------------------------------------

    async def exchange(self, loop: asyncio.AbstractEventLoop, reader: FlightReader, wire: bytes,
                       segment_sizes: list[int], pause_ms: float, read_s: float) -> None:
        obs = self.obs
        # nothing is fed before the hello is out (bytes that come earlier wait in early)
        self.reader = reader
        obs.flight = reader.flight
        obs.hello_bytes = len(wire)
        self.ended = loop.create_future()
        transport = self.transport
        assert transport is not None
        for i, seg in enumerate(_segments(wire, segment_sizes)):
            if i and pause_ms:
                await asyncio.sleep(pause_ms / 1000)
            if transport.is_closing():
                # the peer reset the connection before the whole hello was out
                obs.send_error = "connection reset by the peer while sending"
                self.sending = False
                self._end(END_RST, self.early_end[1] if self.early_end else None)
                return
            transport.write(seg)
        obs.t_sent = time.monotonic() - self.t0
        self.sending = False
        if self.early:
            self._feed(bytes(self.early))
        if self.early_end is not None:
            self._end(*self.early_end)
        if obs.end is None:
            self._poll_ack(loop, iter(_ACK_POLL))
            self.timers.append(loop.call_later(read_s, self._end, END_TIMEOUT))
            await self.ended

    def close(self) -> None:
        # what the transport reports from now on is our own close
        self.closed = True
        for t in self.timers:
            t.cancel()
        if self.obs.t_connect is not None:
            self._note_tcp()
        if self.transport is not None:
            self.transport.abort()
        if self.sock is not None:
            abort(self.sock)
            self.sock = None

    def _feed(self, data: bytes) -> None:
        reply = self.reader.feed(data)
        if reply and self.transport is not None and not self.transport.is_closing():
            self.obs.extra_sends += 1
            self.transport.write(reply)
        if self.reader.flight.done:
            self._end(END_COMPLETE)

    def _end(self, how: str, errno: int | None = None) -> None:
        obs = self.obs
        if obs.end is not None or self.closed:
            return
        if self.sending:
            self.early_end = self.early_end or (how, errno)
            return
        obs.end, obs.end_errno = how, errno
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(None)

    def _poll_ack(self, loop: asyncio.AbstractEventLoop, polls: Iterator[float]) -> None:
        # until the hello is seen ACKed, look at TCP_INFO now and then (dense at first)
        if self.obs.end is not None or self.obs.acked:
            return
        self._check_ack()
        if not self.obs.acked:
            self.timers.append(loop.call_later(next(polls, 0.5), self._poll_ack, loop, polls))

    def _check_ack(self) -> None:
        info = tcpinfo.read(self.sock) if self.sock is not None else None
        if info is not None and info.all_acked:
            self.obs.acked = True
            self.obs.t_acked = time.monotonic() - self.t0

    def _note_tcp(self) -> None:
        obs = self.obs
        info = tcpinfo.read(self.sock) if self.sock is not None else None
        if info is None:
            return
        obs.tcp_unacked = info.unacked
        obs.tcp_retransmits = info.total_retrans
        obs.tcp_rtt_us = info.rtt_us
        obs.tcp_snd_mss = info.snd_mss or None
        if info.all_acked and obs.acked is None:
            obs.acked = True
            if obs.t_acked is None:
                # the ACK came with or before the server's first bytes
                obs.t_acked = obs.t_first_byte if obs.t_first_byte is not None else (
                    time.monotonic() - self.t0)
        elif not info.all_acked:
            obs.acked = False


AF_INET = socket.AF_INET
# what resolve() raises for a name that does not resolve
ResolveError = socket.gaierror


def family_of(address: str) -> int:
    """The address family of a literal address."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


async def resolve(host: str, port: int, *, all_addresses: bool = False
                  ) -> list[tuple[int, str]]:
    """(family, address) pairs for a host; raises socket.gaierror when it does not resolve."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[tuple[int, str]] = []
    for fam, _, _, _, sockaddr in infos:
        pair = (int(fam), str(sockaddr[0]))
        if pair not in out:
            out.append(pair)
    return out if all_addresses else out[:1]
