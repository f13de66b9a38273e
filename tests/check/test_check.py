"""`prober check` as a CI gate, against real servers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main

PASSING = """\
schema: 1
profiles:
  - profiles: [tls1.2-only, tls1.3-only, firefox-137-win11]
    allow: ok
  - profiles: [tls1.1-only, tls1.0-only]
    allow: [alert]
    detail: protocol_version
min_version: TLSv1.2
forbidden_suites: ["*CBC*", "*RC4*", "*3DES*", "AES128-GCM-SHA256"]
required_groups: [x25519, secp256r1]
certificate: {valid_days: 7}
"""


@pytest.fixture
def modern_nginx(nginx_factory: Any) -> Any:
    return nginx_factory(cert="ecdsa", protocols="TLSv1.2 TLSv1.3",
                         ciphers="ECDHE+AESGCM:ECDHE+CHACHA20")


def test_all_hold_exit_0_and_junit(tmp_path: Path, modern_nginx: Any) -> None:
    exp = tmp_path / "expect.yaml"
    exp.write_text(PASSING)
    junit, out = tmp_path / "junit.xml", tmp_path / "check.json"
    rc = main(["check", f"127.0.0.1:{modern_nginx.port}", "--expect", str(exp),
               "--junit", str(junit), "--json", str(out)])
    doc = json.loads(out.read_text())
    assert rc == 0, [v for v in doc["verdicts"] if not v["passed"]]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"
    cases = suite.findall("testcase")
    assert len(cases) == len(doc["verdicts"]) >= 10


def test_failures_exit_1_with_evidence(tmp_path: Path, openssl_server_factory: Any,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # an old-style server: TLS 1.0+, CBC suites, a certificate that expires in 30 days
    srv = openssl_server_factory(cert="rsa", min_protocol="TLSv1", ciphers="ALL:@SECLEVEL=0")
    exp = tmp_path / "expect.yaml"
    exp.write_text(PASSING.replace("valid_days: 7", "valid_days: 400"))
    junit = tmp_path / "junit.xml"
    rc = main(["check", f"127.0.0.1:{srv.port}", "--expect", str(exp), "--junit", str(junit),
               "-c", "1"])
    assert rc == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "min_version TLSv1.2" in out
    failed = {c.get("name"): c.find("failure") for c in ET.parse(junit).getroot().iter("testcase")}
    fail = failed["min_version TLSv1.2"]
    assert fail is not None and "tls1.1-only: ok (TLSv1.1" in (fail.text or "")
    cbc = next(v for k, v in failed.items() if k and k.startswith("forbidden_suites"))
    assert cbc is not None and "CBC" in (cbc.text or "")
    cert = failed["certificate valid for 400 more days"]
    assert cert is not None and "expires" in (cert.text or "")
    # the passing ones are passing
    assert failed["required_groups x25519"] is None


@pytest.mark.parametrize("text,needle", [
    ("schema: 1\nprofiles:\n  - profiles: [tls1.2-only]\n    allow: [okay]\n", "okay"),
    ("schema: 1\nmin_version: TLSv9\n", "TLSv9"),
    ("schema: 1\nforbidden_suites: [NOT-A-SUITE]\n", "NOT-A-SUITE"),
    ("schema: 1\npolicy: {equals: ELBSecurityPolicy-Nope}\n", "ELBSecurityPolicy-Nope"),
    ("schema: 1\nfrobs: 1\n", "frobs"),
    ("schema: 1\nprofiles:\n  - profiles: [no-such-profile]\n    allow: ok\n", "no-such-profile"),
    ("{unclosed", "YAML"),
])
def test_bad_expectations_exit_2_one_line(tmp_path: Path, text: str, needle: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "bad.yaml"
    exp.write_text(text)
    assert main(["check", "127.0.0.1:1", "--expect", str(exp)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


def test_missing_expectations_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "127.0.0.1:1", "--expect", "/nonexistent/x.yaml"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_policy_and_findings_expectations(tmp_path: Path, modern_nginx: Any,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from tests.peers.misbehaving import SilentReader

    exp = tmp_path / "expect.yaml"
    exp.write_text("schema: 1\ntimeout: 1\n"
                   "policy: {equals: ELBSecurityPolicy-FS-1-2-Res-2020-10,\n"
                   "         no_weaker_than: ELBSecurityPolicy-2016-08}\n"
                   "no_findings: [silent-proxy]\n")
    out = tmp_path / "check.json"
    # nginx with ECDHE+AESGCM:ECDHE+CHACHA20, TLS 1.2+1.3: not the FS-1-2-Res policy (it adds
    # TLS 1.3 and ChaCha20), but nothing weaker than 2016-08 either
    rc = main(["check", f"127.0.0.1:{modern_nginx.port}", "--expect", str(exp),
               "--json", str(out)])
    verdicts = {v["expectation"]: v for v in json.loads(out.read_text())["verdicts"]}
    assert rc == 1
    eq = verdicts["policy equals ELBSecurityPolicy-FS-1-2-Res-2020-10"]
    assert not eq["passed"] and "TLS 1.3" in eq["message"]
    weaker = verdicts["policy no weaker than ELBSecurityPolicy-2016-08"]
    assert weaker["passed"] is False  # TLS 1.3 and its suites are beyond 2016-08
    assert "TLSv1.3" in weaker["message"] or "TLS 1.3" in weaker["message"]
    assert verdicts["no finding silent-proxy"]["passed"] is True
    capsys.readouterr()
    with SilentReader() as silent:
        rc = main(["check", f"127.0.0.1:{silent.port}", "--expect", str(exp),
                   "--json", str(out)])
    verdicts = {v["expectation"]: v for v in json.loads(out.read_text())["verdicts"]}
    assert rc == 1
    hang = verdicts["no finding silent-proxy"]
    assert not hang["passed"] and "ACKs the ClientHello" in hang["message"]
