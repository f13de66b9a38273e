"""Loopback port helpers."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

_PROC_TCP = Path("/proc/net/tcp")
_TCP_LISTEN = "0A"
_TCP_OPEN = {"01", "02", "03"}  # ESTABLISHED, SYN_SENT, SYN_RECV


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _proc_sockets() -> list[tuple[str, str, str]] | None:
    """(local, remote, state) of every IPv4 TCP socket, hex as /proc/net/tcp has them."""
    try:
        text = _PROC_TCP.read_text()
    except OSError:
        return None
    return [(f[1], f[2], f[3]) for f in (ln.split() for ln in text.splitlines()[1:])
            if len(f) > 3]


def _proc_listening(host: str, port: int) -> bool | None:
    """Whether /proc/net/tcp shows a LISTEN socket for host:port (None: can't tell)."""
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    sockets = _proc_sockets()
    if sockets is None:
        return None
    want = {f"{int.from_bytes(packed, 'little'):08X}:{port:04X}", f"00000000:{port:04X}"}
    return any(local in want and state == _TCP_LISTEN for local, _, state in sockets)


def open_connections(port: int) -> int | None:
    """IPv4 TCP connections to or from ``port`` that are opening or open (either end
    counts; closing ones do not); None when /proc/net/tcp cannot be read."""
    sockets = _proc_sockets()
    if sockets is None:
        return None
    suffix = f":{port:04X}"
    return sum(1 for local, remote, state in sockets if state in _TCP_OPEN and (
        local.endswith(suffix) or remote.endswith(suffix)))


def is_listening(host: str, port: int, *, connect: bool = False) -> bool:
    """True when something listens on ``host:port``.

    By default this reads /proc/net/tcp (no connection is made, so servers that log
    every connection see nothing); ``connect=True`` (or no /proc) tries a TCP connect.
    """
    if not connect:
        seen = _proc_listening(host, port)
        if seen is not None:
            return seen
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_listening(
    host: str,
    port: int,
    timeout: float = 10.0,
    *,
    alive: Any = None,
    connect: bool = False,
) -> None:
    """Block until ``host:port`` is listening, or raise ``TimeoutError``.

    ``alive`` may be a ``subprocess.Popen``: if it exits first we raise
    ``RuntimeError`` at once instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        poll = getattr(alive, "poll", None)
        if poll is not None and (rc := poll()) is not None:
            raise RuntimeError(f"process exited with code {rc} before listening on {port}")
        if is_listening(host, port, connect=connect):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.02)
