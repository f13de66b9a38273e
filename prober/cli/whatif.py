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
from prober.core import engine
from prober.core.outcome import CONNECT_FAILURES, AttemptResult
from prober.core.targets import TargetError, parse_target
from prober.logs.pipeline import LogInputError, load_population
from prober.net.attempt import Deadlines
from prober.policy.naming.catalog import CatalogError, get, load_policy_file
from prober.policy.whatif import run as whatif
from prober.policy.whatif.run import Client, Live, population_clients
from prober.policy.whatif.simulate import CandidateError, candidate, predict
from prober.profiles.compile import ProfileError
from prober.profiles.loader import resolve_all
from prober.report.output import emit, say

if TYPE_CHECKING:
    from prober.core.engine import Endpoint
    from prober.core.targets import Target
    from prober.logs.population import ClientGroup, Population
    from prober.policy.naming.catalog import NamedPolicy
    from prober.policy.whatif.run import Client, Live, Outcome
    from prober.policy.whatif.simulate import CertKind

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
    p.add_argument("--order", choices=["server", "client"],
                   help="cipher order the endpoint enforces (default: the policy's)")
    p.add_argument("--against", metavar="TARGET",
                   help="also run the profiles live against this endpoint (carrying the "
                   "candidate) and report where simulation and reality disagree")
    p.add_argument("--current", metavar="TARGET|POLICY",
                   help="what works today: a live endpoint (probed) or a catalog policy / "
                   "policy file (simulated)")
    p.add_argument("-t", "--timeout", type=float, default=5.0, metavar="S",
                   help="deadline of each phase of a live attempt (default 5 s)")
    p.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    p.set_defaults(func=cmd_whatif)


def cmd_whatif(args: argparse.Namespace) -> int:


    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    given = _clients(args.clients or DEFAULT_CLIENTS, args.format)
    clients = given.clients
    against = _target(args.against, "--against") if args.against else None
    current_policy: NamedPolicy | None = None
    current_target: Target | None = None
    if args.current:
        current_policy = _maybe_policy(args.current)
        if current_policy is None:
            current_target = _target(args.current, "--current")
    server_order = None if args.order is None else args.order == "server"
    # both policies are checked before anything goes on the wire
    try:
        cand = candidate(_policy(args.policy, "--policy"), args.cert or "rsa", server_order)
        cur = candidate(current_policy, args.cert or "rsa") if current_policy else None
    except CandidateError as e:
        raise UsageError(str(e)) from None
    # opened now: a path that cannot be written must not cost a live run
    json_out = json_file_of(args)
    targets = {t.label: t for t in (against, current_target) if t is not None}
    try:
        live = _run_live(clients, list(targets.values()), args.timeout) if targets else {}
    except KeyboardInterrupt:
        say("prober: interrupted", file=sys.stderr)
        if json_out is not None:
            json_out.close()
        return EXIT_INTERRUPTED
    live_against = live.get(against.label) if against else None
    seen = _cert_seen(live_against) if live_against and not args.cert else None
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


def _clients(args: list[str], log_format: str) -> Clients:

    out = Clients([])
    seen: set[str] = set()
    logs = [a for a in args if _is_log(a)]
    for a in args:
        if a in logs:
            continue
        try:
            profiles = resolve_all([a])
        except ProfileError as e:
            raise UsageError(f"--clients: {e}") from None
        for p in profiles:
            if p.name not in seen:
                seen.add(p.name)
                out.clients.append(Client.of(p))
    if logs:

        try:
            out.population = load_population(logs, format=log_format)
        except LogInputError as e:
            raise UsageError(f"--clients: {e}") from None
        groups, out.skipped = population_clients(out.population)
        out.clients += groups
    if not out.clients:
        raise UsageError("--clients: nothing to simulate (the logs hold no connection with a "
                         "known protocol and suite)")
    return out


def _policy(text: str, option: str) -> NamedPolicy:

    try:
        if Path(text).is_file():
            return load_policy_file(text)
        return get(text)
    except CatalogError as e:
        raise UsageError(f"{option}: {e}") from None


def _maybe_policy(text: str) -> NamedPolicy | None:
    """A catalog name or policy file, or None when ``text`` names neither (a target)."""

    if Path(text).is_file():
        return _policy(text, "--current")
    try:
        return get(text)
    except CatalogError:
        return None


def _target(text: str, option: str) -> Target:

    try:
        return parse_target(text)
    except TargetError as e:
        raise UsageError(f"{option}: {e} (and not a catalog policy or policy file)") from None


def _cert_seen(live: list[Live]) -> CertKind | None:
    kinds = {lv.cert_key_type for lv in live if lv.cert_key_type}
    if kinds == {"RSA"}:
        return "rsa"
    if kinds == {"ECDSA"}:
        return "ecdsa"
    return "both" if {"RSA", "ECDSA"} <= kinds else None


def _run_live(clients: list[Client], targets: list[Target], timeout: float
              ) -> dict[str, list[Live]]:
    """Each client's hello once against each target; results by target label, in
    client order."""

    profiles = [c.profile for c in clients]
    results: dict[tuple[str, str], AttemptResult] = {}
    endpoints: list[Endpoint] = []

    async def go() -> None:
        endpoints.extend(await engine.resolve_targets(targets, False))
        opts = engine.EngineOptions(concurrency=32, per_target=8,
                                    deadlines=Deadlines(timeout, timeout))
        await engine.run(endpoints, profiles, opts,
                         lambda r: results.__setitem__((r.target, r.profile), r))

    run_loop(go())
    for ep in endpoints:
        if ep.error:
            raise UsageError(f"{ep.target.label}: {ep.error}")
    out = {t.label: [Live.of(results[(t.label, c.name)]) for c in clients] for t in targets}
    for label, lives in out.items():
        # an endpoint that never answered says nothing about any policy
        if all(lv.outcome in CONNECT_FAILURES for lv in lives):
            raise UsageError(f"{label}: no TLS endpoint answered ({lives[0].outcome}: "
                             f"{lives[0].detail})")
    return out
