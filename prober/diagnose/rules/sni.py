"""Hellos filtered on what they name: an SNI filter, and a DPI device that matches the
hello in one piece but does not reassemble it.
"""

from __future__ import annotations

from prober.core.outcome import CUT, HUNG, Outcome
from prober.diagnose.findings import (
    DPI_FRAGMENTATION,
    HIGH,
    MEDIUM,
    SNI_DROP,
    SNI_RESET,
    Finding,
    RunView,
)
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import (
    counts,
    how_text,
    id_list,
    main_outcome,
    mostly,
    reference_attempts,
    split_text,
)


def rule_sni(run: RunView, ctx: Ctx) -> list[Finding]:
    if not run.sni:
        return []
    real = [a for a in ctx.free(reference_attempts(run)) if a.sni == run.sni and a.connected]
    variants = run.of_profile("sni:none") + run.of_profile("sni:unrelated")
    fails = [a for a in real if not a.answered and a.connected]
    if not real or not mostly(real, lambda a: not a.answered) or not any(
            a.answered for a in variants):
        return []
    kind = main_outcome(fails)
    if kind in CUT:
        fid, verb = SNI_RESET, "reset" if kind == Outcome.RESET else "closed (FIN)"
    elif kind in HUNG:
        fid, verb = SNI_DROP, how_text(kind)
    else:
        return []
    same = [a for a in run.attempts if a.sni == run.sni and a.outcome == kind
            and a.id not in ctx.explained]
    conf = HIGH if len(fails) == len(real) and all(a.answered for a in variants) else MEDIUM
    ev = [f"real SNI {run.sni!r}: {counts(real)} ({id_list(real)})"]
    ev += [f"{p}: {counts(x)} — {x[0].detail} ({id_list(x)})"
           for p in ("sni:none", "sni:unrelated") if (x := run.of_profile(p))]
    if len(same) > len(fails):
        ev.append(f"every other hello naming {run.sni!r} too: {id_list(same)}")
    ctx.claim(same)
    return [Finding(
        fid, conf,
        f"Hellos naming {run.sni!r} are {verb} ({len(fails)}/{len(real)}) while the same hello "
        "without SNI or naming another host gets an answer: something filters on the SNI.",
        "Look for an SNI filter on the path (firewall or DPI category rule, an SNI-routing "
        "proxy with no route for this name); a run from another network, compared with "
        "`prober diff`, shows on which side it sits.",
        evidence=ev, attempts=[a.id for a in same],
        figures={"sni": run.sni, "failed": len(fails), "of": len(real)})]


def rule_dpi_fragmentation(run: RunView, ctx: Ctx) -> list[Finding]:
    plain = reference_attempts(run)
    split_rec = run.of_profile("records:split")
    split_seg = run.of_profile("segments:split")
    # blocked: cut or swallowed (a partial flight is the server answering, not a filter)
    if not plain or not mostly(plain, lambda a: a.outcome in CUT | HUNG):
        return []
    passed = [a for a in split_rec + split_seg if a.answered]
    if not passed:
        return []
    conf = HIGH if split_rec and all(a.answered for a in split_rec) and all(
        not a.answered for a in plain) else MEDIUM
    ev = [f"one record: {counts(plain)} ({id_list(plain)})"]
    ev += [f"{name}: {counts(x)} ({id_list(x)}; {split_text(x[0])})"
           for name, x in (("split over TLS records", split_rec),
                           ("split over TCP segments", split_seg)) if x]
    ctx.claim(a for a in plain if not a.answered)
    what = "TLS records" if any(a.profile == "records:split" for a in passed) else \
        "TCP segments"
    return [Finding(
        DPI_FRAGMENTATION, conf,
        f"The same ClientHello split over {what} gets through where it is blocked in one "
        "piece: a DPI device matches the hello (most likely its SNI) and does not "
        "reassemble fragments.",
        "The block is filtering on the path, not the server: find the inspecting device "
        "and its rule (category, SNI list); do not rely on fragmentation as a fix.",
        evidence=ev, attempts=[a.id for a in plain + passed])]
