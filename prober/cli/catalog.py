"""`prober catalog list|show`: the named policies endpoints are matched against."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prober.cli.common import EXIT_OK, EXIT_USAGE, Commands, Parser, json_file_of
from prober.policy.naming.catalog import PROVIDER_FAMILIES, NamedPolicy, by_provider, get
from prober.policy.naming.match import protocol_label
from prober.report.output import emit
from prober.report.table import tabulate
from prober.wire import registry as reg

CATALOG_SCHEMA = "prober.catalog/1"


def register(hooks: Commands) -> None:
    pc = hooks.command(
        "catalog",
        "The named TLS policies (AWS ELB and CloudFront, GCP, Azure Application Gateway, "
        "Cloudflare, Mozilla) that `prober policy` matches endpoints against.")
    sub = pc.add_subparsers(dest="catalog_command", metavar="ACTION", parser_class=Parser)
    pl = sub.add_parser("list", help="one line per policy")
    pl.add_argument("--provider", choices=list(PROVIDER_FAMILIES),
                    help="only this provider's policies")
    pl.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    pl.set_defaults(func=cmd_list)
    ps = sub.add_parser("show", help="one policy in full: versions, suites in order, "
                        "groups, certificates, variants, sources")
    ps.add_argument("name", metavar="NAME")
    ps.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    ps.set_defaults(func=cmd_show)
    pc.set_defaults(func=lambda a: _usage(pc))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def _versions(p: NamedPolicy) -> str:
    if p.protocols is None:
        return "not documented"
    return ", ".join(protocol_label(v) for v in p.protocols) or "none"


def _count(items: tuple[str, ...] | None, protocols: bool) -> str:
    if not protocols:
        return "-"
    return "?" if items is None else str(len(items))


def _legacy(p: NamedPolicy) -> bool:
    return p.protocols is None or any(v != "TLSv1.3" for v in p.protocols)


def _tls13(p: NamedPolicy) -> bool:
    return p.protocols is None or "TLSv1.3" in p.protocols


def cmd_list(args: argparse.Namespace) -> int:
    json_out = json_file_of(args)
    policies = by_provider(args.provider)
    rows = [[p.name, p.provider, _versions(p), _count(p.tls13_suites, _tls13(p)),
             _count(p.suites, _legacy(p)),
             "?" if p.groups is None else str(len(p.groups)),
             ", ".join(p.certificate_types or ()) or "-",
             ", ".join(v.id for v in p.variants) or "-",
             p.confidence] for p in policies]
    text = tabulate(rows, headers=["name", "provider", "versions", "TLS 1.3", "TLS ≤1.2",
                                   "groups", "certificates", "variants", "confidence"],
                    tablefmt="plain", disable_numparse=True)
    text += (f"\n\n{len(policies)} policies; ? = not documented; "
             "`prober catalog show NAME` shows one in full")
    doc = {"schema": CATALOG_SCHEMA, "provider": args.provider,
           "policies": [_summary(p) for p in policies]}
    emit(doc, args.json, json_out, text)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    json_out = json_file_of(args)
    p = get(args.name)
    emit({"schema": CATALOG_SCHEMA, "policy": _full(p)}, args.json, json_out, show_text(p))
    return EXIT_OK


def _openssl(iana: str) -> str | None:
    try:
        return reg.suite_openssl_name(reg.suite_value(iana))
    except KeyError:
        return None


def _suite_rows(names: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for i, iana in enumerate(names, 1):
        try:
            cs = reg.suite(reg.suite_value(iana))
        except KeyError:
            cs = None
        rows.append([str(i), iana, (cs.openssl_name or "") if cs else "",
                     (cs.auth or "") if cs and not cs.tls13 else ""])
    return rows


def show_text(p: NamedPolicy) -> str:
    lines = [f"{p.name}  ({p.provider}, {p.confidence})", f"versions: {_versions(p)}"]
    order = ("suites listed in the publisher's preference order" if p.order_is_priority
             else "the listed order is not a preference order (the publisher says so)")
    server_pref = p.raw.get("server_preferred_order")
    if server_pref is not None:
        order += ("; the publisher prescribes server order" if server_pref
                  else "; the publisher prescribes following the client's order")
    lines.append(f"order: {order}")
    for title, names, speaks in (("TLS 1.3 suites", p.tls13_suites, _tls13(p)),
                                 ("TLS ≤1.2 suites", p.suites, _legacy(p))):
        if not speaks:
            continue
        lines.append("")
        if names is None:
            lines.append(f"{title}: not documented")
            continue
        lines.append(f"{title} ({len(names)}, in order):" if names else f"{title}: none")
        if names:
            lines.append(tabulate(_suite_rows(names), headers=["#", "IANA", "OpenSSL", "auth"],
                                  tablefmt="plain", disable_numparse=True))
    lines.append("")
    lines.append("groups: " + ("not documented" if p.groups is None
                               else ", ".join(p.groups) or "none"))
    if p.certificate_types:
        lines.append(f"certificates the publisher prescribes: {', '.join(p.certificate_types)}")
    for label, alt in p.order_alternatives:
        lines.append(f"alternative order ({label}): "
                     + ", ".join(_openssl(s) or s for s in alt))
    for v in p.variants:
        lines.append(f"variant {v.name}: groups {', '.join(v.groups or ()) or 'none'}; "
                     f"{v.why} (source: {v.source})")
    if p.notes:
        lines.append(f"notes: {p.notes}")
    lines.append(f"source: {p.source}")
    return "\n".join(lines)


def _summary(p: NamedPolicy) -> dict[str, Any]:
    return {"name": p.name, "provider": p.provider, "confidence": p.confidence,
            "protocols": list(p.protocols) if p.protocols is not None else None,
            "tls13_suites": len(p.tls13_suites) if p.tls13_suites is not None else None,
            "suites": len(p.suites) if p.suites is not None else None,
            "groups": list(p.groups) if p.groups is not None else None,
            "certificate_types": list(p.certificate_types or ()),
            "variants": [v.id for v in p.variants]}


def _full(p: NamedPolicy) -> dict[str, Any]:
    def names(x: tuple[str, ...] | None) -> list[str] | None:
        return list(x) if x is not None else None

    return {"name": p.name, "provider": p.provider, "confidence": p.confidence,
            "documented": p.documented, "protocols": names(p.protocols),
            "tls13_suites": names(p.tls13_suites), "suites": names(p.suites),
            "suites_openssl": [_openssl(s) for s in p.suites] if p.suites is not None
            else None,
            "groups": names(p.groups), "order_is_priority": p.order_is_priority,
            "certificate_types": names(p.certificate_types),
            "order_alternatives": {k: list(v) for k, v in p.order_alternatives},
            "variants": [v.to_json() for v in p.variants], "notes": p.notes,
            "source": p.source}
