"""Codec features against real peers: downgrade sentinel, CertificateRequest, records and
segments with a pause, SSLv2 replies, target files, several addresses, rate limit,
profile file validation."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.profiles import families
from prober.profiles.compile import ProfileError
from prober.profiles.importer import write_yaml
from prober.profiles.loader import load_file
from prober.wire.clienthello import build
from prober.wire.serverflight import FlightReader
from tests.peers.lifecycle import wait_count
from tests.peers.misbehaving import HelloRecorder


def probe(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / f"run-{time.monotonic_ns()}.json"
    assert main(["probe", *args, "-q", "--json", str(out)]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def test_downgrade_sentinel(tmp_path: Path, openssl_server_factory: Any) -> None:
    # OpenSSL marks its random when it negotiates below what it supports (RFC 8446 4.1.3)
    srv = openssl_server_factory(cert="rsa", min_protocol="TLSv1", ciphers="ALL:@SECLEVEL=0")
    doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.1-only", "-p", "tls1.3-only")
    by = {a["profile"]: a for a in doc["attempts"]}
    assert by["tls1.1-only"]["outcome"] == "ok"
    assert by["tls1.1-only"]["negotiated"]["version"] == "TLSv1.1"
    assert by["tls1.1-only"]["negotiated"]["downgrade_sentinel"] == "TLSv1.1"
    assert "downgrade_sentinel" not in by["tls1.3-only"]["negotiated"]
    # a server without TLS 1.3 does not mark a TLS 1.2 answer to a TLS 1.3 client
    srv12 = openssl_server_factory(cert="rsa", max_protocol="TLSv1.2")
    doc = probe(tmp_path, f"127.0.0.1:{srv12.port}", "-p", "edge-133-win11")
    (a,) = doc["attempts"]
    assert a["outcome"] == "ok" and a["negotiated"]["version"] == "TLSv1.2"
    assert "downgrade_sentinel" not in a["negotiated"]


def test_certificate_request_seen(tmp_path: Path, openssl_server_factory: Any) -> None:
    srv = openssl_server_factory(cert="rsa", extra=["-verify", "1"])
    doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.2-only", "-p", "tls1.3-only")
    for a in doc["attempts"]:
        assert a["outcome"] == "ok", a
        assert a["negotiated"]["certificate_request"] is True
        assert "certificate_request" in a["server_messages"]


_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS is the same


def _recording_listener() -> tuple[socket.socket, list[tuple[float, int]], threading.Thread]:
    """Accepts one connection and records each chunk read as (arrival time, size).  The
    time is the kernel's receive timestamp of the data (SO_TIMESTAMPNS), not when this
    thread got to read it, so a reader late on a loaded machine does not shrink a pause."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    chunks: list[tuple[float, int]] = []

    def run() -> None:
        srv.settimeout(10)
        conn, _ = srv.accept()
        conn.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        conn.settimeout(3)
        try:
            while True:
                data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16))
                if not data:
                    break
                stamps = [struct.unpack("qq", d[:16]) for lvl, typ, d in anc
                          if lvl == socket.SOL_SOCKET and typ == _SO_TIMESTAMPNS]
                at = stamps[0][0] + stamps[0][1] / 1e9 if stamps else float("nan")
                chunks.append((at, len(data)))  # nan (no timestamp) fails the pause check
        except OSError:
            pass
        conn.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return srv, chunks, th


def test_segments_with_a_pause_and_records(tmp_path: Path) -> None:
    doc = families.legacy_doc("TLSv1.2", ["ECDHE-RSA-AES128-GCM-SHA256"])
    prof = {"schema": 1, "name": "split-hello", "hello": doc,
            "transport": {"record_sizes": [40], "segment_sizes": [30], "pause_ms": 400}}
    path = tmp_path / "split.yaml"
    write_yaml(prof, path)
    p = load_file(path)
    expected = len(build(p.spec, None).records([40]))
    srv, chunks, th = _recording_listener()
    port = srv.getsockname()[1]
    out = probe(tmp_path, f"127.0.0.1:{port}", "-p", str(path), "--timeout", "1")
    th.join(5)
    srv.close()
    (a,) = out["attempts"]
    assert a["hello_bytes"] == expected
    assert chunks[0][1] == 30
    assert sum(n for _, n in chunks) == expected
    assert chunks[1][0] - chunks[0][0] >= 0.35


