"""``check --html`` and ``prober report`` of a check run: the verdicts first (failures on
top), their evidence linked to the attempts, then what happened on the wire."""

from __future__ import annotations

import re
from typing import Any

from prober.probe.html import attempt_rows, certificates, matrix_rows, pictures
from prober.report.html import environment

_REF = re.compile(r"#(\d+)\b")


def _linked(text: str) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    pos = 0
    for m in _REF.finditer(text):
        out += [(text[pos:m.start()], None), (m.group(), int(m.group(1)))]
        pos = m.end()
    out.append((text[pos:], None))
    return [p for p in out if p[0]]


def render(doc: dict[str, Any]) -> str:
    attempts = sorted(doc.get("attempts", []), key=lambda a: a["id"])
    verdicts = sorted(doc.get("verdicts", []), key=lambda v: v.get("passed", True))
    views = [{**v, "evidence": [_linked(e) for e in v.get("evidence") or []]} for v in verdicts]
    figs, more, drawn = pictures(attempts)
    rows, outcomes = matrix_rows(attempts)
    env = environment("prober.check", "prober.probe")
    return env.get_template("check.html.j2").render(
        expectations=doc.get("expectations", "?"), passed=doc.get("passed", False),
        verdicts=views, failed=sum(not v.get("passed") for v in verdicts), pictures=figs,
        more_behaviours=more, rows=rows, outcomes=outcomes, certs=certificates(attempts),
        attempt_rows=attempt_rows(attempts, drawn))
