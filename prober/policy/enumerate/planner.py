"""The plan of a policy scan, sans I/O: which hello to send next, given what came back.

A driver asks :meth:`Planner.next_probe` for work while it has free connection slots,
runs each probe as a normal attempt and hands the distilled :class:`Reply` back to
:meth:`Planner.feed`. The planner never sleeps, never opens a socket, and never hands
out more than ``max_connections`` probes, so every edge case is a unit test on replies.

How it keeps connections and wall time down:

* suites: "remove the winner" elimination per version; the first hello of a version is
  also its version probe; TLS 1.2's candidates (more than 128) start in a bundle of at
  most 128 and go on in one long hello once the server is known to read long lists,
  else bundle by bundle (see :mod:`prober.policy.enumerate.suites`);
* order: a hello offering two accepted suites the other way round from a pick already
  seen tells server order from client order; a group-order check rides on it;
* groups: TLS 1.3 with an empty key_share (the HelloRetryRequest names the server's
  favourite among what is left), TLS 1.2 with one accepted ECDHE suite;
* extras (fallback SCSV, ALPN/OCSP, certificates, SNI, intolerance) start as soon as the
  fact they build on is known, every chain runs side by side within the driver's cap, and
  a sanity probe runs first and last.
"""

from __future__ import annotations

from prober.core.outcome import NO_HELLO, Outcome
from prober.policy.enumerate.candidates import LEGACY_VERSIONS, auth_of, bundles, is_ecdhe
from prober.policy.enumerate.extras import (
    OneShot,
    Sanity,
    alpn_probe,
    cert_probes,
    fallback_probe,
    intolerance_probes,
    sni_probe,
)
from prober.policy.enumerate.groups import GroupElimination
from prober.policy.enumerate.order import ChachaCheck, CrossOrder, Merge, OrderCheck
from prober.policy.enumerate.plan import (
    MAX_ERRORS,
    SANITY,
    Probe,
    Reply,
    SuiteLine,
    Task,
)
from prober.policy.enumerate.suites import (
    Elimination,
    KindElimination,
    MergedElimination,
    SSLv2Probe,
)
from prober.profiles import families

TLS_VERSIONS = ("TLSv1.3", *LEGACY_VERSIONS)


