"""`prober policy` against servers the tests start (nginx, openssl s_server, HAProxy),
each configured with a catalog policy's own OpenSSL cipher string.

Ground truth: OpenSSL's own expansion of the configured string (``openssl ciphers -V -s``,
the order the server uses) filtered by what the server's certificates and DH parameters
can serve, and sslyze's accepted sets from its own scan of the same server.
The planner's harder branches (client order across bundles, a server that breaks on long
hellos) are also checked on replies computed from a model policy (sans I/O).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.policy.enumerate.candidates import bundles
from prober.policy.enumerate.plan import Probe, Reply
from prober.policy.enumerate.planner import Planner
from prober.policy.naming.catalog import get
from prober.profiles.families import candidate_suites
from prober.wire import registry as reg
from prober.wire.constants import ExtensionType
from tests.peers import closed_port

_FLAG = {"TLSv1.3": "-tls1_3", "TLSv1.2": "-tls1_2", "TLSv1.1": "-tls1_1", "TLSv1.0": "-tls1"}
_NGINX_VERSION = {"TLSv1.0": "TLSv1", "TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2",
                  "TLSv1.3": "TLSv1.3"}
_AUTH = {"rsa": {"RSA"}, "ecdsa": {"ECDSA"}, "both": {"RSA", "ECDSA"}}
_OPENSSL_GROUP = {"x25519": "X25519", "secp256r1": "prime256v1", "secp384r1": "secp384r1"}


def openssl_order(string: str | None, version: str, cert: str, dh: bool) -> list[str]:
    """IANA names, in the order a server configured with ``string`` prefers them, of the
    suites it can serve at ``version`` with ``cert`` (and DH parameters when ``dh``);
    ``None``: OpenSSL's default TLS 1.3 suites."""
    argv = ["openssl", "ciphers", "-V", "-s", _FLAG[version]]
    if version == "TLSv1.3":
        argv += (["-ciphersuites", string] if string is not None else []) + ["ALL"]
    else:
        argv.append(string or "DEFAULT")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    names = []
    for hi, lo, kx, au in re.findall(
            r"0x([0-9A-F]{2}),0x([0-9A-F]{2}) - \S+\s+\S+\s+Kx=(\S+)\s+Au=(\S+)", out):
        # anonymous suites (Au=None) need no certificate
        if version != "TLSv1.3" and (au not in _AUTH[cert] | {"None"} or (kx == "DH" and not dh)):
            continue
        names.append(reg.suite_name(int(hi, 16) << 8 | int(lo, 16)))
    return names


def sslyze_accepted(port: int) -> dict[str, set[str]]:
    """sslyze's own accepted suites per version (its full cipher-suite scan)."""
    from sslyze.plugins.scan_commands import ScanCommand
    from sslyze.scanner.models import ServerScanRequest, ServerScanStatusEnum
    from sslyze.scanner.scanner import Scanner
    from sslyze.server_setting import ServerNetworkLocation

    fields = {"SSLv2": "ssl_2_0", "SSLv3": "ssl_3_0", "TLSv1.0": "tls_1_0",
              "TLSv1.1": "tls_1_1", "TLSv1.2": "tls_1_2", "TLSv1.3": "tls_1_3"}
    commands = {ScanCommand[f"{f.upper()}_CIPHER_SUITES"] for f in fields.values()}
    req = ServerScanRequest(server_location=ServerNetworkLocation(
        hostname="127.0.0.1", port=port, ip_address="127.0.0.1"), scan_commands=commands)
    scanner = Scanner()
    scanner.queue_scans([req])
    result = next(iter(scanner.get_results()))
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    assert result.scan_result is not None
    out = {}
    for v, f in fields.items():
        attempt = getattr(result.scan_result, f"{f}_cipher_suites")
        assert attempt.result is not None, (v, attempt.error_trace)
        accepted = {a.cipher_suite.name for a in attempt.result.accepted_cipher_suites}
        if accepted:
            out[v] = accepted
    return out


