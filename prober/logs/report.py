"""Rendering a log summary: tables for people, the ``prober.logs/1`` JSON for machines."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prober import __version__
from prober.logs.detect import PER_REQUEST
from prober.logs.population import group_json, label, percent
from prober.logs.tally import FileStats, LineExample, LogSummary

LOGS_SCHEMA = "prober.logs/1"


def _n(value: int) -> str:
    return f"{value:,}"


def _plural(n: int, word: str) -> str:
    return f"{_n(n)} {word}{'' if n == 1 else 's'}"


def headline(s: LogSummary) -> str:
    pop = s.population
    formats = Counter(f.format or "?" for f in s.files)
    lines = sum(f.lines for f in s.files)
    what = ", ".join(f"{k} {v}" if v > 1 else k for k, v in sorted(formats.items()))
    parts = [f"{_plural(len(s.files), 'file')} ({what}), {_plural(lines, 'line')}"]
    if pop.total_connections or not s.flow_records:
        unit = "connection" if all(f.units == "connections" for f in s.files
                                   if f.connections) else "connection/request"
        failed = (f", {_n(pop.failed_connections)} failed "
                  f"({percent(pop.failed_connections / pop.total_connections)})"
                  if pop.total_connections else "")
        parts.append(f"{_plural(pop.total_connections, unit)} from "
                     f"{_plural(pop.client_ips, 'client IP')}{failed}")
    if s.flow_records:
        port = s.options.get("port", 443)
        parts.append(f"{_plural(s.flow_records, 'flow record')} to/from port {port} "
                     f"({_plural(s.flow_clients, 'client IP')}), "
                     f"{_n(s.suspicious_records)} look like failed handshakes")
    parts.append(_plural(s.malformed_total, "malformed line"))
    return "; ".join(parts)


def table(s: LogSummary, top: int = 10) -> str:
    from prober.report.table import tabulate

    def tab(rows: list[list[Any]], headers: list[str]) -> str:
        return tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True)

    pop = s.population
    total = pop.total_connections
    out = [headline(s), ""]
    out += [tab([_file_row(f) for f in s.files[:top]],
                ["file", "format", "lines", "counted", "skipped", "malformed", "time range"])]
    if len(s.files) > top:
        out.append(f"… and {len(s.files) - top} more files")
    skipped = sum((f.skipped for f in s.files), Counter())
    if skipped:
        out.append("skipped (not TLS connections): " + ", ".join(
            f"{_n(c)} {why}" for why, c in skipped.most_common()))
    per_request = {f.format for f in s.files if f.units == "requests" and f.connections}
    if per_request:
        out.append(_per_request_note(per_request))
    for f in s.files:
        if f.error:
            out.append(f"{f.path}: {f.error} after line {f.lines}")

    if total:
        clients = pop.clients()
        rows = []
        for c in clients[:top]:
            key = c.groups[0][0]
            more = f" (+{len(c.groups) - 1})" if len(c.groups) > 1 else ""
            rows.append([c.ip, _n(c.connections), _n(c.failed), f"{label(key)}{more}"])
        out += ["", f"TOP CLIENTS ({min(top, len(clients))} of {_n(len(clients))})",
                tab(rows, ["client ip", "connections", "failed", "protocol / suite (most used)"])]

        groups = pop.groups()
        rows = [[g.protocol or "-", g.suite_openssl or "-", g.suite_iana or "-",
                 _n(g.connections), percent(g.connections / total), _n(g.failed),
                 _n(g.client_ips)] for g in groups[:top]]
        out += ["", f"PROTOCOL / SUITE MIX ({min(top, len(groups))} of {len(groups)})",
                tab(rows, ["protocol", "suite (OpenSSL)", "suite (IANA)", "connections",
                           "share", "failed", "client ips"])]

    if s.failures:
        rows = [[f.reason, _n(f.connections), _n(f.client_ips), ",".join(f.sources),
                 _cut(f.example, 70)] for f in s.failures[:top]]
        out += ["", "FAILURES BY REASON",
                tab(rows, ["reason", "connections", "client ips", "source", "example"])]

    if s.flow_records:
        port, maxp = s.options.get("port", 443), s.options.get("max_packets", 4)
        out += ["", f"SUSPICIOUS FLOWS (port {port}, 3-{maxp} packets, accepted: "
                f"RST, or SYN without FIN)"]
        if s.flows:
            rows = [[f.client_ip, f.why, _n(f.records), _n(f.packets),
                     ",".join(map(str, f.flags)) or "-", _n(f.all_records)]
                    for f in s.flows[:top]]
            out.append(tab(rows, ["client ip", "why", "records", "packets", "tcp-flags",
                                  "all records"]))
            out += [f"  e.g. {_where(e)}  {e.text}" for e in s.flow_examples[:3]]
        else:
            out.append("none")

    if s.malformed_total:
        shown = len(s.malformed)
        out += ["", f"MALFORMED LINES: {_n(s.malformed_total)}"
                + (f" (first {shown})" if shown < s.malformed_total else "")]
        out += [f"  {_where(e)}: {e.why}: {_cut(e.text, 80)}" for e in s.malformed]
    return "\n".join(out)


def _per_request_note(formats: set[str | None]) -> str:
    names = [name for fmt, name in PER_REQUEST.items() if fmt in formats]
    which = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    note = (f"{which} have one line per HTTP request: their counts are requests, and "
            "failed handshakes are not in them.")
    if "classic-elb" in formats:
        note += " Classic ELB TCP/SSL listeners log one line per connection."
    return note


def _file_row(f: FileStats) -> list[str]:
    fmt = f"{f.format or '?'}{' (gzip)' if f.compressed else ''}"
    counted = (_plural(f.connections, f.units[:-1]) if f.connections or not f.flows else
               _plural(f.flows, "flow"))
    if f.connections and f.flows:
        counted += f", {_plural(f.flows, 'flow')}"
    span = f"{f.first} … {f.last}" if f.first and f.last and f.first != f.last else (f.first or "")
    return [f.path, fmt, _n(f.lines), counted, _n(sum(f.skipped.values())), _n(f.malformed), span]


def _where(e: LineExample) -> str:
    return f"{e.path}:{e.line}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def document(s: LogSummary) -> dict[str, Any]:

    pop = s.population
    total = pop.total_connections
    return {
        "schema": LOGS_SCHEMA,
        "tool": {"name": "prober", "version": __version__},
        "options": s.options,
        "files": [{"path": f.path, "format": f.format, "compressed": f.compressed,
                   "lines": f.lines, "connections": f.connections, "units": f.units,
                   "flows": f.flows, "skipped": dict(f.skipped.most_common()),
                   "malformed": f.malformed, "first": f.first, "last": f.last,
                   "error": f.error} for f in s.files],
        "totals": {"lines": sum(f.lines for f in s.files), "connections": total,
                   "failed": pop.failed_connections, "client_ips": pop.client_ips,
                   "flow_records": s.flow_records, "suspicious_flow_records":
                   s.suspicious_records, "skipped": sum(s.skipped.values()),
                   "malformed": s.malformed_total},
        "clients": [{"ip": c.ip, "connections": c.connections, "failed": c.failed,
                     "groups": [{"protocol": k[0], "suite_iana": k[1], "suite_openssl": k[2],
                                 "connections": n, "failed": failed}
                                for k, n, failed in c.groups]}
                    for c in pop.clients()],
        "mix": [group_json(g, total) for g in pop.groups()],
        "failures": [{"reason": f.reason, "connections": f.connections,
                      "client_ips": f.client_ips, "sources": list(f.sources),
                      "example": f.example} for f in s.failures],
        "flows": {"records": s.flow_records, "client_ips": s.flow_clients,
                  "suspicious_records": s.suspicious_records,
                  "suspicious": [{"client_ip": f.client_ip, "why": f.why, "records": f.records,
                                  "packets": f.packets, "tcp_flags": list(f.flags),
                                  "all_records": f.all_records} for f in s.flows],
                  "examples": [_example(e) for e in s.flow_examples]},
        "malformed": {"total": s.malformed_total,
                      "examples": [_example(e) for e in s.malformed]},
    }


def _example(e: LineExample) -> dict[str, Any]:
    return {"file": e.path, "line": e.line, "why": e.why, "text": e.text}
