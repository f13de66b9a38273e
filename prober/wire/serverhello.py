"""ServerHello (and HelloRetryRequest, a ServerHello with a special random): the wire
structure and both directions of the codec.

Shaped like aioquic's ``tls.py``: a frozen dataclass, ``pull_server_hello`` to read one
from a :class:`Reader` and ``push_server_hello`` to write one. Extension bodies stay raw
bytes; the properties decode the few the flight reader looks at, when it looks, so a
malformed body it never reads (a key_share in a TLS 1.2 hello) fails nothing, and the
same malformed body fails at the same point of the flight as it always has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prober.wire.buffer import DecodeError, Reader, u8, u16, u24, vec
from prober.wire.constants import (
    DOWNGRADE_TLS11,
    DOWNGRADE_TLS12,
    HRR_RANDOM,
    ExtensionType,
    HandshakeType,
)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A ServerHello exactly as on the wire (extensions as raw (type, body) pairs)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int = 0
    # None means no extensions block at all (servers answering extension-less hellos
    # omit it), () an empty one: both occur, and a round trip keeps them apart
    extensions: tuple[tuple[int, bytes], ...] | None = None
    # derived from extensions: the flight reader looks up to seven of them per hello
    _by_type: dict[int, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # dict() keeps the last of duplicates: see extension()
        object.__setattr__(self, "_by_type", dict(self.extensions or ()))

    def extension(self, ext_type: int) -> bytes | None:
        """The body of extension ``ext_type``, None when absent.

        Of duplicates (RFC 8446 4.2 forbids them) the *last* counts, unlike
        ``ClientHello.extension``: the flight reader has always let the last one win,
        and what it reports about such a server is a contract."""
        return self._by_type.get(ext_type)

    @property
    def extension_types(self) -> list[int]:
        """Extension types in wire order, duplicates included."""
        return [t for t, _ in self.extensions or ()]

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HRR_RANDOM

    @property
    def selected_version(self) -> int:
        """supported_versions when present (TLS 1.3 and its HRR), else legacy_version.

        Bytes after the version are not an error here: the flight reader never made
        them one."""
        body = self.extension(ExtensionType.SUPPORTED_VERSIONS)
        if body is None:
            return self.legacy_version
        return Reader(body).pull_u16()

    @property
    def downgrade_sentinel(self) -> str | None:
        """RFC 8446 4.1.3: a server able to do TLS 1.3 that negotiated lower marks its
        random; the name of the marker found, None without one."""
        tail = self.random[-8:]
        if tail == DOWNGRADE_TLS12:
            return "TLSv1.2" if self.selected_version == 0x0303 else None
        if tail == DOWNGRADE_TLS11:
            return "TLSv1.1" if self.selected_version < 0x0303 else None
        return None

    @property
    def key_share(self) -> tuple[int, bytes] | None:
        """A ServerHello's key_share, (group, key_exchange); None without one."""
        body = self.extension(ExtensionType.KEY_SHARE)
        if body is None:
            return None
        r = Reader(body)
        group = r.pull_u16()
        return group, r.pull_vector(2)

    @property
    def selected_group(self) -> int | None:
        """A HelloRetryRequest's key_share: the bare group it asks for (RFC 8446 4.2.8);
        None without one."""
        body = self.extension(ExtensionType.KEY_SHARE)
        if body is None:
            return None
        if len(body) != 2:
            raise DecodeError(f"HelloRetryRequest key_share of {len(body)} bytes, not a group")
        return int.from_bytes(body, "big")

    @property
    def cookie(self) -> bytes | None:
        """A HelloRetryRequest's cookie, to be echoed in the second ClientHello."""
        body = self.extension(ExtensionType.COOKIE)
        return None if body is None else Reader(body).pull_vector(2)

    @property
    def alpn(self) -> str | None:
        """The protocol a TLS 1.2 server chose; None without the extension (or with an
        empty list)."""
        body = self.extension(ExtensionType.ALPN)
        return None if body is None else alpn_choice(body)


def pull_server_hello(r: Reader, *, strict: bool = True) -> ServerHello:
    """Read one ServerHello handshake message (header included) from ``r``.

    ``strict=False`` lets bytes between the extensions block and the end of the message
    pass: the flight reader has always accepted such hellos, and turning them into an
    error would change what it reports about those servers."""
    if r.pull_u8() != HandshakeType.SERVER_HELLO:
        raise DecodeError("not a ServerHello handshake message")
    body = r.sub(3)
    legacy_version = body.pull_u16()
    random = body.pull_bytes(32)
    session_id = body.pull_vector(1)
    cipher_suite = body.pull_u16()
    compression_method = body.pull_u8()
    extensions: tuple[tuple[int, bytes], ...] | None = None
    if not body.eof():
        er = body.sub(2)
        exts = []
        while not er.eof():
            t = er.pull_u16()
            exts.append((t, er.pull_vector(2)))
        extensions = tuple(exts)
    if strict and not body.eof():
        raise DecodeError(f"{body.remaining()} trailing bytes after ServerHello extensions")
    return ServerHello(legacy_version, random, session_id, cipher_suite, compression_method,
                       extensions)


def push_server_hello(hello: ServerHello) -> bytes:
    """The handshake message (header included) for ``hello``.

    Fields are written as given, unchecked (a 31-byte random, a 300-byte session id), so
    test servers can also build the hellos a client must reject."""
    body = (u16(hello.legacy_version) + hello.random + vec(hello.session_id, 1)
            + u16(hello.cipher_suite) + u8(hello.compression_method))
    if hello.extensions is not None:
        body += vec(b"".join(u16(t) + vec(b, 2) for t, b in hello.extensions), 2)
    return u8(HandshakeType.SERVER_HELLO) + u24(len(body)) + body


# --- extension bodies (the server's side) ------------------------------------------


def ext_selected_version(version: int) -> bytes:
    """supported_versions in a ServerHello or HRR: one version, no list."""
    return u16(version)


def ext_server_key_share(group: int, key_exchange: bytes) -> bytes:
    return u16(group) + vec(key_exchange, 2)


def ext_hrr_key_share(group: int) -> bytes:
    return u16(group)


def ext_cookie(cookie: bytes) -> bytes:
    return vec(cookie, 2)


def ext_alpn_choice(protocol: str) -> bytes:
    """ALPN in a ServerHello or EncryptedExtensions: a list of exactly one protocol."""
    return vec(vec(protocol.encode(), 1), 2)


def alpn_choice(body: bytes) -> str | None:
    """The first protocol of an ALPN body; None for an empty list.

    A list of more than one is not rejected (RFC 7301 3.1 allows one): the flight
    reader has always read the first and ignored the rest."""
    r = Reader(body).sub(2)
    return r.pull_vector(1).decode("ascii", "replace") if not r.eof() else None
