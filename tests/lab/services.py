"""The programs written in Python that run inside the lab: the middleboxes (an ALB-like
front, a silent proxy, a TCP-terminating relay, a TLS-intercepting proxy) and a server
that writes record by record.  (The lab's nginx servers are :class:`tests.peers.NginxServer`.)

Each middlebox runs on an :class:`AsyncHost`, an asyncio loop on a thread that was
started inside one lab namespace: the thread, and every socket its loop creates
(listening, accepted, outgoing), belong to that namespace for good.  So a relay on the
router connects from the router, with the router's address and TTL, exactly as a
device there would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from prober.net.demo import Listeners, abort_with_rst

from .netns import LabError, current_netns_inode, in_netns

T = TypeVar("T")
S = TypeVar("S", bound="AsyncService")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h: where a REDIRECTed connection was headed
IO_TIMEOUT_S = 10.0  # bounds every blocking step of the middleboxes (connect, stop)
RELAY_CHUNK = 65536


class AsyncHost:
    """An asyncio loop on its own thread inside namespace ``ns``.

    ``start()`` must run on the main thread (it enters the namespace to start the
    thread there).  ``call(coro)`` runs a coroutine on the loop and returns its result.
    """

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"lab-{ns}", daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inode = 0
        self._ready = threading.Event()

    def _run(self) -> None:
        self._inode = current_netns_inode()
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def start(self) -> AsyncHost:
        with in_netns(self.ns):
            expected = current_netns_inode()
            self._thread.start()  # the new thread inherits this thread's namespace
        if not self._ready.wait(IO_TIMEOUT_S) or self._inode != expected:
            raise LabError(f"the event loop thread for {self.ns} is not inside it")
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = IO_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def listen(self, handler: Handler, host: str, port: int) -> asyncio.Server:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # remember connection tasks so stop() can cancel them
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            try:
                await handler(reader, writer)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                pass  # a client going away mid-relay is the normal end in a prober lab
            finally:
                writer.close()

        server = await asyncio.start_server(tracked, host, port, reuse_address=True)
        self._servers.append(server)
        return server

    async def _shutdown(self) -> None:
        for s in self._servers:
            s.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(IO_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()


# -- helpers for the middleboxes ---------------------------------------------------------


def original_dst(writer: asyncio.StreamWriter) -> tuple[str, int]:
    """Where the client was connecting to before the router's REDIRECT."""
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), int(port)


async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
               delay_s: float = 0.0) -> None:
    """Copy until EOF; ``delay_s`` holds every chunk back that long (a far path)."""
    with contextlib.suppress(OSError):
        while data := await src.read(RELAY_CHUNK):
            if delay_s:
                await asyncio.sleep(delay_s)
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()


async def relay(a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
                b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter,
                delay_s: float = 0.0) -> None:
    """Both directions until both are done (a half-close is passed on as a FIN)."""
    try:
        await asyncio.gather(pump(a_reader, b_writer, delay_s),
                             pump(b_reader, a_writer, delay_s))
    finally:
        b_writer.close()


def split_records(data: bytes) -> list[bytes]:
    """TLS records of ``data`` (a trailing partial record, if any, as the last item)."""
    out, pos = [], 0
    while pos + 5 <= len(data):
        end = pos + 5 + int.from_bytes(data[pos + 3 : pos + 5], "big")
        out.append(data[pos:end])
        pos = end
    if pos < len(data):
        out.append(data[pos:])
    return out


class TlsServerStream:
    """The server side of TLS over an asyncio stream, through memory BIOs.

    asyncio's own TLS transport aborts a failed handshake without sending OpenSSL's
    alert; a real TLS stack (the interceptor's, the mtu-blackhole server's) sends it.
    Owning the BIOs also lets us choose how the bytes are written: ``record_wise``
    sends every TLS record with a ``send()`` of its own.
    """

    def __init__(self, ctx: ssl.SSLContext, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, record_wise: bool = False) -> None:
        self.reader, self.writer, self.record_wise = reader, writer, record_wise
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)

    async def _flush(self) -> None:
        data = self.outgoing.read()
        if not data:
            return
        if not self.record_wise:
            self.writer.write(data)
            await self.writer.drain()
            return
        for record in split_records(data):
            self.writer.write(record)
            await self.writer.drain()
            await asyncio.sleep(0.001)  # so TCP never merges two records in a segment

    async def _fill(self) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(RELAY_CHUNK), IO_TIMEOUT_S)
        except (TimeoutError, OSError):
            return False
        if not data:
            return False
        self.incoming.write(data)
        return True

    async def handshake(self) -> bool:
        """True when the handshake completed; False when it failed (the alert is sent)
        or the client went away."""
        while True:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    return False
                continue
            except ssl.SSLError:
                await self._flush()
                return False
            await self._flush()
            return True

    async def read(self) -> bytes:
        """Application data; b"" at the end (close_notify, EOF or an error)."""
        while True:
            try:
                data = self.obj.read(RELAY_CHUNK)
            except ssl.SSLWantReadError:
                await self._flush()  # TLS 1.3 session tickets go out on the first read
                if not await self._fill():
                    return b""
                continue
            except ssl.SSLError:
                return b""
            await self._flush()
            return data

    async def write(self, data: bytes) -> None:
        self.obj.write(data)
        await self._flush()

    async def close(self) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            self.obj.unwrap()
        with contextlib.suppress(OSError):
            await self._flush()


