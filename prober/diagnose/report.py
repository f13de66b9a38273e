"""The diagnose document (JSON) and its text form: findings first, evidence below, the
matrix last.

The text is rendered from the document, never from live objects, so a saved run
reads exactly like the run did.
"""

from __future__ import annotations

import re
import statistics
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prober import __version__
from prober.core.engine import Endpoint
from prober.core.outcome import reply_time
from prober.core.service import tls_endpoint_json
from prober.diagnose.findings import (
    DIAGNOSE_SCHEMA,
    INFO,
    Control,
    RunView,
    step_of,
    view_from_doc,
)
from prober.diagnose.plan import PlanState
from prober.diagnose.rules import evaluate, notes
from prober.probe.report import vantage
from prober.report.timestamps import iso_ms

WIDTH = 100
_TIMING = re.compile(r"\d+(\.\d+)? ms")


@dataclass
class RunMeta:
    started: float
    finished: float | None = None
    complete: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    capture: dict[str, Any] = field(default_factory=dict)


def document(state: PlanState, ep: Endpoint, meta: RunMeta) -> dict[str, Any]:

    results = sorted(state.results, key=lambda r: r.id)
    t = ep.target
    doc: dict[str, Any] = {
        "schema": DIAGNOSE_SCHEMA,
        "tool": {"name": "prober", "version": __version__},
        "vantage": {**vantage(results), "started_at": iso_ms(meta.started),
                    "finished_at": iso_ms(meta.finished)},
        "complete": meta.complete,
        "target": {"target": t.label, "host": t.host, "port": t.port, "address": ep.address,
                   "sni": t.sni, "starttls": t.starttls,
                   "starttls_inferred": t.starttls_inferred},
        "options": meta.options,
        "reference": state.reference,
        "capture": meta.capture,
        "control": state.control.to_json() if state.control else None,
        "idle": state.idle.to_json() if state.idle else None,
        "tls_endpoint": {},
        "findings": [],
        "notes": [],
        "summary": [],
        "attempts": [r.to_json() for r in results],
    }
    run = view_from_doc(doc)
    doc["findings"] = [f.to_json() for f in evaluate(run)]
    doc["tls_endpoint"] = tls_endpoint(run, doc["findings"])
    doc["notes"] = notes(run)
    doc["summary"] = cells(doc["attempts"])
    doc["elapsed_s"] = round((meta.finished or meta.started) - meta.started, 3)
    return doc


def tls_endpoint(run: RunView, findings: list[dict[str, Any]]) -> dict[str, Any]:
    """``tls_endpoint``: whether anything TLS-like was measured; if not, why, and which
    finding names it (the first one: rules.evaluate puts it there)."""
    out = tls_endpoint_json(run.no_tls())
    if not out["measured"] and findings:
        out["finding"] = findings[0]["id"]
    return out


def no_tls_lines(endpoint: dict[str, Any] | None) -> list[str]:
    """The line a diagnosis starts with when no TLS endpoint was measured: the first
    finding (its cause) says what answered instead."""
    if not endpoint or endpoint.get("measured", True):
        return []
    named = f"; `{endpoint['finding']}` below says what answered" if endpoint.get(
        "finding") else f": {endpoint.get('cause', '')}"
    return textwrap.wrap(f"NO TLS ENDPOINT MEASURED: no attempt met a TLS server{named}",
                         WIDTH, subsequent_indent="  ")


# --- the matrix --------------------------------------------------------------------------


def _reply_ms(a: dict[str, Any]) -> tuple[float | None, bool]:
    t = a.get("timings_ms") or {}

    def at(k: str) -> float | None:
        v = t.get(k)
        return None if v is None else float(v)

    # the attempt's own flag: a greeting (core.outcome.greets) that came after the hello
    return reply_time(at("connect"), at("hello_sent"), at("first_byte"), at("total"),
                      bool(a.get("spoke_first")))


