"""The outcome taxonomy (a contract: users write expectations against these names)
and the classifier that maps one observation to exactly one outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from prober.core.banner import identify
from prober.net.attempt import (
    CONNECT_REFUSED,
    CONNECT_TIMEOUT,
    END_FIN,
    END_RST,
    END_TIMEOUT,
    Observation,
)
from prober.wire import peertext
from prober.wire import serverflight as sf
from prober.wire.constants import alert_name
from prober.wire.registry import group_name, suite_name, version_name


class Outcome(StrEnum):
    """The outcome of one attempt. The values are a contract: users write expectations
    and read JSON against them (README, "Outcomes")."""

    OK = "ok"
    ALERT = "alert"
    RESET = "reset"
    EOF = "eof"
    HANG_ACKED = "hang-acked"
    HANG_UNACKED = "hang-unacked"
    PARTIAL = "partial"
    REFUSED = "refused"
    CONNECT_TIMEOUT = "connect-timeout"
    UNREACHABLE = "unreachable"
    NOT_TLS = "not-tls"
    BAD_SERVER_HELLO = "bad-server-hello"
    DNS_ERROR = "dns-error"
    STARTTLS_FAILED = "starttls-failed"


# no TCP connection was made: nothing about TLS was learnt
CONNECT_FAILURES = frozenset({Outcome.REFUSED, Outcome.CONNECT_TIMEOUT, Outcome.UNREACHABLE,
                              Outcome.DNS_ERROR})
# no ClientHello was sent: the connection failed, or the STARTTLS preamble before it
NO_HELLO = CONNECT_FAILURES | {Outcome.STARTTLS_FAILED}
# the TLS server read the hello and replied
ANSWERED = frozenset({Outcome.OK, Outcome.ALERT})
# the connection was cut after the hello, before any server byte
CUT = frozenset({Outcome.RESET, Outcome.EOF})
# nothing came back until the deadline
HUNG = frozenset({Outcome.HANG_ACKED, Outcome.HANG_UNACKED})
# what a server does to a hello it will not serve, as opposed to a broken path
REFUSALS = frozenset({Outcome.ALERT, Outcome.RESET, Outcome.EOF})

OUTCOMES: dict[Outcome, str] = {
    Outcome.OK: "the server's handshake flight was received and it chose parameters we offered",
    Outcome.ALERT: "a TLS alert came back",
    Outcome.RESET: "TCP RST after the ClientHello, before any server byte",
    Outcome.EOF: "FIN after the ClientHello, before any server byte",
    Outcome.HANG_ACKED: "the ClientHello was ACKed, then nothing until the deadline",
    Outcome.HANG_UNACKED: "the ClientHello was never ACKed (retransmitting) until the deadline",
    Outcome.PARTIAL: "some server bytes arrived, then stall/reset before the flight completed",
    Outcome.REFUSED: "RST to the SYN",
    Outcome.CONNECT_TIMEOUT: "no answer to the SYN",
    Outcome.UNREACHABLE: "ICMP/host/network unreachable",
    Outcome.NOT_TLS: "bytes came back that are not TLS",
    Outcome.BAD_SERVER_HELLO: "the server chose a version/suite/group we never offered, or sent "
                              "garbage inside TLS framing",
    Outcome.DNS_ERROR: "the name did not resolve",
    Outcome.STARTTLS_FAILED: "the plaintext STARTTLS preamble failed (not offered, refused with "
                             "the server's code, closed, no answer): no ClientHello was sent",
}


@dataclass
class Classified:
    outcome: Outcome
    detail: str


# appended to the detail of an attempt whose server spoke first (see reply_time)
SPOKE_FIRST = "(sent before our ClientHello)"


def reply_time(connect: float | None, sent: float | None, first: float | None,
               end: float | None, greeting: bool = False) -> tuple[float | None, bool]:
    """How long the server took to answer, in the unit given, and whether it spoke first.

    From the ClientHello being sent to the server's first byte, or to the end of the
    attempt when no byte came.  A server that speaks first (an SSH or SMTP banner, an
    alert on accept) answered before there was a hello to answer: its time is measured
    from the connection, never negative, and the flag says so.  ``greeting``: the first
    bytes are a protocol's greeting (core.banner), sent on accept whenever they arrived:
    on a fast path a greeting and our hello race, and the same server must read the same
    way every time.  Times are offsets from the start of the attempt; without a
    connection they count from that start."""
    if first is not None and (sent is None or first < sent or greeting):
        return first - (connect or 0.0), True
    if sent is not None:
        at = first if first is not None else end
        return (None if at is None else at - sent), False
    return (None if end is None else end - (connect or 0.0)), False


def greets(obs: Observation) -> bool:
    """The server's first bytes are the greeting of a protocol whose server speaks first."""
    f = obs.flight
    svc = identify(f.banner) if f is not None and f.banner else None
    return svc is not None and svc.greets


