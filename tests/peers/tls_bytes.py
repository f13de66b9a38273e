"""Raw TLS bytes for tests: real ClientHellos (made by the stdlib ``ssl`` module) and a
small record/handshake splitter to find where a server flight ends."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "wire" / "data"
TLS12_FLIGHT_FILE = DATA_DIR / "tls12_server_flight.bin"

HANDSHAKE = 22
ALERT = 21
SERVER_HELLO = 2
CERTIFICATE = 11
SERVER_KEY_EXCHANGE = 12
SERVER_HELLO_DONE = 14


def client_hello(
    *,
    server_name: str | None = "demo.test",
    min_version: ssl.TLSVersion | None = None,
    max_version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> bytes:
    """The first flight (ClientHello record(s)) of a stdlib-ssl client, as bytes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def records(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(content_type, version, payload) of each *complete* record in ``data``."""
    i = 0
    while i + 5 <= len(data):
        ctype, ver, length = (
            data[i],
            int.from_bytes(data[i + 1 : i + 3], "big"),
            int.from_bytes(data[i + 3 : i + 5], "big"),
        )
        if i + 5 + length > len(data):
            return
        yield ctype, ver, data[i + 5 : i + 5 + length]
        i += 5 + length


def handshake_types(data: bytes) -> list[int]:
    """Handshake message types in the (plaintext) handshake records of ``data``."""
    payload = b"".join(p for t, _v, p in records(data) if t == HANDSHAKE)
    out, i = [], 0
    while i + 4 <= len(payload):
        out.append(payload[i])
        i += 4 + int.from_bytes(payload[i + 1 : i + 4], "big")
    return out


def first_record_complete(buf: bytes) -> bool:
    """True once ``buf`` holds a whole TLS record, or any bytes that aren't TLS."""
    if not buf:
        return False
    if buf[0] not in (20, 21, 22, 23):
        return True
    if len(buf) < 5:
        return False
    return len(buf) >= 5 + int.from_bytes(buf[3:5], "big")


def complete_prefix(data: bytes) -> bytes:
    """The leading bytes of ``data`` that form complete records."""
    end = 0
    while end + 5 <= len(data):
        nxt = end + 5 + int.from_bytes(data[end + 3 : end + 5], "big")
        if nxt > len(data):
            break
        end = nxt
    return data[:end]


def read_until_hello_done(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read a TLS 1.2 server flight until a ServerHelloDone (or an alert) is complete;
    return the complete records read so far."""
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        done = complete_prefix(buf)
        if SERVER_HELLO_DONE in handshake_types(done) or any(
            t == ALERT for t, _v, _p in records(done)
        ):
            return done
    raise TimeoutError(f"no ServerHelloDone after {len(buf)} bytes")


def record_tls12_flight(pki: object, openssl: str = "openssl") -> bytes:
    """Record a real TLS 1.2 ServerHello..ServerHelloDone flight from ``openssl s_server``
    (RSA cert, ECDHE-RSA-AES128-GCM-SHA256, no session ticket)."""
    from .openssl_server import OpenSSLServer  # local import: avoid a cycle

    hello = client_hello(max_version=ssl.TLSVersion.TLSv1_2)
    with (
        OpenSSLServer(
            pki,  # type: ignore[arg-type]
            cert="rsa",
            ciphers="ECDHE-RSA-AES128-GCM-SHA256",
            min_protocol="TLSv1.2",
            max_protocol="TLSv1.2",
            trace=False,
            extra=["-no_ticket"],
            openssl=openssl,
        ) as srv,
        socket.create_connection((srv.host, srv.port), timeout=5) as s,
    ):
        s.sendall(hello)
        return read_until_hello_done(s)


def load_tls12_flight() -> bytes:
    """The canned flight stored in tests/wire/data (see ``python -m tests.peers.tls_bytes``)."""
    return TLS12_FLIGHT_FILE.read_bytes()


if __name__ == "__main__":  # regenerate tests/data/tls12_server_flight.bin
    import tempfile

    from .pki import make_pki

    with tempfile.TemporaryDirectory() as d:
        flight = record_tls12_flight(make_pki(d))
    TLS12_FLIGHT_FILE.parent.mkdir(parents=True, exist_ok=True)
    TLS12_FLIGHT_FILE.write_bytes(flight)
    print(f"wrote {len(flight)} bytes to {TLS12_FLIGHT_FILE}: types {handshake_types(flight)}")
