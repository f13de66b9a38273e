"""What the endpoint refuses on purpose: versions refused with a TLS alert or with a
TCP RST/FIN (a balancer's security policy), every hello cut, and the summary of the
versions it accepts (info).
"""

from __future__ import annotations

from prober.core.outcome import CUT, Outcome
from prober.diagnose.findings import (
    HIGH,
    INFO,
    LOW,
    MEDIUM,
    MODERN,
    NO_SNI_SUFFIX,
    POLICY,
    POLICY_ALERT,
    POLICY_RESET,
    STEP_SWEEP,
    STEP_SWEEP_NO_SNI,
    SWEEP_PROFILES,
    SWEEP_VERSIONS,
    Finding,
    RunView,
    Seen,
)
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import (
    counts,
    id_list,
    main_outcome,
    median,
    mostly,
    ms,
    unchecked_ttl,
)
from prober.diagnose.rules.ttl import forged, ttl_lines

_REFUSED_HOW: dict[str, str] = {Outcome.RESET: "RST", Outcome.EOF: "FIN",
                                Outcome.HANG_ACKED: "no answer", Outcome.HANG_UNACKED: "dropped"}


def _accepted(atts: list[Seen]) -> bool:
    """The server chose this version: a full handshake, or a ServerHello whose flight then
    stalled (a path problem, not a refusal)."""
    return any(a.outcome == Outcome.OK or (a.outcome == Outcome.PARTIAL and a.version)
               for a in atts)


def _sweep(run: RunView) -> list[tuple[str, list[Seen]]]:
    """(version, attempts) of the version sweep, newest version first: the sweep without
    SNI where the plan ran one (every hello naming the target was filtered, so the
    sweep with SNI tells nothing about the server's versions)."""
    unnamed = _sweep_of(run, STEP_SWEEP_NO_SNI, NO_SNI_SUFFIX)
    if unnamed and any(a.answered for _, x in unnamed for a in x):
        return unnamed
    return _sweep_of(run, STEP_SWEEP, "")


def _sweep_of(run: RunView, step: str, suffix: str) -> list[tuple[str, list[Seen]]]:
    out = []
    for prof in reversed(SWEEP_PROFILES):
        # a hello that never went out (refused for load, say) says nothing of versions
        atts = [a for a in run.of_profile(prof + suffix) if a.step == step and a.connected]
        if atts:
            out.append((SWEEP_VERSIONS[prof], atts))
    return out


def _without_sni(sweep: list[tuple[str, list[Seen]]]) -> bool:
    return any(a.step == STEP_SWEEP_NO_SNI for _, x in sweep for a in x)


def rule_policy(run: RunView, ctx: Ctx) -> list[Finding]:
    # versions whose every attempt another rule explained (an SNI filter) say nothing here
    sweep = [(v, x) for v, x in _sweep(run) if ctx.free(x) or any(a.answered for a in x)]
    if not sweep:
        return []
    out: list[Finding] = []
    answered_any = any(a.answered for _, atts in sweep for a in atts)
    alerted = [(v, atts) for v, atts in sweep if all(a.outcome == Outcome.ALERT for a in atts)]
    modern = [(v, atts) for v, atts in alerted if v in MODERN]
    if modern:
        atts = [a for _, x in modern for a in x]
        names = ", ".join(v for v, _ in modern)
        alerts = ", ".join(sorted({a.alert or "?" for a in atts}))
        accepted = [v for v, x in sweep if _accepted(x)]
        tail = (f"clients that offer only {names} fail; the server accepts "
                f"{', '.join(accepted)}" if accepted else "no version offered was accepted")
        out.append(Finding(
            POLICY_ALERT, HIGH,
            f"The server refuses {names} with a TLS alert ({alerts}): a policy, not a fault; "
            f"{tail}.",
            f"If those clients matter, allow {names} in the server's TLS policy; `prober "
            f"policy {run.target}` lists the suites and the closest named policy.",
            evidence=[f"{v}: {counts(x)} ({x[0].detail}; {id_list(x)})" for v, x in alerted],
            attempts=[a.id for a in atts], figures={"versions": [v for v, _ in modern]}))
        ctx.claim(atts)
    # an RST whose TTL is not the endpoint's is a device's (injected-reset), not a policy
    cut = [(v, atts) for v, atts in sweep if mostly(atts, lambda a: a.outcome in CUT, 1.0)
           and not any(forged(a) for a in atts)]
    if cut and answered_any:
        atts = [a for _, x in cut for a in x]
        names = ", ".join(v for v, _ in cut)
        how = "RST" if main_outcome(atts) == Outcome.RESET else "FIN"
        after = median(a.after_hello_ms() for a in atts)
        acked = " (the hello was ACKed)" if all(a.acked for a in atts) else ""
        ev = [f"{v}: {counts(x)}, {how} {ms(median(a.after_hello_ms() for a in x))} after "
              f"the ClientHello ({id_list(x)})" for v, x in cut]
        cut_versions = {v for v, _ in cut}
        ev.append("other versions are answered: " + ", ".join(
            f"{v} {counts(x)}" for v, x in sweep if v not in cut_versions))
        ev += ttl_lines(atts)
        out.append(Finding(
            POLICY_RESET, HIGH,
            f"The endpoint refuses {names} with a TCP {how} instead of a TLS alert, "
            f"{ms(after)} after the ClientHello{acked}, as a cloud load balancer (AWS ALB) "
            "does: clients see 'connection reset by peer'.",
            f"Clients limited to {names} need an upgrade, or a security policy that still "
            "allows them; the balancer's connection logs (not its access logs) list the "
            "failed handshakes.",
            evidence=ev, attempts=[a.id for a in atts],
            figures={"versions": [v for v, _ in cut], "rst_after_ms": after},
            unchecked=unchecked_ttl(run, "TTL of the RST vs the SYN-ACK")))
        ctx.claim(atts)
    return out


