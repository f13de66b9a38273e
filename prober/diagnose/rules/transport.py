"""What TCP itself shows about the path and the endpoint's front door: new connections
refused above a rate (a rate limit, told apart from an endpoint that went down by how
the refusals fall in time and by retries after a back-off), and segments TCP had to
retransmit on connections that did succeed (a lossy path).
"""

from __future__ import annotations

import statistics

from prober.core.outcome import ANSWERED, Outcome
from prober.diagnose.findings import (
    HIGH,
    LOSSY_PATH,
    MEDIUM,
    RATE_LIMITED,
    Finding,
    RunView,
    Seen,
)
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import counts, id_list

# a refused connection, or a preamble turned away for load: what a rate limit answers
_THROTTLE_CODES = ("421",)
# the window in which attempt starts are counted to measure a rate
RATE_WINDOW_S = 1.0


def throttled(a: Seen) -> bool:
    if a.outcome == Outcome.REFUSED:
        return True
    return a.outcome == Outcome.STARTTLS_FAILED and any(
        f": {c} " in a.detail or a.detail.endswith(f": {c}") for c in _THROTTLE_CODES)


def rule_rate_limited(run: RunView, ctx: Ctx) -> list[Finding]:
    """Refusals interleaved with connections that pass, more than once over the run, and
    retries after a back-off that get in: a rate limit. An endpoint that went down
    refuses everything in one stretch of time (endpoint-flapping)."""
    every = sorted(run.attempts + run.retried, key=lambda a: (a.started_at, a.id))
    firsts = [a for a in every if a.retry_of is None]
    refused = [a for a in every if throttled(a)]
    if len(refused) < 2 or not any(a.connected for a in firsts):
        return []
    # separate runs of refusals among first tries, in the order they started (other
    # failures neither start nor end a run)
    runs, prev = 0, ""
    for a in firsts:
        state = "refused" if throttled(a) else "in" if a.connected else ""
        if state == "refused" and prev != "refused":
            runs += 1
        prev = state or prev
    retries = [a for a in every if a.retry_of is not None]
    got_in = [a for a in retries if a.connected]
    if runs < 2 or (retries and not got_in):
        return []
    ctx.claim(refused)
    passed = [a for a in every if a.connected]
    allowed = _max_in_window(passed)
    tried = statistics.median(_starts_before(every, a) for a in refused)
    how = "refused (RST to the SYN)" if all(a.outcome == Outcome.REFUSED for a in refused) \
        else "turned away (" + refused[0].detail + ")"
    ev = [f"{len(refused)} of {len(every)} connection attempts {how} ({id_list(refused)}), "
          f"in {runs} separate bursts between connections that got in",
          f"at most {allowed} connections got in within any {RATE_WINDOW_S:g} s; the refused "
          f"ones came when ~{tried:.0f} had started in the {RATE_WINDOW_S:g} s before",
          f"retried after a back-off: {counts(retries)} ({id_list(retries)})" if retries
          else "no retries were made"]
    return [Finding(
        RATE_LIMITED, HIGH if got_in and runs >= 3 else MEDIUM,
        f"New connections above ~{allowed} per second are {how}, and get in when retried "
        "after a back-off: a connection rate limit in front of the endpoint (not a policy, "
        "not an outage: the same hellos succeed when slower).",
        "Probe with --rate below the limit (e.g. --rate "
        f"{max(1, allowed - 1)}); if real clients hit it, raise the limit (firewall, "
        "balancer or server connection throttling) or have them reuse connections.",
        evidence=ev, attempts=[a.id for a in refused],
        figures={"refused": len(refused), "of": len(every), "bursts": runs,
                 "allowed_per_s": allowed, "started_per_s_when_refused": tried,
                 "retried": len(retries), "retries_in": len(got_in)})]


def _max_in_window(atts: list[Seen]) -> int:
    starts = sorted(a.started_at for a in atts)
    best, j = 0, 0
    for i, t in enumerate(starts):
        while starts[j] < t - RATE_WINDOW_S:
            j += 1
        best = max(best, i - j + 1)
    return best


def _starts_before(every: list[Seen], a: Seen) -> int:
    return sum(1 for b in every if a.started_at - RATE_WINDOW_S <= b.started_at <= a.started_at)


# a connection that needed a retransmission; the share of answered ones that makes a
# path lossy rather than one unlucky packet
LOSSY_MIN = 3
LOSSY_SHARE = 0.1


def rule_lossy_path(run: RunView, ctx: Ctx) -> list[Finding]:
    """Handshakes that completed although TCP had to retransmit: loss the path recovered
    from (each costs at least one retransmission timeout). Failed attempts with
    retransmissions on such a path are its victims, not a filter's."""
    answered = [a for a in run.attempts if a.outcome in ANSWERED and a.retransmits is not None]
    lossy = [a for a in answered if (a.retransmits or 0) > 0]
    if len(lossy) < LOSSY_MIN or len(lossy) < LOSSY_SHARE * len(answered):
        return []
    segs = sum(a.retransmits or 0 for a in lossy)
    # a hello lost again and again, or a SYN lost twice (a connect timeout), on a path
    # that loses packets: its victims, not a filter's or an outage's
    victims = [a for a in ctx.free(run.attempts + run.retried)
               if (a.connected and not a.answered and (a.retransmits or 0) > 0)
               or a.outcome == Outcome.CONNECT_TIMEOUT]
    ctx.claim(victims)
    slow = statistics.median(a.total_ms or 0 for a in lossy)
    fast = [a.total_ms or 0 for a in answered if not a.retransmits]
    share = len(lossy) / len(answered)
    ev = [f"{len(lossy)}/{len(answered)} answered connections needed retransmissions "
          f"({segs} segments retransmitted; {id_list(lossy)})",
          f"median attempt {slow:.0f} ms with retransmissions vs "
          f"{statistics.median(fast):.0f} ms without" if fast else
          f"median attempt {slow:.0f} ms"]
    if victims:
        ev.append(f"failed with retransmissions, most likely lost: {counts(victims)} "
                  f"({id_list(victims)})")
    return [Finding(
        LOSSY_PATH, HIGH if share >= 0.2 else MEDIUM,
        f"The path loses packets: {share:.0%} of the handshakes that succeeded needed TCP "
        f"retransmissions ({segs} segments), each costing a retransmission timeout; "
        "clients see slow or failed connections at random.",
        "Look for the lossy link (errors or drops on an interface, an overloaded link, a "
        "flaky Wi-Fi/VPN hop): mtr/ping from here to the endpoint, and interface counters "
        "on the way.",
        evidence=ev, attempts=[a.id for a in lossy + victims],
        figures={"retransmitting": len(lossy), "of": len(answered),
                 "segments_retransmitted": segs, "share": round(share, 3)})]
