"""`prober profiles capture`: hellos found in any framing, polite endings the codec reads
back, one profile per client configuration, and replays that match the capture byte for
byte (random, session id, key shares and SNI aside) — with real clients and the CLI."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.profiles import families
from prober.profiles.identity import client_identity
from prober.profiles.loader import load_file
from prober.wire.clienthello import (
    ClientHello,
    build,
    decode_key_share_client,
    ext_key_share,
    read_client_hello,
)
from prober.wire.constants import ExtensionType
from prober.wire.fingerprint import ja3, ja4
from prober.wire.hello_scan import (
    COMPLETE,
    NEED_MORE,
    NOT_A_HELLO,
    SSLV2_ERROR,
    refusal_for,
    scan_hello,
)
from prober.wire.serverflight import FlightReader
from tests.peers.factory import started_peers
from tests.peers.lifecycle import Peer, poll_until, stop_process

REPO = Path(__file__).resolve().parents[2]


def _built(name: str, sni: str | None = "demo.test") -> Any:
    p = families.generated(name)
    assert p is not None
    return build(p.spec, sni)


def _blank(h: ClientHello) -> bytes:
    """The hello with what a replay changes blanked: random, session id, key shares, SNI."""
    exts = []
    for t, b in h.extensions or ():
        if t == ExtensionType.KEY_SHARE:
            b = ext_key_share([(g, b"\0" * len(k)) for g, k in decode_key_share_client(b)])
        elif t == ExtensionType.SERVER_NAME:
            b = b""
        exts.append((t, b))
    return ClientHello(h.legacy_version, b"\0" * 32, b"\0" * len(h.session_id),
                       h.cipher_suites, h.compression_methods,
                       exts if h.extensions is not None else None).encode()


# --- on bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize("split", [[], [7], [40, 1, 90], [1] * 12])
def test_scan_finds_the_hello_across_records_and_segments(split: list[int]) -> None:
    wire = _built("tls1.2-only").records(split)
    trailer = bytes.fromhex("140303000101")  # a ChangeCipherSpec sent right behind it
    data = wire + trailer
    for cut in range(len(wire)):
        assert scan_hello(data[:cut]).status == NEED_MORE, cut
    scan = scan_hello(data)
    assert scan.status == COMPLETE and scan.end == len(wire)
    assert read_client_hello(data[: scan.end]).encode() == read_client_hello(wire).encode()


def test_scan_sslv2_and_what_is_no_hello() -> None:
    v2 = _built("sslv2-only").records()
    assert scan_hello(v2[:-1]).status == NEED_MORE
    assert scan_hello(v2) == scan_hello(v2 + b"junk")
    assert scan_hello(v2).end == len(v2)
    http = scan_hello(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert http.status == NOT_A_HELLO and "GET / HTTP/1.1" in http.reason
    server_hello = bytes.fromhex("16030300040200000000")
    assert scan_hello(server_hello).status == NOT_A_HELLO
    assert scan_hello(bytes.fromhex("15030300020228")).status == NOT_A_HELLO
    huge = bytes.fromhex("1603010010") + b"\x01\x7f\xff\xff" + b"\0" * 12
    assert "ClientHello" in scan_hello(huge).reason


@pytest.mark.parametrize("profile,description", [
    ("tls1.3-only", "handshake_failure"), ("tls1.2-only", "handshake_failure"),
    ("tls1.0-only", "handshake_failure"), ("sslv3-only", "protocol_version")])
def test_refusal_is_an_alert_the_client_side_codec_reads(profile: str, description: str) -> None:
    built = _built(profile)
    alert = refusal_for(read_client_hello(built.records()))
    reader = FlightReader(built)
    reader.feed(alert)
    f = reader.flight
    assert f.status == "alert" and f.alert_level == 2
    from prober.wire.constants import alert_name

    assert alert_name(f.alert or 0) == description
    assert refusal_for(read_client_hello(_built("sslv2-only").records())) == SSLV2_ERROR


def _chrome_like(h: ClientHello, seed: int) -> ClientHello:
    """What Chrome does per connection: a fresh GREASE value in the suites, groups,
    signature algorithms, versions, key shares and as an extension; a shuffled order."""
    from prober.wire.buffer import Reader, int_list

    rnd = random.Random(seed)
    g = 0x0A0A + 0x1010 * rnd.randrange(16)
    exts: list[tuple[int, bytes]] = [(g, b"")]
    for t, b in h.extensions or ():
        if t in (ExtensionType.SUPPORTED_GROUPS, ExtensionType.SIGNATURE_ALGORITHMS):
            b = int_list([g, *Reader(b).pull_list(2, 2)], 2, 2)
        elif t == ExtensionType.SUPPORTED_VERSIONS:
            b = int_list([g, *Reader(b).pull_list(1, 2)], 2, 1)
        elif t == ExtensionType.KEY_SHARE:
            b = ext_key_share([(g, b"\0"), *decode_key_share_client(b)])
        exts.append((t, b))
    rnd.shuffle(exts)
    return ClientHello(h.legacy_version, h.random, h.session_id, [g, *h.cipher_suites],
                       h.compression_methods, exts)


def test_client_identity_sees_one_client_configuration() -> None:
    a, b = _built("tls1.3-only", "demo.test"), _built("tls1.3-only", "other.example")
    assert a.hello is not None and b.hello is not None
    assert a.hello.random != b.hello.random  # fresh random, keys and SNI ...
    assert client_identity(a.hello) == client_identity(b.hello)  # ... same client
    keys = {client_identity(_chrome_like(a.hello, seed)) for seed in range(12)}
    assert len(keys) == 1 and keys != {client_identity(a.hello)}
    other = _built("tls1.2-only")
    assert other.hello is not None and client_identity(other.hello) != client_identity(a.hello)


# --- the listener, through the CLI, with real clients --------------------------------------


class Listener(Peer):
    """`prober profiles capture` in a child process on 127.0.0.1:<any port> (the one it
    says it listens on)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.out = tmp / f"out-{time.monotonic_ns()}"
        self.err = tmp / f"err-{time.monotonic_ns()}.txt"
        self.stdout = tmp / f"stdout-{time.monotonic_ns()}.txt"
        self.argv = [sys.executable, "-m", "prober", "profiles", "capture", "--listen",
                     "127.0.0.1:0", "--out", str(self.out), "--timeout", "20", *args]
        self.port = 0

    def start(self) -> Listener:
        with self.err.open("wb") as e, self.stdout.open("wb") as o:
            self.proc = subprocess.Popen(self.argv, stdout=o, stderr=e, cwd=REPO)

        def said_port() -> re.Match[str] | None:
            return re.search(r"listening on 127\.0\.0\.1:(\d+)", self.err.read_text())

        poll_until(lambda: bool(said_port()) or self.proc.poll() is not None, 15)
        m = said_port()
        assert m is not None, self.err.read_text()
        self.port = int(m.group(1))
        return self

    def finish(self) -> tuple[int, str, str]:
        rc = self.proc.wait(25)
        return rc, self.stdout.read_text(), self.err.read_text()

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGKILL)

    def profile(self, name: str) -> tuple[Any, dict[str, Any]]:
        path = self.out / f"{name}.yaml"
        return load_file(path), yaml.safe_load(path.read_text())


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Any]:
    with started_peers(lambda *args: Listener(tmp_path, *args)) as start:
        yield start


