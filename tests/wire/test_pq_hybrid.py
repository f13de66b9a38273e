"""Hybrid post-quantum key exchange against an independent TLS 1.3 peer (tlslite-ng).

The system OpenSSL (3.0) has no ML-KEM, so these tests use tlslite-ng, whose hybrid
groups (X25519MLKEM768 0x11EC, SecP256r1MLKEM768 0x11EB, SecP384r1MLKEM1024 0x11ED)
are built on kyber-py.  The server offers only the hybrid group, so a handshake that
reaches the server's Finished proves that prober's key share was accepted (tlslite-ng
checks its length and encapsulates to it) and ``negotiated.decrypted`` proves prober
derived the same shared secret (ML-KEM decapsulation + ECDH) as the server.

tlslite-ng comes with the ``dev`` extra.  When it is missing (or built without ML-KEM)
the tests skip locally and fail in CI (env ``CI=true``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.cli.main import main
from prober.profiles.compile import compile_hello
from prober.profiles.families import tls13_doc
from tests.conftest import missing
from tests.peers.tlslite_server import IMPORT_ERROR, Handshake, TlsliteServer, hybrid_groups

# how a handshake may end on the server side when the client (prober) stops after the
# server's Finished: the client closes or resets instead of sending its own Finished
_CLIENT_WENT_AWAY = ("ConnectionResetError", "TLSAbruptCloseError", "BrokenPipeError",
                     "TLSRemoteAlert")


def _require(group: str) -> None:
    if IMPORT_ERROR is not None:
        missing(IMPORT_ERROR)
    if group not in hybrid_groups():
        missing(f"tlslite-ng has no {group} (needs tlslite-ng>=0.8.2 with kyber-py)")


@pytest.fixture
def tlslite_factory() -> Iterator[Callable[..., TlsliteServer]]:
    from tests.peers.factory import started_peers

    def make(groups: list[str], **kwargs: Any) -> TlsliteServer:
        for g in groups:
            _require(g)
        return TlsliteServer(groups, **kwargs)

    with started_peers(make) as factory:
        yield factory


def _probe(tmp_path: Path, port: int, profile: str) -> dict[str, Any]:
    out = tmp_path / "probe.json"
    rc = main(["probe", f"127.0.0.1:{port}", "-p", profile, "-q", "--json", str(out),
               "-c", "1", "-t", "20"])
    assert rc == 0
    attempts: list[dict[str, Any]] = json.loads(out.read_text())["attempts"]
    assert len(attempts) == 1, attempts
    return attempts[0]


def _server_side(srv: TlsliteServer) -> Handshake:
    recs = srv.handshakes()
    for _ in range(100):  # the handler records after the client has gone away
        if recs:
            break
        time.sleep(0.05)
        recs = srv.handshakes()
    assert len(recs) == 1, recs
    return recs[0]


def _assert_hybrid_ok(a: dict[str, Any], group: str, *, big_hello: bool = True) -> None:
    assert a["outcome"] == "ok", (a["outcome"], a.get("detail"), a.get("error"))
    neg = a["negotiated"]
    assert neg["version"] == "TLSv1.3"
    assert neg["group"] == group
    assert neg["decrypted"] is True
    assert "finished" in a["server_messages"]
    assert isinstance(a.get("certificate"), dict) and a["certificate"], a.get("certificate")
    if big_hello:
        # an ML-KEM-768 encapsulation key alone is 1184 bytes
        assert a["hello_bytes"] > 1200


def _assert_server_agrees(rec: Handshake, a: dict[str, Any], group: str) -> None:
    """tlslite-ng sent a ServerHello for the hybrid group and its encrypted flight."""
    assert rec.version == "TLSv1.3"
    assert rec.group == group
    assert rec.cipher == a["negotiated"]["suite"]
    assert rec.server_bytes > 1088  # the ML-KEM ciphertext alone is 1088+ bytes
    if not rec.completed:
        assert rec.error is not None and rec.error.startswith(_CLIENT_WENT_AWAY), rec.error


@pytest.mark.parametrize("group", ["X25519MLKEM768", "SecP256r1MLKEM768",
                                   "SecP384r1MLKEM1024"])
def test_group_profile_negotiates_hybrid(
    tmp_path: Path, tlslite_factory: Callable[..., TlsliteServer], group: str
) -> None:
    srv = tlslite_factory([group])
    a = _probe(tmp_path, srv.port, f"group:{group}")
    _assert_hybrid_ok(a, group)
    assert "hrr_group" not in a["negotiated"]
    rec = _server_side(srv)
    _assert_server_agrees(rec, a, group)
    assert rec.hrr_group is None


@pytest.mark.parametrize("cert", ["rsa", "ecdsa"])
def test_firefox_137_hello_negotiates_x25519mlkem768(
    tmp_path: Path, tlslite_factory: Callable[..., TlsliteServer], cert: str
) -> None:
    srv = tlslite_factory(["X25519MLKEM768"], cert=cert)
    a = _probe(tmp_path, srv.port, "firefox-137-win11")
    _assert_hybrid_ok(a, "X25519MLKEM768")
    assert "hrr_group" not in a["negotiated"]
    assert a["certificate"]["key_type"].lower().startswith(cert[:2])
    rec = _server_side(srv)
    _assert_server_agrees(rec, a, "X25519MLKEM768")
    assert rec.hrr_group is None


def test_firefox_137_compressed_certificate_is_reported(
    tmp_path: Path, tlslite_factory: Callable[..., TlsliteServer]
) -> None:
    srv = tlslite_factory(["X25519MLKEM768"], compress_certificate=True)
    a = _probe(tmp_path, srv.port, "firefox-137-win11")
    assert a["outcome"] == "ok"
    assert a["negotiated"]["group"] == "X25519MLKEM768"
    assert a["negotiated"]["decrypted"] is True
    assert "compressed_certificate" in a["server_messages"]
    assert isinstance(a.get("certificate"), dict) and a["certificate"]
    assert a["negotiated"]["certificate_compression"] in ("zlib", "brotli", "zstd")


def test_hello_retry_request_to_x25519mlkem768(
    tmp_path: Path, tlslite_factory: Callable[..., TlsliteServer]
) -> None:
    """Client supports the hybrid but sends only an x25519 share: the server asks for
    X25519MLKEM768 in a HelloRetryRequest and prober's second hello carries it."""
    doc = tls13_doc(["TLS_AES_128_GCM_SHA256"], groups=["X25519MLKEM768", "x25519"],
                    key_shares=["x25519"])
    compile_hello(doc)  # the document is a valid hello
    path = tmp_path / "hrr-x25519mlkem768.yaml"
    path.write_text(yaml.safe_dump(
        {"schema": 1, "name": "test-hrr-x25519mlkem768", "origin": "handwritten",
         "description": "x25519 key share, X25519MLKEM768 supported", "hello": doc},
        sort_keys=False))

    srv = tlslite_factory(["X25519MLKEM768"])
    a = _probe(tmp_path, srv.port, str(path))
    # hello_bytes counts the first hello, which has only the 32-byte x25519 share
    _assert_hybrid_ok(a, "X25519MLKEM768", big_hello=False)
    assert a["negotiated"]["hrr_group"] == "X25519MLKEM768"
    assert a["negotiated"]["suite"] == "TLS_AES_128_GCM_SHA256"
    assert a["server_messages"][:2] == ["hello_retry_request", "server_hello"]
    rec = _server_side(srv)
    assert rec.hrr_group == "X25519MLKEM768"
    _assert_server_agrees(rec, a, "X25519MLKEM768")
