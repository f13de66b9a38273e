"""Rules: pure functions from a run's results (:class:`RunView`) to findings.

Each rule names one cause, with the attempt ids and figures that show it, a confidence
and what to do next. Rules run in a fixed order over a shared set of attempt ids that
are already explained, so a cause named by a specific rule (an SNI filter, a size
limit) is not reported again by a generic one (a silent device).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prober.diagnose.findings import (
    CONFIDENCE_ORDER,
    CUT,
    DPI_FRAGMENTATION,
    ENDPOINT_FLAPPING,
    FAILED_IDLE,
    HIGH,
    HUNG,
    IDLE_TIMEOUT,
    INAPPROPRIATE_FALLBACK,
    INFO,
    INJECTED_RESET,
    INTERMITTENT,
    LOW,
    MEDIUM,
    MTU_BLACKHOLE,
    NEAR_TCP_TERMINATOR,
    PATH_DROP,
    POLICY,
    POLICY_ALERT,
    POLICY_RESET,
    SEGMENTATION_DROP,
    SILENT_PROXY,
    SIZE_DROP,
    SNI_DROP,
    SNI_RESET,
    STEP_BISECT,
    STEP_FALLBACK,
    STEP_REPEAT,
    STEP_SANITY_FIRST,
    STEP_SANITY_LAST,
    STEP_SIZE,
    STEP_SWEEP,
    SWEEP_PROFILES,
    SWEEP_VERSIONS,
    TLS_INTERCEPTION,
    Finding,
    Packet,
    RunView,
    Seen,
)

# near-tcp-terminator: the ServerHello must lag the TCP round trip by this much (ms) and
# by this factor before a device closer than the server is suspected; below that, the
# server's own handshake work (a few ms) explains the gap
TERMINATOR_EXTRA_MS = 20.0
TERMINATOR_FACTOR = 4.0
# injected-reset by timing: a RST sooner than this fraction of the TCP round trip cannot
# come from the server; only judged when the round trip is long enough to measure
INJECTED_RTT_FRACTION = 0.5
INJECTED_MIN_RTT_MS = 2.0
MODERN = ("TLSv1.2", "TLSv1.3")
LEGACY = ("TLSv1.1", "TLSv1.0", "SSLv3")
# a ClientHello below this always fits one TCP segment (IPv6 minimum MTU 1280, minus
# headers and options): a size threshold above it can be the second segment instead
ONE_SEGMENT_MIN = 1200


@dataclass
class _Ctx:
    explained: set[int] = field(default_factory=set)
    found: set[str] = field(default_factory=set)  # ids raised so far

    def claim(self, atts: Iterable[Seen]) -> None:
        self.explained.update(a.id for a in atts)

    def free(self, atts: Iterable[Seen]) -> list[Seen]:
        return [a for a in atts if a.id not in self.explained]


Rule = Callable[[RunView, _Ctx], list[Finding]]


def evaluate(run: RunView) -> list[Finding]:
    """All findings of a run: problems by confidence, then the info-level policy."""
    ctx = _Ctx()
    out: list[Finding] = []
    for rule in RULES:
        got = rule(run, ctx)
        ctx.found.update(f.id for f in got)
        out += got
    return sorted(out, key=lambda f: CONFIDENCE_ORDER.get(f.confidence, 9))


# --- small helpers --------------------------------------------------------------------


def ms(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:.2f} ms" if v < 1 else f"{v:.1f} ms"


def _accepted(atts: list[Seen]) -> bool:
    """The server chose this version: a full handshake, or a ServerHello whose flight then
    stalled (a path problem, not a refusal)."""
    return any(a.outcome == "ok" or (a.outcome == "partial" and a.version) for a in atts)


def id_list(atts: Iterable[Seen]) -> str:
    """'ids 1-4, 9' for a set of attempts."""
    ids = sorted({a.id for a in atts})
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    word = "id" if len(ids) == 1 else "ids"
    return f"{word} {', '.join(parts)}" if parts else "no attempt"


def counts(atts: list[Seen]) -> str:
    c = Counter(a.outcome for a in atts)
    return ", ".join(f"{o} {n}/{len(atts)}" for o, n in c.most_common())


def median(vals: Iterable[float | None]) -> float | None:
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def round_trip_ms(atts: Iterable[Seen]) -> float | None:
    """The TCP round trip: the smallest kernel RTT (TCP_INFO) of the attempts, else the
    fastest connect. The kernel's figure is immune to a busy client; the connect time is
    not, and its minimum at least errs towards "the server could answer that fast"."""
    atts = list(atts)
    kernel = [a.rtt_us / 1000 for a in atts if a.rtt_us]
    if kernel:
        return min(kernel)
    return min((a.connect_ms for a in atts if a.connect_ms is not None), default=None)


def _mostly(atts: list[Seen], pred: Callable[[Seen], bool], share: float = 0.8) -> bool:
    return bool(atts) and sum(1 for a in atts if pred(a)) >= max(1, share * len(atts))


def _how(outcome: str) -> str:
    return {"reset": "reset (RST)", "eof": "closed (FIN)", "hang-acked":
            "ACKed and never answered", "hang-unacked": "dropped (never ACKed)"}.get(
                outcome, outcome)


def _main_outcome(atts: list[Seen]) -> str:
    return Counter(a.outcome for a in atts).most_common(1)[0][0]


def _sweep(run: RunView) -> list[tuple[str, list[Seen]]]:
    """(version, attempts) of the version sweep, newest version first."""
    out = []
    for prof in reversed(SWEEP_PROFILES):
        atts = [a for a in run.of_profile(prof) if a.step == STEP_SWEEP]
        if atts:
            out.append((SWEEP_VERSIONS[prof], atts))
    return out


def _unchecked_ttl(run: RunView, what: str) -> list[str]:
    if run.capture == "ok":
        return []
    why = "no --capture" if run.capture is None else run.capture
    return [f"{what}: not compared ({why})"]


# --- TTL arithmetic (--capture) ---------------------------------------------------------


def initial_ttl(ttl: int) -> int:
    """The usual initial TTL a packet with this TTL most likely started from."""
    for start in (32, 64, 128, 255):
        if ttl <= start:
            return start
    return 255


def hops(ttl: int) -> int:
    return initial_ttl(ttl) - ttl


def _first(packets: tuple[Packet, ...] | None, incoming: bool, pred: Callable[[str], bool]
           ) -> Packet | None:
    for p in packets or ():
        if p.incoming == incoming and pred(p.flags):
            return p
    return None


def synack(a: Seen) -> Packet | None:
    return _first(a.packets, True, lambda f: "S" in f and "A" in f)


def rst(a: Seen) -> Packet | None:
    return _first(a.packets, True, lambda f: "R" in f)


def ttl_compare(p: Packet, ref: Packet) -> tuple[int, str] | None:
    """(hops closer than ``ref``, words) when ``p`` comes from another distance, else None."""
    if initial_ttl(p.ttl) != initial_ttl(ref.ttl):
        return (0, f"TTL {p.ttl} vs the SYN-ACK's {ref.ttl}: another initial TTL "
                   f"({initial_ttl(p.ttl)} vs {initial_ttl(ref.ttl)}), another device")
    closer = hops(ref.ttl) - hops(p.ttl)
    if closer == 0:
        return None
    side = "closer than" if closer > 0 else "further than"
    n = abs(closer)
    return (closer, f"TTL {p.ttl} vs the SYN-ACK's {ref.ttl}: {n} hop{'s' * (n != 1)} "
                    f"{side} the server")


# --- policy ---------------------------------------------------------------------------


def rule_policy(run: RunView, ctx: _Ctx) -> list[Finding]:
    # versions whose every attempt another rule explained (an SNI filter) say nothing here
    sweep = [(v, x) for v, x in _sweep(run) if ctx.free(x) or any(a.answered for a in x)]
    if not sweep:
        return []
    out: list[Finding] = []
    answered_any = any(a.answered for _, atts in sweep for a in atts)
    alerted = [(v, atts) for v, atts in sweep if all(a.outcome == "alert" for a in atts)]
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
    cut = [(v, atts) for v, atts in sweep if _mostly(atts, lambda a: a.outcome in CUT, 1.0)]
    if cut and answered_any:
        atts = [a for _, x in cut for a in x]
        names = ", ".join(v for v, _ in cut)
        how = "RST" if _main_outcome(atts) == "reset" else "FIN"
        after = median(a.after_hello_ms() for a in atts)
        acked = " (the hello was ACKed)" if all(a.acked for a in atts) else ""
        ev = [f"{v}: {counts(x)}, {how} {ms(median(a.after_hello_ms() for a in x))} after "
              f"the ClientHello ({id_list(x)})" for v, x in cut]
        cut_versions = {v for v, _ in cut}
        ev.append("other versions are answered: " + ", ".join(
            f"{v} {counts(x)}" for v, x in sweep if v not in cut_versions))
        ev += _ttl_lines(atts)
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
            unchecked=_unchecked_ttl(run, "TTL of the RST vs the SYN-ACK")))
        ctx.claim(atts)
    return out


def rule_all_cut(run: RunView, ctx: _Ctx) -> list[Finding]:
    """Every ClientHello is cut, whatever it says: no version, SNI or size passes."""
    conn = [a for a in run.attempts if a.connected]
    if len(conn) < 3 or any(a.answered for a in conn) or not all(a.outcome in CUT
                                                                for a in conn):
        return []
    free = ctx.free(conn)
    if len(free) < len(conn):
        return []  # another rule (an injected RST, an SNI filter) names the cause
    ctx.claim(free)
    how = "RST" if _main_outcome(conn) == "reset" else "FIN"
    return [Finding(
        POLICY_RESET, MEDIUM if len(conn) >= 5 else LOW,
        f"Every ClientHello is answered with a TCP {how} ({len(conn)}/{len(conn)}: all "
        "versions, with and without SNI, every size): the service refuses these clients "
        "before TLS, or it is not a TLS service.",
        "Check that this port serves TLS; if it does, look at what sits in front of it "
        "(balancer listener policy, firewall) and at its logs for these connections.",
        evidence=[f"{counts(conn)} ({id_list(conn)}); {how} "
                  f"{ms(median(a.after_hello_ms() for a in conn))} after the ClientHello",
                  *_ttl_lines(conn)],
        attempts=[a.id for a in conn],
        unchecked=_unchecked_ttl(run, "TTL of the RST vs the SYN-ACK"))]


def rule_policy_summary(run: RunView, ctx: _Ctx) -> list[Finding]:
    sweep = _sweep(run)
    # nothing answered: there is no policy to speak of, only the findings above
    if not any(a.answered or _accepted([a]) for _, x in sweep for a in x):
        return []
    ok = [(v, x) for v, x in sweep if _accepted(x)]
    refused = [(v, x) for v, x in sweep if not _accepted(x)]
    parts = []
    if ok:
        # a version only some attempts got (two backends, a flap) says so
        parts.append("accepts " + ", ".join(
            v if all(a.outcome == "ok" for a in x) else
            f"{v} ({sum(1 for a in x if a.outcome == 'ok')}/{len(x)})" for v, x in ok))
    else:
        parts.append("accepts none of SSLv3 … TLSv1.3")
    by_how: dict[str, list[str]] = {}
    for v, x in refused:
        main = _main_outcome(x)
        how = f"alert {x[0].alert}" if main == "alert" and x[0].alert else {
            "reset": "RST", "eof": "FIN", "hang-acked": "no answer",
            "hang-unacked": "dropped"}.get(main, main)
        by_how.setdefault(how, []).append(v)
    if by_how:
        parts.append("refuses " + "; ".join(f"{', '.join(vs)} ({how})"
                                           for how, vs in by_how.items()))
    ev = [f"{v}: {counts(x)} — {next((a.detail for a in x if a.outcome == 'ok'), x[0].detail)}"
          f" ({id_list(x)})" for v, x in sweep]
    return [Finding(
        POLICY, INFO, "; ".join(parts) + ".",
        f"`prober policy {run.target}` for the suites, groups and the closest named policy.",
        evidence=ev, attempts=[a.id for _, x in sweep for a in x],
        figures={"accepted": [v for v, _ in ok], "refused": {v: _main_outcome(x)
                                                             for v, x in refused}})]


# --- path rules -----------------------------------------------------------------------


def _reference(run: RunView) -> list[Seen]:
    return run.of_step(STEP_REPEAT)


def rule_sni(run: RunView, ctx: _Ctx) -> list[Finding]:
    if not run.sni:
        return []
    real = [a for a in _reference(run) if a.sni == run.sni]
    variants = run.of_profile("sni:none") + run.of_profile("sni:unrelated")
    fails = [a for a in real if not a.answered and a.connected]
    if not real or not _mostly(real, lambda a: not a.answered) or not any(
            a.answered for a in variants):
        return []
    kind = _main_outcome(fails)
    if kind in CUT:
        fid, verb = SNI_RESET, "reset" if kind == "reset" else "closed (FIN)"
    elif kind in HUNG:
        fid, verb = SNI_DROP, _how(kind)
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


def rule_dpi_fragmentation(run: RunView, ctx: _Ctx) -> list[Finding]:
    plain = _reference(run)
    split_rec = run.of_profile("records:split")
    split_seg = run.of_profile("segments:split")
    # blocked: cut or swallowed (a partial flight is the server answering, not a filter)
    if not plain or not _mostly(plain, lambda a: a.outcome in CUT | HUNG):
        return []
    passed = [a for a in split_rec + split_seg if a.answered]
    if not passed:
        return []
    conf = HIGH if split_rec and all(a.answered for a in split_rec) and all(
        not a.answered for a in plain) else MEDIUM
    ev = [f"one record: {counts(plain)} ({id_list(plain)})"]
    ev += [f"{name}: {counts(x)} ({id_list(x)}; {_split_text(x[0])})"
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


def _split_text(a: Seen) -> str:
    if a.meta.get("record_sizes"):
        return f"first records {a.meta['record_sizes']} bytes"
    if a.meta.get("segment_sizes"):
        return (f"first segment {a.meta['segment_sizes'][0]} bytes, then "
                f"{a.meta.get('pause_ms', 0):.0f} ms pause")
    return a.profile


def rule_segmentation(run: RunView, ctx: _Ctx) -> list[Finding]:
    plain = _reference(run)
    if not plain or not _mostly(plain, lambda a: a.answered):
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
                      f"split: {counts(x)} — {x[0].detail} ({id_list(x)}; {_split_text(x[0])})"],
            attempts=[a.id for a in x]))
    return out


def rule_size(run: RunView, ctx: _Ctx) -> list[Finding]:
    rungs = sorted(run.of_step(STEP_SIZE, STEP_BISECT), key=lambda a: a.hello_bytes)
    rungs = [a for a in rungs if a.connected]
    passed = [a for a in rungs if a.answered]
    failed = [a for a in rungs if not a.answered]
    if not passed or not failed:
        return []
    largest_ok = max(a.hello_bytes for a in passed)
    smallest_bad = min(a.hello_bytes for a in failed)
    if largest_ok >= smallest_bad:
        return []  # not a threshold: leave it to the intermittent rule
    if SEGMENTATION_DROP in ctx.found and smallest_bad > ONE_SEGMENT_MIN:
        # a hello this large needs a second segment: the segmentation finding covers it
        ctx.claim(a for a in run.attempts if a.connected and not a.answered
                  and a.hello_bytes >= smallest_bad)
        return []
    kind = _main_outcome(failed)
    hit = [a for a in run.attempts if a.connected and not a.answered
           and a.hello_bytes >= smallest_bad and a.id not in ctx.explained]
    ctx.claim(hit)
    pq = "post-quantum hellos (X25519MLKEM768, ~1.8 kB) break" if smallest_bad <= 1900 else (
        "hellos this large are rare today")
    bisected = [a for a in rungs if a.step == STEP_BISECT]
    return [Finding(
        SIZE_DROP, HIGH if len(failed) >= 2 else MEDIUM,
        f"ClientHellos of {smallest_bad} bytes and more are {_how(kind)}, {largest_ok} bytes "
        f"and less pass: a size-dependent drop on the path; {pq}.",
        "Find the device with a ClientHello size limit (firewall/IPS, old load balancer, "
        "MTU mismatch on a tunnel); meanwhile clients can turn off the post-quantum key share.",
        evidence=[f"{a.profile}: {a.hello_bytes} bytes → {a.outcome} (id {a.id})"
                  for a in rungs],
        attempts=[a.id for a in hit],
        figures={"breaking_bytes": smallest_bad, "largest_passing_bytes": largest_ok,
                 "bisection_steps": len(bisected)})]


def rule_mtu(run: RunView, ctx: _Ctx) -> list[Finding]:
    got_bytes = [a for a in run.attempts if a.server_bytes > 0]
    stalled = [a for a in ctx.free(got_bytes) if a.outcome == "partial" and a.end == "timeout"]
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


def rule_fallback(run: RunView, ctx: _Ctx) -> list[Finding]:
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
        # RFC 7507 requires this refusal, so it is a note for whoever reads the server's
        # 'inappropriate fallback' log lines, not a fault of the path or the server
        out.append(Finding(
            INAPPROPRIATE_FALLBACK, INFO,
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
    if fb and all(a.outcome == "ok" for a in fb):
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


def rule_silent(run: RunView, ctx: _Ctx) -> list[Finding]:
    conn = [a for a in run.attempts if a.connected]
    out = []
    for outcome, fid in (("hang-acked", SILENT_PROXY), ("hang-unacked", PATH_DROP)):
        hangs = [a for a in ctx.free(conn) if a.outcome == outcome]
        if not hangs:
            continue
        ctx.claim(hangs)
        n, m = len(hangs), len(conn)
        conf = HIGH if n >= 3 and n * 2 >= m else (MEDIUM if n >= 2 else LOW)
        waited = median(a.after_hello_ms() for a in hangs)
        ev = [f"{counts(hangs)} ({id_list(hangs)}); TCP round trip "
              f"{ms(round_trip_ms(hangs))} (kernel RTT)"]
        if outcome == "hang-acked":
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
        ev += _ttl_lines(hangs, "ACK")
        out.append(Finding(fid, conf, cause + ".", nxt, evidence=ev,
                           attempts=[a.id for a in hangs],
                           figures={"hung": n, "of": m, "silence_ms": waited},
                           unchecked=_unchecked_ttl(run, "TTL of the ACK vs the SYN-ACK")))
    return out


def _ttl_lines(atts: list[Seen], what: str = "RST") -> list[str]:
    """What the captured TTLs say about where ``what`` came from (empty without capture)."""
    lines = []
    for a in atts:
        ref = synack(a)
        if ref is None:
            continue
        p = rst(a) if what == "RST" else _first(a.packets, True,
                                                 lambda f: f == "A")
        if p is None:
            continue
        cmp = ttl_compare(p, ref)
        n = hops(p.ttl)
        lines.append(f"{what} of id {a.id}: " + (cmp[1] if cmp else
                     f"TTL {p.ttl} = the SYN-ACK's: both from {n} hop{'s' * (n != 1)} away "
                     f"(initial TTL {initial_ttl(p.ttl)})"))
    # one line per distinct wording is enough
    seen: dict[str, str] = {}
    for line in lines:
        seen.setdefault(line.split(": ", 1)[1], line)
    return list(seen.values())[:3]


def rule_injected(run: RunView, ctx: _Ctx) -> list[Finding]:
    resets = [a for a in run.attempts if a.outcome == "reset"]
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
        unchecked=[] if by_ttl else _unchecked_ttl(run, "TTL of the RST vs the SYN-ACK"))]


def rule_near_terminator(run: RunView, ctx: _Ctx) -> list[Finding]:
    oks = [a for a in run.attempts if a.outcome == "ok" and a.connect_ms is not None
           and a.first_after_hello_ms() is not None]
    if len(oks) < 3:
        return []
    rtt = round_trip_ms(oks)
    # the fastest: concurrent attempts only ever add delay (a busy event loop or server)
    first = min(a.first_after_hello_ms() or 0.0 for a in oks)
    if rtt is None or first - rtt < TERMINATOR_EXTRA_MS or \
            first < TERMINATOR_FACTOR * max(rtt, 0.01):
        return []
    ev = [f"TCP round trip {ms(rtt)} (kernel RTT, {len(oks)} full handshakes; TCP connect "
          f"median {ms(median(a.connect_ms for a in oks))})",
          f"ClientHello → first server byte {ms(first)} at the fastest (median "
          f"{ms(median(a.first_after_hello_ms() for a in oks))}; {id_list(oks)})"]
    conf = MEDIUM
    diffs = []
    for a in oks:
        ref = synack(a)
        data = _first(a.packets, True, lambda f: "P" in f)
        if ref is not None and data is not None:
            cmp = ttl_compare(ref, data)
            diffs.append(cmp)
            if cmp is not None:
                ev.append(f"id {a.id}: SYN-ACK TTL {ref.ttl}, ServerHello TTL {data.ttl}")
    if diffs and all(d is not None for d in diffs):
        conf = HIGH
    return [Finding(
        NEAR_TCP_TERMINATOR, conf,
        f"TCP is answered in {ms(rtt)} but the ServerHello takes {ms(first)}: TCP ends at a "
        "device closer than the TLS server (a TCP proxy or balancer relaying to a distant "
        "server), or the server is slow to start its handshake.",
        "Probe the TLS server directly (--address) and compare; `--capture` shows whether "
        "SYN-ACK and ServerHello come from the same distance.",
        evidence=ev, attempts=[a.id for a in oks],
        figures={"round_trip_ms": rtt, "server_hello_ms": first},
        unchecked=_unchecked_ttl(run, "TTL of the SYN-ACK vs the ServerHello"))]


def rule_interception(run: RunView, ctx: _Ctx) -> list[Finding]:
    certs = [a for a in run.attempts if a.cert_issuer is not None or a.cert_sha256]
    out = []
    if run.expect_issuer:
        want = run.expect_issuer.lower()
        bad = [a for a in certs if want not in (a.cert_issuer or "").lower()]
        if bad:
            issuers = sorted({a.cert_issuer or "?" for a in bad})
            out.append(Finding(
                TLS_INTERCEPTION, HIGH,
                f"The certificate is issued by {issuers[0]!r}, not by {run.expect_issuer!r} "
                f"({len(bad)}/{len(certs)} attempts): something on this path intercepts TLS "
                "and re-signs it.",
                "Find the inspecting proxy (corporate firewall, antivirus, captive portal); a "
                "run from another network compared with `prober diff` confirms it.",
                evidence=[f"issuer {i!r}" for i in issuers] + [f"{id_list(bad)}"],
                attempts=[a.id for a in bad], figures={"issuers": issuers}))
    pins = {p.lower().replace(":", "") for p in run.pins}
    if pins:
        bad = [a for a in certs if (a.cert_sha256 or "").lower() not in pins]
        if bad:
            seen = sorted({a.cert_sha256 or "?" for a in bad})
            out.append(Finding(
                TLS_INTERCEPTION, HIGH,
                f"The server certificate matches none of the {len(pins)} pinned SHA-256 "
                f"fingerprints ({len(bad)}/{len(certs)} attempts): intercepted, or the "
                "certificate was replaced.",
                "If the certificate was not renewed on purpose, find the intercepting device; "
                "its issuer is in the evidence.",
                evidence=[f"seen {s[:16]}… issuer "
                          f"{next((a.cert_issuer for a in bad if a.cert_sha256 == s), '?')!r}"
                          for s in seen] + [id_list(bad)],
                attempts=[a.id for a in bad], figures={"seen_sha256": seen}))
    return out


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


def rule_intermittent(run: RunView, ctx: _Ctx) -> list[Finding]:
    skip = (STEP_SANITY_FIRST, STEP_SANITY_LAST, STEP_BISECT)
    cells: dict[str, list[Seen]] = {}
    for a in run.attempts:
        if a.step not in skip and a.connected:
            cells.setdefault(a.profile, []).append(a)
    mixed = {p: x for p, x in cells.items() if len(x) >= 2 and len({a.outcome for a in x}) > 1}
    certs: dict[str, set[str]] = {}
    negs: dict[str, set[str]] = {}
    for p, x in cells.items():
        certs[p] = {a.cert_sha256 for a in x if a.outcome == "ok" and a.cert_sha256}
        negs[p] = {f"{a.version} {a.suite}" for a in x if a.outcome == "ok"}
    multi_cert = {p for p, s in certs.items() if len(s) > 1}
    multi_neg = {p for p, s in negs.items() if len(s) > 1}
    if not mixed and not multi_cert and not multi_neg:
        return []
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


def rule_flapping(run: RunView, ctx: _Ctx) -> list[Finding]:
    atts = sorted(run.attempts, key=lambda a: (a.started_at, a.id))
    if not atts:
        return []
    nc = [a for a in atts if not a.connected]
    first = run.of_step(STEP_SANITY_FIRST)
    last = run.of_step(STEP_SANITY_LAST)
    ev = []
    changed = bool(first and last and (first[0].connected, first[0].answered) !=
                   (last[0].connected, last[0].answered))
    if changed:
        ev.append(f"sanity first: {first[0].outcome} (id {first[0].id}); last: "
                  f"{last[0].outcome} (id {last[0].id})")
    if not nc and not changed:
        return []
    if len(nc) == len(atts):
        ctx.claim(nc)
        return [Finding(
            ENDPOINT_FLAPPING, HIGH if len(nc) >= 3 else MEDIUM,
            f"The endpoint is down: no attempt connected ({counts(nc)}).",
            "Check that the service listens and that the address and port are right; from "
            "another network (`prober diff`) a firewall in between shows up.",
            evidence=[f"{counts(nc)}: {nc[0].detail} ({id_list(nc)})"],
            attempts=[a.id for a in nc])]
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


def rule_idle(run: RunView, ctx: _Ctx) -> list[Finding]:
    if run.idle is None:
        return []
    probes = sorted(run.idle.probes, key=lambda p: p.wait_s)
    bad = [p for p in probes if p.result in FAILED_IDLE]
    if not bad:
        return []
    closed = [p.closed_after_s for p in bad if p.closed_after_s is not None]
    hi = min(closed) if closed else min(p.wait_s for p in bad)
    lo = max((p.wait_s for p in probes if p.result == "alive" and p.wait_s < hi), default=0.0)
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


RULES: tuple[Rule, ...] = (
    rule_flapping, rule_sni, rule_dpi_fragmentation, rule_policy, rule_segmentation,
    rule_size, rule_mtu, rule_fallback, rule_injected, rule_all_cut, rule_silent,
    rule_near_terminator, rule_interception, rule_intermittent, rule_idle,
    rule_policy_summary,
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
            a.outcome == "ok" for a in sweep) else "no version was accepted")
        out.append(f"TLS_FALLBACK_SCSV: not tested ({why})")
    if run.expect_issuer is None and not run.pins:
        out.append("certificate issuer: not checked against an expectation "
                   "(--expect-issuer / --pin-sha256, or `prober diff` with another vantage)")
    if not run.complete:
        out.append("the run was interrupted: later steps are missing")
    return out