class Planner:
    def __init__(self, *, target_sni: str | None = None, max_connections: int = 400) -> None:
        self.target_sni = target_sni
        self.max_connections = max_connections
        self.sent: list[Probe] = []
        self.replies: list[tuple[Probe, Reply]] = []
        self.warnings: list[str] = []
        self.errors = 0
        self.stopped = False
        self.stop_reason = ""
        self.in_flight = 0
        self._requeued: list[Probe] = []
        # every suite pick: (version, picked, what was offered); under server order each
        # says the pick beats everything else offered
        self._picks: dict[str, list[tuple[int, frozenset[int]]]] = {v: [] for v in TLS_VERSIONS}

        self.sanity_start = Sanity("start")
        self.sanity_end = Sanity("end")
        self.elims: dict[str, list[Elimination]] = {
            v: [Elimination(v, i, b) for i, b in enumerate(bundles(v))] for v in TLS_VERSIONS}
        self.merged: dict[str, MergedElimination] = {
            v: MergedElimination(v) for v in TLS_VERSIONS if len(self.elims[v]) > 1}
        self.kinds: dict[str, list[KindElimination]] = {
            v: [KindElimination(v, k) for k in ("RSA", "ECDSA")] for v in LEGACY_VERSIONS}
        self.sslv2 = SSLv2Probe()
        self.groups = {v: GroupElimination(v) for v in ("TLSv1.3", "TLSv1.2")}
        self.orders = {v: OrderCheck(v) for v in TLS_VERSIONS}
        self.cross = {v: CrossOrder(v) for v in TLS_VERSIONS}
        self.merges = {v: Merge(v) for v in TLS_VERSIONS}
        self.chacha = {v: ChachaCheck(v) for v in ("TLSv1.3", "TLSv1.2")}
        self.extras = {
            "intolerance": OneShot("intolerance", intolerance_probes),
            "fallback_scsv": OneShot("fallback_scsv", fallback_probe),
            "alpn": OneShot("alpn", alpn_probe),
            "certificates": OneShot("certificates", cert_probes),
            "sni": OneShot("sni", sni_probe),
        }
        # priority: the first hellos of every line, then the long chains, then the rest
        firsts: list[Task] = [self.sanity_start, *(self.elims[v][0] for v in TLS_VERSIONS),
                              self.sslv2]
        later: list[Task] = [*self.merged.values(),
                             *(e for v in TLS_VERSIONS for e in self.elims[v][1:]),
                             *(k for v in LEGACY_VERSIONS for k in self.kinds[v])]
        self.tasks: list[Task] = [
            *firsts, *later, self.groups["TLSv1.3"], self.groups["TLSv1.2"],
            *self.orders.values(), *self.cross.values(), *self.merges.values(),
            *self.chacha.values(), *self.extras.values(), self.sanity_end]

    # -- the driver's side ------------------------------------------------------------
    def next_probe(self) -> Probe | None:
        if self.stopped:
            self._requeued.clear()  # retries of a stopped scan would only cost connections
            return self._last_sanity()
        if self._requeued:
            return self._issue(self._requeued.pop(0))
        if len(self.sent) >= self.max_connections:
            self.stop(f"stopped at the connection cap ({self.max_connections})")
            return self._last_sanity()
        # a poll may settle a task that an earlier one in the same pass waits on: pass
        # again while anything changed (bounded: each pass settles at least one task)
        for _ in range(len(self.tasks) + 1):
            before = self._signature()
            for t in self.tasks:
                p = t.poll(self)
                if p is not None:
                    return self._issue(p)
            if self._signature() == before:
                break
        return None

    def _signature(self) -> tuple[object, ...]:
        return tuple((t.done, getattr(t, "state", None)) for t in self.tasks)

    def feed(self, probe: Probe, reply: Reply) -> None:
        self.in_flight -= 1
        self.replies.append((probe, reply))
        if reply.outcome == Outcome.REFUSED:
            # RST to the SYN: nothing listens there (any more); no hello can tell more
            self.stop(f"connection refused ({probe.name}): nothing listens on the port")
        probe.owner.feed(self, probe, reply)

    @property
    def finished(self) -> bool:
        if self.in_flight or self._requeued:
            return False
        if self.stopped:
            start = self.sanity_start.reply
            return self.sanity_end.done or start is None or start.outcome in NO_HELLO
        return all(t.done for t in self.tasks)

    def _issue(self, p: Probe) -> Probe:
        self.sent.append(p)
        self.in_flight += 1
        return p

    def _last_sanity(self) -> Probe | None:
        # after an early stop the closing sanity probe still tells "dying" from "flaky",
        # unless the very first connection already failed
        start = self.sanity_start.reply
        if self.in_flight or self.sanity_end.done or self.sanity_end.busy or start is None \
                or start.outcome in NO_HELLO:
            return None
        self.sanity_end.busy = True
        return self._issue(Probe("sanity/end", SANITY, families.sanity_spec(),
                                 owner=self.sanity_end))

    # -- used by tasks ----------------------------------------------------------------
    def requeue(self, probe: Probe) -> None:
        self._requeued.append(probe)

    def stop(self, reason: str) -> None:
        if not self.stopped:
            self.stopped = True
            self.stop_reason = reason
            self.warn(f"scan stopped early: {reason}")

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def note_error(self, probe: Probe, reply: Reply) -> None:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            self.stop(f"{self.errors} attempts without a usable answer (last: {probe.name} "
                      f"{reply.outcome})")

    def all_but_sanity_done(self) -> bool:
        return not self.in_flight and not self._requeued and all(
            t.done for t in self.tasks if t is not self.sanity_end)

    # -- suites -----------------------------------------------------------------------
    def note_pick(self, version: str, picked: int, offered: tuple[int, ...]) -> None:
        self._picks[version].append((picked, frozenset(offered)))

    def preferred(self, version: str, a: int, b: int) -> int | None:
        """Which of two suites the server prefers, as far as earlier picks tell (each pick
        beats everything offered with it, and beating is transitive); server order only."""
        if self._beats(version, a, b):
            return a
        if self._beats(version, b, a):
            return b
        return None

    def _beats(self, version: str, a: int, b: int) -> bool:
        seen, todo = {a}, [a]
        winners = self._winner_set(version)
        while todo:
            x = todo.pop()
            for picked, offered in self._picks[version]:
                if picked != x:
                    continue
                if b in offered:
                    return True
                # only winners can lead further: a loser never picked beats nothing known
                todo += [w for w in offered if w not in seen and w in winners]
                seen.update(offered)
        return False

    def _winner_set(self, version: str) -> set[int]:
        return {p for p, _o in self._picks[version]}

    def picked_over(self, version: str) -> tuple[int, int] | None:
        """(x, y): two accepted suites, x picked from a hello that also offered y."""
        winners = self.all_winners(version)
        for picked, offered in self._picks[version]:
            for w in winners:
                if w != picked and w in offered:
                    return picked, w
        return None

    def all_winners(self, version: str) -> list[int]:
        return [s for run in self.winner_runs(version) for s in run]

    def winner_runs(self, version: str) -> list[list[int]]:
        """Winner sequences each known to be in the server's order among themselves."""
        es = self.elims.get(version, [])
        runs = [es[0].winners] if es else []
        m = self.merged.get(version)
        if m is not None:
            runs.append(m.winners)
        runs += [e.winners for e in es[1:]]
        runs += [k.winners for k in self.kinds.get(version, [])]
        return [list(r) for r in runs if r]

    def bundle_winners(self, version: str) -> list[int]:
        """The winners of the bundles and the merged chain (not of the kind chains)."""
        es = self.elims.get(version, [])
        m = self.merged.get(version)
        return [s for e in es for s in e.winners] + (list(m.winners) if m is not None else [])

    def bundles_done(self, version: str) -> bool:
        m = self.merged.get(version)
        return all(e.done for e in self.elims[version]) and (m is None or m.done)

    def cert_kinds_known(self) -> set[str] | None:
        """Certificate key types seen in any answer, once the TLS 1.3 certificate probes
        (which ask for each type) are done or known not to run; None until then."""
        if self.supported("TLSv1.3") is None:
            return None
        if self.supported("TLSv1.3") and not self.extras["certificates"].done:
            return None
        return self.certs_seen()

    def top_legacy_version(self) -> str | None:
        """The highest TLS <= 1.2 version with a winner, once no higher one can appear."""
        for v in LEGACY_VERSIONS:
            s = self.supported(v)
            if s is None:
                return None
            if s:
                return v
        return None

    def suite_order(self, version: str) -> list[int] | None:
        """The version's accepted suites in the server's order (or the client's), once
        enumeration, order checks and merge are all done; None until then."""
        m = self.merges[version]
        if not m.done or m.merged is None:
            return None
        return list(m.merged)

    def suites_done(self, version: str) -> bool:
        return self.bundles_done(version) and all(k.done for k in self.kinds.get(version, []))

    def bundle_gate(self, e: SuiteLine) -> bool | None:
        """True: the bundle may send; False: it is finished without sending; None: wait."""
        first = self.elims[e.version][0]
        m = self.merged.get(e.version)
        if e.index == 0 and e.steps == 0:
            return True
        if e.index > 0:
            if first.first is None and not first.done:
                return None
            r = first.first
            if first.end == "unsupported" or (
                    r is not None and r.refused and r.alert == "protocol_version"):
                # a protocol_version alert rules the version out; any other refusal may
                # be about the first bundle's suites only
                return False
        if m is None or m.state in ("off", "fallback"):
            return True
        if m.state == "conclusive":
            e.end = "merged"
            return False
        return None  # the merged chain is deciding

    def tolerates_many_suites(self) -> bool | None:
        """The ">128 suites" intolerance check: None until it is answered."""
        task = self.extras["intolerance"]
        r = task.replies.get("intolerance/suites>128")
        if r is not None:
            return r.answered
        return False if task.done else None

    def server_order(self, version: str) -> bool | None:
        o = self.orders[version]
        if o.suite_verdict is not None:
            return o.suite_verdict
        return self.cross[version].verdict

    def order_settled(self, version: str) -> bool:
        return self.orders[version].done and self.cross[version].done

    # -- facts the gates need -----------------------------------------------------------
    def supported(self, version: str) -> bool | None:
        """True/False once known, None while the version's hellos are still out."""
        if version == "SSLv2":
            return bool(self.sslv2.specs) if self.sslv2.done else None
        if self.all_winners(version):
            return True
        es = self.elims[version]
        if es[0].end == "unsupported" or self.suites_done(version):
            return False
        return None

    def top_suite(self, version: str) -> int:
        winners = self.all_winners(version)
        if not winners:
            raise LookupError(version)
        return winners[0]

    def ecdhe_winner(self) -> int:
        """An accepted TLS 1.2 ECDHE suite, RSA-signed when there is one (an ECDSA one
        ties the curve list to the certificate's curve)."""
        ecdhe = [s for s in self.all_winners("TLSv1.2") if is_ecdhe(s)]
        if not ecdhe:
            raise LookupError("no ECDHE suite")
        return next((s for s in ecdhe if auth_of(s) == "RSA"), ecdhe[0])

    def cert_curve(self, version: str, suite: int) -> str | None:
        """The curve of the certificate served with ``suite`` at ``version``."""
        for _p, r in self.replies:
            if r.version == version and r.suite == suite and r.cert_curve:
                return r.cert_curve
        return None

    def group_gate(self, version: str) -> int | bool | None:
        """The suite a group hello offers; False: no group enumeration; None: wait."""
        if version == "TLSv1.3":
            s = self.supported(version)
            if s is None:
                return None
            return self.top_suite(version) if s else False
        ecdhe = [s for s in self.all_winners("TLSv1.2") if is_ecdhe(s)]
        rsa = [s for s in ecdhe if auth_of(s) == "RSA"]
        if rsa:
            return rsa[0]
        if not self.suites_done("TLSv1.2"):
            return None  # an RSA-signed one may still turn up (see GroupElimination)
        return ecdhe[0] if ecdhe else False

    def versions_known(self) -> list[str] | None:
        """Accepted versions, newest first, once every version is decided."""
        out = []
        for v in (*TLS_VERSIONS, "SSLv2"):
            s = self.supported(v)
            if s is None:
                return None
            if s:
                out.append(v)
        return out

    def all_versions_refused(self) -> bool:
        return self.versions_known() == []

    def max_version(self) -> str | None:
        """The highest version with a winner, as soon as no higher one can appear."""
        for v in TLS_VERSIONS:
            s = self.supported(v)
            if s is None:
                return None
            if s:
                return v
        return None

    def certs_seen(self, version: str | None = None) -> set[str]:
        return {r.cert_key for p, r in self.replies
                if r.cert_key and r.answered and (version is None or r.version == version)}
