"""One attempt as a sequence diagram: what went over the wire, in time order.

Drawn from the attempt document alone (``timings_ms``, ``tcp``, ``end``, ``alert``,
``server_messages`` and, where ``diagnose --capture`` or ``--pcap`` recorded them,
``packets`` with TTL and IP ID), so a saved run draws exactly like a live one. With
packets every arrow is a packet seen; without them the arrows are inferred from the
timings and the kernel's TCP_INFO and drawn dashed. Which arrow matters, and whether a
middlebox answered instead of the server, is the caller's word (``Emphasis``): a
diagnose finding knows, the attempt alone does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from prober.report.svg import Arrow, Lane, Note, sequence

CLIENT, MIDDLEBOX, SERVER = "client", "middlebox", "server"
_FLAG_NAMES = {"S": "SYN", "SA": "SYN-ACK", "A": "ACK", "R": "RST", "RA": "RST-ACK",
               "F": "FIN", "FA": "FIN-ACK", "FPA": "FIN-ACK", "PA": "data", "RPA": "RST"}


@dataclass(frozen=True)
class Emphasis:
    """What a finding says about an attempt: the kinds of event it cites (highlighted)
    and the kinds that came from a middlebox rather than the server."""

    highlight: frozenset[str] = frozenset()
    middlebox: frozenset[str] = frozenset()
    finding: str | None = None


@dataclass
class _Ev:
    t: float | None
    outgoing: bool
    kind: str
    label: str
    lost: bool = False
    inferred: bool = False
    ttl_differs: bool = False
    attrs: dict[str, str] = field(default_factory=dict)


def _fmt_t(t: float | None) -> str:
    return "" if t is None else f"{t:.2f} ms  "


def _flight_words(a: dict[str, Any]) -> tuple[str, str]:
    alert = a.get("alert")
    msgs = a.get("server_messages") or []
    n = a.get("server_bytes") or 0
    if a.get("banner"):
        return "not-tls", f"not TLS: {a['banner'][:40]}"
    if alert and not msgs:
        return "alert", f"alert {alert.get('description')} ({alert.get('code')})"
    if msgs:
        shown = ", ".join(m.replace("_", " ") for m in msgs[:3])
        more = f" +{len(msgs) - 3}" if len(msgs) > 3 else ""
        tail = f", then alert {alert.get('description')}" if alert else ""
        return ("alert" if alert else "flight"), f"{shown}{more} ({n} B){tail}"
    return "flight", f"server bytes ({n} B)"


def _hello_words(a: dict[str, Any], size: int | None = None) -> str:
    n = a.get("hello_bytes") if size is None else size
    parts = [f"ClientHello {n} B"]
    segs = a.get("segment_sizes") or []
    recs = a.get("record_sizes") or []
    if segs and size is None:
        pause = a.get("pause_ms") or 0
        parts.append(f"in {len(segs) + 1} segments" + (f" {pause:g} ms apart" if pause else ""))
    if recs:
        parts.append(f"in {len(recs) + 1} records")
    return ", ".join(parts)


def _from_packets(a: dict[str, Any]) -> list[_Ev]:
    pk = a["packets"]
    synack_ttl = next((p["ttl"] for p in pk if p["dir"] == "in" and p["flags"] == "SA"), None)
    evs: list[_Ev] = []
    hello_seen = served = False
    for p in pk:
        out = p["dir"] == "out"
        flags = p["flags"]
        n = p.get("len") or 0
        if "S" in flags:
            kind = "syn" if out else "synack"
            name = _FLAG_NAMES.get(flags, flags)
        elif "R" in flags:
            kind = "client_rst" if out else "rst"
            name = "RST (prober closes)" if out else _FLAG_NAMES.get(flags, "RST")
        elif "F" in flags:
            kind = "client_fin" if out else "fin"
            name = "FIN"
        elif n and out:
            kind = "hello" if not served else "data"
            name = _hello_words(a, n) if not hello_seen else f"ClientHello, more ({n} B)"
            hello_seen = True
        elif n:
            kind = "flight" if not served else "data"
            name = _flight_words(a)[1] if not served else f"more server bytes ({n} B)"
            if not served:
                kind = _flight_words(a)[0]
            served = True
        else:
            kind = "ack" if out else ("hello_ack" if hello_seen and not served else "ack_in")
            name = "ACK" + (" of the ClientHello" if kind == "hello_ack" else "")
        extra = f"  TTL {p['ttl']}"
        if p.get("ip_id") is not None:
            extra += f" · IP ID {p['ip_id']}"
        differs = (not out and synack_ttl is not None and p["ttl"] != synack_ttl)
        evs.append(_Ev(p["t_ms"], out, kind, f"{_fmt_t(p['t_ms'])}{name}{extra}",
                       ttl_differs=differs, attrs={"data-ttl": str(p["ttl"])}))
    return evs


def _from_timings(a: dict[str, Any]) -> list[_Ev]:
    tm = a.get("timings_ms") or {}
    tcp = a.get("tcp") or {}
    outcome = a.get("outcome")
    total = tm.get("total")
    evs = [_Ev(0.0, True, "syn", "0.00 ms  SYN", inferred=True)]
    if outcome == "refused":
        evs.append(_Ev(total, False, "rst", f"{_fmt_t(total)}RST (connection refused)",
                       inferred=True))
        return evs
    if tm.get("connect") is None:
        why = {"connect-timeout": "no answer to the SYN", "unreachable": "unreachable"}
        evs.append(_Ev(total, False, "note", f"{why.get(str(outcome), str(outcome))} "
                       f"({_fmt_t(total).strip() or 'deadline'})", inferred=True))
        return evs
    c = tm["connect"]
    evs += [_Ev(c, False, "synack", f"{_fmt_t(c)}SYN-ACK", inferred=True),
            _Ev(c, True, "ack", f"{_fmt_t(c)}ACK", inferred=True)]
    sent = tm.get("hello_sent")
    if sent is None:
        return evs
    never_acked = tcp.get("acked") is False
    evs.append(_Ev(sent, True, "hello", f"{_fmt_t(sent)}{_hello_words(a)}"
                   + ("  (never ACKed)" if never_acked else ""), lost=never_acked,
                   inferred=True))
    if tcp.get("acked") and tm.get("hello_acked") is not None:
        t = tm["hello_acked"]
        evs.append(_Ev(t, False, "hello_ack", f"{_fmt_t(t)}ACK of the ClientHello",
                       inferred=True))
    fb = tm.get("first_byte")
    if fb is not None:
        kind, words = _flight_words(a)
        evs.append(_Ev(fb, False, kind, f"{_fmt_t(fb)}{words}", inferred=True))
    end = a.get("end")
    if end == "rst":
        evs.append(_Ev(total, False, "rst", f"{_fmt_t(total)}RST", inferred=True))
    elif end == "fin":
        evs.append(_Ev(total, False, "fin", f"{_fmt_t(total)}FIN", inferred=True))
    elif end == "timeout":
        evs.append(_Ev(total, False, "note", f"silence until the deadline ({_fmt_t(total)})"
                       .replace("  )", ")"), inferred=True))
    if end in ("complete", "timeout"):
        evs.append(_Ev(total, True, "client_rst", f"{_fmt_t(total)}RST (prober closes)",
                       inferred=True))
    return evs


def events(a: dict[str, Any]) -> list[_Ev]:
    evs = _from_packets(a) if a.get("packets") else _from_timings(a)
    # in time order; events of one instant keep the order they happen in
    return sorted(evs, key=lambda e: -1.0 if e.t is None else e.t)


def behaviour(a: dict[str, Any]) -> tuple[Any, ...]:
    """What tells two attempts' exchanges apart in a drawing (not the figures)."""
    alert = a.get("alert") or {}
    return (a.get("outcome"), a.get("end"), alert.get("description"),
            tuple(a.get("server_messages") or ()), (a.get("tcp") or {}).get("acked"),
            bool(a.get("segment_sizes")), bool(a.get("record_sizes")))


