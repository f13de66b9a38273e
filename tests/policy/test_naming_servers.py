"""`prober policy` names real servers configured as a catalog policy: nginx and HAProxy, each
with an RSA, an ECDSA and both certificates, for AWS ELB policies and Mozilla levels.

The configurations come from ``tests/peers/policy_configs.py`` (AWS's tables transcribed
there, Mozilla's guideline files rendered the way its generator does), not from the
catalog code; what each server can serve comes from OpenSSL's own expansion of the
configured strings. The expected verdict follows from those two alone:

* named literally when the server serves everything the policy lists;
* named as applicable when what it lacks is exactly the suites of a certificate type it
  does not hold (and, for Mozilla 5.8/6.0, the X25519MLKEM768 its generator leaves out
  below OpenSSL 3.5);
* not named otherwise (this OpenSSL has no SSLv3, 3DES, SEED or DSA certificates), the
  edit list naming exactly what is missing.

CI runs the full certificate cross product on the six ELB policies, every distinct
Mozilla configuration once, deliberately altered configurations, and `check` end to end;
``scripts/naming_matrix.py`` runs everything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.policy.model import ObservedPolicy
from prober.policy.naming import catalog
from prober.policy.naming.match import compare
from prober.wire import registry as reg
from tests.peers.policy_configs import (
    AWS_ELB,
    CERTS,
    PolicyConfig,
    expected_verdict,
    haproxy_kwargs,
    mozilla_all,
    nginx_kwargs,
    prescribed_cert,
)

SERVERS = ("nginx", "haproxy")


def start(server: str, cfg: PolicyConfig, cert: str, request: pytest.FixtureRequest,
          dhparam: Path) -> Any:
    if server == "nginx":
        return request.getfixturevalue("nginx_factory")(**nginx_kwargs(cfg, cert, dhparam))
    return request.getfixturevalue("haproxy_factory")(**haproxy_kwargs(cfg, cert, dhparam))


def scan(port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
         *extra: str) -> tuple[dict[str, Any], str]:
    # by name: HAProxy chooses among its certificates only for a client that sends SNI
    out = tmp_path / f"policy-{port}.json"
    assert main(["policy", f"localhost:{port}", "--address", "127.0.0.1", "--json", str(out),
                 *extra]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def observation(doc: dict[str, Any]) -> ObservedPolicy:
    p = dict(doc["policy"])
    p.pop("order", None)
    return ObservedPolicy(**p)


def check_named(cfg: PolicyConfig, cert: str, server: str, doc: dict[str, Any],
                table: str) -> None:
    assert doc["reliable"] is True, doc["warnings"]
    kind, missing = expected_verdict(cfg, cert)
    verdict = doc["catalog"]
    found = {m["name"]: m for m in verdict["matches"]}
    entry = catalog.get(cfg.name)
    c = compare(observation(doc), entry)
    if kind is None:
        assert cfg.name not in found, verdict["text"]
        assert c.kind == "differs"
        words = c.diff.words()
        assert words.startswith("minus ") and ";" not in words, words
        got = {w.strip() for w in words[len("minus "):].split(",")}
        labels = {m if not m.startswith("TLS 1.3 suite ") else m[len("TLS 1.3 suite "):]
                  for m in missing}
        assert got == labels, (words, missing)
        return
    assert cfg.name in found, verdict["text"]
    m = found[cfg.name]
    assert m["kind"] == kind, (m, verdict["text"])
    reasons = {r["reason"] for r in m["not_applicable"]}
    if kind == "equal":
        assert not reasons
    assert ("library" in reasons) is bool(cfg.left_out)
    if "certificate" in reasons:
        cert_items = next(r["items"] for r in m["not_applicable"] if r["reason"] == "certificate")
        held = {"rsa": "RSA", "ecdsa": "ECDSA", "both": ""}[cert]
        for item in cert_items:
            if item.startswith(("TLS ", "SSL ")) or not held:
                continue
            cs = reg.suite(reg.suite_value(item))
            assert cs is not None and cs.auth != held, item
    # a server that enforces the published order agrees with it (within each certificate
    # type where the server picks the certificate first)
    if cfg.server_order:
        assert m["order"]["status"] in ("same", "not-compared"), m["order"]
    if server == "haproxy" and cfg.server_order:
        # HAProxy turns ChaCha20 priority on; where a ChaCha20 suite sits below another,
        # the match says so
        assert all(v in m["order"]["chacha_priority"]
                   for v, on in doc["policy"]["chacha_priority"].items() if on)
    assert "POLICY MATCH\nequals " in table or "POLICY MATCH\nequals" in table


CROSS = [(cfg, cert, server) for cfg in AWS_ELB.values() for cert in CERTS
         for server in SERVERS]


@pytest.mark.parametrize("cfg, cert, server", CROSS,
                         ids=[f"{s}-{c.name.removeprefix('ELBSecurityPolicy-')}-{cert}"
                              for c, cert, s in CROSS])
def test_elb_policies_every_certificate(cfg: PolicyConfig, cert: str, server: str,
                                        request: pytest.FixtureRequest, dhparam: Path,
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    srv = start(server, cfg, cert, request, dhparam)
    doc, table = scan(srv.port, tmp_path, capsys)
    check_named(cfg, cert, server, doc, table)
    # every ELB policy here is servable: named, literally only with both certificates
    kind = {m["name"]: m["kind"] for m in doc["catalog"]["matches"]}[cfg.name]
    assert kind == ("equal" if cert == "both" else "equal-as-applicable")


def _distinct_mozilla() -> list[tuple[PolicyConfig, str, str]]:
    seen: dict[Any, PolicyConfig] = {}
    for cfg in mozilla_all():
        seen.setdefault(cfg.key(), cfg)
    out = []
    for i, cfg in enumerate(seen.values()):
        version, level = cfg.name.split("-")[2], cfg.name.split("-")[1]
        out.append((cfg, prescribed_cert(version, level), SERVERS[i % 2]))
    return out


MOZILLA = _distinct_mozilla()


@pytest.mark.parametrize("cfg, cert, server", MOZILLA,
                         ids=[f"{s}-{c.name}-{cert}" for c, cert, s in MOZILLA])
def test_mozilla_configurations(cfg: PolicyConfig, cert: str, server: str,
                                request: pytest.FixtureRequest, dhparam: Path,
                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    srv = start(server, cfg, cert, request, dhparam)
    doc, table = scan(srv.port, tmp_path, capsys)
    check_named(cfg, cert, server, doc, table)
    # every guideline version whose configuration is this one is named with it
    same = [c.name for c in mozilla_all() if c.key() == cfg.key()]
    if expected_verdict(cfg, cert)[0] is not None:
        names = {m["name"] for m in doc["catalog"]["matches"]}
        assert set(same) <= names, (same, doc["catalog"]["text"])


def test_mozilla_distinct_configurations_cover_every_level() -> None:
    everything = mozilla_all()
    assert len(everything) == 32
    keys = {c.key() for c in everything}
    assert {c.key() for c, _cert, _s in MOZILLA} == keys


ALTERED = [
    ("plus", "nginx", "ELBSecurityPolicy-FS-1-2-Res-2020-10", "rsa"),
    ("minus", "haproxy", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "both"),
]


@pytest.mark.parametrize("how, server, name, cert", ALTERED,
                         ids=[f"{a[0]}-{a[1]}" for a in ALTERED])
def test_altered_configuration_is_not_named(how: str, server: str, name: str, cert: str,
                                            request: pytest.FixtureRequest, dhparam: Path,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = AWS_ELB[name]
    if how == "plus":
        changed = PolicyConfig(cfg.name, cfg.protocols, (*cfg.ciphers, "AES128-SHA"), cfg.tls13)
        words = "plus AES128-SHA"
    else:
        changed = PolicyConfig(cfg.name, cfg.protocols,
                               tuple(c for c in cfg.ciphers if c != "ECDHE-RSA-AES256-GCM-SHA384"),
                               cfg.tls13)
        words = "minus ECDHE-RSA-AES256-GCM-SHA384"
    srv = start(server, changed, cert, request, dhparam)
    doc, _table = scan(srv.port, tmp_path, capsys)
    assert doc["reliable"], doc["warnings"]
    assert name not in {m["name"] for m in doc["catalog"]["matches"]}
    c = compare(observation(doc), catalog.get(name))
    assert c.kind == "differs" and c.diff.words() == words
    near = [n for n in doc["catalog"]["nearest"] if name in [p["name"] for p in n["policies"]]]
    if near:
        assert f" {words}" in near[0]["text"]
        if cert == "rsa":
            assert "[as applicable: not applicable: RSA certificate only" in near[0]["text"]


def test_check_gate_equals_and_equals_strict(nginx_factory: Any, dhparam: Path,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    name = "ELBSecurityPolicy-FS-1-2-Res-2020-10"
    srv = nginx_factory(**nginx_kwargs(AWS_ELB[name], "rsa", dhparam))
    expect = tmp_path / "expect.yaml"
    expect.write_text(f"schema: 1\npolicy: {{equals: {name}, no_weaker_than: {name}}}\n")
    out = tmp_path / "check.json"
    assert main(["check", f"127.0.0.1:{srv.port}", "--expect", str(expect),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"policy equals {name}" in text and "as applicable" in text
    expect.write_text(f"schema: 1\npolicy: {{equals_strict: {name}}}\n")
    assert main(["check", f"127.0.0.1:{srv.port}", "--expect", str(expect)]) == 1
    text = capsys.readouterr().out
    assert "FAIL" in text and "the literal entry differs" in text
