"""One attempt on a socket: connect, send the hello, read the flight, note what TCP saw.

Everything that is decided about the bytes happens in ``prober.wire``; this module
only moves bytes and records timings, how the connection ended and what the
kernel's TCP_INFO says about the ClientHello being ACKed.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from prober.net import tcpinfo
from prober.wire.clienthello import BuiltHello
from prober.wire.serverflight import Flight, FlightReader

T = TypeVar("T")

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
class Deadlines:
    connect: float = 5.0
    read: float = 5.0


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
    extra_sends: int = 0
    timeline: list[tuple[float, str, int]] = field(default_factory=list)


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
                      deadlines: Deadlines | None = None) -> Observation:
    dl = deadlines or Deadlines()
    loop = asyncio.get_running_loop()
    obs = Observation(address=address, port=port)
    t0 = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await _with_deadline(loop.sock_connect(sock, (address, port)), dl.connect)
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
        obs.t_connect = time.monotonic() - t0
        local = sock.getsockname()
        obs.local_address, obs.local_port = local[0], local[1]
        await _exchange(loop, sock, obs, built, record_sizes or [], segment_sizes or [],
                        pause_ms, dl, t0)
        return obs
    finally:
        obs.t_end = time.monotonic() - t0
        abort(sock)


def abort(sock: socket.socket) -> None:
    # RST instead of FIN: no TIME_WAIT left behind by thousands of short probes
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


async def _exchange(loop: asyncio.AbstractEventLoop, sock: socket.socket, obs: Observation,
                    built: BuiltHello, record_sizes: list[int], segment_sizes: list[int],
                    pause_ms: float, dl: Deadlines, t0: float) -> None:
    wire = built.records(record_sizes)
    obs.hello_bytes = len(wire)
    reader = FlightReader(built)
    obs.flight = reader.flight
    try:
        for i, seg in enumerate(_segments(wire, segment_sizes)):
            if i and pause_ms:
                await asyncio.sleep(pause_ms / 1000)
            await loop.sock_sendall(sock, seg)
    except OSError as e:
        obs.send_error = e.strerror or str(e)
        # a send fails only when the peer has reset the connection already
        obs.end, obs.end_errno = END_RST, e.errno
        _note_tcp(sock, obs, t0)
        return
    obs.t_sent = time.monotonic() - t0
    _check_ack(sock, obs, t0)
    deadline = time.monotonic() + dl.read
    polls = iter(_ACK_POLL)
    # one pending read at a time, kept across ACK polls: cancelling a read whose data
    # has already arrived would lose the server's bytes
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                obs.end = END_TIMEOUT
                break
            # until the hello is seen ACKed, wake up now and then to ask TCP_INFO
            poll = next(polls, 0.5) if obs.acked is None else None
            wait = min(remaining, poll) if poll is not None else remaining
            if pending is None:
                pending = asyncio.ensure_future(loop.sock_recv(sock, 65536))
            done, _ = await asyncio.wait({pending}, timeout=wait)
            if not done:
                if poll is not None:
                    _check_ack(sock, obs, t0)
                continue
            fut, pending = pending, None
            try:
                data = fut.result()
            except OSError as e:
                obs.end, obs.end_errno = END_RST, e.errno
                break
            now = time.monotonic() - t0
            if not data:
                obs.end = END_FIN
                obs.timeline.append((now, "fin", 0))
                break
            obs.timeline.append((now, "recv", len(data)))
            if obs.t_first_byte is None:
                obs.t_first_byte = now
            reply = reader.feed(data)
            if reply:
                obs.extra_sends += 1
                try:
                    await loop.sock_sendall(sock, reply)
                except OSError as e:
                    obs.end, obs.end_errno = END_RST, e.errno
                    break
            if reader.flight.done:
                obs.end = END_COMPLETE
                break
    finally:
        if pending is not None:
            pending.cancel()
        _note_tcp(sock, obs, t0)


async def _with_deadline(aw: Awaitable[T], wait: float) -> T:
    """``aw`` or TimeoutError; unlike a cancelling timeout, a result that is ready when
    the deadline fires is kept, not thrown away."""
    fut = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({fut}, timeout=wait)
    if fut in done:
        return fut.result()
    fut.cancel()
    raise TimeoutError


def _check_ack(sock: socket.socket, obs: Observation, t0: float) -> None:
    info = tcpinfo.read(sock)
    if info is not None and info.all_acked:
        obs.acked = True
        obs.t_acked = time.monotonic() - t0


def _note_tcp(sock: socket.socket, obs: Observation, t0: float) -> None:
    info = tcpinfo.read(sock)
    if info is None:
        return
    obs.tcp_unacked = info.unacked
    obs.tcp_retransmits = info.total_retrans
    obs.tcp_rtt_us = info.rtt_us
    if info.all_acked and obs.acked is None:
        obs.acked = True
        if obs.t_acked is None:
            # the ACK came with or before the server's first bytes
            obs.t_acked = obs.t_first_byte if obs.t_first_byte is not None else (
                time.monotonic() - t0)
    elif not info.all_acked:
        obs.acked = False


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
