"""prober whatif: the simulator checked against real servers carrying catalog policies.

Each candidate policy is deployed as the catalog writes it (OpenSSL cipher string, TLS 1.3
suites, protocols, groups, server or client order) on openssl s_server (RSA, ECDSA) and
nginx (RSA + ECDSA side by side); every client profile is then simulated and run live,
and the two must agree on ok / not ok, and on version and suite when ok.
"""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.core import engine
from prober.core.attempt import AttemptResult
from prober.core.targets import Target
from prober.net.attempt import Deadlines
from prober.policy.naming import catalog
from prober.policy.whatif.run import BREAKS, STILL_FAILS, Client, Live, agree
from prober.policy.whatif.simulate import TLS13, Candidate, CertKind, candidate, predict
from prober.profiles import families, variants
from prober.profiles.compile import compile_hello
from prober.profiles.loader import resolve_all
from prober.profiles.model import Profile
from prober.wire import registry as reg
from prober.wire.clienthello import HelloSpec
from prober.wire.constants import extension_value
from tests.peers import closed_port

ELB = ["ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-FS-1-2-Res-2020-10",
       "ELBSecurityPolicy-TLS13-1-2-2021-06"]
CIPHERS = ["cipher:ECDHE-RSA-AES256-SHA", "cipher:ECDHE-RSA-AES256-SHA@TLSv1.1",
           "cipher:ECDHE-ECDSA-AES128-SHA@TLSv1.0", "cipher:AES128-SHA@TLSv1.0",
           "cipher:AES256-GCM-SHA384", "cipher:DES-CBC3-SHA",
           "cipher:ECDHE-RSA-AES128-GCM-SHA256", "cipher:ECDHE-ECDSA-AES256-GCM-SHA384",
           "cipher:ECDHE-RSA-CHACHA20-POLY1305", "cipher:ECDHE-ECDSA-AES128-SHA256",
           "cipher:TLS_CHACHA20_POLY1305_SHA256", "cipher:TLS_AES_128_CCM_SHA256",
           "group:secp384r1", "group:secp521r1", "group:x448", "group:ffdhe2048"]
CLIENTS = ["all", "sweep-versions", *CIPHERS]

# OpenSSL 3.0 names of the groups it implements (it has no ML-KEM)
OPENSSL_GROUPS = {"x25519": "X25519", "secp256r1": "P-256", "secp384r1": "P-384",
                  "secp521r1": "P-521", "x448": "X448", "ffdhe2048": "ffdhe2048",
                  "ffdhe3072": "ffdhe3072", "ffdhe4096": "ffdhe4096"}
OPENSSL_VERSIONS = {"TLSv1.0": "TLSv1", "TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2",
                    "TLSv1.3": "TLSv1.3"}

# (policy, cert, profile) -> why simulation and OpenSSL differ; kept empty unless a
# difference is an OpenSSL quirk the simulator deliberately does not copy
KNOWN_LIMITS: dict[tuple[str, str, str], str] = {}


def newest_mozilla(level: str) -> str:
    found = [p for p in catalog.all_policies()
             if p.provider == "mozilla" and p.raw.get("level") == level and p.raw.get("latest")]
    assert len(found) == 1, found
    return found[0].name


def policies() -> list[str]:
    # the five asked for, the newest "old" (TLS 1.0-1.3 with 3DES and RSA key exchange),
    # and an intermediate that still has DHE suites
    return [*ELB, newest_mozilla("intermediate"), newest_mozilla("modern"),
            newest_mozilla("old"), "mozilla-intermediate-5.7"]


def _with_ext(doc: dict[str, Any], name: str, value: Any) -> HelloSpec:
    """A generated hello with extension ``name`` set to ``value`` (None: removed)."""
    spec = compile_hello(doc)
    if value is None:
        return variants.without_extension(spec, extension_value(name))
    return variants.with_extension(spec, variants.extension(name, value))


