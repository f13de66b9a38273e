"""`fleet report`: per endpoint and vantage what was found, what differs between vantage
points (and what `prober diff` names that difference), and what changed since an earlier
run — all read back from the store."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import groupby
from typing import Any

from prober.core.attempt import last_try_docs
from prober.diagnose import diff
from prober.diagnose.findings import POLICY
from prober.fleet.store import Store
from prober.probe.report import PROBE_SCHEMA
from prober.report.escape import for_terminal
from prober.report.table import tabulate

REPORT_SCHEMA = "prober.fleet.report/1"
NOT_COMPARED = "not compared"  # two stored documents `prober diff` could not read


def _signature(store: Store, run: int) -> dict[tuple[str, str], dict[str, Any]]:
    """What an (endpoint, vantage) looked like in a run, in comparable form."""
    sig: dict[tuple[str, str], dict[str, Any]] = {}
    for t in store.rows("SELECT endpoint, vantage, status, reason, address FROM tasks "
                        "WHERE run_id=?", run):
        sig[(t["endpoint"], t["vantage"])] = {
            "status": t["status"], "reason": t["reason"], "address": t["address"],
            "policy": None, "policy_text": None, "policy_brief": None,
            "cert_not_after": None, "cert_sha256": [], "outcomes": {}, "findings": [],
            "verdicts": {"passed": 0, "failed": []}, _MEASURED: None}
    # one (endpoint, vantage)'s attempts at a time (the key's order), summed up before
    # the next: a run's attempts are the part of the store that grows with fleet x
    # profiles, and neither they nor their counts are ever all in memory
    attempts = store.each("SELECT endpoint, vantage, task, attempt AS id, profile, outcome, "
                          "cert_not_after, cert_sha256, "
                          "json_extract(doc, '$.retry_of') AS retry_of "
                          "FROM attempts WHERE run_id=? ORDER BY endpoint, vantage, task, "
                          "attempt", run)
    for k, rows in groupby(attempts, key=lambda a: (a["endpoint"], a["vantage"])):
        if k not in sig:
            continue
        by_profile: dict[str, Counter[str]] = defaultdict(Counter)
        certs: list[str] = []
        leaves: set[str] = set()
        # an attempt turned away for load and retried counts once, as its last try: a
        # rate limit met in one run and not the other is no change of the endpoint's
        # answers
        for _, task_rows in groupby(rows, key=lambda a: a["task"]):
            for a in last_try_docs(list(task_rows)):
                by_profile[a["profile"]][a["outcome"]] += 1
                if a["cert_not_after"]:
                    certs.append(a["cert_not_after"])
                if a["cert_sha256"]:
                    leaves.add(a["cert_sha256"])
        sig[k]["outcomes"] = {p: "/".join(f"{o} {n}" for o, n in c.most_common())
                              for p, c in by_profile.items()}
        if certs:
            sig[k]["cert_not_after"] = min(certs)
        sig[k]["cert_sha256"] = sorted(leaves)
    for p in store.rows("SELECT endpoint, vantage, name, text, cert_not_after, doc FROM "
                        "policies WHERE run_id=?", run):
        k = (p["endpoint"], p["vantage"])
        if k in sig:
            doc = json.loads(p["doc"])
            measured = doc.get("policy") or {}
            sig[k].update(policy=p["name"], policy_text=p["text"],
                          # a store written before the brief form: the name, or the text
                          policy_brief=doc.get("brief") or p["name"] or p["text"],
                          **{_MEASURED: {"versions": measured.get("versions") or [],
                                         "suites": measured.get("suites") or {}}})
            sig[k]["cert_not_after"] = p["cert_not_after"] or sig[k]["cert_not_after"]
    # a diagnosis measures no catalog policy, but its policy summary says what it accepts
    for d in store.rows("SELECT endpoint, vantage, json_extract(doc, '$.findings') AS f "
                        "FROM diagnoses WHERE run_id=?", run):
        k = (d["endpoint"], d["vantage"])
        summary = next((f for f in json.loads(d["f"] or "[]") if f.get("id") == POLICY), None)
        if k in sig and summary is not None:
            accepted = (summary.get("figures") or {}).get("accepted") or []
            sig[k]["policy_text"] = summary.get("cause")
            sig[k]["policy_brief"] = f"accepts {', '.join(accepted) or 'none'}"
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


# the measured policy (versions, suites per version): compared, not reported per row
_MEASURED = "_measured"
_COMPARED = ("policy", "outcomes", "cert_not_after", "cert_sha256")
# a fingerprint as the report's lines show it: enough to tell two certificates apart
_SHORT_SHA256 = 16
CERTIFICATE, FAILED_EXPECTATIONS = "certificate", "failed expectations"


def _not_run(s: dict[str, Any]) -> bool:
    """A task refused, failed before any attempt or never run: nothing else to compare."""
    return s["status"] != "done" and not s["outcomes"] and s[_MEASURED] is None


def _differences(a: dict[str, Any], b: dict[str, Any], outcomes: bool = True,
                 adaptive: bool = False) -> list[dict[str, Any]]:
    """``adaptive``: each side chose its hellos from what it saw (a policy scan), so a
    profile only one side sent is no difference; the measured policy says what differs."""
    out: list[dict[str, Any]] = []
    if a["status"] != b["status"]:
        out.append({"what": "status", "a": a["status"], "b": b["status"],
                    "a_reason": a["reason"], "b_reason": b["reason"]})
        # one line, with the reason, not one per profile the other side answered
        if _not_run(a) or _not_run(b):
            return out
    for field in _COMPARED:
        if field == "outcomes" and not outcomes:
            continue
        if field == "outcomes":
            for p in sorted(set(a["outcomes"]) | set(b["outcomes"])):
                x, y = a["outcomes"].get(p), b["outcomes"].get(p)
                if x != y and not (adaptive and (x is None or y is None)):
                    out.append({"what": f"profile {p}", "a": x, "b": y})
        elif field == "cert_sha256":
            out += _certificate_difference(a[field], b[field], adaptive)
        elif a[field] != b[field]:
            out.append({"what": field, "a": a[field], "b": b[field]})
        elif field == "policy":
            out += _measured_differences(a[_MEASURED], b[_MEASURED])
    fa = {f["id"] for f in a["findings"]}
    fb = {f["id"] for f in b["findings"]}
    if fa != fb:
        out.append({"what": "findings", "a": sorted(fa), "b": sorted(fb)})
    # every failed expectation is an `expectation-failed` finding: one that fails now
    # while another was fixed leaves the finding ids as they were
    xa, xb = set(a["verdicts"]["failed"]), set(b["verdicts"]["failed"])
    if xa != xb:
        out.append({"what": FAILED_EXPECTATIONS, "a": sorted(xa), "b": sorted(xb)})
    return out


def _certificate_difference(a: list[str], b: list[str], adaptive: bool
                            ) -> list[dict[str, Any]]:
    """The leaf certificates seen, by fingerprint: a certificate replaced by one with the
    same expiry changes no date. A side that saw none is the expiry's line already; in a
    policy scan a side may not have sent the hello that shows the second certificate of
    a dual-certificate server, so there one set holding the other is no change."""
    sa, sb = set(a), set(b)
    if sa == sb or not sa or not sb or (adaptive and (sa <= sb or sb <= sa)):
        return []
    return [{"what": CERTIFICATE, "a": _fingerprints(a), "b": _fingerprints(b)}]


def _fingerprints(shas: list[str]) -> str:
    return ", ".join(s[:_SHORT_SHA256] for s in shas)


def _measured_differences(a: dict[str, Any] | None, b: dict[str, Any] | None
                          ) -> list[dict[str, Any]]:
    """The same catalog name (or none on both sides) need not be the same policy: what
    differs between the versions and suites measured."""
    if a is None or b is None:
        return []
    out: list[dict[str, Any]] = []
    va, vb = a["versions"], b["versions"]
    if set(va) != set(vb):
        out.append({"what": "policy versions", "a": ", ".join(va) or "none",
                    "b": ", ".join(vb) or "none"})
    for v in [v for v in va if v in vb]:
        sa, sb = a["suites"].get(v) or [], b["suites"].get(v) or []
        if set(sa) != set(sb):
            out.append({"what": f"policy {v} suites", "a": _suites_words(sa, sb),
                        "b": _suites_words(sb, sa)})
    return out


def _suites_words(mine: list[str], other: list[str]) -> str:
    only = [x for x in mine if x not in set(other)]
    if not only:
        return str(len(mine))
    return (f"{len(mine)}, {len(only)} only here ({', '.join(only[:4])}"
            f"{' …' if len(only) > 4 else ''})")


def _reasons(d: dict[str, Any], label_a: str, label_b: str) -> str:
    """A status difference's reasons, after its line: why a task was refused or failed."""
    why = [f"{label}: {for_terminal(d[key])}" for key, label in (
        ("a_reason", label_a), ("b_reason", label_b)) if d.get(key)]
    return "".join(f"; {w}" for w in why)


