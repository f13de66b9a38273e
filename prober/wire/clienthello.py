"""ClientHello: the wire structure, a buildable template, and both directions of the codec.

``HelloSpec`` is the template a profile compiles to: every field in code points, every
extension body fixed bytes except the three that depend on the attempt (server_name,
key_share, padding). ``build`` turns a spec into the bytes of one attempt;
``spec_from_hello`` turns captured bytes back into a spec, so build -> parse -> build
gives the same bytes apart from random, session id and key shares.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from prober.wire.buffer import DecodeError, Reader, int_list, u8, u16, u24, vec
from prober.wire.constants import ContentType, ExtensionType, HandshakeType
from prober.wire.registry import GREASE_VALUES, VERSION_NAMES

if TYPE_CHECKING:
    from prober.wire.keyshare import KeyShare

MAX_RECORD = 16384
# newest first, SSLv2 last: what a hello without supported_versions can be answered with
_BEFORE_TLS13 = tuple(v for v in sorted(VERSION_NAMES, reverse=True) if v < 0x0304)


@dataclass
class ClientHello:
    """A ClientHello exactly as on the wire (extensions as raw (type, body) pairs)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: list[int]
    compression_methods: list[int] = field(default_factory=lambda: [0])
    # None means no extensions block at all (SSLv3-era hellos), [] an empty one
    extensions: list[tuple[int, bytes]] | None = None

    def encode(self) -> bytes:
        body = (
            u16(self.legacy_version)
            + self.random
            + vec(self.session_id, 1)
            + int_list(self.cipher_suites, 2, 2)
            + int_list(self.compression_methods, 1, 1)
        )
        if self.extensions is not None:
            body += vec(b"".join(u16(t) + vec(b, 2) for t, b in self.extensions), 2)
        return u8(HandshakeType.CLIENT_HELLO) + u24(len(body)) + body

    def extension(self, ext_type: int) -> bytes | None:
        for t, b in self.extensions or ():
            if t == ext_type:
                return b
        return None


def decode_client_hello(msg: bytes) -> ClientHello:
    """Parse a ClientHello handshake message (with its 4-byte header)."""
    r = Reader(msg)
    if r.pull_u8() != HandshakeType.CLIENT_HELLO:
        raise DecodeError("not a ClientHello handshake message")
    body = r.sub(3)
    legacy_version = body.pull_u16()
    random = body.pull_bytes(32)
    session_id = body.pull_vector(1)
    suites = body.pull_list(2, 2)
    comps = body.pull_list(1, 1)
    exts: list[tuple[int, bytes]] | None = None
    if not body.eof():
        exts = []
        er = body.sub(2)
        while not er.eof():
            t = er.pull_u16()
            exts.append((t, er.pull_vector(2)))
    if not body.eof():
        raise DecodeError(f"{body.remaining()} trailing bytes after ClientHello extensions")
    return ClientHello(legacy_version, random, session_id, suites, comps, exts)


@dataclass
class SSLv2Hello:
    """An SSLv2-format CLIENT-HELLO (RFC 6101 appendix E / RFC 5246 E.2)."""

    version: int
    cipher_specs: list[int]  # 3-byte specs; TLS suites appear as 0x00XXYY
    session_id: bytes
    challenge: bytes

    def encode(self) -> bytes:
        specs = b"".join(s.to_bytes(3, "big") for s in self.cipher_specs)
        body = (
            u8(1)
            + u16(self.version)
            + u16(len(specs))
            + u16(len(self.session_id))
            + u16(len(self.challenge))
            + specs
            + self.session_id
            + self.challenge
        )
        return u16(0x8000 | len(body)) + body


def decode_sslv2_hello(data: bytes) -> SSLv2Hello:
    r = Reader(data)
    length = r.pull_u16()
    if not length & 0x8000:
        raise DecodeError("not a 2-byte-header SSLv2 record")
    body = Reader(r.pull_bytes(length & 0x7FFF))
    if body.pull_u8() != 1:
        raise DecodeError("SSLv2 record is not a CLIENT-HELLO")
    version = body.pull_u16()
    spec_len, sid_len, chal_len = body.pull_u16(), body.pull_u16(), body.pull_u16()
    if spec_len % 3:
        raise DecodeError("SSLv2 cipher spec length not a multiple of 3")
    specs_raw = body.pull_bytes(spec_len)
    specs = [int.from_bytes(specs_raw[i : i + 3], "big") for i in range(0, spec_len, 3)]
    return SSLv2Hello(version, specs, body.pull_bytes(sid_len), body.pull_bytes(chal_len))