def _curl(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sk", "--max-time", "10", "--resolve",
                           f"demo.test:{port}:127.0.0.1", *extra, f"https://demo.test:{port}/"],
                          capture_output=True, text=True, timeout=20)


def _s_client(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                           "-servername", "demo.test"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=20)


def _check_profile(prof: Any, doc: dict[str, Any]) -> ClientHello:
    """The written profile holds the raw hello, its fingerprints, and rebuilds it."""
    raw = bytes.fromhex(doc["extra"]["raw_hex"])
    hello = read_client_hello(raw)
    assert isinstance(hello, ClientHello)
    assert doc["origin"] == "captured" and prof.origin == "captured"
    assert doc["extra"]["ja3"] == ja3(hello) and doc["extra"]["ja4"] == ja4(hello)
    cap = doc["extra"]["capture"]
    assert cap["from"].startswith("127.0.0.1:") and cap["sni"] == "demo.test"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", cap["at"])
    again = build(prof.spec, "demo.test")
    assert again.hello is not None and _blank(again.hello) == _blank(hello)
    assert again.records()[:3] == raw[:3]
    return hello


@pytest.mark.requires_bin("curl", "openssl")
def test_alert_mode_two_real_clients(listener: Any) -> None:
    lst = listener("--count", "2", "--name", "local", "--client-name", "two clients",
                   "--tag", "captured-test")
    curl = _curl(lst.port)
    s_client = _s_client(lst.port)
    rc, out, err = lst.finish()
    assert rc == 0, err
    # both were refused politely, with an alert each understood
    assert curl.returncode == 35, curl
    assert "alert handshake failure" in s_client.stdout + s_client.stderr
    assert "-> new profile local\n" in out and "-> new profile local-2\n" in out
    curl_prof, curl_doc = lst.profile("local")
    s_prof, s_doc = lst.profile("local-2")
    assert curl_doc["client"] == {"name": "two clients"} and curl_doc["tags"] == ["captured-test"]
    assert curl_doc["extra"]["capture"]["alpn"] == ["h2", "http/1.1"]  # curl offers ALPN
    assert s_doc["extra"]["capture"]["alpn"] is None  # s_client does not
    for prof, doc in ((curl_prof, curl_doc), (s_prof, s_doc)):
        _check_profile(prof, doc)


