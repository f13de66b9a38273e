"""Counting parsed lines, in constant memory per distinct key, and the summary they give.

The hot loop keeps one counter per (client IP, protocol, suite, failure reason) as
logged and one per (client IP, flow verdict); names are normalised once per distinct
value when the summary is built, not once per line.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from prober.logs.population import GroupKey, Population, group_key
from prober.logs.records import Conn, Flow, LineParser, Malformed

ConnKey = tuple[str, str | None, str | None, str | None]  # ip, protocol, suite, failure
FlowKey = tuple[str, str | None]  # client ip, why suspicious (None: looks fine)


@dataclass
class FileStats:
    path: str
    format: str | None = None
    compressed: bool = False
    lines: int = 0
    connections: int = 0
    flows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    first: str | None = None  # earliest / latest timestamp as logged
    last: str | None = None
    error: str | None = None  # the file stopped early (truncated gzip, I/O error)
    units: str = "connections"


@dataclass(frozen=True)
class LineExample:
    path: str
    line: int
    text: str
    why: str


@dataclass(frozen=True)
class FailureRow:
    reason: str
    connections: int
    client_ips: int
    sources: tuple[str, ...]
    example: str


@dataclass(frozen=True)
class FlowRow:
    client_ip: str
    why: str
    records: int
    packets: int
    flags: tuple[int, ...]  # distinct tcp-flags values seen
    all_records: int  # every record of this client to/from the port


@dataclass
class LogSummary:
    files: list[FileStats]
    population: Population
    failures: list[FailureRow]
    flows: list[FlowRow]
    flow_records: int
    suspicious_records: int
    flow_clients: int
    flow_examples: list[LineExample]
    malformed_total: int
    malformed: list[LineExample]
    options: dict[str, object]

    @property
    def skipped(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.skipped)
        return total


_TEXT_CAP = 300  # characters of a line kept in an example


class Tally:
    def __init__(self, *, max_examples: int = 10) -> None:
        self.max_examples = max_examples
        self.conns: dict[ConnKey, int] = {}
        self.reason_detail: dict[str, str] = {}
        self.reason_sources: dict[str, set[str]] = {}
        self.flows: dict[FlowKey, list[int]] = {}  # [records, packets]
        self.flow_flags: dict[FlowKey, set[int]] = {}
        self.flow_examples: list[LineExample] = []
        self.malformed: list[LineExample] = []
        self.malformed_total = 0
        self.files: list[FileStats] = []

    def feed(self, lines: Iterable[str], parser: LineParser, stats: FileStats) -> None:
        """Count every line of one file."""
        parse = parser.parse
        conns, flows = self.conns, self.flows
        skipped = stats.skipped
        fmt = parser.name
        first, last = stats.first, stats.last
        n_conns = n_flows = 0
        n = 0
        for n, raw in enumerate(lines, 1):  # n is also the line count afterwards
            line = raw.rstrip("\r\n")
            if not line or line.isspace():
                skipped["blank line"] += 1
                continue
            try:
                item = parse(line)
            except (Malformed, ValueError, IndexError) as e:
                # a parser that trips on a line must not end the run: the line is malformed
                why = str(e) if isinstance(e, Malformed) else f"unreadable ({e})"
                stats.malformed += 1
                self._malformed(stats.path, n, line, why)
                continue
            if type(item) is Conn:
                key = (item.client_ip, item.protocol, item.suite, item.failure)
                conns[key] = conns.get(key, 0) + 1
                n_conns += 1
                if item.failure is not None:
                    self._failure(item.failure, item.detail, fmt)
                t = item.time
                if t is not None:
                    if last is None or first is None:
                        first = last = t
                    elif t > last:
                        last = t
                    elif t < first:
                        first = t
            elif type(item) is Flow:
                fkey = (item.client_ip, item.suspicious)
                agg = flows.get(fkey)
                if agg is None:
                    agg = flows[fkey] = [0, 0]
                agg[0] += 1
                agg[1] += item.packets
                n_flows += 1
                if item.suspicious is not None:
                    self._suspicious(fkey, item, stats.path, n, line)
                t = item.time
                if t is not None and t.isdigit():
                    if last is None or first is None:
                        first = last = t
                    elif (len(t), t) > (len(last), last):
                        last = t
                    elif (len(t), t) < (len(first), first):
                        first = t
            else:
                skipped[str(item)] += 1
        stats.lines = n
        stats.connections += n_conns
        stats.flows += n_flows
        stats.first, stats.last = first, last

    def _failure(self, reason: str, detail: str | None, fmt: str) -> None:
        if reason not in self.reason_detail:
            self.reason_detail[reason] = detail or ""
        self.reason_sources.setdefault(reason, set()).add(fmt)

    def _suspicious(self, key: FlowKey, flow: Flow, path: str, n: int, line: str) -> None:
        if flow.flags is not None:
            self.flow_flags.setdefault(key, set()).add(flow.flags)
        if len(self.flow_examples) < self.max_examples:
            self.flow_examples.append(LineExample(path, n, line[:_TEXT_CAP], flow.suspicious or ""))

    def _malformed(self, path: str, n: int, line: str, why: str) -> None:
        self.malformed_total += 1
        if len(self.malformed) < self.max_examples:
            self.malformed.append(LineExample(path, n, line[:_TEXT_CAP], why))

    # -- the summary --------------------------------------------------------------------
    def summary(self, options: dict[str, object] | None = None) -> LogSummary:
        units = sorted({f.units for f in self.files if f.connections})
        population = Population(" and ".join(units) if units else "connections")
        keys: dict[tuple[str | None, str | None], GroupKey] = {}
        reasons: dict[str, list[int]] = {}
        reason_ips: dict[str, set[str]] = {}
        for (ip, protocol, suite, failure), n in self.conns.items():
            gk = keys.get((protocol, suite))
            if gk is None:
                gk = keys[(protocol, suite)] = group_key(protocol, suite)
            population.add_key(gk, ip, n, n if failure is not None else 0)
            if failure is not None:
                reasons.setdefault(failure, [0])[0] += n
                reason_ips.setdefault(failure, set()).add(ip)
        failures = [FailureRow(r, c[0], len(reason_ips[r]), tuple(sorted(self.reason_sources[r])),
                               self.reason_detail.get(r, "")) for r, c in reasons.items()]
        failures.sort(key=lambda f: (-f.connections, f.reason))

        per_client: Counter[str] = Counter()
        for (ip, _why), (records, _packets) in self.flows.items():
            per_client[ip] += records
        flows = [FlowRow(ip, why, rec, pk, tuple(sorted(self.flow_flags.get((ip, why), ()))),
                         per_client[ip])
                 for (ip, why), (rec, pk) in self.flows.items() if why is not None]
        flows.sort(key=lambda f: (-f.records, f.client_ip, f.why))
        for f in self.files:
            f.first, f.last = _iso(f.first), _iso(f.last)
        return LogSummary(
            files=self.files, population=population, failures=failures, flows=flows,
            flow_records=sum(v[0] for v in self.flows.values()),
            suspicious_records=sum(f.records for f in flows),
            flow_clients=len(per_client), flow_examples=self.flow_examples,
            malformed_total=self.malformed_total, malformed=self.malformed,
            options=dict(options or {}))


def _iso(t: str | None) -> str | None:
    """Timestamps as logged -> ISO 8601 (flow logs: Unix seconds; Go/nginx: Y/M/D)."""
    if t is None:
        return None
    if t.isdigit():
        return dt.datetime.fromtimestamp(int(t), dt.UTC).isoformat().replace(
            "+00:00", "Z")
    if len(t) == 19 and t[4] == "/":
        return t.replace("/", "-").replace(" ", "T")
    return t
