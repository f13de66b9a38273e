"""The plan's options, what it has produced so far, and the runner that sends its jobs
through the engine's ``attempt``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prober.core.attempt import RETRY_OF, AttemptResult
from prober.core.engine import (
    Endpoint,
    EngineOptions,
    RateLimiter,
    Retries,
    attempt,
)
from prober.diagnose.findings import Control, IdleResult, Seen
from prober.net.attempt import Deadlines
from prober.profiles.model import Profile

UNRELATED_SNI = "www.example.com"


@dataclass
class PlanOptions:
    repeat: int = 10
    sweep_repeat: int = 3
    deadlines: Deadlines = field(default_factory=Deadlines)
    per_target: int = 8
    rate: float = 0.0
    unrelated_sni: str = UNRELATED_SNI
    idle_max: float | None = None
    bisect_steps: int = 8
    control_wait: float | None = None  # default: the read deadline


@dataclass
class Job:
    step: str
    profile: Profile
    endpoint: Endpoint
    repeat: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanState:
    """What the run has produced so far (kept when the run is interrupted)."""

    results: list[AttemptResult] = field(default_factory=list)
    reference: dict[str, Any] = field(default_factory=dict)
    control: Control | None = None
    idle: IdleResult | None = None
    steps_done: list[str] = field(default_factory=list)


class Runner:
    """Runs jobs through ``engine.attempt`` within the per-target cap and rate limit.

    Ids are given when jobs are queued, so they follow the plan's order whatever the
    order of completion.
    """

    def __init__(self, opts: PlanOptions, state: PlanState,
                 on_result: Callable[[AttemptResult], None] | None = None) -> None:
        self.opts = opts
        self.state = state
        self.on_result = on_result
        self.next_id = 1
        self.slots = asyncio.Semaphore(max(1, opts.per_target))
        self.limiter = RateLimiter(opts.rate)
        self.eopts = EngineOptions(deadlines=opts.deadlines, per_target=opts.per_target)
        self.retries = Retries()

    async def run(self, jobs: list[Job]) -> list[AttemptResult]:
        numbered = []
        for j in jobs:
            numbered.append((self.next_id, j))
            self.next_id += 1
        done = await asyncio.gather(*(self._one(aid, j) for aid, j in numbered))
        return list(done)

    async def _one(self, aid: int, job: Job) -> AttemptResult:
        """The job's attempt; one turned away for load is retried after a back-off (a
        new attempt, ``retry_of`` the last), and the last try is the job's result."""
        r = await self._try(aid, job)
        self.retries.note(r)

        async def again(prev: AttemptResult) -> AttemptResult:
            rid, self.next_id = self.next_id, self.next_id + 1
            return await self._try(rid, job, retry_of=prev.id)

        assert self.eopts.slots is not None  # set by EngineOptions
        return await self.retries.retry(r, job.endpoint, self.eopts.slots, again)

    async def _try(self, aid: int, job: Job, retry_of: int | None = None) -> AttemptResult:
        async with self.slots:
            await self.limiter.wait()
            r = await attempt(aid, job.endpoint, job.profile, job.repeat, self.eopts)
        r.data["step"] = job.step
        r.data.update(job.meta)
        if retry_of is not None:
            r.data[RETRY_OF] = retry_of
        self.state.results.append(r)
        if self.on_result is not None:
            self.on_result(r)
        return r


def seen(results: list[AttemptResult]) -> list[Seen]:
    return [Seen.from_json(r.to_json()) for r in results]
