"""One idle-timeout connection: a real TLS handshake, an idle wait, one byte, the verdict.

Blocking (it runs in a thread per wait); the ladder of waits is diagnose's.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
import warnings
from dataclasses import dataclass
from typing import Any

from prober.net import tcpinfo
from prober.net.attempt import abort
from prober.net.starttls import preamble_blocking

# after the idle period: how long to wait for the probe byte's ACK (or an RST)
ACK_WAIT_S = 3.0
# an RST that follows the ACK (a device answering for a forgotten flow) comes quickly
AFTER_ACK_S = 0.3
IDLE_POLL_S = 0.2


@dataclass(frozen=True)
class IdleProbe:
    wait_s: float
    result: str  # alive | reset | closed | blackholed | cancelled | error
    detail: str = ""
    closed_after_s: float | None = None  # the peer closed while we idled

    def to_json(self) -> dict[str, Any]:
        return {"wait_s": self.wait_s, "result": self.result, "detail": self.detail,
                "closed_after_s": self.closed_after_s}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IdleProbe:
        after = d.get("closed_after_s")
        return cls(wait_s=float(d["wait_s"]), result=str(d["result"]),
                   detail=str(d.get("detail", "")),
                   closed_after_s=None if after is None else float(after))



def idle_probe(address: str, port: int, family: int, sni: str | None, wait_s: float,
               connect_timeout: float, stop: Any, starttls: str | None = None,
               server_name: str | None = None) -> IdleProbe:
    """One connection: a real handshake (Python ssl), ``wait_s`` idle, one byte, the verdict.
    With ``starttls`` the preamble comes before the handshake.

    Blocking; run in a thread. ``stop`` (a threading.Event) ends it early.
    """
    raw = socket.socket(family, socket.SOCK_STREAM)
    raw.settimeout(connect_timeout)
    try:
        raw.connect((address, port))
        if starttls:
            pre = preamble_blocking(raw, starttls, server_name, connect_timeout)
            if not pre.ready:
                abort(raw)
                return IdleProbe(wait_s, "error", f"no established TLS connection: "
                                 f"{pre.detail()}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # measuring the path, not judging the certificate
        try:
            # the endpoint may be old: the idle timeout is about the path, not the policy
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            pass
        tls = ctx.wrap_socket(raw, server_hostname=sni)
    except (OSError, ssl.SSLError) as e:
        abort(raw)
        return IdleProbe(wait_s, "error", f"no established TLS connection: {e}")
    try:
        return _idle_then_poke(tls, wait_s, stop)
    finally:
        abort(tls)


def _idle_then_poke(tls: Any, wait_s: float, stop: Any) -> IdleProbe:
    t0 = time.monotonic()
    tls.setblocking(False)
    while (left := t0 + wait_s - time.monotonic()) > 0:
        if stop.is_set():
            return IdleProbe(wait_s, "cancelled")
        readable, _, _ = select.select([tls], [], [], min(left, IDLE_POLL_S))
        ev = _read_event(tls) if readable else "none"
        if ev in ("fin", "rst"):
            after = time.monotonic() - t0
            return IdleProbe(wait_s, "closed", f"{ev.upper()} from the peer after "
                             f"{after:.1f} s idle", closed_after_s=round(after, 2))
    try:
        tls.setblocking(True)
        tls.settimeout(ACK_WAIT_S)
        tls.sendall(b"\n")
        tls.setblocking(False)
    except OSError:
        return IdleProbe(wait_s, "reset", "the byte after the idle period could not be sent")
    sent = time.monotonic()
    acked_at: float | None = None
    while time.monotonic() - sent < ACK_WAIT_S:
        readable, _, _ = select.select([tls], [], [], 0.02)
        ev = _read_event(tls) if readable else "none"
        if ev == "rst":
            return IdleProbe(wait_s, "reset", "the byte sent after the idle period got RST")
        if ev == "fin":
            return IdleProbe(wait_s, "closed", "the peer closed (FIN) on the byte sent after "
                             "the idle period")
        if ev == "data":
            return IdleProbe(wait_s, "alive", "the peer answered")
        info = tcpinfo.read(tls)
        if acked_at is None and info is not None and info.all_acked:
            acked_at = time.monotonic()
        if acked_at is not None and time.monotonic() - acked_at > AFTER_ACK_S:
            return IdleProbe(wait_s, "alive", "the byte was ACKed")
    if acked_at is not None:
        return IdleProbe(wait_s, "alive", "the byte was ACKed")
    return IdleProbe(wait_s, "blackholed", f"the byte was not ACKed within {ACK_WAIT_S:.0f} s")


TCP_CLOSE = 7  # linux/tcp_states.h: what a socket is in after an RST (CLOSE_WAIT after FIN)


def _read_event(tls: Any) -> str:
    """none | data | fin | rst: what the peer just did."""
    try:
        data = tls.recv(4096)
    except ssl.SSLWantReadError:
        return "none"  # a record in part, or a TLS 1.3 session ticket: nothing for us
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
        data = b""
    except (ConnectionResetError, ConnectionAbortedError):
        return "rst"
    except (ssl.SSLError, OSError):
        return "rst"
    if data:
        return "data"
    # OpenSSL 3 reports an RST as an unexpected EOF: the TCP state tells them apart
    info = tcpinfo.read(tls)
    return "rst" if info is not None and info.state == TCP_CLOSE else "fin"
