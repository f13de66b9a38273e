"""STARTTLS against real servers from the Debian packages (tests/peers/starttls_servers):
Exim, Dovecot (IMAP, POP3), vsftpd, slapd, Prosody and PostgreSQL, one instance per
protocol per session on ephemeral loopback ports.

What prober negotiates after each preamble is checked against ``openssl s_client
-starttls PROTO`` with the same single-suite offer (version, suite and the certificate's
SHA-256); the preamble's failures come from the servers themselves (STARTTLS not
offered, refused with a 550, the wrong protocol); `policy --starttls smtp` must equal
the restricted policy the SMTP server is configured with, suite for suite, as openssl
finds it too; diagnose and check run over the same preamble.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.core.targets import parse_target, with_overrides
from tests.peers.lifecycle import poll_until
from tests.peers.starttls_servers import (
    NOT_OFFERED_HOST,
    REFUSED_HOST,
    SERVER_NAME,
    SMTP_POLICY,
)

Get = Callable[[str], tuple[Any, int]]
PROTOCOLS = ["smtp", "imap", "pop3", "ftp", "ldap", "xmpp", "postgres"]

# (prober profile, openssl options): one suite each, so both clients offer the same
OFFERS = [
    ("cipher:TLS_AES_256_GCM_SHA384", ["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"]),
    ("cipher:ECDHE-RSA-AES128-GCM-SHA256",
     ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]),
    ("cipher:ECDHE-RSA-CHACHA20-POLY1305",
     ["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"]),
]


def openssl(protocol: str, port: int, *opts: str, host: str = "127.0.0.1") -> dict[str, Any]:
    """What ``openssl s_client -starttls`` negotiated: version, suite (IANA name for TLS
    1.3, OpenSSL's otherwise) and the leaf's SHA-256; {} when the handshake failed."""
    argv = ["openssl", "s_client", "-starttls", protocol, "-connect", f"{host}:{port}",
            "-servername", SERVER_NAME, *opts]
    if protocol == "xmpp":
        argv += ["-xmpphost", SERVER_NAME]
    r = subprocess.run(argv, input="", capture_output=True, text=True, timeout=20)
    new = re.search(r"^New, (\S+), Cipher is (\S+)", r.stdout, re.M)
    cert = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
    if not new or new.group(1) == "(NONE)" or not cert:
        return {}
    der = ssl.PEM_cert_to_DER_cert(cert.group())
    return {"version": new.group(1), "suite": new.group(2),
            "sha256": hashlib.sha256(der).hexdigest()}


def probe(tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str, port: int,
          *args: str, host: str = "127.0.0.1") -> dict[str, Any]:
    out = tmp_path / f"probe-{protocol}-{port}.json"
    rc = main(["probe", f"{SERVER_NAME}:{port}", "--address", host, "--starttls", protocol,
               "-t", "5", "--json", str(out), *args])
    capsys.readouterr()
    assert rc == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


@pytest.mark.requires_bin("openssl")
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_negotiation_agrees_with_openssl(protocol: str, starttls_server: Get, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, port = starttls_server(protocol)
    doc = probe(tmp_path, capsys, protocol, port, *[a for p, _ in OFFERS for a in ("-p", p)])
    assert doc["schema"] == "prober.probe/2"
    assert doc["targets"][0]["starttls"] == protocol
    by = {a["profile"]: a for a in doc["attempts"]}
    agreed = 0
    for profile, opts in OFFERS:
        a, theirs = by[profile], openssl(protocol, port, *opts)
        assert a["starttls"]["ready"] is True, a
        assert a["starttls"]["transcript"], a
        if not theirs:
            assert a["outcome"] != "ok", (profile, a["detail"])
            continue
        assert a["outcome"] == "ok", (profile, a["detail"], theirs)
        neg = a["negotiated"]
        assert neg["version"] == theirs["version"]
        assert theirs["suite"] in (neg["suite"], neg["suite_openssl"])
        assert a["certificate"]["sha256"] == theirs["sha256"]
        # the preamble is not part of the TLS timings
        t = a["timings_ms"]
        assert t["connect"] <= t["starttls"] <= t["hello_sent"] <= t["first_byte"]
        agreed += 1
    # every server here takes TLS 1.2 with ECDHE-RSA-AES128-GCM at least
    assert agreed >= 1


@pytest.mark.parametrize(("protocol", "host", "failure", "words"), [
    ("smtp", NOT_OFFERED_HOST, "not-offered", "STARTTLS not offered by the SMTP server (at the "
                                              "EHLO reply): its extensions are"),
    ("smtp", REFUSED_HOST, "refused", "STARTTLS refused by the SMTP server (at the STARTTLS "
                                      "reply): 550 TLS refused for this listener"),
    ("imap", NOT_OFFERED_HOST, "not-offered", "STARTTLS not offered by the IMAP server"),
    ("pop3", NOT_OFFERED_HOST, "not-offered", "STARTTLS not offered by the POP3 server"),
])
def test_preamble_failures_from_real_servers(protocol: str, host: str, failure: str,
                                             words: str, starttls_server: Get,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, port = starttls_server(protocol)
    doc = probe(tmp_path, capsys, protocol, port, "-p", "tls1.2-only", host=host)
    (a,) = doc["attempts"]
    assert a["outcome"] == "starttls-failed", a
    assert a["starttls"]["failure"] == failure and a["detail"].startswith(words), a["detail"]
    assert "hello_sent" not in a["timings_ms"] or a["timings_ms"]["hello_sent"] is None
    assert doc["targets"][0]["tls_endpoint"]["kind"] == "starttls-failed"


def test_the_wrong_protocol_and_a_closed_preamble(starttls_server: Get, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, imap = starttls_server("imap")
    doc = probe(tmp_path, capsys, "smtp", imap, "-p", "tls1.2-only")
    (a,) = doc["attempts"]
    assert a["outcome"] == "starttls-failed" and a["starttls"]["failure"] == "unexpected"
    assert a["detail"].startswith("not a SMTP server (at the greeting): * OK")
    _, ldap = starttls_server("ldap")
    doc = probe(tmp_path, capsys, "imap", ldap, "-p", "tls1.2-only", "-t", "3")
    (a,) = doc["attempts"]
    # slapd speaks no greeting: IMAP's wait for one ends at the deadline
    assert a["outcome"] == "starttls-failed" and a["starttls"]["failure"] == "timeout", a


@pytest.mark.requires_bin("openssl")
def test_policy_over_smtp_is_exact(starttls_server: Get, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The restricted SMTP server (TLS 1.2, ECDHE-RSA with AES-256/128-GCM, server order):
    `prober policy --starttls smtp` finds exactly that, and openssl agrees suite by suite."""
    _, port = starttls_server("smtp")
    out = tmp_path / "policy.json"
    rc = main(["policy", f"{SERVER_NAME}:{port}", "--address", "127.0.0.1", "--starttls",
               "smtp", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "prober.policy/2" and doc["target"]["starttls"] == "smtp"
    assert doc["reliable"] is True, doc["warnings"]
    pol = doc["policy"]
    assert pol["versions"] == list(SMTP_POLICY.versions)
    assert [r["iana"] for r in doc["suites"]["TLSv1.2"]] == list(SMTP_POLICY.suites)
    assert pol["server_order"]["TLSv1.2"] is True
    assert set(doc["groups"]["tls12"]) == set(SMTP_POLICY.groups)
    assert "STARTTLS smtp" in text.splitlines()[0]
    # openssl: every ECDHE-RSA and RSA suite of TLS 1.2 it knows, one at a time
    names = subprocess.run(["openssl", "ciphers", "-tls1_2", "-s",
                            "kECDHE+aRSA:kRSA:kDHE+aRSA:@SECLEVEL=0"],
                           capture_output=True, text=True, check=True).stdout.strip().split(":")
    accepted = [n for n in names if openssl("smtp", port, "-tls1_2", "-cipher",
                                            f"{n}:@SECLEVEL=0")]
    openssl_names = {r["openssl"] for r in doc["suites"]["TLSv1.2"]}
    assert set(accepted) == openssl_names, (accepted, openssl_names)
    assert not openssl("smtp", port, "-tls1_3")
    assert not openssl("smtp", port, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0")


def test_diagnose_and_check_over_imap(starttls_server: Get, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    srv, port = starttls_server("imap")
    out = tmp_path / "diag.json"
    rc = main(["diagnose", f"{SERVER_NAME}:{port}", "--address", "127.0.0.1", "--starttls",
               "imap", "-n", "4", "--sweep-repeat", "1", "-t", "3", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "prober.diagnose/2"
    # Dovecot refuses versions below its minimum by closing (FIN) without an alert:
    # that, and its policy, is all there is behind the preamble
    found = {f["id"]: f for f in doc["findings"]}
    assert set(found) == {"policy-reset", "policy"}, doc["findings"]
    assert found["policy-reset"]["figures"]["versions"] == ["TLSv1.1", "TLSv1.0", "SSLv3"]
    assert "TCP FIN" in found["policy-reset"]["cause"]
    assert found["policy"]["figures"]["accepted"] == ["TLSv1.3", "TLSv1.2"]
    # the server's own log says its TLS library refused the handshake (it writes a little
    # after the close): "unsupported protocol" when it read the whole hello first, a
    # failed SSL_accept when our close of the attempt raced its read
    refused = ("unsupported protocol", "SSL_accept() syscall failed", "wrong version number")
    assert poll_until(lambda: any(r in srv._read("dovecot.log") for r in refused), 30.0), \
        srv._read("dovecot.log")[-2000:]
    assert doc["control"]["outcome"] == "silent"  # after the preamble, as a TLS server
    assert all(a["starttls"]["ready"] for a in doc["attempts"])
    exp = tmp_path / "expect.yaml"
    exp.write_text("schema: 1\nprofiles:\n  - profiles: [tls1.3-only, tls1.2-only]\n"
                   "    allow: ok\nmin_version: TLSv1.2\n")
    rc = main(["check", f"{SERVER_NAME}:{port}", "--address", "127.0.0.1", "--starttls",
               "imap", "-e", str(exp)])
    assert rc == 0, capsys.readouterr().out


def test_starttls_is_inferred_from_plaintext_ports_only(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    for port, proto in ((25, "smtp"), (587, "smtp"), (143, "imap"), (110, "pop3"),
                        (21, "ftp"), (389, "ldap"), (5222, "xmpp"), (5432, "postgres")):
        t = with_overrides(parse_target(f"mail.example.com:{port}"), None)
        assert (t.starttls, t.starttls_inferred) == (proto, True)
        assert with_overrides(parse_target(f"h:{port}"), None, starttls="none").starttls is None
    for port in (465, 993, 995, 636, 443, 5223):
        assert with_overrides(parse_target(f"h:{port}"), None).starttls is None
    t = with_overrides(parse_target("h:2525"), None, starttls="smtp")
    assert (t.starttls, t.starttls_inferred) == ("smtp", False)
    # the note, and the JSON, say it was inferred (nothing listens on 127.0.0.9:587)
    out = tmp_path / "p.json"
    assert main(["probe", "127.0.0.9:587", "-p", "tls1.2-only", "-t", "1",
                 "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert "port 587 is plaintext SMTP: using --starttls smtp (inferred from the port" in err
    target = json.loads(out.read_text())["targets"][0]
    assert (target["starttls"], target["starttls_inferred"]) == ("smtp", True)
    assert main(["probe", "127.0.0.9:587", "--starttls", "bogus"]) == 2


def test_policy_deep_hands_the_preamble_to_sslyze(starttls_server: Get, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, port = starttls_server("smtp")
    out = tmp_path / "deep.json"
    rc = main(["policy", f"{SERVER_NAME}:{port}", "--address", "127.0.0.1", "--starttls",
               "smtp", "--deep", "--json", str(out)])
    capsys.readouterr()
    assert rc == 0
    deep = json.loads(out.read_text())["deep"]
    # sslyze spoke SMTP's STARTTLS too, and found the same restricted server
    assert deep["connectivity"]["status"] == "completed", deep["connectivity"]
    assert deep["connectivity"]["highest_tls_version"] == "TLSv1.2"
    assert deep["checks"]["heartbleed"]["ok"] is True
