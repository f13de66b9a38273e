"""The one per-endpoint limiter: at most N attempts in flight to one endpoint, the
resolved address and port, and none at all while the endpoint is backed off from.

A politeness promise to the endpoint, so it is keyed on the address the name resolved
to, not on the target's name: three names served by one address share one cap (another
port of the same host is another endpoint, with its own cap). Every
attempt takes a slot in ``engine.attempt``, so probe, policy, diagnose, check, whatif and
fleet tasks all hold it (fleet-wide caps across agents build on it with leases). An
attempt turned away for load (``engine.transient``) backs the whole endpoint off
(``back_off``): every attempt to it waits, not only the one retried, as the endpoint said
"too many".
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
        # loop time before which no attempt to the endpoint starts
        self._quiet_until: dict[tuple[str, int], float] = {}

    def back_off(self, address: str, port: int, seconds: float) -> None:
        """No attempt to the endpoint starts for ``seconds`` from now (an earlier, longer
        back-off stands)."""
        key = (address, port)
        until = asyncio.get_running_loop().time() + seconds
        self._quiet_until[key] = max(self._quiet_until.get(key, 0.0), until)

    async def quiet(self, address: str, port: int) -> None:
        """Wait out the endpoint's back-off, if any. Bounded: a back-off only moves by one
        bounded step per attempt turned away, and retries are bounded."""
        key = (address, port)
        loop = asyncio.get_running_loop()
        while (left := self._quiet_until.get(key, 0.0) - loop.time()) > 0:
            await asyncio.sleep(left)

    @contextlib.asynccontextmanager
    async def hold(self, address: str, port: int) -> AsyncIterator[None]:
        key = (address, port)
        sem = self._slots.get(key)
        if sem is None:
            sem = self._slots[key] = asyncio.Semaphore(self.per_address)
        async with sem:
            # a back-off may have begun while this attempt queued for its slot
            await self.quiet(address, port)
            busy = self._busy[key] = self._busy.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), busy)
            try:
                yield
            finally:
                self._busy[key] -= 1
