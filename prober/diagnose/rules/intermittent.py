"""Results that change: identical attempts answered differently (distinct backends, one
broken ECMP/LAG member) or an endpoint that goes down during the run.
"""

from __future__ import annotations

from prober.core.outcome import Outcome
from prober.diagnose.findings import (
    ENDPOINT_FLAPPING,
    HIGH,
    INTERMITTENT,
    MEDIUM,
    MIXED_CERTIFICATES,
    STEP_BISECT,
    STEP_SANITY_FIRST,
    STEP_SANITY_LAST,
    SWEEP_VERSIONS,
    Finding,
    RunView,
    Seen,
)
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import counts, id_list


def _port_correlation(atts: list[Seen]) -> str | None:
    """Words for how the outcome follows the source port, when it clearly does."""
    ported = [a for a in atts if a.local_port is not None]
    if len({a.answered for a in ported}) < 2:
        return None
    for k in (2, 4, 8):
        if len(ported) < 3 * k:
            break
        groups: dict[int, set[bool]] = {}
        for a in ported:
            groups.setdefault(int(a.local_port or 0) % k, set()).add(a.answered)
        if all(len(v) == 1 for v in groups.values()):
            good = sorted(r for r, v in groups.items() if True in v)
            return (f"the outcome follows the source port (port mod {k} in {good} succeed): "
                    "consistent with ECMP/LAG hashing on the 5-tuple")
    return None


def rule_intermittent(run: RunView, ctx: Ctx) -> list[Finding]:
    skip = (STEP_SANITY_FIRST, STEP_SANITY_LAST, STEP_BISECT)
    cells: dict[str, list[Seen]] = {}
    # an attempt another rule explained (lost on a lossy path, say) makes no cell mixed
    for a in ctx.free(run.attempts):
        if a.step not in skip and a.connected:
            cells.setdefault(a.profile, []).append(a)
    mixed = {p: x for p, x in cells.items() if len(x) >= 2 and len({a.outcome for a in x}) > 1}
    certs: dict[str, set[str]] = {}
    negs: dict[str, set[str]] = {}
    for p, x in cells.items():
        certs[p] = {a.cert_sha256 for a in x if a.outcome == Outcome.OK and a.cert_sha256}
        negs[p] = {f"{a.version} {a.suite}" for a in x if a.outcome == Outcome.OK}
    multi_cert = {p for p, s in certs.items() if len(s) > 1}
    multi_neg = {p for p, s in negs.items() if len(s) > 1}
    if not mixed and not multi_cert and not multi_neg:
        return []
    if not mixed and not multi_neg:
        # every answer is the same but for the certificate: not intermittent, one backend
        # (or one node of a cluster) serves another certificate
        return _mixed_certificates(run, cells)
    ref = cells.get("known-good") or max(cells.values(), key=len)
    ok = sum(1 for a in ref if a.answered)
    ev = [f"{p}: {counts(x)} ({id_list(x)})" for p, x in mixed.items()]
    all_certs = set().union(*certs.values()) if certs else set()
    backends = []
    if len(all_certs) > 1 and multi_cert:
        backends.append(f"{len(all_certs)} certificates")
        for c in sorted(all_certs):
            holders = [a for x in cells.values() for a in x if a.cert_sha256 == c]
            ev.append(f"certificate {c[:16]}… ({holders[0].cert_subject}; issuer "
                      f"{holders[0].cert_issuer}): {id_list(holders)}")
    if multi_neg:
        backends.append("different negotiated parameters")
        ev += [f"{p}: " + " | ".join(sorted(negs[p])) for p in sorted(multi_neg)]
    if len(mixed) > 1 or (mixed and any(p in SWEEP_VERSIONS for p in mixed)):
        backends.append("different answers to the same hello")
    corr = _port_correlation(ref)
    ports = sorted({a.local_port for a in ref if a.local_port})
    ev.append(corr or f"no correlation with the source port seen ({len(ports)} distinct ports)")
    fail_ports = [a.local_port for a in ref if not a.answered]
    if fail_ports:
        ev.append(f"failed from ports {fail_ports[:10]}")
    rate = f"the known-good hello succeeds {ok}/{len(ref)}"
    who = f"; answers come from distinct backends ({', '.join(backends)})" if backends else ""
    strong = (ref and 2 <= ok <= len(ref) - 2) or len(multi_cert | multi_neg) > 0 or \
        len(mixed) > 1
    return [Finding(
        INTERMITTENT, HIGH if strong else MEDIUM,
        f"Identical attempts get different results: {rate}{who}.",
        "Repeat with more attempts (-n 50) and compare what differs (certificate, version, "
        "outcome): one backend behind the balancer is configured differently, or one path "
        "(ECMP/LAG member, one proxy node) is broken.",
        evidence=ev, attempts=[a.id for x in mixed.values() for a in x],
        figures={"success": ok, "of": len(ref), "certificates": sorted(all_certs),
                 "port_correlation": corr})]


