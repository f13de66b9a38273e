"""The demo's servers (``prober demo``), on loopback: an ALB-like front and its backend.

    backend   Python ``ssl`` server with exactly a policy's versions and suites, RSA and
              ECDSA certificates: it answers unsupported hellos with a TLS alert
    front     asyncio TCP front: reads the ClientHello, resets (RST) hellos whose newest
              version is below TLS 1.2 as an ALB does, and relays everything else to the
              backend byte for byte
    silent    accepts, reads, never answers
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prober.net.certs import KEY_KINDS, throwaway_certificate, write_pair
from prober.wire.buffer import DecodeError, Reader
from prober.wire.clienthello import ClientHello, SSLv2Hello, read_client_hello
from prober.wire.constants import ExtensionType
from prober.wire.registry import GREASE_VALUES

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

LOOPBACK = "127.0.0.1"
CERT_NAME = "demo.test"

TLS1_2 = 0x0303
# the front gives up on a ClientHello that is not whole within these bounds; real hellos
# are a few hundred bytes to ~2 KB (post-quantum key shares), 64 KiB is generous
HELLO_MAX_BYTES = 64 * 1024
HELLO_TIMEOUT_S = 5.0
# nothing in the demo legitimately takes longer; bounds every blocking step on shutdown
IO_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Policy:
    name: str
    protocols: list[str]
    ciphers: list[str]  # OpenSSL names, in the catalog's (server preference) order


# catalog protocol names -> ssl module versions (the catalogs spell TLS 1.0 both ways)
_SSL_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.0": ssl.TLSVersion.TLSv1,
                 "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1.2": ssl.TLSVersion.TLSv1_2,
                 "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def backend_context(policy: Policy, certs: list[tuple[Path, Path]]) -> ssl.SSLContext:
    """A server context that negotiates what the policy allows and nothing else."""
    versions = sorted(_SSL_VERSIONS[p] for p in policy.protocols)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # the ssl module's defaults would allow TLS 1.3, which this policy does not
    ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    ctx.set_ciphers(":".join(policy.ciphers))
    # AWS picks the first suite of its own list that the client offers
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # OpenSSL keeps one certificate per key type: RSA and ECDSA suites both work, as on
    # an ALB whose listener has both
    for cert, key in certs:
        ctx.load_cert_chain(cert, key)
    return ctx


def make_certificates(directory: Path) -> list[tuple[Path, Path]]:
    """Self-signed RSA 2048 and ECDSA P-256 certificates for demo.test / 127.0.0.1.

    Nobody verifies them (the prober only reads the server's flight), so no CA is needed.
    """
    out = []
    for kind in KEY_KINDS:
        cert, key = throwaway_certificate(kind, common_name=CERT_NAME,
                                          organization=f"prober demo {kind}",
                                          names=[CERT_NAME, LOOPBACK], server_auth=True)
        cert_path, key_path = directory / f"{kind}.crt", directory / f"{kind}.key"
        write_pair(cert, key, cert_path, key_path)
        out.append((cert_path, key_path))
    return out


# --- the backend: Python ssl, in threads --------------------------------------------------


class Backend:
    """A blocking TLS server: one thread accepts, one thread per connection.

    Threads rather than asyncio so OpenSSL sends its alert and the handshake error stays
    in our hands (asyncio would log every failed handshake as an error).
    """

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.sock = socket.create_server((LOOPBACK, 0))
        # accept() wakes up this often to notice stop(); closing a socket another
        # thread blocks on does not wake it everywhere
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="demo-backend",
                                          daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._conns.add(conn)
                t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                     name="demo-backend-conn")
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(IO_TIMEOUT_S)
        try:
            # the handshake runs here; on a hello the policy refuses, OpenSSL sends the
            # alert before raising, which is the whole point of this server
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                # the prober hangs up after the server's flight; wait for that
                tls.recv(1024)
        except (ssl.SSLError, OSError):
            pass  # failed and aborted handshakes are what the demo provokes
        finally:
            conn.close()
            with self._lock:
                self._conns.discard(conn)

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        if self._acceptor.is_alive():
            self._acceptor.join(IO_TIMEOUT_S)
        with self._lock:
            for c in self._conns:
                # wakes a thread blocked in the handshake or recv
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threads = list(self._threads)
        for t in threads:
            t.join(IO_TIMEOUT_S)


# --- the front: what an ALB does before TLS starts -----------------------------------------


def highest_offered_version(hello: ClientHello | SSLv2Hello) -> int:
    """The newest protocol version a hello offers (0 when it offers none).

    supported_versions (RFC 8446 4.2.1) overrides legacy_version when present; GREASE
    entries are placeholders, not versions.
    """
    if isinstance(hello, SSLv2Hello):
        return hello.version
    body = hello.extension(ExtensionType.SUPPORTED_VERSIONS)
    if body is None:
        return hello.legacy_version
    versions = [v for v in Reader(body).pull_list(1, 2) if v not in GREASE_VALUES]
    return max(versions, default=0)


def front_forwards(hello: ClientHello | SSLv2Hello) -> bool:
    """True when the ALB-like front hands the hello to the backend, False when it resets.

    The balancer refuses below-TLS-1.2 hellos itself, with a TCP RST and no alert
    (field case 1); everything else reaches the TLS stack, which alerts on its own.
    """
    try:
        return highest_offered_version(hello) >= TLS1_2
    except DecodeError:
        return False  # a broken supported_versions: nothing a TLS 1.2 server can use


async def read_hello(reader: asyncio.StreamReader
                     ) -> tuple[bytes, ClientHello | SSLv2Hello | None]:
    """Read until a whole ClientHello parses; (bytes read, hello or None when it never did)."""
    buf = b""
    deadline = time.monotonic() + HELLO_TIMEOUT_S
    while len(buf) < HELLO_MAX_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(HELLO_MAX_BYTES - len(buf)), remaining)
        except (TimeoutError, OSError):  # distinct before 3.11
            break
        if not chunk:
            break
        buf += chunk
        # neither a TLS handshake record nor an SSLv2 hello: no point in waiting for more
        if not (buf[0] == 0x16 or buf[0] & 0x80):
            break
        try:
            return buf, read_client_hello(buf)
        except DecodeError:
            continue  # most often just incomplete: read on, within the bounds
    return buf, None


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN: SO_LINGER on with a zero timeout, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except OSError:
        pass  # a reset on either side ends the relay like a close does


class Listeners:
    """The front and the silent listener, on one asyncio loop in its own thread.

    Their own thread because ``prober.cli.main.main`` runs ``asyncio.run`` in the main thread.
    """

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="demo-listeners",
                                        daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.front_port = 0
        self.silent_port = 0

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(IO_TIMEOUT_S)

    def start(self) -> None:
        self._thread.start()
        self.front_port = self._call(self._listen(self._front))
        self.silent_port = self._call(self._listen(self._silent))

    async def _listen(self, handler: Handler) -> int:
        server = await asyncio.start_server(handler, LOOPBACK, 0)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    def _track(self) -> None:
        # connection tasks are created by asyncio; remember them so stop() can cancel them
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _front(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._front_conn(reader, writer)
        except asyncio.CancelledError:
            # cancelled at shutdown: end quietly (asyncio logs a cancelled handler task)
            writer.close()

    async def _front_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                          ) -> None:
        self._track()
        try:
            data, hello = await read_hello(reader)
            if hello is None or not front_forwards(hello):
                abort_with_rst(writer)
                return
            try:
                b_reader, b_writer = await asyncio.wait_for(
                    asyncio.open_connection(LOOPBACK, self.backend_port), IO_TIMEOUT_S)
            except (TimeoutError, OSError):
                abort_with_rst(writer)  # no healthy target: the client sees a reset
                return
            try:
                b_writer.write(data)
                pumps = [asyncio.create_task(_pump(reader, b_writer)),
                         asyncio.create_task(_pump(b_reader, writer))]
                try:
                    # either side closing ends the connection: the relay holds no state
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for p in pumps:
                        p.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                b_writer.close()
        finally:
            writer.close()

    async def _silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        try:
            # reading keeps the window open, so the kernel ACKs the hello: hang-acked
            while await reader.read(65536):
                pass
        except (OSError, asyncio.CancelledError):
            # cancelled at shutdown: end quietly (asyncio logs a cancelled handler task)
            pass
        finally:
            writer.close()

    async def _shutdown(self) -> None:
        for s in self._servers:
            s.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self._servers:
            await s.wait_closed()

    def stop(self) -> None:
        if not self._thread.is_alive():
            self.loop.close()
            return
        try:
            self._call(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(IO_TIMEOUT_S)
            if not self._thread.is_alive():
                self.loop.close()


