"""Group enumeration: remove-the-winner over supported_groups."""

from __future__ import annotations

from prober.policy.enumerate import hellos
from prober.policy.enumerate.candidates import auth_of, tls12_ecdhe_groups, tls13_groups
from prober.policy.enumerate.plan import GROUPS, PlanView, Probe, Reply, Task


class GroupElimination(Task):
    """Remove-the-winner over groups. TLS 1.3: an empty key_share makes the server name its
    favourite remaining group in a HelloRetryRequest. TLS 1.2: one accepted ECDHE suite;
    the ServerKeyExchange names the curve.

    TLS 1.2 with an ECDHE_ECDSA suite only: the server can use its certificate only while
    the certificate's curve is offered (RFC 8422 5.1), so that curve stays in the list,
    last; picked a second time, it ends the list (``pinned``: later curves unknown unless
    the server follows the client's order)."""

    purpose = GROUPS

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.remaining = list(tls13_groups() if version == "TLSv1.3" else tls12_ecdhe_groups())
        self.winners: list[str] = []
        self.skipped = False
        self.hrr: bool | None = None
        self.share_mode = False  # the server refused an empty key_share
        self.incomplete = False
        self.steps = 0
        self.suite: int | None = None
        self.pin: str | None = None  # the ECDSA certificate's curve (TLS 1.2)
        self.pinned = False

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        if self.suite is None:
            gate = plan.group_gate(self.version)
            if gate is None:
                return None
            if gate is False:
                self.skipped = self.done = True
                return None
            self.suite = gate
            if self.version == "TLSv1.2" and auth_of(gate) == "ECDSA":
                self.pin = plan.cert_curve("TLSv1.2", gate)
        if not self.remaining:
            self.done = True
            return None
        self.steps += 1
        v = self.version
        if v == "TLSv1.3":
            shares: list[str] = []
            if self.share_mode:
                pick = "x25519" if "x25519" in self.remaining else self.remaining[0]
                shares = [pick]
            spec = hellos.hello(v, [self.suite], groups=self.remaining, key_shares=shares)
            if not shares:
                # the HelloRetryRequest already names the group: finishing the handshake
                # would only cost the server a key exchange per group (ffdhe8192: ~150 ms)
                spec.stop_after_hrr = True
        else:
            groups = list(self.remaining)
            if self.pin is not None and self.pin in self.winners:
                groups.append(self.pin)
            spec = hellos.hello(v, [self.suite], groups=groups)
        return self._send(f"groups/{v}/{self.steps}", spec, v)

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        picked = reply.hrr_group or reply.group
        if reply.hrr_group:
            self.hrr = True
        if picked is not None and picked == self.pin and picked in self.winners:
            self.pinned = self.done = True
            return
        if picked in self.remaining:
            assert picked is not None
            self.remaining.remove(picked)
            self.winners.append(picked)
            return
        if reply.answered and picked is None and self.version == "TLSv1.2":
            plan.warn("TLS 1.2 group check: the server answered without naming a curve")
            self.incomplete = self.done = True
            return
        if reply.refused:
            if self.version == "TLSv1.3" and not self.winners and not self.share_mode:
                # a server that rejects an empty key_share: offer one share and go on
                self.share_mode = True
                return
            self.done = True
            return
        if not self._retry(plan, probe, reply):
            plan.warn(f"{self.version} groups: no usable answer ({reply.outcome}); "
                      "the group list may be incomplete")
            self.incomplete = self.done = True
