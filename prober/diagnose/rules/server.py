"""What the TLS server itself asks of its clients, which some of them cannot give: a
server name it knows (strict SNI), a client certificate (mTLS), and a ClientHello without
the supported_versions extension (version intolerance, of the server or of a device in
front of it). Each is told apart from a filter on the path by how the refusal looks.
"""

from __future__ import annotations

from prober.core.outcome import ANSWERED, CUT, HUNG, Outcome
from prober.diagnose.findings import (
    CLIENT_CERTIFICATE,
    HIGH,
    MEDIUM,
    SNI_REQUIRED,
    STEP_INTOLERANCE,
    STEP_SANITY_FIRST,
    STEP_SANITY_LAST,
    STEP_SWEEP,
    SWEEP_VERSIONS,
    VERSION_INTOLERANCE,
    Finding,
    RunView,
    Seen,
)
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import counts, how_text, id_list, main_outcome, mostly

# what a TLS server says to a name it does not serve
_SNI_ALERTS = {"unrecognized_name", "handshake_failure", "access_denied", "internal_error"}


def rule_sni_required(run: RunView, ctx: Ctx) -> list[Finding]:
    """The named hello is answered; without SNI, or naming another host, the *server*
    refuses (a TLS alert or its close, after TCP and the ACK were normal): a server
    policy, where an SNI filter on the path cuts or swallows the named hello instead."""
    if not run.sni:
        return []
    real = [a for a in run.of_profile("known-good") if a.sni == run.sni]
    if not real or not mostly(real, lambda a: a.outcome == Outcome.OK):
        return []
    refused: list[tuple[str, list[Seen]]] = []
    for p in ("sni:none", "sni:unrelated"):
        x = [a for a in run.of_profile(p) if a.connected]
        if x and all((a.outcome == Outcome.ALERT and (a.alert or "") in _SNI_ALERTS)
                     or a.outcome == Outcome.EOF for a in x):
            refused.append((p, x))
    if not refused:
        return []
    atts = [a for _, x in refused for a in x]
    ctx.claim(atts)
    what = {"sni:none": "without SNI", "sni:unrelated": "naming another host"}
    whats = " and ".join(what[p] for p, _ in refused)
    how = ", ".join(sorted({f"alert {a.alert}" if a.outcome == Outcome.ALERT
                            else "closed (FIN)" for a in atts}))
    alerted = any(a.outcome == Outcome.ALERT for a in atts)
    return [Finding(
        SNI_REQUIRED, HIGH if alerted else MEDIUM,
        f"The server refuses hellos {whats} ({how}) and serves only hellos naming "
        f"{run.sni!r}: a strict-SNI server policy (the refusal is the TLS server's own "
        "answer, not a cut on the path); clients that send no SNI — an IP-address URL, "
        "old Java or Android, a health check — fail.",
        "Make every client (and health check) send the host name; or give the server a "
        "default certificate for hellos without SNI if those clients matter.",
        evidence=[f"{run.sni!r}: {counts(real)} ({id_list(real)})",
                  *[f"{what[p]}: {counts(x)} — {x[0].detail} ({id_list(x)})"
                    for p, x in refused]],
        attempts=[a.id for a in atts],
        figures={"sni": run.sni, "refused": [p for p, _ in refused],
                 "alerts": sorted({a.alert for a in atts if a.alert})})]


def rule_client_certificate(run: RunView, ctx: Ctx) -> list[Finding]:
    asked = [a for a in run.attempts if a.cert_request]
    if not asked:
        return []
    answered = [a for a in run.attempts if a.outcome == Outcome.OK]
    cas = sorted({c for a in asked for c in a.cert_request_cas})
    versions = sorted({a.version or "?" for a in asked})
    names = "; ".join(cas) if cas else "no CA names given (any issuer may do)"
    return [Finding(
        CLIENT_CERTIFICATE, HIGH if len(asked) >= 2 else MEDIUM,
        f"The server asks every client for a certificate (mutual TLS), from: {names}. "
        "Clients without one — browsers, most API clients — get no access (refused at the "
        "end of the handshake, or by the application), whatever their TLS settings.",
        "Give those clients a certificate from one of the issuers listed (or drop the "
        "request on this endpoint); whether the server insists shows only with a client "
        "certificate (openssl s_client -cert ...), which prober does not send.",
        evidence=[f"CertificateRequest in {len(asked)}/{len(answered)} answered handshakes "
                  f"({', '.join(versions)}; {id_list(asked)})",
                  *[f"accepted issuer: {c}" for c in cas[:8]]],
        attempts=[a.id for a in asked[:20]],
        figures={"ca_names": cas, "versions": versions, "requested": len(asked),
                 "of": len(answered)})]


def rule_version_intolerance(run: RunView, ctx: Ctx) -> list[Finding]:
    """A hello carrying supported_versions is cut or swallowed even when it offers a
    version the server takes, while the same hello without the extension passes. A
    server that merely refuses TLS 1.3 answers such a hello with TLS 1.2."""
    plain = [a for a in run.of_profile("known-good") if a.connected]
    if not plain or not mostly(plain, lambda a: a.outcome in ANSWERED):
        return []
    marked = [a for a in run.of_step(STEP_INTOLERANCE) if a.connected]
    broad = [a for a in run.of_step(STEP_SANITY_FIRST, STEP_SANITY_LAST) if a.connected]
    if not marked or any(a.outcome in ANSWERED for a in marked):
        return []
    if not all(a.outcome in CUT | HUNG for a in marked):
        return []
    kind = main_outcome(marked)
    tls13 = [a for a in run.of_step(STEP_SWEEP) if SWEEP_VERSIONS.get(a.profile) == "TLSv1.3"
             and a.connected and a.outcome in CUT | HUNG]
    broad_cut = [a for a in broad if a.outcome in CUT | HUNG]
    atts = marked + tls13 + broad_cut
    ctx.claim(atts)
    version = plain[0].version or "TLS 1.2"
    ev = [f"{version} hello without supported_versions: {counts(plain)} ({id_list(plain)})",
          f"the same hello with supported_versions [{version}]: {counts(marked)} — "
          f"{marked[0].detail} ({id_list(marked)})"]
    if tls13:
        ev.append(f"TLS 1.3 hellos: {counts(tls13)} ({id_list(tls13)})")
    if broad_cut:
        ev.append(f"broad TLS 1.0-1.3 hellos (sanity): {counts(broad_cut)} "
                  f"({id_list(broad_cut)})")
    return [Finding(
        VERSION_INTOLERANCE, HIGH if len(marked) >= 2 and (tls13 or broad_cut) else MEDIUM,
        f"Hellos that carry the supported_versions extension are {how_text(kind)} even when "
        f"they offer {version}, which the same hello without it gets: version intolerance "
        "in the server or a device in front of it — not a version policy (a server that "
        f"refuses TLS 1.3 answers such a hello with {version}). Every TLS 1.3-capable "
        "client sends that extension.",
        "Update or replace the intolerant server or middlebox (old load-balancer or "
        "firewall firmware); until then such clients may only get in by a fallback to a "
        "hello without the extension.",
        evidence=ev, attempts=[a.id for a in atts],
        figures={"how": kind, "version": version})]