@pytest.mark.requires_bin("curl")
def test_complete_mode_serves_the_client_and_repeats_are_one_profile(listener: Any) -> None:
    lst = listener("--complete", "--count", "2", "--name", "curl-here")
    first, second = _curl(lst.port), _curl(lst.port)
    rc, out, err = lst.finish()
    assert rc == 0, err
    assert first.returncode == 0 and first.stdout == "captured by prober\n", first
    assert second.returncode == 0
    assert "same client as curl-here" in out
    prof, doc = lst.profile("curl-here")
    assert doc["extra"]["capture"]["connections"] == 2
    assert doc["extra"]["capture"]["mode"] == "complete"
    assert not (lst.out / "curl-here-2.yaml").exists()
    _check_profile(prof, doc)


@pytest.mark.requires_bin("curl")
def test_replay_is_byte_faithful_and_split_hellos_are_reassembled(listener: Any,
                                                                  tmp_path: Path) -> None:
    first = listener("--name", "orig")
    _curl(first.port)
    assert first.finish()[0] == 0
    prof_path = first.out / "orig.yaml"
    orig = read_client_hello(bytes.fromhex(first.profile("orig")[1]["extra"]["raw_hex"]))
    assert isinstance(orig, ClientHello)
    # the profile, cut into 3 records and 4 TCP segments, replayed by prober itself
    doc = yaml.safe_load(prof_path.read_text())
    doc["name"] = "orig-split"
    doc["transport"] = {"record_sizes": [60, 200], "segment_sizes": [30, 30, 100],
                        "pause_ms": 30}
    split_path = tmp_path / "orig-split.yaml"
    split_path.write_text(yaml.safe_dump(doc))
    for path, sni in ((prof_path, "demo.test"), (split_path, "other.example")):
        second = listener("--name", "replayed")
        res = subprocess.run([sys.executable, "-m", "prober", "probe",
                              f"{sni}:{second.port}", "--address", "127.0.0.1", "-p", str(path),
                              "-q", "--json", "-"], capture_output=True, text=True, timeout=30,
                             cwd=REPO)
        rc, _, err = second.finish()
        assert rc == 0, err
        attempt = json.loads(res.stdout)["attempts"][0]
        # prober reads the listener's refusal as the alert it is
        assert attempt["outcome"] == "alert", attempt
        assert attempt["alert"]["description"] == "handshake_failure"
        raw = bytes.fromhex(second.profile("replayed")[1]["extra"]["raw_hex"])
        again = read_client_hello(raw)
        assert isinstance(again, ClientHello)
        assert _blank(again) == _blank(orig)
        assert again.random != orig.random
        sni_body = again.extension(ExtensionType.SERVER_NAME)
        assert sni_body is not None and sni.encode() in sni_body
        records = 0
        pos = 0
        while pos < len(raw):
            records += 1
            pos += 5 + int.from_bytes(raw[pos + 3 : pos + 5], "big")
        assert records == (3 if path == split_path else 1)


