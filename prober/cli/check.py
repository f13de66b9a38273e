"""`prober check`: a CI gate. Exit 0 when every expectation holds, 1 when any fails,
2 on usage or input errors."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from prober.check.evaluate import Verdict
from prober.check.expectations import ExpectationError, example_text, load
from prober.check.html import render as render_html
from prober.check.junit import junit_xml
from prober.check.report import summary_line, verdicts_text
from prober.check.run import CheckRun
from prober.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Commands, UsageError, run_loop
from prober.cli.options import add_target_options, add_timeouts, deadlines_of, target_of
from prober.cli.outputs import HtmlFile, WireFiles, add_html, add_wire_files
from prober.report.output import say


def register(hooks: Commands) -> None:
    p = hooks.command(
        "check",
        "Run what an expectations file needs against each target and check it. "
        "Exit 0 when all hold, 1 when any fails, 2 on usage or input errors.")
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("-e", "--expect", required=True, metavar="FILE",
                   help="expectations file (YAML, see README: prober check), or example:NAME "
                   "for an example shipped with prober (example:demo checks `prober demo "
                   "serve`)")
    p.add_argument("--example", action=_PrintExample, metavar="NAME",
                   help="print the shipped example NAME (demo) to stdout, to start an "
                   "expectations file from, and exit")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test per expectation)")
    p.add_argument("--json", metavar="FILE", help="write verdicts and attempts as JSON")
    add_target_options(p)
    add_timeouts(p, default=None, default_text="the expectations' timeout, else 5 s")
    p.add_argument("-c", "--concurrency", type=int, default=16, metavar="N")
    add_html(p)
    add_wire_files(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    p.set_defaults(func=cmd_check)


class _PrintExample(argparse.Action):
    # acts while parsing, as --version does, so it needs no TARGET or --expect
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        try:
            say(example_text(str(values)).rstrip("\n"))
        except ExpectationError as e:
            raise UsageError(str(e)) from None
        parser.exit()


def cmd_check(args: argparse.Namespace) -> int:
    exp = load(args.expect)
    deadlines = deadlines_of(args, fallback=exp.timeout)
    targets = [target_of(t, args) for t in args.targets]
    run = CheckRun.prepare(exp, targets, deadlines, args.concurrency)
    html = HtmlFile(args)
    wire = WireFiles(args)
    run.on_endpoints = wire.start_for
    t0 = time.monotonic()
    interrupted = False
    try:
        run_loop(run.execute())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        wire.stop()
    # what was sent is on the wire files even when the gate gives no verdict
    wire.write(run.every_attempt(), args.quiet)
    if interrupted:
        say("prober: check interrupted: no verdict", file=sys.stderr)
        return EXIT_INTERRUPTED
    elapsed = time.monotonic() - t0
    _print(run.verdicts, args.quiet)
    if args.junit:
        _write(args.junit, junit_xml(run.verdicts, elapsed))
    if args.json:
        _write(args.json, json.dumps(run.document(), indent=2) + "\n")
    html.write(lambda: render_html(run.document()))
    return EXIT_OK if run.passed else EXIT_FAILED


def _print(verdicts: list[Verdict], quiet: bool) -> None:
    table = verdicts_text(verdicts, quiet)
    if table:
        say(table)
    say(f"\n{summary_line(verdicts)}", file=sys.stderr)


def _write(path: str, text: str) -> None:

    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as e:
        raise UsageError(f"cannot write {path!r}: {e.strerror}") from None
