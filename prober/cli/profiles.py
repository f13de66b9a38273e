"""`prober profiles list|show|from-pcap|capture` and `prober outcomes`."""

from __future__ import annotations

import argparse
import sys

from prober.cli import capture, from_pcap
from prober.cli.common import EXIT_OK, EXIT_USAGE, Commands, Parser, UsageError
from prober.core.outcome import OUTCOMES
from prober.profiles import loader, locations
from prober.profiles.describe import full_text, summary_row
from prober.report.output import say
from prober.report.table import tabulate


def register(hooks: Commands) -> None:
    pf = hooks.parsers["profiles"]
    psub = pf.add_subparsers(dest="profiles_command", metavar="ACTION", parser_class=Parser)
    pl = psub.add_parser("list", help="table of profiles")
    pl.add_argument("--set", metavar="NAME", help="only the profiles of this set")
    pl.set_defaults(func=cmd_profiles_list)
    ps = psub.add_parser("show", help="one profile in full")
    ps.add_argument("name", metavar="NAME|FILE")
    ps.set_defaults(func=cmd_profiles_show)
    pd = psub.add_parser(
        "dirs", help="where profiles are read from, in order, and where new ones go",
        description="The directories profile files are read from, in order (the first "
        f"file carrying a name wins): ${locations.ENV_VAR} (colon-separated), the user "
        "directory ($XDG_CONFIG_HOME/prober/profiles, where from-pcap and capture write), "
        "the profiles shipped with prober.")
    pd.set_defaults(func=cmd_profiles_dirs)
    pf.set_defaults(func=lambda a: _usage(pf))
    from_pcap.register(psub)
    capture.register(psub)

    hooks.parsers["outcomes"].set_defaults(func=cmd_outcomes)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def cmd_profiles_list(args: argparse.Namespace) -> int:


    if args.set:
        sets = loader.set_names()
        if args.set not in sets:
            raise UsageError(
                f"unknown profile set {args.set!r}; sets: {', '.join(sorted(sets))}")
        profiles = loader.resolve(args.set)
    else:
        # nothing to list means the installation lost its profiles: say where we looked
        loader.require_files()
        profiles = loader.resolve_all([*loader.available_names(), "sweep-versions"])
    rows = [summary_row(p) for p in profiles]
    say(tabulate(rows, headers=["name", "versions", "suites", "groups", "JA4", "origin"],
                 tablefmt="plain"))
    sets = loader.set_names()
    say(f"\nsets: {', '.join(f'{k} ({len(v)})' for k, v in sorted(sets.items()))}")
    say("generated: sslv2-only … tls1.3-only, cipher:SUITE[@VERSION], group:GROUP")
    return EXIT_OK


def cmd_profiles_show(args: argparse.Namespace) -> int:

    profiles = loader.resolve(args.name)
    say("\n\n".join(full_text(p) for p in profiles))
    return EXIT_OK


def cmd_profiles_dirs(args: argparse.Namespace) -> int:
    counts = loader.files_per_directory()
    rows = [[locations.ENV, "(unset)", ""]] if not locations.env_dirs() else []
    for d in locations.env_dirs():
        rows.append([locations.ENV, str(d), f"{counts.get(d, 0)} profiles"])
    user = locations.user_dir()
    rows.append([locations.USER, str(user),
                 f"{counts[user]} profiles" if user in counts else "(does not exist yet)"])
    ship = locations.shipped()
    if ship is not None:
        rows.append([ship.kind, str(ship.path), f"{counts.get(ship.path, 0)} profiles"])
    say(tabulate(rows, tablefmt="plain", disable_numparse=True))
    say(f"\nnew profiles: from-pcap -> {locations.imported_dir()}, capture -> "
          f"{locations.captured_dir()}")
    return EXIT_OK


def cmd_outcomes(args: argparse.Namespace) -> int:


    say(tabulate(list(OUTCOMES.items()), headers=["outcome", "meaning"], tablefmt="plain"))
    return EXIT_OK
