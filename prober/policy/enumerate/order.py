"""Preference order: server order or client order (suites and groups), and one sequence
out of several winner runs of a version."""

from __future__ import annotations

from prober.policy.enumerate import hellos
from prober.policy.enumerate.candidates import candidate_index, is_chacha, is_ecdhe, neutral
from prober.policy.enumerate.plan import EXTRAS, GROUPS, SUITES, PlanView, Probe, Reply, Task
from prober.wire import registry as reg


class OrderCheck(Task):
    """Server order or client order for one version, and (TLS 1.2/1.3) group order.

    Take two accepted suites x and y where x was picked from a hello that also offered
    y; offering ``[y, x]`` is answered with x by a server that enforces its order and
    with y by one that follows the client. When the version's groups also need an order
    check (the same trick on supported_groups), both ride on one hello, counted as a
    groups connection: it would be sent for the groups anyway."""

    purpose = SUITES

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.suite_verdict: bool | None = None
        self.group_verdict: bool | None = None
        self._suite_done = False
        self._group_done = version not in ("TLSv1.3", "TLSv1.2")

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        pair = self._suite_pair(plan)
        gp = self._group_pair(plan)
        if pair is None or gp is None:
            return None  # still waiting for the facts
        if not pair and not gp:
            self.done = True
            return None
        v = self.version
        name = f"order/{v}"
        if not gp:
            return self._send(name, hellos.hello(v, neutral(v, [pair[1], pair[0]])), v,
                              pair=pair, gp=())
        if v == "TLSv1.3":
            suites = neutral(v, [pair[1], pair[0]]) if pair else [plan.top_suite(v)]
            spec = hellos.hello(v, suites, groups=[gp[1], gp[0]], key_shares=[])
            return self._send(name, spec, v, GROUPS, pair=pair, gp=gp)
        if pair and not all(is_ecdhe(s) for s in pair):
            # the suite check cannot ride on an ECDHE-only hello: send it on its own
            return self._send(name, hellos.hello(v, neutral(v, [pair[1], pair[0]])), v,
                              pair=pair, gp=())
        suites = neutral(v, [pair[1], pair[0]]) if pair else [plan.ecdhe_winner()]
        spec = hellos.hello(v, suites, groups=[gp[1], gp[0]])
        return self._send(name, spec, v, GROUPS, pair=pair, gp=gp)

    def _suite_pair(self, plan: PlanView) -> tuple[int, ...] | None:
        """(x, y) to check; () when none is needed or possible; None while waiting."""
        if self._suite_done:
            return ()
        pair = plan.picked_over(self.version)
        if pair is not None:
            return pair
        if not plan.suites_done(self.version):
            return None
        # no two winners were ever offered together: CrossOrder's job (or nothing to do)
        self._suite_done = True
        return ()

    def _group_pair(self, plan: PlanView) -> tuple[str, ...] | None:
        if self._group_done:
            return ()
        g = plan.groups[self.version]
        if len(g.winners) >= 2:
            return (g.winners[0], g.winners[1])
        if not g.done:
            return None
        self._group_done = True
        return ()

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        pair: tuple[int, ...] = probe.data["pair"]
        gp: tuple[str, ...] = probe.data["gp"]
        if not (reply.answered or reply.hrr_group) and not reply.refused and \
                self._retry(plan, probe, reply):
            return
        if pair:
            self._suite_done = True
            if reply.suite in pair:
                self.suite_verdict = reply.suite == pair[0]
                plan.note_pick(self.version, reply.suite, pair)
            else:
                plan.warn(f"suite order check for {self.version} got {reply.outcome} "
                          f"({reply.detail}); order not determined")
        if gp:
            self._group_done = True
            picked = reply.hrr_group or reply.group
            if picked in gp:
                self.group_verdict = picked == gp[0]
            else:
                plan.warn(f"group order check for {self.version} got {reply.outcome} "
                          f"({reply.detail}); group order not determined")
        self.done = self._suite_done and self._group_done


class CrossOrder(Task):
    """Two winners never offered together (one per bundle): offer the pair both ways; the
    same pick twice means server order (and which one it prefers)."""

    purpose = SUITES

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.picks: list[int | None] = []
        self.pair: tuple[int, int] | None = None
        self.verdict: bool | None = None

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        if self.pair is None:
            if not plan.suites_done(self.version):
                return None
            if plan.picked_over(self.version) is not None:
                self.done = True  # OrderCheck has a pair
                return None
            winners = plan.all_winners(self.version)
            if len(winners) < 2:
                self.done = True
                return None
            self.pair = (winners[0], winners[1])
        a, b = self.pair
        order = [a, b] if not self.picks else [b, a]
        return self._send(f"order/{self.version}/{len(self.picks) + 1}",
                          hellos.hello(self.version, neutral(self.version, order)), self.version)

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        if not reply.answered and not reply.refused and self._retry(plan, probe, reply):
            return
        self.picks.append(reply.suite if reply.answered else None)
        if len(self.picks) == 2:
            self.done = True
            p1, p2 = self.picks
            if p1 is not None and p1 == p2:
                self.verdict = True
                assert self.pair is not None
                plan.note_pick(self.version, p1, self.pair)
            elif p1 is not None and p2 is not None:
                self.verdict = False


