"""sslyze's checks (``--deep``) and sslyze's own Mozilla verdict, against servers the tests
start. The servers' certificates come from the test PKI, whose CA no trust store knows."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from prober.policy.deep import DEEP_CHECKS, deep_scan, mozilla_compliance_live
from prober.policy.model import ObservedPolicy
from prober.policy.naming import catalog
from prober.policy.naming.match import mozilla_compliance, sslyze_mozilla_profile
from tests.peers import Pki, closed_port
from tests.policy.test_naming import openssl_expand


def _leaf_sha256(pem_path: Any) -> str:
    leaf = x509.load_pem_x509_certificates(pem_path.read_bytes())[0]
    return hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()


def test_deep_scan_nginx(nginx_factory: Any, pki: Pki) -> None:
    srv = nginx_factory(cert="both")  # default HIGH ciphers: RSA key exchange too
    report = deep_scan("localhost", srv.port, sni="localhost", address="127.0.0.1")
    checks = report["checks"]
    assert set(checks) == set(DEEP_CHECKS)
    for name, entry in checks.items():
        assert entry["status"] == "completed", (name, entry)
        assert entry["verdict"], name
    assert report["connectivity"]["status"] == "completed"
    assert report["connectivity"]["highest_tls_version"] == "TLSv1.3"
    assert report["target"] == {"host": "localhost", "port": srv.port, "sni": "localhost",
                                "address": "127.0.0.1"}
    # the server itself saw sslyze's SNI
    assert any(s.sni == "localhost" for s in srv.sessions())

    assert checks["heartbleed"]["figures"] == {"vulnerable": False}
    assert checks["heartbleed"]["ok"] is True
    assert checks["ccs_injection"]["figures"] == {"vulnerable": False}
    assert checks["robot"]["figures"]["result"].startswith("NOT_VULNERABLE")
    assert checks["robot"]["ok"] is True
    assert checks["compression"]["figures"] == {"compression": False}
    assert checks["compression"]["verdict"] == "TLS compression disabled"
    assert checks["renegotiation"]["figures"]["secure_renegotiation"] is True
    assert checks["early_data"]["figures"] == {"early_data": False}  # nginx default: off
    resumption = checks["session_resumption"]["figures"]
    assert resumption["session_ticket"]["attempted"] > 0

    cert = checks["certificate"]
    assert cert["ok"] is False
    assert cert["verdict"].startswith("not trusted by any of sslyze's stores")
    deployments = cert["figures"]["deployments"]
    # RSA and ECDSA certificates side by side: sslyze finds both
    assert {d["leaf"]["key_type"] for d in deployments} == {"RSA", "ECDSA"}
    assert {d["leaf"]["sha256"] for d in deployments} == {
        _leaf_sha256(pki.rsa_cert), _leaf_sha256(pki.ecdsa_cert)}
    for d in deployments:
        assert d["trusted_by"] == []
        assert d["trust"] and all(not t["trusted"] for t in d["trust"])
        assert d["chain_length"] == 2


def test_deep_scan_own_ca_and_unreachable(nginx_factory: Any, pki: Pki) -> None:
    srv = nginx_factory(cert="ecdsa", ciphers="ECDHE+AESGCM")
    report = deep_scan("127.0.0.1", srv.port, sni=None, ca_file=pki.ca_cert)
    cert = report["checks"]["certificate"]
    assert cert["verdict"].startswith("trusted by Supplied CA file")
    assert report["sni_sent"] == "127.0.0.1"  # sslyze cannot send no SNI
    assert report["checks"]["robot"]["figures"]["result"] == "NOT_VULNERABLE_RSA_NOT_SUPPORTED"

    down = deep_scan("127.0.0.1", closed_port(), sni=None, timeout=1)
    assert down["connectivity"]["status"] == "error"
    for name, entry in down["checks"].items():
        assert entry["status"] == "error", name
        assert entry["verdict"].startswith("not checked: no connection"), name


def test_deep_scan_never_resolves_a_name() -> None:
    with pytest.raises(ValueError, match="address"):
        deep_scan("demo.test", 443, sni="demo.test")


def test_mozilla_live_intermediate_server(nginx_factory: Any, pki: Pki) -> None:
    version, source, _doc = sslyze_mozilla_profile()
    moz = catalog.get(f"mozilla-intermediate-{version}")  # the profile sslyze checks against
    assert moz.protocols is not None and moz.tls13_suites is not None and moz.groups
    string = ":".join(moz.raw["ciphers"])
    srv = nginx_factory(
        cert="rsa", protocols=" ".join(sorted(moz.protocols)), ciphers=string,
        ecdh_curve=":".join(moz.groups),
        conf_commands={"Ciphersuites": ":".join(moz.tls13_suites)})
    verdicts = mozilla_compliance_live("localhost", srv.port, "localhost", "127.0.0.1",
                                       levels=("intermediate", "modern"), ca_file=pki.ca_cert)
    inter, modern = verdicts["intermediate"], verdicts["modern"]
    assert inter.mode == "live" and inter.profile_version == version
    assert inter.compliant is True, inter.issues
    assert modern.compliant is False
    # TLS 1.2 and an RSA certificate are what modern forbids here
    assert "TLSv1.2" in modern.issues["tls_versions"]
    assert "ecdsa" in modern.issues["certificate_types"]
    assert modern.text().startswith(f"Mozilla modern {version} (live, {source}): not compliant: ")

    # without our CA sslyze cannot validate the chain, and says so
    untrusted = mozilla_compliance_live("localhost", srv.port, "localhost", "127.0.0.1")
    assert untrusted["intermediate"].compliant is False
    assert set(untrusted["intermediate"].issues) == {"certificate_path_validation"}

    # the offline check of the same configuration (OpenSSL's expansion) agrees
    obs = ObservedPolicy(
        versions=list(moz.protocols),
        suites={v: openssl_expand(":".join(moz.tls13_suites) if v == "TLSv1.3" else string, v)
                for v in moz.protocols},
        groups_tls13=list(moz.groups), groups_tls12=list(moz.groups))
    assert mozilla_compliance(obs, "intermediate").compliant is True
    assert set(mozilla_compliance(obs, "modern").issues) <= set(modern.issues)
