"""The diagnostic plan: which hellos to send, in which order, and the two probes that
are not ClientHello attempts (connect-and-wait, idle timeout).

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

The hello variants are built here as profiles (pure); running them goes through the
engine's ``attempt``; the rules never see anything but the results.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from prober.diagnose.findings import (
    FAILED_IDLE,
    STEP_BISECT,
    STEP_FALLBACK,
    STEP_RECORDS,
    STEP_REPEAT,
    STEP_SANITY_FIRST,
    STEP_SANITY_LAST,
    STEP_SEGMENTS,
    STEP_SIZE,
    STEP_SNI,
    STEP_SWEEP,
    SWEEP_PROFILES,
    SWEEP_VERSIONS,
    Control,
    IdleProbe,
    IdleResult,
    Seen,
)
from prober.engine import Endpoint, EngineOptions, RateLimiter, attempt
from prober.net.attempt import Deadlines, abort
from prober.outcome import AttemptResult
from prober.profiles.model import Profile, TransportSpec
from prober.wire.clienthello import ExtSpec, HelloSpec, KeyShareSpec, build, ext_u16_list
from prober.wire.constants import TLS_FALLBACK_SCSV, ExtensionType

SANITY = "sanity"
KNOWN_GOOD = "known-good"
UNRELATED_SNI = "www.example.com"
# size ladder: wire sizes of the padded rungs; 1800 is a Chrome-like X25519MLKEM768 hello
LADDER = (600, 1300, 1800, 4000)
PQ_RUNG = 1800
X25519MLKEM768 = 0x11EC
X25519 = 0x001D
# bisection stops when the boundary is known to this many bytes
BISECT_RESOLUTION = 16
# a TCP segment split is only meaningful if the peer has to wait for the second part
SPLIT_PAUSE_MS = 200.0
# how often the fragmentation variants run (twice: one lost packet is not a pattern)
SPLIT_REPEAT = 2
LOWER_VERSION = {"TLSv1.3": "tls1.2-only", "TLSv1.2": "tls1.1-only", "TLSv1.1": "tls1.0-only",
                 "TLSv1.0": "sslv3-only"}


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


# --- hello variants (pure) ---------------------------------------------------------------


def sanity_profile(name: str) -> Profile:
    """A broad hello (TLS 1.0-1.3, every usual suite): what almost any server answers."""
    from prober.profiles.compile import compile_hello
    from prober.profiles.families import tls13_doc, version_profile
    from prober.wire import registry as reg

    t13 = version_profile("tls1.3-only").spec.cipher_suites
    t12 = version_profile("tls1.2-only").spec.cipher_suites
    doc = tls13_doc([reg.suite_name(v) for v in t13],
                    legacy=[reg.suite_name(v) for v in t12])
    for i, e in enumerate(doc["extensions"]):
        if isinstance(e, dict) and "supported_versions" in e:
            doc["extensions"][i] = {"supported_versions": ["TLSv1.3", "TLSv1.2", "TLSv1.1",
                                                           "TLSv1.0"]}
    return Profile(name=name, spec=compile_hello(doc), origin="generated",
                   description="broad TLS 1.0-1.3 hello (diagnose sanity probe)")


def sweep_profiles() -> list[Profile]:
    from prober.profiles.families import version_profile

    return [version_profile(n) for n in SWEEP_PROFILES]


def choose_reference(sweep: list[Seen]) -> tuple[str, str]:
    """(profile, why): the newest version the sweep got a full handshake with, else the
    broad sanity hello (which is what the variants are then built on)."""
    for prof in reversed(SWEEP_PROFILES):
        atts = [a for a in sweep if a.profile == prof]
        ok = sum(1 for a in atts if a.outcome == "ok")
        if atts and ok * 2 >= len(atts) and ok:
            return prof, f"the newest version the sweep succeeded with ({ok}/{len(atts)})"
    return SANITY, "no version of the sweep succeeded: the broad sanity hello is used"


def with_ext(spec: HelloSpec, ext: ExtSpec) -> HelloSpec:
    """A copy of ``spec`` with ``ext`` replacing the extension of its type (or appended)."""
    out = copy.deepcopy(spec)
    exts = [e for e in out.extensions or () if e.type != ext.type]
    out.extensions = [*exts, ext]
    return out


def small_spec(spec: HelloSpec, suite: int | None) -> HelloSpec:
    """The reference hello cut down to the suite the server chose: the ladder's first rung."""
    out = copy.deepcopy(spec)
    if suite is not None and suite in out.cipher_suites and len(out.cipher_suites) > 2:
        out.cipher_suites = [suite]
    return out


