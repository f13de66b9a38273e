"""What the rules' evidence is made of: which attempts to read, their figures (median,
round trip, main outcome) and the words for them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable

from prober.core.outcome import Outcome
from prober.diagnose.findings import STEP_REPEAT, RunView, Seen


def ms(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:.2f} ms" if v < 1 else f"{v:.1f} ms"


def id_list(atts: Iterable[Seen]) -> str:
    """'ids 1-4, 9' for a set of attempts."""
    ids = sorted({a.id for a in atts})
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    word = "id" if len(ids) == 1 else "ids"
    return f"{word} {', '.join(parts)}" if parts else "no attempt"


def counts(atts: list[Seen]) -> str:
    c = Counter(a.outcome for a in atts)
    return ", ".join(f"{o} {n}/{len(atts)}" for o, n in c.most_common())


def median(vals: Iterable[float | None]) -> float | None:
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def round_trip_ms(atts: Iterable[Seen]) -> float | None:
    """The TCP round trip: the smallest kernel RTT (TCP_INFO) of the attempts, else the
    fastest connect. The kernel's figure is immune to a busy client; the connect time is
    not, and its minimum at least errs towards "the server could answer that fast"."""
    atts = list(atts)
    kernel = [a.rtt_us / 1000 for a in atts if a.rtt_us]
    if kernel:
        return min(kernel)
    return min((a.connect_ms for a in atts if a.connect_ms is not None), default=None)


def mostly(atts: list[Seen], pred: Callable[[Seen], bool], share: float = 0.8) -> bool:
    return bool(atts) and sum(1 for a in atts if pred(a)) >= max(1, share * len(atts))


_HOW: dict[str, str] = {
    Outcome.RESET: "reset (RST)", Outcome.EOF: "closed (FIN)",
    Outcome.HANG_ACKED: "ACKed and never answered", Outcome.HANG_UNACKED: "dropped (never ACKed)"}


def how_text(outcome: str) -> str:
    return _HOW.get(outcome, outcome)


def main_outcome(atts: list[Seen]) -> str:
    """The most common outcome ("" of no attempts)."""
    top = Counter(a.outcome for a in atts).most_common(1)
    return top[0][0] if top else ""


def unchecked_ttl(run: RunView, what: str) -> list[str]:
    if run.capture == "ok":
        return []
    why = "no --capture" if run.capture is None else run.capture
    return [f"{what}: not compared ({why})"]


def reference_attempts(run: RunView) -> list[Seen]:
    return run.of_step(STEP_REPEAT)


def split_text(a: Seen) -> str:
    if a.meta.get("record_sizes"):
        return f"first records {a.meta['record_sizes']} bytes"
    if a.meta.get("segment_sizes"):
        return (f"first segment {a.meta['segment_sizes'][0]} bytes, then "
                f"{a.meta.get('pause_ms', 0):.0f} ms pause")
    return a.profile