def distinct(attempts: Iterable[dict[str, Any]], prefer: Iterable[int] = ()
             ) -> list[tuple[dict[str, Any], list[int]]]:
    """One representative per distinct behaviour, with the ids that behaved so; the
    representative is the first of ``prefer`` (ids a finding cites) where there is one."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for a in attempts:
        groups.setdefault(behaviour(a), []).append(a)
    pref = list(prefer)
    out = []
    for members in groups.values():
        ids = [m["id"] for m in members]
        rep = next((m for i in pref for m in members if m["id"] == i), members[0])
        out.append((rep, ids))
    return out


def diagram(a: dict[str, Any], emphasis: Emphasis | None = None, *, ident: str | None = None,
            server_title: str | None = None) -> Markup:
    """The attempt's sequence diagram as inline SVG."""
    em = emphasis or Emphasis()
    evs = events(a)
    uses_mb = any(e.kind in em.middlebox for e in evs)
    server = server_title or f"{a.get('address') or a.get('host')}:{a.get('port')}"
    lanes = [Lane(CLIENT, "client", f"{a.get('local_address') or ''}:{a.get('local_port') or ''}")]
    if uses_mb:
        lanes.append(Lane(MIDDLEBOX, "middlebox", "(on the path)"))
    lanes.append(Lane(SERVER, "server", server))
    rows: list[Arrow | Note] = []
    for e in evs:
        far = MIDDLEBOX if e.kind in em.middlebox else SERVER
        if e.kind == "note":
            rows.append(Note(CLIENT, far, e.label, kind="silence"))
            continue
        src, dst = (CLIENT, far) if e.outgoing else (far, CLIENT)
        attrs = dict(e.attrs)
        attrs["data-attempt"] = str(a.get("id"))
        if e.ttl_differs:
            attrs["data-ttl-differs"] = "1"
        rows.append(Arrow(src, dst, e.label, e.kind, t_ms=e.t,
                          highlight=e.kind in em.highlight or e.ttl_differs,
                          lost=e.lost, dashed=e.inferred, attrs=attrs))
    title = f"attempt {a.get('id')} ({a.get('profile')}): {a.get('outcome')}"
    svg_attrs = {"data-attempt": str(a.get("id"))}
    if em.finding:
        svg_attrs["data-finding"] = em.finding
    return sequence(lanes, rows, ident=ident or f"seq-{a.get('id')}", title=title,
                    attrs=svg_attrs)
