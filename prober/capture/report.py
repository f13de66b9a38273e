"""What `prober profiles from-pcap` found: the table people read and the
``prober.pcap-import/1`` document machines read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prober import __version__
from prober.capture.hellos import HelloGroup
from prober.capture.pcap import CaptureImport
from prober.profiles.describe import versions_text
from prober.profiles.model import Profile
from prober.report.table import tabulate
from prober.wire.peertext import json_value

SCHEMA = "prober.pcap-import/1"


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
