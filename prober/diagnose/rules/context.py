"""What the rules share while they run.

The attempts already explained, so a cause named by a specific rule (an SNI filter, a
size limit) is not reported again by a generic one (a silent device), and the finding
ids raised so far, which a later rule may defer to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prober.diagnose.findings import Finding, RunView, Seen


@dataclass
class Ctx:
    explained: set[int] = field(default_factory=set)
    found: set[str] = field(default_factory=set)  # ids raised so far

    def claim(self, atts: Iterable[Seen]) -> None:
        self.explained.update(a.id for a in atts)

    def free(self, atts: Iterable[Seen]) -> list[Seen]:
        return [a for a in atts if a.id not in self.explained]


Rule = Callable[[RunView, Ctx], list[Finding]]
