"""Findings, and the view of a run that the rules read.

A diagnose run and a probe run are both JSON documents. The rules read either one
through :class:`RunView`, so a live run, a saved file and both sides of ``prober diff``
are judged by the same code, with no socket or clock in sight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prober.core.outcome import ANSWERED, NO_HELLO
from prober.core.service import NoTls, no_tls
from prober.net.idle import IdleProbe
from prober.profiles.families import PROFILE_VERSIONS
from prober.wire import peertext

DIAGNOSE_SCHEMA = "prober.diagnose/2"

# confidence of a finding; "info" is reserved for the policy summary
HIGH, MEDIUM, LOW, INFO = "high", "medium", "low", "info"
CONFIDENCE_ORDER = {HIGH: 0, MEDIUM: 1, LOW: 2, INFO: 3}

# stable finding ids (a contract: the namespace lab and users match on them)
POLICY = "policy"
POLICY_ALERT = "policy-alert"
POLICY_RESET = "policy-reset"
SILENT_PROXY = "silent-proxy"
NEAR_TCP_TERMINATOR = "near-tcp-terminator"
INJECTED_RESET = "injected-reset"
SNI_RESET = "sni-reset"
SNI_DROP = "sni-drop"
SIZE_DROP = "size-drop"
SEGMENTATION_DROP = "segmentation-drop"
DPI_FRAGMENTATION = "dpi-fragmentation"
INTERMITTENT = "intermittent"
INAPPROPRIATE_FALLBACK = "inappropriate-fallback"
MTU_BLACKHOLE = "mtu-blackhole"
IDLE_TIMEOUT = "idle-timeout"
TLS_INTERCEPTION = "tls-interception"
ENDPOINT_FLAPPING = "endpoint-flapping"
# no listed cause fits: every ClientHello vanishes unACKed whatever its size or SNI
PATH_DROP = "path-drop"
# `prober diff` only: the two runs differ in a way no other id names
PATH_DIFFERENCE = "path-difference"
# nothing TLS-like was measured (core.service.no_tls): what answered instead
WRONG_SERVICE = "wrong-service"  # another protocol (HTTP, SSH, a mail greeting ...)
PORT_CLOSED = "port-closed"  # every SYN answered with RST: nothing listens
ENDPOINT_UNREACHABLE = "endpoint-unreachable"  # no TCP connection at all
STARTTLS_FAILED = "starttls-failed"  # every STARTTLS preamble failed
# server policies and behaviours that break some clients
SNI_REQUIRED = "sni-required"  # the server refuses hellos without (or with another) SNI
CLIENT_CERTIFICATE = "client-certificate"  # the server asks for a client certificate
MIXED_CERTIFICATES = "mixed-certificates"  # backends differ only in their certificate
VERSION_INTOLERANCE = "version-intolerance"  # hellos with supported_versions are cut
# path behaviours
SIZE_WINDOW = "size-window"  # hellos within a size window are dropped, both sides pass
RATE_LIMITED = "rate-limited"  # new connections above a rate are refused
LOSSY_PATH = "lossy-path"  # TCP had to retransmit on many connections

FINDING_IDS = (POLICY, POLICY_ALERT, POLICY_RESET, SILENT_PROXY, NEAR_TCP_TERMINATOR,
               INJECTED_RESET, SNI_RESET, SNI_DROP, SIZE_DROP, SEGMENTATION_DROP,
               DPI_FRAGMENTATION, INTERMITTENT, INAPPROPRIATE_FALLBACK, MTU_BLACKHOLE,
               IDLE_TIMEOUT, TLS_INTERCEPTION, ENDPOINT_FLAPPING, PATH_DROP, PATH_DIFFERENCE,
               WRONG_SERVICE, PORT_CLOSED, ENDPOINT_UNREACHABLE, STARTTLS_FAILED, SNI_REQUIRED,
               CLIENT_CERTIFICATE, MIXED_CERTIFICATES, VERSION_INTOLERANCE, SIZE_WINDOW,
               RATE_LIMITED, LOSSY_PATH)
# what the server is configured to do rather than a fault on its path: a fleet run counts
# these as `info`, so refusing TLS 1.0 by alert or by RST fails no `--fail-on high` gate
SERVER_POLICY = frozenset({POLICY, POLICY_ALERT, POLICY_RESET, SNI_REQUIRED,
                           CLIENT_CERTIFICATE})

# outcome classes the rules reason with
# idle-timeout probe results that mean the path (or the peer) dropped the connection
FAILED_IDLE = frozenset({"reset", "closed", "blackholed"})

# plan steps (diagnose attempts carry one; probe attempts get one from their profile name)
STEP_SANITY_FIRST = "sanity-first"
STEP_SANITY_LAST = "sanity-last"
STEP_SWEEP = "sweep"
# the version sweep again without SNI, when every hello naming the target was filtered
STEP_SWEEP_NO_SNI = "sweep-no-sni"
# the profile names of that sweep: "tls1.2-only@no-sni"
NO_SNI_SUFFIX = "@no-sni"
STEP_REPEAT = "repeat"
STEP_SNI = "sni"
STEP_SIZE = "size"
STEP_BISECT = "bisect"
STEP_RECORDS = "records"
STEP_SEGMENTS = "segments"
STEP_FALLBACK = "fallback"
# the known-good TLS <= 1.2 hello with a supported_versions extension naming its version
STEP_INTOLERANCE = "intolerance"
# the version sweep again, when the repeats met several certificates: do the backends
# differ in what they accept too, or only in their certificate?
STEP_BACKENDS = "backends"
STEP_OTHER = "other"

# every version profile, as a probe run may hold sslv2-only too
SWEEP_VERSIONS = PROFILE_VERSIONS
# the diagnose sweep, oldest first: it starts at SSLv3
SWEEP_PROFILES = tuple(p for p, v in SWEEP_VERSIONS.items() if v != "SSLv2")
# the sweep's versions, oldest first
SWEEP_ORDER = tuple(SWEEP_VERSIONS[p] for p in SWEEP_PROFILES)
# newest first: the versions below TLS 1.2 (deprecated by RFC 8996), and the rest
LEGACY = tuple(reversed(SWEEP_ORDER[:SWEEP_ORDER.index("TLSv1.2")]))
MODERN = SWEEP_ORDER[SWEEP_ORDER.index("TLSv1.2"):]


@dataclass
class Finding:
    id: str
    confidence: str
    cause: str  # one line, in words an operator acts on
    next: str  # what to do next
    evidence: list[str] = field(default_factory=list)  # lines with the figures
    attempts: list[int] = field(default_factory=list)  # attempt ids that show it
    figures: dict[str, Any] = field(default_factory=dict)  # the numbers, for machines
    unchecked: list[str] = field(default_factory=list)  # what could not be checked

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "confidence": self.confidence, "cause": self.cause,
                "next": self.next, "evidence": self.evidence, "attempts": self.attempts,
                "figures": self.figures, "unchecked": self.unchecked}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Finding:
        return cls(id=str(d["id"]), confidence=str(d.get("confidence", LOW)),
                   cause=str(d.get("cause", "")), next=str(d.get("next", "")),
                   evidence=[str(x) for x in d.get("evidence", [])],
                   attempts=[int(x) for x in d.get("attempts", [])],
                   figures=dict(d.get("figures", {})),
                   unchecked=[str(x) for x in d.get("unchecked", [])])


@dataclass(frozen=True)
class Packet:
    """One captured packet of an attempt (``--capture``)."""

    t_ms: float  # since the attempt started
    incoming: bool
    flags: str  # "S", "SA", "A", "PA", "FA", "R", "RA", ...
    ttl: int
    ip_id: int | None  # None for IPv6
    window: int
    length: int  # TCP payload bytes

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Packet:
        return cls(t_ms=float(d["t_ms"]), incoming=d["dir"] == "in", flags=str(d["flags"]),
                   ttl=int(d["ttl"]), ip_id=None if d.get("ip_id") is None else int(d["ip_id"]),
                   window=int(d.get("win", 0)), length=int(d.get("len", 0)))


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True)
class Seen:
    """One attempt as the rules see it (read from its JSON form)."""

    id: int
    step: str
    profile: str
    outcome: str
    detail: str
    sni: str | None = None
    alert: str | None = None
    version: str | None = None
    suite: str | None = None
    connect_ms: float | None = None
    sent_ms: float | None = None
    acked_ms: float | None = None
    first_ms: float | None = None
    total_ms: float | None = None
    acked: bool | None = None
    end: str | None = None
    local_port: int | None = None
    started_at: float = 0.0
    hello_bytes: int = 0
    server_bytes: int = 0
    server_messages: tuple[str, ...] = ()
    cert_sha256: str | None = None
    cert_issuer: str | None = None
    cert_subject: str | None = None
    cert_not_after: str | None = None
    cert_request: bool = False  # the server asked for a client certificate
    cert_request_cas: tuple[str, ...] = ()  # ... from these issuers
    banner: str | None = None  # what a non-TLS peer sent
    retransmits: int | None = None  # segments TCP retransmitted (TCP_INFO)
    retry_of: int | None = None  # the attempt this one repeats after a back-off
    rtt_us: int | None = None
    snd_mss: int | None = None  # TCP's send MSS on this connection (TCP_INFO)
    packets: tuple[Packet, ...] | None = None  # None: not captured
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.outcome in ANSWERED

    @property
    def connected(self) -> bool:
        """A ClientHello went out (TCP connected, and any STARTTLS preamble passed)."""
        return self.outcome not in NO_HELLO

    def after_hello_ms(self) -> float | None:
        """How long after the ClientHello went out the attempt ended (RST, FIN, timeout)."""
        if self.total_ms is None or self.sent_ms is None:
            return None
        return self.total_ms - self.sent_ms

    def first_after_hello_ms(self) -> float | None:
        if self.first_ms is None or self.sent_ms is None:
            return None
        return self.first_ms - self.sent_ms

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Seen:
        t = d.get("timings_ms") or {}
        tcp = d.get("tcp") or {}
        neg = d.get("negotiated") or {}
        cert = d.get("certificate") or {}
        alert = d.get("alert") or {}
        pk = d.get("packets")
        profile = str(d.get("profile", ""))
        known = {"step", "reference", "size_target", "pq", "fallback_version", "accepted",
                 "sni_variant", "record_sizes", "segment_sizes", "pause_ms"}
        return cls(
            id=int(d["id"]), step=str(d.get("step") or step_of(profile)), profile=profile,
            outcome=str(d.get("outcome", "")), detail=str(d.get("detail", "")),
            sni=d.get("sni"), alert=alert.get("description"), version=neg.get("version"),
            suite=neg.get("suite"), connect_ms=_f(t.get("connect")),
            sent_ms=_f(t.get("hello_sent")), acked_ms=_f(t.get("hello_acked")),
            first_ms=_f(t.get("first_byte")), total_ms=_f(t.get("total")),
            acked=tcp.get("acked"), end=d.get("end"), local_port=d.get("local_port"),
            started_at=float(d.get("started_at") or 0.0),
            hello_bytes=int(d.get("hello_bytes") or 0),
            server_bytes=int(d.get("server_bytes") or 0),
            server_messages=tuple(d.get("server_messages") or ()),
            cert_sha256=cert.get("sha256"), cert_issuer=cert.get("issuer"),
            cert_subject=cert.get("subject"), cert_not_after=cert.get("not_after"),
            cert_request=bool(neg.get("certificate_request")),
            cert_request_cas=tuple(neg.get("certificate_request_cas") or ()),
            banner=d.get("banner"), retransmits=tcp.get("retransmits"),
            retry_of=d.get("retry_of"),
            rtt_us=tcp.get("rtt_us"),
            snd_mss=tcp.get("snd_mss"),
            packets=None if pk is None else tuple(Packet.from_json(p) for p in pk),
            meta={k: v for k, v in d.items() if k in known},
        )


def step_of(profile: str) -> str:
    """The plan step a profile name belongs to (for probe runs, which carry no step)."""
    if profile in SWEEP_VERSIONS:
        return STEP_SWEEP
    if profile.endswith(NO_SNI_SUFFIX) and profile[:-len(NO_SNI_SUFFIX)] in SWEEP_VERSIONS:
        return STEP_SWEEP_NO_SNI
    prefix = profile.split(":", 1)[0].split("@", 1)[0]
    return {"sanity": STEP_SANITY_FIRST if profile.endswith("@first") else STEP_SANITY_LAST,
            "known-good": STEP_REPEAT, "sni": STEP_SNI, "size": STEP_SIZE,
            "records": STEP_RECORDS, "segments": STEP_SEGMENTS,
            "fallback-scsv": STEP_FALLBACK,
            "supported-versions": STEP_INTOLERANCE}.get(prefix, STEP_OTHER)


@dataclass(frozen=True)
class Control:
    """The connect-and-wait control: what the peer does when the client sends nothing."""

    outcome: str  # silent | banner | fin | rst | refused | connect-timeout | unreachable
    connect_ms: float | None
    waited_ms: float
    banner: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome,
                "connect_ms": None if self.connect_ms is None else round(self.connect_ms, 3),
                "waited_ms": round(self.waited_ms, 3),
                "banner": None if self.banner is None else peertext.json_value(self.banner)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Control:
        return cls(outcome=str(d["outcome"]), connect_ms=_f(d.get("connect_ms")),
                   waited_ms=float(d.get("waited_ms") or 0.0),
                   banner=peertext.from_json(d.get("banner")))

    def text(self) -> str:
        s = self.waited_ms / 1000
        return {
            "silent": f"stayed silent for {s:.1f} s (as a TLS server should)",
            "banner": f"spoke first: {self.banner!r}",
            "fin": f"closed with FIN after {s:.1f} s",
            "rst": f"reset the connection after {s:.1f} s",
            "starttls-failed": f"failed its STARTTLS preamble ({self.banner})",
        }.get(self.outcome, f"could not connect ({self.outcome})")


@dataclass(frozen=True)
class IdleResult:
    max_s: float
    probes: tuple[IdleProbe, ...]

    def to_json(self) -> dict[str, Any]:
        return {"max_s": self.max_s, "probes": [p.to_json() for p in self.probes]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IdleResult:
        return cls(max_s=float(d["max_s"]),
                   probes=tuple(IdleProbe.from_json(p) for p in d.get("probes", [])))


def idle_bounds(probes: Iterable[IdleProbe]) -> tuple[float, float] | None:
    """(lo, hi) of the idle timeout: the longest wait that stayed alive below ``hi``, and
    the shortest that failed (where the peer closed while idling: when it closed); None
    when no probe failed. The plan refines this interval, the rule reports it."""
    probes = list(probes)
    bad = [p for p in probes if p.result in FAILED_IDLE]
    if not bad:
        return None
    closed = [p.closed_after_s for p in bad if p.closed_after_s is not None]
    hi = min(closed) if closed else min(p.wait_s for p in bad)
    lo = max((p.wait_s for p in probes if p.result == "alive" and p.wait_s < hi), default=0.0)
    return lo, hi


@dataclass
class RunView:
    """Everything the rules may look at, nothing else."""

    target: str
    sni: str | None  # the real SNI (None: the target is an address without --sni)
    # every attempt whose result stands: one that was retried after a back-off is in
    # ``retried`` instead, and its last retry here (only the rate-limit rule reads both)
    attempts: list[Seen]
    reference: str | None = None  # the known-good profile the variants are built on
    control: Control | None = None
    idle: IdleResult | None = None
    capture: str | None = None  # None: not asked; "ok"; else why no raw socket
    expect_issuer: str | None = None
    pins: list[str] = field(default_factory=list)
    complete: bool = True
    retried: list[Seen] = field(default_factory=list)

    def of_step(self, *steps: str) -> list[Seen]:
        return [a for a in self.attempts if a.step in steps]

    def of_profile(self, profile: str) -> list[Seen]:
        return [a for a in self.attempts if a.profile == profile]

    def no_tls(self) -> NoTls | None:
        """Why nothing TLS-like was measured, or None when something was."""
        return no_tls((a.outcome, a.banner, a.detail) for a in self.attempts)


def view_from_doc(doc: dict[str, Any]) -> RunView:
    """A RunView of a diagnose or probe document (raises KeyError/ValueError on bad input)."""
    targets = doc.get("targets") or ([doc["target"]] if doc.get("target") else [])
    first = targets[0] if targets else {}
    every = [Seen.from_json(a) for a in doc.get("attempts", [])]
    redone = {a.retry_of for a in every if a.retry_of is not None}
    attempts = [a for a in every if a.id not in redone]
    sni = first.get("sni")
    if sni is None:
        # a probe run's SNI is the attempts' (some profiles send none)
        sni = next((a.sni for a in attempts if a.sni), None)
    ctl = doc.get("control")
    idle = doc.get("idle")
    cap = doc.get("capture") or {}
    opts = doc.get("options") or {}
    ref = doc.get("reference") or {}
    return RunView(
        target=str(first.get("target", "?")), sni=sni, attempts=attempts,
        reference=ref.get("profile") if isinstance(ref, dict) else None,
        control=Control.from_json(ctl) if ctl else None,
        idle=IdleResult.from_json(idle) if idle else None,
        capture=None if not cap.get("requested") else (
            "ok" if cap.get("available") else str(cap.get("reason") or "unavailable")),
        expect_issuer=opts.get("expect_issuer"), pins=list(opts.get("pin_sha256") or []),
        complete=bool(doc.get("complete", True)),
        retried=[a for a in every if a.id in redone],
    )
