"""``diagnose --html`` and ``prober report`` of a diagnose run.

Findings first, each with its evidence linked to the attempts that prove it and the
sequence diagram of one of them, with the arrow the finding is about highlighted (and
drawn from a middlebox lane where the finding places a device on the path); then one
diagram per other distinct behaviour, the outcome matrix, the certificates, the attempts.
"""

from __future__ import annotations

import re
from typing import Any

from prober.diagnose import findings as F
from prober.probe.html import attempt_rows, certificates, matrix_rows, pictures
from prober.probe.sequence import Emphasis, diagram, distinct
from prober.report.html import environment

# finding id -> (the kinds of event it is about, the kinds a middlebox sent instead of
# the server); the rules' own wording is the reference (README, the finding table)
EMPHASIS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    F.SILENT_PROXY: (frozenset({"hello_ack"}), frozenset({"hello", "hello_ack", "fin"})),
    F.INJECTED_RESET: (frozenset({"rst"}), frozenset({"rst"})),
    F.NEAR_TCP_TERMINATOR: (frozenset({"synack"}), frozenset({"syn", "synack", "ack"})),
    F.POLICY_RESET: (frozenset({"rst", "fin"}), frozenset()),
    F.POLICY_ALERT: (frozenset({"alert"}), frozenset()),
    F.INAPPROPRIATE_FALLBACK: (frozenset({"alert"}), frozenset()),
    F.PATH_DROP: (frozenset({"hello"}), frozenset()),
    F.SIZE_DROP: (frozenset({"hello"}), frozenset()),
    F.SEGMENTATION_DROP: (frozenset({"hello"}), frozenset()),
    F.DPI_FRAGMENTATION: (frozenset({"hello"}), frozenset()),
    F.SNI_DROP: (frozenset({"hello"}), frozenset()),
    F.SNI_RESET: (frozenset({"rst"}), frozenset()),
    F.MTU_BLACKHOLE: (frozenset({"flight"}), frozenset()),
    F.TLS_INTERCEPTION: (frozenset({"flight"}), frozenset()),
    # the server's answers, which differ from one attempt to the next
    F.INTERMITTENT: (frozenset({"rst", "fin", "alert", "flight"}), frozenset()),
    F.ENDPOINT_FLAPPING: (frozenset({"synack", "rst"}), frozenset()),
}
# findings about identical attempts that behave differently: one diagram per behaviour
# among the attempts they cite, side by side in the finding's section
EACH_BEHAVIOUR = frozenset({F.INTERMITTENT, F.ENDPOINT_FLAPPING, F.MIXED_CERTIFICATES})
MAX_FINDING_DIAGRAMS = 4
_IDS = re.compile(r"\b(ids?|id) ((?:\d+(?:-\d+)?)(?:, \d+(?:-\d+)?)*)")


def linked(text: str) -> list[tuple[str, int | None]]:
    """Evidence text split into plain parts and attempt ids (``ids 4, 9, 14``, ``id 2``,
    ``ids 1-38``: a range links its ends)."""
    out: list[tuple[str, int | None]] = []
    pos = 0
    for m in _IDS.finditer(text):
        out.append((text[pos:m.start(2)], None))
        for j, part in enumerate(m.group(2).split(", ")):
            if j:
                out.append((", ", None))
            if "-" in part:
                lo, hi = part.split("-")
                out += [(lo, int(lo)), ("-", None), (hi, int(hi))]
            else:
                out.append((part, int(part)))
        pos = m.end()
    out.append((text[pos:], None))
    return [p for p in out if p[0]]


def _cited(f: dict[str, Any], attempts: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """The attempt a finding's diagram shows: the first it cites that shows the event the
    finding is about (the first cited, failing that)."""
    kinds = EMPHASIS.get(f["id"], (frozenset(), frozenset()))[0]
    cited = [attempts[i] for i in f.get("attempts") or [] if i in attempts]
    for a in cited:
        if kinds and any(_has(a, k) for k in kinds):
            return a
    return cited[0] if cited else None


def _has(a: dict[str, Any], kind: str) -> bool:
    from prober.probe.sequence import events

    return any(e.kind == kind for e in events(a))


def _shown(f: dict[str, Any], attempts: dict[int, dict[str, Any]]
           ) -> list[tuple[dict[str, Any], list[int]]]:
    """The attempts a finding's section draws, each with the cited ids it stands for:
    one per behaviour where the finding is about attempts that differ, else one."""
    if f.get("confidence") == "info":
        return []
    if f["id"] in EACH_BEHAVIOUR:
        cited = [attempts[i] for i in f.get("attempts") or [] if i in attempts]
        groups = distinct(cited, [a["id"] for a in cited])
        if len(groups) > 1:
            return groups[:MAX_FINDING_DIAGRAMS]
    a = _cited(f, attempts)
    return [] if a is None else [(a, [a["id"]])]


def finding_views(findings: list[dict[str, Any]], attempts: dict[int, dict[str, Any]]
                  ) -> tuple[list[dict[str, Any]], dict[int, Emphasis]]:
    views = []
    emphasis: dict[int, Emphasis] = {}
    for f in findings:
        hl, mb = EMPHASIS.get(f["id"], (frozenset(), frozenset()))
        em = Emphasis(hl, mb, f["id"])
        figures = []
        for n, (a, ids) in enumerate(_shown(f, attempts)):
            emphasis.setdefault(a["id"], em)
            # the diagrams further down draw the attempts it cites the same way
            for i in f.get("attempts") or []:
                emphasis.setdefault(i, em)
            ident = f"finding-{f['id']}-svg" + (f"-{n + 1}" if n else "")
            figures.append({"svg": diagram(a, em, ident=ident), "shown": a["id"],
                            "profile": a.get("profile"), "outcome": a.get("outcome"),
                            "detail": a.get("detail") or "", "ids": ids})
        views.append({"id": f["id"], "confidence": f.get("confidence", ""),
                      "cause": f.get("cause", ""), "next": f.get("next", ""),
                      "evidence": [linked(e) for e in f.get("evidence") or []],
                      "unchecked": f.get("unchecked") or [],
                      "attempts": f.get("attempts") or [], "figures": figures})
    return views, emphasis


def render(doc: dict[str, Any]) -> str:
    attempts = sorted(doc.get("attempts", []), key=lambda a: a["id"])
    by_id = {a["id"]: a for a in attempts}
    views, emphasis = finding_views(doc.get("findings") or [], by_id)
    prefer = [i for f in doc.get("findings") or [] for i in f.get("attempts") or []]
    figs, more, drawn = pictures(attempts, prefer=prefer, emphasis=emphasis)
    rows, outcomes = matrix_rows(attempts)
    t = doc.get("target") or {}
    v = doc.get("vantage") or {}
    env = environment("prober.diagnose", "prober.probe")
    return env.get_template("diagnose.html.j2").render(
        target=t.get("target", "?"), address=t.get("address"), sni=t.get("sni"),
        vantage=", ".join(v.get("local_addresses") or []) or v.get("hostname") or "?",
        started=v.get("started_at"), finished=v.get("finished_at"),
        complete=doc.get("complete", True), n=len(attempts), elapsed=doc.get("elapsed_s"),
        reference=doc.get("reference") or {}, capture=doc.get("capture") or {},
        control=doc.get("control") or {}, findings=views, notes=doc.get("notes") or [],
        pictures=figs, more_behaviours=more, rows=rows, outcomes=outcomes,
        certs=certificates(attempts), attempt_rows=attempt_rows(attempts, drawn))