# --- extension bodies -------------------------------------------------------------


def ext_server_name(host: str) -> bytes:
    name = host.encode("idna") if not host.isascii() else host.encode()
    return vec(u8(0) + vec(name, 2), 2)


def ext_u16_list(values: list[int]) -> bytes:
    """supported_groups, signature_algorithms(_cert)."""
    return int_list(values, 2, 2)


def ext_u8_list(values: list[int]) -> bytes:
    """ec_point_formats, psk_key_exchange_modes."""
    return int_list(values, 1, 1)


def ext_supported_versions(values: list[int]) -> bytes:
    return int_list(values, 2, 1)


def ext_alpn(protocols: list[str]) -> bytes:
    return vec(b"".join(vec(p.encode(), 1) for p in protocols), 2)


def ext_key_share(shares: list[tuple[int, bytes]]) -> bytes:
    return vec(b"".join(u16(g) + vec(k, 2) for g, k in shares), 2)


def ext_status_request() -> bytes:
    # OCSP, no responder ids, no request extensions
    return b"\x01\x00\x00\x00\x00"


def ext_renegotiation_info() -> bytes:
    return b"\x00"


def ext_compress_certificate(algorithms: list[int]) -> bytes:
    return int_list(algorithms, 2, 1)


def decode_server_name(body: bytes) -> str | None:
    r = Reader(body)
    lst = r.sub(2)
    while not lst.eof():
        kind = lst.pull_u8()
        name = lst.pull_vector(2)
        if kind == 0:
            # exactly as sent (a client's, maybe hostile): prober.wire.peertext
            return name.decode("utf-8", "surrogateescape")
    return None


def decode_alpn(body: bytes) -> list[str]:
    r = Reader(body).sub(2)
    out = []
    while not r.eof():
        out.append(r.pull_vector(1).decode("utf-8", "surrogateescape"))
    return out


def decode_key_share_client(body: bytes) -> list[tuple[int, bytes]]:
    r = Reader(body).sub(2)
    out = []
    while not r.eof():
        g = r.pull_u16()
        out.append((g, r.pull_vector(2)))
    return out


# --- the buildable template -------------------------------------------------------


@dataclass
class KeyShareSpec:
    group: int
    # for groups whose keys we cannot compute: how many placeholder bytes to send
    length: int | None = None


@dataclass
class ExtSpec:
    """One extension of a template. ``body`` is literal except for the dynamic kinds."""

    type: int
    body: bytes = b""
    # server_name: filled with the attempt's SNI, or left out when it has none
    sni: bool = False
    key_shares: list[KeyShareSpec] | None = None
    # padding: either pad the whole record to pad_to bytes, or a fixed body length
    pad_to: int | None = None
    pad_len: int | None = None


@dataclass
class HelloSpec:
    record_version: int = 0x0301
    legacy_version: int = 0x0303
    cipher_suites: list[int] = field(default_factory=list)
    compression_methods: list[int] = field(default_factory=lambda: [0])
    extensions: list[ExtSpec] | None = field(default_factory=list)
    session_id: str = "random"  # "random" (32 bytes), "empty", or hex
    sslv2: bool = False
    # end the attempt at a HelloRetryRequest (it already says what the server chose)
    stop_after_hrr: bool = False

    def ext(self, ext_type: int) -> ExtSpec | None:
        for e in self.extensions or ():
            if e.type == ext_type:
                return e
        return None

    def offered_versions(self) -> list[int]:
        """Versions a server may legitimately choose, newest first, GREASE dropped."""
        sv = self.ext(ExtensionType.SUPPORTED_VERSIONS)
        if sv is not None:
            vs = Reader(sv.body).pull_list(1, 2)
            return [v for v in vs if v not in GREASE_VALUES]
        if self.sslv2:
            top = self.legacy_version
            return [v for v in _BEFORE_TLS13 if v <= top or v == 0x0002]
        return [v for v in _BEFORE_TLS13 if 0x0300 <= v <= self.legacy_version]

    def offered_suites(self) -> list[int]:
        """TLS cipher suites a server may choose (SSLv2 specs 0x00XXYY map to XXYY)."""
        if self.sslv2:
            return [s & 0xFFFF for s in self.cipher_suites if s >> 16 == 0]
        return list(self.cipher_suites)

    def offered_compression(self) -> list[int]:
        return [0] if self.sslv2 else list(self.compression_methods)

    def offered_groups(self) -> list[int]:
        sg = self.ext(ExtensionType.SUPPORTED_GROUPS)
        return [] if sg is None else Reader(sg.body).pull_list(2, 2)

    def offered_alpn(self) -> list[str]:
        a = self.ext(ExtensionType.ALPN)
        return [] if a is None else decode_alpn(a.body)


