"""The test peers behave as claimed, checked with real clients: openssl s_client, curl,
gnutls-cli, the stdlib ssl module, raw sockets and asyncio streams."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import ssl
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import need_bins
from tests.peers import (
    HTTP_400,
    SMTP_BANNER,
    SSH_BANNER,
    DropLab,
    FinAfterHello,
    HttpSpeaker,
    NginxServer,
    OpenSSLServer,
    PartialFlight,
    Pki,
    PythonTLSServer,
    ResetAfterHello,
    SilentReader,
    SmtpBanner,
    SshBanner,
    client_hello,
    closed_port,
    free_port,
    is_listening,
    make_pki,
    wait_listening,
)
from tests.peers.lifecycle import poll_until, proc_stat
from tests.peers.tls_bytes import handshake_types, read_until_hello_done, records

pytestmark = pytest.mark.timeout(60)

HELLO = client_hello()
HELLO12 = client_hello(max_version=ssl.TLSVersion.TLSv1_2)


# -- clients ---------------------------------------------------------------------------
def s_client(port: int, *args: str, host: str = "127.0.0.1", ca: Path | None = None) -> str:
    """Run ``openssl s_client -brief`` (stdin at EOF: handshake, then close); return its
    combined output.  "CONNECTION ESTABLISHED" is in it when the handshake succeeded."""
    argv = ["openssl", "s_client", "-connect", f"{host}:{port}", "-brief", *args]
    if ca is not None:
        argv += ["-CAfile", str(ca), "-verify_return_error"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
    return r.stdout + r.stderr


def tls_connect(
    port: int,
    pki: Pki,
    *,
    host: str = "127.0.0.1",
    server_name: str = "demo.test",
    min_version: ssl.TLSVersion | None = None,
    max_version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
    request: bool = False,
) -> tuple[str, str, bytes, bytes]:
    """Verified stdlib-ssl handshake: (version, cipher, DER leaf cert, response)."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        version, cipher = tls.version() or "", (tls.cipher() or ("",))[0]
        der = tls.getpeercert(binary_form=True) or b""
        body = b""
        if request:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n\r\n")
            while chunk := tls.recv(4096):
                body += chunk
        return version, cipher, der, body


def curl(url: str, pki: Pki, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(pki.ca_cert), *extra, url],
        capture_output=True,
        text=True,
        timeout=15,
    )


def key_kind(der: bytes) -> str:
    key = x509.load_der_x509_certificate(der).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return f"ecdsa-{key.curve.name}"


def exchange(
    port: int, data: bytes, *, timeout: float = 5.0, first_timeout: float = 5.0,
    host: str = "127.0.0.1",
) -> list[object]:
    """Connect, send ``data``, read until EOF/error/timeout: list of chunks, then b'' (FIN),
    the exception type (RST, timeout).  ``first_timeout`` bounds the connect and the first
    chunk, ``timeout`` each later one: a short ``timeout`` says "and then nothing more"
    without also asking a loaded machine's listener thread to answer that fast."""
    out: list[object] = []
    with socket.create_connection((host, port), timeout=first_timeout) as s:
        if data:
            s.sendall(data)
        try:
            while True:
                chunk = s.recv(65536)
                out.append(chunk)
                if not chunk:
                    break
                s.settimeout(timeout)
        except OSError as e:
            out.append(type(e))
    return out


def joined(chunks: list[object]) -> bytes:
    return b"".join(c for c in chunks if isinstance(c, bytes))


def gone(pid: int) -> bool:
    """No such process, or a zombie."""
    stat = proc_stat(pid)
    return stat is None or stat[0] == "Z"


