"""``diff --html`` and ``prober report`` of a diff: the two vantage points side by side.

For every row that differs, the exchange of one attempt from each side is drawn next to
the other's, and on each side the arrows the other side does not have are highlighted:
that is where the two paths part.
"""

from __future__ import annotations

from typing import Any

from prober.diagnose.diff import Side
from prober.diagnose.html import linked
from prober.probe.sequence import Emphasis, diagram, events
from prober.report.html import environment

MAX_ROWS_DRAWN = 16


def _kinds(a: dict[str, Any] | None) -> set[str]:
    return {e.kind for e in events(a)} if a is not None else set()


def _side(doc: dict[str, Any], cell: dict[str, Any] | None, other: dict[str, Any] | None,
          prefix: str) -> tuple[dict[str, Any] | None, Any]:
    if not cell or not cell.get("ids"):
        return None, None
    by_id = {a["id"]: a for a in doc.get("attempts", [])}
    a = by_id.get(cell["ids"][0])
    if a is None:
        return None, None
    return a, diagram(a, Emphasis(frozenset(_kinds(a) - _kinds(other))),
                      ident=f"{prefix}-seq-{a['id']}")


def render(doc: dict[str, Any], a: Side, b: Side) -> str:
    pairs = []
    drawn = 0
    for r in doc.get("rows", []):
        if not r["differs"] or drawn >= MAX_ROWS_DRAWN:
            continue
        drawn += 1
        cell_a, cell_b = r.get("a"), r.get("b")
        by_a = {x["id"]: x for x in a.doc.get("attempts", [])}
        by_b = {x["id"]: x for x in b.doc.get("attempts", [])}
        first_a = by_a.get(cell_a["ids"][0]) if cell_a and cell_a.get("ids") else None
        first_b = by_b.get(cell_b["ids"][0]) if cell_b and cell_b.get("ids") else None
        att_a, svg_a = _side(a.doc, cell_a, first_b, "A")
        att_b, svg_b = _side(b.doc, cell_b, first_a, "B")
        pairs.append({"key": r["key"], "a": cell_a, "b": cell_b, "svg_a": svg_a,
                      "svg_b": svg_b, "id_a": att_a["id"] if att_a else None,
                      "id_b": att_b["id"] if att_b else None})
    findings = [{**f, "evidence": [linked(e) for e in f.get("evidence") or []]}
                for f in doc.get("findings", [])]
    env = environment("prober.diagnose", "prober.probe")
    return env.get_template("diff.html.j2").render(
        a=doc["a"], b=doc["b"], findings=findings, own=doc.get("own_findings") or {},
        pairs=pairs, rows=doc.get("rows", []),
        undrawn=sum(1 for r in doc.get("rows", []) if r["differs"]) - drawn)
