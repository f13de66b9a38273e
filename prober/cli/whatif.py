"""`prober whatif`: who breaks under a candidate policy, before it is rolled out."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from prober.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Commands,
    UsageError,
    json_file_of,
    run_loop,
)
from prober.cli.options import add_starttls, add_timeouts, deadlines_of
from prober.cli.outputs import WireFiles, add_wire_files
from prober.core.targets import TargetError, parse_target, starttls_note, with_overrides
from prober.logs.pipeline import LogInputError
from prober.policy.naming.catalog import CatalogError, get, load_policy_file
from prober.policy.whatif import run as whatif
from prober.policy.whatif.live import cert_seen, run_live
from prober.policy.whatif.run import Client, log_clients
from prober.policy.whatif.simulate import candidate, predict
from prober.profiles.compile import ProfileError
from prober.profiles.loader import resolve_all
from prober.report.output import emit, say

if TYPE_CHECKING:
    from prober.core.attempt import AttemptResult
    from prober.core.targets import Target
    from prober.logs.population import ClientGroup, Population
    from prober.policy.naming.catalog import NamedPolicy
    from prober.policy.whatif.run import Outcome

DEFAULT_CLIENTS = ["all", "sweep-versions"]


def register(hooks: Commands) -> None:
    p = hooks.command(
        "whatif",
        "Predict, for every client profile, whether its handshake would succeed "
        "under a candidate policy, and say who breaks and why. --against checks the "
        "prediction on a staging endpoint already carrying the candidate; --current "
        "compares with what works today.")
    p.add_argument("--policy", required=True, metavar="NAME|FILE",
                   help="catalog policy name or a policy file (YAML/JSON)")
    p.add_argument("--clients", nargs="+", action="extend", default=[],
                   metavar="SET|FILE|PROFILE|LOG",
                   help="profile names, sets, files or globs, or log files (any format "
                   "`prober logs` reads; - = stdin) whose clients are simulated "
                   "(default: all + sweep-versions)")
    p.add_argument("--format", default="auto", metavar="FMT",
                   help="format of the log files in --clients (default: detected per file; "
                   "formats as in `prober logs`)")
    p.add_argument("--cert", choices=["rsa", "ecdsa", "both"],
                   help="certificate key type(s) the endpoint serves (default: seen on "
                   "--against, else rsa)")
    p.add_argument("--order", choices=["server", "server-chacha", "client"],
                   help="cipher order the endpoint enforces; server-chacha: server order "
                   "with OpenSSL's ChaCha20 priority, as HAProxy by default (default: the "
                   "policy's)")
    p.add_argument("--against", metavar="TARGET",
                   help="also run the profiles live against this endpoint (carrying the "
                   "candidate) and report where simulation and reality disagree")
    p.add_argument("--current", metavar="TARGET|POLICY",
                   help="what works today: a live endpoint (probed) or a catalog policy / "
                   "policy file (simulated)")
    add_timeouts(p)
    add_starttls(p)
    p.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    # only the live runs connect: --against or --current TARGET
    add_wire_files(p)
    p.set_defaults(func=cmd_whatif)


def cmd_whatif(args: argparse.Namespace) -> int:


    deadlines = deadlines_of(args)
    # a bad policy name is reported before the (slower) client profiles are loaded
    policy = policy_of(args.policy, "--policy")
    given = load_clients(args.clients or DEFAULT_CLIENTS, args.format,
                     "--clients" if args.clients else f"--clients (default: "
                     f"{' '.join(DEFAULT_CLIENTS)})")
    clients = given.clients
    against = _target(args.against, "--against", args.starttls) if args.against else None
    current_policy: NamedPolicy | None = None
    current_target: Target | None = None
    if args.current:
        current_policy = _maybe_policy(args.current)
        if current_policy is None:
            current_target = _target(args.current, "--current", args.starttls)
    server_order = None if args.order is None else args.order != "client"
    chacha = None if args.order is None else args.order == "server-chacha"
    # both policies are checked before anything goes on the wire
    cand = candidate(policy, args.cert or "rsa", server_order, chacha)
    cur = candidate(current_policy, args.cert or "rsa") if current_policy else None
    targets = {t.label: t for t in (against, current_target) if t is not None}
    wire_opts = [o for o, v in (("--pcap", args.pcap), ("--keylog", args.keylog)) if v]
    if wire_opts and not targets:
        raise UsageError(f"{wire_opts[0]} records the live attempts: it needs --against TARGET "
                         "or --current TARGET (the simulation alone connects nowhere)")
    # opened now: a path that cannot be written must not cost a live run
    json_out = json_file_of(args)
    wire = WireFiles(args)
    results: list[AttemptResult] = []
    try:
        live = run_loop(run_live(clients, list(targets.values()), deadlines,
                                 on_endpoints=wire.start_for, on_result=results.append)
                        ) if targets else {}
    except KeyboardInterrupt:
        wire.stop()
        wire.write(results)
        say("prober: interrupted", file=sys.stderr)
        if json_out is not None:
            json_out.close()
        return EXIT_INTERRUPTED
    finally:
        wire.stop()
    wire.write(results)
    live_against = live.get(against.label) if against else None
    seen = cert_seen(live_against) if live_against and not args.cert else None
    if seen is not None:
        cand = replace(cand, cert=seen)
        cur = replace(cur, cert=seen) if cur else None
    today: list[Outcome] | None = None
    today_label = None
    if cur is not None:
        today = [predict(c.spec, cur) for c in clients]
        today_label = f"{cur.name} (simulated: {cur.describe()})"
    elif current_target is not None:
        today = list(live[current_target.label])
        today_label = f"{current_target.label} (live, {len(today)} attempts)"
    rep = whatif.build_report(
        clients, cand, today=today, today_label=today_label,
        today_assumptions=cur.assumptions if cur else (), live=live_against,
        against_label=f"{against.label} (live)" if against else None,
        population=given.population, skipped_groups=given.skipped)
    if seen is not None and against is not None:
        rep.notes.append(f"certificate: {seen}, as served by {against.label}")
    emit(whatif.document(rep), args.json, json_out, whatif.render(rep))
    return EXIT_OK


@dataclass
class Clients:
    clients: list[Client]
    population: Population | None = None
    skipped: list[ClientGroup] = field(default_factory=list)


def _is_log(arg: str) -> bool:
    # a profile file is YAML; any other existing file is tried as logs
    p = Path(arg)
    return arg == "-" or (p.is_file() and p.suffix.lower() not in (".yaml", ".yml"))


def load_clients(args: list[str], log_format: str, option: str = "--clients") -> Clients:
    """The clients ``--clients`` names: profiles, sets, files, and log files (their
    population); a one-line UsageError for any that cannot be used."""

    out = Clients([])
    seen: set[str] = set()
    logs = [a for a in args if _is_log(a)]
    for a in args:
        if a in logs:
            continue
        try:
            profiles = resolve_all([a])
        except ProfileError as e:
            raise UsageError(f"{option}: {e}") from None
        # a name that yields no client would shrink the simulation without a word
        if not profiles:
            raise UsageError(f"{option}: {a!r} names no client profile")
        for p in profiles:
            if p.name not in seen:
                seen.add(p.name)
                out.clients.append(Client.of(p))
    if logs:

        try:
            groups, out.population, out.skipped = log_clients(logs, log_format)
        except LogInputError as e:
            raise UsageError(f"--clients: {e}") from None
        out.clients += groups
    if not out.clients:
        raise UsageError("--clients: nothing to simulate (the logs hold no connection with a "
                         "known protocol and suite)")
    return out


def policy_of(text: str, option: str) -> NamedPolicy:
    """A catalog name or policy file; a one-line UsageError naming ``option`` otherwise."""

    try:
        if Path(text).is_file():
            return load_policy_file(text)
        return get(text)
    except CatalogError as e:
        raise UsageError(f"{option}: {e}") from None


def _maybe_policy(text: str) -> NamedPolicy | None:
    """A catalog name or policy file, or None when ``text`` names neither (a target)."""

    if Path(text).is_file():
        return policy_of(text, "--current")
    try:
        return get(text)
    except CatalogError:
        return None


def _target(text: str, option: str, starttls: str | None) -> Target:

    try:
        t = with_overrides(parse_target(text), None, starttls=starttls)
    except TargetError as e:
        raise UsageError(f"{option}: {e} (and not a catalog policy or policy file; "
                         "`prober catalog list` lists the catalog)") from None
    note = starttls_note(t)
    if note is not None:
        say(f"prober: {t.label}: {note}", file=sys.stderr)
    return t