# -- the middleboxes ---------------------------------------------------------------------


class AsyncService:
    """Serves :meth:`_handle` on ``address:port`` of an :class:`AsyncHost` (every address
    of its namespace by default: the router's REDIRECT targets)."""

    def __init__(self, host: AsyncHost, port: int, address: str = "0.0.0.0") -> None:
        self.host, self.port, self.address = host, port, address
        self.accepted = 0

    def start(self: S) -> S:
        self.host.call(self.host.listen(self._handle, self.address, self.port))
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class SilentProxy(AsyncService):
    """Field case 3: a transparent proxy on the router that accepts the connection (the
    router's kernel answers the SYN and ACKs the ClientHello), never forwards anything,
    and closes with FIN ``fin_after_s`` after the connection opened."""

    def __init__(self, host: AsyncHost, port: int, fin_after_s: float) -> None:
        super().__init__(host, port)
        self.fin_after_s = fin_after_s
        self.bytes_swallowed = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.fin_after_s
        while (left := deadline - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(reader.read(RELAY_CHUNK), left)
            except TimeoutError:
                break
            if not data:
                return  # the client gave up first
            self.bytes_swallowed += len(data)  # read, so the window stays open: ACKed
        writer.write_eof()  # FIN
        # drain until the client closes: closing with unread data would send RST
        with contextlib.suppress(asyncio.TimeoutError):
            while await asyncio.wait_for(reader.read(RELAY_CHUNK), IO_TIMEOUT_S):
                pass


class NearTerminator(AsyncService):
    """A working transparent TCP proxy on the router: it completes the TCP handshake
    itself, then relays to the original destination over a path ``delay_ms`` long each
    way.  (The kernel here has no netem, so the far path is the relay holding every
    chunk back.)  TCP answers come from one hop away, the TLS answer much later."""

    def __init__(self, host: AsyncHost, port: int, delay_ms: float) -> None:
        super().__init__(host, port)
        self.delay_s = delay_ms / 1000.0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        dst = original_dst(writer)
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*dst), IO_TIMEOUT_S)
        except (TimeoutError, OSError):
            abort_with_rst(writer)
            return
        await relay(reader, writer, up_r, up_w, self.delay_s)


class InterceptingProxy(AsyncService):
    """A TLS-intercepting proxy on the router (a corporate "SSL inspection" box): it
    terminates TLS with a certificate from its own CA, then opens its own TLS
    connection to the original destination (verifying the real server against the lab
    CA) and relays the plaintext."""

    def __init__(self, host: AsyncHost, port: int, cert: Path, key: Path,
                 upstream_ca: Path) -> None:
        super().__init__(host, port)
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(cert, key)
        self.client_ctx = ssl.create_default_context(cafile=str(upstream_ca))
        self.sni_seen: list[str | None] = []
        # SNI of each handshake in progress, by its SSLObject (the handler gets the same
        # object back from the transport)
        self._sni: dict[int, str | None] = {}
        self.server_ctx.sni_callback = self._on_sni

    def _on_sni(self, obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if len(self._sni) > 1024:  # handshakes the prober abandoned never reach _handle
            self._sni.clear()
        self._sni[id(obj)] = name
        self.sni_seen.append(name)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = TlsServerStream(self.server_ctx, reader, writer)
        if not await tls.handshake():
            return  # a hello our own TLS stack refused got its alert
        self.accepted += 1
        dst_ip, dst_port = original_dst(writer)
        name = self._sni.pop(id(tls.obj), None)
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(
                dst_ip, dst_port, ssl=self.client_ctx, server_hostname=name or dst_ip),
                IO_TIMEOUT_S)
        except (TimeoutError, OSError, ssl.SSLError):
            abort_with_rst(writer)
            return

        async def client_to_server() -> None:
            try:
                while data := await tls.read():
                    up_w.write(data)
                    await up_w.drain()
            finally:
                up_w.close()  # TLS has no half-close: the client is done, so are we

        async def server_to_client() -> None:
            try:
                while data := await up_r.read(RELAY_CHUNK):
                    await tls.write(data)
            finally:
                await tls.close()

        await asyncio.gather(client_to_server(), server_to_client(), return_exceptions=True)


