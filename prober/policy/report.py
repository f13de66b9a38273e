"""Rendering a policy scan: the report people read and the JSON document machines read."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from prober import __version__
from prober.core.service import NoTls, no_tls_of, tls_endpoint_json
from prober.net.host import hostname
from prober.policy.enumerate.candidates import strength_notes, suite_label
from prober.policy.model import VERSION_ORDER
from prober.policy.scan import PolicyScan
from prober.report.timestamps import iso_ms
from prober.wire import registry as reg

POLICY_SCHEMA = "prober.policy/2"
_COUNT_ORDER = ("suites", "versions", "groups", "extras", "sanity")


def _suite_value(name: str, version: str) -> int | None:
    if version == "SSLv2":
        for v, spec in reg.sslv2_specs().items():
            if spec.name == name:
                return v
        return None
    try:
        return reg.suite_value(name)
    except KeyError:
        return None


def suite_rows(scan: PolicyScan, version: str) -> list[dict[str, Any]]:
    out = []
    for name in scan.policy.suites.get(version, []):
        v = _suite_value(name, version)
        iana, openssl = suite_label(v, version) if v is not None else (name, "")
        out.append({"iana": iana, "openssl": openssl or None,
                    "notes": strength_notes(v, version) if v is not None else []})
    return out


def _order_words(scan: PolicyScan, version: str) -> str:
    words = _order_only(scan, version)
    if version in scan.policy.certificate_first:
        words += ("; the certificate is chosen before the suite (a hello offering every "
                  "suite never reached some of them)")
    return words


def _order_only(scan: PolicyScan, version: str) -> str:
    n = len(scan.policy.suites.get(version, []))
    verdict = scan.policy.server_order.get(version)
    what = f"{n} suite{'s' if n != 1 else ''}"
    if n < 2:
        return what
    if verdict is True:
        chacha = scan.policy.chacha_priority.get(version)
        if chacha:
            return (f"{what}, server order with ChaCha20 priority (a client whose first "
                    "suite is ChaCha20 gets the best ChaCha20 suite here)")
        return f"{what}, server order"
    if verdict is False:
        return f"{what}, client order (the server follows the client; listed in our offer order)"
    return f"{what}, order not determined"


def _yes_no(v: bool | None, yes: str = "yes", no: str = "no", unknown: str = "unknown") -> str:
    return unknown if v is None else yes if v else no


def _connections_line(scan: PolicyScan) -> str:
    c = scan.connections
    parts = [f"{k} {c.get(k, 0)}" for k in _COUNT_ORDER]
    return (f"connections: {c.get('total', 0)} ({', '.join(parts)}); suite enumeration "
            f"{c.get('suites', 0)} vs ideal {scan.ideal_suite_connections} "
            "(accepted suites + 1 per accepted version)")


def table(scan: PolicyScan) -> str:
    from prober.report.table import tabulate

    obs = scan.policy
    lines = [f"{scan.target} → {scan.address or 'unresolved'} (SNI {scan.sni or 'none'}"
             f"{_starttls(scan)}): {', '.join(obs.versions) or 'no version accepted'}; "
             f"{scan.connections.get('total', 0)} connections in {scan.elapsed:.2f} s",
             _connections_line(scan)]
    if not scan.reliable:
        lines.append("NOT RELIABLE: the endpoint misbehaved during the scan (see WARNINGS); "
                     "do not read this as its policy")
    for v in obs.versions:
        lines += ["", f"{v} — {_order_words(scan, v)}"]
        rows = [[i, r["iana"], r["openssl"] or "", ", ".join(r["notes"])]
                for i, r in enumerate(suite_rows(scan, v), 1)]
        lines.append(tabulate(rows, headers=["#", "IANA", "OpenSSL", "notes"],
                              tablefmt="plain", disable_numparse=True))
    off = [v for v in VERSION_ORDER if v not in obs.versions]
    if off:
        lines += ["", f"not accepted: {', '.join(off)}"]

    lines += ["", "GROUPS"]
    rows = []
    for v, groups in (("TLSv1.3", obs.groups_tls13), ("TLSv1.2", obs.groups_tls12)):
        if groups is None:
            continue
        order = scan.group_server_order.get(v)
        how = ("server order" if order else "client order" if order is False
               else "order not determined") if len(groups) > 1 else ""
        extra = ""
        if v == "TLSv1.3":
            extra = f"HelloRetryRequest {_yes_no(scan.hello_retry_request, 'used', 'not used')}"
        label = "TLS 1.3" if v == "TLSv1.3" else "TLS 1.2 ECDHE"
        rows.append([label, ", ".join(groups) or "none", "; ".join(x for x in (how, extra) if x)])
    lines.append(tabulate(rows, tablefmt="plain") if rows else "none determined")

    f = scan.features
    lines += ["", "FEATURES"]
    fb = f.get("fallback_scsv")
    alpn = f.get("alpn")
    rows = [
        ["TLS_FALLBACK_SCSV", _yes_no(fb, "supported (inappropriate_fallback)", "not supported",
                                       "not determined (needs two versions)")],
        ["secure renegotiation", _yes_no(f.get("secure_renegotiation"), unknown="n/a")],
        ["extended master secret", _yes_no(f.get("extended_master_secret"), unknown="n/a")],
        ["session ticket", _yes_no(f.get("session_ticket"), unknown="n/a")],
        ["OCSP stapling", _yes_no(f.get("ocsp_stapling"), unknown="not visible (TLS 1.3 only)"
                                  if "TLSv1.3" in obs.versions else "n/a")],
        ["ALPN", f"chose {alpn} of h2, http/1.1" if alpn else
         "none chosen of h2, http/1.1" if "alpn_offered" in f else "n/a"],
    ]
    for version, schemes in sorted((f.get("signature_schemes") or {}).items(), reverse=True):
        rows.append([f"signatures seen ({version})", ", ".join(schemes)])
    lines.append(tabulate(rows, tablefmt="plain"))

    lines += ["", "CERTIFICATES"]
    rows = []
    for c in scan.certificates:
        key = f"{c.get('key_type', '?')} {c.get('key_bits', '')}".strip()
        rows.append([key, c.get("subject", ""), _expiry(c.get("not_after")),
                     ", ".join(c.get("versions", [])), "SNI " + ", ".join(c.get("sni", []))])
    lines.append(tabulate(rows, tablefmt="plain") if rows else "none seen")
    if scan.sni_dependent is not None:
        lines.append("SNI-dependent chain: " + _yes_no(scan.sni_dependent))
    if obs.certificates:
        lines.append(f"served with SNI {scan.sni or 'none'}: {', '.join(obs.certificates)} "
                     "(what the catalog match counts as applicable)")

    lines += ["", "INTOLERANCE"]
    rows = [[k, _yes_no(v.get("tolerated"), "ok", "BREAKS", "-"), v.get("detail", "")]
            for k, v in scan.intolerance.items()]
    lines.append(tabulate(rows, tablefmt="plain", disable_numparse=True))

    lines += ["", "POLICY MATCH"]
    if scan.catalog is not None:
        # one nearest policy per line: each carries its own exact difference
        lines += [_wrap(t) for t in scan.catalog.text().split(" | ")]
    else:
        lines.append("not matched: the scan is not reliable" if not scan.reliable
                     else "no version accepted: nothing to match")
    lines += [_wrap(c.text()) for c in scan.compliance]

    if scan.deep is not None:
        lines += ["", "DEEP (sslyze)"]
        checks = scan.deep.get("checks") or {}
        rows = [[k, _yes_no(v.get("ok"), "ok", "PROBLEM", "-"), v.get("verdict", "")]
                for k, v in checks.items()]
        lines.append(tabulate(rows, tablefmt="plain", disable_numparse=True) if rows
                     else str(scan.deep.get("error", "no result")))

    if scan.warnings:
        lines += ["", "WARNINGS"] + [_wrap(f"- {w}") for w in scan.warnings]
    return "\n".join(lines)


def _starttls(scan: PolicyScan) -> str:
    return f", STARTTLS {scan.starttls}" if scan.starttls else ""


def _wrap(text: str, width: int = 100) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False,
                                   break_long_words=False)) or text


def _expiry(not_after: str | None) -> str:
    if not not_after:
        return ""
    try:
        t = dt.datetime.fromisoformat(not_after)
    except ValueError:
        return f"expires {not_after}"
    days = (t - dt.datetime.now(dt.UTC)).days
    when = f"in {days} days" if days >= 0 else f"EXPIRED {-days} days ago"
    return f"expires {t.date().isoformat()} ({when})"


def no_tls_table(scan: PolicyScan, verdict: NoTls) -> str:
    """What `prober policy` prints when no attempt met a TLS server: that, first, with the
    cause, and what each hello got; no page of n/a."""
    from prober.report.table import tabulate

    lines = [f"{scan.target} → {scan.address or 'unresolved'} (SNI {scan.sni or 'none'}"
             f"{_starttls(scan)}): no TLS endpoint measured; "
             f"{scan.connections.get('total', 0)} connections in {scan.elapsed:.2f} s",
             _wrap(f"NO TLS ENDPOINT MEASURED: {verdict.text()}")]
    rows: dict[tuple[str, str], list[int]] = {}
    for a in scan.attempts:
        rows.setdefault((a.outcome, _TIMING.sub("~", a.detail)), []).append(a.id)
    lines += ["", tabulate([[o, d, len(ids), ", ".join(map(str, ids[:8])) +
                             (" …" if len(ids) > 8 else "")]
                            for (o, d), ids in rows.items()],
                           headers=["outcome", "detail", "attempts", "ids"], tablefmt="plain",
                           disable_numparse=True)]
    return "\n".join(lines)


_TIMING = re.compile(r"\d+(\.\d+)? ms")


def document(scan: PolicyScan) -> dict[str, Any]:

    obs = scan.policy
    return {
        "schema": POLICY_SCHEMA,
        "tool": {"name": "prober", "version": __version__},
        "vantage": {"hostname": hostname(),
                    "started_at": iso_ms(scan.started), "finished_at": iso_ms(scan.finished)},
        "target": {"target": scan.target, "host": scan.host, "port": scan.port,
                   "address": scan.address, "sni": scan.sni, "starttls": scan.starttls},
        "complete": scan.complete,
        "tls_endpoint": tls_endpoint_json(no_tls_of(scan.attempts)),
        "reliable": scan.reliable,
        "elapsed_s": round(scan.elapsed, 3),
        "policy": obs.to_json(),
        "suites": {v: suite_rows(scan, v) for v in obs.versions},
        "groups": {"tls13": obs.groups_tls13, "tls12": obs.groups_tls12,
                   "server_order": scan.group_server_order,
                   "hello_retry_request": scan.hello_retry_request},
        "features": scan.features,
        "certificates": scan.certificates,
        "sni_dependent": scan.sni_dependent,
        "intolerance": scan.intolerance,
        "sanity": scan.sanity,
        "connections": {**scan.connections, "ideal_suites": scan.ideal_suite_connections,
                        "bundles": scan.bundles},
        "catalog": scan.catalog.to_json() if scan.catalog is not None else None,
        "mozilla_compliance": [c.to_json() for c in scan.compliance],
        "deep": scan.deep,
        "warnings": scan.warnings,
        "attempts": [a.to_json() for a in scan.attempts],
    }
