"""What answers at the other end when it is not a TLS server: the protocol a banner
names, and the verdict "no TLS endpoint measured" with its cause.

Every command judges a run the same way from the same facts (each attempt's outcome and
banner), so probe, policy, diagnose and check never disagree about whether a TLS
endpoint was measured at all, nor about what was there instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prober.core.attempt import AttemptResult
from prober.core.banner import Service as Service  # lives below core.outcome, which needs it
from prober.core.banner import identify as identify
from prober.core.outcome import CONNECT_FAILURES, Outcome
from prober.wire import peertext

# an attempt with one of these outcomes met something that speaks TLS (a handshake, an
# alert, part of a flight, or TLS framing with nonsense inside)
TLS_SEEN = frozenset({Outcome.OK, Outcome.ALERT, Outcome.PARTIAL, Outcome.BAD_SERVER_HELLO})

# kinds of "no TLS endpoint measured"
WRONG_SERVICE = "wrong-service"
STARTTLS_FAILED = "starttls-failed"
PORT_CLOSED = "port-closed"
UNREACHABLE = "unreachable"
NO_NAME = "dns-error"
SILENT = "silent"
DROPPED = "dropped"
CUT = "cut"


@dataclass(frozen=True)
class NoTls:
    """Nothing TLS-like was measured: why, in one line, and what was there instead."""

    kind: str
    cause: str
    outcomes: dict[str, int]
    banner: str | None = None
    service: Service | None = None
    advice: str | None = None  # what to do instead, when it is plain

    def text(self) -> str:
        """Cause and advice as one line, for the commands that print no findings."""
        return f"{self.cause} {self.advice}" if self.advice else self.cause

    def to_json(self) -> dict[str, Any]:
        return {"measured": False, "kind": self.kind, "cause": self.cause,
                "advice": self.advice,
                "outcomes": self.outcomes, "banner": self.banner,
                "protocol": self.service.protocol if self.service else None,
                "starttls": self.service.starttls if self.service else None}


MEASURED: dict[str, Any] = {"measured": True}


def tls_endpoint_json(verdict: NoTls | None) -> dict[str, Any]:
    """The ``tls_endpoint`` object of every run document."""
    return dict(MEASURED) if verdict is None else verdict.to_json()


def no_tls_of(results: Iterable[AttemptResult]) -> NoTls | None:
    """:func:`no_tls` of live attempts."""
    return no_tls((r.outcome, r.obs.flight.banner if r.obs and r.obs.flight else None,
                   r.detail) for r in results)


def no_tls_of_docs(attempts: Iterable[dict[str, Any]]) -> NoTls | None:
    """:func:`no_tls` of attempts as their JSON documents hold them (a banner that is not
    UTF-8 is stored as ``{"hex": …}``)."""
    return no_tls((str(a["outcome"]), peertext.from_json(a.get("banner")),
                   str(a.get("detail") or "")) for a in attempts)


def no_tls(attempts: Iterable[tuple[str, str | None, str]]) -> NoTls | None:
    """None when any attempt met TLS; else why nothing TLS-like was measured.

    ``attempts`` are (outcome, banner, detail) of every attempt of one endpoint.
    """
    atts = [(str(o), b, d) for o, b, d in attempts]
    if not atts or any(o in TLS_SEEN for o, _, _ in atts):
        return None
    counts = dict(Counter(o for o, _, _ in atts).most_common())
    n = len(atts)
    banners = [b for o, b, _ in atts if o == Outcome.NOT_TLS and b]
    if any(o == Outcome.NOT_TLS for o, _, _ in atts):
        banner = Counter(banners).most_common(1)[0][0] if banners else None
        svc = identify(banner)
        got = sum(1 for o, _, _ in atts if o == Outcome.NOT_TLS)
        what = f"speaks {svc.protocol}, not TLS" if svc else "answers with bytes that are not TLS"
        shown = f" (banner {_short(banner)!r})" if banner else ""
        return NoTls(WRONG_SERVICE, f"The port {what}{shown}: {got}/{n} attempts got it.",
                     counts, banner, svc, svc.advice() if svc else None)
    failed = [d for o, _, d in atts if o == Outcome.STARTTLS_FAILED]
    if failed:
        why = Counter(failed).most_common(1)[0][0]
        return NoTls(STARTTLS_FAILED, f"The STARTTLS preamble failed ({len(failed)}/{n} "
                     f"attempts): {why}; no ClientHello was sent.", counts,
                     advice="Check the service's STARTTLS configuration (certificate, "
                            "enabled TLS), or that --starttls names its protocol.")
    main = Counter(o for o, _, _ in atts).most_common(1)[0][0]
    if all(o in CONNECT_FAILURES for o, _, _ in atts):
        if main == Outcome.REFUSED:
            return NoTls(PORT_CLOSED, f"Nothing listens on the port: every connection was "
                         f"refused (RST to the SYN, {counts[main]}/{n}).", counts)
        if main == Outcome.DNS_ERROR:
            return NoTls(NO_NAME, "The name does not resolve.", counts)
        ways = []
        if counts.get(Outcome.CONNECT_TIMEOUT):
            ways.append(f"the SYN went unanswered ({counts[Outcome.CONNECT_TIMEOUT]}/{n})")
        if counts.get(Outcome.UNREACHABLE):
            ways.append("the network reported the host unreachable "
                        f"({counts[Outcome.UNREACHABLE]}/{n})")
        if counts.get(Outcome.REFUSED):
            ways.append(f"refused ({counts[Outcome.REFUSED]}/{n})")
        return NoTls(UNREACHABLE, "No TCP connection could be made: " + "; ".join(ways)
                     + ": a firewall drops or rejects it, or the host is down.", counts)
    connected = [o for o, _, _ in atts if o not in CONNECT_FAILURES]
    main = Counter(connected).most_common(1)[0][0]
    m = len(connected)
    if main == Outcome.HANG_ACKED:
        return NoTls(SILENT, "The peer accepts TCP connections and never answers a "
                     f"ClientHello ({counts[main]}/{m} connections).", counts)
    if main == Outcome.HANG_UNACKED:
        return NoTls(DROPPED, "TCP connects but the ClientHello is never ACKed "
                     f"({counts[main]}/{m} connections).", counts)
    how = "RST" if main == Outcome.RESET else "FIN"
    return NoTls(CUT, f"Every ClientHello is answered with a TCP {how} before any TLS byte "
                 f"({counts.get(main, 0)}/{m} connections): a TLS server refusing every "
                 "hello sent, or no TLS service at all.", counts)


def _short(banner: str, limit: int = 60) -> str:
    return banner if len(banner) <= limit else banner[:limit].rstrip() + "…"