class AlbFront(Listeners):
    """The ALB-like front of ``prober demo`` (RST to hellos below TLS 1.2, everything else
    relayed to the backend), listening on a lab service address instead of loopback.

    The front's logic is the demo's, imported, not copied: only where it listens
    changes.  Its backend stays on 127.0.0.1 of the namespace it is started in, so
    ``start()`` must run inside ``in_netns(server)``.
    """

    def __init__(self, backend_port: int, address: str, port: int) -> None:
        super().__init__(backend_port)
        self.address, self.port = address, port

    async def _listen(self, handler: Callable[..., Awaitable[None]]) -> int:
        if handler == self._front:  # bound methods compare by function and instance
            server = await asyncio.start_server(handler, self.address, self.port,
                                                reuse_address=True)
        else:  # the demo's silent listener: not part of this scenario, keep it private
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port


_HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


class RecordWiseTLSServer(AsyncService):
    """A TLS 1.2/1.3 server that sends every TLS record with a send() of its own.

    OpenSSL servers (nginx, s_server) buffer a whole flight and write it at once, so the
    ServerHello shares its first segment with the certificate.  Stacks that write
    record by record (the shape of many embedded and older Java servers) put the
    ServerHello in a small segment of its own; behind a path-MTU blackhole that is the
    classic "ServerHello, then nothing": the small segments pass, the full-size
    certificate segments vanish.  Answers a request after the handshake with 200 ok.
    """

    def __init__(self, host: AsyncHost, address: str, port: int, cert: Path,
                 key: Path) -> None:
        super().__init__(host, port, address)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.handshakes = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = TlsServerStream(self.ctx, reader, writer, record_wise=True)
        if not await tls.handshake():
            return
        self.handshakes += 1
        request = b""
        while b"\r\n\r\n" not in request and len(request) < RELAY_CHUNK:
            data = await tls.read()
            if not data:
                return
            request += data
        await tls.write(_HTTP_OK)
        await tls.close()


class StrictSniServer(AsyncService):
    """A TLS server that serves one name only: a hello without SNI, or naming another
    host, gets the ``unrecognized_name`` alert (as nginx's ``ssl_reject_handshake`` or a
    CDN edge does). A server policy, not a middlebox: the refusal is TLS's own."""

    def __init__(self, host: AsyncHost, address: str, port: int, cert: Path, key: Path,
                 name: str) -> None:
        super().__init__(host, port, address)
        self.name = name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = self._on_sni
        self.refused: list[str | None] = []

    def _on_sni(self, _obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext
                ) -> int | None:
        if name != self.name:
            self.refused.append(name)
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        tls = TlsServerStream(self.ctx, reader, writer)
        if not await tls.handshake():
            writer.close()
            return
        request = b""
        while b"\r\n\r\n" not in request and len(request) < RELAY_CHUNK:
            data = await tls.read()
            if not data:
                return
            request += data
        await tls.write(_HTTP_OK)
        await tls.close()


def carries_supported_versions(hello: Any) -> bool:
    """Whether a parsed ClientHello has the supported_versions extension (43)."""
    return any(t == 43 for t, _ in (getattr(hello, "extensions", None) or ()))


class VersionIntolerantFront(AsyncService):
    """A front (old load-balancer firmware) that resets any ClientHello carrying the
    supported_versions extension, even one offering TLS 1.2, and relays every other hello
    to its backend: version intolerance, where a version *policy* would answer TLS 1.2."""

    def __init__(self, host: AsyncHost, address: str, port: int, backend: tuple[str, int]
                 ) -> None:
        super().__init__(host, port, address)
        self.backend = backend
        self.reset = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from prober.net.demo import read_hello

        self.accepted += 1
        data, hello = await read_hello(reader)
        if hello is None or carries_supported_versions(hello):
            self.reset += 1
            abort_with_rst(writer)
            return
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self.backend),
                                                IO_TIMEOUT_S)
        except (TimeoutError, OSError):
            abort_with_rst(writer)
            return
        up_w.write(data)
        try:
            await relay(reader, writer, up_r, up_w)
        except asyncio.CancelledError:
            # the lab stopping with a client still connected: end quietly, as the
            # demo's front does (asyncio would log the cancelled handler otherwise)
            writer.close()


class BannerService(AsyncService):
    """Another protocol on the TLS port: sends ``banner`` on accept, then reads and
    discards (an SSH server, say, on 443)."""

    def __init__(self, host: AsyncHost, address: str, port: int, banner: bytes) -> None:
        super().__init__(host, port, address)
        self.banner = banner

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.write(self.banner)
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await writer.drain()
            while await asyncio.wait_for(reader.read(RELAY_CHUNK), IO_TIMEOUT_S):
                pass
        writer.close()
