"""Facts about the machine prober runs on, for the vantage point of a report."""

from __future__ import annotations

import socket


def hostname() -> str:
    return socket.gethostname()
