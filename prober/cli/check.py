"""`prober check`: a CI gate. Exit 0 when every expectation holds, 1 when any fails,
2 on usage or input errors."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from prober.check import evaluate as ev
from prober.check.expectations import ExpectationError, load
from prober.check.junit import junit_xml
from prober.cli.common import Commands, UsageError, run_loop
from prober.core import engine
from prober.core.targets import TargetError, parse_target, with_overrides
from prober.diagnose import plan, report
from prober.net.attempt import Deadlines
from prober.policy.enumerate.driver import enumerate_policy
from prober.profiles.compile import ProfileError
from prober.profiles.loader import resolve
from prober.report.escape import for_terminal
from prober.report.output import say
from prober.report.table import tabulate

EXIT_FAILED = 1


def register(hooks: Commands) -> None:
    p = hooks.command(
        "check",
        "Run what an expectations file needs against each target and check it. "
        "Exit 0 when all hold, 1 when any fails, 2 on usage or input errors.")
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("-e", "--expect", required=True, metavar="FILE",
                   help="expectations file (YAML, see README: prober check)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test per expectation)")
    p.add_argument("--json", metavar="FILE", help="write verdicts and attempts as JSON")
    p.add_argument("--sni", metavar="NAME", help="send this SNI instead of the target's name")
    p.add_argument("--address", metavar="IP", help="connect to this address")
    p.add_argument("-c", "--concurrency", type=int, default=16, metavar="N")
    p.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:

    try:
        exp = load(args.expect)
        targets = [with_overrides(parse_target(t), args.address, args.sni) for t in args.targets]
        needs = ev.plan(exp)
        sets: dict[str, list[str]] = {}
        profiles = []
        seen: set[str] = set()
        for arg in (a for args_ in needs.values() for a in args_):
            resolved = resolve(arg)
            sets[arg] = [p.name for p in resolved]
            for p in resolved:
                if p.name not in seen:
                    seen.add(p.name)
                    profiles.append(p)
    except (ExpectationError, ProfileError, TargetError) as e:
        raise UsageError(str(e)) from None
    opts = engine.EngineOptions(repeat=exp.repeat, concurrency=args.concurrency,
                                deadlines=Deadlines(exp.timeout, exp.timeout))
    results: list[Any] = []
    t0 = time.monotonic()

    async def go() -> list[Any]:
        eps = await engine.resolve_targets(targets, False)
        if profiles:
            await engine.run(eps, profiles, opts, results.append)
        return eps

    holder: dict[str, Any] = {}
    scans: dict[Any, Any] = {}
    findings: dict[Any, list[dict[str, Any]]] = {}

    async def main() -> None:
        holder["eps"] = eps = await go()
        for ep in eps:
            if ep.address is None:
                continue
            if exp.policy_equals or exp.policy_no_weaker_than:
                scans[ep] = await _policy_scan(ep, opts.deadlines)
            if exp.no_findings:
                findings[ep] = await _diagnose(ep, opts.deadlines)

    run_loop(main())
    verdicts = []
    for ep in holder["eps"]:
        mine = [r for r in results if r.target == ep.target.label and r.address == ep.address]
        verdicts += ev.evaluate(exp, ep.target.label, mine, sets)
        if ep in scans:
            verdicts += ev.policy_verdicts(exp, ep.target.label, scans[ep])
        if ep in findings:
            verdicts += ev.finding_verdicts(exp, ep.target.label, findings[ep])
    elapsed = time.monotonic() - t0
    _print(verdicts, args.quiet)
    if args.junit:

        _write(args.junit, junit_xml(verdicts, elapsed))
    if args.json:
        doc = {"schema": "prober.check/1", "expectations": exp.path,
               "passed": all(v.passed for v in verdicts),
               "verdicts": [v.to_json() for v in verdicts],
               "attempts": [r.to_json() for r in sorted(results, key=lambda r: r.id)]}
        _write(args.json, json.dumps(doc, indent=2) + "\n")
    return 0 if all(v.passed for v in verdicts) else EXIT_FAILED


async def _policy_scan(ep: Any, deadlines: Any) -> Any:

    return await enumerate_policy(ep, deadlines=deadlines)


async def _diagnose(ep: Any, deadlines: Any) -> list[dict[str, Any]]:

    state = plan.PlanState()
    opts = plan.PlanOptions(deadlines=deadlines)
    await plan.execute(ep, opts, state, lambda _step: None)
    doc = report.document(state, ep, report.RunMeta(started=time.time(),
                                                    finished=time.time()))
    found: list[dict[str, Any]] = doc["findings"]
    return found


def _print(verdicts: list[Any], quiet: bool) -> None:

    rows = [["PASS" if v.passed else "FAIL", v.target, v.name, v.message]
            for v in verdicts if not (quiet and v.passed)]
    if rows:
        say(tabulate(rows, headers=["", "target", "expectation", "result"], tablefmt="plain",
                     disable_numparse=True))
    for v in verdicts:
        if not v.passed and v.evidence:
            # one line each, whatever the evidence quotes
            say(f"\n{for_terminal(v.target)} {for_terminal(v.name)}:")
            for e in v.evidence:
                say(f"  {for_terminal(e)}")
    failed = sum(not v.passed for v in verdicts)
    say(f"\n{len(verdicts) - failed} passed, {failed} failed", file=sys.stderr)


def _write(path: str, text: str) -> None:

    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as e:
        raise UsageError(f"cannot write {path!r}: {e.strerror}") from None
