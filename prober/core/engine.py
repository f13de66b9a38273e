"""Scheduling attempts: targets x profiles x repeats, within caps and a rate limit.

A fixed pool of workers pulls jobs from a generator, so memory stays flat however
many attempts a run holds; each result is handed to ``on_result`` the moment it is
known, so a killed run keeps everything measured so far.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from prober.core.attempt import RETRY_OF, AttemptResult
from prober.core.limits import EndpointSlots
from prober.core.outcome import NO_HELLO, Outcome, classify
from prober.core.targets import Sni, Target
from prober.net.attempt import (
    AF_INET,
    Deadlines,
    ResolveError,
    TransportSpec,
    family_of,
    resolve,
    run_attempt,
)
from prober.wire.clienthello import BuiltHello, HelloSpec, build

# bounded back-off for attempts turned away for load (see ``transient``): waits before
# retry 1, 2, 3, 4 (so at most that many retries of one attempt), and how many retries one
# run (a probe run: one endpoint) may spend in all
RETRY_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)
RETRY_BUDGET = 60


class Profile(Protocol):
    """What the engine needs of a client profile (prober.profiles.model.Profile has it)."""

    name: str
    spec: HelloSpec
    sni: Sni  # SNI_TARGET: the target's name (when it has one)
    transport: TransportSpec


@dataclass
class EngineOptions:
    repeat: int = 1
    concurrency: int = 32
    per_target: int = 8
    rate: float = 0.0  # attempts started per second; 0 = no limit
    deadlines: Deadlines | None = None
    all_addresses: bool = False
    fresh_keys: bool = False
    # each profile's hello, encoded once per SNI and renewed per attempt (see
    # BuiltHello.renewed); the profile is held so that its id is not reused meanwhile
    hellos: dict[tuple[int, str | None], tuple[Profile, BuiltHello]] = field(
        default_factory=dict, repr=False)
    # the per-address cap every attempt holds (``per_target`` slots per resolved address)
    slots: EndpointSlots | None = field(default=None, repr=False)
    # ``run``: how many times one attempt turned away for load is retried (0 = never)
    retries: int = len(RETRY_BACKOFF_S)

    def __post_init__(self) -> None:
        if self.slots is None:
            self.slots = EndpointSlots(self.per_target)


@dataclass(frozen=True)
class Endpoint:
    """A target bound to one address."""

    target: Target
    family: int
    address: str | None  # None when the name did not resolve
    error: str | None = None


# What every attempt waits on before it connects, when whoever runs the attempts sets it:
# the fleet's per-endpoint rate, held across processes and agents (an inventory's
# `rate:`). A context variable, so that the policy scan, the diagnosis and the check a
# fleet task runs pace their attempts too without a parameter through each of them.
Pacer = Callable[[str, int], Awaitable[None]]
PACER: ContextVar[Pacer | None] = ContextVar("prober_pacer", default=None)


class RateLimiter:
    """Spaces attempt starts evenly; shared by all workers."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


async def resolve_targets(targets: list[Target], all_addresses: bool) -> list[Endpoint]:
    out: list[Endpoint] = []
    for t in targets:
        if t.address is not None:
            fam = family_of(t.address)
            out.append(Endpoint(t, fam, t.address))
            continue
        try:
            pairs = await resolve(t.host, t.port, all_addresses=all_addresses)
        except (ResolveError, UnicodeError) as e:
            out.append(Endpoint(t, AF_INET, None, f"{t.host}: {e}"))
            continue
        out.extend(Endpoint(t, fam, addr) for fam, addr in pairs)
    return out


def _jobs(profiles: Sequence[Profile], repeat: int) -> Iterator[tuple[Profile, int]]:
    # repeats outermost: a flapping endpoint shows up spread over the run, not in one block
    for r in range(repeat):
        for p in profiles:
            yield p, r


async def run(endpoints: list[Endpoint], profiles: Sequence[Profile], opts: EngineOptions,
              on_result: Callable[[AttemptResult], None]) -> int:
    """Run every attempt; returns how many ran (retries included). Cancel the task to
    stop early.

    Each endpoint gets its own workers (its per-target cap) pulling from its own job
    list, and every attempt also takes a slot of the global cap: a slow or silent
    endpoint then holds only its own slots, never the workers of the others.

    An attempt turned away for load (``transient``) backs its endpoint off and is tried
    again, at most ``opts.retries`` times, within the endpoint's ``Retries``: each retry
    is a new attempt, numbered after every planned one, whose ``data["retry_of"]`` is the
    id it repeats; the attempt retried is reported as it was, never replaced.
    """
    limiter = RateLimiter(opts.rate)
    global_slots = asyncio.Semaphore(max(1, opts.concurrency))
    slots = opts.slots
    assert slots is not None  # set by EngineOptions
    done = 0
    per_ep = len(profiles) * opts.repeat
    last_id = len(endpoints) * per_ep  # retries are numbered after the planned attempts

    def numbered(index: int) -> Iterator[tuple[int, Profile, int]]:
        # ids follow the job order (endpoint, repeat, profile) so reports can sort on them
        for k, (p, r) in enumerate(_jobs(profiles, opts.repeat)):
            yield index * per_ep + k + 1, p, r

    async def one(aid: int, ep: Endpoint, profile: Profile, rep: int,
                  retry_of: int | None = None) -> AttemptResult:
        nonlocal done
        if ep.address is not None:
            # a backed-off endpoint waits without a slot of the global cap: the other
            # endpoints' attempts go on meanwhile
            await slots.quiet(ep.address, ep.target.port)
        async with global_slots:
            await limiter.wait()
            result = await attempt(aid, ep, profile, rep, opts)
        if retry_of is not None:
            result.data[RETRY_OF] = retry_of
        done += 1
        on_result(result)
        return result

    async def worker(ep: Endpoint, jobs: Iterator[tuple[int, Profile, int]],
                     retries: Retries) -> None:
        for aid, profile, rep in jobs:

            async def again(prev: AttemptResult, profile: Profile = profile,
                            rep: int = rep) -> AttemptResult:
                nonlocal last_id
                last_id += 1
                return await one(last_id, ep, profile, rep, retry_of=prev.id)

            r = await one(aid, ep, profile, rep)
            retries.note(r)
            await retries.retry(r, ep, slots, again, limit=opts.retries)

    workers = []
    for index, ep in enumerate(endpoints):
        it = numbered(index)
        n = max(1, min(opts.per_target, per_ep, opts.concurrency))
        retries = Retries()  # per endpoint: whether *it* took connections, *its* budget
        workers += [worker(ep, it, retries) for _ in range(n)]
    await asyncio.gather(*workers)
    return done


