"""RFC 8879 CompressedCertificate from a hostile server, through the real CLI.

Decompression is bounded: it stops as soon as the output passes the length the message
announces (itself capped at 1 MiB), so a 3.6 kB brotli flight that inflates to 4 GiB
costs the probe nothing; a compressed certificate the hello did not ask for, or in an
algorithm it did not offer, is bad-server-hello; one in an offered algorithm that
prober cannot decompress here is ok, with the certificate marked undecodable.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brotli
import pytest
import yaml

from prober.profiles.families import tls13_doc
from prober.wire.certificates import describe
from prober.wire.serverflight import MAX_CERTIFICATE_BYTES
from tests.hostile.certs import good_certificate
from tests.hostile.cli import probe_one
from tests.hostile.tls13_server import Answer, HostileTls13, Session

ZLIB, BROTLI, ZSTD = 1, 2, 3
UNKNOWN_ALGORITHM = 0x4A4A  # offered, but no codec anywhere knows it
HAVE_ZSTANDARD = importlib.util.find_spec("zstandard") is not None
GIB = 1 << 30
# the probe runs in 1 GiB of address space: a bomb decompressed whole cannot fit
ADDRESS_SPACE = GIB
# and its peak RSS stays near an ordinary probe's (about 60 MB)
MAX_RSS_KB = 256 * 1024

Hostile = Callable[[Answer], HostileTls13]


def compression_profile(tmp_path: Path, algorithms: list[Any]) -> str:
    """A TLS 1.3 hello (x25519 share) with compress_certificate: ``algorithms``."""
    doc = tls13_doc(["TLS_AES_128_GCM_SHA256"], groups=["x25519"], key_shares=["x25519"])
    doc["extensions"].append({"compress_certificate": algorithms})
    path = tmp_path / "compress-certificate.yaml"
    path.write_text(yaml.safe_dump(
        {"schema": 1, "name": "test-compress-certificate", "origin": "handwritten",
         "description": "TLS 1.3 offering certificate compression", "hello": doc},
        sort_keys=False))
    return str(path)


def brotli_bomb(gib: int = 4) -> bytes:
    """A brotli stream of ``gib`` GiB of zeros in about 14 bytes per 16 MiB: after the
    first flushed meta-block, each further 16 MiB of zeros compresses to the same bytes,
    so the stream is the first block, that one repeated, and the end marker."""
    c = brotli.Compressor(quality=5, lgwin=24)
    chunk = bytes(16 << 20)
    first: bytes = c.process(chunk) + c.flush()
    steady: bytes = c.process(chunk) + c.flush()
    end: bytes = c.finish()
    return first + steady * (gib * 64 - 1) + end


def certificate_body(*ders: bytes) -> bytes:
    """The Certificate message body that a CompressedCertificate compresses."""
    entries = b"".join(len(d).to_bytes(3, "big") + d + b"\x00\x00" for d in ders)
    return b"\x00" + len(entries).to_bytes(3, "big") + entries


def compressed_flight(algorithm: int, length: int, data: bytes, *, twice: bool = False
                      ) -> Answer:
    def answer(s: Session) -> bytes:
        msgs = s.encrypted_extensions() + s.compressed_certificate(algorithm, length, data)
        if twice:
            msgs += s.compressed_certificate(algorithm, length, data)
        return s.seal(msgs + s.certificate_verify() + s.finished())
    return answer


def test_brotli_bomb_is_bad_server_hello_in_bounded_memory(tmp_path: Path,
                                                           hostile: Hostile) -> None:
    bomb = brotli_bomb(4)
    assert len(bomb) < 4096  # 4 GiB once inflated
    srv = hostile(compressed_flight(BROTLI, 1000, bomb))
    profile = compression_profile(tmp_path, ["zlib", "brotli", "zstd"])
    run, a = probe_one(tmp_path, srv.port, profile, address_space=ADDRESS_SPACE)
    assert a["outcome"] == "bad-server-hello"
    assert "inflates past the 1000 bytes it announced" in a["detail"]
    assert "compressed_certificate" in a["server_messages"]
    assert run.max_rss_kb < MAX_RSS_KB, f"peak RSS {run.max_rss_kb} kB"
    assert srv.sessions and srv.sessions[0].sent[1] == "compressed_certificate"


def test_bomb_within_the_cap_but_past_its_announced_length(tmp_path: Path,
                                                           hostile: Hostile) -> None:
    # 1 MiB of zeros through zlib (about 1 kB) announced as 1000 bytes: zlib used to be
    # asked for at most 1000 bytes and the rest of the stream was never looked at
    data = zlib.compress(bytes(1 << 20), 9)
    srv = hostile(compressed_flight(ZLIB, 1000, data))
    _, a = probe_one(tmp_path, srv.port, compression_profile(tmp_path, ["zlib"]))
    assert a["outcome"] == "bad-server-hello"
    assert "inflates past the 1000 bytes it announced (stopped at 1001)" in a["detail"]


@pytest.mark.skipif(not HAVE_ZSTANDARD, reason="zstandard not installed: zstd not decoded")
def test_zstd_bomb_is_bad_server_hello(tmp_path: Path, hostile: Hostile) -> None:
    import zstandard

    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(256 << 20))
    srv = hostile(compressed_flight(ZSTD, 1000, bomb))
    run, a = probe_one(tmp_path, srv.port, compression_profile(tmp_path, ["zstd"]),
                       address_space=ADDRESS_SPACE)
    assert a["outcome"] == "bad-server-hello"
    assert "inflates past the 1000 bytes" in a["detail"]
    assert run.max_rss_kb < MAX_RSS_KB


def test_announced_length_over_the_cap(tmp_path: Path, hostile: Hostile) -> None:
    body = certificate_body(good_certificate())
    srv = hostile(compressed_flight(BROTLI, MAX_CERTIFICATE_BYTES + 1, brotli.compress(body)))
    _, a = probe_one(tmp_path, srv.port, compression_profile(tmp_path, ["brotli"]))
    assert a["outcome"] == "bad-server-hello"
    assert f"claims {MAX_CERTIFICATE_BYTES + 1} bytes" in a["detail"]


@pytest.mark.parametrize("algorithm,compress", [(ZLIB, zlib.compress),
                                                (BROTLI, brotli.compress)],
                         ids=["zlib", "brotli"])
def test_shorter_than_announced(tmp_path: Path, hostile: Hostile, algorithm: int,
                                compress: Callable[[bytes], bytes]) -> None:
    body = certificate_body(good_certificate())
    srv = hostile(compressed_flight(algorithm, len(body) + 1, compress(body)))
    _, a = probe_one(tmp_path, srv.port, compression_profile(tmp_path, ["zlib", "brotli"]))
    assert a["outcome"] == "bad-server-hello"
    assert f"inflates to {len(body)} bytes, not the {len(body) + 1} announced" in a["detail"]


@pytest.mark.parametrize("algorithm,compress,name", [(ZLIB, zlib.compress, "zlib"),
                                                     (BROTLI, brotli.compress, "brotli")],
                         ids=["zlib", "brotli"])
def test_well_formed_compressed_certificate_is_read(
        tmp_path: Path, hostile: Hostile, algorithm: int,
        compress: Callable[[bytes], bytes], name: str) -> None:
    cert = good_certificate()
    body = certificate_body(cert)
    srv = hostile(compressed_flight(algorithm, len(body), compress(body)))
    _, a = probe_one(tmp_path, srv.port, compression_profile(tmp_path, ["zlib", "brotli"]))
    assert a["outcome"] == "ok", a["detail"]
    assert a["negotiated"]["certificate_compression"] == name
    assert a["certificate"] == describe(cert)
    assert a["certificate"]["key_type"] == "ECDSA"


def test_compressed_certificate_without_the_extension(tmp_path: Path,
                                                      hostile: Hostile) -> None:
    body = certificate_body(good_certificate())
    srv = hostile(compressed_flight(BROTLI, len(body), brotli.compress(body)))
    _, a = probe_one(tmp_path, srv.port, "tls1.3-only")
    assert a["outcome"] == "bad-server-hello"
    assert "offered no compress_certificate" in a["detail"]


def test_compressed_certificate_in_an_algorithm_not_offered(tmp_path: Path,
                                                            hostile: Hostile) -> None:
    body = certificate_body(good_certificate())
    srv = hostile(compressed_flight(ZLIB, len(body), zlib.compress(body)))
    _, a = probe_one(tmp_path, srv.port, compression_profile(tmp_path, ["brotli"]))
    assert a["outcome"] == "bad-server-hello"
    assert "CompressedCertificate with zlib, not offered" in a["detail"]


def test_second_certificate_message(tmp_path: Path, hostile: Hostile) -> None:
    # one certificate message per flight: a stream of them would each inflate to the cap
    body = certificate_body(good_certificate())
    srv = hostile(compressed_flight(BROTLI, len(body), brotli.compress(body), twice=True))
    _, a = probe_one(tmp_path, srv.port, compression_profile(tmp_path, ["brotli"]))
    assert a["outcome"] == "bad-server-hello"
    assert "second certificate message" in a["detail"]


@pytest.mark.parametrize("algorithm", [
    UNKNOWN_ALGORITHM,
    pytest.param(ZSTD, marks=pytest.mark.skipif(HAVE_ZSTANDARD,
                                                reason="zstandard installed: zstd decodes")),
], ids=["unknown-algorithm", "zstd-without-zstandard"])
def test_offered_algorithm_prober_cannot_decode(tmp_path: Path, hostile: Hostile,
                                                algorithm: int) -> None:
    srv = hostile(compressed_flight(algorithm, 1200, b"\x28\xb5\x2f\xfd" + bytes(40)))
    profile = compression_profile(tmp_path, ["brotli", algorithm])
    _, a = probe_one(tmp_path, srv.port, profile)
    assert a["outcome"] == "ok", a["detail"]
    assert a["negotiated"]["certificate_compression"].endswith("(not decoded)")
    cert = a["certificate"]
    assert cert["undecodable"] is True
    assert cert["error_kind"] == "compression"
    assert "cannot decompress here" in cert["error"]
    assert "chain_length" not in a
