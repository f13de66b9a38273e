"""The files a run can leave besides its JSON: ``--html``, ``--pcap``, ``--keylog``.

Spelled and read the same way by every command that has them. Each path is opened
before any work, so an unwritable one fails at once (exit 2), and ``--pcap`` opens its
packet socket before the first packet is sent: a run that cannot capture does not run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import IO

from prober.cli.common import UsageError, open_out
from prober.core.attempt import AttemptResult
from prober.core.engine import Endpoint
from prober.net.packets import Capture, open_capture
from prober.report import keylog, pcapng
from prober.report.output import say


def add_html(p: argparse.ArgumentParser) -> None:
    p.add_argument("--html", metavar="FILE",
                   help="also write a self-contained HTML report (findings, sequence "
                   "diagrams, matrix)")


def add_wire_files(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pcap", metavar="FILE",
                   help="write the packets of every attempt as pcapng, one comment per "
                   "attempt (root or CAP_NET_RAW)")
    p.add_argument("--keylog", metavar="FILE",
                   help="write the TLS 1.3 handshake secrets in SSLKEYLOGFILE format "
                   "(Wireshark then decrypts the server's flight in the --pcap)")


class HtmlFile:
    """``--html FILE``, opened at once and written when the run is over."""

    def __init__(self, args: argparse.Namespace) -> None:
        path: str | None = getattr(args, "html", None)
        self.out: IO[str] | None = open_out(path) if path else None

    def write(self, render: Callable[[], str]) -> None:
        if self.out is None:
            return
        with self.out:
            self.out.write(render())


class WireFiles:
    """``--pcap`` and ``--keylog``: the capture around the run, the files after it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.pcap_path: str | None = getattr(args, "pcap", None)
        self.keylog_path: str | None = getattr(args, "keylog", None)
        for path in (self.pcap_path, self.keylog_path):
            if path:
                open_out(path).close()
        self.captures: list[Capture] = []

    def start(self, endpoints: Iterable[tuple[str, int, int]]) -> None:
        """Open a full-packet capture per (address, port, family) before anything is sent;
        UsageError (exit 2) when the packet socket is not allowed."""
        if not self.pcap_path:
            return
        seen: set[tuple[str, int]] = set()
        for address, port, family in endpoints:
            if (address, port) in seen:
                continue
            seen.add((address, port))
            cap, why = open_capture(address, port, family, full=True)
            if cap is None:
                self.stop()
                raise UsageError(f"--pcap {self.pcap_path}: cannot capture ({why}); "
                                 "nothing was sent")
            self.captures.append(cap)

    def start_for(self, endpoints: Iterable[Endpoint]) -> None:
        """:meth:`start` for resolved endpoints (those that did not resolve get none)."""
        self.start((ep.address, ep.target.port, ep.family) for ep in endpoints
                   if ep.address is not None)

    def stop(self) -> None:
        for cap in self.captures:
            cap.stop()

    def capture_for(self, address: str, port: int) -> Capture | None:
        return next((c for c in self.captures if (c.address, c.port) == (address, port)),
                    None)

    def write(self, results: list[AttemptResult], quiet: bool = False) -> None:
        notes = []
        if self.pcap_path:
            packets = [p for c in self.captures for p in c.packets]
            n = pcapng.write_attempts(self.pcap_path, results, packets)
            dropped = sum(c.dropped for c in self.captures)
            notes.append(f"{n} packets in {self.pcap_path}"
                         + (f" ({dropped} not kept: capture limit)" if dropped else ""))
        if self.keylog_path:
            n = keylog.write(self.keylog_path, results)
            notes.append(f"{n} TLS 1.3 handshake(s) in {self.keylog_path}")
        if notes and not quiet:
            say("prober: wrote " + "; ".join(notes), file=sys.stderr)
