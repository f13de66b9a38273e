"""Effective-policy enumeration: the async driver of the sans-I/O :class:`Planner`.

Every probe runs through the engine's :func:`prober.core.engine.attempt`, so each connection
is an ordinary attempt with its outcome from the taxonomy and its full record in the
JSON. The driver keeps at most ``concurrency`` connections open to the endpoint (the
politeness cap), hands each result to the planner the moment it is known and asks for
more; the planner is bounded in connections and the whole run by ``budget_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prober.core.attempt import RETRY_OF, AttemptResult
from prober.core.engine import Endpoint, EngineOptions, Retries, attempt
from prober.core.outcome import Outcome
from prober.core.targets import is_ip
from prober.net.attempt import Deadlines
from prober.policy.enumerate.plan import Probe, Reply
from prober.policy.enumerate.planner import Planner
from prober.policy.scan import PolicyScan, assemble
from prober.profiles.model import Profile
from prober.wire import registry as reg
from prober.wire.certificates import describe
from prober.wire.constants import alert_name

DEFAULT_CONCURRENCY = 8
DEFAULT_BUDGET_S = 120.0


def reply_of(r: AttemptResult) -> Reply:
    """What the planner needs from one attempt."""
    obs = r.obs
    f = obs.flight if obs is not None else None
    if f is None:
        return Reply(outcome=r.outcome, detail=r.detail)
    cert_sha = cert_key = curve = None
    dns: tuple[str, ...] = ()
    if f.certificates:

        d = describe(f.certificates[0])
        cert_sha, cert_key = d.get("sha256"), d.get("key_type")
        dns = tuple(n for n in d.get("san") or () if not is_ip(n))
        if d.get("curve"):
            try:
                curve = reg.group_name(reg.group_value(str(d["curve"])))
            except KeyError:
                curve = str(d["curve"])
    return Reply(
        outcome=r.outcome,
        version=reg.version_name(f.version) if f.version is not None else None,
        suite=f.suite,
        group=reg.group_name(f.group) if f.group is not None else None,
        hrr_group=reg.group_name(f.hrr_group) if f.hrr_group is not None else None,
        alert=alert_name(f.alert) if r.outcome == Outcome.ALERT and f.alert is not None else None,
        cert_sha256=cert_sha, cert_key=cert_key, cert_curve=curve, cert_dns=dns,
        sslv2_specs=tuple(f.sslv2_cipher_specs or ()),
        secure_renegotiation=f.secure_renegotiation,
        extended_master_secret=f.extended_master_secret,
        session_ticket=f.session_ticket, ocsp_stapled=f.ocsp_stapled, alpn=f.alpn,
        detail=r.detail)


async def enumerate_policy(ep: Endpoint, *, concurrency: int = DEFAULT_CONCURRENCY,
                           deadlines: Deadlines | None = None,
                           budget_s: float = DEFAULT_BUDGET_S,
                           on_result: Callable[[AttemptResult], None] | None = None,
                           planner: Planner | None = None) -> PolicyScan:
    """Run a whole policy scan of one endpoint; cancel the task to stop early."""
    plan = planner or Planner(target_sni=ep.target.sni)
    opts = EngineOptions(deadlines=deadlines or Deadlines(), per_target=max(1, concurrency))
    results: list[AttemptResult] = []
    started = time.time()
    t_end = time.monotonic() + budget_s
    in_flight: set[asyncio.Task[tuple[Probe, AttemptResult]]] = set()
    next_id = 0

    retries = Retries()

    async def one(aid: int, probe: Probe) -> tuple[Probe, AttemptResult]:
        """The probe's attempt; one turned away for load is kept, and tried again after a
        back-off as a new attempt (``retry_of``): only the last try reaches the planner."""
        nonlocal next_id
        profile = Profile(name=probe.name, spec=probe.spec, origin="generated", sni=probe.sni)
        r = await attempt(aid, ep, profile, probe.tries, opts)
        retries.note(r)

        async def again(prev: AttemptResult) -> AttemptResult:
            nonlocal next_id
            _keep(probe, prev)  # the refusal stays in the record; the planner gets the last
            next_id += 1
            retry = await attempt(next_id, ep, profile, probe.tries, opts)
            retry.data[RETRY_OF] = prev.id
            return retry

        assert opts.slots is not None  # set by EngineOptions
        return probe, await retries.retry(r, ep, opts.slots, again)

    def _keep(probe: Probe, result: AttemptResult) -> None:
        result.data["policy"] = {"purpose": probe.purpose, "version": probe.version}
        results.append(result)
        if on_result is not None:
            on_result(result)

    complete = True
    try:
        while True:
            while len(in_flight) < max(1, concurrency):
                probe = plan.next_probe()
                if probe is None:
                    break
                next_id += 1
                in_flight.add(asyncio.ensure_future(one(next_id, probe)))
            if not in_flight:
                if not plan.finished:
                    # defensive: a plan that waits on nothing would otherwise end quietly
                    plan.stop("the plan stalled (a bug): results are partial")
                break
            left = t_end - time.monotonic()
            if left <= 0:
                plan.stop(f"the scan's time budget ({budget_s:.0f} s) ran out")
                complete = False
                break
            done, _ = await asyncio.wait(in_flight, timeout=left,
                                         return_when=asyncio.FIRST_COMPLETED)
            # answers that came in together are fed in the order their probes were sent:
            # iterating the set would follow memory addresses, and the report with it
            for t in sorted(done, key=lambda t: t.result()[1].id):
                in_flight.discard(t)
                probe, result = t.result()
                _keep(probe, result)
                plan.feed(probe, reply_of(result))
    finally:
        for t in in_flight:
            t.cancel()
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
    return assemble(plan, ep, results, started=started, finished=time.time(),
                    complete=complete and not plan.stopped)

