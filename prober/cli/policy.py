"""`prober policy TARGET`: the endpoint's effective policy, exact and named."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from prober.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NO_TLS,
    EXIT_OK,
    UsageError,
    json_file_of,
    run_loop,
)
from prober.cli.options import add_target_options, add_timeouts, deadlines_of, target_of
from prober.cli.outputs import HtmlFile, WireFiles, add_html, add_wire_files
from prober.core.engine import resolve_targets
from prober.core.service import no_tls_of
from prober.policy.deep import deep_scan
from prober.policy.enumerate.driver import enumerate_policy
from prober.policy.enumerate.planner import Planner
from prober.policy.html import render as render_html
from prober.policy.naming.match import match_catalog, mozilla_compliance
from prober.policy.report import document, no_tls_table, table
from prober.policy.scan import assemble
from prober.report.output import emit, say

if TYPE_CHECKING:
    from prober.cli.common import Commands
    from prober.policy.scan import PolicyScan



def register(hooks: Commands) -> None:
    p = hooks.command(
        "policy",
        "Enumerate what one endpoint accepts (versions, suites in order, groups, "
        "features, certificates, intolerance) with as few connections as possible, and "
        "name the catalog policy it equals.")
    p.add_argument("target", metavar="TARGET", help="host, host:port, [v6addr]:port")
    p.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    p.add_argument("--deep", action="store_true",
                   help="add sslyze's checks (certificate trust, Heartbleed, ROBOT, CCS "
                   "injection, renegotiation, compression, early data, resumption)")
    add_target_options(p)
    add_timeouts(p)
    p.add_argument("-c", "--concurrency", type=int, default=8, metavar="N",
                   help="connections open at once to the endpoint (default 8)")
    p.add_argument("--budget", type=float, default=120.0, metavar="S",
                   help="stop the whole scan after this many seconds (default 120)")
    add_html(p)
    add_wire_files(p)
    p.set_defaults(func=cmd_policy)


def cmd_policy(args: argparse.Namespace) -> int:
    target = target_of(args.target, args)
    deadlines = deadlines_of(args)
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.budget <= 0:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    json_out = json_file_of(args)
    html = HtmlFile(args)
    wire = WireFiles(args)

    results: list[Any] = []
    planner = Planner(target_sni=target.sni)
    holder: dict[str, Any] = {}
    started = time.time()

    async def go() -> None:
        eps = await resolve_targets([target], False)
        holder["ep"] = eps[0]
        if eps[0].address is None:
            return
        wire.start([(eps[0].address, target.port, eps[0].family)])
        holder["scan"] = await enumerate_policy(
            eps[0], concurrency=args.concurrency, budget_s=args.budget,
            deadlines=deadlines,
            on_result=results.append, planner=planner)

    rc = EXIT_OK
    try:
        run_loop(go())
    except KeyboardInterrupt:
        rc = EXIT_INTERRUPTED
    finally:
        wire.stop()
    ep = holder.get("ep")
    if ep is None:
        say(f"prober: {target.label}: interrupted before the name resolved", file=sys.stderr)
        return rc
    if ep.address is None:
        raise UsageError(f"target {args.target!r}: {ep.error or 'did not resolve'}")
    scan: PolicyScan | None = holder.get("scan")
    if scan is None:
        planner.stop("interrupted")
        scan = assemble(planner, ep, results, started=started, finished=time.time(),
                        complete=False)
    verdict = no_tls_of(scan.attempts)
    if verdict is not None:
        # no TLS server answered: no policy to show, and a status a script can tell apart
        # from "this endpoint accepts nothing"
        emit(document(scan), args.json, json_out, no_tls_table(scan, verdict))
        return EXIT_NO_TLS if rc == EXIT_OK else rc
    _name_it(scan)
    if args.deep and rc == EXIT_OK:
        _deep(scan, deadlines.read)
    doc = document(scan)
    wire.write(results)
    html.write(lambda: render_html(doc))
    emit(doc, args.json, json_out, table(scan))
    return rc


def _name_it(scan: PolicyScan) -> None:
    """Catalog match and Mozilla compliance; never on an unreliable scan."""
    if not scan.reliable or not scan.policy.versions:
        return

    scan.catalog = match_catalog(scan.policy)
    try:
        scan.compliance = [mozilla_compliance(scan.policy, "modern"),
                           mozilla_compliance(scan.policy, "intermediate"),
                           mozilla_compliance(scan.policy, "old")]
    except Exception as e:  # sslyze's profile data is optional for the rest of the report
        scan.warnings.append(f"Mozilla compliance not checked: {e}")


def _deep(scan: PolicyScan, timeout: float) -> None:

    try:
        scan.deep = deep_scan(scan.host, scan.port, sni=scan.sni, address=scan.address,
                              timeout=timeout, starttls=scan.starttls)
    except Exception as e:  # sslyze failing must not cost the enumeration already done
        scan.deep = {"error": f"sslyze: {e}"}
        scan.warnings.append(f"--deep failed: {e}")
