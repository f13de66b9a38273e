"""Something in front of the server ends the connection: TCP at a nearer device (a TCP
proxy or balancer), or TLS at an intercepting proxy that re-signs the certificate.
"""

from __future__ import annotations

from prober.core.outcome import Outcome
from prober.diagnose.findings import (
    HIGH,
    MEDIUM,
    NEAR_TCP_TERMINATOR,
    TLS_INTERCEPTION,
    Finding,
    RunView,
)
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import id_list, median, ms, round_trip_ms, unchecked_ttl
from prober.diagnose.rules.ttl import first_packet, synack, ttl_compare

# near-tcp-terminator: the ServerHello must lag the TCP round trip by this much (ms) and
# by this factor before a device closer than the server is suspected; below that, the
# server's own handshake work (a few ms) explains the gap
TERMINATOR_EXTRA_MS = 20.0
TERMINATOR_FACTOR = 4.0


def rule_near_terminator(run: RunView, ctx: Ctx) -> list[Finding]:
    oks = [a for a in run.attempts if a.outcome == Outcome.OK and a.connect_ms is not None
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
        data = first_packet(a.packets, True, lambda f: "P" in f)
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
        unchecked=unchecked_ttl(run, "TTL of the SYN-ACK vs the ServerHello"))]


def rule_interception(run: RunView, ctx: Ctx) -> list[Finding]:
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
