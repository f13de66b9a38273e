"""A server certificate that ``cryptography`` cannot read costs only its own details:
the attempt stays ``ok``, the certificate is recorded as undecodable (SHA-256 of the
DER and the error kind), and ``probe --json``/``--jsonl`` and ``policy`` finish."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from prober.wire.certificates import describe
from tests.hostile.certs import BROKEN, good_certificate
from tests.hostile.cli import probe_one, run_prober
from tests.hostile.tls13_server import Answer, HostileTls13

Hostile = Callable[[Answer], HostileTls13]


def flight_with(der: bytes) -> Answer:
    return lambda s: s.whole_flight(der, good_certificate())


def assert_undecodable(cert: dict[str, object], der: bytes, kind: str) -> None:
    assert cert["undecodable"] is True
    assert cert["sha256"] == hashlib.sha256(der).hexdigest()
    assert cert["error_kind"] == kind
    assert isinstance(cert["error"], str) and kind in cert["error"]
    assert "key_type" not in cert


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_broken_certificate_in_probe_json_and_jsonl(tmp_path: Path, hostile: Hostile,
                                                    broken: str) -> None:
    make, kind = BROKEN[broken]
    der = make()
    srv = hostile(flight_with(der))
    jsonl = tmp_path / "attempts.jsonl"
    _, a = probe_one(tmp_path, srv.port, "tls1.3-only", "--jsonl", str(jsonl))
    assert a["outcome"] == "ok", a["detail"]
    assert a["negotiated"]["decrypted"] is True
    assert a["chain_length"] == 2
    assert_undecodable(a["certificate"], der, kind)
    (line,) = jsonl.read_text().splitlines()
    assert json.loads(line)["certificate"] == a["certificate"]


@pytest.mark.parametrize("broken", ["bad-version", "truncated-extension"])
def test_policy_survives_a_broken_certificate(tmp_path: Path, hostile: Hostile,
                                              broken: str) -> None:
    make, kind = BROKEN[broken]
    der = make()
    srv = hostile(flight_with(der))
    out = tmp_path / "policy.json"
    run = run_prober(tmp_path, "policy", f"127.0.0.1:{srv.port}", "--json", str(out),
                     "-t", "2", "-c", "4", "--budget", "60")
    run.assert_survived()
    assert "CERTIFICATES" in run.stdout
    doc = json.loads(out.read_text())
    (cert,) = doc["certificates"]
    assert_undecodable(cert, der, kind)
    assert cert["versions"] == ["TLSv1.3"]


# -- describe() alone --------------------------------------------------------------------


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_describe_is_total_and_plain(broken: str) -> None:
    make, kind = BROKEN[broken]
    der = make()
    first = describe(der)
    assert_undecodable(first, der, kind)
    again = describe(der)  # the cached answer, in a dict of its own
    assert again == first and again is not first
    json.dumps(first)


def test_describe_reads_a_good_certificate() -> None:
    d = describe(good_certificate())
    assert d["key_type"] == "ECDSA" and d["key_bits"] == 256 and d["curve"] == "secp256r1"
    assert d["subject"] == "CN=hostile test peer"
    assert d["san"] == ["localhost"]
    assert "undecodable" not in d
    d["san"].append("mutated")  # each caller's lists are its own
    assert describe(good_certificate())["san"] == ["localhost"]
    assert json.loads(json.dumps(d))
