"""The naming matrix: every AWS ELB policy this OpenSSL can serve and every Mozilla level of
every guideline version, each on nginx and HAProxy with an RSA, an ECDSA and both
certificates, scanned by `prober policy` and named against the catalog.

    .venv/bin/python scripts/naming_matrix.py [--only SUBSTRING]... [--server nginx|haproxy]
                                              [--cert rsa|ecdsa|both] [--json FILE]
                                              [--compact]

Server configurations come from tests/peers/policy_configs.py (AWS's published tables,
Mozilla's guideline files as its generator renders them); the expected verdict from
OpenSSL's own expansion of each configuration (``expected_verdict``), never from the
catalog code. One row per cell: the verdict (equal, equal as applicable, or the nearest
policy with its edit list), why parts were not applicable, whether that is what was
expected, the connections the scan used and how the server orders suites. Exit 1 when
any cell is not what was expected. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tabulate import tabulate  # noqa: E402

from prober.cli.main import main as prober  # noqa: E402
from prober.policy.model import ObservedPolicy  # noqa: E402
from prober.policy.naming import catalog  # noqa: E402
from prober.policy.naming.match import compare  # noqa: E402
from prober.wire import registry as reg  # noqa: E402
from tests.peers import NginxServer, make_pki  # noqa: E402
from tests.peers.haproxy_server import HaproxyServer  # noqa: E402
from tests.peers.policy_configs import (  # noqa: E402
    CERTS,
    OPENSSL,
    PolicyConfig,
    aws_published,
    expected_verdict,
    haproxy_kwargs,
    mozilla_all,
    nginx_kwargs,
    servable,
)


def elb_configs() -> tuple[list[PolicyConfig], list[tuple[str, str]]]:
    """ELB policies whose published table this OpenSSL can serve, and the others with why."""
    doc = json.loads((REPO / "prober/data/policies/aws_elb.json").read_text())
    ok: list[PolicyConfig] = []
    skipped: list[tuple[str, str]] = []
    for entry in doc["policies"]:
        cfg = aws_published(entry)
        if cfg is None:
            skipped.append((entry["name"], "protocols or suites not published"))
            continue
        pq = [g for g in entry.get("groups") or ()
              if getattr(reg.group(reg.group_value(g)), "kind", "") in ("hybrid_pq", "pq_kem")]
        if pq and OPENSSL < (3, 5):
            skipped.append((cfg.name, f"OpenSSL {'.'.join(map(str, OPENSSL))} has no "
                            f"{', '.join(pq)}"))
            continue
        # what a server holding both certificates serves is all a policy can show here;
        # DSS suites need a DSA certificate (none here): the match leaves them out
        srv = servable(cfg, "both")
        legacy = {s for v, ss in srv.items() if v != "TLSv1.3" for s in ss}
        missing = [c for c in cfg.ciphers if reg.suite_name(reg.suite_value(c)) not in legacy
                   and getattr(reg.suite(reg.suite_value(c)), "auth", None) != "DSS"]
        if missing:
            skipped.append((cfg.name, "this OpenSSL lacks " + ", ".join(missing)))
            continue
        ok.append(cfg)
    return ok, skipped


def _observation(doc: dict[str, Any]) -> ObservedPolicy:
    p = dict(doc["policy"])
    p.pop("order", None)
    return ObservedPolicy(**p)


def _order(doc: dict[str, Any]) -> str:
    words = sorted(set((doc["policy"].get("order") or {}).values()) - {None})
    return "/".join(words) or "-"


def run_cell(cfg: PolicyConfig, server: str, cert: str, pki: Any, dhparam: Path,
             tmp: Path) -> dict[str, Any]:
    if server == "nginx":
        srv: Any = NginxServer(pki, **nginx_kwargs(cfg, cert, dhparam))
    else:
        srv = HaproxyServer(pki, **haproxy_kwargs(cfg, cert, dhparam))
    out = tmp / "policy.json"
    srv.start()
    try:
        t0 = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = prober(["policy", f"localhost:{srv.port}", "--address", "127.0.0.1",
                         "--json", str(out)])
        elapsed = time.monotonic() - t0
    finally:
        srv.stop()
    doc = json.loads(out.read_text())
    want, missing = expected_verdict(cfg, cert)
    row: dict[str, Any] = {"policy": cfg.name, "server": server, "cert": cert, "rc": rc,
                           "reliable": doc["reliable"], "connections": doc["connections"]["total"],
                           "seconds": round(elapsed, 2), "order": _order(doc),
                           "expected": want or "not named"}
    if not doc["reliable"] or doc["catalog"] is None:
        row.update(verdict="NOT RELIABLE", why="; ".join(doc["warnings"][:2]), ok=False)
        return row
    found = {m["name"]: m for m in doc["catalog"]["matches"]}
    if cfg.name in found:
        m = found[cfg.name]
        row["verdict"] = m["kind"]
        row["why"] = "; ".join(
            f"{r['reason']}: {len(r['items'])} left out" if r["reason"] == "certificate"
            else f"{r['reason']}: {', '.join(r['items'])}" for r in m["not_applicable"])
        row["ok"] = m["kind"] == want
    else:
        c = compare(_observation(doc), catalog.get(cfg.name))
        words = c.diff.words()
        row["verdict"] = "not named"
        row["why"] = words
        got = set(words.removeprefix("minus ").split(", ")) if words.startswith("minus ") \
            and ";" not in words else {words}
        row["ok"] = want is None and got == {x.removeprefix("TLS 1.3 suite ") for x in missing}
    return row


_SHORT = {"equal": "=", "equal-as-applicable": "≈", "not named": "✗", "NOT RELIABLE": "!"}


def compact(rows: list[dict[str, Any]], servers: list[str], certs: list[str]) -> str:
    """One line per policy: a mark per server × certificate (= equal, ≈ equal as
    applicable, ✗ not named, ! unreliable; * not as expected), what was left out or the
    edit list once per distinct answer, and the range of connections."""
    by: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["policy"], {})[(r["server"], r["cert"])] = r
    out = []
    for policy, cells in by.items():
        marks = []
        for server in servers:
            marks.append("".join(
                _SHORT.get(cells[(server, c)]["verdict"], "?")
                + ("" if cells[(server, c)]["ok"] else "*") if (server, c) in cells else " "
                for c in certs))
        # each distinct part once (the counts of certificate left-outs differ by set-up)
        notes = "; ".join(dict.fromkeys(part for r in cells.values() if r["why"]
                                        for part in r["why"].split("; ")))
        conns = sorted(r["connections"] for r in cells.values())
        orders = "/".join(sorted({w for r in cells.values() for w in r["order"].split("/")}))
        out.append([policy, *marks, notes, orders, f"{conns[0]}–{conns[-1]}"])
    heads = [f"{s} {'/'.join(c[0] for c in certs)}" for s in servers]
    return tabulate(out, headers=["policy", *heads, "left out / edit list", "order",
                                  "conns"], tablefmt="github", disable_numparse=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", metavar="SUBSTRING",
                   help="only policies whose name contains this (repeatable)")
    p.add_argument("--server", choices=["nginx", "haproxy"], action="append")
    p.add_argument("--cert", choices=list(CERTS), action="append")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--compact", action="store_true",
                   help="one line per policy instead of one per cell")
    args = p.parse_args(argv)
    elb, skipped = elb_configs()
    configs = elb + mozilla_all()
    if args.only:
        configs = [c for c in configs if any(o in c.name for o in args.only)]
    servers = args.server or ["nginx", "haproxy"]
    certs = args.cert or list(CERTS)
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prober-matrix-") as d:
        tmp = Path(d)
        pki = make_pki(tmp / "pki", ecdsa384=True)
        dhparam = tmp / "ffdhe2048.pem"
        subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                        "group:ffdhe2048", "-out", str(dhparam)], check=True,
                       capture_output=True)
        for cfg in configs:
            for server in servers:
                for cert in certs:
                    row = run_cell(cfg, server, cert, pki, dhparam, tmp)
                    rows.append(row)
                    print(f"{'ok ' if row['ok'] else 'BAD'} {cfg.name} {server} {cert}: "
                          f"{row['verdict']} {row['why']}", file=sys.stderr)
    if args.compact:
        print(compact(rows, servers, certs))
    else:
        table = [[r["policy"], r["server"], r["cert"], r["verdict"], r["why"], r["expected"],
                  "yes" if r["ok"] else "NO", r["order"], r["connections"]] for r in rows]
        print(tabulate(table, headers=["policy", "server", "cert", "verdict",
                                       "left out / edit list", "expected", "as expected",
                                       "order", "conns"],
                       tablefmt="github", disable_numparse=True))
    counts = Counter(r["verdict"] for r in rows)
    bad = [r for r in rows if not r["ok"]]
    conns = sorted(r["connections"] for r in rows)
    print(f"\n{len(rows)} cells in {time.monotonic() - t0:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; {len(rows) - len(bad)}/{len(rows)} as expected; connections per scan "
          f"{conns[0]}–{conns[-1]} (median {conns[len(conns) // 2]})" if rows else "no cells")
    if skipped:
        print(f"\nELB policies not in the matrix ({len(skipped)}):")
        for name, why in skipped:
            print(f"  {name}: {why}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
