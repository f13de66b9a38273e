"""Command line: parses arguments, calls the layers, renders. Nothing else lives here."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from prober.net.attempt import Deadlines
    from prober.targets import Target

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # one line naming the bad input, not a usage dump
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    from prober import __version__

    p = _Parser(prog="prober", description="Active TLS handshake prober and compatibility "
                "tester.")
    p.add_argument("--version", action="version", version=f"prober {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    pr = sub.add_parser("probe", help="replay client profiles against endpoints",
                        description="Replay client profiles against endpoints and record "
                        "what happened to every attempt.")
    pr.add_argument("targets", nargs="*", metavar="TARGET",
                    help="host, host:port, [v6addr]:port (default port 443)")
    pr.add_argument("-f", "--targets-file", metavar="FILE",
                    help="read targets from FILE, one per line (# comments)")
    pr.add_argument("-p", "--profile", action="append", default=[], metavar="NAME|FILE|GLOB",
                    help="profile name, file, glob, set (default, sweep-versions, "
                    "sweep-ciphers, ...), cipher:SUITE[@VERSION] or group:GROUP; repeatable "
                    "(default: the 'default' set)")
    pr.add_argument("-n", "--repeat", type=int, default=1, metavar="N",
                    help="attempts per target and profile (default 1)")
    pr.add_argument("-t", "--timeout", type=float, default=5.0, metavar="S",
                    help="deadline of each phase, connect and read (default 5 s)")
    pr.add_argument("--connect-timeout", type=float, metavar="S", help="connect deadline")
    pr.add_argument("--read-timeout", type=float, metavar="S",
                    help="deadline for the server's flight after the ClientHello is sent")
    pr.add_argument("-c", "--concurrency", type=int, default=32, metavar="N",
                    help="attempts in flight at once, over all targets (default 32)")
    pr.add_argument("--per-target", type=int, default=8, metavar="N",
                    help="attempts in flight at once per target address (default 8)")
    pr.add_argument("--rate", type=float, default=0.0, metavar="PER_S",
                    help="start at most this many attempts per second (default: no limit)")
    pr.add_argument("--sni", metavar="NAME", help="send this SNI instead of the target's name")
    pr.add_argument("--no-sni", action="store_true", help="send no SNI at all")
    pr.add_argument("--address", metavar="IP",
                    help="connect to this address instead of resolving the target's name")
    pr.add_argument("--all-addresses", action="store_true",
                    help="probe every address the name resolves to")
    pr.add_argument("--fresh-keys", action="store_true",
                    help="a new key pair (and a newly encoded hello) for every attempt; by "
                         "default each group's key pair is made once per run")
    pr.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    pr.add_argument("--jsonl", metavar="FILE",
                    help="stream one JSON line per attempt as it finishes")
    pr.add_argument("-q", "--quiet", action="store_true", help="no table, no progress")
    pr.set_defaults(func=cmd_probe)

    pf = sub.add_parser("profiles", help="list and show client profiles")
    psub = pf.add_subparsers(dest="profiles_command", metavar="ACTION", parser_class=_Parser)
    pl = psub.add_parser("list", help="table of profiles")
    pl.add_argument("--set", metavar="NAME", help="only the profiles of this set")
    pl.set_defaults(func=cmd_profiles_list)
    ps = psub.add_parser("show", help="one profile in full")
    ps.add_argument("name", metavar="NAME|FILE")
    ps.set_defaults(func=cmd_profiles_show)
    pf.set_defaults(func=lambda a: _usage(pf))

    po = sub.add_parser("outcomes", help="the outcome taxonomy")
    po.set_defaults(func=cmd_outcomes)
    hooks = Commands(top=sub, profiles=psub)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(hooks)
    return p


@dataclass
class Commands:
    """Where command modules attach their sub-commands (``register(hooks)``).

    A command module keeps its top level light (argparse only) and imports what it
    needs inside its handler: every module here is imported at each start.
    """

    top: Any  # argparse._SubParsersAction for `prober COMMAND`
    profiles: Any  # the same for `prober profiles ACTION`


# one line per command module, each defining register(hooks: Commands) -> None
COMMAND_MODULES: tuple[str, ...] = (
    "prober.policy.command",  # issue 4: policy
    "prober.profiles.from_pcap",  # issue 3: profiles from-pcap
    "prober.profiles.capture_command",  # issue 3: profiles capture
    "prober.ingest.logs_command",  # issue 6: logs
    "prober.policy.whatif_command",  # issue 6: whatif
    "prober.check.command",  # issue 6: check
    "prober.diagnose.command",  # issue 5: diagnose, diff
)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        rc: int = args.func(args)
        return rc
    except UsageError as e:
        print(f"prober: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


# --- probe -----------------------------------------------------------------------------


def _input_errors() -> tuple[type[Exception], ...]:
    from prober.profiles.compile import ProfileError
    from prober.targets import TargetError

    return (ProfileError, TargetError)


def _open_out(path: str) -> IO[str]:
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path!r}: {e.strerror}") from None


def json_file_of(args: argparse.Namespace) -> IO[str] | None:
    """``--json FILE`` opened before any work, so an unwritable path fails at once; None
    for no ``--json`` or ``--json -`` (stdout, see report.output.emit)."""
    return _open_out(args.json) if args.json and args.json != "-" else None


def target_of(text: str, args: argparse.Namespace) -> Target:
    """TARGET with the --address, --sni and --no-sni options applied (TargetError when
    bad): how every command that probes named endpoints reads them."""
    from prober.targets import parse_target, with_overrides

    return with_overrides(parse_target(text), args.address, "" if args.no_sni else args.sni)


def deadlines_of(args: argparse.Namespace) -> Deadlines:
    """-t, --connect-timeout and --read-timeout as one attempt's deadlines."""
    from prober.net.attempt import Deadlines

    return Deadlines(connect=args.connect_timeout or args.timeout,
                     read=args.read_timeout or args.timeout)


