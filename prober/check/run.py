"""The gate's run: the attempts, policy scans and diagnoses an expectations file needs,
against each target, turned into verdicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from prober.check import evaluate as ev
from prober.check.evaluate import Verdict
from prober.check.expectations import Expectations
from prober.core import engine
from prober.core.attempt import RETRY_OF, AttemptResult, last_tries
from prober.core.engine import Endpoint
from prober.core.service import no_tls
from prober.core.targets import Target
from prober.diagnose.run import diagnose
from prober.net.attempt import Deadlines
from prober.policy.enumerate.driver import enumerate_policy
from prober.profiles.loader import resolve
from prober.profiles.model import Profile
from prober.wire import peertext

CHECK_SCHEMA = "prober.check/2"


@dataclass
class CheckRun:
    """What one gate run needs and what it measured so far (kept when interrupted)."""

    exp: Expectations
    targets: list[Target]
    deadlines: Deadlines
    concurrency: int = 16
    # connections open at once to one endpoint by the policy scan and the diagnosis (a
    # fleet run holds each endpoint to its cap)
    per_target: int = 8
    profiles: list[Profile] = field(default_factory=list)
    # each profile argument of the expectations -> the profile names it stands for
    sets: dict[str, list[str]] = field(default_factory=dict)
    results: list[AttemptResult] = field(default_factory=list)
    # the attempts of the policy scans and diagnoses (they are not in the JSON's attempts)
    other_results: list[AttemptResult] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    # called with the resolved endpoints before anything is sent (--pcap opens its
    # capture there)
    on_endpoints: Callable[[list[Endpoint]], None] | None = None

    @classmethod
    def prepare(cls, exp: Expectations, targets: list[Target], deadlines: Deadlines,
                concurrency: int) -> CheckRun:
        """Resolve every profile the expectations name (ProfileError when one does not)."""
        run = cls(exp, targets, deadlines, concurrency)
        seen: set[str] = set()
        for arg in (a for args in ev.plan(exp).values() for a in args):
            resolved = resolve(arg)
            run.sets[arg] = [p.name for p in resolved]
            for p in resolved:
                if p.name not in seen:
                    seen.add(p.name)
                    run.profiles.append(p)
        return run

    async def execute(self) -> list[Verdict]:
        exp = self.exp
        eps = await engine.resolve_targets(self.targets, False)
        if self.on_endpoints is not None:
            self.on_endpoints(eps)
        opts = engine.EngineOptions(repeat=exp.repeat, concurrency=self.concurrency,
                                    per_target=self.per_target, deadlines=self.deadlines)
        if self.profiles:
            await engine.run(eps, self.profiles, opts, self.results.append)
        for ep in eps:
            label = ep.target.label
            # in attempt order, not in the order answers happened to arrive
            mine = sorted((r for r in self.results
                           if r.target == label and r.address == ep.address), key=lambda r: r.id)
            # judged on each attempt's last try; the refusals retried stay in the record
            verdicts = ev.evaluate(exp, label, last_tries(mine), self.sets)
            # every attempt made at this endpoint, whichever part of the gate made it
            seen = [(r.outcome, _banner(r), r.detail) for r in mine]
            if ep.address is not None:
                if exp.policy_equals or exp.policy_equals_strict or exp.policy_no_weaker_than:
                    scan = await enumerate_policy(ep, deadlines=self.deadlines,
                                                  concurrency=self.per_target,
                                                  on_result=self.other_results.append)
                    verdicts += ev.policy_verdicts(exp, label, scan)
                    seen += [(r.outcome, _banner(r), r.detail) for r in scan.attempts]
                if exp.no_findings:
                    doc = await diagnose(ep, self.deadlines, per_target=self.per_target,
                                         results=self.other_results)
                    verdicts += ev.finding_verdicts(exp, label, doc["findings"])
                    seen += [(a["outcome"], peertext.from_json(a.get("banner")),
                              a["detail"]) for a in doc["attempts"]]
            self.verdicts += ev.no_tls_verdicts(label, no_tls(seen), verdicts)
        return self.verdicts

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    def every_attempt(self) -> list[AttemptResult]:
        """Every attempt the run made, each with its own id: the gate's keep theirs (as
        in the JSON), the policy scans' and diagnoses' (numbered from 1 each) follow."""
        out = sorted(self.results, key=lambda r: r.id)
        n = max((r.id for r in out), default=0)
        # a retry names the attempt it retried by its first number: the newest one of
        # that number before it (a scan's and a diagnosis's numbers overlap, and each
        # ran after the other; an attempt ends before its retry starts)
        renumbered: dict[int, int] = {}
        for i, r in enumerate(self.other_results, start=n + 1):
            was = r.data.get(RETRY_OF)
            data = {**r.data, RETRY_OF: renumbered[was]} if was in renumbered else r.data
            out.append(replace(r, id=i, data=data))
            renumbered[r.id] = i
        return out

    def document(self) -> dict[str, Any]:
        return {"schema": CHECK_SCHEMA, "expectations": self.exp.path, "passed": self.passed,
                "verdicts": [v.to_json() for v in self.verdicts],
                "attempts": [r.to_json() for r in sorted(self.results, key=lambda r: r.id)]}


def _banner(r: AttemptResult) -> str | None:
    return r.obs.flight.banner if r.obs is not None and r.obs.flight is not None else None
