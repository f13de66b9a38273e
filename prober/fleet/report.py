"""`fleet report`: per endpoint and vantage what was found, what differs between vantage
points (and what `prober diff` names that difference), and what changed since an earlier
run — all read back from the store."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from prober.diagnose import diff
from prober.fleet.store import Store, StoreError
from prober.probe.report import PROBE_SCHEMA
from prober.report.escape import for_terminal
from prober.report.table import tabulate

REPORT_SCHEMA = "prober.fleet.report/1"


def _signature(store: Store, run: int) -> dict[tuple[str, str], dict[str, Any]]:
    """What an (endpoint, vantage) looked like in a run, in comparable form."""
    sig: dict[tuple[str, str], dict[str, Any]] = {}
    for t in store.rows("SELECT endpoint, vantage, status, reason, address FROM tasks "
                        "WHERE run_id=?", run):
        sig[(t["endpoint"], t["vantage"])] = {
            "status": t["status"], "reason": t["reason"], "address": t["address"],
            "policy": None, "policy_text": None, "cert_not_after": None, "outcomes": {},
            "findings": [], "verdicts": {"passed": 0, "failed": []}}
    by_profile: dict[tuple[str, str], dict[str, Counter[str]]] = defaultdict(
        lambda: defaultdict(Counter))
    certs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for a in store.rows("SELECT endpoint, vantage, profile, outcome, detail, cert_not_after "
                        "FROM attempts WHERE run_id=? ORDER BY attempt", run):
        k = (a["endpoint"], a["vantage"])
        by_profile[k][a["profile"]][a["outcome"]] += 1
        if a["cert_not_after"]:
            certs[k].append(a["cert_not_after"])
    for k, profs in by_profile.items():
        if k in sig:
            sig[k]["outcomes"] = {p: "/".join(f"{o} {n}" for o, n in c.most_common())
                                  for p, c in profs.items()}
    for k, cs in certs.items():
        if k in sig:
            sig[k]["cert_not_after"] = min(cs)
    for p in store.rows("SELECT endpoint, vantage, name, text, cert_not_after FROM policies "
                        "WHERE run_id=?", run):
        k = (p["endpoint"], p["vantage"])
        if k in sig:
            sig[k]["policy"], sig[k]["policy_text"] = p["name"], p["text"]
            sig[k]["cert_not_after"] = p["cert_not_after"] or sig[k]["cert_not_after"]
    for f in store.rows("SELECT endpoint, vantage, id, severity, cause FROM findings "
                        "WHERE run_id=? ORDER BY rowid", run):
        k = (f["endpoint"], f["vantage"])
        if k in sig:
            sig[k]["findings"].append({"id": f["id"], "severity": f["severity"],
                                       "cause": f["cause"]})
    for v in store.rows("SELECT endpoint, vantage, expectation, passed FROM verdicts "
                        "WHERE run_id=? ORDER BY rowid", run):
        k = (v["endpoint"], v["vantage"])
        if k in sig:
            if v["passed"]:
                sig[k]["verdicts"]["passed"] += 1
            else:
                sig[k]["verdicts"]["failed"].append(v["expectation"])
    return sig


_COMPARED = ("status", "policy", "outcomes", "cert_not_after")


def _differences(a: dict[str, Any], b: dict[str, Any], outcomes: bool = True
                 ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for field in _COMPARED:
        if field == "outcomes" and not outcomes:
            continue
        if field == "outcomes":
            for p in sorted(set(a["outcomes"]) | set(b["outcomes"])):
                x, y = a["outcomes"].get(p), b["outcomes"].get(p)
                if x != y:
                    out.append({"what": f"profile {p}", "a": x, "b": y})
        elif a[field] != b[field]:
            out.append({"what": field, "a": a[field], "b": b[field]})
    fa = {f["id"] for f in a["findings"]}
    fb = {f["id"] for f in b["findings"]}
    if fa != fb:
        out.append({"what": "findings", "a": sorted(fa), "b": sorted(fb)})
    return out


def _attempt_docs(store: Store, run: int, endpoint: str) -> dict[str, list[dict[str, Any]]]:
    """One endpoint's attempt documents by vantage point. One endpoint at a time: a whole
    run's documents held at once grew the coordinator by ~8 kB per attempt (bench/fleet.py)."""
    docs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in store.rows("SELECT vantage, doc FROM attempts WHERE run_id=? AND endpoint=? "
                        "ORDER BY task, attempt", run, endpoint):
        docs[a["vantage"]].append(json.loads(a["doc"]))
    return docs


