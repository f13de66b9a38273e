"""Loopback listeners that are not (working) TLS servers.

All run one background thread with an epoll loop (``selectors``), so they work the
same from sync and asyncio tests and scale to thousands of connections.  Each is a
context manager (or ``start()``/``stop()``) with ``.host``/``.port`` and counters
``accepted``, ``open_connections``, ``bytes_received``.

"The hello" below means the first complete TLS record the client sends (any bytes at
all when they don't look like TLS).
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import resource
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .lifecycle import Peer
from .tls_bytes import first_record_complete, load_tls12_flight

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
SMTP_BANNER = b"220 mail.demo.test ESMTP Postfix\r\n"
_HTTP_400_BODY = (
    b"<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
    b"<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
HTTP_400 = (
    b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n"
    b"Content-Length: "
    + str(len(_HTTP_400_BODY)).encode()
    + b"\r\nConnection: close\r\n\r\n"
    + _HTTP_400_BODY
)


@dataclass
class Conn:
    sock: socket.socket
    buf: bytes = b""
    hello_seen: bool = False
    draining: bool = False  # we sent FIN: read until the client closes, then close
    extra: dict[str, object] = field(default_factory=dict)


def raise_nofile_limit(want: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards ``want`` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class LoopListener(Peer):
    """Base class: accept on 127.0.0.1:<free port>, dispatch events to hooks."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, backlog: int = 128) -> None:
        self.host = host
        self.port = port
        self.backlog = backlog
        self.accepted = 0
        self.bytes_received = 0
        self.resets_sent = 0
        self.fins_sent = 0
        self._conns: dict[int, Conn] = {}
        self._sel: selectors.BaseSelector | None = None
        self._lsock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    # -- hooks for subclasses ---------------------------------------------------------
    def on_accept(self, c: Conn) -> None:
        """Called once per accepted connection."""

    def on_hello(self, c: Conn) -> None:
        """Called once, when the first TLS record (or non-TLS bytes) has arrived."""

    def on_data(self, c: Conn, data: bytes) -> None:
        """Called for every chunk (``c.buf`` holds everything received so far)."""
        if not c.hello_seen and first_record_complete(c.buf):
            c.hello_seen = True
            self.on_hello(c)

    # -- actions ----------------------------------------------------------------------
    def send(self, c: Conn, data: bytes) -> None:
        c.sock.setblocking(True)
        c.sock.settimeout(5)
        try:
            c.sock.sendall(data)
        except OSError:
            self.close(c)
            return
        finally:
            with contextlib.suppress(OSError):
                c.sock.setblocking(False)

    def reset(self, c: Conn) -> None:
        """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
        with contextlib.suppress(OSError):
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.resets_sent += 1
        self.close(c)

    def fin(self, c: Conn) -> None:
        """Half-close (FIN) and keep reading until the client closes too.  Closing with
        unread data queued would make Linux send RST instead, so we drain first."""
        with contextlib.suppress(OSError):
            c.sock.shutdown(socket.SHUT_WR)
        self.fins_sent += 1
        c.draining = True

    def close(self, c: Conn) -> None:
        fd = c.sock.fileno()
        if fd >= 0 and self._conns.pop(fd, None) is not None and self._sel is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(c.sock)
        with contextlib.suppress(OSError):
            c.sock.close()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop thread after ``delay`` seconds (from loop callbacks)."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn))

    def _if_open(self, c: Conn, action: Callable[[Conn], None]) -> None:
        # a timer set for a connection that has closed since does nothing
        if self._conns.get(c.sock.fileno()) is c:
            action(c)

    # -- lifecycle --------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def start(self) -> LoopListener:
        raise_nofile_limit(max(4096, self.backlog * 2 + 256))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(self.backlog)
        s.setblocking(False)
        self._lsock = s
        self.port = s.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(s, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(
            target=self._run, name=f"{type(self).__name__}-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._sel is not None and self._lsock is not None
        while not self._stop.is_set():
            timeout = 0.5
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
            for key, _ev in self._sel.select(timeout):
                if key.data == "listen":
                    self._accept_all()
                elif key.data == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)  # type: ignore[union-attr]
                else:
                    self._readable(key.data)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                with contextlib.suppress(Exception):
                    fn()

    def _accept_all(self) -> None:
        assert self._lsock is not None and self._sel is not None
        for _ in range(4096):
            try:
                sock, _addr = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    return  # out of fds: leave the rest in the backlog
                raise
            sock.setblocking(False)
            c = Conn(sock)
            self._conns[sock.fileno()] = c
            self._sel.register(sock, selectors.EVENT_READ, c)
            self.accepted += 1
            self.on_accept(c)

    def _readable(self, c: Conn) -> None:
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(c)
            return
        if not data:
            self.close(c)  # client closed (FIN) or we were draining
            return
        self.bytes_received += len(data)
        if c.draining:
            return
        if len(c.buf) < 65536:
            c.buf += data
        self.on_data(c, data)

    def stop(self) -> None:
        self._stop.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(5)
        for c in list(self._conns.values()):
            with contextlib.suppress(OSError):
                c.sock.close()
        self._conns.clear()
        for s in (self._lsock, self._wake_r, self._wake_w):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        if self._sel is not None:
            self._sel.close()


class CountingListener(LoopListener):
    """Accepts, never answers, and counts the connections open at once (``most``, the
    highest ever): to check a cap held across tasks, processes and agents."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.most = 0
        self.accepted_at: list[float] = []  # time.monotonic() of each accept

    @property
    def open(self) -> int:
        return self.open_connections

    def on_accept(self, c: Conn) -> None:
        self.accepted_at.append(time.monotonic())
        # a connection the client closed just before this one arrived may not have been
        # read yet (same select round): ask the kernel, so that its close counts first
        for other in list(self._conns.values()):
            if other is not c and self._ended(other):
                self.close(other)
        self.most = max(self.most, len(self._conns))

    def _ended(self, c: Conn) -> bool:
        while True:
            try:
                data = c.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return True  # reset
            if not data:
                return True  # FIN
            self.bytes_received += len(data)