def edge_clients() -> list[Client]:
    """Hellos built to hit one rule each: suites, groups and signature algorithms that
    no real client in the profile set combines this way."""
    ecdhe = ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"]
    t12 = families.legacy_doc("TLSv1.2", [*ecdhe, "AES128-GCM-SHA256"])
    t13 = families.tls13_doc(families.tls13_suites())
    specs = {
        # a TLS 1.3 suite the policies lack: no fallback to TLS 1.2
        "edge:tls13-ccm+tls12": compile_hello(families.tls13_doc(
            ["TLS_AES_128_CCM_SHA256"], legacy=[*ecdhe, "AES128-SHA"])),
        "edge:fallback-scsv-tls1.1": compile_hello(families.legacy_doc(
            "TLSv1.1", ["ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "AES128-SHA",
                        "TLS_FALLBACK_SCSV"])),
        "edge:tls12-no-groups": _with_ext(t12, "supported_groups", None),
        "edge:tls12-no-sigalgs": _with_ext(t12, "signature_algorithms", None),
        "edge:tls12-sha1-sigalgs": _with_ext(t12, "signature_algorithms",
                                             ["rsa_pkcs1_sha1", "ecdsa_sha1"]),
        "edge:tls12-ecdsa-p384-sigalg": _with_ext(t12, "signature_algorithms",
                                                  ["ecdsa_secp384r1_sha384"]),
        "edge:tls12-rsa-sigalg": _with_ext(t12, "signature_algorithms", ["rsa_pkcs1_sha256"]),
        "edge:tls12-x25519-only": _with_ext(t12, "supported_groups", ["x25519"]),
        "edge:tls12-dhe": compile_hello(families.legacy_doc(
            "TLSv1.2", ["DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-SHA", *ecdhe],
            groups=["ffdhe2048"])),
        "edge:tls13-rsa-pss-only": _with_ext(t13, "signature_algorithms",
                                             ["rsa_pss_rsae_sha256"]),
        "edge:tls13-no-usable-sigalg": _with_ext(
            t13, "signature_algorithms", ["ecdsa_secp384r1_sha384", "rsa_pkcs1_sha256"]),
        "edge:tls13-hrr": compile_hello(families.tls13_doc(
            families.tls13_suites(), groups=["x448", "secp384r1", "x25519"],
            key_shares=["x448"])),
    }
    return [Client.of(Profile(name=n, spec=spec, origin="handwritten"))
            for n, spec in specs.items()]