def spoke_first(obs: Observation) -> bool:
    return reply_time(obs.t_connect, obs.t_sent, obs.t_first_byte, obs.t_end, greets(obs))[1]


def classify(obs: Observation) -> Classified:
    c = _classify(obs)
    if obs.connect_error is None and spoke_first(obs):
        c.detail = f"{c.detail} {SPOKE_FIRST}"
    return c


def _classify(obs: Observation) -> Classified:
    if obs.connect_error == CONNECT_REFUSED:
        return Classified(Outcome.REFUSED, "connection refused (RST to SYN)")
    if obs.connect_error == CONNECT_TIMEOUT:
        return Classified(Outcome.CONNECT_TIMEOUT, "no SYN-ACK before the connect deadline")
    if obs.connect_error is not None:
        return Classified(Outcome.UNREACHABLE, _errno_text(obs.connect_errno) or "unreachable")
    if obs.starttls is not None and not obs.starttls.ready:
        return Classified(Outcome.STARTTLS_FAILED, obs.starttls.detail())
    f = obs.flight
    assert f is not None
    if f.status == sf.COMPLETE:
        return Classified(Outcome.OK, _negotiated(f))
    if f.status == sf.ALERT:
        name = alert_name(f.alert or 0)
        where = " (encrypted, after ServerHello)" if f.alert_encrypted else ""
        if f.messages and not f.alert_encrypted:
            where = f" (after {', '.join(f.messages)})"
        level = {1: "warning", 2: "fatal"}.get(f.alert_level or 0, "")
        return Classified(Outcome.ALERT, f"{name} ({f.alert}){' ' + level if level else ''}{where}")
    if f.status == sf.NOT_TLS:
        return Classified(Outcome.NOT_TLS, f"banner: {f.banner!r}" if f.banner else "non-TLS bytes")
    if f.status == sf.BAD:
        return Classified(Outcome.BAD_SERVER_HELLO, f.error or "malformed")
    acked = _acked_text(obs)
    if f.bytes_received:
        how = {END_RST: "then RST", END_FIN: "then FIN", END_TIMEOUT: "then silence"}.get(
            obs.end or "", "then nothing")
        seen = ", ".join(f.messages) or "no whole handshake message"
        return Classified(Outcome.PARTIAL, f"{f.bytes_received} bytes ({seen}), {how}")
    after = _ms(obs.t_end, obs.t_sent)
    if obs.end == END_RST:
        return Classified(Outcome.RESET, f"RST {after} after the ClientHello{acked}")
    if obs.end == END_FIN:
        return Classified(Outcome.EOF, f"FIN {after} after the ClientHello{acked}")
    if obs.acked is False:
        retr = f", {obs.tcp_retransmits} retransmissions" if obs.tcp_retransmits else ""
        return Classified(Outcome.HANG_UNACKED, f"ClientHello never ACKed{retr}")
    if obs.acked:
        return Classified(Outcome.HANG_ACKED,
                          f"ClientHello ACKed{_ms_at(obs.t_acked, obs.t_sent)}, "
                          f"then silence for {after}")
    return Classified(Outcome.HANG_ACKED,
                      f"silence for {after} (ACK not observable on this platform)")


def _negotiated(f: sf.Flight) -> str:
    parts = [version_name(f.version) if f.version is not None else "?"]
    if f.suite is not None:
        parts.append(suite_name(f.suite))
    if f.group is not None:
        parts.append(group_name(f.group))
    if f.alpn:
        parts.append(f"ALPN {peertext.shown(f.alpn)}")
    if f.stopped_at_hrr:
        parts.append(f"HRR for {group_name(f.hrr_group or 0)} (stopped there, as asked)")
    elif f.hrr_group is not None:
        parts.append("after HRR")
    if f.decrypted is False:
        parts.append("(flight not decrypted)")
    return " ".join(parts)


def _acked_text(obs: Observation) -> str:
    if obs.acked:
        return " (it was ACKed)"
    if obs.acked is False:
        return " (it was not ACKed)"
    return ""


def _ms(t: float | None, since: float | None) -> str:
    if t is None or since is None:
        return "?"
    return f"{(t - since) * 1000:.1f} ms"


def _ms_at(t: float | None, since: float | None) -> str:
    return "" if t is None or since is None else f" within {(t - since) * 1000:.1f} ms"


def _errno_text(code: int | None) -> str | None:
    if code is None:
        return None
    import errno
    import os

    return f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