def _attempt_docs(store: Store, run: int, endpoint: str) -> dict[str, list[dict[str, Any]]]:
    """One endpoint's attempt documents by vantage point. One endpoint at a time: a whole
    run's documents held at once grew the coordinator by ~8 kB per attempt (bench/fleet.py)."""
    docs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in store.rows("SELECT vantage, doc FROM attempts WHERE run_id=? AND endpoint=? "
                        "ORDER BY task, attempt", run, endpoint):
        docs[a["vantage"]].append(json.loads(a["doc"]))
    return docs


def _compared(a: diff.Side, b: diff.Side) -> tuple[list[dict[str, Any]], str | None]:
    """What `prober diff` says of two sides of one endpoint: the same finding ids (an
    outside-only reset is `injected-reset`, another issuer `tls-interception`); or why
    they could not be compared, which the report says for that endpoint only (one odd
    stored document must not cost the whole fleet its report)."""
    try:
        diff.check(a.doc, a.label)
        diff.check(b.doc, b.label)
        return list(diff.document(a, b)["findings"]), None
    except (diff.DiffInputError, KeyError, ValueError, TypeError) as e:
        return [], f"{type(e).__name__}: {e}"


def _sides(store: Store, attempts: dict[str, list[dict[str, Any]]],
           diagnosed: bool, endpoint: str, a: tuple[int, str, str],
           b: tuple[int, str, str]) -> tuple[diff.Side, diff.Side] | None:
    """Each side, given as (run, vantage, label), as `prober diff` reads it: a diagnosis's
    document, or else the task's attempts read as a probe run."""
    docs: list[dict[str, Any]] = []
    for run, vantage, _ in (a, b):
        d = (store.diagnosis(run, endpoint, vantage) if diagnosed else
             {"schema": PROBE_SCHEMA, "attempts": attempts[vantage]}
             if attempts.get(vantage) else None)
        if d is None:
            return None
        docs.append(d)
    return diff.Side(a[2], docs[0]), diff.Side(b[2], docs[1])


