"""Drawing primitives of the HTML reports: a sequence diagram as inline SVG.

Server-side and static (no script, no web font, nothing fetched): the page reads and
prints the same everywhere. A diagram is lanes (client, server, and a middlebox where
the evidence places one) and rows in time order, each an arrow with its label above it
or a note; every row has its own band of height, so a label never covers another
arrow. What the drawing means is decided by the capability that calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup, escape

from prober.report.html import visible_controls

WIDTH = 760
MARGIN = 110  # room for the outer lanes' titles and labels that run past them
HEAD = 54  # lane titles
ROW = 38  # one arrow or note: label band, then the arrow
FONT = 11
_HEADSIZE = 7


@dataclass(frozen=True)
class Lane:
    key: str  # "client", "middlebox", "server"
    title: str
    subtitle: str = ""


@dataclass
class Arrow:
    src: str  # lane keys
    dst: str
    label: str
    kind: str  # what it is (syn, hello, rst…): the reader's key to the data
    t_ms: float | None = None
    highlight: bool = False
    lost: bool = False  # never arrived (drawn broken off, with a cross)
    dashed: bool = False  # inferred from timings, not a captured packet
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Note:
    lane_from: str
    lane_to: str
    text: str
    kind: str = "note"


def _text(s: str) -> str:
    return str(escape(visible_controls(s)))


def _attrs(d: dict[str, str]) -> str:
    return "".join(f' {k}="{escape(v)}"' for k, v in d.items())


def sequence(lanes: list[Lane], rows: list[Arrow | Note], *, ident: str, title: str,
             attrs: dict[str, str] | None = None) -> Markup:
    """A sequence diagram; ``ident`` becomes the SVG's id (an anchor of the page)."""
    n = len(lanes)
    span = WIDTH - 2 * MARGIN
    xs = {ln.key: MARGIN + (span * i / (n - 1) if n > 1 else span / 2)
          for i, ln in enumerate(lanes)}
    height = HEAD + ROW * len(rows) + 16
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="seq" id="{escape(ident)}" '
           f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
           f'font-family="monospace" font-size="{FONT}"{_attrs(attrs or {})}>',
           f"<title>{_text(title)}</title>"]
    for ln in lanes:
        x = xs[ln.key]
        out.append(f'<g class="lane" data-lane="{escape(ln.key)}">'
                   f'<rect x="{x - 70:.1f}" y="4" width="140" height="36" rx="4" '
                   f'class="lane-box"/>'
                   f'<text x="{x:.1f}" y="19" text-anchor="middle" font-weight="bold">'
                   f"{_text(ln.title)}</text>"
                   f'<text x="{x:.1f}" y="33" text-anchor="middle">{_text(ln.subtitle)}</text>'
                   f'<line x1="{x:.1f}" y1="40" x2="{x:.1f}" y2="{height - 6}" '
                   f'class="lifeline"/></g>')
    for i, row in enumerate(rows):
        top = HEAD + ROW * i
        if isinstance(row, Note):
            x1, x2 = sorted((xs[row.lane_from], xs[row.lane_to]))
            out.append(f'<g class="note" data-kind="{escape(row.kind)}">'
                       f'<text x="{(x1 + x2) / 2:.1f}" y="{top + 22}" text-anchor="middle" '
                       f'font-style="italic">{_text(row.text)}</text></g>')
            continue
        out.append(_arrow(row, xs[row.src], xs[row.dst], top))
    out.append("</svg>")
    return Markup("".join(out))


def _arrow(a: Arrow, x1: float, x2: float, top: int) -> str:
    y = top + ROW - 10
    right = x2 > x1
    # the line stops short of the lane it goes to (or halfway, for a packet that was lost)
    end = x1 + (x2 - x1) * (0.55 if a.lost else 1.0) - (_HEADSIZE if right else -_HEADSIZE)
    classes = ["arrow"] + (["hl"] if a.highlight else []) + (["lost"] if a.lost else []) + (
        ["inferred"] if a.dashed else [])
    data = {"data-kind": a.kind, "data-from": a.src, "data-to": a.dst, **a.attrs}
    if a.t_ms is not None:
        data["data-t-ms"] = f"{a.t_ms:.3f}"
    if a.highlight:
        data["data-highlight"] = "1"
    tip = end + (_HEADSIZE if right else -_HEADSIZE)
    back = end
    head = (f'<polygon class="head" points="{tip:.1f},{y} {back:.1f},{y - 4} '
            f'{back:.1f},{y + 4}"/>')
    if a.lost:
        head = (f'<path class="head" d="M{tip - 5:.1f},{y - 5} l10,10 M{tip - 5:.1f},{y + 5} '
                f'l10,-10"/>')
    dash = ' stroke-dasharray="5,3"' if a.dashed else ""
    label_x = (x1 + x2) / 2 if not a.lost else (x1 + tip) / 2
    return (f'<g class="{" ".join(classes)}"{_attrs(data)}>'
            f'<line x1="{x1:.1f}" y1="{y}" x2="{end:.1f}" y2="{y}"{dash}/>{head}'
            f'<text x="{label_x:.1f}" y="{y - 7}" text-anchor="middle">{_text(a.label)}</text>'
            "</g>")