def rule_all_cut(run: RunView, ctx: Ctx) -> list[Finding]:
    """Every ClientHello is cut, whatever it says: no version, SNI or size passes."""
    conn = [a for a in run.attempts if a.connected]
    if len(conn) < 3 or any(a.answered for a in conn) or not all(a.outcome in CUT
                                                                for a in conn):
        return []
    free = ctx.free(conn)
    if len(free) < len(conn):
        return []  # another rule (an injected RST, an SNI filter) names the cause
    ctx.claim(free)
    how = "RST" if main_outcome(conn) == Outcome.RESET else "FIN"
    return [Finding(
        POLICY_RESET, MEDIUM if len(conn) >= 5 else LOW,
        f"Every ClientHello is answered with a TCP {how} ({len(conn)}/{len(conn)}: all "
        "versions, with and without SNI, every size): the service refuses these clients "
        "before TLS, or it is not a TLS service.",
        "Check that this port serves TLS; if it does, look at what sits in front of it "
        "(balancer listener policy, firewall) and at its logs for these connections.",
        evidence=[f"{counts(conn)} ({id_list(conn)}); {how} "
                  f"{ms(median(a.after_hello_ms() for a in conn))} after the ClientHello",
                  *ttl_lines(conn)],
        attempts=[a.id for a in conn],
        unchecked=unchecked_ttl(run, "TTL of the RST vs the SYN-ACK"))]


def rule_policy_summary(run: RunView, ctx: Ctx) -> list[Finding]:
    sweep = _sweep(run)
    # nothing answered: there is no policy to speak of, only the findings above
    if not any(a.answered or _accepted([a]) for _, x in sweep for a in x):
        return []
    ok = [(v, x) for v, x in sweep if _accepted(x)]
    # a version whose every hello a filter took (an SNI rule, say) was never refused by
    # the server: it was not measured
    unmeasured = [(v, x) for v, x in sweep if not _accepted(x) and not ctx.free(x)
                  and not any(a.answered for a in x)]
    refused = [(v, x) for v, x in sweep if not _accepted(x) and (v, x) not in unmeasured]
    parts = []
    if ok:
        # a version only some attempts got (two backends, a flap) says so
        parts.append("accepts " + ", ".join(
            v if all(a.outcome == Outcome.OK for a in x) else
            f"{v} ({sum(1 for a in x if a.outcome == 'ok')}/{len(x)})" for v, x in ok))
    else:
        parts.append("accepts none of the versions measured" if unmeasured else
                     "accepts none of SSLv3 … TLSv1.3")
    by_how: dict[str, list[str]] = {}
    for v, x in refused:
        main = main_outcome(x)
        how = f"alert {x[0].alert}" if main == Outcome.ALERT and x[0].alert else \
            _REFUSED_HOW.get(main, main)
        by_how.setdefault(how, []).append(v)
    if by_how:
        parts.append("refuses " + "; ".join(f"{', '.join(vs)} ({how})"
                                           for how, vs in by_how.items()))
    if unmeasured:
        parts.append(f"{', '.join(v for v, _ in unmeasured)} not measured (their hellos were "
                     f"stopped on the path: {', '.join(sorted(ctx.found - {POLICY}))})")
    ev = [f"{v}: {counts(x)} — {next((a.detail for a in x if a.outcome == 'ok'), x[0].detail)}"
          f" ({id_list(x)})" for v, x in sweep]
    if _without_sni(sweep):
        # the hellos naming the target never reached the server: say whose answers these are
        parts.append(f"measured without SNI (hellos naming {run.sni!r} are filtered on the "
                     "path)")
    return [Finding(
        POLICY, INFO, "; ".join(parts) + ".",
        f"`prober policy {run.target}` for the suites, groups and the closest named policy.",
        evidence=ev, attempts=[a.id for _, x in sweep for a in x],
        figures={"accepted": [v for v, _ in ok], "refused": {v: main_outcome(x)
                                                             for v, x in refused},
                 "not_measured": [v for v, _ in unmeasured],
                 "without_sni": _without_sni(sweep)})]