@dataclass
class BuiltHello:
    """One attempt's hello: the handshake message, what was offered, the private keys."""

    spec: HelloSpec
    hello: ClientHello | None
    message: bytes  # handshake message (TLS) or the whole SSLv2 record
    key_shares: dict[int, KeyShare]
    sni: str | None
    # the groups of the key_share entries sent, placeholders and GREASE included
    share_groups: tuple[int, ...] = ()

    def renewed(self) -> BuiltHello:
        """The same hello with a new random (and a new session id where the spec asks
        for a random one): what the next attempt of a profile sends when key shares may
        be reused.  Encoding once and patching those bytes keeps a long run from
        re-encoding an identical hello thousands of times."""
        h = self.hello
        if h is None:  # SSLv2: its challenge is the whole variable part; build anew
            return build(self.spec, self.sni)
        random = os.urandom(32)
        sid = os.urandom(32) if self.spec.session_id == "random" else h.session_id
        # header (4) + legacy_version (2), then random, session id length, session id
        msg = b"".join((self.message[:6], random, self.message[38:39], sid,
                        self.message[39 + len(sid):]))
        hello = replace(h, random=random, session_id=sid)
        return BuiltHello(self.spec, hello, msg, self.key_shares, self.sni, self.share_groups)

    def records(self, split: list[int] | None = None) -> bytes:
        """The hello framed as TLS records; ``split`` gives the sizes of the first fragments."""
        if self.spec.sslv2:
            return self.message
        return frame_records(self.message, self.spec.record_version, split)


def frame_records(message: bytes, record_version: int, split: list[int] | None = None,
                  content_type: int = ContentType.HANDSHAKE) -> bytes:
    out = []
    pos = 0
    for size in split or ():
        if pos >= len(message):
            break
        chunk = message[pos : pos + max(1, size)]
        out.append(chunk)
        pos += len(chunk)
    while pos < len(message):
        chunk = message[pos : pos + MAX_RECORD]
        out.append(chunk)
        pos += len(chunk)
    return b"".join(u8(content_type) + u16(record_version) + vec(c, 2) for c in out)


def _session_id(spec: HelloSpec) -> bytes:
    if spec.session_id == "random":
        return os.urandom(32)
    if spec.session_id == "empty":
        return b""
    return bytes.fromhex(spec.session_id)


def build(spec: HelloSpec, sni: str | None, *, fresh_keys: bool = False,
          random: bytes | None = None, session_id: bytes | None = None,
          key_share_override: list[KeyShareSpec] | None = None,
          extra_extensions: list[tuple[int, bytes]] | None = None) -> BuiltHello:
    """Build one attempt's ClientHello from a template.

    ``key_share_override`` and ``extra_extensions`` (a cookie) serve the second hello
    after a HelloRetryRequest, which must repeat random and session id.
    """
    if spec.sslv2:
        challenge = (random or os.urandom(32))[:16]
        v2 = SSLv2Hello(spec.legacy_version, list(spec.cipher_suites), b"", challenge)
        return BuiltHello(spec, None, v2.encode(), {}, sni)

    from prober.wire import keyshare as ks

    keys: dict[int, KeyShare] = {}
    share_groups: list[int] = []
    exts: list[tuple[int, bytes]] = []
    pad_index: int | None = None
    for e in spec.extensions or ():
        if e.sni:
            if sni is None:
                continue
            exts.append((e.type, ext_server_name(sni)))
        elif e.key_shares is not None:
            entries = []
            for s in key_share_override if key_share_override is not None else e.key_shares:
                if s.group in GREASE_VALUES:
                    entries.append((s.group, b"\x00"))
                    continue
                try:
                    k = ks.generate(s.group, fresh=fresh_keys)
                except ks.UnsupportedGroup:
                    n = s.length or ks.typical_share_length(s.group) or 32
                    entries.append((s.group, ks.placeholder_share(s.group, n)))
                    continue
                keys[s.group] = k
                entries.append((s.group, k.public))
            share_groups += [g for g, _ in entries]
            exts.append((e.type, ext_key_share(entries)))
        elif e.pad_to is not None or e.pad_len is not None:
            pad_index = len(exts)
            exts.append((e.type, b"\x00" * (e.pad_len or 0)))
        else:
            exts.append((e.type, e.body))
        if extra_extensions and e.type == ExtensionType.KEY_SHARE:
            # RFC 8446 4.1.2: the cookie goes into the second hello; place it after key_share
            exts.extend(extra_extensions)
    hello = ClientHello(
        legacy_version=spec.legacy_version,
        random=random or os.urandom(32),
        session_id=_session_id(spec) if session_id is None else session_id,
        cipher_suites=list(spec.cipher_suites),
        compression_methods=list(spec.compression_methods),
        extensions=exts if spec.extensions is not None else None,
    )
    if pad_index is not None:
        pad_spec = next(e for e in spec.extensions or ()
                        if e.pad_to is not None or e.pad_len is not None)
        if pad_spec.pad_to is not None and hello.extensions is not None:
            # pad so that the hello in a single record is pad_to bytes on the wire
            missing = max(0, pad_spec.pad_to - (len(hello.encode()) + 5))
            hello.extensions[pad_index] = (hello.extensions[pad_index][0], b"\x00" * missing)
    return BuiltHello(spec, hello, hello.encode(), keys, sni, tuple(share_groups))


