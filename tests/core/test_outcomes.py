"""Every outcome of the taxonomy, produced by a real peer, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from tests.peers.lifecycle import poll_until
from tests.peers.misbehaving import (
    FinAfterHello,
    HttpSpeaker,
    PartialFlight,
    ResetAfterHello,
    SilentReader,
    SmtpBanner,
    SshBanner,
    closed_port,
)


def probe(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / f"run-{time.monotonic_ns()}.json"
    rc = main(["probe", *args, "-q", "--json", str(out)])
    assert rc == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["schema"] == "prober.probe/2"
    return doc


def outcomes(doc: dict[str, Any]) -> list[str]:
    return [a["outcome"] for a in doc["attempts"]]


def test_ok_and_alert_from_openssl(tmp_path: Path, openssl_server_factory: Any) -> None:
    srv = openssl_server_factory(cert="rsa", min_protocol="TLSv1.3")
    doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.3-only", "-p", "tls1.2-only")
    by = {a["profile"]: a for a in doc["attempts"]}
    ok = by["tls1.3-only"]
    assert ok["outcome"] == "ok"
    assert ok["negotiated"]["version"] == "TLSv1.3"
    assert ok["negotiated"]["decrypted"] is True
    assert "finished" in ok["server_messages"]
    assert ok["certificate"]["key_type"] == "RSA"
    assert ok["certificate"]["key_bits"] == 2048
    bad = by["tls1.2-only"]
    assert bad["outcome"] == "alert"
    assert bad["alert"]["description"] == "protocol_version"
    assert bad["tcp"]["acked"] is True
    # TCP_INFO's send MSS: on loopback the kernel bounds it by half the peer's window, so
    # it is not a fixed number (the lab checks the Ethernet value exactly)
    assert 536 <= ok["tcp"]["snd_mss"] <= 65535 - 40


def test_hello_retry_request_is_followed(tmp_path: Path, openssl_server_factory: Any) -> None:
    # the profile's key share is x25519; a server that only takes P-384 must ask again
    srv = openssl_server_factory(cert="ecdsa", min_protocol="TLSv1.3", groups="secp384r1")
    doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.3-only")
    (a,) = doc["attempts"]
    assert a["outcome"] == "ok", a
    assert a["negotiated"]["hrr_group"] == "secp384r1"
    assert a["negotiated"]["group"] == "secp384r1"
    assert a["negotiated"]["decrypted"] is True
    assert a["certificate"]["key_type"] == "ECDSA"


def test_reset_after_hello(tmp_path: Path) -> None:
    with ResetAfterHello() as srv:
        doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.1-only", "-n", "3")
    assert outcomes(doc) == ["reset"] * 3
    assert doc["attempts"][0]["tcp"]["acked"] is True
    assert doc["summary"][0]["counts"] == {"reset": 3}


def test_fin_after_hello(tmp_path: Path) -> None:
    with FinAfterHello() as srv:
        doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.2-only")
    assert outcomes(doc) == ["eof"]


def test_silent_reader_hangs_acked(tmp_path: Path) -> None:
    with SilentReader() as srv:
        doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.2-only", "--timeout", "1")
    (a,) = doc["attempts"]
    assert a["outcome"] == "hang-acked"
    assert a["tcp"]["acked"] is True
    assert a["timings_ms"]["hello_acked"] is not None
    assert 900 <= a["timings_ms"]["total"] <= 3000


@pytest.mark.parametrize("then,expected_end", [("stall", "timeout"), ("reset", "rst"),
                                               ("fin", "fin")])
def test_partial_flight(tmp_path: Path, then: str, expected_end: str) -> None:
    with PartialFlight(n_bytes=200, then=then) as srv:  # type: ignore[arg-type]
        doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.2-only", "--timeout", "1")
    (a,) = doc["attempts"]
    assert a["outcome"] == "partial"
    assert a["server_bytes"] == 200
    assert a["end"] == expected_end


def test_foreign_flight_is_bad_server_hello(tmp_path: Path, tls12_flight: bytes) -> None:
    # a real TLS 1.2 flight sent in answer to a hello that offered TLS 1.3 only
    with PartialFlight(n_bytes=len(tls12_flight), then="stall") as srv:
        doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.3-only", "--timeout", "1")
    (a,) = doc["attempts"]
    assert a["outcome"] == "bad-server-hello"
    assert "not offered" in a["detail"]


@pytest.mark.parametrize("peer,banner", [(HttpSpeaker, "HTTP/1.1 400"), (SshBanner, "SSH-2.0"),
                                         (SmtpBanner, "220 ")])
def test_not_tls(tmp_path: Path, peer: Any, banner: str) -> None:
    with peer() as srv:
        doc = probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.2-only", "--timeout", "2")
    (a,) = doc["attempts"]
    assert a["outcome"] == "not-tls"
    assert a["banner"].startswith(banner)


def test_closed_port_refused(tmp_path: Path) -> None:
    doc = probe(tmp_path, f"127.0.0.1:{closed_port()}", "-p", "tls1.2-only")
    assert outcomes(doc) == ["refused"]


def test_drops_in_a_network_namespace(tmp_path: Path, drop_lab: Any) -> None:
    from tests.peers.netns import DROP_SYN_PORT, HANG_PORT, UNREACHABLE_PORT

    doc = probe(tmp_path, f"{drop_lab.addr}:{HANG_PORT}", f"{drop_lab.addr}:{DROP_SYN_PORT}",
                f"{drop_lab.addr}:{UNREACHABLE_PORT}", "-p", "tls1.2-only", "--timeout", "2")
    by = {a["port"]: a for a in doc["attempts"]}
    assert by[HANG_PORT]["outcome"] == "hang-unacked"
    assert by[HANG_PORT]["tcp"]["acked"] is False
    assert by[HANG_PORT]["tcp"]["retransmits"] >= 1
    assert by[DROP_SYN_PORT]["outcome"] == "connect-timeout"
    assert by[UNREACHABLE_PORT]["outcome"] == "unreachable"
    assert "EHOSTUNREACH" in by[UNREACHABLE_PORT]["detail"]


def _isolated_resolver(tmp_path: Path, hosts: str) -> list[str] | None:
    """A command prefix giving the child its own /etc/hosts and a resolver that goes
    nowhere (nameserver on loopback, nothing listening): no query leaves the machine."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return None
    (tmp_path / "hosts").write_text(hosts)
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    script = (f"mount --bind {tmp_path / 'hosts'} /etc/hosts && "
              f"mount --bind {tmp_path / 'resolv.conf'} /etc/resolv.conf && "
              'exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


def test_names_from_a_hosts_file_and_dns_error(tmp_path: Path, openssl_server_factory: Any
                                               ) -> None:
    prefix = _isolated_resolver(tmp_path, "127.0.0.1 demo.test\n")
    if prefix is None:
        pytest.skip("needs root and unshare(1) to give the probe its own hosts file")
    srv = openssl_server_factory(cert="rsa")
    out = tmp_path / "names.json"
    res = subprocess.run([*prefix, sys.executable, "-m", "prober", "probe",
                          f"demo.test:{srv.port}", "nowhere.test:443", "-p", "tls1.2-only",
                          "-q", "--json", str(out)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    by = {a["host"]: a for a in doc["attempts"]}
    assert by["demo.test"]["outcome"] == "ok"
    assert by["demo.test"]["sni"] == "demo.test"
    assert by["nowhere.test"]["outcome"] == "dns-error"


def test_sni_and_address_overrides(tmp_path: Path, openssl_server_factory: Any) -> None:
    srv = openssl_server_factory(cert="rsa")
    doc = probe(tmp_path, f"shop.demo.test:{srv.port}", "--address", "127.0.0.1",
                "-p", "tls1.2-only")
    (a,) = doc["attempts"]
    assert a["outcome"] == "ok" and a["address"] == "127.0.0.1" and a["sni"] == "shop.demo.test"
    doc = probe(tmp_path, f"shop.demo.test:{srv.port}", "--address", "127.0.0.1", "--no-sni",
                "-p", "tls1.2-only")
    assert doc["attempts"][0]["sni"] is None


def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in ((["probe", "host:99999"], "port"),
                         (["probe", "127.0.0.1", "-p", "no-such-profile"], "no-such-profile"),
                         (["probe", "127.0.0.1", "-p", "cipher:NOPE"], "NOPE"),
                         (["probe"], "no target"),
                         (["probe", "127.0.0.1", "--repeat", "0"], "--repeat"),
                         (["probe", "[::1"], "]"),
                         (["probe", "127.0.0.1", "--frobnicate"], "--frobnicate")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert needle in err


def test_interrupted_run_keeps_what_it_measured(tmp_path: Path) -> None:
    jsonl, doc_path = tmp_path / "a.jsonl", tmp_path / "a.json"
    with SilentReader() as silent, ResetAfterHello() as rst:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prober", "probe", f"127.0.0.1:{rst.port}",
             f"127.0.0.1:{silent.port}", "-p", "tls1.2-only", "-n", "50", "--timeout", "30",
             "--jsonl", str(jsonl), "--json", str(doc_path), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        poll_until(lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) >= 50, 20,
                   step=0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(lines) >= 50
    assert {x["outcome"] for x in lines} == {"reset"}
    doc = json.loads(doc_path.read_text())
    assert doc["complete"] is False
    assert len(doc["attempts"]) == len(lines)
