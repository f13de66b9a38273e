"""The vocabulary of a policy scan plan: a :class:`Probe` to send, the :class:`Reply`
distilled from its attempt, and the :class:`Task` base every line of enquiry builds on.
Sans I/O: nothing here touches a socket or a clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prober.wire import registry as reg

if TYPE_CHECKING:
    from prober.policy.enumerate.planner import Planner

# what a connection was for (the connection counts of the report)
SUITES, VERSIONS, GROUPS, EXTRAS, SANITY = "suites", "versions", "groups", "extras", "sanity"
PURPOSES = (SUITES, VERSIONS, GROUPS, EXTRAS, SANITY)

REFUSALS = ("alert", "reset", "eof")
CONNECT_FAILURES = ("refused", "connect-timeout", "unreachable", "dns-error")
MAX_RETRIES = 1
MAX_ERRORS = 8  # non-policy outcomes before the scan stops: the endpoint is not answering


@dataclass(frozen=True)
class Reply:
    """What one attempt told the planner (distilled from an AttemptResult)."""

    outcome: str
    version: str | None = None
    suite: int | None = None
    group: str | None = None
    hrr_group: str | None = None
    alert: str | None = None
    cert_sha256: str | None = None
    cert_key: str | None = None  # "RSA", "ECDSA", ...
    cert_curve: str | None = None  # ECDSA: the key's curve, as the registry names it
    cert_dns: tuple[str, ...] = ()
    sslv2_specs: tuple[int, ...] = ()
    secure_renegotiation: bool | None = None
    extended_master_secret: bool | None = None
    session_ticket: bool | None = None
    ocsp_stapled: bool = False
    alpn: str | None = None
    detail: str = ""

    @property
    def answered(self) -> bool:
        """The server chose a version and a suite (a ServerHello came)."""
        return self.version is not None and self.suite is not None

    @property
    def refused(self) -> bool:
        return not self.answered and self.outcome in REFUSALS


@dataclass(eq=False)
class Probe:
    """One hello to send: a profile document plus what it is for."""

    name: str
    purpose: str
    doc: dict[str, Any]
    version: str | None = None
    # "target": the target's SNI; "none": no SNI; otherwise the SNI to send
    sni: str = "target"
    owner: Any = field(default=None, repr=False)
    tries: int = 0
    data: dict[str, Any] = field(default_factory=dict)


class Task:
    """One line of enquiry. ``poll`` returns a probe when the task can send one now;
    ``feed`` takes its reply. A task has at most one probe in flight."""

    purpose = EXTRAS

    def __init__(self) -> None:
        self.done = False
        self.busy = False

    def poll(self, plan: Planner) -> Probe | None:  # pragma: no cover - interface
        raise NotImplementedError

    def feed(self, plan: Planner, probe: Probe, reply: Reply) -> None:  # pragma: no cover
        raise NotImplementedError

    def _send(self, name: str, doc: dict[str, Any], version: str | None = None,
              purpose: str | None = None, sni: str = "target", **data: Any) -> Probe:
        self.busy = True
        return Probe(name=name, purpose=purpose or self.purpose, doc=doc, version=version,
                     sni=sni, owner=self, data=data)

    def _retry(self, plan: Planner, probe: Probe, reply: Reply) -> bool:
        """Queue the same probe again after a non-policy outcome; False when spent."""
        plan.note_error(probe, reply)
        if probe.tries < MAX_RETRIES and not plan.stopped:
            probe.tries += 1
            plan.requeue(probe)
            self.busy = True
            return True
        return False


def older(a: str | None, b: str) -> bool:
    """Whether version ``a`` is older than ``b``."""
    order = reg.VERSIONS
    return a is not None and a in order and order.index(a) < order.index(b)
