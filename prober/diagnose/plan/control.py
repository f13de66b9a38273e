"""The connect-and-wait control: what the peer does to a client that sends nothing
(speaks first, closes, stays silent), run alongside the whole plan.
"""

from __future__ import annotations

import asyncio
import socket
import time

from prober.diagnose.findings import Control
from prober.engine import Endpoint
from prober.net.attempt import abort


async def connect_and_wait(ep: Endpoint, wait: float, connect_timeout: float) -> Control:
    """Connect, send nothing, and see whether the peer speaks first, closes or stays silent."""
    from prober.wire.serverflight import banner_of

    if ep.address is None:
        return Control("unreachable", None, 0.0)
    loop = asyncio.get_running_loop()
    sock = socket.socket(ep.family, socket.SOCK_STREAM)
    sock.setblocking(False)
    t0 = time.monotonic()
    try:
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (ep.address, ep.target.port)),
                                   connect_timeout)
        except TimeoutError:
            return Control("connect-timeout", None, 0.0)
        except ConnectionRefusedError:
            return Control("refused", None, 0.0)
        except OSError:
            return Control("unreachable", None, 0.0)
        connected = time.monotonic()
        c_ms = (connected - t0) * 1000
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), wait)
        except TimeoutError:
            return Control("silent", c_ms, wait * 1000)
        except OSError:
            return Control("rst", c_ms, (time.monotonic() - connected) * 1000)
        waited = (time.monotonic() - connected) * 1000
        if not data:
            return Control("fin", c_ms, waited)
        return Control("banner", c_ms, waited, banner_of(data) or data[:16].hex())
    finally:
        abort(sock)