def retry_hello(first: BuiltHello, group: int, cookie: bytes | None) -> BuiltHello:
    """The second ClientHello after a HelloRetryRequest asking for ``group``."""
    assert first.hello is not None
    extra = [(ExtensionType.COOKIE.value, vec(cookie, 2))] if cookie is not None else None
    return build(first.spec, first.sni, random=first.hello.random,
                 session_id=first.hello.session_id,
                 key_share_override=[KeyShareSpec(group)], extra_extensions=extra)


# --- captured bytes back to a template ---------------------------------------------


def read_client_hello(data: bytes) -> ClientHello | SSLv2Hello:
    """Parse a ClientHello from the bytes a client sent: TLS records (reassembled) or SSLv2."""
    if len(data) >= 3 and data[0] & 0x80 and data[2] == 1:
        return decode_sslv2_hello(data)
    r = Reader(data)
    msg = b""
    while not r.eof():
        ctype = r.pull_u8()
        r.pull_u16()
        frag = r.pull_vector(2)
        if ctype != ContentType.HANDSHAKE:
            raise DecodeError(f"record of content type {ctype} before the ClientHello ended")
        msg += frag
        if len(msg) >= 4 and len(msg) >= 4 + int.from_bytes(msg[1:4], "big"):
            break
    if len(msg) < 4:
        raise DecodeError("no complete handshake header")
    return decode_client_hello(msg[: 4 + int.from_bytes(msg[1:4], "big")])


def record_version_of(data: bytes) -> int:
    return int.from_bytes(data[1:3], "big") if len(data) >= 3 and not data[0] & 0x80 else 0x0002


def spec_from_hello(hello: ClientHello | SSLv2Hello, record_version: int = 0x0301,
                    session_id_mode: str | None = None) -> HelloSpec:
    """The template that rebuilds ``hello`` (same bytes but random, session id, key shares)."""
    if isinstance(hello, SSLv2Hello):
        return HelloSpec(record_version=0x0002, legacy_version=hello.version,
                         cipher_suites=list(hello.cipher_specs), compression_methods=[],
                         extensions=None, session_id="empty", sslv2=True)
    exts: list[ExtSpec] | None = None
    if hello.extensions is not None:
        exts = []
        for t, body in hello.extensions:
            if t == ExtensionType.SERVER_NAME:
                exts.append(ExtSpec(t, sni=True))
            elif t == ExtensionType.KEY_SHARE:
                shares = decode_key_share_client(body)
                exts.append(ExtSpec(t, key_shares=[KeyShareSpec(g, len(k)) for g, k in shares]))
            elif t == ExtensionType.PADDING:
                exts.append(ExtSpec(t, pad_len=len(body)))
            else:
                exts.append(ExtSpec(t, body))
    if session_id_mode is None:
        session_id_mode = "empty" if not hello.session_id else (
            "random" if len(hello.session_id) == 32 else hello.session_id.hex())
    return HelloSpec(record_version=record_version, legacy_version=hello.legacy_version,
                     cipher_suites=list(hello.cipher_suites),
                     compression_methods=list(hello.compression_methods),
                     extensions=exts, session_id=session_id_mode)