def padded(spec: HelloSpec, to: int) -> HelloSpec:
    return with_ext(spec, ExtSpec(ExtensionType.PADDING, pad_to=to))


def pq_spec(spec: HelloSpec) -> HelloSpec | None:
    """``spec`` with an X25519MLKEM768 key share first (None when it cannot do TLS 1.3)."""
    if spec.ext(ExtensionType.KEY_SHARE) is None:
        return None
    from prober.wire.buffer import Reader

    sg = spec.ext(ExtensionType.SUPPORTED_GROUPS)
    groups = Reader(sg.body).pull_list(2, 2) if sg is not None else [X25519]
    groups = [X25519MLKEM768, *[g for g in groups if g != X25519MLKEM768]]
    out = with_ext(spec, ExtSpec(ExtensionType.SUPPORTED_GROUPS, ext_u16_list(groups)))
    ks = ExtSpec(ExtensionType.KEY_SHARE,
                 key_shares=[KeyShareSpec(X25519MLKEM768), KeyShareSpec(X25519)])
    # keep the extensions' order: key_share where it was
    assert out.extensions is not None
    out.extensions = [ks if e.type == ExtensionType.KEY_SHARE else e for e in out.extensions]
    return out


def size_profiles(ref: Profile, suite: int | None, sni: str | None
                  ) -> list[tuple[Profile, dict[str, Any]]]:
    """The size ladder: small, ~600 B, ~1.3 kB, X25519MLKEM768 ~1.8 kB, 4 kB."""
    if ref.spec.sslv2 or ref.spec.extensions is None:
        return []  # SSLv2/SSLv3-style hellos have no extensions to pad with
    small = small_spec(ref.spec, suite)
    base = len(build(small, sni).records())
    out = [(Profile(name="size:small", spec=small, sni=ref.sni), {"size_target": base})]
    for to in LADDER:
        if to <= base:
            continue
        spec = padded(small, to)
        meta: dict[str, Any] = {"size_target": to}
        if to == PQ_RUNG:
            pq = pq_spec(small)
            meta["pq"] = pq is not None
            if pq is not None:
                spec = padded(pq, to)
        out.append((Profile(name=f"size:{to}", spec=spec, sni=ref.sni), meta))
    return out


def bisect_profile(ref: Profile, suite: int | None, to: int) -> Profile:
    return Profile(name=f"size:{to}", spec=padded(small_spec(ref.spec, suite), to),
                   sni=ref.sni)