def rule_flapping(run: RunView, ctx: Ctx) -> list[Finding]:
    # a connect failure whose retry got in still shows the outage
    atts = sorted(run.attempts + run.retried, key=lambda a: (a.started_at, a.id))
    if not atts:
        return []
    nc = [a for a in ctx.free(atts) if not a.connected]
    first = run.of_step(STEP_SANITY_FIRST)
    last = run.of_step(STEP_SANITY_LAST)
    ev = []
    changed = bool(first and last and (first[0].connected, first[0].answered) !=
                   (last[0].connected, last[0].answered))
    if changed:
        ev.append(f"sanity first: {first[0].outcome} (id {first[0].id}); last: "
                  f"{last[0].outcome} (id {last[0].id})")
    if (not nc and not changed) or len(nc) == len(atts):
        # never connected: not a flap but a closed or unreachable port (rules.service)
        return []
    if nc:
        t0 = atts[0].started_at
        ev.append(f"{counts(nc)} could not connect ({id_list(nc)}), between "
                  f"{nc[0].started_at - t0:.1f} s and {nc[-1].started_at - t0:.1f} s into "
                  "the run; the others connected")
    ctx.claim(nc)
    conf = HIGH if (changed and nc) or len(nc) >= 2 else MEDIUM
    return [Finding(
        ENDPOINT_FLAPPING, conf,
        f"The endpoint went down or flapped during the run ({len(nc)} connect failure"
        f"{'s' * (len(nc) != 1)} among {len(atts)} attempts"
        f"{'; it changed between the first and the last sanity probe' if changed else ''}).",
        "Check the endpoint's (and its balancer targets') health over the run's time window; "
        "rerun to see whether it recovers.",
        evidence=ev, attempts=[a.id for a in nc + first + last])]


def _mixed_certificates(run: RunView, cells: dict[str, list[Seen]]) -> list[Finding]:
    oks = [a for x in cells.values() for a in x if a.outcome == Outcome.OK and a.cert_sha256]
    by: dict[str, list[Seen]] = {}
    for a in oks:
        by.setdefault(a.cert_sha256 or "", []).append(a)
    when = max((a.started_at for a in oks), default=0.0)
    issuers = {x[0].cert_issuer for x in by.values()}
    ev, shares, problems = [], {}, []
    for sha, x in sorted(by.items(), key=lambda kv: -len(kv[1])):
        a = x[0]
        expired = _expired(a.cert_not_after, when)
        share = len(x) / len(oks)
        shares[sha] = round(share, 3)
        notes = [w for w, yes in (("EXPIRED", expired),
                                  ("another issuer", len(issuers) > 1 and a.cert_issuer !=
                                   max(by.values(), key=len)[0].cert_issuer)) if yes]
        if notes:
            problems.append(f"{sha[:16]}… ({', '.join(notes)})")
        ev.append(f"certificate {sha[:16]}… {len(x)}/{len(oks)} ({share:.0%}): {a.cert_subject}; "
                  f"issuer {a.cert_issuer}; not after {a.cert_not_after}"
                  f"{' — ' + ', '.join(notes) if notes else ''} ({id_list(x)})")
    ports = _port_correlation_certs(oks)
    if ports:
        ev.append(ports)
    bad = f": {'; '.join(problems)}" if problems else ""
    return [Finding(
        MIXED_CERTIFICATES, HIGH if problems or len(oks) >= 6 else MEDIUM,
        f"Identical handshakes succeed with {len(by)} different certificates "
        f"({', '.join(f'{v:.0%}' for v in shares.values())} of {len(oks)}){bad}: the "
        "backends behind this name differ only in their certificate, so some clients "
        "(those that check it, or pin it) fail some of the time.",
        "Deploy the same certificate to every backend (or node) behind the name; look for "
        "the one that missed a renewal or was set up by hand.",
        evidence=ev, attempts=[a.id for a in oks],
        figures={"certificates": sorted(by), "shares": shares,
                 "problems": problems, "of": len(oks)})]


def _expired(not_after: str | None, when: float) -> bool:
    import datetime as dt

    if not not_after or not when:
        return False
    try:
        t = dt.datetime.fromisoformat(not_after)
    except ValueError:
        return False
    return t.timestamp() < when


def _port_correlation_certs(oks: list[Seen]) -> str | None:
    """Which certificate a connection got, against its source port (hashing balancers)."""
    ported = [a for a in oks if a.local_port is not None]
    if len({a.cert_sha256 for a in ported}) < 2:
        return None
    for k in (2, 4):
        if len(ported) < 3 * k:
            break
        groups: dict[int, set[str | None]] = {}
        for a in ported:
            groups.setdefault(int(a.local_port or 0) % k, set()).add(a.cert_sha256)
        if all(len(v) == 1 for v in groups.values()):
            return (f"the certificate follows the source port (port mod {k}): a balancer "
                    "hashing the 5-tuple picks the backend")
    return None
