"""The STARTTLS preamble on a plain socket, for the connections that are not attempts:
diagnose's connect-and-wait control (asyncio) and its idle-timeout probes (blocking,
before Python's ssl takes the socket over). Attempts run the same preamble inside
their protocol (prober.net.attempt); the protocols themselves are prober.wire.starttls.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time

from prober.wire.starttls import Preamble, PreambleResult


async def preamble_async(sock: socket.socket, protocol: str, server_name: str | None,
                         timeout: float) -> PreambleResult:
    """Run the preamble on a connected non-blocking socket, within ``timeout``."""
    loop = asyncio.get_running_loop()
    p = Preamble(protocol, server_name)
    first = p.start()
    try:
        async with asyncio.timeout(timeout):
            if first:
                await loop.sock_sendall(sock, first)
            while not p.done:
                data = await loop.sock_recv(sock, 4096)
                if not data:
                    p.closed("fin")
                    break
                reply = p.feed(data)
                if reply:
                    await loop.sock_sendall(sock, reply)
    except TimeoutError:
        p.timed_out(timeout)
    except OSError:
        p.closed("rst")
    assert p.result is not None
    return p.result


def preamble_blocking(sock: socket.socket, protocol: str, server_name: str | None,
                      timeout: float) -> PreambleResult:
    """Run the preamble on a connected blocking socket, within ``timeout`` in all."""
    p = Preamble(protocol, server_name)
    deadline = time.monotonic() + timeout
    try:
        out = p.start()
        while True:
            if out:
                sock.sendall(out)
            if p.done:
                break
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                p.timed_out(timeout)
                break
            data = sock.recv(4096)
            if not data:
                p.closed("fin")
                break
            out = p.feed(data)
    except OSError:
        p.closed("rst")
    assert p.result is not None
    return p.result