def test_split_hello_still_negotiates(tmp_path: Path, openssl_server_factory: Any) -> None:
    srv = openssl_server_factory(cert="rsa")
    prof = {"schema": 1, "name": "split-records", "hello": families.tls13_doc(
        ["TLS_AES_128_GCM_SHA256"]), "transport": {"record_sizes": [5, 50, 60],
                                                   "segment_sizes": [3, 7], "pause_ms": 50}}
    path = tmp_path / "split2.yaml"
    write_yaml(prof, path)
    doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", str(path))
    assert doc["attempts"][0]["outcome"] == "ok"


def test_sslv2_server_hello_on_bytes() -> None:
    p = families.generated("sslv2-only")
    assert p is not None
    built = build(p.spec, None)
    spec = 0x0700C0  # SSL_CK_DES_192_EDE3_CBC_WITH_MD5
    cert = b"\x30\x03\x02\x01\x01"
    body = (b"\x04" + b"\x00" + b"\x01" + b"\x00\x02" + len(cert).to_bytes(2, "big")
            + b"\x00\x03" + b"\x00\x10" + cert + spec.to_bytes(3, "big") + b"\x11" * 16)
    reader = FlightReader(built)
    reader.feed((0x8000 | len(body)).to_bytes(2, "big") + body)
    f = reader.flight
    assert f.status == "complete"
    assert f.version == 0x0002
    assert f.suite == spec
    assert f.certificates == [cert]


def test_sslv2_hello_against_a_modern_server(tmp_path: Path, openssl_server_factory: Any
                                             ) -> None:
    srv = openssl_server_factory(cert="rsa")
    doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "sslv2-only", "-p", "sslv3-only")
    got = {a["profile"]: a["outcome"] for a in doc["attempts"]}
    # OpenSSL 3 speaks neither: it answers with an alert or closes, never "ok"
    assert got["sslv2-only"] in ("alert", "eof", "reset")
    assert got["sslv3-only"] in ("alert", "eof", "reset")


def test_targets_file_and_rate_limit(tmp_path: Path, openssl_server_factory: Any) -> None:
    srv = openssl_server_factory(cert="rsa")
    tf = tmp_path / "targets.txt"
    tf.write_text(f"# staging\n127.0.0.1:{srv.port}\n\n[::1]:{srv.port}  # v6 too\n")
    t0 = time.monotonic()
    doc = probe(tmp_path, "-f", str(tf), "-p", "tls1.2-only", "-n", "5", "--rate", "10")
    elapsed = time.monotonic() - t0
    assert [t["target"] for t in doc["targets"]] == [f"127.0.0.1:{srv.port}", f"[::1]:{srv.port}"]
    v4 = [a for a in doc["attempts"] if a["address"] == "127.0.0.1"]
    v6 = [a for a in doc["attempts"] if a["address"] == "::1"]
    assert [a["outcome"] for a in v4] == ["ok"] * 5
    # s_server listens on 127.0.0.1 only
    assert {a["outcome"] for a in v6} == {"refused"}
    # 10 attempts at 10 per second take at least 0.9 s
    assert elapsed >= 0.9
    starts = sorted(a["started_at"] for a in doc["attempts"])
    assert starts[-1] - starts[0] >= 0.85


