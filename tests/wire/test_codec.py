"""The wire codec on bytes: hellos from real clients parse and rebuild byte for byte,
generated profiles round-trip, and the reply parser never raises on any input."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.profiles import families
from prober.profiles.compile import compile_hello, hello_to_doc
from prober.profiles.importer import doc_from_hello
from prober.profiles.loader import profile_from_doc
from prober.wire.clienthello import (
    ClientHello,
    SSLv2Hello,
    build,
    decode_client_hello,
    read_client_hello,
    record_version_of,
    spec_from_hello,
)
from prober.wire.constants import ExtensionType
from prober.wire.serverflight import FlightReader
from tests.peers.lifecycle import wait_count
from tests.peers.misbehaving import HelloRecorder

SHARED_CLIENTS = Path(__file__).resolve().parents[2] / "prober" / "data" / "clients.json"


def _published_hellos() -> list[tuple[str, bytes]]:
    if not SHARED_CLIENTS.exists():
        return []
    data = json.loads(SHARED_CLIENTS.read_text())
    return [(c["short"], bytes.fromhex(c["hello_hex"])) for c in data["clients"]
            if c.get("hello_hex")]


def _normalise(raw_hello: ClientHello) -> ClientHello:
    """Blank the fields a replay changes: random, session id, key shares, SNI."""
    from prober.wire.clienthello import decode_key_share_client, ext_key_share

    exts = []
    for t, b in raw_hello.extensions or ():
        if t == ExtensionType.KEY_SHARE:
            b = ext_key_share([(g, b"\0" * len(k)) for g, k in decode_key_share_client(b)])
        if t == ExtensionType.SERVER_NAME:
            b = b"SNI"
        exts.append((t, b))
    return ClientHello(raw_hello.legacy_version, b"\0" * 32, b"\0" * len(raw_hello.session_id),
                       raw_hello.cipher_suites, raw_hello.compression_methods,
                       exts if raw_hello.extensions is not None else None)


def _rebuild_matches(raw: bytes) -> None:
    hello = read_client_hello(raw)
    spec = spec_from_hello(hello, record_version_of(raw))
    if isinstance(hello, SSLv2Hello):
        again = build(spec, None)
        rebuilt = read_client_hello(again.message)
        assert isinstance(rebuilt, SSLv2Hello)
        assert rebuilt.cipher_specs == hello.cipher_specs
        assert rebuilt.version == hello.version
        return
    sni = None
    from prober.wire.clienthello import decode_server_name

    body = hello.extension(ExtensionType.SERVER_NAME)
    if body is not None:
        sni = decode_server_name(body)
    # through the profile document too: parse -> doc -> compile -> build
    spec2 = compile_hello(hello_to_doc(spec))
    for s in (spec, spec2):
        again = build(s, sni)
        assert again.hello is not None
        assert _normalise(again.hello).encode() == _normalise(hello).encode()
        assert len(again.message) == len(hello.encode())
        # the record framing is the same too
        assert again.records()[:3] == raw[:3]


@pytest.mark.parametrize("short,raw", _published_hellos(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_published_hellos_rebuild_byte_identical(short: str, raw: bytes) -> None:
    _rebuild_matches(raw)


def test_published_hellos_present() -> None:
    hellos = _published_hellos()
    if not hellos:
        pytest.skip(f"{SHARED_CLIENTS} not present")
    assert len(hellos) >= 170


@pytest.mark.parametrize("name", [*families.VERSION_FAMILY, "cipher:ECDHE-RSA-AES256-SHA",
                                  "cipher:TLS_AES_128_GCM_SHA256", "group:X25519MLKEM768",
                                  "group:secp384r1", "group:ffdhe2048"])
def test_generated_profiles_round_trip(name: str) -> None:
    p = families.generated(name)
    assert p is not None
    built = build(p.spec, "demo.test")
    _rebuild_matches(built.records())


@pytest.mark.parametrize("name", ["tls1.2-only", "tls1.3-only", "sslv2-only", "chrome-101-win10",
                                  "chromium-156.0.8078.79"])
def test_renewed_hello_differs_only_in_random_and_session_id(name: str) -> None:
    from prober.profiles.loader import resolve

    p = families.generated(name) or resolve(name)[0]
    first = build(p.spec, "demo.test")
    again = first.renewed()
    if first.hello is None:  # SSLv2: the challenge is all that varies
        assert len(again.message) == len(first.message) and again.message != first.message
        return
    a, b = decode_client_hello(first.message), decode_client_hello(again.message)
    assert again.hello is not None
    assert a.random != b.random and b.random == again.hello.random
    assert (a.session_id == b.session_id) == (p.spec.session_id != "random")
    assert len(b.session_id) == len(a.session_id)
    assert replace(b, random=a.random, session_id=a.session_id) == a
    assert again.key_shares is first.key_shares


def _capture_hello(cmd: list[str]) -> bytes:
    """Run a real client against a listener that records its first flight, then closes."""
    with HelloRecorder() as srv:
        full = [c.replace("PORT", str(srv.port)) for c in cmd]
        subprocess.run(full, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        got = wait_count(lambda: list(srv.hellos), 1, 5)
    assert got and got[0], f"no hello captured from {cmd[0]}"
    return got[0]


REAL_CLIENTS = {
    "openssl-s_client": ["openssl", "s_client", "-connect", "127.0.0.1:PORT",
                         "-servername", "demo.test"],
    "openssl-s_client-tls1.2": ["openssl", "s_client", "-connect", "127.0.0.1:PORT",
                                "-tls1_2", "-servername", "demo.test"],
    "curl": ["curl", "-sk", "--max-time", "5", "--resolve", "demo.test:PORT:127.0.0.1",
             "https://demo.test:PORT/"],
    "python-ssl": ["python3", "-c",
                   "import socket,ssl;c=ssl.create_default_context();"
                   "c.check_hostname=False;c.verify_mode=ssl.CERT_NONE;"
                   "s=socket.create_connection(('127.0.0.1',PORT));"
                   "c.wrap_socket(s,server_hostname='demo.test')"],
}


@pytest.mark.parametrize("client", sorted(REAL_CLIENTS))
def test_real_client_hello_parses_and_rebuilds(client: str) -> None:
    cmd = REAL_CLIENTS[client]
    import shutil

    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} not installed")
    raw = _capture_hello(cmd)
    _rebuild_matches(raw)
    # and it becomes a loadable profile
    doc = doc_from_hello(raw, name=f"captured-{client}", origin="captured")
    prof = profile_from_doc(doc, "<test>")
    assert prof.spec.cipher_suites == read_client_hello(raw).cipher_suites  # type: ignore[union-attr]


def test_padding_to_total_size() -> None:
    doc = families.tls13_doc(["TLS_AES_128_GCM_SHA256"])
    doc["extensions"].append({"padding": {"to": 4096}})
    built = build(compile_hello(doc), "demo.test")
    assert len(built.records()) == 4096


def test_records_and_split() -> None:
    p = families.generated("tls1.2-only")
    assert p is not None
    built = build(p.spec, "demo.test")
    one = built.records()
    split = built.records([10, 20])
    assert len(split) == len(one) + 10  # two extra 5-byte headers
    assert read_client_hello(split).encode() == built.message


def test_grease_and_scsv_survive() -> None:
    doc = families.tls13_doc(["TLS_AES_128_GCM_SHA256"], legacy=["ECDHE-RSA-AES128-GCM-SHA256"])
    doc["cipher_suites"] = ["GREASE_0x1A1A", *doc["cipher_suites"], "TLS_FALLBACK_SCSV",
                            "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"]
    doc["extensions"].insert(0, {"grease": "0x2A2A"})
    spec = compile_hello(doc)
    hello = build(spec, None).hello
    assert hello is not None
    assert hello.cipher_suites[0] == 0x1A1A
    assert hello.cipher_suites[-2:] == [0x5600, 0x00FF]
    assert hello.extensions is not None and hello.extensions[0] == (0x2A2A, b"")
    # no SNI requested: no server_name extension
    assert hello.extension(ExtensionType.SERVER_NAME) is None


@settings(max_examples=600, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=6))
def test_reply_parser_never_raises(chunks: list[bytes]) -> None:
    p = families.generated("tls1.3-only")
    assert p is not None
    reader = FlightReader(build(p.spec, "demo.test"))
    for c in chunks:
        reader.feed(c)
    assert reader.flight.status in ("pending", "complete", "alert", "not-tls", "bad")


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.sampled_from(
    [b"\x16\x03\x03", b"\x16\x03\x01\x00\x30\x02\x00\x00\x2c\x03\x03", b"\x15\x03\x03\x00\x02",
     b"\x80\x2e\x04"]))
def test_reply_parser_never_raises_tls_prefixed(tail: bytes, head: bytes) -> None:
    for name in ("tls1.2-only", "sslv2-only", "tls1.3-only"):
        p = families.generated(name)
        assert p is not None
        reader = FlightReader(build(p.spec, "demo.test"))
        reader.feed(head + tail)
        assert reader.flight.status in ("pending", "complete", "alert", "not-tls", "bad")
