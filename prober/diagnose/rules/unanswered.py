"""Hellos the TLS server never answers: an RST a device on the path injects (by TTL, or
sooner than the round trip allows), and silence (a proxy that ACKs and never answers, a
firewall that drops the data segments).
"""

from __future__ import annotations

from collections import Counter

from prober.core.outcome import Outcome
from prober.diagnose.findings import (
    HIGH,
    INJECTED_RESET,
    LOW,
    MEDIUM,
    PATH_DROP,
    SILENT_PROXY,
    Finding,
    RunView,
    Seen,
)
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import (
    counts,
    id_list,
    median,
    ms,
    round_trip_ms,
    unchecked_ttl,
)
from prober.diagnose.rules.ttl import rst, synack, ttl_compare, ttl_lines

# injected-reset by timing: a RST sooner than this fraction of the TCP round trip cannot
# come from the server; only judged when the round trip is long enough to measure
INJECTED_RTT_FRACTION = 0.5
INJECTED_MIN_RTT_MS = 2.0


def rule_silent(run: RunView, ctx: Ctx) -> list[Finding]:
    conn = [a for a in run.attempts if a.connected]
    out = []
    for outcome, fid in ((Outcome.HANG_ACKED, SILENT_PROXY), (Outcome.HANG_UNACKED, PATH_DROP)):
        hangs = [a for a in ctx.free(conn) if a.outcome == outcome]
        if not hangs:
            continue
        ctx.claim(hangs)
        n, m = len(hangs), len(conn)
        conf = HIGH if n >= 3 and n * 2 >= m else (MEDIUM if n >= 2 else LOW)
        waited = median(a.after_hello_ms() for a in hangs)
        ev = [f"{counts(hangs)} ({id_list(hangs)}); TCP round trip "
              f"{ms(round_trip_ms(hangs))} (kernel RTT)"]
        if outcome == Outcome.HANG_ACKED:
            acked = median(None if a.acked_ms is None or a.sent_ms is None
                           else a.acked_ms - a.sent_ms for a in hangs)
            ev.append(f"ClientHello ACKed within {ms(acked)}, then silence until the "
                      f"{ms(waited)} deadline")
            cause = (f"Something ACKs the ClientHello and never answers ({n}/{m} attempts)")
            nxt = ("Capture on the server to see whether the hello arrives at all; run the same "
                   "from another network and `prober diff` the two; if only some attempts "
                   "hang, vary the source port (it may be one member of an ECMP/LAG group).")
        else:
            ev.append(f"ClientHello never ACKed; {ms(waited)} of retransmissions")
            cause = (f"The TCP handshake completes but the ClientHello is never ACKed "
                     f"({n}/{m} attempts), whatever its size or SNI: a firewall drops "
                     "segments that carry data")
            nxt = ("Find the stateful firewall or IPS that lets SYNs through and drops data "
                   "(often an application-layer rule); compare from another network with "
                   "`prober diff`.")
        if run.control is not None:
            ev.append(f"control (connect, send nothing): the peer {run.control.text()}")
            if run.control.outcome == "fin":
                cause += f"; an idle connection is closed with FIN after " \
                         f"{run.control.waited_ms / 1000:.1f} s"
        ev += ttl_lines(hangs, "ACK")
        out.append(Finding(fid, conf, cause + ".", nxt, evidence=ev,
                           attempts=[a.id for a in hangs],
                           figures={"hung": n, "of": m, "silence_ms": waited},
                           unchecked=unchecked_ttl(run, "TTL of the ACK vs the SYN-ACK")))
    return out


def rule_injected(run: RunView, ctx: Ctx) -> list[Finding]:
    resets = [a for a in run.attempts if a.outcome == Outcome.RESET]
    by_ttl: list[tuple[Seen, int, str]] = []
    by_time: list[tuple[Seen, float, float]] = []
    rtt = round_trip_ms(run.attempts)
    for a in resets:
        ref, r = synack(a), rst(a)
        if ref is not None and r is not None:
            cmp = ttl_compare(r, ref)
            if cmp is not None:
                by_ttl.append((a, cmp[0], cmp[1]))
                continue
        after = a.after_hello_ms()
        if after is not None and rtt is not None and rtt >= INJECTED_MIN_RTT_MS and \
                after < INJECTED_RTT_FRACTION * rtt:
            by_time.append((a, after, rtt))
    if not by_ttl and not by_time:
        return []
    atts = [x[0] for x in by_ttl] + [x[0] for x in by_time]
    ctx.claim(atts)  # these resets are the device's: not the endpoint's policy
    if by_ttl:
        closer = Counter(x[1] for x in by_ttl).most_common(1)[0][0]
        where = (f"{closer} hop{'s' * (closer != 1)} closer than the server" if closer > 0
                 else "another device than the server")
        cause = (f"The RST comes from {where} ({len(by_ttl)}/{len(resets)} resets): a device on "
                 "the path injects it.")
        conf = HIGH
    else:
        after = median(x[1] for x in by_time)
        cause = (f"The RST arrives {ms(after)} after the ClientHello, sooner than the "
                 f"{ms(rtt)} round trip to the server allows ({len(by_time)}/{len(resets)} "
                 "resets): a device closer than the server sends it.")
        conf = MEDIUM
    ev = [f"id {a.id} ({a.profile}): {words}" for a, _, words in by_ttl[:4]]
    ev += [f"id {a.id} ({a.profile}): RST {ms(t)} after the hello; TCP round trip of the "
           f"run {ms(r)}" for a, t, r in by_time[:4]]
    return [Finding(
        INJECTED_RESET, conf, cause,
        "Find the firewall/IPS/proxy that resets these connections and what triggers it (the "
        "findings above: SNI, version, size); `--capture` from several vantage points and "
        "`prober diff` narrow down where it sits.",
        evidence=ev, attempts=[a.id for a in atts],
        unchecked=[] if by_ttl else unchecked_ttl(run, "TTL of the RST vs the SYN-ACK"))]
