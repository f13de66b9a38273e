"""The steps of the diagnostic plan against one endpoint.

Order, and why:

1. a sanity probe (a broad TLS 1.0-1.3 hello), so a run that starts against a dead
   endpoint says so;
2. the version sweep (SSLv3 ... TLS 1.3, each ``sweep_repeat`` times, repeats spread
   over the step so two backends behind a round-robin balancer both show up), with the
   connect-and-wait control alongside;
3. everything built on the known-good profile chosen from the sweep (the newest version
   that succeeded): N repeats from distinct source ports, no SNI / an unrelated SNI,
   the size ladder, the hello split over TLS records and over two TCP segments, and
   TLS_FALLBACK_SCSV one version below the newest accepted one;
4. bisection of the size at which hellos start failing, when the ladder shows one;
5. the idle-timeout measurement (only with ``--idle-timeout``);
6. the sanity probe again, so a run during which the endpoint went away says so.

The hello variants are built as profiles in ``variants`` (pure); running them goes
through the engine's ``attempt`` (``runner``); the rules never see anything but the
results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from prober.core.attempt import AttemptResult
from prober.core.engine import Endpoint
from prober.core.outcome import Outcome
from prober.core.targets import SNI_NONE, SNI_TARGET, Sni
from prober.diagnose.findings import (
    NO_SNI_SUFFIX,
    STEP_BACKENDS,
    STEP_BISECT,
    STEP_FALLBACK,
    STEP_INTOLERANCE,
    STEP_REPEAT,
    STEP_SANITY_FIRST,
    STEP_SANITY_LAST,
    STEP_SIZE,
    STEP_SNI,
    STEP_SWEEP,
    STEP_SWEEP_NO_SNI,
    SWEEP_VERSIONS,
    Control,
    Seen,
)
from prober.diagnose.plan.idle import measure_idle
from prober.diagnose.plan.runner import Job, PlanOptions, PlanState, Runner, seen
from prober.diagnose.plan.variants import (
    KNOWN_GOOD,
    SANITY,
    bisect_profile,
    choose_reference,
    fallback_profile,
    fallback_versions,
    intolerance_profile,
    size_gaps,
    size_profiles,
    split_profiles,
    sweep_profiles,
)
from prober.net.control import connect_and_wait
from prober.profiles.families import sanity_profile
from prober.profiles.model import Profile

# bisection stops when the boundary is known to this many bytes
BISECT_RESOLUTION = 16
# how often the fragmentation variants run (twice: one lost packet is not a pattern)
SPLIT_REPEAT = 2
# hellos per version (the sweep's included) when the repeats met several certificates
# and the version's answers have not told the backends apart yet (see _sweep_backends)
BACKEND_HELLOS = 12


async def control(ep: Endpoint, wait: float, connect_timeout: float) -> Control:
    t = ep.target
    w = await connect_and_wait(ep.address, t.port, ep.family, wait, connect_timeout,
                               t.starttls, t.sni or t.host)
    return Control(w.outcome, w.connect_ms, w.waited_ms, w.banner)


async def execute(ep: Endpoint, opts: PlanOptions, state: PlanState,
                  say: Callable[[str], None] = lambda s: None,
                  on_result: Callable[[AttemptResult], None] | None = None) -> None:
    """Run the whole plan against one endpoint, filling ``state`` as it goes."""
    run = Runner(opts, state, on_result)

    # the control waits as long as a hello may: it runs alongside the whole plan
    wait = opts.control_wait if opts.control_wait is not None else opts.deadlines.read
    waiting = asyncio.create_task(control(ep, wait, opts.deadlines.connect))
    try:
        await _main_steps(run, ep, opts, state, say)
        state.control = await waiting
    finally:
        waiting.cancel()
    if opts.idle_max:
        say(f"idle timeout, up to {opts.idle_max:.0f} s")
        state.idle = await measure_idle(ep, opts.idle_max, opts.deadlines.connect)

    say("sanity probe again")
    await run.run([Job(STEP_SANITY_LAST, sanity_profile(f"{SANITY}@last"), ep)])
    state.steps_done.append(STEP_SANITY_LAST)


async def _main_steps(run: Runner, ep: Endpoint, opts: PlanOptions, state: PlanState,
                      say: Callable[[str], None]) -> None:
    sni = ep.target.sni
    say("sanity probe and connect-and-wait control")
    await run.run([Job(STEP_SANITY_FIRST, sanity_profile(f"{SANITY}@first"), ep)])
    state.steps_done.append(STEP_SANITY_FIRST)

    # one Profile per version for all repeats: the engine encodes each hello once
    sweeping = sweep_profiles()
    sweep_jobs = [Job(STEP_SWEEP, p, ep, r) for r in range(opts.sweep_repeat) for p in sweeping]
    say(f"version sweep ({len(sweep_jobs)} attempts)")
    sweep = await run.run(sweep_jobs)
    state.steps_done.append(STEP_SWEEP)

    swept = seen(sweep)
    ref_name, why = choose_reference(swept)
    if ref_name == SANITY:
        ref = sanity_profile(KNOWN_GOOD)
        suite = _negotiated_suite(state.results, f"{SANITY}@first")
    else:
        ref = replace(next(p for p in sweeping if p.name == ref_name), name=KNOWN_GOOD)
        suite = _negotiated_suite(sweep, ref_name)
    state.reference = {"profile": ref_name, "reason": why}
    tag = {"reference": ref_name}
    repeats = [Job(STEP_REPEAT, ref, ep, i, dict(tag)) for i in range(opts.repeat)]
    variants = [Job(STEP_SNI, replace(ref, name="sni:none", sni=SNI_NONE), ep, 0,
                    {**tag, "sni_variant": "none"}),
                Job(STEP_SNI, replace(ref, name="sni:unrelated", sni=SNI_TARGET),
                    _sni_endpoint(ep, opts.unrelated_sni), 0, {**tag, "sni_variant": "unrelated"})]
    sizes = size_profiles(ref, suite, sni)
    variants += [Job(STEP_SIZE, p, ep, 0, {**tag, **m}) for p, m in sizes]
    for step, p, m in split_profiles(ref, sni):
        variants += [Job(step, p, ep, i, {**tag, **m}) for i in range(SPLIT_REPEAT)]
    # versions every sweep attempt got: a version only one of two backends takes is no
    # base for a fallback probe (the intermittent rule reports that)
    by_version: dict[str, set[str]] = {}
    for a in swept:
        by_version.setdefault(SWEEP_VERSIONS[a.profile], set()).add(a.outcome)
    accepted = sorted(v for v, o in by_version.items() if o == {Outcome.OK})
    variants += [Job(STEP_FALLBACK, fallback_profile(v, name), ep, 0,
                     {"fallback_version": v, "accepted": accepted})
                 for name, v in fallback_versions(accepted)]
    # a known-good hello of TLS 1.2 or older: the same with supported_versions naming its
    # own version (version intolerance cuts it; a version policy answers it)
    sv = intolerance_profile(ref, SWEEP_VERSIONS[ref_name]) if ref_name in SWEEP_VERSIONS \
        else None
    if sv is not None:
        variants += [Job(STEP_INTOLERANCE, sv, ep, i, dict(tag)) for i in range(SPLIT_REPEAT)]
    batch = interleave(repeats, variants)
    say(f"known-good {ref_name} ×{opts.repeat}, SNI, size ladder, fragmentation, fallback "
        f"({len(batch)} attempts)")
    done = await run.run(batch)
    state.steps_done.append(STEP_REPEAT)

    # several certificates among identical answers: more than one backend. Sweep the
    # versions again from new source ports, so backends that also differ in what they
    # accept show it (a few sweep hellos all landing on one of two backends is not rare)
    certs = {a.cert_sha256 for a in seen(done) if a.step == STEP_REPEAT and a.cert_sha256
             and a.outcome == Outcome.OK}
    if len(certs) > 1:
        await _sweep_backends(run, ep, sweeping, seen(sweep), len(certs), say)
        state.steps_done.append(STEP_BACKENDS)

    # every hello naming the target failed and the same hello without SNI passed: the
    # sweep said nothing about the server's versions, so ask again without the name
    batch_seen = seen(done)
    unnamed = [a for a in batch_seen if a.meta.get("sni_variant") == "none"]
    named = [a for a in batch_seen if a.step == STEP_REPEAT]
    if sni and named and not any(a.answered for a in named) and any(
            a.answered for a in unnamed):
        jobs = [Job(STEP_SWEEP_NO_SNI, replace(p, name=p.name + NO_SNI_SUFFIX, sni=SNI_NONE),
                    ep, r) for r in range(opts.sweep_repeat) for p in sweeping]
        say(f"version sweep without SNI ({len(jobs)} attempts)")
        await run.run(jobs)
        state.steps_done.append(STEP_SWEEP_NO_SNI)

    # every boundary between a size that passes and one that fails, bisected on its own:
    # a window of failing sizes has two (both bounds are stated), a limit one
    rungs = [a for a in seen(done) if a.step == STEP_SIZE]
    for lo, hi in size_gaps(rungs):
        fate = next(a.answered for a in rungs if a.hello_bytes == lo and a.connected)
        steps = 0
        while hi - lo > BISECT_RESOLUTION and steps < opts.bisect_steps:
            mid = (lo + hi) // 2
            say(f"bisecting a size boundary: {lo}..{hi} bytes")
            (a,) = seen(await run.run([Job(STEP_BISECT, bisect_profile(ref, suite, mid), ep,
                                           0, {**tag, "size_target": mid})]))
            if not a.connected or not lo < a.hello_bytes < hi:
                break
            if a.answered == fate:
                lo = a.hello_bytes
            else:
                hi = a.hello_bytes
            steps += 1
    state.steps_done.append(STEP_BISECT)


def interleave(a: list[Job], b: list[Job]) -> list[Job]:
    """Spread the repeats among the variants, so a flap mid-step hits both."""
    out: list[Job] = []
    for i in range(max(len(a), len(b))):
        out += a[i:i + 1] + b[i:i + 1]
    return out


def _sni_endpoint(ep: Endpoint, sni: str) -> Endpoint:
    return replace(ep, target=replace(ep.target, sni_choice=Sni.named(sni)))


async def _sweep_backends(run: Runner, ep: Endpoint, sweeping: list[Profile],
                          swept: list[Seen], backends: int,
                          say: Callable[[str], None]) -> None:
    """The version sweep again, a round at a time, for the versions not yet decided: until
    each version's answers differ (the backends disagree), or its successes met as many
    certificates as the repeats did (every backend takes it), or it has had
    BACKEND_HELLOS hellos (the odds that all landed on one backend of two are then below
    1 in 2000). Bounded: at most BACKEND_HELLOS rounds."""
    by: dict[str, list[Seen]] = {p.name: [] for p in sweeping}
    for a in swept:
        if a.profile in by:
            by[a.profile].append(a)

    def undecided(name: str) -> bool:
        got = [a for a in by[name] if a.connected]
        oks = {a.cert_sha256 for a in got if a.outcome == Outcome.OK and a.cert_sha256}
        return len(by[name]) < BACKEND_HELLOS and len({a.outcome for a in got}) < 2 \
            and len(oks) < backends

    rounds = 0
    while (todo := [p for p in sweeping if undecided(p.name)]) and rounds < BACKEND_HELLOS:
        say(f"{backends} certificates: the version sweep again for "
            f"{', '.join(SWEEP_VERSIONS[p.name] for p in todo)} ({len(todo)} attempts)")
        for a in seen(await run.run([Job(STEP_BACKENDS, p, ep, rounds) for p in todo])):
            by[a.profile].append(a)
        rounds += 1


def _negotiated_suite(results: list[AttemptResult], profile: str) -> int | None:
    for r in results:
        if r.profile == profile and r.outcome == Outcome.OK and r.obs and r.obs.flight:
            return r.obs.flight.suite
    return None
