"""Path faults that depend on how large or how split the packets are: a ClientHello
split over segments or records, a ClientHello size limit, and a server flight larger
than the path MTU (a blackhole).
"""

from __future__ import annotations

from prober.core.outcome import Outcome
from prober.diagnose.findings import (
    HIGH,
    MEDIUM,
    MTU_BLACKHOLE,
    SEGMENTATION_DROP,
    SIZE_DROP,
    SIZE_WINDOW,
    STEP_BISECT,
    STEP_SIZE,
    Finding,
    RunView,
    Seen,
)
from prober.diagnose.plan import bisect_bounds, size_runs
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import (
    counts,
    how_text,
    id_list,
    main_outcome,
    median,
    mostly,
    reference_attempts,
    split_text,
)

# a ClientHello below this always fits one TCP segment (IPv6 minimum MTU 1280, minus
# headers and options): where TCP_INFO gave no MSS, a size threshold above it can be the
# second segment instead
ONE_SEGMENT_MIN = 1200


def _one_segment_max(attempts: list[Seen]) -> int:
    """The largest hello these connections sent in one TCP segment: their send MSS
    (TCP_INFO), else the size every path carries whole."""
    mss = [a.snd_mss for a in attempts if a.snd_mss]
    return min(mss) if mss else ONE_SEGMENT_MIN


def rule_segmentation(run: RunView, ctx: Ctx) -> list[Finding]:
    plain = reference_attempts(run)
    if not plain or not mostly(plain, lambda a: a.answered):
        return []
    out = []
    for prof, words in (("segments:split", "over two TCP segments"),
                        ("records:split", "over several TLS records")):
        x = [a for a in run.of_profile(prof) if a.connected]
        if not x or any(a.answered for a in x):
            continue
        ctx.claim(x)
        out.append(Finding(
            SEGMENTATION_DROP, HIGH if len(x) >= 2 and all(a.answered for a in plain)
            else MEDIUM,
            f"The known-good ClientHello split {words} fails ({counts(x)}) though it passes "
            f"in one piece ({counts(plain)}): a device on the path mishandles a hello spread "
            "over several packets, as large (post-quantum) hellos always are.",
            "Find the middlebox that reassembles ClientHellos (IPS, SNI proxy, old balancer) "
            "and update or bypass it; hellos above one MSS (~1.4 kB) will break there.",
            evidence=[f"one piece: {counts(plain)} ({id_list(plain)})",
                      f"split: {counts(x)} — {x[0].detail} ({id_list(x)}; {split_text(x[0])})"],
            attempts=[a.id for a in x]))
    return out


def rule_size(run: RunView, ctx: Ctx) -> list[Finding]:
    rungs = sorted(run.of_step(STEP_SIZE, STEP_BISECT), key=lambda a: a.hello_bytes)
    rungs = [a for a in rungs if a.connected]
    # the threshold the plan bisected on, so the finding names the same bounds
    bounds = bisect_bounds(rungs)
    if bounds is None:
        # not a threshold: a window of sizes, or nothing size-shaped (intermittent's)
        return _size_window(run, ctx, rungs)
    largest_ok, smallest_bad = bounds
    failed = [a for a in rungs if not a.answered]
    if SEGMENTATION_DROP in ctx.found and smallest_bad > _one_segment_max(failed):
        # a hello this large needs a second segment: the segmentation finding covers it
        ctx.claim(a for a in run.attempts if a.connected and not a.answered
                  and a.hello_bytes >= smallest_bad)
        return []
    kind = main_outcome(failed)
    hit = [a for a in run.attempts if a.connected and not a.answered
           and a.hello_bytes >= smallest_bad and a.id not in ctx.explained]
    ctx.claim(hit)
    pq = "post-quantum hellos (X25519MLKEM768, ~1.8 kB) break" if smallest_bad <= 1900 else (
        "hellos this large are rare today")
    bisected = [a for a in rungs if a.step == STEP_BISECT]
    return [Finding(
        SIZE_DROP, HIGH if len(failed) >= 2 else MEDIUM,
        f"ClientHellos of {smallest_bad} bytes and more are {how_text(kind)}, {largest_ok} bytes "
        f"and less pass: a size-dependent drop on the path; {pq}.",
        "Find the device with a ClientHello size limit (firewall/IPS, old load balancer, "
        "MTU mismatch on a tunnel); meanwhile clients can turn off the post-quantum key share.",
        evidence=[f"{a.profile}: {a.hello_bytes} bytes → {a.outcome} (id {a.id})"
                  for a in rungs],
        attempts=[a.id for a in hit],
        figures={"breaking_bytes": smallest_bad, "largest_passing_bytes": largest_ok,
                 "bisection_steps": len(bisected)})]


