"""Per (target, profile) summaries of attempts: counts, the typical detail, timings."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prober.core.attempt import RETRY_OF, AttemptResult, retried_ids
from prober.core.outcome import greets, reply_time


@dataclass
class Cell:
    target: str
    address: str | None
    profile: str
    counts: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)
    totals_ms: list[float] = field(default_factory=list)
    first_byte_ms: list[float] = field(default_factory=list)
    # some first bytes came before the hello was sent: timed from the connection
    spoke_first: bool = False
    # one real detail per wording, shown for that wording
    examples: dict[str, str] = field(default_factory=dict)
    # attempts that retried one turned away for load: kept in the record, while the counts
    # hold each planned attempt's last try (one per attempt, never two)
    retries: int = 0

    @property
    def attempts(self) -> int:
        return sum(self.counts.values())

    def main_outcome(self) -> str:
        return self.counts.most_common(1)[0][0]

    def outcome_text(self) -> str:
        n = self.attempts
        parts = [f"{o} {c}/{n}" if n > 1 else o for o, c in self.counts.most_common()]
        text = ", ".join(parts)
        if self.retries:
            text += f" ({self.retries} {'retry' if self.retries == 1 else 'retries'})"
        return text

    def detail_text(self) -> str:
        key, _ = self.details.most_common(1)[0]
        d = self.examples[key]
        if len(self.details) > 1:
            return f"{d} (+{len(self.details) - 1} other)"
        return d

    def median_ms(self) -> float | None:
        vals = self.first_byte_ms or self.totals_ms
        return statistics.median(vals) if vals else None

    def to_json(self) -> dict[str, Any]:
        med = self.median_ms()
        return {"target": self.target, "address": self.address, "profile": self.profile,
                "attempts": self.attempts, "counts": dict(self.counts),
                "outcome": self.main_outcome(), "consistent": len(self.counts) == 1,
                "detail": self.detail_text(),
                "median_ms": None if med is None else round(med, 3),
                **({"spoke_first": True} if self.spoke_first else {}),
                **({"retries": self.retries} if self.retries else {})}


def summarize(results: list[AttemptResult]) -> list[Cell]:
    """One cell per (endpoint, profile): the counts are of each planned attempt's last try
    (an attempt retried after it was turned away for load is counted in ``retries``)."""
    redone = retried_ids(results)
    cells: dict[tuple[str, str | None, str], Cell] = {}
    # endpoints in first-seen order, profiles in the order the run gave them
    order: dict[tuple[str, str | None], int] = {}
    for r in sorted(results, key=lambda r: r.id):
        order.setdefault((r.target, r.address), len(order))
    prof_order: dict[str, int] = {}
    for r in sorted(results, key=lambda r: (r.repeat, r.id)):
        prof_order.setdefault(r.profile, len(prof_order))
    for r in sorted(results, key=lambda r: (order[(r.target, r.address)],
                                            prof_order[r.profile], r.id)):
        ckey = (r.target, r.address, r.profile)
        cell = cells.get(ckey)
        if cell is None:
            cell = cells[ckey] = Cell(r.target, r.address, r.profile)
        if r.data.get(RETRY_OF) is not None:
            cell.retries += 1
        if r.id in redone:
            continue
        cell.counts[r.outcome] += 1
        key = _detail_key(r)
        cell.details[key] += 1
        cell.examples.setdefault(key, r.detail)
        o = r.obs
        if o is not None and o.t_end is not None:
            total, _ = reply_time(o.t_connect, o.t_sent, None, o.t_end)
            if total is not None:
                cell.totals_ms.append(total * 1000)
            if o.t_first_byte is not None:
                first, early = reply_time(o.t_connect, o.t_sent, o.t_first_byte, o.t_end,
                                          greets(o))
                if first is not None:
                    cell.first_byte_ms.append(first * 1000)
                cell.spoke_first |= early
    return list(cells.values())


_TIMING = re.compile(r"\d+(\.\d+)? ms")


def _detail_key(r: AttemptResult) -> str:
    # timings vary per attempt: group on the wording, show the median timing instead
    return _TIMING.sub("~ms", r.detail)
