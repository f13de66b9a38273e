"""The ServerHello codec (prober/wire/serverhello.py): push -> pull round trips, what
malformed input raises, the canned TLS 1.2 flight, and the flight reader's use of it."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.profiles import variants
from prober.profiles.families import version_profile
from prober.wire.buffer import DecodeError, Reader, u8, u16, u24, vec
from prober.wire.clienthello import BuiltHello, build, frame_records
from prober.wire.constants import (
    DOWNGRADE_TLS11,
    DOWNGRADE_TLS12,
    HRR_RANDOM,
    ExtensionType,
    HandshakeType,
)
from prober.wire.serverflight import BAD, COMPLETE, FlightReader
from prober.wire.serverhello import (
    ServerHello,
    ext_alpn_choice,
    ext_cookie,
    ext_hrr_key_share,
    ext_selected_version,
    ext_server_key_share,
    pull_server_hello,
    push_server_hello,
)
from tests.peers.tls_bytes import load_tls12_flight, records

X25519, SECP384R1 = 0x001D, 0x0018

TLS12 = ServerHello(
    legacy_version=0x0303, random=bytes(range(32)), session_id=bytes(32),
    cipher_suite=0xC02F, compression_method=0,
    extensions=((ExtensionType.RENEGOTIATION_INFO, b"\x00"),
                (ExtensionType.EXTENDED_MASTER_SECRET, b""),
                (ExtensionType.EC_POINT_FORMATS, b"\x01\x00"),
                (ExtensionType.ALPN, ext_alpn_choice("h2"))))
TLS13 = ServerHello(
    legacy_version=0x0303, random=bytes(range(100, 132)), session_id=b"\x07" * 32,
    cipher_suite=0x1301,
    extensions=((ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0304)),
                (ExtensionType.KEY_SHARE, ext_server_key_share(X25519, b"\x42" * 32))))
HRR = ServerHello(
    legacy_version=0x0303, random=HRR_RANDOM, session_id=b"\x07" * 32, cipher_suite=0x1302,
    extensions=((ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0304)),
                (ExtensionType.KEY_SHARE, ext_hrr_key_share(SECP384R1)),
                (ExtensionType.COOKIE, ext_cookie(b"state"))))


def pull(msg: bytes, *, strict: bool = True) -> ServerHello:
    return pull_server_hello(Reader(msg), strict=strict)


# -- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("hello", [TLS12, TLS13, HRR], ids=["tls1.2", "tls1.3", "hrr"])
def test_round_trip(hello: ServerHello) -> None:
    msg = push_server_hello(hello)
    assert msg[0] == HandshakeType.SERVER_HELLO
    assert int.from_bytes(msg[1:4], "big") == len(msg) - 4
    assert pull(msg) == hello
    assert push_server_hello(pull(msg)) == msg


def test_tls12_fields() -> None:
    h = pull(push_server_hello(TLS12))
    assert h.selected_version == 0x0303
    assert not h.is_hello_retry_request
    assert h.alpn == "h2"
    assert h.key_share is None
    assert h.downgrade_sentinel is None
    assert h.extension_types == [0xFF01, 23, 11, 16]
    assert h.extension(ExtensionType.EXTENDED_MASTER_SECRET) == b""  # present, empty
    assert h.extension(ExtensionType.SESSION_TICKET) is None


def test_tls13_fields() -> None:
    h = pull(push_server_hello(TLS13))
    assert h.legacy_version == 0x0303 and h.selected_version == 0x0304
    assert not h.is_hello_retry_request
    assert h.key_share == (X25519, b"\x42" * 32)
    assert h.alpn is None  # TLS 1.3 sends it in EncryptedExtensions


def test_hello_retry_request_fields() -> None:
    h = pull(push_server_hello(HRR))
    assert h.is_hello_retry_request
    assert h.selected_version == 0x0304
    assert h.selected_group == SECP384R1
    assert h.cookie == b"state"


def test_no_extensions_block_and_an_empty_one_stay_apart() -> None:
    bare = ServerHello(0x0301, bytes(32), b"", 0x002F)
    empty = ServerHello(0x0301, bytes(32), b"", 0x002F, extensions=())
    assert len(push_server_hello(empty)) == len(push_server_hello(bare)) + 2
    assert pull(push_server_hello(bare)).extensions is None
    assert pull(push_server_hello(empty)).extensions == ()
    assert pull(push_server_hello(bare)).selected_version == 0x0301
    assert pull(push_server_hello(bare)).extension_types == []


def test_pull_leaves_the_reader_after_the_message() -> None:
    r = Reader(push_server_hello(TLS12) + b"\x0e\x00\x00\x00")  # ServerHelloDone next
    assert pull_server_hello(r) == TLS12
    assert r.pull_u8() == HandshakeType.SERVER_HELLO_DONE


@pytest.mark.parametrize("version,tail,expected", [
    (0x0303, DOWNGRADE_TLS12, "TLSv1.2"),
    (0x0302, DOWNGRADE_TLS11, "TLSv1.1"),
    (0x0301, DOWNGRADE_TLS11, "TLSv1.1"),
    (0x0303, DOWNGRADE_TLS11, None),  # the 1.1 marker in a 1.2 hello means nothing
    (0x0302, DOWNGRADE_TLS12, None),
    (0x0303, bytes(8), None),
])
def test_downgrade_sentinel(version: int, tail: bytes, expected: str | None) -> None:
    h = ServerHello(version, bytes(24) + tail, b"", 0xC02F, extensions=())
    assert pull(push_server_hello(h)).downgrade_sentinel == expected


def test_duplicate_extension_last_one_counts() -> None:
    # what the flight reader has always done with a hello RFC 8446 4.2 forbids
    h = ServerHello(0x0303, bytes(32), b"", 0x1301, extensions=(
        (ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0303)),
        (ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0304))))
    assert pull(push_server_hello(h)).selected_version == 0x0304
    assert pull(push_server_hello(h)).extension_types == [43, 43]


def test_replace_rereads_the_extensions() -> None:
    # the lookup table is derived at construction; replace() constructs anew
    tls12 = ((ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0303)),)
    h = replace(TLS13, extensions=tls12)
    assert h.selected_version == 0x0303 and h.key_share is None
    assert TLS13.selected_version == 0x0304


_ext = st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40))


@settings(max_examples=200, deadline=None)
@given(st.builds(
    ServerHello, legacy_version=st.integers(0, 0xFFFF), random=st.binary(min_size=32, max_size=32),
    session_id=st.binary(max_size=255), cipher_suite=st.integers(0, 0xFFFF),
    compression_method=st.integers(0, 255),
    extensions=st.none() | st.lists(_ext, max_size=6).map(tuple)))
def test_round_trip_any(hello: ServerHello) -> None:
    assert pull(push_server_hello(hello)) == hello


# -- malformed input ---------------------------------------------------------------


def test_every_truncation_raises() -> None:
    for msg in (push_server_hello(TLS12), push_server_hello(TLS13), push_server_hello(HRR)):
        for cut in range(len(msg)):
            with pytest.raises(DecodeError):
                pull(msg[:cut])


def _with_body(body: bytes) -> bytes:
    return u8(HandshakeType.SERVER_HELLO) + u24(len(body)) + body


_HEAD = u16(0x0303) + bytes(32) + vec(b"", 1) + u16(0x1301) + u8(0)


@pytest.mark.parametrize("msg,reason", [
    (u8(HandshakeType.CLIENT_HELLO) + push_server_hello(TLS12)[1:], "not a ServerHello"),
    (_with_body(_HEAD[:20]), "need 32 bytes"),
    (_with_body(u16(0x0303) + bytes(32) + b"\x20"), "need 32 bytes"),  # session id
    (_with_body(_HEAD + u16(10) + u16(43) + u16(2) + u16(0x0304)), "overruns"),
    (_with_body(_HEAD + vec(u16(43) + u16(9) + u16(0x0304), 2)), "need 9 bytes"),
    (_with_body(_HEAD + vec(u16(43) + b"\x00", 2)), "need 2 bytes"),
    (_with_body(_HEAD + b"\x00"), "need 2 bytes"),  # half an extensions length
    (_with_body(_HEAD + vec(b"", 2) + b"\x00"), "1 trailing bytes"),
], ids=["type", "short-random", "sid-overrun", "block-overrun", "ext-overrun", "ext-header",
        "block-length", "trailing"])
def test_malformed_raises(msg: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        pull(msg)


def test_trailing_bytes_pass_when_not_strict() -> None:
    msg = _with_body(_HEAD + vec(u16(43) + vec(u16(0x0304), 2), 2) + b"junk")
    h = pull(msg, strict=False)
    assert h.extensions == ((43, b"\x03\x04"),)


@pytest.mark.parametrize("ext,prop", [
    ((ExtensionType.SUPPORTED_VERSIONS, b"\x03"), "selected_version"),
    ((ExtensionType.KEY_SHARE, u16(X25519) + u16(32) + bytes(8)), "key_share"),
    ((ExtensionType.KEY_SHARE, b"\x00\x1d\x00"), "selected_group"),
    ((ExtensionType.COOKIE, u16(5) + b"ab"), "cookie"),
    ((ExtensionType.ALPN, u16(4) + b"\x02h"), "alpn"),
])
def test_malformed_extension_body_raises_when_read(ext: tuple[int, bytes], prop: str) -> None:
    # pull keeps bodies raw: a bad one fails only the property that decodes it
    h = pull(push_server_hello(ServerHello(0x0303, bytes(32), b"", 0x1301, extensions=(ext,))))
    with pytest.raises(DecodeError):
        getattr(h, prop)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_pull_raises_only_decode_error(data: bytes) -> None:
    try:
        pull(b"\x02" + data)
    except DecodeError:
        pass


# -- the canned TLS 1.2 flight (tests/wire/data, recorded from openssl s_server) --------


def test_canned_tls12_flight() -> None:
    flight = load_tls12_flight()
    handshake = b"".join(p for t, _v, p in records(flight) if t == 22)
    r = Reader(handshake)
    h = pull_server_hello(r)
    assert h.legacy_version == h.selected_version == 0x0303
    assert h.cipher_suite == 0xC02F  # ECDHE-RSA-AES128-GCM-SHA256, what it was made with
    assert h.compression_method == 0
    assert len(h.session_id) == 32
    assert not h.is_hello_retry_request and h.downgrade_sentinel is None
    assert h.extension_types == [ExtensionType.RENEGOTIATION_INFO,
                                 ExtensionType.EC_POINT_FORMATS,
                                 ExtensionType.EXTENDED_MASTER_SECRET]
    assert push_server_hello(h) == handshake[: r.pos]
    assert handshake[r.pos] == HandshakeType.CERTIFICATE

    # the flight reader reports what the codec reads
    built = build(version_profile("tls1.2-only").spec, None)
    reader = FlightReader(built)
    reader.feed(flight)
    f = reader.flight
    assert f.status == COMPLETE
    assert (f.version, f.suite, f.compression) == (0x0303, 0xC02F, 0)
    assert f.server_extensions == h.extension_types
    assert f.secure_renegotiation and f.extended_master_secret and not f.session_ticket


# -- the flight reader over pushed hellos --------------------------------------------


def _feed(built: BuiltHello, hello: ServerHello, *, tail: bytes = b""
          ) -> tuple[bytes, FlightReader]:
    reader = FlightReader(built)
    reply = reader.feed(frame_records(push_server_hello(hello) + tail, 0x0303))
    return reply, reader


def _tls12_built() -> BuiltHello:
    # offering h2: an ALPN choice the hello never offered is bad-server-hello
    spec = variants.with_extension(version_profile("tls1.2-only").spec,
                                   variants.extension("alpn", ["h2", "http/1.1"]))
    return build(spec, None)


def _tls13_built() -> BuiltHello:
    return build(version_profile("tls1.3-only").spec, None)


def test_reader_tls12_hello_then_done() -> None:
    _, reader = _feed(_tls12_built(), TLS12, tail=b"\x0e\x00\x00\x00")
    f = reader.flight
    assert f.status == COMPLETE
    assert f.alpn == "h2" and f.secure_renegotiation and f.extended_master_secret
    assert f.messages == ["server_hello", "server_hello_done"]


def test_reader_trailing_bytes_in_server_hello_still_complete() -> None:
    # not strict in the reader: a hello with bytes after its extensions has never failed
    msg = push_server_hello(TLS12)
    msg = u8(msg[0]) + u24(len(msg) - 4 + 3) + msg[4:] + b"xyz"
    reader = FlightReader(_tls12_built())
    reader.feed(frame_records(msg + b"\x0e\x00\x00\x00", 0x0303))
    assert reader.flight.status == COMPLETE


def test_reader_hello_retry_request_sends_second_hello() -> None:
    built = _tls13_built()
    hrr = ServerHello(0x0303, HRR_RANDOM, built.hello.session_id if built.hello else b"",
                      0x1301, extensions=(
                          (ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0304)),
                          (ExtensionType.KEY_SHARE, ext_hrr_key_share(SECP384R1)),
                          (ExtensionType.COOKIE, ext_cookie(b"state"))))
    reply, reader = _feed(built, hrr)
    assert reader.flight.hrr_group == SECP384R1
    assert reader.flight.messages == ["hello_retry_request"]
    assert reader.built.hello is not None
    assert reader.built.hello.extension(ExtensionType.COOKIE) == ext_cookie(b"state")
    assert reply == frame_records(reader.built.message, built.spec.record_version)


@pytest.mark.parametrize("key_share", [None, b"\x00\x18\x00", b"\x00"])
def test_reader_hello_retry_request_without_a_group(key_share: bytes | None) -> None:
    exts: tuple[tuple[int, bytes], ...] = (
        (ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0304)),)
    if key_share is not None:
        exts += ((ExtensionType.KEY_SHARE, key_share),)
    _, reader = _feed(_tls13_built(), ServerHello(0x0303, HRR_RANDOM, b"", 0x1301, extensions=exts))
    assert reader.flight.status == BAD
    assert reader.flight.error == "HelloRetryRequest without a selected group"


def test_reader_tls13_hello_with_unsent_share_group() -> None:
    h = ServerHello(0x0303, os.urandom(32), b"", 0x1301, extensions=(
        (ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0304)),
        (ExtensionType.KEY_SHARE, ext_server_key_share(SECP384R1, bytes(97)))))
    _, reader = _feed(_tls13_built(), h)
    assert reader.flight.error == "server key_share for group 0x0018, for which we sent no share"
