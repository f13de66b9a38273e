"""An encrypted TLS 1.3 record whose plaintext is all zero padding (RFC 8446 5.4: no
content type, unexpected_message), and the flight reader's contract that any bytes give
an outcome and never an exception."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from prober.profiles.families import version_profile
from prober.wire import serverflight as sf
from prober.wire.clienthello import BuiltHello, ClientHello, build
from prober.wire.serverflight import FlightReader
from tests.hostile.certs import BROKEN, good_certificate
from tests.hostile.cli import probe_one
from tests.hostile.tls13_server import (
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    Answer,
    HostileTls13,
    Session,
    open_session,
    record,
)

Hostile = Callable[[Answer], HostileTls13]


def all_padding_after_encrypted_extensions(s: Session) -> bytes:
    return s.seal(s.encrypted_extensions()) + s.seal_inner(bytes(20))


def test_all_padding_record_is_bad_server_hello(tmp_path: Path, hostile: Hostile) -> None:
    srv = hostile(all_padding_after_encrypted_extensions)
    _, a = probe_one(tmp_path, srv.port, "tls1.3-only")
    assert a["outcome"] == "bad-server-hello", a["detail"]
    assert "all zero padding" in a["detail"]
    assert a["negotiated"]["decrypted"] is True
    assert a["server_messages"] == ["server_hello", "encrypted_extensions"]


def test_all_padding_first_record(tmp_path: Path, hostile: Hostile) -> None:
    srv = hostile(lambda s: s.seal_inner(bytes(1)))
    _, a = probe_one(tmp_path, srv.port, "tls1.3-only")
    assert a["outcome"] == "bad-server-hello", a["detail"]
    assert "all zero padding" in a["detail"]


# -- the reader alone -----------------------------------------------------------------


def tls13_hello() -> BuiltHello:
    return build(version_profile("tls1.3-only").spec, None)


def server_flight(built: BuiltHello, answer: Answer) -> bytes:
    """What HostileTls13 would send to this hello."""
    assert isinstance(built.hello, ClientHello)
    session, sh = open_session(built.hello)
    return record(HANDSHAKE, sh) + record(CHANGE_CIPHER_SPEC, b"\x01") + answer(session)


@pytest.mark.parametrize("chunk", [None, 1, 7], ids=["whole", "byte-by-byte", "7-bytes"])
def test_reader_all_padding_record(chunk: int | None) -> None:
    built = tls13_hello()
    data = server_flight(built, all_padding_after_encrypted_extensions)
    reader = FlightReader(built)
    step = chunk or len(data)
    for i in range(0, len(data), step):
        assert reader.feed(data[i : i + step]) == b""
    f = reader.flight
    assert f.status == sf.BAD
    assert f.error is not None and "all zero padding" in f.error
    assert f.messages == ["server_hello", "encrypted_extensions"]
    assert f.bytes_received == len(data)


def test_reader_whole_flight_is_complete() -> None:
    built = tls13_hello()
    reader = FlightReader(built)
    reader.feed(server_flight(built, lambda s: s.whole_flight(good_certificate())))
    assert reader.flight.status == sf.COMPLETE
    assert reader.flight.certificates == [good_certificate()]


def test_feed_turns_any_exception_into_bad_server_hello(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    built = tls13_hello()

    def broken(*args: object) -> bytes:
        raise KeyError("a parser bug")

    monkeypatch.setattr(FlightReader, "_record", broken)
    reader = FlightReader(built)
    assert reader.feed(server_flight(built, lambda s: b"")) == b""
    assert reader.flight.status == sf.BAD
    assert reader.flight.error == "unreadable server flight (KeyError: 'a parser bug')"
    assert reader.feed(b"\x16\x03\x03\x00\x01\x00") == b""  # done: later bytes are ignored


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(4)
        pos = rng.randrange(len(b) + 1)
        if kind == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif kind == 1:
            del b[pos : pos + rng.randint(1, 8)]
        elif kind == 2:
            b[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:  # a length field's worth of 0xff
            b[pos:pos] = b"\xff\xff\xff"
    return bytes(b)


@pytest.mark.parametrize("seed", range(4))
def test_reader_never_raises_on_mangled_plaintext(seed: int) -> None:
    """Correctly encrypted records whose handshake plaintext is mangled (or a mangled
    ServerHello): every one ends as an outcome, and none through the catch-all (which
    would mean a parser hole this test found)."""
    rng = random.Random(seed)
    ders = [good_certificate()] + [make() for make, _kind in BROKEN.values()]
    for _ in range(150):
        built = tls13_hello()
        der = rng.choice(ders)
        mangle_hello = rng.random() < 0.25

        def answer(s: Session, der: bytes = der, mangle: bool = mangle_hello) -> bytes:
            msgs = (s.encrypted_extensions() + s.certificate(der) + s.certificate_verify()
                    + s.finished())
            return s.seal(msgs if mangle else _mutate(rng, msgs), padding=rng.randrange(3))

        assert isinstance(built.hello, ClientHello)
        session, sh = open_session(built.hello)
        if mangle_hello:
            sh = _mutate(rng, sh)
        data = record(HANDSHAKE, sh) + answer(session)
        reader = FlightReader(built)
        step = rng.choice([len(data), 1, rng.randint(2, 64)])
        for i in range(0, len(data), step):
            reader.feed(data[i : i + step])  # never raises
        f = reader.flight
        assert f.status in (sf.PENDING, sf.COMPLETE, sf.BAD, sf.ALERT), f
        assert not (f.error or "").startswith("unreadable server flight"), f.error
