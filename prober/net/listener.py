"""The capture listener: accepts clients, reads each ClientHello, then answers with an alert
or, in ``complete`` mode, finishes a real handshake with a throwaway certificate through
``ssl.MemoryBIO`` (the bytes already read are handed to OpenSSL first), so that a client
which retries after a failure is seen with its first hello only. It only moves bytes:
what a hello means is :mod:`prober.capture.live`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from prober.net.certs import KEY_KINDS, throwaway_certificate, write_pair
from prober.wire.buffer import DecodeError
from prober.wire.clienthello import ClientHello, SSLv2Hello, read_client_hello
from prober.wire.hello_scan import COMPLETE, MAX_HELLO_BYTES, NEED_MORE, refusal_for, scan_hello


@dataclass
class CapturedHello:
    raw: bytes  # the records that carried the hello, as received
    peer: str  # "addr:port" of the client
    listener: str  # "addr:port" it connected to
    at: float  # time.time() when the hello was complete

    @cached_property  # read by naming, keying and fingerprinting: decoded once
    def hello(self) -> ClientHello | SSLv2Hello:
        return read_client_hello(self.raw)


# --- asyncio: the listener ------------------------------------------------------------------


@dataclass
class ListenOptions:
    host: str = "127.0.0.1"
    port: int = 0
    count: int = 1  # stop after this many hellos
    timeout: float | None = None  # stop listening after this many seconds
    complete: bool = False  # finish a real handshake instead of sending an alert
    connection_timeout: float = 10.0  # per connection: hello, then handshake and request
    grace: float = 5.0  # after the last hello: let open handshakes finish


_RESPONSE_BODY = b"captured by prober\n"
_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
             b"Content-Length: " + str(len(_RESPONSE_BODY)).encode() + b"\r\n\r\n"
             + _RESPONSE_BODY)


async def serve(opts: ListenOptions, on_hello: Callable[[CapturedHello], None],
                on_listening: Callable[[str, int], None] | None = None) -> int:
    """Listen until ``opts.count`` hellos were captured or ``opts.timeout`` passed.

    ``on_hello`` gets each complete hello; returns how many there were. Connections
    beyond ``count`` (a browser opening several at once) are answered but not recorded.
    """
    ctx = throwaway_context(opts.host) if opts.complete else None
    enough = asyncio.Event()
    seen = 0
    handlers: set[asyncio.Task[Any]] = set()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        buf = await _read_hello(reader)
        scan = scan_hello(buf)
        if scan.status != COMPLETE:
            return
        if seen < opts.count:
            seen += 1
            on_hello(CapturedHello(buf[: scan.end], _addr(writer, "peername"),
                                   _addr(writer, "sockname"), time.time()))
            if seen >= opts.count:
                enough.set()
        if ctx is not None:
            await _complete(reader, writer, buf, ctx)
        else:
            writer.write(refusal_for(read_client_hello(buf[: scan.end])))
            await writer.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
        try:
            await asyncio.wait_for(one(reader, writer), opts.connection_timeout)
        except (TimeoutError, OSError, DecodeError, ssl.SSLError):
            pass  # a client that goes away or stalls ends only its own connection
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await writer.wait_closed()
            if task is not None:
                handlers.discard(task)

    server = await asyncio.start_server(handle, opts.host, opts.port)
    bound = server.sockets[0].getsockname()
    if on_listening is not None:
        on_listening(str(bound[0]), int(bound[1]))
    try:
        await asyncio.wait_for(enough.wait(), opts.timeout)
    except TimeoutError:
        pass
    finally:
        server.close()
        if handlers:
            _, pending = await asyncio.wait(set(handlers), timeout=opts.grace)
            for t in pending:
                t.cancel()
    return seen


def _addr(writer: asyncio.StreamWriter, which: str) -> str:
    a = writer.get_extra_info(which) or ("?", 0)
    host = f"[{a[0]}]" if ":" in str(a[0]) else str(a[0])
    return f"{host}:{a[1]}"


async def _read_hello(reader: asyncio.StreamReader) -> bytes:
    buf = b""
    while scan_hello(buf).status == NEED_MORE and len(buf) < MAX_HELLO_BYTES + 4096:
        chunk = await reader.read(65536)
        if not chunk:
            break
        buf += chunk
    return buf


async def _complete(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes,
                    ctx: ssl.SSLContext) -> None:
    """Finish the handshake over memory BIOs, answer one HTTP request, close_notify."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(first)

    async def exchange() -> bool:
        """Send what OpenSSL has written; read more for it. False at the client's EOF."""
        if outgoing.pending:
            writer.write(outgoing.read())
            await writer.drain()
        data = await reader.read(65536)
        if not data:
            incoming.write_eof()
            return False
        incoming.write(data)
        return True

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if not await exchange():
                return
        except ssl.SSLError:
            # our alert is in `outgoing`: deliver it
            if outgoing.pending:
                writer.write(outgoing.read())
                await writer.drain()
            return
    request = b""
    while b"\r\n\r\n" not in request and len(request) < 65536:
        try:
            data = tls.read(65536)
        except ssl.SSLWantReadError:
            if not await exchange():
                break
        except ssl.SSLError:
            break
        else:
            if not data:  # close_notify
                break
            request += data
    if request:
        tls.write(_RESPONSE)
    with contextlib.suppress(ssl.SSLError):
        tls.unwrap()
    if outgoing.pending:
        writer.write(outgoing.read())
        await writer.drain()


def throwaway_context(host: str = "127.0.0.1") -> ssl.SSLContext:
    """A server context that completes a handshake with nearly any client: TLS 1.0-1.3,
    every OpenSSL suite, fresh self-signed RSA and ECDSA certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    # only http/1.1: the answer is an HTTP/1.1 response, whatever else the client offers
    ctx.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="prober-capture-") as d:
        cert, key = Path(d) / "c.pem", Path(d) / "k.pem"
        for kind in KEY_KINDS:
            # the names a local client is likely to connect to, and the address listened on
            write_pair(*throwaway_certificate(kind, common_name="prober capture (throwaway)",
                                              names=["localhost", "127.0.0.1", "::1", host]),
                       cert, key)
            ctx.load_cert_chain(cert, key)
    return ctx
