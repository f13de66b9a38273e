"""ChaCha20 priority (OpenSSL's SSL_OP_PRIORITIZE_CHACHA): told apart from plain server order
and from client order, on replies from a model server (sans I/O) and on real servers
(HAProxy, which enables it; nginx with and without ``Options PrioritizeChaCha``), and
the what-if simulation of it against live handshakes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.cli.main import main
from prober.policy.enumerate.plan import Probe, Reply
from prober.wire import registry as reg
from tests.policy.test_scan import Model, _assembled, drive, run_policy

AES128 = reg.suite_value("ECDHE-RSA-AES128-GCM-SHA256")
AES256 = reg.suite_value("ECDHE-RSA-AES256-GCM-SHA384")
CHACHA = reg.suite_value("ECDHE-RSA-CHACHA20-POLY1305")
T13_AES128, T13_AES256, T13_CHACHA = 0x1301, 0x1302, 0x1303


def _chacha(s: int) -> bool:
    cs = reg.suite(s)
    return cs is not None and cs.enc == "CHACHA20"


@dataclass
class ChachaModel(Model):
    """The model server with OpenSSL's rule: under server order, when the first suite of
    the client's list that OpenSSL knows is ChaCha20, its ChaCha20 suites go first."""

    chacha: bool = False

    def reply(self, probe: Probe) -> Reply:
        if not (self.chacha and self.server_order):
            return super().reply(probe)
        spec = probe.spec
        first = next((s for s in spec.cipher_suites if (cs := reg.suite(s)) is not None
                      and not cs.scsv and cs.openssl_builtin), None)
        if first is None or not _chacha(first):
            return super().reply(probe)
        saved = self.suites
        self.suites = {v: [s for s in ss if _chacha(s)] + [s for s in ss if not _chacha(s)]
                       for v, ss in saved.items()}
        try:
            return super().reply(probe)
        finally:
            self.suites = saved


SERVER = {"TLSv1.3": [T13_AES256, T13_CHACHA, T13_AES128], "TLSv1.2": [AES128, CHACHA, AES256]}


@pytest.mark.parametrize("server_order, chacha, word", [
    (True, True, "server+chacha"), (True, False, "server"), (False, True, "client"),
    (False, False, "client"),
])
def test_planner_tells_the_three_apart(server_order: bool, chacha: bool, word: str) -> None:
    model = ChachaModel(dict(SERVER), server_order=server_order, chacha=chacha)
    plan = drive(model)
    obs = _assembled(plan).policy
    assert {v: obs.order_word(v) for v in SERVER} == dict.fromkeys(SERVER, word)
    if server_order:
        # the order itself is the server's own, ChaCha20 priority or not
        assert obs.suites == {v: [reg.suite_name(s) for s in ss] for v, ss in SERVER.items()}
        assert obs.chacha_priority == dict.fromkeys(SERVER, chacha)
    else:
        assert obs.chacha_priority == {}
    # one extra hello per version, and only under server order
    sent = [p.name for p in plan.sent if p.name.startswith("chacha/")]
    assert sorted(sent) == (["chacha/TLSv1.2", "chacha/TLSv1.3"] if server_order else [])


def test_no_question_where_the_priority_changes_nothing() -> None:
    # every ChaCha20 suite already ahead of the rest: no hello, priority not determined
    suites = {"TLSv1.2": [CHACHA, AES128]}
    for chacha in (False, True):
        plan = drive(ChachaModel(dict(suites), chacha=chacha))
        obs = _assembled(plan).policy
        assert obs.order_word("TLSv1.2") == "server"
        assert obs.chacha_priority == {"TLSv1.2": None}
        assert not [p for p in plan.sent if p.name.startswith("chacha/")]


def test_order_checks_never_lead_with_chacha() -> None:
    """A ChaCha20-priority server answered a ChaCha20-first order check with ChaCha20,
    which read as client order: every comparison hello now leads with a decoy."""
    plan = drive(ChachaModel({"TLSv1.2": [AES128, CHACHA]}, chacha=True))
    obs = _assembled(plan).policy
    assert obs.server_order == {"TLSv1.2": True} and obs.suites["TLSv1.2"] == [
        reg.suite_name(AES128), reg.suite_name(CHACHA)]
    for p in plan.sent:
        if p.name.startswith("order/"):
            first = p.spec.cipher_suites[0]
            assert not _chacha(first), p.name


# --- real servers -----------------------------------------------------------------------

TLS12 = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384"
TLS13 = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"


@dataclass(frozen=True)
class Server:
    id: str
    kind: str  # nginx | haproxy
    order: str  # what the configuration means: server | server+chacha | client
    extra: tuple[tuple[str, Any], ...] = ()


SERVERS = [
    Server("haproxy-default", "haproxy", "server+chacha"),
    Server("haproxy-prefer-client", "haproxy", "client", (("prefer_client_ciphers", True),)),
    Server("nginx-prefer-server", "nginx", "server"),
    Server("nginx-prefer-server-chacha", "nginx", "server+chacha",
           (("conf_commands", {"Options": "PrioritizeChaCha"}),)),
    Server("nginx-prefer-client", "nginx", "client", (("prefer_server_ciphers", False),)),
]


