"""Idle timeout: how long an established connection may idle before the path drops it."""

from __future__ import annotations

from collections import Counter

from prober.diagnose.findings import (
    FAILED_IDLE,
    HIGH,
    IDLE_TIMEOUT,
    MEDIUM,
    Finding,
    RunView,
    idle_bounds,
)
from prober.diagnose.rules.context import Ctx


def rule_idle(run: RunView, ctx: Ctx) -> list[Finding]:
    if run.idle is None:
        return []
    probes = sorted(run.idle.probes, key=lambda p: p.wait_s)
    bounds = idle_bounds(probes)
    if bounds is None:
        return []
    lo, hi = bounds
    bad = [p for p in probes if p.result in FAILED_IDLE]
    closed = any(p.closed_after_s is not None for p in bad)
    how = Counter(p.result for p in bad).most_common(1)[0][0]
    if closed:
        cause = (f"The peer closes an established TLS connection after {hi:.1f} s idle "
                 f"(the connection ended while idle: {bad[0].detail}).")
    elif how == "reset":
        cause = (f"An established TLS connection idle for more than {lo:.1f} s (at most "
                 f"{hi:.1f} s) is forgotten by the path: the next segment is answered with RST, "
                 "as a balancer with an idle timeout (AWS NLB: 350 s) does.")
    elif how == "closed":
        cause = (f"An established TLS connection idle for more than {lo:.1f} s (at most "
                 f"{hi:.1f} s) is closed (FIN) when it is used again.")
    else:
        cause = (f"An established TLS connection idle for more than {lo:.1f} s (at most "
                 f"{hi:.1f} s) is dropped: the next segment is never ACKed (a stateful "
                 "firewall forgot the flow).")
    conf = HIGH if (closed or lo > 0) and len(bad) >= 2 else MEDIUM
    return [Finding(
        IDLE_TIMEOUT, conf, cause,
        f"Keep connections busier than {max(lo, 1.0):.0f} s (TCP keepalive or application "
        "pings), or raise the idle timeout of the balancer/firewall; let client pools "
        "expire idle connections sooner than that.",
        evidence=[f"idle {p.wait_s:.1f} s → {p.result}{': ' + p.detail if p.detail else ''}"
                  for p in probes if p.result != "cancelled"],
        figures={"idle_timeout_s_min": lo, "idle_timeout_s_max": hi, "how": how})]
