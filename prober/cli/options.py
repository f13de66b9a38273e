"""Options that several commands share, read the same way by each."""

from __future__ import annotations

import argparse

from prober.core.targets import Target, parse_target, with_overrides
from prober.net.attempt import Deadlines


def target_of(text: str, args: argparse.Namespace) -> Target:
    """TARGET with the --address, --sni and --no-sni options applied (TargetError when
    bad): how every command that probes named endpoints reads them."""
    return with_overrides(parse_target(text), args.address, "" if args.no_sni else args.sni)


def deadlines_of(args: argparse.Namespace) -> Deadlines:
    """-t, --connect-timeout and --read-timeout as one attempt's deadlines."""
    return Deadlines(connect=args.connect_timeout or args.timeout,
                     read=args.read_timeout or args.timeout)
