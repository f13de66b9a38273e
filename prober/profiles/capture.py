"""Capturing the ClientHellos of real clients: a listener and what it writes.

The sans-I/O half decides when the bytes received so far hold a whole ClientHello
(across any number of records and TCP segments), which alert ends the connection,
when two hellos come from the same client configuration, and what profile document
a capture becomes. The asyncio half (``serve``) only moves bytes: it accepts
connections, reads each hello, then either answers with that alert or, in
``complete`` mode, finishes a real handshake with a throwaway certificate through
``ssl.MemoryBIO`` (the bytes already read are handed to OpenSSL first), so that a
client which retries after a failure is seen with its first hello only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import socket
import ssl
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from prober.profiles.importer import doc_from_hello, slug
from prober.wire import registry as reg
from prober.wire.buffer import DecodeError, Reader, int_list, u16, vec
from prober.wire.clienthello import (
    ClientHello,
    SSLv2Hello,
    decode_alpn,
    decode_key_share_client,
    decode_server_name,
    read_client_hello,
)
from prober.wire.constants import AlertDescription, ContentType, ExtensionType, HandshakeType
from prober.wire.fingerprint import ja3, ja4
from prober.wire.serverflight import banner_of

# a hello bigger than this is not one (the largest real ones, with PQ key shares, are < 8 kB)
MAX_HELLO_BYTES = 1 << 16
_MAX_FRAGMENT = 16384 + 2048

NEED_MORE = "need-more"
COMPLETE = "complete"
NOT_A_HELLO = "not-a-hello"


# --- sans-I/O: is the hello complete? ---------------------------------------------------


@dataclass(frozen=True)
class HelloScan:
    status: str
    end: int = 0  # COMPLETE: bytes of the records that carry the hello
    reason: str = ""  # NOT_A_HELLO: why


def scan_hello(buf: bytes) -> HelloScan:
    """Whether ``buf`` (everything the client sent so far) holds a whole ClientHello."""
    if not buf:
        return HelloScan(NEED_MORE)
    if buf[0] & 0x80:
        return _scan_sslv2(buf)
    msg = bytearray()
    pos = 0
    while True:
        if len(buf) < pos + 5:
            return HelloScan(NEED_MORE)
        ctype, major, length = buf[pos], buf[pos + 1], int.from_bytes(buf[pos + 3 : pos + 5], "big")
        if ctype != ContentType.HANDSHAKE or major != 3 or length > _MAX_FRAGMENT:
            what = "a TLS record" if pos else f"TLS: {banner_of(bytes(buf))!r}"
            return HelloScan(NOT_A_HELLO, reason=f"not {what} of a ClientHello")
        if len(buf) < pos + 5 + length:
            return HelloScan(NEED_MORE)
        msg += buf[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if msg and msg[0] != HandshakeType.CLIENT_HELLO:
            return HelloScan(NOT_A_HELLO, reason=f"handshake message type {msg[0]}, not 1")
        if len(msg) >= 4:
            need = 4 + int.from_bytes(msg[1:4], "big")
            if need > MAX_HELLO_BYTES:
                return HelloScan(NOT_A_HELLO, reason=f"a {need}-byte ClientHello")
            if len(msg) >= need:
                return HelloScan(COMPLETE, end=pos)


def _scan_sslv2(buf: bytes) -> HelloScan:
    if len(buf) < 3:
        return HelloScan(NEED_MORE)
    end = 2 + ((buf[0] & 0x7F) << 8 | buf[1])
    if buf[2] != 1:
        return HelloScan(NOT_A_HELLO, reason=f"SSLv2 message type {buf[2]}, not CLIENT-HELLO")
    return HelloScan(COMPLETE, end=end) if len(buf) >= end else HelloScan(NEED_MORE)


# --- sans-I/O: the polite ending ----------------------------------------------------------

# SSLv2 ERROR message, NO-CIPHER-ERROR: the only refusal an SSLv2-format client understands
SSLV2_ERROR = bytes.fromhex("8003000001")


def refusal_for(hello: ClientHello | SSLv2Hello) -> bytes:
    """The bytes that end the connection: a fatal alert a server of today would send.

    protocol_version when the client offers nothing a TLS 1.0+ server can speak (an
    SSLv2/SSLv3-only client), handshake_failure otherwise.
    """
    if isinstance(hello, SSLv2Hello):
        return SSLV2_ERROR
    top = max(_offered_versions(hello), default=hello.legacy_version)
    desc = (AlertDescription.protocol_version if top < 0x0301
            else AlertDescription.handshake_failure)
    # the record version a server would use: the client's, capped at TLS 1.2 (1.3 keeps it)
    record_version = max(0x0300, min(hello.legacy_version, 0x0303))
    return bytes([ContentType.ALERT]) + u16(record_version) + vec(bytes([2, desc]), 2)


def _offered_versions(hello: ClientHello) -> list[int]:
    body = hello.extension(ExtensionType.SUPPORTED_VERSIONS)
    if body is None:
        return [hello.legacy_version]
    try:
        return [v for v in Reader(body).pull_list(1, 2) if not reg.is_grease(v)]
    except DecodeError:
        return [hello.legacy_version]


# --- sans-I/O: one client configuration, however often it connects ------------------------

_GREASE = 0x0A0A
# bodies that change on every connection (or with the target) and say nothing of the client
_VOLATILE = {ExtensionType.SERVER_NAME, ExtensionType.PADDING, ExtensionType.PRE_SHARED_KEY,
             0xFE0D}  # encrypted_client_hello: GREASE ECH carries random bytes


def hello_key(hello: ClientHello | SSLv2Hello) -> str:
    """Equal for two hellos of the same client configuration.

    Random, session id, key share bytes, SNI, padding and GREASE code points are left
    out, and extensions are compared as a set: Chrome shuffles its extension order and
    draws new GREASE values on every connection.
    """
    if isinstance(hello, SSLv2Hello):
        return hashlib.sha256(b"v2" + u16(hello.version) + int_list(
            hello.cipher_specs, 3, 2)).hexdigest()
    g = _ungrease
    parts = [u16(hello.legacy_version), bytes([len(hello.session_id)]),
             int_list([g(c) for c in hello.cipher_suites], 2, 2),
             int_list(hello.compression_methods, 1, 1)]
    exts = []
    for t, body in hello.extensions or ():
        exts.append(u16(g(t)) + vec(_stable_body(t, body), 2))
    parts.append(b"none" if hello.extensions is None else b"".join(sorted(exts)))
    return hashlib.sha256(b"|".join(parts)).hexdigest()


# lists of code points where GREASE values turn up (Chrome: groups and signature algorithms)
_U16_LISTS = {ExtensionType.SUPPORTED_GROUPS, ExtensionType.SIGNATURE_ALGORITHMS,
              ExtensionType.SIGNATURE_ALGORITHMS_CERT}


def _ungrease(v: int) -> int:
    return _GREASE if reg.is_grease(v) else v


def _stable_body(t: int, body: bytes) -> bytes:
    if t in _VOLATILE:
        return b""
    try:
        if t == ExtensionType.KEY_SHARE:
            return b"".join(u16(_ungrease(grp)) + u16(len(k))
                            for grp, k in decode_key_share_client(body))
        if t in _U16_LISTS:
            return int_list([_ungrease(v) for v in Reader(body).pull_list(2, 2)], 2, 2)
        if t == ExtensionType.SUPPORTED_VERSIONS:
            return int_list([_ungrease(v) for v in Reader(body).pull_list(1, 2)], 2, 1)
    except DecodeError:
        pass
    return body


# --- sans-I/O: captures -> profile documents ------------------------------------------------


@dataclass
class CapturedHello:
    raw: bytes  # the records that carried the hello, as received
    peer: str  # "addr:port" of the client
    listener: str  # "addr:port" it connected to
    at: float  # time.time() when the hello was complete

    @cached_property  # read by naming, keying and fingerprinting: decoded once
    def hello(self) -> ClientHello | SSLv2Hello:
        return read_client_hello(self.raw)


@dataclass
class CaptureGroup:
    """The hellos of one client configuration; the first one becomes the profile."""

    name: str
    key: str
    hellos: list[CapturedHello] = field(default_factory=list)

    @property
    def first(self) -> CapturedHello:
        return self.hellos[0]


@dataclass
class ClientInfo:
    """What the person capturing knows about the client (written into the profile)."""

    name: str = ""
    version: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)  # library, build, ...


class CaptureBook:
    """Groups captured hellos by client configuration and names the groups."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.groups: list[CaptureGroup] = []

    def add(self, c: CapturedHello) -> tuple[CaptureGroup, bool]:
        """Record one hello; returns its group and whether the group is new."""
        key = hello_key(c.hello)
        for grp in self.groups:
            if grp.key == key:
                grp.hellos.append(c)
                return grp, False
        grp = CaptureGroup(self._next_name(c.hello, key), key, [c])
        self.groups.append(grp)
        return grp, True

    def _next_name(self, hello: ClientHello | SSLv2Hello, key: str) -> str:
        if self.name:
            n = len(self.groups) + 1
            return self.name if n == 1 else f"{self.name}-{n}"
        head = ja4(hello).split("_")[0] if isinstance(hello, ClientHello) else "sslv2"
        return f"captured-{head}-{key[:6]}"

    def documents(self, info: ClientInfo, *, mode: str, host: str | None = None
                  ) -> list[tuple[CaptureGroup, dict[str, Any]]]:
        return [(g, capture_doc(g, info, mode=mode, host=host)) for g in self.groups]


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")