@pytest.mark.requires_bin("openssl")
def test_captured_profile_follows_a_hello_retry(listener: Any, tmp_path: Path,
                                                openssl_server_factory: Any) -> None:
    lst = listener("--name", "s-client")
    _s_client(lst.port)
    assert lst.finish()[0] == 0
    prof, doc = lst.profile("s-client")
    hello = _check_profile(prof, doc)
    shares = [g for g, _ in decode_key_share_client(hello.extension(ExtensionType.KEY_SHARE)
                                                    or b"\0\0")]
    assert 24 not in shares  # no secp384r1 share: a P-384-only server must ask again
    srv = openssl_server_factory(cert="ecdsa", groups="P-384", min_protocol="TLSv1.3")
    res = subprocess.run([sys.executable, "-m", "prober", "probe", f"127.0.0.1:{srv.port}",
                          "-p", str(lst.out / "s-client.yaml"), "-q", "--json", "-"],
                         capture_output=True, text=True, timeout=30, cwd=REPO)
    attempt = json.loads(res.stdout)["attempts"][0]
    assert attempt["outcome"] == "ok", attempt
    assert attempt["negotiated"]["hrr_group"] == "secp384r1"
    hellos = srv.wait_server_hellos(2)
    assert [h.hrr for h in hellos[:2]] == [True, False]
    assert hellos[1].cipher == attempt["negotiated"]["suite"]


@pytest.mark.requires_bin("curl")
def test_connections_without_a_hello_are_not_recorded(listener: Any) -> None:
    lst = listener("--count", "1", "--name", "only-tls")
    with socket.create_connection(("127.0.0.1", lst.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        s.settimeout(5)
        assert s.recv(100) == b""  # closed without an answer
    assert lst.proc.poll() is None  # still waiting for a hello
    _curl(lst.port)
    rc, out, _ = lst.finish()
    assert rc == 0 and out.count("-> new profile") == 1


def test_nothing_captured_and_usage_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "prober", "profiles", "capture", *args],
                              capture_output=True, text=True, timeout=30, cwd=REPO)

    quiet = run("--listen", "127.0.0.1:0", "--timeout", "0.3", "--out", str(tmp_path))
    assert quiet.returncode == 1
    assert quiet.stderr.strip().endswith("no ClientHello captured on 127.0.0.1:0 within 0.3 s")
    assert list(tmp_path.iterdir()) == []
    for args, needle in ((["--listen", "nonsense"], "ADDR:PORT"),
                         (["--listen", "127.0.0.1:70000"], "70000"),
                         (["--listen", "127.0.0.1:0", "--count", "0"], "--count"),
                         (["--listen", "::1:0"], "[addr]:port"),
                         (["--listen", "127.0.0.1:0", "--client-detail", "x"], "KEY=VALUE")):
        res = run(*args)
        assert res.returncode == 2, (args, res)
        assert len(res.stderr.strip().splitlines()) == 1 and needle in res.stderr, res.stderr