@functools.cache
def local_openssl_suites() -> frozenset[str]:
    """OpenSSL names of the TLS <= 1.2 suites the local OpenSSL implements (Debian's
    build has no 3DES, for one)."""
    out = subprocess.run(["openssl", "ciphers", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                         check=True, capture_output=True, text=True).stdout
    return frozenset(out.strip().split(":"))


def deployable(cand: Candidate) -> Candidate:
    """The candidate as the local OpenSSL can carry it: groups (ML-KEM) and suites (3DES)
    it lacks are left out, and the simulation is of what is really deployed."""
    groups = tuple(g for g in cand.groups if reg.group_name(g) in OPENSSL_GROUPS)
    suites = tuple(s for s in cand.suites if reg.suite_openssl_name(s) in local_openssl_suites())
    return replace(cand, groups=groups, suites=suites)


def _openssl_config(cand: Candidate) -> dict[str, Any]:
    versions = [reg.version_name(v) for v in cand.protocols]
    ciphers = ":".join(reg.suite_openssl_name(s) or "" for s in cand.suites)
    if min(cand.protocols) < 0x0303:
        ciphers += ":@SECLEVEL=0"  # OpenSSL 3 refuses TLS 1.0/1.1 signatures otherwise
    return {
        "min": OPENSSL_VERSIONS[versions[-1]], "max": OPENSSL_VERSIONS[versions[0]],
        "versions": [OPENSSL_VERSIONS[v] for v in versions],
        "ciphers": ciphers or None,
        "ciphersuites": ":".join(reg.suite_name(s) for s in cand.tls13_suites)
        if TLS13 in cand.protocols else None,
        "groups": ":".join(OPENSSL_GROUPS[reg.group_name(g)] for g in cand.groups),
    }


def start_server(cand: Candidate, openssl_server_factory: Callable[..., Any],
                 nginx_factory: Callable[..., Any], dhparam: Path) -> Any:
    cfg = _openssl_config(cand)
    if cand.cert == "both":
        conf = {"Groups": cfg["groups"]}
        if cfg["ciphersuites"]:
            conf["Ciphersuites"] = cfg["ciphersuites"]
        # nginx offers DHE only with ssl_dhparam (s_server has built-in parameters)
        return nginx_factory(cert="both", protocols=" ".join(cfg["versions"]),
                             ciphers=cfg["ciphers"] or "DEFAULT",
                             prefer_server_ciphers=cand.server_order, conf_commands=conf,
                             extra_ssl=f"ssl_dhparam {dhparam};")
    return openssl_server_factory(cert=cand.cert, ciphers=cfg["ciphers"],
                                  ciphersuites=cfg["ciphersuites"], min_protocol=cfg["min"],
                                  max_protocol=cfg["max"], groups=cfg["groups"],
                                  server_pref=cand.server_order)


def run_live(ports: list[int], clients: list[Client]) -> dict[tuple[int, str], AttemptResult]:
    """Every client once against every port, all ports at once."""
    out: dict[tuple[int, str], AttemptResult] = {}

    async def go() -> None:
        eps = await engine.resolve_targets([Target("127.0.0.1", p) for p in ports], False)
        opts = engine.EngineOptions(concurrency=64, per_target=4, deadlines=Deadlines(5, 5))
        await engine.run(eps, [c.profile for c in clients], opts,
                         lambda r: out.__setitem__((r.port, r.profile), r))

    asyncio.run(go())
    return out


@pytest.mark.timeout(240)
def test_simulation_agrees_with_real_servers(openssl_server_factory: Any, nginx_factory: Any,
                                             dhparam: Path) -> None:
    clients = [Client.of(p) for p in resolve_all(CLIENTS)] + edge_clients()
    files = len(resolve_all(["all"]))
    assert files >= 14 and len(clients) == files + 6 + len(CIPHERS) + len(edge_clients())
    servers: list[tuple[str, CertKind, Candidate, int]] = []
    cert: CertKind
    for name in policies():
        for cert in ("rsa", "ecdsa", "both"):
            cand = deployable(candidate(catalog.get(name), cert))
            srv = start_server(cand, openssl_server_factory, nginx_factory, dhparam)
            servers.append((name, cert, cand, srv.port))
    live = run_live([port for *_, port in servers], clients)

    cells = agreeing = oks = alerts = alerts_same = groups_same = 0
    unexpected: list[str] = []
    for name, cert, cand, port in servers:
        for c in clients:
            pred = predict(c.spec, cand)
            result = live[(port, c.name)]
            got = Live.of(result)
            cells += 1
            oks += got.ok
            key = (name, cert, c.name)
            if agree(pred, got):
                agreeing += 1
                assert key not in KNOWN_LIMITS, f"documented limit no longer differs: {key}"
                groups_same += got.ok and pred.group == got.group
                if result.outcome == "alert":
                    alerts += 1
                    alerts_same += result.detail.startswith(f"{pred.alert} (")
            elif key not in KNOWN_LIMITS:
                unexpected.append(f"{name} {cert} {c.name}: simulated {pred.summary()!r}, "
                                  f"live {got.outcome} {got.detail!r}")
    print(f"\nwhatif agreement: {agreeing}/{cells} cells agree on ok/fail, version and suite "
          f"({len(servers)} servers x {len(clients)} clients; {oks} live ok, "
          f"{cells - oks} live fail; {len(KNOWN_LIMITS)} documented limits); group "
          f"{groups_same}/{oks} ok cells; alert {alerts_same}/{alerts} failing cells")
    assert not unexpected, "\n".join(unexpected)
    # the matrix has to tell success from failure, or agreement would prove nothing
    assert cells * 0.2 < oks < cells * 0.9
    assert groups_same == oks and alerts_same == alerts


# --- the command -------------------------------------------------------------------------


def _deploy(name: str, cert: CertKind, openssl_server_factory: Any, nginx_factory: Any,
            dhparam: Path) -> Any:
    cand = deployable(candidate(catalog.get(name), cert))
    return start_server(cand, openssl_server_factory, nginx_factory, dhparam)


def _whatif(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / f"whatif-{len(list(tmp_path.iterdir()))}.json"
    rc = main(["whatif", *args, "--json", str(out)])
    return rc, json.loads(out.read_text()) if rc == 0 else {}


FS = "ELBSecurityPolicy-FS-1-2-Res-2020-10"
OLD = "ELBSecurityPolicy-2016-08"
FEW = ["tls1.1-only", "tls1.2-only", "tls1.3-only", "cipher:ECDHE-RSA-AES256-SHA",
       "cipher:ECDHE-RSA-AES128-GCM-SHA256", "firefox-137-win11", "java-7u25", "ie-11-win7",
       "android-4.4.2", "openssl-1.0.2e"]


def test_whatif_against_staging_and_current_endpoint(
        tmp_path: Path, openssl_server_factory: Any, nginx_factory: Any, dhparam: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    staging = _deploy(FS, "rsa", openssl_server_factory, nginx_factory, dhparam)
    today = _deploy(OLD, "rsa", openssl_server_factory, nginx_factory, dhparam)
    rc, doc = _whatif(tmp_path, "--policy", FS, "--clients", *FEW,
                      "--against", f"127.0.0.1:{staging.port}",
                      "--current", f"127.0.0.1:{today.port}")
    text = capsys.readouterr().out
    assert rc == 0 and doc["schema"] == "prober.whatif/2"
    # no --cert: the type the staging endpoint served is used
    assert doc["candidate"]["certificate"] == "rsa"
    rows = {c["client"]: c for c in doc["clients"]}
    assert list(rows) == FEW
    for name, row in rows.items():
        # simulation and the live staging run agree, and "breaks" means what it says:
        # fails live on staging, works live today
        assert row["agrees"], row
        assert (row["status"] == BREAKS) == (not row["live"]["ok"] and row["today"]["ok"]), name
        assert (row["status"] == STILL_FAILS) == (not row["live"]["ok"]
                                                  and not row["today"]["ok"]), name
    breaking = {n for n, r in rows.items() if r["status"] == BREAKS}
    assert {"tls1.1-only", "java-7u25", "cipher:ECDHE-RSA-AES256-SHA"} <= breaking
    assert rows["tls1.1-only"]["candidate"]["reason"] == (
        "no common protocol: client max TLSv1.1, policy TLSv1.2 only")
    assert rows["cipher:ECDHE-RSA-AES256-SHA"]["candidate"]["reason"] == (
        "no common cipher suite: client offers ECDHE-RSA-AES256-SHA only")
    assert doc["summary"]["breaks"] == len(breaking)
    assert doc["summary"]["agree"] == len(FEW)
    assert f"{len(breaking)} break under the candidate but work today" in text
    assert f"simulation vs 127.0.0.1:{staging.port} (live): {len(FEW)}/{len(FEW)} agree" in text

    # today simulated from the catalog gives the same answer as today measured
    rc, sim = _whatif(tmp_path, "--policy", FS, "--clients", *FEW, "--cert", "rsa",
                      "--current", OLD)
    assert rc == 0
    assert [c["status"] for c in sim["clients"]] == [c["status"] for c in doc["clients"]]
    assert sim["today"].startswith(f"{OLD} (simulated")


def _alb_connection_log(path: Path, groups: list[tuple[str, str, int, int]]) -> None:
    """An ALB connection log: per (protocol, cipher, connections, client IPs) group, plus
    handshakes that failed before negotiation and a corrupt line."""
    lines = []
    for gi, (proto, cipher, conns, ips) in enumerate(groups):
        for i in range(conns):
            ip = f"198.51.{100 + gi}.{1 + i % ips}"
            lines.append(f"2026-01-10T08:00:{i % 60:02d}.123456Z {ip} {40000 + i} 443 {proto} "
                         f"{cipher} 1.234 \"-\" - - Success TID_{gi:04d}{i:028d}")
    for i in range(3):
        lines.append(f"2026-01-10T08:01:0{i}.000000Z 203.0.113.{i + 1} 5000{i} 443 - - - \"-\" "
                     f"- - Failed:UnmappedConnectionError TID_{i:032d}")
    lines.append("this line is not a log line")
    path.write_text("\n".join(lines) + "\n")


def test_whatif_reads_client_populations_from_logs(
        tmp_path: Path, openssl_server_factory: Any, nginx_factory: Any, dhparam: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "alb-connections.log"
    groups = [("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 60, 25),
              ("TLSv1.1", "ECDHE-RSA-AES256-SHA", 6, 4),
              ("TLSv1.0", "AES128-SHA", 3, 2),
              ("TLSv1.2", "AES128-GCM-SHA256", 5, 5),
              ("TLSv1.3", "TLS_AES_128_GCM_SHA256", 20, 9)]
    _alb_connection_log(log, groups)
    policy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    staging = _deploy(policy, "rsa", openssl_server_factory, nginx_factory, dhparam)
    rc, doc = _whatif(tmp_path, "--policy", policy, "--clients", str(log), "--current", OLD,
                      "--against", f"127.0.0.1:{staging.port}")
    text = capsys.readouterr().out
    assert rc == 0
    rows = {c["client"]: c for c in doc["clients"]}
    assert len(rows) == len(groups)
    # each log group was also sent live, as a client offering that protocol and suite
    assert all(r["agrees"] for r in rows.values()), rows
    broken = {n: r for n, r in rows.items() if r["status"] == BREAKS}
    assert broken and all(not r["live"]["ok"] for r in broken.values())
    conns = {f"{p} / {c}": n for p, c, n, _ in groups}
    total = sum(conns.values()) + 3  # the failed handshakes count as connections too
    s = doc["summary"]
    assert s["connections"] == total and s["connections_not_simulated"] == 3
    assert s["connections_breaking"] == sum(conns[n] for n in broken)
    assert "TLSv1.1 / ECDHE-RSA-AES256-SHA" in broken
    share = 100 * s["connections_breaking"] / total
    assert (f"{share:.1f}% of the connections in these logs ({s['client_ips_breaking']} "
            f"client IPs, ") in text
    assert f"would fail under {policy} and work today" in text
    assert "a log group is a client offering exactly its protocol and suite" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--policy", "ELBSecurityPolicy-NOPE"], "unknown policy 'ELBSecurityPolicy-NOPE'"),
    (["--policy", "ELBSecurityPolicy-2014-10"], "does not document its protocols"),
    (["--policy", FS, "--clients", "no-such-profile"], "--clients: unknown profile"),
    (["--policy", FS, "--current", "host:99999"], "--current: target 'host:99999'"),
    (["--policy", FS, "--cert", "dsa"], "invalid choice: 'dsa'"),
])
def test_whatif_input_errors(args: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whatif", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_policy_file_and_assumptions(tmp_path: Path) -> None:
    # a user's policy file: OpenSSL names, no groups (assumed, and said so), client order
    f = tmp_path / "candidate.yaml"
    f.write_text("name: tls12-chacha-only\nprotocols: [TLSv1.2]\n"
                 "ciphers: [ECDHE-RSA-CHACHA20-POLY1305, ECDHE-RSA-AES128-GCM-SHA256]\n"
                 "cipher_order_is_priority: false\n")
    rc, doc = _whatif(tmp_path, "--policy", str(f), "--clients", "browsers", "java",
                      "cipher:ECDHE-RSA-AES128-GCM-SHA256", "cipher:AES128-SHA")
    assert rc == 0
    cand = doc["candidate"]
    assert cand["server_order"] is False and cand["groups"] == ["x25519", "secp256r1",
                                                                  "secp384r1"]
    assert any(a.startswith("groups not documented") for a in cand["assumptions"])
    rows = {c["client"]: c["candidate"] for c in doc["clients"]}
    assert rows["cipher:ECDHE-RSA-AES128-GCM-SHA256"]["suite"] == (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    assert rows["cipher:AES128-SHA"]["reason"] == (
        "no common cipher suite: client offers AES128-SHA only")
    # a catalog that names only its post-quantum groups still gets the classic ones
    pq = candidate(catalog.get("ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"))
    assert reg.group_value("x25519") in pq.groups
    assert any("post-quantum" in a for a in pq.assumptions)


def test_whatif_against_a_closed_port_is_an_input_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    assert main(["whatif", "--policy", FS, "--clients", "tls1.2-only", "tls1.3-only",
                 "--against", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}: no TLS endpoint answered (refused" in err
