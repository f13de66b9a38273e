"""The barest asyncio client for one TLS exchange: the floor under `bench/run.py`.

    bare_client.py HOST PORT ATTEMPTS CONCURRENCY FLIGHT_BYTES

Each attempt connects, writes a `tls1.2-only` ClientHello, waits for FLIGHT_BYTES of
reply (the server's whole flight, as measured by prober in the same run) without
parsing them, and closes with a RST, all on uvloop as `prober probe` runs. Prints JSON:
attempts that got the whole flight, attempts/s and the CPU seconds of the loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prober.profiles.families import version_profile
from prober.wire.clienthello import build

_LINGER_RST = struct.pack("ii", 1, 0)


class _Reply(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[bool], want: int) -> None:
        self.done, self.want, self.got = done, want, 0

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.want and not self.done.done():
            self.done.set_result(True)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(False)


def _give_up(done: asyncio.Future[bool]) -> None:
    if not done.done():
        done.set_result(False)


async def _run(host: str, port: int, attempts: int, concurrency: int, want: int) -> int:
    loop = asyncio.get_running_loop()
    hello = build(version_profile("tls1.2-only").spec, None)
    jobs = iter(range(attempts))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for _ in jobs:
            done: asyncio.Future[bool] = loop.create_future()
            tr, _ = await loop.create_connection(partial(_Reply, done, want), host, port)
            tr.write(hello.renewed().records())
            # a timer rather than wait_for: no task per attempt, still bounded in time
            timer = loop.call_later(5, _give_up, done)
            try:
                whole = await done
                ok += whole  # after the await: `ok += await` would read ok before it
            finally:
                timer.cancel()
                tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                       _LINGER_RST)
                tr.abort()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def main() -> int:
    import uvloop

    host, port, attempts, concurrency, want = sys.argv[1:6]
    c0, t0 = time.process_time(), time.monotonic()
    ok = uvloop.run(_run(host, int(port), int(attempts), int(concurrency), int(want)))
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    print(json.dumps({"ok": ok, "rate": int(attempts) / wall, "cpu_s": cpu}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
