"""TLS_FALLBACK_SCSV (RFC 7507): hellos wrongly refused as fallbacks, refusals of a
fallback to a version the server accepts, and a server that ignores the signal.
"""

from __future__ import annotations

from prober.core.outcome import Outcome
from prober.diagnose.findings import (
    HIGH,
    INAPPROPRIATE_FALLBACK,
    LEGACY,
    LOW,
    STEP_FALLBACK,
    Finding,
    RunView,
)
from prober.diagnose.rules.context import Ctx


def rule_fallback(run: RunView, ctx: Ctx) -> list[Finding]:
    out = []
    wrong = [a for a in run.attempts if a.alert == "inappropriate_fallback"
             and a.step != STEP_FALLBACK]
    if wrong:
        ctx.claim(wrong)
        out.append(Finding(
            INAPPROPRIATE_FALLBACK, HIGH,
            f"Hellos that are not fallbacks get alert inappropriate_fallback ({len(wrong)}): "
            "something between you and the server retries them at a lower version with "
            "TLS_FALLBACK_SCSV (a downgrading proxy), or the server misjudges its own "
            "highest version.",
            "Find the TLS-aware proxy on the path (the server logs 'inappropriate fallback' "
            "for these connections); compare with a run from inside (`prober diff`).",
            evidence=[f"{a.profile}: {a.detail} (id {a.id})" for a in wrong],
            attempts=[a.id for a in wrong]))
    fb = run.of_step(STEP_FALLBACK)
    # the server accepted this version in the sweep, yet refuses a fallback to it
    refused = [a for a in fb if a.alert == "inappropriate_fallback"
               and a.meta.get("fallback_version") in LEGACY
               and a.meta.get("fallback_version") in a.meta.get("accepted", ())]
    if refused:
        versions = ", ".join(sorted({str(a.meta["fallback_version"]) for a in refused}))
        out.append(Finding(
            INAPPROPRIATE_FALLBACK, LOW,
            f"The endpoint still accepts {versions} but answers a client falling back to it "
            "(TLS_FALLBACK_SCSV) with alert inappropriate_fallback: old clients that retry "
            "after a failed first handshake are refused, and the server logs 'inappropriate "
            "fallback' for them.",
            "When the server logs such fallbacks, something broke those clients' first, newer "
            f"hello (a middlebox on their path, field case 2); if nothing needs {versions} "
            "any more, turn it off.",
            evidence=[f"{a.profile}: {a.detail} (id {a.id})" for a in refused] + [
                f"{v}: accepted by the sweep" for v in sorted(
                    {str(a.meta["fallback_version"]) for a in refused})],
            attempts=[a.id for a in refused]))
    if fb and all(a.outcome == Outcome.OK for a in fb):
        version = fb[0].meta.get("fallback_version") or fb[0].version or "a lower version"
        out.append(Finding(
            INAPPROPRIATE_FALLBACK, LOW,
            f"The endpoint accepts a {version} hello carrying TLS_FALLBACK_SCSV although it "
            "supports a newer version: its downgrade protection (RFC 7507) is off.",
            "Update the TLS library or terminator; OpenSSL, Go, Java and BoringSSL all "
            "enforce TLS_FALLBACK_SCSV.",
            evidence=[f"{a.profile}: {a.detail} (id {a.id})" for a in fb],
            attempts=[a.id for a in fb]))
    return out
