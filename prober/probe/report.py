"""Rendering a probe run: the table people read and the JSON document machines read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prober import __version__
from prober.core.attempt import RETRY_OF, AttemptResult
from prober.core.engine import Endpoint
from prober.core.service import no_tls_of, tls_endpoint_json
from prober.net.host import hostname
from prober.probe.summary import summarize
from prober.report.timestamps import iso_ms

PROBE_SCHEMA = "prober.probe/2"


@dataclass
class RunInfo:
    started: float
    finished: float | None = None
    complete: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)


def vantage(results: list[AttemptResult]) -> dict[str, Any]:
    local = sorted({r.obs.local_address for r in results
                    if r.obs is not None and r.obs.local_address})
    return {"hostname": hostname(), "local_addresses": local}


def document(results: list[AttemptResult], info: RunInfo) -> dict[str, Any]:
    results = sorted(results, key=lambda r: r.id)
    targets = []
    for ep in info.endpoints:
        targets.append({"target": ep.target.label, "host": ep.target.host,
                        "port": ep.target.port, "address": ep.address,
                        "sni": ep.target.sni, "starttls": ep.target.starttls,
                        "starttls_inferred": ep.target.starttls_inferred, "error": ep.error,
                        "tls_endpoint": tls_endpoint_json(no_tls_of(_of(results, ep)))})
    return {
        "schema": PROBE_SCHEMA,
        "tool": {"name": "prober", "version": __version__},
        "vantage": {**vantage(results), "started_at": iso_ms(info.started),
                    "finished_at": iso_ms(info.finished)},
        "complete": info.complete,
        "options": info.options,
        "targets": targets,
        "profiles": info.profiles,
        "summary": [c.to_json() for c in summarize(results)],
        "attempts": [r.to_json() for r in results],
    }


def table(results: list[AttemptResult], info: RunInfo) -> str:
    from prober.report.table import tabulate

    cells = summarize(results)
    lines = []
    local = ", ".join(vantage(results)["local_addresses"]) or "?"
    elapsed = (info.finished or info.started) - info.started
    for ep in info.endpoints:
        where = ep.address or "unresolved"
        sni = ep.target.sni
        mine = _of(results, ep)
        n = len(mine)
        again = sum(1 for r in mine if r.data.get(RETRY_OF) is not None)
        retried = f" ({again} {'retry' if again == 1 else 'retries'})" if again else ""
        via = f", STARTTLS {ep.target.starttls}" if ep.target.starttls else ""
        lines.append(f"{ep.target.label} → {where} (SNI {sni or 'none'}{via}), from {local}, "
                     f"{n} attempt{'s' if n != 1 else ''}{retried} in {elapsed:.1f} s")
        verdict = no_tls_of(_of(results, ep))
        if verdict is not None:
            lines.append(f"  NO TLS ENDPOINT MEASURED: {verdict.text()}")
    if not info.complete:
        lines.append("INTERRUPTED: the table holds the attempts that finished")
    lines.append("")
    multi = len({(c.target, c.address) for c in cells}) > 1
    rows = []
    for c in cells:
        med = c.median_ms()
        row = [c.profile, c.outcome_text(), c.detail_text(),
               "" if med is None else f"{med:.1f}"]
        if multi:
            row.insert(0, f"{c.target} {c.address or ''}".strip())
        rows.append(row)
    headers = ["profile", "outcome", "detail", "median ms"]
    if multi:
        headers.insert(0, "endpoint")
    lines.append(tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True,
                          colalign=("left",) * (len(headers) - 1) + ("right",)))
    return "\n".join(lines)


def _of(results: list[AttemptResult], ep: Endpoint) -> list[AttemptResult]:
    return [r for r in results if r.target == ep.target.label and r.address == ep.address]