def test_all_addresses_of_a_name(tmp_path: Path, openssl_server_factory: Any) -> None:
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to give the probe its own hosts file")
    srv = openssl_server_factory(cert="rsa")
    (tmp_path / "hosts").write_text("127.0.0.1 multi.test\n127.0.0.2 multi.test\n")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    script = (f"mount --bind {tmp_path / 'hosts'} /etc/hosts && "
              f"mount --bind {tmp_path / 'resolv.conf'} /etc/resolv.conf && exec \"$@\"")
    out = tmp_path / "multi.json"
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                          "sh", sys.executable, "-m", "prober", "probe",
                          f"multi.test:{srv.port}", "--all-addresses", "-p", "tls1.2-only",
                          "-q", "--json", str(out)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    got = {a["address"]: a["outcome"] for a in doc["attempts"]}
    assert got == {"127.0.0.1": "ok", "127.0.0.2": "refused"}


@pytest.mark.parametrize("doc,needle", [
    ({"schema": 1, "name": "x", "hello": {"cipher_suites": ["NOPE-CIPHER"]}}, "NOPE-CIPHER"),
    ({"schema": 1, "name": "x", "hello": {"cipher_suites": ["AES128-SHA"],
                                          "extensions": [{"supported_groups": ["curve9"]}]}},
     "curve9"),
    ({"schema": 1, "name": "x", "hello": {"cipher_suites": ["AES128-SHA"], "extensions":
                                          ["frobnicate"]}}, "frobnicate"),
    ({"schema": 1, "name": "x", "hello": {"cipher_suites": []}}, "at least one"),
    ({"schema": 2, "name": "x", "hello": {"cipher_suites": ["AES128-SHA"]}}, "schema"),
    ({"schema": 1, "hello": {"cipher_suites": ["AES128-SHA"]}}, "name"),
    ({"schema": 1, "name": "x", "hello": {"cipher_suites": ["AES128-SHA"]}, "colour": 1},
     "colour"),
    ({"schema": 1, "name": "x", "hello": {"cipher_suites": ["AES128-SHA"]},
      "transport": {"segment_sizes": [0]}}, "positive"),
])
def test_profile_validation_names_the_problem(tmp_path: Path, doc: dict[str, Any],
                                              needle: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    write_yaml(doc, path)
    with pytest.raises(ProfileError) as e:
        load_file(path)
    assert needle in str(e.value)
    assert str(path) in str(e.value)
    assert main(["probe", "127.0.0.1", "-p", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_profiles_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    assert "firefox-137-win11" in out and "t13d1717h2_5b57614c22b0_3cbfd9057e0d" in out
    assert main(["profiles", "show", "cipher:ECDHE-RSA-AES256-SHA"]) == 0
    out = capsys.readouterr().out
    assert "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" in out and "ECDHE-RSA-AES256-SHA" in out
    assert main(["profiles", "list", "--set", "java"]) == 0
    assert "java-8u442" in capsys.readouterr().out


def _hellos_sent(tmp_path: Path, *args: str) -> list[Any]:
    """The ClientHellos `prober probe` sends to a listener that records them and closes."""
    from prober.wire.clienthello import read_client_hello

    with HelloRecorder() as srv:
        probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.3-only", "-n", "3", "-c", "1",
              "-t", "2", *args)
        return [read_client_hello(h) for h in wait_count(lambda: list(srv.hellos), 3, 5)]


@pytest.mark.parametrize("fresh", [False, True])
def test_each_attempt_new_random_keys_only_with_fresh_keys(tmp_path: Path, fresh: bool) -> None:
    from prober.wire.clienthello import decode_key_share_client
    from prober.wire.constants import ExtensionType

    hellos = _hellos_sent(tmp_path, *(["--fresh-keys"] if fresh else []))
    assert len(hellos) == 3
    assert len({h.random for h in hellos}) == 3
    shares = {bytes(decode_key_share_client(h.extension(ExtensionType.KEY_SHARE) or b"")[0][1])
              for h in hellos}
    assert len(shares) == (3 if fresh else 1)
