"""`prober agent`: a vantage point. A Celery worker consuming its vantage's queue that
probes only what its allowlist permits (docs/fleet.md)."""

from __future__ import annotations

import argparse
import os

from prober.cli.common import EXIT_OK, Commands, UsageError
from prober.fleet.allowlist import Allowlist
from prober.fleet.celeryapp import (
    DEFAULT_AGENT_CONCURRENCY,
    DEFAULT_TIME_LIMIT_S,
    DEFAULT_VISIBILITY_S,
    run_agent,
)
from prober.fleet.leases import LEASE_TTL_S
from prober.net.host import hostname


def register(hooks: Commands) -> None:
    p = hooks.command("agent", "Run a vantage point: consume its queue on the broker and "
                      "run each task against endpoints its allowlist permits.")
    p.add_argument("--broker", required=True, metavar="URL",
                   help="redis://host:6379/0, or rediss://host:6380/0?ssl_ca_certs=CA.pem "
                        "(TLS, certificate verified; docs/fleet.md)")
    p.add_argument("--vantage", required=True, metavar="NAME",
                   help="the vantage point this agent serves (its queue)")
    p.add_argument("--allow", action="append", required=True, metavar="CIDR:PORTS",
                   help="networks and ports it may probe, e.g. 10.0.0.0/8:443,8443 "
                   "(repeatable; anything else is refused and reported)")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, metavar="S",
                   help="the longest this agent lets a task run (default 1800 s); a run's "
                   "own `fleet run --time-limit` applies when it is shorter")
    p.add_argument("--visibility-timeout", type=float, default=DEFAULT_VISIBILITY_S,
                   metavar="S", help="must exceed --time-limit")
    p.add_argument("--lease-ttl", type=float, default=LEASE_TTL_S, metavar="S",
                   help="how long a dead agent's hold on an endpoint's connection slots "
                   f"outlives it (default {LEASE_TTL_S:g} s; renewed every third of it)")
    p.add_argument("-c", "--concurrency", type=int, default=DEFAULT_AGENT_CONCURRENCY,
                   metavar="N", help="tasks at once, on one event loop, whatever shards "
                   f"they came in, and shards held (default {DEFAULT_AGENT_CONCURRENCY}, as "
                   "`fleet run -c`); each task opens at most its endpoint's cap of connections")
    p.add_argument("--name", metavar="NAME", help="worker name (default vantage@host-pid)")
    p.add_argument("--loglevel", default="INFO", metavar="LEVEL")
    p.set_defaults(func=cmd_agent)


def cmd_agent(args: argparse.Namespace) -> int:
    if not args.vantage.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"--vantage {args.vantage!r}: letters, digits, '-', '_', '.' only")
    allow = Allowlist.parse(args.allow)
    if args.lease_ttl < 1:
        raise UsageError(f"--lease-ttl must be at least 1 s, got {args.lease_ttl:g}")
    if not 1 <= args.concurrency <= 1024:
        raise UsageError(f"--concurrency must be 1-1024, got {args.concurrency}")
    name = args.name or f"{args.vantage}@{hostname()}-{os.getpid()}"
    run_agent(args.broker, args.vantage, allow, time_limit=args.time_limit,
              visibility_timeout=args.visibility_timeout, name=name,
              lease_ttl=args.lease_ttl, concurrency=args.concurrency,
              loglevel=args.loglevel)
    return EXIT_OK
