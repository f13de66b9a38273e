"""`prober fleet run|report|export`: a job over an inventory, from one or several vantage
points, into the SQLite results store (docs/fleet.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from prober.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Commands,
    Parser,
    UsageError,
    json_file_of,
    open_out,
    run_loop,
)
from prober.cli.options import add_timeouts, deadlines_of
from prober.cli.whatif import DEFAULT_CLIENTS, load_clients
from prober.cli.whatif import policy_of as whatif_policy
from prober.diagnose.findings import CONFIDENCE_ORDER, FINDING_IDS
from prober.fleet import inventory, report
from prober.fleet import whatif as fleet_whatif
from prober.fleet.runner import (
    DEFAULT_SHARD_SIZE,
    EMBEDDED_VANTAGE,
    MAX_SHARD_SIZE,
    FleetOptions,
    Progress,
    check_consumers,
    plan,
    run_distributed,
    run_embedded,
)
from prober.fleet.store import DEFAULT_STORE, Store
from prober.fleet.tasks import FLEET_FINDING_IDS, JOBS
from prober.report.output import emit, say

# `info` is a diagnosis's policy summary: counted only when asked for
SEVERITIES = tuple(CONFIDENCE_ORDER)


def register(hooks: Commands) -> None:
    p = hooks.command("fleet", "Run a job over an inventory of endpoints from one or several "
                      "vantage points and keep the results in a SQLite store.")
    sub = p.add_subparsers(dest="fleet_command", metavar="ACTION", parser_class=Parser)
    r = sub.add_parser("run", help="run a job over an inventory")
    r.add_argument("inventory", nargs="?", metavar="INVENTORY",
                   help="inventory (.yaml) or plain targets file (not with --resume)")
    r.add_argument("--job", choices=JOBS, default="probe",
                   help="probe (the group's profiles), policy (enumerate and name it), "
                   "diagnose (as `prober diagnose`) or check (the group's expectations "
                   "file); default probe")
    r.add_argument("-p", "--profile", action="append", metavar="NAME",
                   help="profiles for --job probe, instead of each group's (repeatable)")
    r.add_argument("-n", "--repeat", type=int, default=1, metavar="N")
    _store_option(r)
    r.add_argument("--resume", type=int, metavar="RUN",
                   help="finish a run whose coordinator was stopped")
    r.add_argument("--broker", metavar="URL",
                   help="redis:// (rediss:// for TLS) broker of the agents; without it, "
                        "run in this process")
    r.add_argument("--vantage", action="append", metavar="NAME",
                   help="vantage point whose agents run the tasks (repeatable; with --broker)")
    r.add_argument("--time-limit", type=float, default=1800.0, metavar="S",
                   help="a task's time limit (default 1800 s); on agents it counts from the "
                   "start of the task's shard, so that no shard outlasts it")
    r.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N",
                   help="with --broker: tasks of one vantage point per message to its agents "
                   f"(1-{MAX_SHARD_SIZE}, default {DEFAULT_SHARD_SIZE}; 1: a message per "
                   "task)")
    r.add_argument("--visibility-timeout", type=float, default=3600.0, metavar="S",
                   help="broker redelivery delay of an unacknowledged task (default 3600 s, "
                   "must exceed --time-limit)")
    r.add_argument("--stall", type=float, default=None, metavar="S",
                   help="give up when no answer came for S seconds (default: time limit + "
                   "visibility timeout + 60)")
    r.add_argument("-c", "--concurrency", type=int, default=16, metavar="N",
                   help="in-process: tasks at once (default 16)")
    r.add_argument("--fail-on", default="high", metavar="LIST",
                   help="findings that make the exit status 1: severities "
                   f"({', '.join(SEVERITIES)}) and/or finding ids, comma-separated, "
                   "or none (default high)")
    r.add_argument("--retention", type=int, metavar="N", help="keep only the newest N runs")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_timeouts(r)
    r.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="what a run found, between vantage points, drift")
    _store_option(rep)
    rep.add_argument("--run", type=int, metavar="RUN", help="default: the newest")
    rep.add_argument("--since", type=int, metavar="RUN", help="drift since this earlier run")
    rep.add_argument("--json", metavar="FILE|-", help="write the report as JSON")
    rep.set_defaults(func=cmd_report)
    w = sub.add_parser("whatif", help="who breaks across the fleet under a policy")
    w.add_argument("--policy", required=True, metavar="NAME|FILE",
                   help="catalog policy name or a policy file (YAML/JSON), as for whatif")
    _store_option(w)
    w.add_argument("--run", type=int, metavar="RUN",
                   help="the policy run whose measured policies are today's (default: the "
                   "newest --job policy run)")
    w.add_argument("--inventory", metavar="FILE",
                   help="inventory whose `logs:` name each endpoint's clients (default: the "
                   "one the run read)")
    w.add_argument("--clients", nargs="+", action="extend", default=[],
                   metavar="SET|FILE|PROFILE|LOG",
                   help="the clients of every endpoint without `logs:` in the inventory: "
                   "log files or profiles, as for whatif (default: "
                   f"{' + '.join(DEFAULT_CLIENTS)})")
    w.add_argument("--format", default="auto", metavar="FMT",
                   help="format of the log files in --clients (default: detected per file)")
    w.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    w.set_defaults(func=cmd_whatif)
    ex = sub.add_parser("export", help="a run as JSON lines, one per stored row")
    _store_option(ex)
    ex.add_argument("--run", type=int, metavar="RUN", help="default: the newest")
    ex.add_argument("-o", "--output", metavar="FILE", help="default: stdout")
    ex.set_defaults(func=cmd_export)


def _store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=DEFAULT_STORE, metavar="FILE",
                   help=f"SQLite results store (default ./{DEFAULT_STORE})")


def _fail_on(text: str) -> set[str]:
    out = {t.strip() for t in text.split(",") if t.strip()}
    if not out:
        raise UsageError(f"--fail-on: give severities ({', '.join(SEVERITIES)}) or finding ids")
    if out == {"none"}:  # exit 0 whatever was found: for an inventory-wide look
        return set()
    # a misspelt id would never match, and the gate would pass whatever was found
    unknown = sorted(out - {*SEVERITIES, *FINDING_IDS, *FLEET_FINDING_IDS})
    if unknown:
        raise UsageError(f"--fail-on: unknown {', '.join(map(repr, unknown))}: severities are "
                         f"{', '.join(SEVERITIES)}; finding ids are listed in docs/fleet.md")
    return out


def cmd_run(args: argparse.Namespace) -> int:
    fail_on = _fail_on(args.fail_on)
    if args.vantage and not args.broker and len(args.vantage) > 1:
        raise UsageError("several --vantage need --broker (agents run them)")
    if args.broker and not args.vantage and args.resume is None:
        raise UsageError("--broker needs at least one --vantage")
    if args.repeat < 1 or args.concurrency < 1 or args.time_limit <= 0:
        raise UsageError("--repeat and --concurrency must be at least 1, --time-limit positive")
    if not 1 <= args.shard_size <= MAX_SHARD_SIZE:
        raise UsageError(f"--shard-size must be 1-{MAX_SHARD_SIZE}, got {args.shard_size}")
    store = Store(args.store)
    app = None
    if args.broker:
        from prober.fleet.celeryapp import make_app

        app = make_app(args.broker, time_limit=args.time_limit,
                       visibility_timeout=args.visibility_timeout)
    if args.resume is not None:
        if args.inventory:
            raise UsageError("--resume RUN takes no INVENTORY (the run's tasks are stored)")
        info = store.run_row(args.resume)
        if info["mode"] == "celery" and app is None:
            raise UsageError(f"run {args.resume} ran on agents: give --broker again")
        run = int(info["id"])
        vantages = [r["name"] for r in store.rows(
            "SELECT name FROM vantages WHERE run_id=?", run)]
    else:
        if not args.inventory:
            raise UsageError("fleet run needs an INVENTORY (or --resume RUN)")
        vantages = args.vantage or [EMBEDDED_VANTAGE]
        run = _plan(args, store, app, vantages)
    progress = Progress(run, store.queued_counts(run), None if args.quiet else sys.stderr)
    try:
        if app is None:
            specs = (spec for _, spec in store.queued(run))
            run_loop(run_embedded(specs, store, progress, args.concurrency))
        else:
            if args.resume is not None:
                check_consumers(app, vantages)
            stall = args.stall or args.time_limit + args.visibility_timeout + 60
            run_distributed(app, run, store, progress, stall_s=stall)
    except KeyboardInterrupt:
        store.finish_run(run)
        say(f"prober: fleet run {run} interrupted: resume with --resume {run}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.show(force=True)
    status = store.finish_run(run)
    if args.retention is not None:
        store.prune(max(1, args.retention))
    doc = report.build(store, run, None)
    say(report.text(doc))
    counted = [(e["endpoint"], e["vantage"], f["id"]) for e in doc["endpoints"]
               for f in e["findings"] if f["severity"] in fail_on or f["id"] in fail_on]
    say(f"run {run}: {status}; {len(counted)} finding(s) counted by --fail-on "
          f"{','.join(sorted(fail_on))}; store {args.store}", file=sys.stderr)
    return EXIT_OK if status == "complete" and not counted else EXIT_FAILED


def _plan(args: argparse.Namespace, store: Store, app: Any, vantages: list[str]) -> int:
    """The run planned into the store, once its inventory reads and its agents answer;
    the inventory is not kept past this (the run reads its tasks back from the store as
    it goes)."""
    inv = inventory.load(args.inventory)
    opts = FleetOptions(job=args.job, vantages=vantages, profiles=args.profile,
                        deadlines=deadlines_of(args), repeat=args.repeat,
                        time_limit=args.time_limit, concurrency=args.concurrency,
                        shard_size=args.shard_size)
    if app is not None:
        check_consumers(app, vantages)
    return plan(inv, store, opts, "celery" if app is not None else "embedded")


def cmd_report(args: argparse.Namespace) -> int:
    store = Store(args.store)
    doc = report.build(store, args.run, args.since)
    if args.json == "-":
        say(json.dumps(doc, indent=2))
        say(report.text(doc), file=sys.stderr)
        return EXIT_OK
    if args.json:
        with open_out(args.json) as fh:
            json.dump(doc, fh, indent=2)
    say(report.text(doc))
    return EXIT_OK


def cmd_whatif(args: argparse.Namespace) -> int:
    policy = whatif_policy(args.policy, "--policy")
    store = Store(args.store)
    info = fleet_whatif.policy_run(store, args.run)
    inv = fleet_whatif.run_inventory(info, args.inventory)
    endpoints = [r["endpoint"] for r in store.rows(
        "SELECT endpoint FROM targets WHERE run_id=?", info["id"])]
    per_endpoint = fleet_whatif.populations(inv, endpoints)
    default = fleet_whatif.Clients([], "none")
    if args.clients or any(e not in per_endpoint for e in endpoints):
        given = load_clients(args.clients or DEFAULT_CLIENTS, args.format,
                             "--clients" if args.clients else "--clients (default: "
                             f"{' '.join(DEFAULT_CLIENTS)})")
        source = ("--clients " + " ".join(args.clients) if args.clients else
                  "profiles: " + " ".join(DEFAULT_CLIENTS))
        default = fleet_whatif.Clients(given.clients, source, given.population, given.skipped)
    json_out = json_file_of(args)
    fw = fleet_whatif.assess(store, info, policy, per_endpoint, default)
    emit(fleet_whatif.document(fw), args.json, json_out, fleet_whatif.text(fw))
    return EXIT_FAILED if fw.breaking or fw.skipped else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    store = Store(args.store)
    run = int(store.run_row(args.run)["id"])
    fh = open_out(args.output) if args.output else sys.stdout
    try:
        for rec in store.export(run):
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
    finally:
        if fh is not sys.stdout:
            fh.close()
    return EXIT_OK
