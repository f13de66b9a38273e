"""A one-line progress display on stderr, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None
                 ) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.counts: Counter[str] = Counter()
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, outcome: str) -> None:
        self.done += 1
        self.counts[outcome] += 1
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            mix = " ".join(f"{k} {v}" for k, v in self.counts.most_common(5))
            rate = self.done / max(now - self.t0, 1e-6)
            self.stream.write(f"\r\x1b[K[{self.done}/{self.total}] {mix}  {rate:.0f}/s")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
