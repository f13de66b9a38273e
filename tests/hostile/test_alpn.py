"""`ok` means the server chose parameters we offered: an ALPN protocol the hello never
offered (or an ALPN answer without exactly one protocol, RFC 7301 3.1) is
``bad-server-hello``, and the JSON still shows what the server chose, exactly."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from prober.profiles.families import version_profile
from prober.wire import serverflight as sf
from prober.wire.buffer import u16, u24, vec
from prober.wire.clienthello import build
from prober.wire.constants import ExtensionType, HandshakeType
from prober.wire.serverflight import FlightReader
from tests.hostile.alpn import alpn_extension, alpn_profile
from tests.hostile.certs import good_certificate
from tests.hostile.cli import probe_one
from tests.hostile.tls13_server import Answer, HostileTls13, Session

Hostile = Callable[[Answer], HostileTls13]


def choosing(ext_body: bytes | None) -> Answer:
    """A whole, verifying flight whose EncryptedExtensions holds ``ext_body`` as ALPN."""
    def answer(s: Session) -> bytes:
        exts = (u16(ExtensionType.ALPN) + vec(ext_body, 2)) if ext_body is not None else b""
        ee = s.message(HandshakeType.ENCRYPTED_EXTENSIONS, vec(exts, 2))
        return s.seal(ee + s.certificate(good_certificate()) + s.certificate_verify()
                      + s.finished())
    return answer


def names(*protocols: bytes) -> bytes:
    return vec(b"".join(vec(p, 1) for p in protocols), 2)


def test_alpn_when_none_was_offered(tmp_path: Path, hostile: Hostile) -> None:
    srv = hostile(choosing(names(b"h2")))
    _, a = probe_one(tmp_path, srv.port, "tls1.3-only")
    assert a["outcome"] == "bad-server-hello", a["detail"]
    assert a["detail"] == "server chose ALPN protocol b'h2', but the hello offered no ALPN"
    assert a["negotiated"]["alpn"] == "h2"
    assert a["negotiated"]["decrypted"] is True


@pytest.mark.parametrize(("chosen", "want"), [
    (b"http/1.1", "http/1.1"),
    (b"h2\xff\x1b[2J", {"hex": (b"h2\xff\x1b[2J").hex()}),
], ids=["another-protocol", "bytes"])
def test_alpn_not_among_those_offered(tmp_path: Path, hostile: Hostile, chosen: bytes,
                                      want: object) -> None:
    srv = hostile(choosing(names(chosen)))
    profile = alpn_profile(tmp_path, "offers-h2", b"h2")
    run, a = probe_one(tmp_path, srv.port, str(profile))
    assert a["outcome"] == "bad-server-hello", a["detail"]
    assert a["detail"] == f"server chose ALPN protocol {chosen!r}, not offered"
    assert a["negotiated"]["alpn"] == want
    assert "\x1b" not in run.stdout


@pytest.mark.parametrize("body", [names(), names(b"h2", b"h2")], ids=["empty", "two"])
def test_alpn_answer_must_name_one_protocol(tmp_path: Path, hostile: Hostile,
                                            body: bytes) -> None:
    srv = hostile(choosing(body))
    profile = alpn_profile(tmp_path, "offers-h2", b"h2")
    _, a = probe_one(tmp_path, srv.port, str(profile))
    assert a["outcome"] == "bad-server-hello", a["detail"]
    assert "exactly one" in a["detail"]


def test_offered_alpn_is_ok(tmp_path: Path, hostile: Hostile) -> None:
    srv = hostile(choosing(names(b"h2")))
    profile = alpn_profile(tmp_path, "offers-h2", b"h2")
    _, a = probe_one(tmp_path, srv.port, str(profile))
    assert a["outcome"] == "ok", a["detail"]
    assert a["negotiated"]["alpn"] == "h2"
    assert a["detail"].endswith("ALPN h2")


# -- TLS 1.2: the choice is in the ServerHello ---------------------------------------------


def tls12_server_hello(ext: bytes) -> bytes:
    """A ServerHello choosing TLS 1.2 and TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (which
    tls1.2-only offers), carrying ``ext`` as its extensions."""
    body = u16(0x0303) + os.urandom(32) + vec(b"", 1) + u16(0xC02F) + b"\x00" + vec(ext, 2)
    msg = bytes([HandshakeType.SERVER_HELLO]) + u24(len(body)) + body
    return bytes([22, 3, 3]) + u16(len(msg)) + msg


def test_tls12_server_hello_with_an_alpn_never_offered() -> None:
    built = build(version_profile("tls1.2-only").spec, None)
    reader = FlightReader(built)
    reader.feed(tls12_server_hello(alpn_extension(b"h2")))
    f = reader.flight
    assert f.status == sf.BAD
    assert f.error == "server chose ALPN protocol b'h2', but the hello offered no ALPN"
    assert f.alpn == "h2"
