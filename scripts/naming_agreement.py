"""Agreement table: a few nginx/HAProxy servers configured as named policies, each read by
`prober policy`, sslyze and nmap's ssl-enum-ciphers, and each tool's answer compared with
what the configuration means (versions, suites, order, ChaCha20 priority, groups, name).

    .venv/bin/python scripts/naming_agreement.py [--json FILE]

Truth: the configuration itself (tests/peers/policy_configs.py) and OpenSSL's expansion of
it; the ChaCha20 rule from the server (HAProxy turns it on, nginx with ``Options
PrioritizeChaCha``); groups as configured (or OpenSSL 3's default list); the name from
``expected_verdict``. A tool that does not report something says "-". Only 127.0.0.1 is
scanned; every tool is given the SNI ``localhost`` (HAProxy picks certificates by it).
Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tabulate import tabulate  # noqa: E402

from bench.policy import Run, found_nmap, found_sslyze  # noqa: E402
from prober.wire import registry as reg  # noqa: E402
from tests.peers import NginxServer, make_pki  # noqa: E402
from tests.peers.haproxy_server import HaproxyServer  # noqa: E402
from tests.peers.policy_configs import (  # noqa: E402
    AWS_ELB,
    PolicyConfig,
    expected_verdict,
    haproxy_kwargs,
    mozilla,
    nginx_kwargs,
    servable,
)

PY = sys.executable
# OpenSSL 3.0's default groups, which a server given none offers (TLS 1.2 ECDHE part)
DEFAULT_CURVES = ("x25519", "secp256r1", "x448", "secp521r1", "secp384r1")
_CHACHA_TEST = PolicyConfig(
    "chacha-test", ("TLSv1.3", "TLSv1.2"),
    ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"))


@dataclass(frozen=True)
class Case:
    label: str
    server: str  # nginx | haproxy
    cfg: PolicyConfig
    cert: str
    chacha: bool  # the server applies ChaCha20 priority (under server order)
    named: bool = True  # the configuration is a catalog policy


CASES = [
    Case("nginx FS-1-2-Res-2020-10 rsa", "nginx", AWS_ELB["ELBSecurityPolicy-FS-1-2-Res-2020-10"],
         "rsa", False),
    Case("nginx 2016-08 both", "nginx", AWS_ELB["ELBSecurityPolicy-2016-08"], "both", False),
    Case("haproxy TLS13-1-2-2021-06 both", "haproxy",
         AWS_ELB["ELBSecurityPolicy-TLS13-1-2-2021-06"], "both", True),
    Case("nginx mozilla-intermediate-6.0 both", "nginx", mozilla("6.0", "intermediate"),
         "both", False),
    Case("haproxy mozilla-old-5.8 rsa", "haproxy", mozilla("5.8", "old"), "rsa", True),
    Case("nginx server order", "nginx", _CHACHA_TEST, "rsa", False, named=False),
    Case("nginx server order + PrioritizeChaCha", "nginx", _CHACHA_TEST, "rsa", True,
         named=False),
    Case("haproxy prefer-client-ciphers", "haproxy", replace(_CHACHA_TEST, server_order=False),
         "rsa", False, named=False),
]


def _chacha(s: str) -> bool:
    cs = reg.suite(reg.suite_value(s))
    return cs is not None and cs.enc == "CHACHA20"


def truth(case: Case) -> dict[str, Any]:
    srv = servable(case.cfg, case.cert)
    order = {}
    for v, suites in srv.items():
        below = any(_chacha(s) and any(not _chacha(x) for x in suites[:i])
                    for i, s in enumerate(suites))
        order[v] = ("client" if not case.cfg.server_order else
                    "server+chacha" if case.chacha and below else "server")
    curves = case.cfg.groups or DEFAULT_CURVES
    groups = {reg.group_name(reg.group_value(g)) for g in curves}
    groups = {g for g in groups if getattr(reg.group(reg.group_value(g)), "kind", "") == "ecdhe"}
    kind = expected_verdict(case.cfg, case.cert)[0] if case.named else None
    return {"suites": {v: set(s) for v, s in srv.items()}, "order": order, "groups": groups,
            "name": f"{case.cfg.name}: {kind}" if kind else "not named"}


def run(argv: list[str], out: Path | None = None) -> Run:
    if out is not None:
        out.unlink(missing_ok=True)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False,
                       cwd=REPO)
    doc = json.loads(out.read_text()) if out is not None and out.is_file() else None
    return Run(0.0, 0.0, 0, p.returncode, p.stdout, p.stderr, doc, 0.0)


def prober_view(port: int, tmp: Path, name: str) -> dict[str, Any]:
    r = run([PY, "-m", "prober", "policy", f"localhost:{port}", "--address", "127.0.0.1",
             "--json", str(tmp / "p.json")], tmp / "p.json")
    assert r.json is not None, r.stderr
    pol = r.json["policy"]
    matches = {m["name"]: m["kind"] for m in (r.json["catalog"] or {}).get("matches", [])}
    return {"suites": {v: set(s) for v, s in pol["suites"].items()},
            "order": {v: o for v, o in pol["order"].items() if o},
            "groups": set(pol.get("groups_tls12") or []),
            "groups_partial": not pol.get("groups_tls12_complete", True),
            "name": f"{name}: {matches[name]}" if name in matches else "not named",
            "conns": r.json["connections"]["total"]}


def sslyze_view(port: int, tmp: Path) -> dict[str, Any]:
    out = tmp / "s.json"
    r = run([PY, "-m", "sslyze", "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2",
             "--tlsv1_3", "--elliptic_curves", "--mozilla_config=disable",
             f"localhost:{port}{{127.0.0.1}}", f"--json_out={out}"], out)
    f = found_sslyze(r)
    groups: set[str] = set()
    if r.json is not None:
        res = r.json["server_scan_results"][0]["scan_result"]["elliptic_curves"]["result"]
        for c in (res or {}).get("supported_curves") or []:
            try:
                groups.add(reg.group_name(reg.group_value(c["name"])))
            except KeyError:
                groups.add(c["name"])
    return {"suites": {v: set(s) for v, s in f.suites.items()}, "order": {},
            "groups": groups, "name": "-", "error": f.error}


def nmap_view(port: int) -> dict[str, Any]:
    r = run(["nmap", "-n", "-Pn", "-p", str(port), "--script", "+ssl-enum-ciphers",
             "--script-args", "tls.servername=localhost", "127.0.0.1"])
    f = found_nmap(r)
    # nmap names the key exchange of each accepted suite ("(ecdh_x25519)"): the curve the
    # server chose for it, not a list of what it accepts
    curves = {m.lower() for m in re.findall(r"\(ecdh_(\w+)\)", r.stdout)}
    groups = set()
    for c in curves:
        try:
            groups.add(reg.group_name(reg.group_value(c)))
        except KeyError:
            groups.add(c)
    order = {v: o for v, o in f.order.items() if o in ("server", "client")}
    return {"suites": {v: set(s) for v, s in f.suites.items()}, "order": order,
            "groups": groups, "groups_partial": True, "name": "-", "error": f.error}


def judge(want: Any, got: Any, what: str, view: dict[str, Any]) -> str:
    if what == "order":
        if not got:
            return "-"
        plain = {v: o.replace("server+chacha", "server") for v, o in want.items()}
        if got == want:
            return "yes"
        if got == plain and got != want:
            return "no (misses ChaCha20 priority)"
        return f"no ({got})"
    if what == "chacha":
        if not got:
            return "-"
        return "yes" if got == want else f"no ({got})"
    if what == "groups":
        if not got:
            return "-"
        if got == want:
            return "yes"
        if view.get("groups_partial") and got <= want:
            return "partly (preferred only)" if len(got) < len(want) else "yes"
        return f"no (+{sorted(got - want)} -{sorted(want - got)})"
    if what == "name":
        return "-" if got == "-" else ("yes" if got == want else f"no ({got})")
    if got == want:
        return "yes"
    if what == "versions":
        return f"no ({sorted(got)})"
    diff = {v: (sorted(got.get(v, set()) - s), sorted(s - got.get(v, set())))
            for v, s in want.items() if got.get(v, set()) != s}
    return f"no ({diff})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    rows: list[list[Any]] = []
    raw: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="prober-agree-") as d:
        tmp = Path(d)
        pki = make_pki(tmp / "pki")
        dh = tmp / "dh.pem"
        subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                        "group:ffdhe2048", "-out", str(dh)], check=True, capture_output=True)
        for case in CASES:
            if case.server == "nginx":
                kw = nginx_kwargs(case.cfg, case.cert, dh)
                if case.chacha:
                    kw["conf_commands"] = {**kw.get("conf_commands", {}),
                                           "Options": "PrioritizeChaCha"}
                srv: Any = NginxServer(pki, **kw)
            else:
                srv = HaproxyServer(pki, **haproxy_kwargs(case.cfg, case.cert, dh))
            srv.start()
            try:
                views = {"prober": prober_view(srv.port, tmp, case.cfg.name),
                         "sslyze": sslyze_view(srv.port, tmp), "nmap": nmap_view(srv.port)}
            finally:
                srv.stop()
            want = truth(case)
            chacha_want = {v: o == "server+chacha" for v, o in want["order"].items()
                           if o != "client"}
            for tool, view in views.items():
                chacha_got = ({v: o == "server+chacha" for v, o in view["order"].items()
                               if o != "client"} if tool == "prober" else {})
                rows.append([case.label, tool,
                             judge(set(want["suites"]), set(view["suites"]), "versions", view),
                             judge(want["suites"], view["suites"], "suites", view),
                             judge(want["order"], view["order"], "order", view),
                             judge(chacha_want, chacha_got, "chacha", view),
                             judge(want["groups"], view["groups"], "groups", view),
                             judge(want["name"], view["name"], "name", view),
                             view.get("conns", "")])
                raw.append({"case": case.label, "tool": tool,
                            "view": {k: sorted(v) if isinstance(v, set) else v
                                     for k, v in view.items() if k != "suites"}})
            print(f"done: {case.label}", file=sys.stderr)
    print(tabulate(rows, headers=["server", "tool", "versions", "suites", "order",
                                  "ChaCha20 rule", "TLS 1.2 groups", "name", "conns"],
                   tablefmt="github", disable_numparse=True))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "raw": raw}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