@dataclass
class Case:
    id: str
    server: str  # nginx | openssl | haproxy
    policy: str
    cert: str
    versions: tuple[str, ...]
    server_order: bool = True
    # OpenSSL 3 serves TLS 1.0/1.1 only at security level 0
    seclevel0: bool = False
    dh: bool = False
    # configure the catalog's groups (else the server's default groups)
    groups: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cipher_string(self) -> str:
        s = ":".join(get(self.policy).raw["ciphers"])
        return s + ":@SECLEVEL=0" if self.seclevel0 else s

    @property
    def tls13_string(self) -> str:
        return ":".join(get(self.policy).raw["tls13_ciphersuites"] or [])

    @property
    def group_names(self) -> list[str]:
        return list(get(self.policy).groups or []) if self.groups else []


CASES = [
    Case("nginx-elb-2016-08", "nginx", "ELBSecurityPolicy-2016-08", "both",
         ("TLSv1.2", "TLSv1.1", "TLSv1.0"), seclevel0=True),
    Case("nginx-elb-fs-1-2-res", "nginx", "ELBSecurityPolicy-FS-1-2-Res-2020-10", "ecdsa",
         ("TLSv1.2",)),
    Case("nginx-elb-tls13-dual-cert", "nginx", "ELBSecurityPolicy-TLS13-1-2-2021-06", "both",
         ("TLSv1.3", "TLSv1.2")),
    Case("nginx-mozilla-intermediate", "nginx", "mozilla-intermediate-5.7", "both",
         ("TLSv1.3", "TLSv1.2"), server_order=False, dh=True, groups=True),
    Case("s_server-mozilla-modern-tls13-only", "openssl", "mozilla-modern-5.7", "ecdsa",
         ("TLSv1.3",), groups=True),
    Case("s_server-client-order", "openssl", "ELBSecurityPolicy-TLS-1-2-Ext-2018-06", "both",
         ("TLSv1.2",), server_order=False),
    Case("haproxy-elb-tls13-res", "haproxy", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "rsa",
         ("TLSv1.3", "TLSv1.2")),
    Case("haproxy-elb-fs-1-1", "haproxy", "ELBSecurityPolicy-FS-1-1-2019-08", "ecdsa",
         ("TLSv1.2", "TLSv1.1"), seclevel0=True),
]


