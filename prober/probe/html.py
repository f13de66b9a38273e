"""``probe --html`` and ``prober report`` of a probe run: the matrix, one sequence
diagram per distinct behaviour, the certificates, every attempt (each an anchor)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prober.core.attempt import RETRY_OF, last_try_docs
from prober.probe.sequence import Emphasis, diagram, distinct, events
from prober.report.html import environment

MAX_DIAGRAMS = 24  # distinct behaviours drawn; a sweep over hundreds of profiles has few


def attempt_rows(attempts: list[dict[str, Any]], drawn: dict[int, str]
                 ) -> list[dict[str, Any]]:
    rows = []
    for a in attempts:
        tm = a.get("timings_ms") or {}
        rows.append({"id": a["id"], "profile": a.get("profile", ""),
                     "step": a.get("step", ""), "outcome": a.get("outcome", ""),
                     "detail": a.get("detail", ""), "end": a.get("end") or "",
                     "connect": tm.get("connect"), "first_byte": tm.get("first_byte"),
                     "total": tm.get("total"), "hello": a.get("hello_bytes", ""),
                     "port": a.get("local_port") or "", "diagram": drawn.get(a["id"]),
                     "retry_of": a.get(RETRY_OF)})
    return rows


def certificates(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each distinct leaf certificate seen, with the attempts that saw it."""
    seen: dict[str, dict[str, Any]] = {}
    for a in attempts:
        c = a.get("certificate")
        if not c or not c.get("sha256"):
            continue
        row = seen.get(c["sha256"])
        if row is None:
            key = " ".join(str(x) for x in (c.get("key_type"), c.get("key_bits"),
                                            c.get("curve")) if x)
            row = seen[c["sha256"]] = {
                "sha256": c["sha256"], "subject": c.get("subject", ""),
                "issuer": c.get("issuer", ""), "key": key,
                "not_before": c.get("not_before", ""), "not_after": c.get("not_after", ""),
                "san": ", ".join(c.get("san") or []), "chain": a.get("chain_length", ""),
                "ids": []}
        row["ids"].append(a["id"])
    return list(seen.values())


def matrix_rows(attempts: list[dict[str, Any]], key: str = "profile"
                ) -> tuple[list[dict[str, Any]], list[str]]:
    """(target, profile) × outcome counts; the outcomes in order of frequency. Each
    planned attempt counts once, by its last try, as in the text matrix and the JSON
    summary; ``retries`` says how many retries of attempts turned away for load a row
    holds (every try stays in the attempts table)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    total: Counter[str] = Counter()
    last = {a["id"] for a in last_try_docs(attempts)}
    for a in attempts:
        k = (a.get("target", ""), a.get(key) or a.get("profile", ""))
        r = rows.setdefault(k, {"target": k[0], "profile": k[1], "counts": Counter(),
                                "ids": [], "times": [], "details": Counter(), "retries": 0})
        if a.get(RETRY_OF) is not None:
            r["retries"] += 1
        if a["id"] not in last:
            continue
        r["counts"][a["outcome"]] += 1
        total[a["outcome"]] += 1
        r["ids"].append(a["id"])
        r["details"][a.get("detail", "")] += 1
        t = (a.get("timings_ms") or {}).get("first_byte") or (a.get("timings_ms") or {}).get(
            "total")
        if t is not None:
            r["times"].append(t)
    out = []
    for r in rows.values():
        times = sorted(r.pop("times"))
        details = r.pop("details")
        r["attempts"] = sum(r["counts"].values())
        r["median_ms"] = times[len(times) // 2] if times else None
        r["detail"] = details.most_common(1)[0][0]
        out.append(r)
    return out, [o for o, _ in total.most_common()]


def pictures(attempts: list[dict[str, Any]], *, prefer: list[int] | None = None,
             emphasis: dict[int, Emphasis] | None = None, prefix: str = "seq",
             limit: int = MAX_DIAGRAMS) -> tuple[list[dict[str, Any]], int, dict[int, str]]:
    """One diagram per distinct behaviour: (figures, how many were not drawn, attempt id →
    the anchor of the diagram that shows its behaviour)."""
    groups = distinct(attempts, prefer or [])
    figs = []
    drawn: dict[int, str] = {}
    for rep, ids in groups[:limit]:
        anchor = f"{prefix}-{rep['id']}"
        em = (emphasis or {}).get(rep["id"])
        figs.append({"anchor": anchor, "ids": ids,
                     "caption": f"{rep.get('profile')}: {rep.get('outcome')} — "
                                f"{rep.get('detail', '')} (attempt {rep['id']})",
                     "svg": diagram(rep, em, ident=f"{anchor}-svg"),
                     "inferred": not rep.get("packets") and bool(events(rep))})
        for i in ids:
            drawn[i] = anchor
    return figs, max(0, len(groups) - limit), drawn


def render(doc: dict[str, Any]) -> str:
    attempts = sorted(doc.get("attempts", []), key=lambda a: a["id"])
    figs, more, drawn = pictures(attempts)
    rows, outcomes = matrix_rows(attempts)
    v = doc.get("vantage") or {}
    env = environment("prober.probe")
    return env.get_template("probe.html.j2").render(
        targets=[t["target"] for t in doc.get("targets", [])] or ["?"],
        vantage=", ".join(v.get("local_addresses") or []) or v.get("hostname") or "?",
        n=len(attempts), retries=sum(1 for a in attempts if a.get(RETRY_OF) is not None),
        started=v.get("started_at"), finished=v.get("finished_at"),
        complete=doc.get("complete", True), rows=rows, outcomes=outcomes, pictures=figs,
        more_behaviours=more, certs=certificates(attempts),
        attempt_rows=attempt_rows(attempts, drawn))