# -- pki / ports -----------------------------------------------------------------------
@pytest.mark.requires_bin("openssl")
def test_pki_chains_and_names(pki: Pki) -> None:
    for cert in (pki.rsa_cert, pki.ecdsa_cert, pki.ecdsa384_cert):
        assert cert is not None
        r = subprocess.run(
            ["openssl", "verify", "-CAfile", str(pki.ca_cert), str(cert)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(san.get_values_for_type(x509.DNSName)) >= {
            "localhost",
            "demo.test",
            "*.demo.test",
        }
        assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} >= {
            "127.0.0.1",
            "192.0.2.2",
        }
    kinds = {
        key_kind(x509.load_pem_x509_certificate(c.read_bytes()).public_bytes(Encoding.DER))
        for c in (pki.rsa_cert, pki.ecdsa_cert, pki.ecdsa384_cert)
        if c
    }
    assert kinds == {"rsa", "ecdsa-secp256r1", "ecdsa-secp384r1"}


def test_make_pki_without_p384(tmp_path: Path) -> None:
    p = make_pki(tmp_path)
    assert p.ecdsa384_cert is None and p.rsa_key.stat().st_mode & 0o777 == 0o600


def test_ports() -> None:
    port = free_port()
    assert not is_listening("127.0.0.1", port)
    with pytest.raises(TimeoutError):
        wait_listening("127.0.0.1", port, 0.1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        wait_listening("127.0.0.1", port, 1)
        assert is_listening("127.0.0.1", port, connect=True)


def test_missing_binary_skips_locally_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        need_bins("no-such-binary-prb")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        need_bins("no-such-binary-prb")


# -- openssl s_server ------------------------------------------------------------------
def test_openssl_default_and_server_view(
    openssl_server_factory: Callable[..., OpenSSLServer], pki: Pki
) -> None:
    srv = openssl_server_factory()
    version, cipher, der, _ = tls_connect(srv.port, pki)
    assert (version, key_kind(der)) == ("TLSv1.3", "rsa")
    out = s_client(srv.port, "-tls1_2", ca=pki.ca_cert)
    assert "CONNECTION ESTABLISHED" in out and "Protocol version: TLSv1.2" in out
    hs = srv.wait_handshakes(2)
    assert hs[0] == ("TLSv1.3", cipher)
    assert hs[1][0] == "TLSv1.2"
    hellos = srv.wait_server_hellos(2)
    assert [h.version for h in hellos] == ["TLSv1.3", "TLSv1.2"]
    assert hellos[0].cipher == cipher  # TLS 1.3 suites have the same name in both
    assert hellos[0].group == "x25519" and not hellos[0].hrr


def test_openssl_tls10_only_needs_seclevel0(
    openssl_server_factory: Callable[..., OpenSSLServer],
) -> None:
    srv = openssl_server_factory(
        min_protocol="TLSv1", max_protocol="TLSv1", ciphers="DEFAULT:@SECLEVEL=0"
    )
    out = s_client(srv.port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert "CONNECTION ESTABLISHED" in out and "Protocol version: TLSv1\n" in out, out
    assert "CONNECTION ESTABLISHED" not in s_client(srv.port, "-tls1")  # client at SECLEVEL 1
    assert "CONNECTION ESTABLISHED" not in s_client(srv.port, "-tls1_2")
    hs = srv.wait_handshakes(1)
    assert len(hs) == 1 and hs[0][0] == "TLSv1"
    assert poll_until(lambda: srv.errors() >= 2, 5), srv.log()


def test_openssl_tls13_only_rejects_tls12_client(
    openssl_server_factory: Callable[..., OpenSSLServer], pki: Pki
) -> None:
    srv = openssl_server_factory(min_protocol="TLSv1.3")
    out = s_client(srv.port, "-tls1_2")
    assert "CONNECTION ESTABLISHED" not in out
    assert "alert protocol version" in out
    with pytest.raises(ssl.SSLError):
        tls_connect(srv.port, pki, max_version=ssl.TLSVersion.TLSv1_2)
    assert "CONNECTION ESTABLISHED" in s_client(srv.port, "-tls1_3", ca=pki.ca_cert)
    assert [p for p, _ in srv.wait_handshakes(1)] == ["TLSv1.3"]
    assert [h.version for h in srv.server_hellos()] == ["TLSv1.3"]  # no hello for the 1.2s


@pytest.mark.parametrize(
    ("server_pref", "expected"),
    [(True, "ECDHE-RSA-AES128-GCM-SHA256"), (False, "ECDHE-RSA-AES256-GCM-SHA384")],
)
def test_openssl_cipher_preference(
    openssl_server_factory: Callable[..., OpenSSLServer], pki: Pki, server_pref: bool, expected: str
) -> None:
    srv = openssl_server_factory(
        ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384", server_pref=server_pref
    )
    _, cipher, _, _ = tls_connect(
        srv.port,
        pki,
        max_version=ssl.TLSVersion.TLSv1_2,
        ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
    )
    assert cipher == expected
    assert srv.wait_handshakes(1) == [("TLSv1.2", expected)]


def test_openssl_groups_hello_retry(
    openssl_server_factory: Callable[..., OpenSSLServer], pki: Pki
) -> None:
    srv = openssl_server_factory(groups="P-384")
    out = s_client(srv.port, "-tls1_3", "-groups", "X25519:P-384", ca=pki.ca_cert)
    assert "CONNECTION ESTABLISHED" in out
    hellos = srv.wait_server_hellos(2)
    assert [(h.hrr, h.group) for h in hellos] == [(True, "secp384r1"), (False, "secp384r1")]
    # TLS 1.2: the curve comes from the ServerKeyExchange
    assert "CONNECTION ESTABLISHED" in s_client(srv.port, "-tls1_2", ca=pki.ca_cert)
    assert srv.wait_server_hellos(3)[2].group == "secp384r1"


def test_openssl_server_hello_of_abandoned_handshake(
    openssl_server_factory: Callable[..., OpenSSLServer],
) -> None:
    """A ClientHello replay that hangs up after the server's flight: no completed
    handshake, but the trace has the ServerHello the server chose."""
    srv = openssl_server_factory(ciphers="ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA")
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(HELLO12)
        flight = read_until_hello_done(s)
    assert handshake_types(flight) == [2, 11, 12, 14]
    hellos = srv.wait_server_hellos(1)
    assert [(h.version, h.cipher, h.cipher_id) for h in hellos] == [
        ("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC02F)
    ]
    time.sleep(0.1)
    assert srv.handshakes() == []


@pytest.mark.requires_bin("gnutls-cli")
def test_openssl_both_certs(openssl_server_factory: Callable[..., OpenSSLServer], pki: Pki) -> None:
    srv = openssl_server_factory(cert="both")
    tls12 = ssl.TLSVersion.TLSv1_2
    _, _, der, _ = tls_connect(
        srv.port, pki, max_version=tls12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"
    )
    assert key_kind(der) == "ecdsa-secp256r1"
    _, _, der, _ = tls_connect(
        srv.port, pki, max_version=tls12, ciphers="ECDHE-RSA-AES128-GCM-SHA256"
    )
    assert key_kind(der) == "rsa"
    r = subprocess.run(
        [
            "gnutls-cli",
            "--x509cafile",
            str(pki.ca_cert),
            "--port",
            str(srv.port),
            "--priority",
            "NORMAL:-VERS-ALL:+VERS-TLS1.2",
            "localhost",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert "Handshake was completed" in r.stdout + r.stderr, r.stdout + r.stderr
    assert [p for p, _ in srv.wait_handshakes(3)] == ["TLSv1.2"] * 3


# -- nginx -----------------------------------------------------------------------------
@pytest.mark.requires_bin("curl")
def test_nginx_http_and_handshakes_without_request(
    nginx_factory: Callable[..., NginxServer], pki: Pki
) -> None:
    srv = nginx_factory()
    master, workers = srv.pid, srv.worker_pids()
    assert master and len(workers) == 1
    r = curl(f"https://localhost:{srv.port}/", pki)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
    assert "CONNECTION ESTABLISHED" in s_client(srv.port, "-tls1_2", ca=pki.ca_cert)
    version, cipher, _, _ = tls_connect(srv.port, pki)  # handshake, then close: no request
    sessions = srv.wait_sessions(3)
    assert [(s.status, s.protocol) for s in sessions] == [
        (200, "TLSv1.3"),
        (200, "TLSv1.2"),
        (200, "TLSv1.3"),
    ]
    assert sessions[0].sni == "localhost" and sessions[0].bytes_received > 0
    assert sessions[1].bytes_received == 0 and sessions[1].curve == "X25519"
    assert srv.handshakes()[2] == (version, cipher)
    assert [q.request for q in srv.requests()] == ["GET / HTTP/1.1"]
    srv.stop()
    assert gone(master) and all(gone(w) for w in workers)


def test_nginx_failed_handshakes_are_logged_without_crashing(
    nginx_factory: Callable[..., NginxServer], pki: Pki
) -> None:
    srv = nginx_factory(protocols="TLSv1.3")
    assert "CONNECTION ESTABLISHED" not in s_client(srv.port, "-tls1_2")
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:  # replay + hang up
        s.sendall(HELLO12)
        s.recv(100)
    with socket.create_connection((srv.host, srv.port), timeout=5):
        pass  # connect, send nothing
    assert "CONNECTION ESTABLISHED" in s_client(srv.port, ca=pki.ca_cert)
    sessions = srv.wait_sessions(4)
    assert [(s.status, s.negotiated) for s in sessions] == [
        (500, False),
        (500, False),
        (500, False),
        (200, True),
    ]
    assert sessions[0].protocol == "TLSv1.2"  # the version attempted, not negotiated
    assert srv.handshakes() == [("TLSv1.3", sessions[3].cipher)]
    assert "exited on signal" not in srv.error_log()  # $ssl_curve is guarded


def test_nginx_policy_knobs(nginx_factory: Callable[..., NginxServer], pki: Pki) -> None:
    srv = nginx_factory(
        cert="both",
        ecdh_curve="secp384r1",
        conf_commands={"Ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"},
        ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
    )
    version, cipher, _, _ = tls_connect(srv.port, pki)
    assert (version, cipher) == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
    _, cipher12, der12, _ = tls_connect(srv.port, pki, max_version=ssl.TLSVersion.TLSv1_2)
    assert cipher12 == "ECDHE-RSA-AES128-GCM-SHA256" and key_kind(der12) == "rsa"
    _, cipher12, der12, _ = tls_connect(
        srv.port, pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"
    )
    assert key_kind(der12) == "ecdsa-secp256r1"
    sessions = srv.wait_sessions(3)
    assert {s.curve for s in sessions} == {"secp384r1"}
    assert srv.handshakes() == [
        ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"),
        ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
        ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ]


def test_nginx_legacy_tls10(nginx_factory: Callable[..., NginxServer]) -> None:
    srv = nginx_factory(protocols="TLSv1", ciphers="ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    out = s_client(srv.port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert "Protocol version: TLSv1\n" in out, out
    assert srv.wait_sessions(1) and srv.handshakes() == [("TLSv1", "ECDHE-RSA-AES128-SHA")]


@pytest.mark.requires_bin("curl")
def test_nginx_http_mode_and_cpu(nginx_factory: Callable[..., NginxServer], pki: Pki) -> None:
    srv = nginx_factory(mode="http")
    before = srv.cpu_seconds()
    assert (
        curl(
            f"https://demo.test:{srv.port}/", pki, "--resolve", f"demo.test:{srv.port}:127.0.0.1"
        ).stdout
        == "ok\n"
    )
    for _ in range(80):  # RSA-2048 signatures: ~1 ms of server CPU each
        tls_connect(srv.port, pki, max_version=ssl.TLSVersion.TLSv1_2)
    sessions = srv.wait_sessions(1)
    assert [(s.request, s.protocol, s.sni) for s in sessions] == [
        ("GET / HTTP/1.1", "TLSv1.3", "demo.test")
    ]  # http mode logs requests only
    assert srv.cpu_seconds() > before


# -- python ssl server -----------------------------------------------------------------
@pytest.mark.requires_bin("curl")
def test_python_server(python_tls_server_factory: Callable[..., PythonTLSServer], pki: Pki) -> None:
    def tls12_only(p: Pki) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(p.ecdsa_cert, p.ecdsa_key)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    srv = python_tls_server_factory()
    v, c, _, body = tls_connect(srv.port, pki, request=True)
    assert body.startswith(b"HTTP/1.1 200 OK") and v == "TLSv1.3"
    assert curl(f"https://127.0.0.1:{srv.port}/", pki).stdout == "ok\n"
    assert srv.wait_handshakes(2)[0] == (v, c)
    assert srv.sni()[0] == "demo.test"

    srv12 = python_tls_server_factory(tls12_only)
    assert tls_connect(srv12.port, pki)[0] == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        tls_connect(srv12.port, pki, min_version=ssl.TLSVersion.TLSv1_3)
    assert poll_until(lambda: len(srv12.errors()) == 1, 5)
    # the server thread records a handshake after its side completes, which can be after
    # the client returned: wait for it rather than read the list once
    assert [h[0] for h in srv12.wait_handshakes(1)] == ["TLSv1.2"]


# -- misbehaving listeners -------------------------------------------------------------
def test_reset_after_hello() -> None:
    with ResetAfterHello() as srv:
        assert exchange(srv.port, HELLO) == [ConnectionResetError]
        assert srv.resets_sent == 1


async def test_reset_after_hello_asyncio() -> None:
    with ResetAfterHello() as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(HELLO)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 5)
        writer.close()


def test_fin_after_hello() -> None:
    with FinAfterHello() as srv:
        assert exchange(srv.port, HELLO) == [b""]
        # a hello split in two segments is read whole before the FIN
        with socket.create_connection((srv.host, srv.port), timeout=2) as s:
            s.sendall(HELLO[:3])
            time.sleep(0.1)
            s.sendall(HELLO[3:])
            assert s.recv(10) == b""
        assert srv.resets_sent == 0 and srv.bytes_received == 2 * len(HELLO)


@pytest.mark.requires_bin("openssl")
def test_silent_reader_many_connections() -> None:
    with SilentReader(backlog=2048) as srv:
        assert exchange(srv.port, HELLO, first_timeout=0.3) == [TimeoutError]
        assert (
            "CONNECTION ESTABLISHED"
            not in subprocess.run(
                ["timeout", "1", "openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        )
        socks = []
        try:
            for _ in range(2000):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", srv.port))
                socks.append(s)
            poll_until(lambda: srv.open_connections >= 2000, 10, step=0.05)
            assert srv.open_connections >= 2000
        finally:
            for s in socks:
                s.close()


@pytest.mark.requires_bin("curl")
def test_http_speaker(pki: Pki) -> None:
    with HttpSpeaker() as srv:
        chunks = exchange(srv.port, HELLO)
        assert joined(chunks) == HTTP_400 and chunks[-1] == b""
        r = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                f"http://127.0.0.1:{srv.port}/",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert r.stdout == "400"
        out = s_client(srv.port)
        assert "CONNECTION ESTABLISHED" not in out and "wrong version number" in out


@pytest.mark.parametrize(("cls", "banner"), [(SshBanner, SSH_BANNER), (SmtpBanner, SMTP_BANNER)])
def test_banners(cls: type[SshBanner] | type[SmtpBanner], banner: bytes) -> None:
    assert banner.startswith(
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b"220 mail.demo.test ESMTP Postfix\r\n")
    )
    with cls() as srv:
        assert exchange(srv.port, b"", timeout=0.3) == [banner, TimeoutError]
        assert exchange(srv.port, HELLO, timeout=0.3) == [banner, TimeoutError]
        out = s_client(srv.port)
        assert "CONNECTION ESTABLISHED" not in out


def test_partial_flight(tls12_flight: bytes) -> None:
    assert handshake_types(tls12_flight) == [2, 11, 12, 14]
    assert next(records(tls12_flight))[1] == 0x0303
    with PartialFlight(100, "stall") as srv:
        chunks = exchange(srv.port, HELLO, timeout=0.5)
        assert joined(chunks) == tls12_flight[:100] and chunks[-1] is TimeoutError
    with PartialFlight(100, "reset") as srv:
        chunks = exchange(srv.port, HELLO)
        assert joined(chunks) == tls12_flight[:100] and chunks[-1] is ConnectionResetError
    with PartialFlight(len(tls12_flight) - 1, "fin") as srv:
        chunks = exchange(srv.port, HELLO)
        assert joined(chunks) == tls12_flight[:-1] and chunks[-1] == b""
    with PartialFlight(10_000, "fin") as srv:  # whole flight, then FIN: s_client gives up
        chunks = exchange(srv.port, HELLO12)
        assert joined(chunks) == tls12_flight and chunks[-1] == b""
        # a real client parses the whole canned flight, certificate included, and only
        # fails at the ServerKeyExchange signature (it signed another client's random)
        out = s_client(srv.port, "-tls1_2")
        assert "CONNECTION ESTABLISHED" not in out and "demo.test (rsa)" in out
        assert "bad signature" in out


def test_partial_flight_rejects_bad_then() -> None:
    with pytest.raises(ValueError):
        PartialFlight(10, "explode")  # type: ignore[arg-type]


def test_closed_port() -> None:
    port = closed_port()
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)


# -- DropLab ---------------------------------------------------------------------------
def _outq(s: socket.socket) -> int:
    value: int = struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    return value


@pytest.mark.root
def test_drop_lab_connect_timeout(drop_lab: DropLab) -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        socket.create_connection((drop_lab.addr, drop_lab.drop_syn_port), timeout=1)
    assert time.monotonic() - t0 >= 0.9


@pytest.mark.root
def test_drop_lab_hello_never_acked(drop_lab: DropLab) -> None:
    with socket.create_connection((drop_lab.addr, drop_lab.hang_port), timeout=1) as s:
        s.sendall(HELLO)
        with pytest.raises(TimeoutError):
            s.recv(100)
        assert _outq(s) == len(HELLO)  # every byte still waiting for its ACK

    def kinds() -> list[str]:
        return [e[0] for e in drop_lab.events() if e[1] == drop_lab.hang_port]

    assert poll_until(lambda: "accept" in kinds(), 5)
    assert "data" not in kinds()


@pytest.mark.root
async def test_drop_lab_hang_asyncio(drop_lab: DropLab) -> None:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(drop_lab.addr, drop_lab.hang_port), 2
    )
    writer.write(HELLO)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(reader.read(100), 0.5)
    writer.transport.abort()


@pytest.mark.root
def test_drop_lab_unreachable(drop_lab: DropLab) -> None:
    for _ in range(5):
        with pytest.raises(OSError) as info:
            socket.create_connection((drop_lab.addr, drop_lab.unreachable_port), timeout=2)
        assert info.value.errno == errno.EHOSTUNREACH


@pytest.mark.root
def test_drop_lab_cleanup(drop_lab: DropLab) -> None:
    """A second lab next to the module's one takes another range, and leaves nothing."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with DropLab() as lab:
        assert lab.addr != drop_lab.addr
        route = subprocess.run(
            ["ip", "-o", "route", "get", lab.addr], capture_output=True, text=True, check=True
        ).stdout
        assert f"dev {lab.host_if}" in route
        ns, pid = lab.ns, lab.listener_pid
        assert pid is not None
    netns = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert ns not in netns and gone(pid)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert lab.host_if not in links


def test_drop_lab_skips_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="needs root"), DropLab():
        pass