def _named(run: int, endpoint: str, va: str, vb: str, xa: list[dict[str, Any]],
           xb: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `prober diff` says of two vantage points' attempts at one endpoint, read as
    two probe runs labelled with the vantage names: the same rows and the same finding
    ids (an outside-only reset is `injected-reset`, another issuer `tls-interception`)."""
    a = diff.Side(va, {"schema": PROBE_SCHEMA, "attempts": xa})
    b = diff.Side(vb, {"schema": PROBE_SCHEMA, "attempts": xb})
    try:
        diff.check(a.doc, va)
        diff.check(b.doc, vb)
        found = diff.findings(a, b, diff.rows(a, b))
    except (diff.DiffInputError, KeyError, ValueError, TypeError) as e:
        raise StoreError(f"run {run}: {endpoint}: the attempts from {va} and {vb} cannot be "
                         f"compared ({type(e).__name__}: {e})") from None
    return [{"endpoint": endpoint, "vantage_a": va, "vantage_b": vb, "id": f.id,
             "confidence": f.confidence, "side": f.figures.get("side"), "cause": f.cause,
             "evidence": f.evidence} for f in found]


def build(store: Store, run: int | None, since: int | None) -> dict[str, Any]:
    info = store.run_row(run)
    rid = int(info["id"])
    sig = _signature(store, rid)
    vantages = [r["name"] for r in store.rows(
        "SELECT name FROM vantages WHERE run_id=? ORDER BY name", rid)]
    rows = [{"endpoint": e, "vantage": v, **s} for (e, v), s in sorted(sig.items())]
    between: list[dict[str, Any]] = []
    named: list[dict[str, Any]] = []
    endpoints = sorted({e for e, _ in sig})
    for e in endpoints:
        present = [v for v in vantages if (e, v) in sig]
        # only compared between vantage points: never read for a one-vantage run
        attempts = _attempt_docs(store, rid, e) if len(present) > 1 else {}
        for i, va in enumerate(present):
            for vb in present[i + 1:]:
                for d in _differences(sig[(e, va)], sig[(e, vb)]):
                    between.append({"endpoint": e, "vantage_a": va, "vantage_b": vb, **d})
                if attempts.get(va) and attempts.get(vb):
                    named += _named(rid, e, va, vb, attempts[va], attempts[vb])
    drift: list[dict[str, Any]] = []
    if since is not None:
        # runs of different jobs send different hellos: only their conclusions compare
        same_job = store.run_row(since)["job"] == info["job"]
        old = _signature(store, since)
        for k in sorted(set(sig) | set(old)):
            if k not in old or k not in sig:
                drift.append({"endpoint": k[0], "vantage": k[1], "what": "presence",
                              "a": "present" if k in old else "absent",
                              "b": "present" if k in sig else "absent"})
                continue
            drift += [{"endpoint": k[0], "vantage": k[1], **d}
                      for d in _differences(old[k], sig[k], outcomes=same_job)]
    if isinstance(info.get("options"), str):
        info["options"] = json.loads(info["options"])
    return {"schema": REPORT_SCHEMA, "run": info, "vantages": vantages, "endpoints": rows,
            "between_vantages": between, "between_findings": named, "since": since,
            "drift": drift}


def text(doc: dict[str, Any]) -> str:
    r = doc["run"]
    lines = [f"fleet run {r['id']} ({r['job']}, {r['mode']}, {r['status']}): "
             f"{len(doc['endpoints'])} endpoint x vantage results, vantage points "
             f"{', '.join(doc['vantages'])}", ""]
    table = []
    for e in doc["endpoints"]:
        fails = e["verdicts"]["failed"]
        verdicts = (f"{e['verdicts']['passed']} passed, {len(fails)} failed"
                    if e["verdicts"]["passed"] or fails else "")
        table.append([e["endpoint"], e["vantage"], e["status"],
                      e["policy"] or (e["policy_text"] or ""),
                      (e["cert_not_after"] or "")[:10],
                      ", ".join(f"{f['severity']} {f['id']}" for f in e["findings"]),
                      verdicts])
    lines.append(tabulate(table, headers=["endpoint", "vantage", "task", "policy",
                                          "cert expires", "findings", "verdicts"],
                          tablefmt="plain", disable_numparse=True))
    for e in doc["endpoints"]:
        for f in e["findings"]:
            lines.append(f"  {e['endpoint']} from {e['vantage']}: {f['severity']} {f['id']}: "
                         f"{f['cause']}")
    lines += ["", "BETWEEN VANTAGE POINTS"]
    if not doc["between_vantages"] and not doc["between_findings"]:
        lines.append("  no difference" if len(doc["vantages"]) > 1 else
                     "  one vantage point only")
    # per endpoint: what `prober diff` names first, then the raw differences
    for e in sorted({d["endpoint"] for d in doc["between_findings"] + doc["between_vantages"]}):
        for f in doc["between_findings"]:
            if f["endpoint"] == e:
                # the cause quotes the server's answer: one line, whatever it holds
                lines.append(f"  {e}: {f['confidence']} {f['id']}: {for_terminal(f['cause'])}")
        for d in doc["between_vantages"]:
            if d["endpoint"] == e:
                lines.append(f"  {e}: {d['what']}: {d['a']} from {d['vantage_a']}, "
                             f"{d['b']} from {d['vantage_b']}")
    if doc["since"] is not None:
        lines += ["", f"DRIFT SINCE RUN {doc['since']}"]
        if not doc["drift"]:
            lines.append("  nothing changed")
        for d in doc["drift"]:
            lines.append(f"  {d['endpoint']} from {d['vantage']}: {d['what']}: {d['a']} -> "
                         f"{d['b']}")
    return "\n".join(lines)
