"""The connect-and-wait control: what the peer does to a client that sends nothing
(speaks first, closes, stays silent), run alongside the whole plan.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from prober.net.attempt import abort
from prober.net.starttls import preamble_async
from prober.wire.serverflight import banner_of


@dataclass(frozen=True)
class Waited:
    """What the peer did to a client that sent nothing."""

    # silent | banner | fin | rst | refused | connect-timeout | unreachable | starttls-failed
    outcome: str
    connect_ms: float | None
    waited_ms: float
    banner: str | None = None


async def connect_and_wait(address: str | None, port: int, family: int, wait: float,
                           connect_timeout: float, starttls: str | None = None,
                           server_name: str | None = None) -> Waited:
    """Connect, send nothing, and see whether the peer speaks first, closes or stays silent.
    With ``starttls`` the preamble runs first: the wait is where a ClientHello would go."""
    if address is None:
        return Waited("unreachable", None, 0.0)
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    t0 = time.monotonic()
    try:
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (address, port)),
                                   connect_timeout)
        except TimeoutError:
            return Waited("connect-timeout", None, 0.0)
        except ConnectionRefusedError:
            return Waited("refused", None, 0.0)
        except OSError:
            return Waited("unreachable", None, 0.0)
        c_ms = (time.monotonic() - t0) * 1000
        if starttls:
            pre = await preamble_async(sock, starttls, server_name, wait)
            if not pre.ready:
                return Waited("starttls-failed", c_ms, 0.0, pre.detail())
        connected = time.monotonic()
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), wait)
        except TimeoutError:
            return Waited("silent", c_ms, wait * 1000)
        except OSError:
            return Waited("rst", c_ms, (time.monotonic() - connected) * 1000)
        waited = (time.monotonic() - connected) * 1000
        if not data:
            return Waited("fin", c_ms, waited)
        return Waited("banner", c_ms, waited, banner_of(data))
    finally:
        abort(sock)
