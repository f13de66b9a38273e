"""Suite enumeration: remove-the-winner per bundle and the merged chain over all bundles
(the order checks and the merge of winner runs are in :mod:`prober.policy.enumerate.order`).

A version whose candidates fit one hello (TLS 1.0/1.1, SSLv3, TLS 1.3) is one
:class:`Elimination`. TLS 1.2 has more than 128 candidates: its first bundle's first
hello is the version probe (at most 128 suites, safe for intolerant servers); once that
is answered, :class:`MergedElimination` goes on with every remaining candidate in one
hello. A refusal of such a big hello ends the version only when the ">128 suites"
intolerance check says the server reads long lists; otherwise the bundles go on apart
(:class:`Elimination` per bundle) and ``order.Merge`` interleaves their winners.
"""

from __future__ import annotations

from prober.policy.enumerate import hellos
from prober.policy.enumerate.candidates import BUNDLE_CAP, auth_of, candidate_index, neutral
from prober.policy.enumerate.plan import EXTRAS, SUITES, PlanView, Probe, Reply, Task, older
from prober.profiles import families
from prober.wire import registry as reg


class Elimination(Task):
    """Remove-the-winner over one bundle of one version."""

    purpose = SUITES

    def __init__(self, version: str, index: int, candidates: tuple[int, ...]) -> None:
        super().__init__()
        self.version = version
        self.index = index
        self.remaining = list(candidates)
        self.winners: list[int] = []
        self.first: Reply | None = None
        self.end = ""  # refused | unsupported | exhausted | incomplete | skipped | merged
        self.steps = 0

    @property
    def label(self) -> str:
        return f"{self.version}/{'abcdefgh'[self.index]}"

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        gate = plan.bundle_gate(self)
        if gate is None:
            return None
        if not gate:
            self.finish(self.end or "skipped")
            return None
        if not self.remaining:
            # every candidate was accepted: nothing left to refuse
            self.finish("exhausted")
            return None
        self.steps += 1
        return self._send(f"{self.label}{self.steps}",
                          hellos.hello(self.version, neutral(self.version, self.remaining)),
                          self.version, offered=tuple(self.remaining))

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        if self.first is None and (reply.answered or reply.refused):
            self.first = reply
        if reply.answered and reply.version == self.version and reply.suite in self.remaining:
            assert reply.suite is not None
            self.remaining.remove(reply.suite)
            self.winners.append(reply.suite)
            plan.note_pick(self.version, reply.suite, probe.data["offered"])
            return
        if reply.answered:
            if self.steps == 1 and older(reply.version, self.version):
                # the server answered an older version: this one is not supported
                self.finish("unsupported")
            else:
                plan.warn(f"{self.label}: the server chose {reply.version} "
                          f"{reg.suite_name(reply.suite or 0)}, outside what was offered")
                self.finish("incomplete")
            return
        if reply.refused:
            self.finish("refused")
            return
        if not self._retry(plan, probe, reply):
            plan.warn(f"{self.label}: no usable answer ({reply.outcome}: {reply.detail}); "
                      f"the suites of {self.version} may be incomplete")
            self.finish("incomplete")

    def finish(self, end: str) -> None:
        self.end = end
        self.done = True


