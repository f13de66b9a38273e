"""What prober says was negotiated equals what the server itself says it chose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prober.cli.main import main

VERSIONS = ["tls1.0-only", "tls1.1-only", "tls1.2-only", "tls1.3-only"]
# single-cipher profiles a server with RSA + ECDSA certificates can negotiate
CIPHERS = [
    "ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-SHA256",
    "ECDHE-RSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384",
    "AES128-SHA", "AES256-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA256",
    "AES256-SHA256", "CAMELLIA128-SHA", "ECDHE-RSA-AES256-SHA@TLSv1.0", "AES128-SHA@TLSv1.1",
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
]


def _run(tmp_path: Path, port: int, profiles: list[str], *extra: str) -> list[dict[str, Any]]:
    out = tmp_path / f"agree-{port}.json"
    args = ["probe", f"127.0.0.1:{port}", "-q", "--json", str(out), "-c", "1", *extra]
    for p in profiles:
        args += ["-p", p]
    assert main(args) == 0
    attempts: list[dict[str, Any]] = json.loads(out.read_text())["attempts"]
    return sorted(attempts, key=lambda a: a["id"])


def test_openssl_s_server_agrees(tmp_path: Path, openssl_server_factory: Any) -> None:
    srv = openssl_server_factory(
        cert="both", ciphers="ALL:@SECLEVEL=0", min_protocol="TLSv1",
        ciphersuites="TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                     "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256")
    profiles = VERSIONS + [f"cipher:{c}" for c in CIPHERS]
    attempts = _run(tmp_path, srv.port, profiles)
    hellos = [h for h in srv.wait_server_hellos(len(attempts)) if not h.hrr]
    assert len(hellos) == len(attempts)
    ciphers_checked = 0
    for a, h in zip(attempts, hellos, strict=True):
        assert a["outcome"] == "ok", a
        neg = a["negotiated"]
        assert neg["version"] == {"TLSv1": "TLSv1.0"}.get(h.version, h.version), (a, h)
        assert neg["suite"] == h.cipher, (a, h)
        if h.group is not None:
            assert neg["group"] == h.group, (a, h)
        ciphers_checked += a["profile"].startswith("cipher:")
    assert ciphers_checked >= 20


def test_nginx_log_agrees_on_tls13(tmp_path: Path, nginx_factory: Any) -> None:
    # nginx logs protocol and cipher for a TLS 1.3 flight the client abandons; for an
    # abandoned TLS 1.2 handshake it logs no cipher, so 1.2 is checked on s_server above
    ngx = nginx_factory(cert="ecdsa", protocols="TLSv1.2 TLSv1.3",
                        conf_commands={"Ciphersuites": "TLS_AES_256_GCM_SHA384:"
                                       "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"})
    profiles = ["tls1.3-only", "cipher:TLS_AES_256_GCM_SHA384",
                "cipher:TLS_CHACHA20_POLY1305_SHA256", "cipher:TLS_AES_128_GCM_SHA256",
                "firefox-137-win11", "edge-133-win11"]
    attempts = _run(tmp_path, ngx.port, profiles)
    sessions = {s.client.rsplit(":", 1)[1]: s for s in ngx.wait_sessions(len(attempts))}
    for a in attempts:
        s = sessions[str(a["local_port"])]
        assert a["outcome"] == "ok", a
        assert a["negotiated"]["version"] == s.protocol
        assert a["negotiated"]["suite_openssl"] == s.cipher


def test_python_ssl_server_agrees(tmp_path: Path, python_tls_server_factory: Any) -> None:
    srv = python_tls_server_factory()
    profiles = ["tls1.2-only", "tls1.3-only", "cipher:ECDHE-RSA-AES128-GCM-SHA256",
                "cipher:TLS_CHACHA20_POLY1305_SHA256"]
    attempts = _run(tmp_path, srv.port, profiles)
    assert all(a["outcome"] == "ok" for a in attempts), attempts
    for a in attempts:
        assert a["negotiated"]["suite_openssl"] is not None
    # the stdlib server records a handshake only when it completes; a TLS 1.3 server
    # completes its side after sending Finished, which is all a probe waits for
    done = srv.wait_handshakes(2, timeout=5)
    tls13 = {c for v, c in done if v == "TLSv1.3"}
    assert tls13 <= {a["negotiated"]["suite_openssl"] for a in attempts}