def cmd_probe(args: argparse.Namespace) -> int:
    from prober import engine
    from prober.profiles.loader import resolve_all
    from prober.report.output import emit
    from prober.report.probe import RunInfo, document, table
    from prober.report.progress import Progress
    from prober.targets import read_targets_file

    try:
        raw = list(args.targets)
        if args.targets_file:
            raw += read_targets_file(args.targets_file)
        if not raw:
            raise UsageError("no target given (TARGET... or --targets-file)")
        targets = [target_of(t, args) for t in raw]
        profiles = resolve_all(args.profile)
    except _input_errors() as e:
        raise UsageError(str(e)) from None
    for name, value, low in (("--repeat", args.repeat, 1), ("--concurrency", args.concurrency, 1),
                             ("--per-target", args.per_target, 1)):
        if value < low:
            raise UsageError(f"{name} must be at least {low}, got {value}")
    if args.timeout <= 0 or args.rate < 0:
        raise UsageError("--timeout must be positive and --rate not negative")
    deadlines = deadlines_of(args)
    opts = engine.EngineOptions(repeat=args.repeat, concurrency=args.concurrency,
                                per_target=args.per_target, rate=args.rate,
                                deadlines=deadlines, all_addresses=args.all_addresses,
                                fresh_keys=args.fresh_keys)
    jsonl = _open_out(args.jsonl) if args.jsonl else None
    json_out = json_file_of(args)
    _raise_fd_limit(args.concurrency)

    results: list[Any] = []
    info = RunInfo(started=time.time(), profiles=[p.name for p in profiles],
                   options={"repeat": args.repeat, "connect_timeout_s": deadlines.connect,
                            "read_timeout_s": deadlines.read, "concurrency": args.concurrency,
                            "per_target": args.per_target, "rate": args.rate,
                            "all_addresses": args.all_addresses})
    progress: Progress | None = None

    def on_result(r: Any) -> None:
        results.append(r)
        if jsonl is not None:
            jsonl.write(json.dumps(r.to_json(), separators=(",", ":")) + "\n")
            jsonl.flush()
        if progress is not None:
            progress.update(r.outcome)

    async def go() -> None:
        nonlocal progress
        info.endpoints = await engine.resolve_targets(targets, args.all_addresses)
        total = len(info.endpoints) * len(profiles) * args.repeat
        progress = Progress(total, enabled=None if not args.quiet else False)
        await engine.run(info.endpoints, profiles, opts, on_result)

    rc = EXIT_OK
    try:
        _run_loop(go())
    except KeyboardInterrupt:
        info.complete = False
        rc = EXIT_INTERRUPTED
    finally:
        if progress is not None:
            progress.close()
        info.finished = time.time()
        if jsonl is not None:
            jsonl.close()
    emit(document(results, info) if args.json else None, args.json, json_out,
         None if args.quiet else table(results, info))
    return rc


def _run_loop(coro: Any) -> None:
    """asyncio.run, on uvloop where installed: it halves the per-attempt loop overhead."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        asyncio.run(coro)
        return
    uvloop.run(coro)


def _raise_fd_limit(concurrency: int) -> None:
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = concurrency + 256
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


# --- profiles ----------------------------------------------------------------------------


def cmd_profiles_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from prober.profiles import loader
    from prober.profiles.describe import summary_row

    try:
        if args.set:
            sets = loader.set_names()
            if args.set not in sets:
                raise UsageError(
                    f"unknown profile set {args.set!r}; sets: {', '.join(sorted(sets))}")
            profiles = loader.resolve(args.set)
        else:
            profiles = loader.resolve_all([*loader.available_names(), "sweep-versions"])
    except _input_errors() as e:
        raise UsageError(str(e)) from None
    rows = [summary_row(p) for p in profiles]
    print(tabulate(rows, headers=["name", "versions", "suites", "groups", "JA4", "origin"],
                   tablefmt="plain"))
    sets = loader.set_names()
    print(f"\nsets: {', '.join(f'{k} ({len(v)})' for k, v in sorted(sets.items()))}")
    print("generated: sslv2-only … tls1.3-only, cipher:SUITE[@VERSION], group:GROUP")
    return EXIT_OK


def cmd_profiles_show(args: argparse.Namespace) -> int:
    from prober.profiles import loader
    from prober.profiles.describe import full_text

    try:
        profiles = loader.resolve(args.name)
    except _input_errors() as e:
        raise UsageError(str(e)) from None
    print("\n\n".join(full_text(p) for p in profiles))
    return EXIT_OK


def cmd_outcomes(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from prober.outcome import OUTCOMES

    print(tabulate(list(OUTCOMES.items()), headers=["outcome", "meaning"], tablefmt="plain"))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
