"""Reading a ClientHello off a stream, sans I/O: whether the bytes received so far hold a
whole hello (across any number of records and TCP segments), and the alert a server of
today would end the connection with.
"""

from __future__ import annotations

from dataclasses import dataclass

from prober.wire import registry as reg
from prober.wire.buffer import DecodeError, Reader, u16, vec
from prober.wire.clienthello import ClientHello, SSLv2Hello
from prober.wire.constants import AlertDescription, ContentType, ExtensionType, HandshakeType
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
