"""`prober profiles from-pcap FILE... [--out DIR] [--json FILE]`.

Every ClientHello in the captures becomes part of a profile (one per fingerprint, see
prober/ingest/pcap_hellos.py), written as YAML to --out; a table shows what was found.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prober.capture.pcap import import_captures
from prober.capture.report import document, render
from prober.cli.common import EXIT_OK, UsageError, json_file_of
from prober.profiles import locations
from prober.profiles.compile import ProfileError
from prober.profiles.importer import write_yaml
from prober.profiles.loader import load_file
from prober.report.output import emit

if TYPE_CHECKING:
    from prober.capture.hellos import HelloGroup
    from prober.profiles.model import Profile

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