# turned away this many times in a row, with no connection in between: the endpoint has
# gone (or closed the door), not throttled; retries stop until a connection gets in again
RETRY_STREAK = 8
# STARTTLS replies that mean "too busy now" rather than "no"
_BUSY_CODES = frozenset({"421"})


def transient(r: AttemptResult) -> bool:
    """An attempt turned away before any hello for load (RST to the SYN, a 421 greeting):
    worth one more try after a back-off, as a new attempt (``retry_of``). Only where the
    endpoint has taken a connection before: a closed port refuses everything."""
    if r.outcome == Outcome.REFUSED:
        return True
    st = r.obs.starttls if r.obs is not None else None
    return r.outcome == Outcome.STARTTLS_FAILED and st is not None and st.code in _BUSY_CODES


@dataclass
class Retries:
    """What a run has left of its retry budget, and whether the endpoint took a
    connection yet (before that, a refusal means a closed port, not load)."""

    left: int = RETRY_BUDGET
    connected_once: bool = False
    streak: int = 0  # transient results since the last connection that got in

    def note(self, r: AttemptResult) -> None:
        if r.outcome not in NO_HELLO:
            self.connected_once = True
            self.streak = 0
        elif transient(r):
            self.streak += 1

    async def took_connections(self) -> bool:
        """Whether the endpoint has taken a connection; when not yet, wait one back-off
        step first: attempts still in flight may show it does (a closed port refuses
        them too, and then nothing is retried)."""
        # (not once more than RETRY_STREAK were refused: nothing is retried then anyway)
        if not self.connected_once and self.streak <= RETRY_STREAK:
            await asyncio.sleep(RETRY_BACKOFF_S[0])
        return self.connected_once

    async def retry(self, r: AttemptResult, ep: Endpoint, slots: EndpointSlots,
                    again: Callable[[AttemptResult], Awaitable[AttemptResult]],
                    limit: int = len(RETRY_BACKOFF_S)) -> AttemptResult:
        """``r``'s last try. While it was turned away for load and the budget allows, the
        whole endpoint backs off (the one per-endpoint limiter holds every attempt to it
        back; this one waits outside its slot) and ``again(prev)`` makes the retry, a new
        attempt naming ``prev`` (``retry_of``); each retry is noted here. The one retry
        loop of probe, check, whatif, policy and diagnose."""
        tries = 0
        while tries < limit and ep.address is not None and transient(r) \
                and await self.took_connections() \
                and (wait := self.wait_before(r, tries)) is not None:
            slots.back_off(ep.address, ep.target.port, wait)
            await slots.quiet(ep.address, ep.target.port)
            tries += 1
            r = await again(r)
            self.note(r)
        return r

    def wait_before(self, r: AttemptResult, tries: int) -> float | None:
        """Seconds to wait before retrying ``r`` (its ``tries``-th retry), or None."""
        if not transient(r) or not self.connected_once or self.left <= 0 \
                or tries >= len(RETRY_BACKOFF_S) or self.streak > RETRY_STREAK:
            return None
        self.left -= 1
        return RETRY_BACKOFF_S[tries]


async def attempt(aid: int, ep: Endpoint, profile: Profile, rep: int, opts: EngineOptions
                  ) -> AttemptResult:
    t = ep.target
    sni = profile.sni.resolve(t.sni)
    result = AttemptResult(id=aid, target=t.label, host=t.host, port=t.port, address=ep.address,
                           sni=sni, profile=profile.name, repeat=rep, outcome=Outcome.DNS_ERROR,
                           detail=ep.error or "did not resolve", started_at=time.time())
    if ep.address is None:
        return result
    built = _hello(profile, sni, opts)
    assert opts.slots is not None  # set by EngineOptions
    async with opts.slots.hold(ep.address, t.port):
        pacer = PACER.get()
        if pacer is not None:
            await pacer(ep.address, t.port)
            result.started_at = time.time()  # the attempt starts now, not when it queued
        obs = await run_attempt(ep.address, t.port, ep.family, built,
                                record_sizes=profile.transport.record_sizes,
                                segment_sizes=profile.transport.segment_sizes,
                                pause_ms=profile.transport.pause_ms, deadlines=opts.deadlines,
                                starttls=t.starttls, server_name=t.sni or t.host)
    c = classify(obs)
    result.outcome, result.detail, result.obs = c.outcome, c.detail, obs
    return result


def _hello(profile: Profile, sni: str | None, opts: EngineOptions) -> BuiltHello:
    if opts.fresh_keys:
        return build(profile.spec, sni, fresh_keys=True)
    key = (id(profile), sni)
    cached = opts.hellos.get(key)
    if cached is None:
        cached = opts.hellos[key] = (profile, build(profile.spec, sni))
    return cached[1].renewed()
