"""`prober probe TARGET...`: replay client profiles and record every attempt."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from prober.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Commands,
    UsageError,
    json_file_of,
    open_out,
    raise_fd_limit,
    run_loop,
)
from prober.cli.options import add_target_options, add_timeouts, deadlines_of, target_of
from prober.cli.outputs import HtmlFile, WireFiles, add_html, add_wire_files
from prober.core import engine
from prober.core.attempt import RETRY_OF
from prober.core.targets import read_targets_file
from prober.probe.html import render as render_html
from prober.probe.report import RunInfo, document, table
from prober.profiles.loader import resolve_all
from prober.report.output import emit
from prober.report.progress import Progress


def register(hooks: Commands) -> None:
    pr = hooks.command("probe", "Replay client profiles against endpoints and record "
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
    add_timeouts(pr)
    pr.add_argument("-c", "--concurrency", type=int, default=32, metavar="N",
                    help="attempts in flight at once, over all targets (default 32)")
    pr.add_argument("--per-target", type=int, default=8, metavar="N",
                    help="attempts in flight at once per target address (default 8)")
    pr.add_argument("--rate", type=float, default=0.0, metavar="PER_S",
                    help="start at most this many attempts per second (default: no limit)")
    pr.add_argument("--retries", type=int, default=len(engine.RETRY_BACKOFF_S), metavar="N",
                    help="retry an attempt turned away for load (RST to the SYN, a 421 "
                    "greeting) up to N times after a back-off, as new attempts naming the one "
                    f"they retry (0-{len(engine.RETRY_BACKOFF_S)}; default "
                    f"{len(engine.RETRY_BACKOFF_S)}; 0: never)")
    add_target_options(pr)
    pr.add_argument("--all-addresses", action="store_true",
                    help="probe every address the name resolves to")
    pr.add_argument("--fresh-keys", action="store_true",
                    help="a new key pair (and a newly encoded hello) for every attempt; by "
                         "default each group's key pair is made once per run")
    pr.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    pr.add_argument("--jsonl", metavar="FILE",
                    help="stream one JSON line per attempt as it finishes")
    add_html(pr)
    add_wire_files(pr)
    pr.add_argument("-q", "--quiet", action="store_true", help="no table, no progress")
    pr.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:

    raw = list(args.targets)
    if args.targets_file:
        raw += read_targets_file(args.targets_file)
    if not raw:
        raise UsageError("no target given (TARGET... or --targets-file)")
    targets = [target_of(t, args) for t in raw]
    profiles = resolve_all(args.profile)
    for name, value, low in (("--repeat", args.repeat, 1), ("--concurrency", args.concurrency, 1),
                             ("--per-target", args.per_target, 1)):
        if value < low:
            raise UsageError(f"{name} must be at least {low}, got {value}")
    if not 0 <= args.retries <= len(engine.RETRY_BACKOFF_S):
        raise UsageError(f"--retries must be 0-{len(engine.RETRY_BACKOFF_S)}, "
                         f"got {args.retries}")
    if args.rate < 0:
        raise UsageError(f"--rate must not be negative, got {args.rate:g}")
    deadlines = deadlines_of(args)
    opts = engine.EngineOptions(repeat=args.repeat, concurrency=args.concurrency,
                                per_target=args.per_target, rate=args.rate,
                                deadlines=deadlines, all_addresses=args.all_addresses,
                                fresh_keys=args.fresh_keys, retries=args.retries)
    jsonl = open_out(args.jsonl) if args.jsonl else None
    json_out = json_file_of(args)
    html = HtmlFile(args)
    wire = WireFiles(args)
    raise_fd_limit(args.concurrency)

    results: list[Any] = []
    info = RunInfo(started=time.time(), profiles=[p.name for p in profiles],
                   options={"repeat": args.repeat, "connect_timeout_s": deadlines.connect,
                            "read_timeout_s": deadlines.read, "concurrency": args.concurrency,
                            "per_target": args.per_target, "rate": args.rate,
                            "retries": args.retries, "all_addresses": args.all_addresses})
    progress: Progress | None = None

    def on_result(r: Any) -> None:
        results.append(r)
        if jsonl is not None:
            jsonl.write(json.dumps(r.to_json(), separators=(",", ":")) + "\n")
            jsonl.flush()
        if progress is not None:
            if r.data.get(RETRY_OF) is not None:
                progress.total += 1  # a retry is an attempt beyond the plan: never 56/30
            progress.update(r.outcome)

    async def go() -> None:
        nonlocal progress
        info.endpoints = await engine.resolve_targets(targets, args.all_addresses)
        wire.start_for(info.endpoints)
        total = len(info.endpoints) * len(profiles) * args.repeat
        progress = Progress(total, enabled=None if not args.quiet else False)
        await engine.run(info.endpoints, profiles, opts, on_result)

    rc = EXIT_OK
    try:
        run_loop(go())
    except KeyboardInterrupt:
        info.complete = False
        rc = EXIT_INTERRUPTED
    finally:
        if progress is not None:
            progress.close()
        info.finished = time.time()
        wire.stop()
        if jsonl is not None:
            jsonl.close()
    doc = document(results, info) if args.json or args.html else None
    wire.write(results, args.quiet)
    html.write(lambda: render_html(doc or {}))
    emit(doc if args.json else None, args.json, json_out,
         None if args.quiet else table(results, info))
    return rc
