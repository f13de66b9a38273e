"""`prober profiles from-pcap FILE... [--out DIR] [--json FILE]`.

Every ClientHello in the captures becomes part of a profile (one per fingerprint, see
prober/ingest/pcap_hellos.py), written as YAML to --out; a table shows what was found.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prober import __version__
from prober.capture.pcap import import_captures
from prober.cli.common import EXIT_OK, UsageError, json_file_of
from prober.profiles import locations
from prober.profiles.compile import ProfileError
from prober.profiles.describe import versions_text
from prober.profiles.importer import write_yaml
from prober.profiles.loader import load_file
from prober.report.output import emit
from prober.report.table import tabulate
from prober.wire.peertext import json_value

if TYPE_CHECKING:
    from prober.capture.hellos import HelloGroup
    from prober.capture.pcap import CaptureImport
    from prober.profiles.model import Profile

SCHEMA = "prober.pcap-import/1"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "from-pcap", help="profiles from the ClientHellos in pcap/pcapng captures",
        description="Extract every TLS ClientHello from pcap/pcapng captures (Ethernet, "
        "VLAN, Linux cooked, raw IP, VXLAN on UDP 4789; TCP reassembled), one profile per "
        "fingerprint, with counts and client addresses.")
    p.add_argument("files", nargs="+", metavar="FILE", help="pcap or pcapng capture")
    p.add_argument("--out", metavar="DIR",
                   help="where the profile files go (default: imported/ in the user profile "
                   f"directory, {locations.imported_dir()}, where `-p NAME` finds them)")
    p.add_argument("--json", metavar="FILE|-", help="write the findings as JSON (- = stdout)")
    p.set_defaults(func=cmd_from_pcap)


def cmd_from_pcap(args: argparse.Namespace) -> int:

    result = import_captures(args.files)
    out = Path(args.out) if args.out else locations.imported_dir()
    written: list[tuple[HelloGroup, Profile, Path]] = []
    for imported in result.profiles:
        g = imported.group
        path = out / f"{g.name}.yaml"
        try:
            write_yaml(imported.doc, path)
        except OSError as e:
            raise UsageError(f"cannot write {str(path)!r}: {e.strerror}") from None
        # what we write must load back: a profile nobody can replay is no import
        try:
            profile = load_file(path)
        except ProfileError as e:
            path.unlink()
            why = str(e).removeprefix(f"{path}: ")
            result.stats.reject(g.first.source, g.first.frame,
                                f"profile does not load back ({why})"[:120], g.count)
            continue
        written.append((g, profile, path))
    json_out = json_file_of(args)
    emit(document(result, written) if args.json else None, args.json, json_out,
         render(result, written, out))
    return EXIT_OK


def _clients_text(g: HelloGroup) -> str:
    ips = [ip for ip, _ in g.clients.most_common(2)]
    if len(g.clients) == 1:
        return str(ips[0])
    more = "+" if g.clients.overflow else ""
    rest = ", …" if len(g.clients) > len(ips) else ""
    return f"{len(g.clients)}{more}: {', '.join(ips)}{rest}"


def _sni_text(g: HelloGroup) -> str:
    names = g.top_sni()
    if not names:
        return "(none)"
    none = " +no SNI" if g.sni.get("", 0) else ""
    return names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "") + none


def render(result: CaptureImport, written: list[tuple[HelloGroup, Profile, Path]],
           out: Path) -> str:


    st = result.stats
    links = ", ".join(f"{k} {v}" for k, v in st.link_types.most_common())
    if st.seen.get("VXLAN frames opened"):
        links += f"; {st.seen['VXLAN frames opened']} VXLAN-encapsulated"
    lines = [f"{len(st.files)} file{'s' if len(st.files) != 1 else ''}, {st.frames} frames"
             + (f" ({links})" if links else "")
             + f", {st.hellos} ClientHello{'s' if st.hellos != 1 else ''}, "
             f"{len(written)} fingerprint{'s' if len(written) != 1 else ''}", ""]
    rows = [[g.fingerprint, g.count, _clients_text(g), _sni_text(g), versions_text(p),
             len(p.spec.cipher_suites)] for g, p, _ in written]
    if rows:
        lines.append(tabulate(rows, headers=["fingerprint", "count", "client IPs", "SNI",
                                             "versions", "suites"], tablefmt="plain"))
        lines.append("")
        lines.append(f"wrote {len(written)} profile{'s' if len(written) != 1 else ''} to "
                     f"{out}/ (named <JA4>[-<SNI>].yaml, origin: imported)")
    else:
        lines.append("no ClientHello found")
    if st.malformed:
        detail = ", ".join(f"{k}: {v}" for k, v in st.malformed.most_common())
        lines.append(f"malformed: {st.malformed_total} ({detail})")
        lines += [f"  {m.file} frame {m.frame}: {m.why}" for m in st.malformed_frames]
        if st.malformed_total > len(st.malformed_frames):
            lines.append(f"  (the first {len(st.malformed_frames)} listed)")
    else:
        lines.append("malformed: none")
    return "\n".join(lines)


def document(result: CaptureImport,
             written: list[tuple[HelloGroup, Profile, Path]]) -> dict[str, Any]:

    fps = []
    for g, p, path in written:
        fps.append({
            "name": g.name, "file": str(path), "fingerprint": g.fingerprint,
            "ja4": p.extra.get("ja4"), "ja3": p.extra.get("ja3"), "count": g.count,
            "client_ips": [ip for ip, _ in g.clients.most_common()],
            "client_ip_count": len(g.clients),
            "server_ports": sorted(g.server_ports),
            "sni": [json_value(s) for s in g.top_sni()],
            "hellos_without_sni": g.sni.get("", 0),
            "versions": versions_text(p), "suites": len(p.spec.cipher_suites),
            "first_seen": g.span()[0], "last_seen": g.span()[1],
        })
    return {"schema": SCHEMA, "tool": {"name": "prober", "version": __version__},
            "stats": result.stats.to_json(), "fingerprints": fps}
