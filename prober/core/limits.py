"""The one per-endpoint limiter: at most N attempts in flight to one endpoint, the
resolved address and port.

A politeness promise to the endpoint, so it is keyed on the address the name resolved
to, not on the target's name: three names served by one address share one cap (another
port of the same host is another endpoint, with its own cap). Every
attempt takes a slot in ``engine.attempt``, so probe, policy, diagnose, check, whatif and
fleet tasks all hold it (fleet-wide caps across agents build on it with leases).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class EndpointSlots:
    def __init__(self, per_address: int) -> None:
        self.per_address = max(1, per_address)
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._busy: dict[tuple[str, int], int] = {}
        # the most attempts ever in flight to each endpoint (a figure for reports/tests)
        self.peak: dict[tuple[str, int], int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, address: str, port: int) -> AsyncIterator[None]:
        key = (address, port)
        sem = self._slots.get(key)
        if sem is None:
            sem = self._slots[key] = asyncio.Semaphore(self.per_address)
        async with sem:
            busy = self._busy[key] = self._busy.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), busy)
            try:
                yield
            finally:
                self._busy[key] -= 1
