"""The vocabulary of a policy scan plan: a :class:`Probe` to send, the :class:`Reply`
distilled from its attempt, and the :class:`Task` base every line of enquiry builds on.
Sans I/O: nothing here touches a socket or a clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prober.core.outcome import REFUSALS
from prober.core.targets import SNI_TARGET, Sni
from prober.wire import registry as reg
from prober.wire.clienthello import HelloSpec

# what a connection was for (the connection counts of the report)
SUITES, VERSIONS, GROUPS, EXTRAS, SANITY = "suites", "versions", "groups", "extras", "sanity"
PURPOSES = (SUITES, VERSIONS, GROUPS, EXTRAS, SANITY)

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
    """One hello to send, plus what it is for."""

    name: str
    purpose: str
    spec: HelloSpec
    version: str | None = None
    sni: Sni = SNI_TARGET
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

    def poll(self, plan: PlanView) -> Probe | None:  # pragma: no cover - interface
        raise NotImplementedError

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:  # pragma: no cover
        raise NotImplementedError

    def _send(self, name: str, spec: HelloSpec, version: str | None = None,
              purpose: str | None = None, sni: Sni = SNI_TARGET, **data: Any) -> Probe:
        self.busy = True
        return Probe(name=name, purpose=purpose or self.purpose, spec=spec, version=version,
                     sni=sni, owner=self, data=data)

    def _retry(self, plan: PlanView, probe: Probe, reply: Reply) -> bool:
        """Queue the same probe again after a non-policy outcome; False when spent."""
        plan.note_error(probe, reply)
        if probe.tries < MAX_RETRIES and not plan.stopped:
            probe.tries += 1
            plan.requeue(probe)
            self.busy = True
            return True
        return False


class SuiteLine(Protocol):
    """One suite-elimination bundle, as the other lines of enquiry read it."""

    version: str
    index: int
    steps: int
    end: str
    remaining: list[int]
    winners: list[int]
    first: Reply | None
    done: bool


class GroupLine(Protocol):
    """One version's group elimination, as the order check reads it."""

    winners: list[str]
    done: bool


class PlanView(Protocol):
    """What a task may ask of the plan it belongs to (the Planner has it all): the tasks
    are written against this, so they need not import the planner that holds them."""

    target_sni: str | None
    replies: list[tuple[Probe, Reply]]
    stopped: bool

    @property
    def elims(self) -> Mapping[str, Sequence[SuiteLine]]: ...
    @property
    def groups(self) -> Mapping[str, GroupLine]: ...
    def all_but_sanity_done(self) -> bool: ...
    def all_versions_refused(self) -> bool: ...
    def all_winners(self, version: str) -> list[int]: ...
    def bundle_gate(self, e: SuiteLine) -> bool | None: ...
    def bundle_winners(self, version: str) -> list[int]: ...
    def bundles_done(self, version: str) -> bool: ...
    def cert_kinds_known(self) -> set[str] | None: ...
    def cert_curve(self, version: str, suite: int) -> str | None: ...
    def certs_seen(self, version: str | None = None) -> set[str]: ...
    def ecdhe_winner(self) -> int: ...
    def group_gate(self, version: str) -> int | bool | None: ...
    def max_version(self) -> str | None: ...
    def note_error(self, probe: Probe, reply: Reply) -> None: ...
    def note_pick(self, version: str, picked: int, offered: tuple[int, ...]) -> None: ...
    def order_settled(self, version: str) -> bool: ...
    def picked_over(self, version: str) -> tuple[int, int] | None: ...
    def preferred(self, version: str, a: int, b: int) -> int | None: ...
    def requeue(self, probe: Probe) -> None: ...
    def server_order(self, version: str) -> bool | None: ...
    def stop(self, reason: str) -> None: ...
    def suite_order(self, version: str) -> list[int] | None: ...
    def suites_done(self, version: str) -> bool: ...
    def supported(self, version: str) -> bool | None: ...
    def tolerates_many_suites(self) -> bool | None: ...
    def top_legacy_version(self) -> str | None: ...
    def top_suite(self, version: str) -> int: ...
    def versions_known(self) -> list[str] | None: ...
    def warn(self, text: str) -> None: ...
    def winner_runs(self, version: str) -> list[list[int]]: ...


def older(a: str | None, b: str) -> bool:
    """Whether version ``a`` is older than ``b``."""
    order = reg.VERSIONS
    return a is not None and a in order and order.index(a) < order.index(b)