def cells(attempts: list[dict[str, Any]], by_target: bool = False) -> list[dict[str, Any]]:
    """One row per profile (in the plan's order): counts, typical detail, median ms.

    ``by_target`` keys rows by target and profile (probe runs over several targets).
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for a in sorted(attempts, key=lambda a: a["id"]):
        k = f"{a['target']} {a['profile']}" if by_target else a["profile"]
        groups.setdefault(k, []).append(a)
    out = []
    for k, atts in groups.items():
        c = Counter(a["outcome"] for a in atts)
        main = c.most_common(1)[0][0]
        wording = Counter(_TIMING.sub("~", a["detail"]) for a in atts if a["outcome"] == main)
        top = wording.most_common(1)[0][0]
        detail = next(a["detail"] for a in atts if _TIMING.sub("~", a["detail"]) == top)
        if len(wording) > 1:
            detail += f" (+{len(wording) - 1} other)"
        replies = [_reply_ms(a) for a in atts]
        times = [x for x, _ in replies if x is not None]
        issuers = sorted({a["certificate"]["issuer"] for a in atts
                          if a.get("certificate", {}).get("issuer")})
        out.append({
            "key": k, "step": atts[0].get("step") or step_of(atts[0]["profile"]),
            "profile": atts[0]["profile"], "target": atts[0]["target"],
            "attempts": len(atts), "counts": dict(c), "outcome": main,
            "consistent": len(c) == 1, "detail": detail,
            "median_ms": round(statistics.median(times), 3) if times else None,
            "hello_bytes": atts[0].get("hello_bytes"), "issuers": issuers,
            "ids": [a["id"] for a in atts],
            **({"spoke_first": True} if any(early for _, early in replies) else {}),
        })
    return out


def outcome_text(cell: dict[str, Any]) -> str:
    n = cell["attempts"]
    if n == 1:
        return str(cell["outcome"])
    return ", ".join(f"{o} {c}/{n}" for o, c in sorted(cell["counts"].items(),
                                                         key=lambda kv: -kv[1]))


def matrix(rows: list[dict[str, Any]]) -> str:
    from prober.report.table import tabulate

    table = [[r["step"], r["profile"], outcome_text(r), r["detail"],
              "" if r["median_ms"] is None else f"{r['median_ms']:.1f}"] for r in rows]
    return tabulate(table, headers=["step", "profile", "outcome", "detail", "median ms"],
                    tablefmt="plain", disable_numparse=True,
                    colalign=("left", "left", "left", "left", "right"))


# --- text --------------------------------------------------------------------------------


def findings_text(findings: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    """The FINDINGS block: confidence, id, the cause and the next step, wrapped."""
    if not findings:
        return [f"{indent}none"]
    wid = max(len(f["id"]) for f in findings)
    lines = []
    for f in findings:
        head = f"{indent}{f['confidence']:<7}{f['id']:<{wid}}  "
        pad = " " * len(head)
        body = textwrap.wrap(f["cause"], WIDTH - len(head)) or [""]
        if f["confidence"] != INFO or f.get("next"):
            body += textwrap.wrap("Next: " + f["next"], WIDTH - len(head))
        lines.append(head + body[0])
        lines += [pad + b for b in body[1:]]
    return lines


def evidence_text(findings: list[dict[str, Any]]) -> list[str]:
    lines = []
    for f in findings:
        lines.append(f"  {f['id']}")
        for e in f.get("evidence", []):
            lines += textwrap.wrap(e, WIDTH, initial_indent="    ", subsequent_indent="      ")
        for u in f.get("unchecked", []):
            lines += textwrap.wrap(f"not checked: {u}", WIDTH, initial_indent="    ",
                                   subsequent_indent="      ")
    return lines


def text(doc: dict[str, Any]) -> str:
    t = doc["target"]
    local = ", ".join(doc.get("vantage", {}).get("local_addresses", [])) or "?"
    n = len(doc["attempts"])
    via = f", STARTTLS {t['starttls']}" if t.get("starttls") else ""
    lines = [f"prober diagnose {t['target']} → {t['address']} (SNI {t['sni'] or 'none'}{via}), "
             f"from {local}, {n} attempt{'s' * (n != 1)} in {doc.get('elapsed_s', 0):.1f} s"]
    ref = doc.get("reference") or {}
    if ref:
        lines.append(f"known-good: {ref.get('profile')} — {ref.get('reason')}")
    if not doc.get("complete", True):
        lines.append("INTERRUPTED: findings cover the steps that finished")
    lines += no_tls_lines(doc.get("tls_endpoint"))
    lines += ["", "FINDINGS", *findings_text(doc["findings"]), "", "EVIDENCE",
              *evidence_text(doc["findings"])]
    ctl = doc.get("control")
    told = any(e.startswith("control (") for f in doc["findings"] for e in f.get("evidence", []))
    if ctl and not told:

        lines.append(f"  control: a connection that sends nothing: the peer "
                     f"{Control.from_json(ctl).text()}")
    if doc.get("notes"):
        lines += ["", "NOT CHECKED", *(textwrap.fill(x, WIDTH, initial_indent="  - ",
                                                     subsequent_indent="    ")
                                       for x in doc["notes"])]
    lines += ["", "MATRIX", matrix(doc["summary"])]
    return "\n".join(lines)