class ResetAfterHello(LoopListener):
    """Reads the hello, then closes with SO_LINGER 0: the client gets RST
    (``ConnectionResetError`` on its next recv)."""

    def on_hello(self, c: Conn) -> None:
        self.reset(c)


class FinAfterHello(LoopListener):
    """Reads the hello, then closes cleanly: the client gets FIN (``recv() == b''``)."""

    def on_hello(self, c: Conn) -> None:
        self.fin(c)


class HelloRecorder(LoopListener):
    """Keeps each connection's whole ClientHello (over as many records and segments as it
    takes), then closes with FIN: what a client sends first, as bytes."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.hellos: list[bytes] = []

    def on_data(self, c: Conn, data: bytes) -> None:
        from prober.wire.clienthello import read_client_hello

        if c.hello_seen:
            return
        try:
            read_client_hello(bytes(c.buf))
        except ValueError:
            return  # not whole yet
        c.hello_seen = True
        with self._lock:
            self.hellos.append(bytes(c.buf))
        self.fin(c)


class SilentReader(LoopListener):
    """Accepts, reads and discards forever, never writes.  ``backlog`` is the listen
    backlog (the kernel caps it at net.core.somaxconn)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, backlog: int = 4096) -> None:
        super().__init__(host=host, port=port, backlog=backlog)

    def on_data(self, c: Conn, data: bytes) -> None:
        c.buf = b""  # keep no data: thousands of connections


class HttpSpeaker(LoopListener):
    """Answers the first bytes with ``HTTP/1.1 400 Bad Request`` (as nginx does) and
    closes (FIN)."""

    def on_data(self, c: Conn, data: bytes) -> None:
        if not c.hello_seen:
            c.hello_seen = True
            self.send(c, HTTP_400)
            self.fin(c)


class BannerListener(LoopListener):
    """Sends ``banner`` on accept (``delay`` seconds after it: a server slower to greet
    than the client is to send its hello), then reads and discards until the client
    closes."""

    banner: bytes = b""

    def __init__(
        self, *, banner: bytes | None = None, delay: float = 0.0, host: str = "127.0.0.1",
        port: int = 0
    ) -> None:
        super().__init__(host=host, port=port)
        if banner is not None:
            self.banner = banner
        self.delay = delay

    def on_accept(self, c: Conn) -> None:
        if self.delay:
            self.call_later(self.delay, lambda: self._if_open(c, self._greet))
        else:
            self._greet(c)

    def _greet(self, c: Conn) -> None:
        self.send(c, self.banner)

    def on_data(self, c: Conn, data: bytes) -> None:
        c.buf = b""


class SshBanner(BannerListener):
    """``SSH-2.0-OpenSSH_9.2p1 Debian-2`` on accept."""

    banner = SSH_BANNER


class SmtpBanner(BannerListener):
    """``220 mail.demo.test ESMTP Postfix`` on accept."""

    banner = SMTP_BANNER


class PartialFlight(LoopListener):
    """Reads the hello, sends the first ``n_bytes`` of a real TLS 1.2 server flight
    (ServerHello, Certificate, ServerKeyExchange, ServerHelloDone recorded from
    ``openssl s_server``; tests/data/tls12_server_flight.bin unless ``flight`` is given),
    then ``then``: ``"stall"`` (keep the connection open, read and never write),
    ``"reset"`` (RST) or ``"fin"`` (FIN), after ``then_delay`` seconds."""

    def __init__(
        self,
        n_bytes: int = 100,
        then: Literal["stall", "reset", "fin"] = "stall",
        *,
        flight: bytes | None = None,
        then_delay: float = 0.05,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        if then not in ("stall", "reset", "fin"):
            raise ValueError(f"then must be stall, reset or fin, not {then!r}")
        self.flight = flight if flight is not None else load_tls12_flight()
        self.n_bytes = n_bytes
        self.then = then
        self.then_delay = then_delay

    @property
    def sent(self) -> bytes:
        """What each client receives."""
        return self.flight[: self.n_bytes]

    def on_hello(self, c: Conn) -> None:
        self.send(c, self.sent)
        if self.then == "reset":
            self.call_later(self.then_delay, lambda: self._if_open(c, self.reset))
        elif self.then == "fin":
            self.call_later(self.then_delay, lambda: self._if_open(c, self.fin))

    def on_data(self, c: Conn, data: bytes) -> None:
        super().on_data(c, data)
        if c.hello_seen:
            c.buf = b""


_reserved: list[socket.socket] = []


def closed_port(host: str = "127.0.0.1") -> int:
    """A port with nothing listening: a socket is bound to it (so no one else can take it)
    but never listens, so every SYN gets RST (``ConnectionRefusedError``).  The
    reservation lasts as long as the test process."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    _reserved.append(s)
    port: int = s.getsockname()[1]
    return port