def split_point(spec: HelloSpec, sni: str | None) -> tuple[int, int]:
    """(cut, length) of the handshake message: the cut falls inside the SNI when there is
    one, since that is what a DPI device matches on."""
    msg = build(spec, sni).message
    if sni:
        at = msg.find(sni.encode("idna"))
        if at >= 0:
            return at + max(1, len(sni) // 2), len(msg)
    return max(1, len(msg) // 3), len(msg)


def split_profiles(ref: Profile, sni: str | None) -> list[tuple[str, Profile, dict[str, Any]]]:
    if ref.spec.sslv2:
        return []
    cut, length = split_point(ref.spec, sni if ref.sni else None)
    records = [cut, max(1, (length - cut) // 2)]
    # segments are cut in the wire bytes: the record header comes first
    segments = [cut + 5]
    return [
        (STEP_RECORDS, Profile(name="records:split", spec=ref.spec, sni=ref.sni,
                               transport=TransportSpec(record_sizes=records)),
         {"record_sizes": records}),
        (STEP_SEGMENTS, Profile(name="segments:split", spec=ref.spec, sni=ref.sni,
                                transport=TransportSpec(segment_sizes=segments,
                                                        pause_ms=SPLIT_PAUSE_MS)),
         {"segment_sizes": segments, "pause_ms": SPLIT_PAUSE_MS}),
    ]


def fallback_profile(version: str, name: str = "fallback-scsv") -> Profile:
    """``version`` (TLSv1.x, SSLv3) with TLS_FALLBACK_SCSV, as a client retrying lower does."""
    from prober.profiles.families import version_profile

    prof = {v: p for p, v in SWEEP_VERSIONS.items()}[version]
    spec = copy.deepcopy(version_profile(prof).spec)
    spec.cipher_suites = [*spec.cipher_suites, TLS_FALLBACK_SCSV]
    return Profile(name=name, spec=spec, origin="generated",
                   description=f"{version} with TLS_FALLBACK_SCSV")


def fallback_versions(accepted: list[str]) -> list[tuple[str, str]]:
    """(profile name, version) of the TLS_FALLBACK_SCSV probes for the versions accepted.

    One below the newest (what a client retrying once sends), and every legacy version
    (TLS 1.1 and older) the server still accepts: refusing a fallback to a version the
    server does accept is what a client that had to retry runs into.
    """
    newest = _newest(accepted)
    if newest is None or newest not in LOWER_VERSION:
        return []
    below = SWEEP_VERSIONS[LOWER_VERSION[newest]]
    out = [("fallback-scsv", below)]
    for v in ("TLSv1.1", "TLSv1.0", "SSLv3"):
        if v in accepted and v != below and v != newest:
            out.append((f"fallback-scsv@{v}", v))
    return out


def bisect_bounds(rungs: list[Seen]) -> tuple[int, int] | None:
    """(largest passing, smallest failing) hello size when the ladder shows a threshold."""
    conn = [a for a in rungs if a.connected]
    ok = [a.hello_bytes for a in conn if a.answered]
    bad = [a.hello_bytes for a in conn if not a.answered]
    if not ok or not bad or max(ok) >= min(bad):
        return None
    return max(ok), min(bad)


def interleave(a: list[Job], b: list[Job]) -> list[Job]:
    """Spread the repeats among the variants, so a flap mid-step hits both."""
    out: list[Job] = []
    for i in range(max(len(a), len(b))):
        out += a[i:i + 1] + b[i:i + 1]
    return out


# --- running ---------------------------------------------------------------------------


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
        self.eopts = EngineOptions(deadlines=opts.deadlines)

    async def run(self, jobs: list[Job]) -> list[AttemptResult]:
        numbered = []
        for j in jobs:
            numbered.append((self.next_id, j))
            self.next_id += 1
        done = await asyncio.gather(*(self._one(aid, j) for aid, j in numbered))
        return list(done)

    async def _one(self, aid: int, job: Job) -> AttemptResult:
        async with self.slots:
            await self.limiter.wait()
            r = await attempt(aid, job.endpoint, job.profile, job.repeat, self.eopts)
        r.data["step"] = job.step
        r.data.update(job.meta)
        self.state.results.append(r)
        if self.on_result is not None:
            self.on_result(r)
        return r


def seen(results: list[AttemptResult]) -> list[Seen]:
    return [Seen.from_json(r.to_json()) for r in results]


def _sni_endpoint(ep: Endpoint, sni: str) -> Endpoint:
    return replace(ep, target=replace(ep.target, sni_override=sni))


def _negotiated_suite(results: list[AttemptResult], profile: str) -> int | None:
    for r in results:
        if r.profile == profile and r.outcome == "ok" and r.obs and r.obs.flight:
            return r.obs.flight.suite
    return None


async def execute(ep: Endpoint, opts: PlanOptions, state: PlanState,
                  say: Callable[[str], None] = lambda s: None,
                  on_result: Callable[[AttemptResult], None] | None = None) -> None:
    """Run the whole plan against one endpoint, filling ``state`` as it goes."""
    run = Runner(opts, state, on_result)

    # the control waits as long as a hello may: it runs alongside the whole plan
    wait = opts.control_wait if opts.control_wait is not None else opts.deadlines.read
    control = asyncio.create_task(connect_and_wait(ep, wait, opts.deadlines.connect))
    try:
        await _main_steps(run, ep, opts, state, say)
        state.control = await control
    finally:
        control.cancel()
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

    sweep_jobs = [Job(STEP_SWEEP, p, ep, r) for r in range(opts.sweep_repeat)
                  for p in sweep_profiles()]
    say(f"version sweep ({len(sweep_jobs)} attempts)")
    sweep = await run.run(sweep_jobs)
    state.steps_done.append(STEP_SWEEP)

    ref_name, why = choose_reference(seen(sweep))
    if ref_name == SANITY:
        ref = sanity_profile(KNOWN_GOOD)
        suite = _negotiated_suite(state.results, f"{SANITY}@first")
    else:
        ref = replace(next(p for p in sweep_profiles() if p.name == ref_name), name=KNOWN_GOOD)
        suite = _negotiated_suite(sweep, ref_name)
    state.reference = {"profile": ref_name, "reason": why}
    tag = {"reference": ref_name}
    repeats = [Job(STEP_REPEAT, ref, ep, i, dict(tag)) for i in range(opts.repeat)]
    variants = [Job(STEP_SNI, replace(ref, name="sni:none", sni=False), ep, 0,
                    {**tag, "sni_variant": "none"}),
                Job(STEP_SNI, replace(ref, name="sni:unrelated", sni=True),
                    _sni_endpoint(ep, opts.unrelated_sni), 0, {**tag, "sni_variant": "unrelated"})]
    sizes = size_profiles(ref, suite, sni)
    variants += [Job(STEP_SIZE, p, ep, 0, {**tag, **m}) for p, m in sizes]
    for step, p, m in split_profiles(ref, sni):
        variants += [Job(step, p, ep, i, {**tag, **m}) for i in range(SPLIT_REPEAT)]
    # versions every sweep attempt got: a version only one of two backends takes is no
    # base for a fallback probe (the intermittent rule reports that)
    by_version: dict[str, set[str]] = {}
    for a in seen(sweep):
        by_version.setdefault(SWEEP_VERSIONS[a.profile], set()).add(a.outcome)
    accepted = sorted(v for v, o in by_version.items() if o == {"ok"})
    variants += [Job(STEP_FALLBACK, fallback_profile(v, name), ep, 0,
                     {"fallback_version": v, "accepted": accepted})
                 for name, v in fallback_versions(accepted)]
    batch = interleave(repeats, variants)
    say(f"known-good {ref_name} ×{opts.repeat}, SNI, size ladder, fragmentation, fallback "
        f"({len(batch)} attempts)")
    done = await run.run(batch)
    state.steps_done.append(STEP_REPEAT)

    bounds = bisect_bounds([a for a in seen(done) if a.step == STEP_SIZE])
    steps = 0
    while bounds is not None and steps < opts.bisect_steps:
        lo, hi = bounds
        if hi - lo <= BISECT_RESOLUTION:
            break
        mid = (lo + hi) // 2
        say(f"bisecting the breaking size: {lo}..{hi} bytes")
        (r,) = await run.run([Job(STEP_BISECT, bisect_profile(ref, suite, mid), ep, 0,
                                  {**tag, "size_target": mid})])
        a = Seen.from_json(r.to_json())
        if not a.connected:
            break
        bounds = (a.hello_bytes, hi) if a.answered else (lo, a.hello_bytes)
        steps += 1
    state.steps_done.append(STEP_BISECT)


def _newest(versions: list[str]) -> str | None:
    order = ["SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    known = [v for v in versions if v in order]
    return max(known, key=order.index) if known else None


# --- connect and wait ---------------------------------------------------------------------


async def connect_and_wait(ep: Endpoint, wait: float, connect_timeout: float) -> Control:
    """Connect, send nothing, and see whether the peer speaks first, closes or stays silent."""
    from prober.wire.serverflight import banner_of

    if ep.address is None:
        return Control("unreachable", None, 0.0)
    loop = asyncio.get_running_loop()
    sock = socket.socket(ep.family, socket.SOCK_STREAM)
    sock.setblocking(False)
    t0 = time.monotonic()
    try:
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (ep.address, ep.target.port)),
                                   connect_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return Control("connect-timeout", None, 0.0)
        except ConnectionRefusedError:
            return Control("refused", None, 0.0)
        except OSError:
            return Control("unreachable", None, 0.0)
        connected = time.monotonic()
        c_ms = (connected - t0) * 1000
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), wait)
        except (asyncio.TimeoutError, TimeoutError):
            return Control("silent", c_ms, wait * 1000)
        except OSError:
            return Control("rst", c_ms, (time.monotonic() - connected) * 1000)
        waited = (time.monotonic() - connected) * 1000
        if not data:
            return Control("fin", c_ms, waited)
        return Control("banner", c_ms, waited, banner_of(data) or data[:16].hex())
    finally:
        abort(sock)


# --- idle timeout ----------------------------------------------------------------------------

# after the idle period: how long to wait for the probe byte's ACK (or an RST)
ACK_WAIT_S = 3.0
# an RST that follows the ACK (a device answering for a forgotten flow) comes quickly
AFTER_ACK_S = 0.3
IDLE_POLL_S = 0.2


def idle_waits(max_s: float) -> list[float]:
    """Round one: 1, 2, 4, ... seconds, and ``max_s`` itself."""
    waits: list[float] = []
    w = 1.0
    while w < max_s:
        waits.append(w)
        w *= 2
    return [*waits, float(max_s)]


def refine_waits(lo: float, hi: float, n: int = 3) -> list[float]:
    """Round two: ``n`` waits evenly inside (lo, hi)."""
    return [round(lo + (hi - lo) * (i + 1) / (n + 1), 2) for i in range(n)]


async def measure_idle(ep: Endpoint, max_s: float, connect_timeout: float) -> IdleResult:
    """How long an established TLS connection may idle before the path drops it.

    Every wait runs on its own connection, all at once, so the run takes about as long
    as the longest wait needed (not their sum); a second round narrows the interval.
    """
    probes = await _idle_round(ep, idle_waits(max_s), connect_timeout)
    bad = [p for p in probes if p.result in FAILED_IDLE]
    if bad and not any(p.closed_after_s is not None for p in bad):
        hi = min(p.wait_s for p in bad)
        lo = max((p.wait_s for p in probes if p.result == "alive" and p.wait_s < hi),
                 default=0.0)
        if hi - lo > 0.5:
            probes += await _idle_round(ep, refine_waits(lo, hi), connect_timeout)
    return IdleResult(max_s, tuple(sorted(probes, key=lambda p: p.wait_s)))


async def _idle_round(ep: Endpoint, waits: list[float], connect_timeout: float
                      ) -> list[IdleProbe]:
    import threading

    stops = {w: threading.Event() for w in waits}
    tasks = [asyncio.ensure_future(asyncio.to_thread(
        idle_probe, ep.address or "", ep.target.port, ep.family, ep.target.sni, w,
        connect_timeout, stops[w])) for w in waits]
    out: list[IdleProbe] = []
    try:
        for fut in asyncio.as_completed(tasks):
            p = await fut
            out.append(p)
            if p.result in FAILED_IDLE:
                # longer waits can only fail the same way: stop them now
                for w, ev in stops.items():
                    if w > p.wait_s:
                        ev.set()
    finally:
        for ev in stops.values():
            ev.set()  # threads notice within IDLE_POLL_S, also on Ctrl-C
    return out


def idle_probe(address: str, port: int, family: int, sni: str | None, wait_s: float,
               connect_timeout: float, stop: Any) -> IdleProbe:
    """One connection: a real handshake (Python ssl), ``wait_s`` idle, one byte, the verdict.

    Blocking; run in a thread. ``stop`` (a threading.Event) ends it early.
    """
    import ssl

    raw = socket.socket(family, socket.SOCK_STREAM)
    raw.settimeout(connect_timeout)
    try:
        raw.connect((address, port))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # measuring the path, not judging the certificate
        try:
            import warnings

            # the endpoint may be old: the idle timeout is about the path, not the policy
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            pass
        tls = ctx.wrap_socket(raw, server_hostname=sni)
    except (OSError, ssl.SSLError) as e:
        abort(raw)
        return IdleProbe(wait_s, "error", f"no established TLS connection: {e}")
    try:
        return _idle_then_poke(tls, wait_s, stop)
    finally:
        abort(tls)


def _idle_then_poke(tls: Any, wait_s: float, stop: Any) -> IdleProbe:
    import select

    from prober.net import tcpinfo

    t0 = time.monotonic()
    tls.setblocking(False)
    while (left := t0 + wait_s - time.monotonic()) > 0:
        if stop.is_set():
            return IdleProbe(wait_s, "cancelled")
        readable, _, _ = select.select([tls], [], [], min(left, IDLE_POLL_S))
        ev = _read_event(tls) if readable else "none"
        if ev in ("fin", "rst"):
            after = time.monotonic() - t0
            return IdleProbe(wait_s, "closed", f"{ev.upper()} from the peer after "
                             f"{after:.1f} s idle", closed_after_s=round(after, 2))
    try:
        tls.setblocking(True)
        tls.settimeout(ACK_WAIT_S)
        tls.sendall(b"\n")
        tls.setblocking(False)
    except OSError:
        return IdleProbe(wait_s, "reset", "the byte after the idle period could not be sent")
    sent = time.monotonic()
    acked_at: float | None = None
    while time.monotonic() - sent < ACK_WAIT_S:
        readable, _, _ = select.select([tls], [], [], 0.02)
        ev = _read_event(tls) if readable else "none"
        if ev == "rst":
            return IdleProbe(wait_s, "reset", "the byte sent after the idle period got RST")
        if ev == "fin":
            return IdleProbe(wait_s, "closed", "the peer closed (FIN) on the byte sent after "
                             "the idle period")
        if ev == "data":
            return IdleProbe(wait_s, "alive", "the peer answered")
        info = tcpinfo.read(tls)
        if acked_at is None and info is not None and info.all_acked:
            acked_at = time.monotonic()
        if acked_at is not None and time.monotonic() - acked_at > AFTER_ACK_S:
            return IdleProbe(wait_s, "alive", "the byte was ACKed")
    if acked_at is not None:
        return IdleProbe(wait_s, "alive", "the byte was ACKed")
    return IdleProbe(wait_s, "blackholed", f"the byte was not ACKed within {ACK_WAIT_S:.0f} s")


TCP_CLOSE = 7  # linux/tcp_states.h: what a socket is in after an RST (CLOSE_WAIT after FIN)


def _read_event(tls: Any) -> str:
    """none | data | fin | rst: what the peer just did."""
    import ssl

    from prober.net import tcpinfo

    try:
        data = tls.recv(4096)
    except ssl.SSLWantReadError:
        return "none"  # a record in part, or a TLS 1.3 session ticket: nothing for us
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
        data = b""
    except (ConnectionResetError, ConnectionAbortedError):
        return "rst"
    except (ssl.SSLError, OSError):
        return "rst"
    if data:
        return "data"
    # OpenSSL 3 reports an RST as an unexpected EOF: the TCP state tells them apart
    info = tcpinfo.read(tls)
    return "rst" if info is not None and info.state == TCP_CLOSE else "fin"
