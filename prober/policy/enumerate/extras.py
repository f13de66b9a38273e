"""Everything a policy scan asks besides suites and groups: sanity probes, fallback SCSV,
ALPN/OCSP, certificates and SNI, intolerance. Each is a few hellos built once the fact
they rest on (the highest version, its top suite) is known."""

from __future__ import annotations

from collections.abc import Callable

from prober.core.outcome import NO_HELLO
from prober.core.targets import SNI_NONE, Sni
from prober.policy.enumerate import hellos
from prober.policy.enumerate.candidates import ECDSA_SIGALGS, LEGACY_VERSIONS, RSA_SIGALGS
from prober.policy.enumerate.plan import (
    EXTRAS,
    SANITY,
    PlanView,
    Probe,
    Reply,
    Task,
)
from prober.profiles import families, variants
from prober.wire.clienthello import HelloSpec


class OneShot(Task):
    """An extra that is one hello (or a few) built once a fact it needs is known."""

    purpose = EXTRAS

    def __init__(self, key: str, build: Callable[[PlanView], list[Probe] | None]) -> None:
        super().__init__()
        self.key = key
        self.build = build
        self.pending: list[Probe] | None = None
        self.replies: dict[str, Reply] = {}
        self.in_flight = 0

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done:
            return None
        if self.pending is None:
            built = self.build(plan)
            if built is None:
                return None  # not yet
            self.pending = built
            for p in built:
                p.owner = self
        if self.pending:
            p = self.pending.pop(0)
            self.in_flight += 1
            return p
        if not self.in_flight:
            self.done = True
        return None

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.in_flight -= 1
        if not (reply.answered or reply.refused or reply.hrr_group) and \
                self._retry(plan, probe, reply):
            self.in_flight += 1
            return
        self.replies[probe.name] = reply
        if not self.pending and not self.in_flight:
            self.done = True


class Sanity(Task):
    purpose = SANITY

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage
        self.reply: Reply | None = None

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        if self.stage == "end" and not plan.all_but_sanity_done():
            return None
        return self._send(f"sanity/{self.stage}", families.sanity_spec())

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        self.reply = reply
        self.done = True
        if self.stage == "start" and reply.outcome in NO_HELLO:
            plan.stop(f"the endpoint did not take a connection ({reply.outcome}: "
                      f"{reply.detail})")


# -------------------------------------------------------------------------


def _base(plan: PlanView, version: str) -> HelloSpec:
    """A hello the server is known to answer: the version's top suite."""
    return hellos.hello(version, [plan.top_suite(version)])


def fallback_probe(plan: PlanView) -> list[Probe] | None:
    versions = plan.versions_known()
    if versions is None:
        return None
    legacy = [v for v in versions if v in LEGACY_VERSIONS]
    below = [v for v in legacy if v != versions[0]]
    if len(versions) < 2 or not below:
        return []
    v = below[0]
    spec = variants.with_fallback_scsv(_base(plan, v))
    return [Probe("fallback-scsv", EXTRAS, spec, v, data={"max": versions[0]})]


def alpn_probe(plan: PlanView) -> list[Probe] | None:
    top = plan.max_version()
    if top is None:
        return None if not plan.all_versions_refused() else []
    # TLS 1.2 when possible: its OCSP status message is in the clear
    tls12 = plan.supported("TLSv1.2")
    if tls12 is None:
        return None
    v = "TLSv1.2" if tls12 else top
    if v == "SSLv3" or plan.supported(v) is not True:
        return []
    spec = variants.with_extension(_base(plan, v), variants.extension("alpn", ["h2", "http/1.1"]))
    spec = variants.with_extension(spec, variants.extension("status_request"))
    return [Probe("alpn-ocsp", EXTRAS, spec, v)]


def cert_probes(plan: PlanView) -> list[Probe] | None:
    s = plan.supported("TLSv1.3")
    if s is None:
        return None
    if not s:
        return []  # TLS <= 1.2: the suites' authentication already chose each certificate
    if not plan.elims["TLSv1.3"][0].winners:
        return None
    seen = plan.certs_seen("TLSv1.3")
    out = []
    for key, sigalgs in (("RSA", RSA_SIGALGS), ("ECDSA", ECDSA_SIGALGS)):
        if key not in seen:
            spec = variants.with_extension(
                _base(plan, "TLSv1.3"), variants.extension("signature_algorithms", sigalgs))
            out.append(Probe(f"cert/{key.lower()}-only", EXTRAS, spec, "TLSv1.3",
                             data={"key": key}))
    return out


def sni_probe(plan: PlanView) -> list[Probe] | None:
    top = plan.max_version()
    if top is None:
        return None if not plan.all_versions_refused() else []
    if top == "SSLv3":
        return []
    base = _base(plan, top)
    if plan.target_sni:
        return [Probe("cert/no-sni", EXTRAS, base, top, sni=SNI_NONE)]
    first = next((r for p, r in plan.replies if r.answered and r.version == top), None)
    names = [n for n in (first.cert_dns if first else ()) if "*" not in n]
    if not names:
        return []
    return [Probe("cert/sni", EXTRAS, base, top, sni=Sni.named(names[0]),
                  data={"sni": names[0]})]


def intolerance_probes(plan: PlanView) -> list[Probe] | None:
    top = plan.max_version()
    if top is None:
        return None if not plan.all_versions_refused() else []
    tls12 = plan.supported("TLSv1.2")
    if top == "SSLv3" or tls12 is None:
        return None if tls12 is None and top != "SSLv3" else []
    base = _base(plan, top)
    # first: TLS 1.2's long-hello enumeration waits for it (on a TLS 1.2 hello when the
    # server speaks TLS 1.2, as that is where the long hellos go)
    long_base = _base(plan, "TLSv1.2") if tls12 else base
    out = [Probe("intolerance/suites>128", EXTRAS,
                 variants.many_suites(long_base), "TLSv1.2" if tls12 else top,
                 data={"check": "suites>128"})]
    if top == "TLSv1.2":
        spec = hellos.tls13_with_legacy([plan.top_suite(top)])
        out.append(Probe("intolerance/tls13-hello", EXTRAS, spec, top, data={"check": "tls13"}))
    for name, spec in (("hello>512", variants.padded(base, 600)),
                       ("hello>1460", variants.padded(base, 1600)),
                       ("unknown-extension", variants.with_unknown_extension(base)),
                       ("grease", variants.greased(base))):
        out.append(Probe(f"intolerance/{name}", EXTRAS, spec, top, data={"check": name}))
    return out
