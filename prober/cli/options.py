"""Options that several commands share, added and read the same way by each."""

from __future__ import annotations

import argparse
import sys

from prober.cli.common import UsageError
from prober.core.targets import (
    Target,
    parse_target,
    sni_choice,
    starttls_note,
    with_overrides,
)
from prober.net.attempt import DEFAULT_TIMEOUT_S, Deadlines
from prober.report.output import say
from prober.wire.starttls import PROTOCOLS as STARTTLS_PROTOCOLS


def add_target_options(p: argparse.ArgumentParser) -> None:
    """--sni / --no-sni / --address: which name the hellos carry, where to connect."""
    p.add_argument("--sni", metavar="NAME", help="send this SNI instead of the target's name")
    p.add_argument("--no-sni", action="store_true", help="send no SNI at all")
    p.add_argument("--address", metavar="IP",
                   help="connect to this address instead of resolving the target's name "
                   "(the name is still sent as SNI)")
    add_starttls(p)


def add_starttls(p: argparse.ArgumentParser) -> None:
    """--starttls: the plaintext preamble before every ClientHello."""
    p.add_argument("--starttls", metavar="PROTO", choices=[*STARTTLS_PROTOCOLS, "none"],
                   help="speak this protocol's plaintext preamble first: "
                   f"{', '.join(STARTTLS_PROTOCOLS)} (PostgreSQL's SSLRequest); default: "
                   "inferred from a plaintext port (25, 587, 143, 110, 21, 389, 5222, 5432), "
                   "'none' for TLS at once")


def add_timeouts(p: argparse.ArgumentParser, *, default: float | None = DEFAULT_TIMEOUT_S,
                 default_text: str = f"{DEFAULT_TIMEOUT_S:g} s") -> None:
    """-t / --connect-timeout / --read-timeout: the deadlines of every attempt."""
    p.add_argument("-t", "--timeout", type=float, default=default, metavar="S",
                   help=f"deadline of each phase, connect and read (default {default_text})")
    p.add_argument("--connect-timeout", type=float, metavar="S", help="connect deadline")
    p.add_argument("--read-timeout", type=float, metavar="S",
                   help="deadline for the server's flight after the ClientHello is sent")


def target_of(text: str, args: argparse.Namespace) -> Target:
    """TARGET with --address, --sni and --no-sni applied: how every command that probes
    named endpoints reads them (TargetError when bad)."""
    t = with_overrides(parse_target(text), args.address, sni_choice(args.sni, args.no_sni),
                       args.starttls)
    note = starttls_note(t)
    if note is not None:
        say(f"prober: {t.label}: {note}", file=sys.stderr)
    return t


def deadlines_of(args: argparse.Namespace, fallback: float = DEFAULT_TIMEOUT_S) -> Deadlines:
    """-t, --connect-timeout and --read-timeout as one attempt's deadlines; ``fallback``
    when -t has no default (check: the expectations file's timeout)."""
    base = fallback if args.timeout is None else args.timeout
    for name, value in (("--timeout", base), ("--connect-timeout", args.connect_timeout),
                        ("--read-timeout", args.read_timeout)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be positive, got {value:g}")
    return Deadlines(connect=args.connect_timeout or base, read=args.read_timeout or base)
