"""Rules: pure functions from a run's results (:class:`RunView`) to findings.

Each rule names one cause, with the attempt ids and figures that show it, a confidence
and what to do next. Rules run in a fixed order over a shared set of attempt ids that
are already explained, so a cause named by a specific rule (an SNI filter, a size
limit) is not reported again by a generic one (a silent device).

The rules live in modules named for what they diagnose (``policy``, ``sni``, ``size``,
``fallback``, ``unanswered``, ``interception``, ``intermittent``, ``idle``) over three
shared ones (``context``: what is explained so far; ``evidence``: figures and words;
``ttl``: TTL arithmetic). The order they run in is :data:`RULES`, here.
"""

from __future__ import annotations

from prober.core.outcome import Outcome
from prober.diagnose.findings import (
    CONFIDENCE_ORDER,
    ENDPOINT_UNREACHABLE,
    FAILED_IDLE,
    INJECTED_RESET,
    LEGACY,
    MODERN,
    PATH_DROP,
    POLICY_RESET,
    PORT_CLOSED,
    SILENT_PROXY,
    STEP_FALLBACK,
    STEP_SWEEP,
    WRONG_SERVICE,
    Finding,
    RunView,
)
from prober.diagnose.rules.context import Ctx, Rule
from prober.diagnose.rules.evidence import counts, id_list, median, ms, round_trip_ms
from prober.diagnose.rules.fallback import rule_fallback
from prober.diagnose.rules.idle import rule_idle
from prober.diagnose.rules.interception import (
    TERMINATOR_EXTRA_MS,
    TERMINATOR_FACTOR,
    rule_interception,
    rule_near_terminator,
)
from prober.diagnose.rules.intermittent import rule_flapping, rule_intermittent
from prober.diagnose.rules.policy import rule_all_cut, rule_policy, rule_policy_summary
from prober.diagnose.rules.server import (
    rule_client_certificate,
    rule_sni_required,
    rule_version_intolerance,
)
from prober.diagnose.rules.service import rule_no_tls
from prober.diagnose.rules.size import ONE_SEGMENT_MIN, rule_mtu, rule_segmentation, rule_size
from prober.diagnose.rules.sni import rule_dpi_fragmentation, rule_sni
from prober.diagnose.rules.transport import rule_lossy_path, rule_rate_limited
from prober.diagnose.rules.ttl import hops, initial_ttl, rst, synack, ttl_compare
from prober.diagnose.rules.unanswered import (
    INJECTED_MIN_RTT_MS,
    INJECTED_RTT_FRACTION,
    rule_injected,
    rule_silent,
)

# every public name of the former single module stays importable from here
__all__ = [
    "INJECTED_MIN_RTT_MS",
    "INJECTED_RTT_FRACTION",
    "LEGACY",
    "MODERN",
    "ONE_SEGMENT_MIN",
    "RULES",
    "TERMINATOR_EXTRA_MS",
    "TERMINATOR_FACTOR",
    "Rule",
    "counts",
    "evaluate",
    "hops",
    "id_list",
    "initial_ttl",
    "median",
    "ms",
    "notes",
    "round_trip_ms",
    "rst",
    "rule_all_cut",
    "rule_client_certificate",
    "rule_dpi_fragmentation",
    "rule_fallback",
    "rule_flapping",
    "rule_idle",
    "rule_injected",
    "rule_interception",
    "rule_intermittent",
    "rule_lossy_path",
    "rule_mtu",
    "rule_near_terminator",
    "rule_no_tls",
    "rule_policy",
    "rule_policy_summary",
    "rule_rate_limited",
    "rule_segmentation",
    "rule_silent",
    "rule_size",
    "rule_sni",
    "rule_sni_required",
    "rule_version_intolerance",
    "synack",
    "ttl_compare",
]


def evaluate(run: RunView) -> list[Finding]:
    """All findings of a run: problems by confidence, then the info-level policy; when
    nothing TLS-like was measured, the finding that says what answered instead first."""
    ctx = Ctx()
    out: list[Finding] = []
    for rule in RULES:
        got = rule(run, ctx)
        ctx.found.update(f.id for f in got)
        out += got
    first = NO_TLS_FIRST if run.no_tls() is not None else ()
    return sorted(out, key=lambda f: (f.id not in first,
                                      CONFIDENCE_ORDER.get(f.confidence, 9)))


# the findings that can name why no TLS endpoint was measured, in the order they are put
NO_TLS_FIRST = (WRONG_SERVICE, PORT_CLOSED, ENDPOINT_UNREACHABLE, INJECTED_RESET, SILENT_PROXY,
                PATH_DROP, POLICY_RESET)


# the order is part of the verdict: a rule skips the attempts an earlier one explained,
# and may defer to an id raised before it (size-drop to segmentation-drop)
RULES: tuple[Rule, ...] = (
    rule_no_tls, rule_rate_limited, rule_lossy_path, rule_flapping, rule_sni,
    rule_sni_required, rule_dpi_fragmentation, rule_version_intolerance, rule_policy,
    rule_segmentation, rule_size, rule_mtu, rule_fallback, rule_injected, rule_all_cut,
    rule_silent, rule_near_terminator, rule_interception, rule_client_certificate,
    rule_intermittent, rule_idle, rule_policy_summary,
)


def notes(run: RunView) -> list[str]:
    """What this run could not check, in words."""
    out = []
    if not run.sni:
        out.append("SNI filtering: the target is an address and no --sni was given (only "
                   "an unrelated name was tried)")
    if run.capture is None:
        out.append("TTL / IP ID / window of the replies: not recorded (--capture, as root "
                   "or with CAP_NET_RAW)")
    elif run.capture != "ok":
        out.append(f"TTL / IP ID / window of the replies: --capture failed: {run.capture}")
    if run.idle is None:
        out.append("idle timeout: not measured (--idle-timeout MAX)")
    elif not any(p.result in FAILED_IDLE for p in run.idle.probes):
        alive = [p.wait_s for p in run.idle.probes if p.result == "alive"]
        out.append(f"idle timeout: none up to {max(alive, default=0):.0f} s" if alive else
                   "idle timeout: no established connection could be made")
    sweep = run.of_step(STEP_SWEEP)
    if not run.of_step(STEP_FALLBACK) and sweep:
        why = ("no version below the newest accepted one" if any(
            a.outcome == Outcome.OK for a in sweep) else "no version was accepted")
        out.append(f"TLS_FALLBACK_SCSV: not tested ({why})")
    if run.expect_issuer is None and not run.pins:
        out.append("certificate issuer: not checked against an expectation "
                   "(--expect-issuer / --pin-sha256, or `prober diff` with another vantage)")
    if not run.complete:
        out.append("the run was interrupted: later steps are missing")
    return out