class Merge(Task):
    """One sequence from several winner runs of one version.

    Server order: each later run's winners are placed by binary search against the
    sequence so far; a comparison already answered by some earlier hello (both offered,
    one picked) costs nothing, any other costs one two-suite hello. Client order: the
    canonical candidate order is the client's, so no hello is needed."""

    purpose = SUITES

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.merged: list[int] | None = None
        self._queue: list[int] = []
        self._lo = self._hi = self._floor = 0
        self._current: int | None = None
        self._run_starts: set[int] = set()
        self._started = False
        self.comparisons = 0

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        if not self._started:
            if not plan.suites_done(self.version):
                return None
            runs = plan.winner_runs(self.version)
            if len(runs) <= 1:
                self.merged = list(runs[0]) if runs else []
                self.done = True
                return None
            if not plan.order_settled(self.version):
                return None
            self._started = True
            if plan.server_order(self.version) is not True:
                idx = candidate_index(self.version)
                self.merged = sorted((s for r in runs for s in r), key=lambda s: idx.get(s, 0))
                self.done = True
                return None
            self.merged = list(runs[0])
            for r in runs[1:]:
                self._queue += r
                self._run_starts.add(r[0])
        return self._advance(plan)

    def _advance(self, plan: PlanView) -> Probe | None:
        assert self.merged is not None
        while True:
            if self._current is None:
                if not self._queue:
                    self.done = True
                    return None
                self._current = self._queue.pop(0)
                if self._current in self._run_starts:
                    self._floor = 0  # a new run: no lower bound from the previous one
                self._lo, self._hi = self._floor, len(self.merged)
            if self._lo >= self._hi:
                self.merged.insert(self._lo, self._current)
                # the next winner of the same run sits below this one
                self._floor = self._lo + 1
                self._current = None
                continue
            mid = (self._lo + self._hi) // 2
            other = self.merged[mid]
            known = plan.preferred(self.version, self._current, other)
            if known is not None:
                self._step(known == self._current, mid)
                continue
            self.comparisons += 1
            return self._send(f"merge/{self.version}/{self.comparisons}",
                              hellos.hello(self.version, neutral(self.version,
                                                                 [self._current, other])),
                              self.version, pair=(self._current, other), mid=mid)

    def _step(self, current_wins: bool, mid: int) -> None:
        if current_wins:
            self._hi = mid
        else:
            self._lo = mid + 1

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        cur, other = probe.data["pair"]
        if reply.answered and reply.suite in (cur, other):
            assert reply.suite is not None
            plan.note_pick(self.version, reply.suite, (cur, other))
            self._step(reply.suite == cur, probe.data["mid"])
            return
        if not reply.refused and self._retry(plan, probe, reply):
            return
        plan.warn(f"merge of {self.version} bundles got {reply.outcome}; "
                  f"{reg.suite_name(cur)} placed last")
        assert self.merged is not None
        self.merged.append(cur)
        self._current = None
        self._floor = len(self.merged)


class ChachaCheck(Task):
    """Under server order, does the server apply OpenSSL's ChaCha20 priority
    (``SSL_OP_PRIORITIZE_CHACHA``, on by default in HAProxy, ``Options PrioritizeChaCha``
    elsewhere)? Such a server keeps its own order, except that when the first suite of the
    client's list is a ChaCha20 suite it picks among its ChaCha20 suites first.

    Every other hello of the scan keeps a non-ChaCha20 suite first where the order is in
    question (``candidates.neutral``), so server and client order are told apart exactly;
    this adds one hello per version (TLS 1.2, TLS 1.3), and only where the priority would
    show: a ChaCha20 suite c the server ranks below some other suite x. Offering ``[c, x]``
    is answered with x by plain server order and with c under ChaCha20 priority."""

    purpose = EXTRAS

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        # True / False once asked; None: not asked (client order, no ChaCha20 suite, or
        # none ranked below another suite, where the priority changes nothing)
        self.verdict: bool | None = None
        self.applies = False  # server order and ChaCha20 suites: the question is asked

    def poll(self, plan: PlanView) -> Probe | None:
        if self.done or self.busy:
            return None
        v = self.version
        if v not in ("TLSv1.3", "TLSv1.2"):
            self.done = True
            return None
        order = plan.suite_order(v)
        if order is None or not plan.order_settled(v):
            return None  # the order (and whether the server enforces it) is not known yet
        if plan.server_order(v) is not True or not any(is_chacha(s) for s in order):
            self.done = True
            return None
        self.applies = True
        pair = _chacha_pair(order)
        if pair is None:
            self.done = True
            return None
        return self._send(f"chacha/{v}", hellos.hello(v, list(pair)), v, pair=pair)

    def feed(self, plan: PlanView, probe: Probe, reply: Reply) -> None:
        self.busy = False
        chacha, other = probe.data["pair"]
        if reply.answered and reply.suite in (chacha, other):
            self.verdict = reply.suite == chacha
        elif not reply.refused and self._retry(plan, probe, reply):
            return
        else:
            plan.warn(f"ChaCha20 priority check for {self.version} got {reply.outcome} "
                      f"({reply.detail}); not determined")
        self.done = True


def _chacha_pair(order: list[int]) -> tuple[int, int] | None:
    """(c, x): the best-ranked ChaCha20 suite c with a non-ChaCha20 suite x ranked above
    it (x: the best such suite); None when every ChaCha20 suite is ahead of the rest."""
    for i, s in enumerate(order):
        if is_chacha(s):
            above = [x for x in order[:i] if not is_chacha(x)]
            if above:
                return s, above[0]
    return None