def build(store: Store, run: int | None, since: int | None) -> dict[str, Any]:
    info = store.run_row(run)
    rid = int(info["id"])
    sig = _signature(store, rid)
    vantages = [r["name"] for r in store.rows(
        "SELECT name FROM vantages WHERE run_id=? ORDER BY name", rid)]
    rows = [{"endpoint": e, "vantage": v, **{k: x for k, x in s.items() if k != _MEASURED}}
            for (e, v), s in sorted(sig.items())]
    between: list[dict[str, Any]] = []
    named: list[dict[str, Any]] = []
    endpoints = sorted({e for e, _ in sig})
    # a diagnosis's dozens of hello variants are compared the way `prober diff` compares
    # them, so a difference gets the name `prober diff` gives it, not a row per variant
    diagnosed = info["job"] == "diagnose"
    # a check task's policy scan chose its hellos as a policy task does
    adaptive = info["job"] in ("policy", "check")
    for e in endpoints:
        present = [v for v in vantages if (e, v) in sig]
        # only compared between vantage points: never read for a one-vantage run, nor for
        # a diagnose run (store.diagnosis reads each side's attempts with its document)
        attempts = (_attempt_docs(store, rid, e) if len(present) > 1 and not diagnosed
                    else {})
        for i, va in enumerate(present):
            for vb in present[i + 1:]:
                pair = {"endpoint": e, "vantage_a": va, "vantage_b": vb}
                between += [{**pair, **d} for d in _differences(
                    sig[(e, va)], sig[(e, vb)], outcomes=not diagnosed,
                    adaptive=adaptive)]
                sides = _sides(store, attempts, diagnosed, e, (rid, va, va), (rid, vb, vb))
                if sides is not None:
                    found, why = _compared(*sides)
                    named += [{**pair, "id": f["id"], "confidence": f["confidence"],
                               "side": f["figures"].get("side"), "cause": f["cause"],
                               "evidence": f["evidence"]} for f in found]
                    if why is not None:
                        between.append({**pair, "what": NOT_COMPARED, "a": why, "b": why})
    drift: list[dict[str, Any]] = []
    if since is not None:
        # runs of different jobs send different hellos: only their conclusions compare
        same_job = store.run_row(since)["job"] == info["job"]
        both_diagnosed = diagnosed and same_job
        old = _signature(store, since)
        for k in sorted(set(sig) | set(old)):
            if k not in old or k not in sig:
                drift.append({"endpoint": k[0], "vantage": k[1], "what": "presence",
                              "a": "present" if k in old else "absent",
                              "b": "present" if k in sig else "absent"})
                continue
            drift += [{"endpoint": k[0], "vantage": k[1], **d}
                      for d in _differences(old[k], sig[k],
                                            outcomes=same_job and not both_diagnosed,
                                            # nor the same hellos: the certificates
                                            # one run saw may be a part of the other's
                                            adaptive=adaptive or not same_job)]
            if both_diagnosed:
                sides = _sides(store, {}, True, k[0], (since, k[1], f"run {since}"),
                               (rid, k[1], f"run {rid}"))
                if sides is not None:
                    found, why = _compared(*sides)
                    drift += [{"endpoint": k[0], "vantage": k[1], "what": f"diff {f['id']}",
                               "finding": f["id"], "confidence": f["confidence"],
                               "cause": f["cause"], "a": None, "b": None} for f in found]
                    if why is not None:
                        drift.append({"endpoint": k[0], "vantage": k[1],
                                      "what": NOT_COMPARED, "a": why, "b": why})
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
                      e.get("policy_brief") or e["policy"] or (e["policy_text"] or ""),
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
            if d["endpoint"] == e and d["what"] == NOT_COMPARED:
                lines.append(f"  {e}: {NOT_COMPARED} ({d['vantage_a']} vs {d['vantage_b']}): "
                             f"{for_terminal(d['a'])}")
            elif d["endpoint"] == e:
                lines.append(f"  {e}: {d['what']}: {d['a']} from {d['vantage_a']}, "
                             f"{d['b']} from {d['vantage_b']}"
                             f"{_reasons(d, d['vantage_a'], d['vantage_b'])}")
    if doc["since"] is not None:
        lines += ["", f"DRIFT SINCE RUN {doc['since']}"]
        if not doc["drift"]:
            lines.append("  nothing changed")
        before, now = f"run {doc['since']}", f"run {r['id']}"
        for d in doc["drift"]:
            if d["what"] == NOT_COMPARED:
                lines.append(f"  {d['endpoint']} from {d['vantage']}: {NOT_COMPARED}: "
                             f"{for_terminal(d['a'])}")
                continue
            if "finding" in d:
                # the cause quotes the server's answer, as between vantage points above
                lines.append(f"  {d['endpoint']} from {d['vantage']}: {d['finding']} "
                             f"({d['confidence']}): {for_terminal(d['cause'])}")
                continue
            lines.append(f"  {d['endpoint']} from {d['vantage']}: {d['what']}: {d['a']} -> "
                         f"{d['b']}{_reasons(d, before, now)}")
    return "\n".join(lines)