def start(case: Case, request: pytest.FixtureRequest, dhparam: Path) -> Any:
    versions = [v for v in case.versions]
    lo = min(versions, key=lambda v: ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"].index(v))
    hi = max(versions, key=lambda v: ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"].index(v))
    groups = ":".join(_OPENSSL_GROUP[g] for g in case.group_names) or None
    if case.server == "nginx":
        factory = request.getfixturevalue("nginx_factory")
        kw: dict[str, Any] = {
            "protocols": " ".join(_NGINX_VERSION[v] for v in versions),
            "ciphers": case.cipher_string, "cert": case.cert,
            "prefer_server_ciphers": case.server_order, "ecdh_curve": groups}
        if case.tls13_string:
            kw["conf_commands"] = {"Ciphersuites": case.tls13_string}
        if case.dh:
            kw["extra_ssl"] = f"ssl_dhparam {dhparam};"
        return factory(**kw)
    if case.server == "openssl":
        factory = request.getfixturevalue("openssl_server_factory")
        return factory(cert=case.cert, ciphers=case.cipher_string or None,
                       ciphersuites=case.tls13_string or None,
                       min_protocol=_NGINX_VERSION[lo], max_protocol=_NGINX_VERSION[hi],
                       groups=groups, server_pref=case.server_order, trace=False)
    factory = request.getfixturevalue("haproxy_factory")
    return factory(cert=case.cert, ciphers=case.cipher_string,
                   ciphersuites=case.tls13_string or None, curves=groups,
                   min_version=_NGINX_VERSION[lo], max_version=_NGINX_VERSION[hi],
                   prefer_client_ciphers=not case.server_order)


def run_policy(tmp_path: Path, port: int, capsys: pytest.CaptureFixture[str],
               *extra: str, rc: int = 0) -> tuple[dict[str, Any], str]:
    out = tmp_path / f"policy-{port}.json"
    assert main(["policy", f"127.0.0.1:{port}", "--json", str(out), *extra]) == rc
    table = capsys.readouterr().out
    return json.loads(out.read_text()), table


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_policy_equals_configuration(case: Case, request: pytest.FixtureRequest,
                                     dhparam: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    srv = start(case, request, dhparam)
    doc, table = run_policy(tmp_path, srv.port, capsys)
    obs = doc["policy"]
    assert doc["schema"] == "prober.policy/2"
    assert doc["reliable"] is True, doc["warnings"]
    # the one thing an ECDSA-only TLS 1.2 server hides: curves it likes less than its
    # certificate's own (it can sign only while that curve is offered)
    hidden = ["TLS 1.2 ECDHE curves after secp256r1 not determined: the server uses its "
              "ECDSA certificate only while secp256r1 is offered, and prefers secp256r1 to "
              "the rest"]
    pinned = case.cert == "ecdsa" and "TLSv1.2" in case.versions and case.server_order
    assert doc["warnings"] == (hidden if pinned else [])

    # versions and suites: OpenSSL's own expansion of the configured string
    assert obs["versions"] == list(case.versions)
    for v in case.versions:
        string = case.tls13_string if v == "TLSv1.3" else case.cipher_string
        expected = openssl_order(string, v, case.cert, case.dh)
        assert expected, (v, string)
        if case.server_order:
            assert obs["suites"][v] == expected, v
            assert obs["server_order"][v] is (True if len(expected) > 1 else None), v
        else:
            assert sorted(obs["suites"][v]) == sorted(expected), v
            assert obs["server_order"][v] is False, v
        # the table lists them in that order with IANA and OpenSSL names
        block = table.split(f"\n{v} — ", 1)[1]
        for i, name in enumerate(obs["suites"][v], 1):
            ossl = reg.suite_openssl_name(reg.suite_value(name))
            assert re.search(rf"^{i}\s+{name}\s+{re.escape(ossl or '')}", block, re.M), name

    # sslyze's own full scan of the same server accepts exactly the same sets
    assert sslyze_accepted(srv.port) == {v: set(obs["suites"][v]) for v in case.versions}

    # groups where the policy names them: same list (TLS 1.3 order from the HRR)
    if case.group_names:
        if "TLSv1.3" in case.versions:
            assert obs["groups_tls13"] == case.group_names
            assert doc["groups"]["hello_retry_request"] is True
        if "TLSv1.2" in case.versions:
            assert sorted(obs["groups_tls12"]) == sorted(case.group_names)
            assert doc["groups"]["server_order"]["TLSv1.2"] is case.server_order
            if case.server_order:
                assert obs["groups_tls12"] == case.group_names

    # the catalog match names the transcribed policy when the certificates can serve it all
    policy = get(case.policy)
    auths = {reg.suite(reg.suite_value(s)).auth for s in policy.suites or ()}  # type: ignore[union-attr]
    if auths <= _AUTH[case.cert] and (case.groups or policy.groups is None):
        assert case.policy in [m["name"] for m in doc["catalog"]["matches"]], \
            doc["catalog"]["text"]
        assert "equals" in table.split("POLICY MATCH", 1)[1]

    # connections: every attempt is in the JSON, counted once, and suite enumeration
    # stays within one order check per version of the remove-the-winner ideal
    conn = doc["connections"]
    assert conn["total"] == len(doc["attempts"]) == sum(
        conn[k] for k in ("suites", "versions", "groups", "extras", "sanity"))
    ideal = sum(len(obs["suites"][v]) + 1 for v in case.versions)
    assert conn["ideal_suites"] == ideal
    assert conn["suites"] <= ideal + len(case.versions), conn
    assert conn["sanity"] == 2
    assert doc["sanity"]["consistent"] is True


def test_every_openssl_suite_across_bundles(openssl_server_factory: Any, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A server accepting everything OpenSSL has, anonymous suites included: TLS 1.2
    winners come from both bundles, so the long-hello chain and the merge are exercised
    against a real server."""
    string = "ALL:@SECLEVEL=0"
    srv = openssl_server_factory(cert="both", ciphers=string, min_protocol="TLSv1",
                                 trace=False)
    doc, _table = run_policy(tmp_path, srv.port, capsys)
    obs = doc["policy"]
    assert doc["reliable"] is True, doc["warnings"]
    versions = ["TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0"]
    assert obs["versions"] == versions
    for v in versions:
        expected = openssl_order(None if v == "TLSv1.3" else string, v, "both", dh=True)
        assert obs["suites"][v] == expected, v
    second = set(bundles("TLSv1.2")[1])
    tls12 = [reg.suite_value(n) for n in obs["suites"]["TLSv1.2"]]
    assert any(s in second for s in tls12) and any(s not in second for s in tls12)
    anon = [r for r in doc["suites"]["TLSv1.2"] if "anon" in r["notes"]]
    assert anon and all("_anon_" in r["iana"] for r in anon)
    ideal = doc["connections"]["ideal_suites"]
    assert doc["connections"]["suites"] <= ideal + len(versions)

    # sslyze finds a subset; whatever it misses, OpenSSL's own client confirms
    theirs = sslyze_accepted(srv.port)
    for v in versions:
        assert theirs[v] <= set(obs["suites"][v]), v
        for name in set(obs["suites"][v]) - theirs[v]:
            ossl = reg.suite_openssl_name(reg.suite_value(name))
            out = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-brief",
                 _FLAG[v], "-cipher", f"{ossl}:@SECLEVEL=0"],
                input=b"", capture_output=True, timeout=10).stderr.decode()
            assert f"Ciphersuite: {ossl}" in out, (v, name, out[-300:])


def test_features_certificates_and_intolerance(nginx_factory: Any, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # TLS 1.2 + 1.3 with both certificate types, nginx defaults otherwise
    srv = nginx_factory(cert="both", protocols="TLSv1.2 TLSv1.3")
    doc, table = run_policy(tmp_path, srv.port, capsys)
    keys = {c["key_type"] for c in doc["certificates"]}
    assert keys == {"RSA", "ECDSA"}
    f = doc["features"]
    assert f["fallback_scsv"] is True  # OpenSSL answers a TLS 1.2 hello + SCSV with an alert
    assert f["secure_renegotiation"] is True and f["extended_master_secret"] is True
    assert f["session_ticket"] is True  # nginx: ssl_session_tickets on by default
    alpn = next(a for a in doc["attempts"] if a["profile"] == "alpn-ocsp")
    assert f["alpn"] is None and f["ocsp_stapling"] is False, alpn  # nginx stream: neither
    assert doc["sni_dependent"] is False
    tol = doc["intolerance"]
    assert tol["tls13-hello"]["tolerated"] is None  # it speaks TLS 1.3
    for check in ("hello>512", "hello>1460", "suites>128", "unknown-extension", "grease"):
        assert tol[check]["tolerated"] is True, check
    # the hellos really were that large
    sizes = {a["profile"]: a["hello_bytes"] for a in doc["attempts"]}
    assert sizes["intolerance/hello>512"] > 512 and sizes["intolerance/hello>1460"] > 1460
    # groups: the TLS 1.3 list comes from HelloRetryRequests; OpenSSL's default order
    assert doc["policy"]["groups_tls13"][:2] == ["x25519", "secp256r1"]
    assert "ffdhe2048" in doc["policy"]["groups_tls13"]
    assert "ffdhe2048" not in doc["policy"]["groups_tls12"]
    for heading in ("GROUPS", "FEATURES", "CERTIFICATES", "INTOLERANCE", "POLICY MATCH"):
        assert f"\n{heading}\n" in table


def test_dying_endpoint_is_not_read_as_policy(nginx_factory: Any) -> None:
    import asyncio

    from prober.core.engine import Endpoint
    from prober.core.targets import parse_target
    from prober.policy.enumerate.driver import enumerate_policy

    srv = nginx_factory(cert="rsa", protocols="TLSv1.2 TLSv1.3")
    seen: list[Any] = []

    def on_result(r: Any) -> None:
        seen.append(r)
        if len(seen) == 10:
            srv.stop()  # the endpoint dies in the middle of the scan

    ep = Endpoint(parse_target(f"127.0.0.1:{srv.port}"), 2, "127.0.0.1")
    scan = asyncio.run(enumerate_policy(ep, on_result=on_result))
    assert scan.reliable is False
    assert scan.sanity["start"]["outcome"] == "ok"
    assert scan.sanity["end"]["outcome"] == "refused"
    assert any("start" in w and "end" in w for w in scan.warnings), scan.warnings
    assert len(scan.attempts) < 40  # it stopped instead of grinding through refusals


def test_unreachable_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    # exit 3: no TLS endpoint measured, said first, without the page of the policy
    doc, table = run_policy(tmp_path, port, capsys, rc=3)
    assert doc["reliable"] is False and doc["policy"]["versions"] == []
    assert doc["catalog"] is None
    assert doc["connections"]["total"] <= 8  # the first round, then it stops
    assert doc["tls_endpoint"]["kind"] == "port-closed"
    assert table.splitlines()[1].startswith("NO TLS ENDPOINT MEASURED: Nothing listens")


@pytest.mark.parametrize("argv, needle", [
    (["policy", "127.0.0.1:99999"], "port '99999'"),
    (["policy", "127.0.0.1:443", "--sni", "a", "--no-sni"], "--sni and --no-sni"),
    (["policy", "127.0.0.1:443", "-c", "0"], "--concurrency"),
])
def test_usage_errors(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


# --- the planner on replies computed from a model policy (sans I/O) ----------------------


@dataclass
class Model:
    """An OpenSSL-like server reduced to its policy, answering planner probes."""

    suites: dict[str, list[int]]  # per version, in the server's preference order
    server_order: bool = True
    groups: list[str] = field(default_factory=lambda: ["x25519", "secp256r1"])
    max_suites: int | None = None  # resets hellos with more suites than this

    def reply(self, probe: Probe) -> Reply:
        spec = probe.spec
        if self.max_suites is not None and len(spec.cipher_suites) > self.max_suites:
            return Reply("reset")
        offered = [v for v in spec.offered_versions() if reg.version_name(v) in self.suites]
        if spec.sslv2 or not offered:
            return Reply("alert", alert="protocol_version")
        version = reg.version_name(offered[0])
        if 0x5600 in spec.cipher_suites and version != next(iter(self.suites)):
            return Reply("alert", alert="inappropriate_fallback")
        groups = [reg.group_name(g) for g in spec.offered_groups()]
        common = [g for g in self.groups if g in groups]
        mine = self.suites[version]
        order = mine if self.server_order else spec.cipher_suites
        usable = [s for s in order if s in mine and s in spec.cipher_suites and (
            common or reg.suite(s).kx != "ECDHE")]  # type: ignore[union-attr]
        if not usable or (version == "TLSv1.3" and not common):
            return Reply("alert", alert="handshake_failure")
        group = common[0] if common else None
        hrr = None
        if version == "TLSv1.3":
            ks = spec.ext(ExtensionType.KEY_SHARE)
            shares = [reg.group_name(k.group) for k in (ks.key_shares or [])] if ks else []
            hrr = group if group not in shares else None
        return Reply("ok", version=version, suite=usable[0], group=group, hrr_group=hrr,
                     cert_key="RSA", secure_renegotiation=True)


def drive(model: Model, in_flight: int = 4) -> Planner:
    """Run a whole plan against the model, several probes out at once, answered last
    first (replies arrive in any order on a network)."""
    plan = Planner()
    for _ in range(2000):
        batch: list[Probe] = []
        while len(batch) < in_flight and (p := plan.next_probe()) is not None:
            batch.append(p)
        if not batch:
            break
        for p in reversed(batch):
            plan.feed(p, model.reply(p))
    assert plan.finished and not plan.stopped, plan.warnings
    return plan


def _assembled(plan: Planner) -> Any:
    from prober.core.engine import Endpoint
    from prober.core.targets import parse_target
    from prober.policy.scan import assemble

    ep = Endpoint(parse_target("192.0.2.1:443"), 2, "192.0.2.1")
    return assemble(plan, ep, [], started=0.0, finished=1.0, complete=True)


def _tls12_mix(top_in_second_bundle: bool) -> list[int]:
    """Server preference mixing both TLS 1.2 bundles (static-DH and anonymous suites are
    in the second)."""
    a, b = bundles("TLSv1.2")[:2]
    pick = [a[10], a[2], b[40], a[50]]
    if top_in_second_bundle:
        pick.insert(0, b[3])
    assert all(s in candidate_suites("TLSv1.2") for s in pick)
    return pick


@pytest.mark.parametrize("max_suites", [None, 128])
@pytest.mark.parametrize("top_in_b", [False, True])
def test_planner_recovers_order_across_bundles(max_suites: int | None, top_in_b: bool) -> None:
    tls13 = [0x1302, 0x1301]
    model = Model({"TLSv1.3": tls13, "TLSv1.2": _tls12_mix(top_in_b)}, max_suites=max_suites)
    plan = drive(model)
    scan = _assembled(plan)
    names = {v: [reg.suite_name(s) for s in model.suites[v]] for v in model.suites}
    assert scan.policy.suites == names
    assert scan.policy.server_order == {"TLSv1.3": True, "TLSv1.2": True}
    assert scan.policy.groups_tls13 == model.groups
    merge = plan.merges["TLSv1.2"]
    if max_suites is None:
        # long hellos are read: one chain over everything; the first bundle's winner is
        # compared with the rest only when a suite it never met was picked
        assert plan.merged["TLSv1.2"].state == "conclusive"
        assert merge.comparisons == (1 if top_in_b else 0)
        assert scan.connections["suites"] == scan.ideal_suite_connections + merge.comparisons
    else:
        # long hellos break it: bundle by bundle, then a merge by comparisons
        assert plan.merged["TLSv1.2"].state == "fallback"
        assert scan.intolerance["suites>128"]["tolerated"] is False
        assert merge.comparisons > 0


def test_planner_client_order() -> None:
    model = Model({"TLSv1.2": _tls12_mix(True)}, server_order=False)
    scan = _assembled(drive(model))
    got = scan.policy.suites["TLSv1.2"]
    assert sorted(got) == sorted(reg.suite_name(s) for s in model.suites["TLSv1.2"])
    assert scan.policy.server_order["TLSv1.2"] is False
    # client order is reported in the order the client (the scan) offered them
    idx = {reg.suite_name(s): i for i, s in enumerate(candidate_suites("TLSv1.2"))}
    assert got == sorted(got, key=idx.__getitem__)


def test_planner_is_bounded() -> None:
    # a server accepting every candidate: still bounded by the connection cap
    everything = Model({"TLSv1.2": list(candidate_suites("TLSv1.2"))})
    plan = Planner(max_connections=60)
    for _ in range(200):
        p = plan.next_probe()
        if p is None:
            break
        plan.feed(p, everything.reply(p))
    assert plan.stopped and len(plan.sent) <= 61  # the cap, then the closing sanity probe


