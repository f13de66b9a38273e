"""The idle-timeout measurement (``--idle-timeout``): real TLS connections left idle for
a ladder of waits, then sent one byte.
"""

from __future__ import annotations

import asyncio

from prober.core.engine import Endpoint
from prober.diagnose.findings import FAILED_IDLE, IdleResult, idle_bounds
from prober.net.idle import IdleProbe, idle_probe


def idle_waits(max_s: float) -> list[float]:
    """Round one: 1, 2, 4, ... seconds, and ``max_s`` itself."""
    waits: list[float] = []
    w = 1.0
    while w < max_s:
        waits.append(w)
        w *= 2
    return [*waits, float(max_s)]


def refine_waits(lo: float, hi: float, n: int = 3) -> list[float]:
    """Round two: ``n`` waits evenly inside (lo, hi)."""
    return [round(lo + (hi - lo) * (i + 1) / (n + 1), 2) for i in range(n)]


async def measure_idle(ep: Endpoint, max_s: float, connect_timeout: float) -> IdleResult:
    """How long an established TLS connection may idle before the path drops it.

    Every wait runs on its own connection, all at once, so the run takes about as long
    as the longest wait needed (not their sum); a second round narrows the interval.
    """
    probes = await _idle_round(ep, idle_waits(max_s), connect_timeout)
    bounds = idle_bounds(probes)
    # a close while idling is timed already: nothing to narrow
    if bounds is not None and not any(p.closed_after_s is not None for p in probes):
        lo, hi = bounds
        if hi - lo > 0.5:
            probes += await _idle_round(ep, refine_waits(lo, hi), connect_timeout)
    return IdleResult(max_s, tuple(sorted(probes, key=lambda p: p.wait_s)))


async def _idle_round(ep: Endpoint, waits: list[float], connect_timeout: float
                      ) -> list[IdleProbe]:
    import threading

    stops = {w: threading.Event() for w in waits}
    tasks = [asyncio.ensure_future(asyncio.to_thread(
        idle_probe, ep.address or "", ep.target.port, ep.family, ep.target.sni, w,
        connect_timeout, stops[w], ep.target.starttls, ep.target.sni or ep.target.host))
        for w in waits]
    out: list[IdleProbe] = []
    try:
        for fut in asyncio.as_completed(tasks):
            p = await fut
            out.append(p)
            if p.result in FAILED_IDLE:
                # longer waits can only fail the same way: stop them now
                for w, ev in stops.items():
                    if w > p.wait_s:
                        ev.set()
    finally:
        for ev in stops.values():
            ev.set()  # threads notice within IDLE_POLL_S, also on Ctrl-C
    return out