def rule_mtu(run: RunView, ctx: Ctx) -> list[Finding]:
    got_bytes = [a for a in run.attempts if a.server_bytes > 0]
    stalled = [a for a in ctx.free(got_bytes)
               if a.outcome == Outcome.PARTIAL and a.end == "timeout"]
    # consistent per profile: a flight larger than the path MTU stalls every time, while
    # smaller flights (another certificate, another version) may well pass
    profiles = {a.profile for a in stalled}
    same = [a for a in run.attempts if a.profile in profiles and a.connected]
    if not stalled or (len(stalled) < 2 and len(stalled) < len(got_bytes)) or \
            len(stalled) < 0.8 * len(same):
        return []
    ctx.claim(stalled)
    got = median(float(a.server_bytes) for a in stalled)
    msgs = stalled[0].server_messages
    seen = ", ".join(msgs) if msgs else "no whole message"
    return [Finding(
        MTU_BLACKHOLE, HIGH if len(stalled) >= 3 else MEDIUM,
        f"The server's first bytes arrive ({seen}), then the rest of its flight never does "
        f"({len(stalled)}/{len(same)} attempts stall after ~{got:.0f} bytes): full-size "
        "packets from the server are lost — a path-MTU blackhole.",
        "Allow ICMP 'fragmentation needed' (IPv4 type 3 code 4, IPv6 type 2) on the path, or "
        "clamp the TCP MSS / lower the MTU at the tunnel or VPN; `ping -M do -s 1472` "
        "towards the server finds the largest packet that passes.",
        evidence=[f"{counts(stalled)}: {stalled[0].detail} ({id_list(stalled)})"],
        attempts=[a.id for a in stalled], figures={"bytes_before_stall": got})]


def _size_window(run: RunView, ctx: Ctx, rungs: list[Seen]) -> list[Finding]:
    """Hellos in one window of sizes fail while both smaller and larger ones pass (the
    F5 padding bug did this to 256-511 bytes): both bounds, as bisected."""
    runs = size_runs(rungs)
    if len(runs) != 3 or runs[0][0] is not True or runs[1][0] is not False:
        return []
    below, window, above = runs[0][1], runs[1][1], runs[2][1]
    if len(window) < 2:
        return []  # one lost hello is no window
    lo_ok, lo_bad = below[-1].hello_bytes, window[0].hello_bytes
    hi_bad, hi_ok = window[-1].hello_bytes, above[0].hello_bytes
    kind = main_outcome(window)
    hit = [a for a in run.attempts if a.connected and not a.answered
           and lo_bad <= a.hello_bytes <= hi_bad and a.id not in ctx.explained]
    ctx.claim(hit)
    return [Finding(
        SIZE_WINDOW, HIGH if len(window) >= 3 else MEDIUM,
        f"ClientHellos from {lo_bad} to {hi_bad} bytes are {how_text(kind)}, while "
        f"{lo_ok} bytes and less and {hi_ok} bytes and more pass: a device on the path "
        "mishandles a window of hello sizes (not a size limit: larger hellos get through); "
        "clients whose hello falls in it fail every time.",
        "Find the device (load balancer, firewall or IPS firmware with a hello-parsing "
        "bug) and update it; meanwhile clients can pad their hello out of the window "
        "(RFC 7685 padding).",
        evidence=[f"{a.profile}: {a.hello_bytes} bytes → {a.outcome} (id {a.id})"
                  for a in sorted(rungs, key=lambda a: a.hello_bytes)],
        attempts=[a.id for a in hit],
        figures={"window_bytes": [lo_bad, hi_bad], "passing_below_bytes": lo_ok,
                 "passing_above_bytes": hi_ok,
                 "bisection_steps": len([a for a in rungs if a.step == STEP_BISECT])})]