def capture_doc(group: CaptureGroup, info: ClientInfo, *, mode: str,
                host: str | None = None) -> dict[str, Any]:
    """The profile document of one capture group (``origin: captured``)."""
    first = group.first
    host = host or socket.gethostname()
    when = _iso(first.at)
    client = {k: v for k, v in (("name", info.name), ("version", info.version)) if v}
    client.update(info.details)
    who = f"{info.name} {info.version}".strip() or "a client"
    description = info.description or (
        f"{who}: the ClientHello it sent to `prober profiles capture` from {first.peer}")
    doc = doc_from_hello(first.raw, name=group.name, origin="captured", description=description,
                         client=client or None,
                         source=f"prober profiles capture on {host}, {when}",
                         tags=list(info.tags) or None)
    hello = first.hello
    capture: dict[str, Any] = {"at": when, "from": first.peer, "listener": first.listener,
                               "host": host, "mode": mode, "connections": len(group.hellos)}
    if isinstance(hello, ClientHello):
        sni = hello.extension(ExtensionType.SERVER_NAME)
        alpn = hello.extension(ExtensionType.ALPN)
        capture["sni"] = capture["alpn"] = None
        with contextlib.suppress(DecodeError):
            capture["sni"] = decode_server_name(sni) if sni is not None else None
        with contextlib.suppress(DecodeError):
            capture["alpn"] = decode_alpn(alpn) if alpn is not None else None
        variants = sorted({ja3(h) for h in (c.hello for c in group.hellos)
                           if isinstance(h, ClientHello)})
        if len(variants) > 1:
            # same configuration, other extension order or GREASE values (Chrome)
            capture["ja3_variants"] = variants
    doc["extra"]["capture"] = capture
    return doc


def profile_filename(name: str) -> str:
    return f"{slug(name)}.yaml"


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
        for kind in ("rsa", "ecdsa"):
            cert, key = _self_signed(kind, host)
            (Path(d) / "c.pem").write_bytes(cert)
            (Path(d) / "k.pem").write_bytes(key)
            ctx.load_cert_chain(Path(d) / "c.pem", Path(d) / "k.pem")
    return ctx


def _self_signed(kind: str, host: str) -> tuple[bytes, bytes]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(65537, 2048) if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prober capture (throwaway)")])
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for a in {"127.0.0.1", "::1", host}:
        with contextlib.suppress(ValueError):
            sans.append(x509.IPAddress(ipaddress.ip_address(a)))
    now = _dt.datetime.now(_dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key