def start(s: Server, request: pytest.FixtureRequest) -> Any:
    extra = dict(s.extra)
    if s.kind == "haproxy":
        return request.getfixturevalue("haproxy_factory")(
            cert="rsa", ciphers=TLS12, ciphersuites=TLS13, min_version="TLSv1.2", **extra)
    conf = {"Ciphersuites": TLS13, **extra.pop("conf_commands", {})}
    return request.getfixturevalue("nginx_factory")(
        cert="rsa", protocols="TLSv1.2 TLSv1.3", ciphers=TLS12, conf_commands=conf, **extra)


def _client(path: Path, name: str, hello: dict[str, Any]) -> str:
    f = path / f"{name}.yaml"
    f.write_text(yaml.safe_dump({"schema": 1, "name": name, "origin": "handwritten",
                                 "hello": hello}))
    return str(f)


def _clients(tmp: Path) -> list[str]:
    from prober.profiles.families import legacy_doc, tls13_doc

    chacha12 = ["ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES256-GCM-SHA384"]
    aes12 = ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
             "ECDHE-RSA-AES128-GCM-SHA256"]
    chacha13 = ["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256",
                "TLS_AES_256_GCM_SHA384"]
    return [
        _client(tmp, "chacha-first-tls12", legacy_doc("TLSv1.2", chacha12)),
        _client(tmp, "aes-first-tls12", legacy_doc("TLSv1.2", aes12)),
        _client(tmp, "chacha-first-tls13", tls13_doc(chacha13, legacy=chacha12)),
        _client(tmp, "aes-first-tls13", tls13_doc(list(reversed(chacha13)), legacy=aes12)),
        # OpenSSL looks at the first suite it knows, whatever its version: a TLS 1.3
        # ChaCha20 suite first in a TLS 1.2 hello turns the priority on
        _client(tmp, "chacha13-first-tls12-hello",
                legacy_doc("TLSv1.2", ["TLS_CHACHA20_POLY1305_SHA256", *aes12])),
        # and skips what it does not know (GREASE, the pre-RFC ChaCha20 code point)
        _client(tmp, "old-chacha-first-tls12", legacy_doc(
            "TLSv1.2", ["GREASE_0x0A0A", "0xCC13", "ECDHE-RSA-AES256-GCM-SHA384",
                        "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256"])),
        "libressl-3.3.6", "chrome-101-win10", "android-5.0",
    ]


@pytest.mark.parametrize("s", SERVERS, ids=[s.id for s in SERVERS])
def test_detected_exactly_and_simulated(s: Server, request: pytest.FixtureRequest,
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    srv = start(s, request)
    doc, table = run_policy(tmp_path, srv.port, capsys)
    obs = doc["policy"]
    assert doc["reliable"], doc["warnings"]
    assert obs["order"] == {"TLSv1.3": s.order, "TLSv1.2": s.order}
    if s.order != "client":
        expect = {"TLSv1.3": TLS13.split(":"),
                  "TLSv1.2": [reg.suite_name(reg.suite_value(n)) for n in TLS12.split(":")]}
        assert obs["suites"] == expect
        assert obs["chacha_priority"] == dict.fromkeys(expect, s.order == "server+chacha")
    words = "server order with ChaCha20 priority" if s.order == "server+chacha" else (
        "server order" if s.order == "server" else "client order")
    assert f"TLSv1.3 — 3 suites, {words}" in table
    if s.order == "server":
        assert "ChaCha20 priority" not in table.split("POLICY MATCH")[0]

    # what-if: a candidate with the detected order, simulated and run against the server
    policy = tmp_path / "candidate.yaml"
    policy.write_text(yaml.safe_dump({
        "name": f"{s.id}-candidate", "protocols": ["TLSv1.3", "TLSv1.2"],
        "tls13_ciphersuites": TLS13.split(":"), "ciphers": TLS12.split(":"),
        "groups": ["x25519", "secp256r1", "x448", "secp521r1", "secp384r1"]}))
    order = {"server": "server", "server+chacha": "server-chacha", "client": "client"}[s.order]
    out = tmp_path / "whatif.json"
    argv = ["whatif", "--policy", str(policy), "--order", order, "--cert", "rsa",
            "--against", f"127.0.0.1:{srv.port}", "--json", str(out),
            "--clients", *_clients(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    w = json.loads(out.read_text())
    assert w["candidate"]["chacha_priority"] is (s.order == "server+chacha")
    assert w["summary"]["agree"] == w["summary"]["clients"], [
        (c["client"], c["candidate"], c["live"]) for c in w["clients"] if not c["agrees"]]
    got = {c["client"]: c["live"]["suite"] for c in w["clients"]}
    prioritised = s.order == "server+chacha"
    chacha = "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    assert (got["chacha-first-tls12"] == chacha) is (s.order != "server")
    assert (got["chacha-first-tls13"] == "TLS_CHACHA20_POLY1305_SHA256") is (s.order != "server")
    assert (got["chacha13-first-tls12-hello"] == chacha) is prioritised
    assert got["old-chacha-first-tls12"] != chacha