class MergedElimination(Task):
    """Remove-the-winner over all bundles of a version at once (hellos of >128 suites),
    started once the first bundle's first hello was answered."""

    purpose = SUITES

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.remaining: list[int] | None = None
        self.winners: list[int] = []
        self.steps = 0
        self.state = "idle"  # idle | running | unsure | conclusive | fallback | off

    @property
    def active(self) -> bool:
        return self.state in ("running", "unsure")

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        if self.state == "idle":
            first = plan.elims[self.version][0]
            if first.first is None and not first.done:
                return None
            if first.winners:
                idx = candidate_index(self.version)
                left = [s for e in plan.elims[self.version] for s in e.remaining]
                self.remaining = sorted(left, key=lambda s: idx.get(s, 0))
                self.state = "running"
            else:
                self._end("off")
                return None
        if self.state == "unsure":
            # a long hello was refused: conclusive only if the server reads long lists
            verdict = plan.tolerates_many_suites()
            if verdict is None:
                return None
            self._end("conclusive" if verdict else "fallback")
            return None
        assert self.remaining is not None
        if not self.remaining:
            self._end("conclusive")
            return None
        self.steps += 1
        return self._send(f"{self.version}/all{self.steps}",
                          hellos.hello(self.version, neutral(self.version, self.remaining)),
                          self.version, offered=tuple(self.remaining))

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        assert self.remaining is not None
        if reply.answered and reply.version == self.version and reply.suite in self.remaining:
            assert reply.suite is not None
            self.remaining.remove(reply.suite)
            self.winners.append(reply.suite)
            for e in plan.elims[self.version]:
                if reply.suite in e.remaining:
                    e.remaining.remove(reply.suite)
            plan.note_pick(self.version, reply.suite, probe.data["offered"])
            return
        # refused, or anything else a long hello can provoke in an intolerant server:
        # the intolerance check decides, no retry
        self.state = "unsure"

    def _end(self, state: str) -> None:
        self.state = state
        self.done = True


class KindElimination(Task):
    """Remove-the-winner over the suites of one certificate kind (RSA or ECDSA) that the
    bundles found none of.

    A server with two certificates may choose one before it looks at suites: HAProxy takes
    its ECDSA certificate for any hello that offers an ECDSA suite and ECDSA signatures, so
    a hello offering everything never reaches its RSA suites. A hello offering only the
    other kind's suites does. It is sent where that certificate is known to exist (seen in
    any answer, e.g. the TLS 1.3 certificate probes) or, without TLS 1.3 to ask, at the
    highest legacy version; its first hello is counted as a certificate check (extras)."""

    purpose = SUITES

    def __init__(self, version: str, kind: str) -> None:
        super().__init__()
        self.version = version
        self.kind = kind
        self.remaining: list[int] | None = None
        self.winners: list[int] = []
        self.steps = 0

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        v = self.version
        if self.remaining is None:
            if not plan.bundles_done(v):
                return None
            won = plan.bundle_winners(v)
            if not won or any(auth_of(s) == self.kind for s in won):
                self.done = True
                return None
            kinds = plan.cert_kinds_known()
            if kinds is None:
                return None  # the TLS 1.3 certificate probes may still tell
            top = plan.top_legacy_version()
            if top is None:
                return None
            if self.kind not in kinds and not (v == top and plan.supported("TLSv1.3") is False):
                self.done = True
                return None
            idx = candidate_index(v)
            left = {s for e in plan.elims[v] for s in e.remaining}
            self.remaining = sorted((s for s in left if auth_of(s) == self.kind),
                                    key=lambda s: idx.get(s, 0))[:BUNDLE_CAP]
        if not self.remaining:
            self.done = True
            return None
        self.steps += 1
        return self._send(f"{v}/{self.kind.lower()}{self.steps}",
                          hellos.hello(v, neutral(v, self.remaining)), v,
                          purpose=SUITES if self.winners else EXTRAS,
                          offered=tuple(self.remaining))

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        assert self.remaining is not None
        if reply.answered and reply.version == self.version and reply.suite in self.remaining:
            assert reply.suite is not None
            self.remaining.remove(reply.suite)
            self.winners.append(reply.suite)
            plan.note_pick(self.version, reply.suite, probe.data["offered"])
            return
        if not reply.answered and not reply.refused and self._retry(plan, probe, reply):
            return
        if reply.answered:
            plan.warn(f"{self.version}/{self.kind.lower()}: the server chose {reply.version} "
                      f"{reg.suite_name(reply.suite or 0)}, outside what was offered")
        self.done = True


class SSLv2Probe(Task):
    purpose = SUITES

    def __init__(self) -> None:
        super().__init__()
        self.reply: Reply | None = None

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        return self._send("SSLv2/a1", families.version_profile("sslv2-only").spec, "SSLv2")

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        if reply.answered or reply.refused or not self._retry(plan, probe, reply):
            self.reply = reply
            self.done = True

    @property
    def specs(self) -> list[int]:
        r = self.reply
        return list(r.sslv2_specs) if r is not None and r.answered else []
