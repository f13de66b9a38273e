"""``--deep``: sslyze's own checks of one endpoint, run as a single sslyze scan.

sslyze never resolves a name here: it is always given the address to connect to (the
one the probes used) and the SNI as its hostname. Without an SNI, sslyze still sends
one: the address itself (it has no way to send none); ``sni_sent`` says so.

The scan is blocking (sslyze runs its own threads); from asyncio, call it with
``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prober.net import sslyze
from prober.policy.naming.match import ComplianceVerdict, MozillaLevel, sslyze_mozilla_profile
from prober.wire.certificates import describe

# check name -> sslyze ScanCommand member name
DEEP_CHECKS: dict[str, str] = {
    "certificate": "CERTIFICATE_INFO",
    "heartbleed": "HEARTBLEED",
    "robot": "ROBOT",
    "ccs_injection": "OPENSSL_CCS_INJECTION",
    "renegotiation": "SESSION_RENEGOTIATION",
    "compression": "TLS_COMPRESSION",
    "early_data": "TLS_1_3_EARLY_DATA",
    "session_resumption": "SESSION_RESUMPTION",
}
# AllScanCommandsAttempts field of each check
_FIELD = {
    "certificate": "certificate_info", "heartbleed": "heartbleed", "robot": "robot",
    "ccs_injection": "openssl_ccs_injection", "renegotiation": "session_renegotiation",
    "compression": "tls_compression", "early_data": "tls_1_3_early_data",
    "session_resumption": "session_resumption",
}

Entry = dict[str, Any]
# sslyze's TlsVersionEnum names -> the names used everywhere else in prober
_VERSION_NAMES = {"SSL_2_0": "SSLv2", "SSL_3_0": "SSLv3", "TLS_1_0": "TLSv1.0",
                  "TLS_1_1": "TLSv1.1", "TLS_1_2": "TLSv1.2", "TLS_1_3": "TLSv1.3"}


def _trace(tb: Any) -> str:
    if tb is None:
        return "unknown error"
    return "".join(tb.format_exception_only()).strip().splitlines()[-1]


def _connectivity(result: Any) -> Entry:
    if result.connectivity_status.name != "COMPLETED":
        return {"status": "error", "error": _trace(result.connectivity_error_trace)}
    probing = result.connectivity_result
    out: Entry = {"status": "completed"}
    if probing is not None:
        out["highest_tls_version"] = _VERSION_NAMES.get(
            probing.highest_tls_version_supported.name, probing.highest_tls_version_supported.name)
        out["cipher_suite"] = probing.cipher_suite_supported
    return out


# -- one function per check: (verdict in words, ok?, figures) ---------------------------

Finding = tuple[str, bool | None, dict[str, Any]]


def _certificate(r: Any) -> Finding:
    deployments = [_deployment(d) for d in r.certificate_deployments]
    trusted = sorted({s for d in deployments for s in d["trusted_by"]})
    if not deployments:
        return "the server sent no certificate", None, {"deployments": []}
    if trusted:
        verdict = f"trusted by {', '.join(trusted)}"
    else:
        stores = ", ".join(f"{t['store']} {t['version']}" for t in deployments[0]["trust"])
        errors = sorted({t["error"] for d in deployments for t in d["trust"] if t["error"]})
        verdict = f"not trusted by any of sslyze's stores ({stores})"
        if errors:
            verdict += f": {'; '.join(errors)}"
    leaves = [d["leaf"] for d in deployments]
    verdict += "; " + ", ".join(
        f"{leaf.get('key_type', '?')} {leaf.get('key_bits', '?')} expires in "
        f"{leaf.get('days_left', '?')} days" for leaf in leaves)
    no_sni = r.certificate_deployment_with_sni_disabled
    figures: dict[str, Any] = {
        "sni": r.hostname_used_for_server_name_indication,
        "deployments": deployments,
        "without_sni": _deployment(no_sni)["leaf"] if no_sni is not None else None,
    }
    ok = bool(trusted) and all(leaf.get("days_left", 0) > 0 for leaf in leaves)
    return verdict, ok, figures


def _deployment(d: Any) -> dict[str, Any]:
    from cryptography.hazmat.primitives.serialization import Encoding

    chain = d.received_certificate_chain
    leaf = describe(chain[0].public_bytes(Encoding.DER))
    not_after = chain[0].not_valid_after_utc
    leaf["days_left"] = (not_after - _dt.datetime.now(_dt.UTC)).days
    trust = [{"store": p.trust_store.name, "version": p.trust_store.version,
              "trusted": p.was_validation_successful, "error": p.validation_error}
             for p in d.path_validation_results]
    return {
        "leaf": leaf,
        "chain_length": len(chain),
        "trust": trust,
        "trusted_by": [t["store"] for t in trust if t["trusted"]],
        "chain_order_valid": d.received_chain_has_valid_order,
        "anchor_in_chain": d.received_chain_contains_anchor_certificate,
        "sha1_in_verified_chain": d.verified_chain_has_sha1_signature,
        "ocsp_stapled": d.ocsp_response is not None,
        "must_staple": d.leaf_certificate_has_must_staple_extension,
        "sct_count": d.leaf_certificate_signed_certificate_timestamps_count,
    }


def _vulnerable(flag: bool, what: str) -> Finding:
    if flag:
        return f"VULNERABLE to {what}", False, {"vulnerable": True}
    return f"not vulnerable to {what}", True, {"vulnerable": False}


def _heartbleed(r: Any) -> Finding:
    return _vulnerable(r.is_vulnerable_to_heartbleed, "Heartbleed")


def _ccs(r: Any) -> Finding:
    return _vulnerable(r.is_vulnerable_to_ccs_injection, "OpenSSL CCS injection")


_ROBOT_WORDS: dict[str, tuple[str, bool | None]] = {
    "VULNERABLE_STRONG_ORACLE": ("VULNERABLE to ROBOT (strong oracle: a practical attack)",
                                 False),
    "VULNERABLE_WEAK_ORACLE": ("VULNERABLE to ROBOT (weak oracle: an attack would take long)",
                               False),
    "NOT_VULNERABLE_NO_ORACLE": ("not vulnerable to ROBOT (RSA key exchange accepted, "
                                 "no padding oracle)", True),
    "NOT_VULNERABLE_RSA_NOT_SUPPORTED": ("not vulnerable to ROBOT (no RSA key exchange)", True),
    "UNKNOWN_INCONSISTENT_RESULTS": ("ROBOT undetermined: the server answered inconsistently",
                                     None),
}


def _robot(r: Any) -> Finding:
    key = r.robot_result.value
    words, ok = _ROBOT_WORDS.get(key, (f"ROBOT: {key}", None))
    return words, ok, {"result": key}


def _renegotiation(r: Any) -> Finding:
    secure = r.supports_secure_renegotiation
    count = r.client_renegotiations_success_count
    words = ("secure renegotiation supported" if secure
             else "secure renegotiation NOT supported (RFC 5746)")
    if r.is_vulnerable_to_client_renegotiation_dos:
        words += f"; client-initiated renegotiation accepted ({count} in a row): DoS risk"
    elif count:
        words += f"; client-initiated renegotiation accepted {count} times"
    else:
        words += "; client-initiated renegotiation refused"
    figures = {"secure_renegotiation": secure, "client_renegotiations_accepted": count,
               "client_renegotiation_dos": r.is_vulnerable_to_client_renegotiation_dos}
    return words, secure and not r.is_vulnerable_to_client_renegotiation_dos, figures


def _compression(r: Any) -> Finding:
    on = r.supports_compression
    words = "TLS compression enabled (CRIME)" if on else "TLS compression disabled"
    return words, not on, {"compression": on}


def _early_data(r: Any) -> Finding:
    on = r.supports_early_data
    words = ("TLS 1.3 early data (0-RTT) accepted: replayable requests" if on
             else "TLS 1.3 early data (0-RTT) not accepted")
    # 0-RTT is a choice with a replay trade-off, not a fault: no good/bad judgement
    return words, None, {"early_data": on}


def _session_resumption(r: Any) -> Finding:
    def part(kind: str, result: Any, ok: int, tried: int) -> str:
        return f"{kind}: {result.value.lower().replace('_', ' ')} ({ok}/{tried})"

    words = "; ".join((
        part("session IDs", r.session_id_resumption_result,
             r.session_id_successful_resumptions_count, r.session_id_attempted_resumptions_count),
        part("session tickets", r.tls_ticket_resumption_result,
             r.tls_ticket_successful_resumptions_count, r.tls_ticket_attempted_resumptions_count),
    ))
    figures = {
        "session_id": {"result": r.session_id_resumption_result.value,
                       "successful": r.session_id_successful_resumptions_count,
                       "attempted": r.session_id_attempted_resumptions_count},
        "session_ticket": {"result": r.tls_ticket_resumption_result.value,
                           "successful": r.tls_ticket_successful_resumptions_count,
                           "attempted": r.tls_ticket_attempted_resumptions_count},
    }
    return words, None, figures


_READERS: dict[str, Callable[[Any], Finding]] = {
    "certificate": _certificate, "heartbleed": _heartbleed, "robot": _robot,
    "ccs_injection": _ccs, "renegotiation": _renegotiation, "compression": _compression,
    "early_data": _early_data, "session_resumption": _session_resumption,
}


def _entry(name: str, result: Any, unreachable: str | None) -> Entry:
    if unreachable is not None or result.scan_result is None:
        why = unreachable or "the scan did not complete"
        return {"status": "error", "verdict": f"not checked: {why}", "ok": None,
                "error": why, "figures": {}}
    attempt = getattr(result.scan_result, _FIELD[name])
    if attempt.status.value != "COMPLETED" or attempt.result is None:
        reason = attempt.error_reason.value if attempt.error_reason else attempt.status.value
        why = f"{reason}: {_trace(attempt.error_trace)}"
        return {"status": "error", "verdict": f"not checked: {why}", "ok": None,
                "error": why, "figures": {}}
    try:
        verdict, ok, figures = _READERS[name](attempt.result)
    except (AttributeError, ValueError, TypeError) as e:
        # a field sslyze renamed or left empty: report it instead of losing the scan
        return {"status": "error", "verdict": f"not read: {e}", "ok": None,
                "error": f"reading sslyze's result: {e}", "figures": {}}
    return {"status": "completed", "verdict": verdict, "ok": ok, "figures": figures}


def deep_scan(host: str, port: int, *, sni: str | None, address: str | None = None,
              timeout: float = 5.0, ca_file: str | Path | None = None,
              mozilla_levels: Iterable[MozillaLevel] = (),
              starttls: str | None = None) -> dict[str, Any]:
    """sslyze's certificate, Heartbleed, ROBOT, CCS injection, renegotiation,
    compression, early data and session resumption checks, in one scan.

    Returns a JSON-able dict: ``checks`` has one entry per name in ``DEEP_CHECKS`` with
    ``status`` (``completed``/``error``), ``verdict`` (plain words), ``ok`` (True good,
    False bad, None no judgement) and ``figures``. ``ca_file`` adds a trust store of
    one's own next to sslyze's (reported as "Supplied CA file"). ``mozilla_levels`` adds
    sslyze's Mozilla checker verdicts from the same scan (which then also enumerates
    cipher suites, curves, fallback SCSV and EMS)."""
    levels = tuple(mozilla_levels)
    commands = set(DEEP_CHECKS.values())
    if levels:
        commands |= sslyze.mozilla_commands()
    started = time.monotonic()
    result = sslyze.scan(host, port, sni, address, timeout, commands, ca_file, starttls)
    connectivity = _connectivity(result)
    unreachable = (f"no connection: {connectivity['error']}"
                   if connectivity["status"] != "completed" else None)
    out: dict[str, Any] = {
        "tool": f"sslyze {sslyze.version()}",
        "target": {"host": host, "port": port, "sni": sni,
                   "address": result.server_location.ip_address},
        "sni_sent": result.network_configuration.tls_server_name_indication,
        "connectivity": connectivity,
        "checks": {name: _entry(name, result, unreachable) for name in DEEP_CHECKS},
    }
    if levels:
        out["mozilla"] = {lv: _check_mozilla(result, lv).to_json() for lv in levels}
    out["duration_s"] = round(time.monotonic() - started, 3)
    return out


# -- sslyze's own Mozilla checker -------------------------------------------------------

def _check_mozilla(result: Any, level: MozillaLevel) -> ComplianceVerdict:
    version, source, _doc = sslyze_mozilla_profile()
    compliant, issues, error = sslyze.check_mozilla(result, level)
    return ComplianceVerdict(level, "live", compliant, issues, version, source, error=error or "")


def mozilla_compliance_live(host: str, port: int, sni: str | None, address: str | None = None,
                            *, levels: Iterable[MozillaLevel] = ("intermediate",),
                            ca_file: str | Path | None = None,
                            timeout: float = 5.0) -> dict[str, ComplianceVerdict]:
    """sslyze's own verdict: its scan (all cipher suites of every version, curves,
    certificate, vulnerabilities) checked by its Mozilla checker, once per level.
    The certificate must validate against sslyze's stores, or ``ca_file``."""
    result = sslyze.scan(host, port, sni, address, timeout, sslyze.mozilla_commands(), ca_file)
    return {lv: _check_mozilla(result, lv) for lv in levels}
