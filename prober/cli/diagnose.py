"""``prober diagnose`` and ``prober diff``: argument parsing and wiring only.

Kept light at import (argparse only): every command module is imported at each start.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from prober.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Commands,
    UsageError,
    json_file_of,
    read_json,
    run_loop,
)
from prober.cli.options import add_target_options, add_timeouts, deadlines_of, target_of
from prober.cli.outputs import HtmlFile, WireFiles, add_html, add_wire_files
from prober.core import engine
from prober.diagnose import capture as cap_mod
from prober.diagnose import diff, diff_html, plan, report
from prober.diagnose import html as diagnose_html
from prober.diagnose.diff import check
from prober.net.packets import open_capture
from prober.report.output import emit, say

MAX_REPEAT = 1000
MAX_IDLE_S = 3600.0


def register(hooks: Commands) -> None:
    d = hooks.command(
        "diagnose",
        "Run a diagnostic plan against one endpoint (sanity, version sweep, "
        "repeats, SNI, size ladder, fragmentation, fallback, connect-and-wait, optional idle "
        "timeout) and name the causes: findings first, evidence below, the matrix last.")
    d.add_argument("target", metavar="TARGET", help="host, host:port or [v6addr]:port")
    add_target_options(d)
    d.add_argument("-n", "--repeat", type=int, default=10, metavar="N",
                   help="repeats of the known-good hello, from distinct source ports "
                   "(default 10)")
    d.add_argument("--sweep-repeat", type=int, default=3, metavar="N",
                   help="attempts per version in the sweep (default 3)")
    add_timeouts(d)
    d.add_argument("--per-target", type=int, default=8, metavar="N",
                   help="attempts in flight at once (default 8)")
    d.add_argument("--rate", type=float, default=0.0, metavar="PER_S",
                   help="start at most this many attempts per second (default: no limit)")
    d.add_argument("--unrelated-sni", default="www.example.com", metavar="NAME",
                   help="the unrelated name of the SNI check (default www.example.com)")
    d.add_argument("--idle-timeout", type=float, metavar="MAX",
                   help="also measure how long an established TLS connection may idle, up "
                   "to MAX seconds (slow: about twice MAX)")
    d.add_argument("--capture", action="store_true",
                   help="record TTL, IP ID and TCP window of every packet (root or "
                   "CAP_NET_RAW)")
    d.add_argument("--expect-issuer", metavar="TEXT",
                   help="the certificate issuer must contain TEXT (else tls-interception)")
    d.add_argument("--pin-sha256", action="append", default=[], metavar="HEX",
                   help="SHA-256 of the expected leaf certificate (DER); repeatable")
    d.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    add_html(d)
    add_wire_files(d)
    d.add_argument("-q", "--quiet", action="store_true", help="no text report, no progress")
    d.set_defaults(func=cmd_diagnose)

    f = hooks.command(
        "diff",
        "Two runs (diagnose or probe JSON) side by side: the rows that differ "
        "and the findings that follow.")
    f.add_argument("a", metavar="A.json")
    f.add_argument("b", metavar="B.json")
    f.add_argument("--label-a", metavar="NAME", help="name of run A (default: file name)")
    f.add_argument("--label-b", metavar="NAME", help="name of run B (default: file name)")
    f.add_argument("--json", metavar="FILE|-", help="write the diff as JSON (- = stdout)")
    add_html(f)
    f.set_defaults(func=cmd_diff)


def _usage(msg: str) -> Exception:
    return UsageError(msg)


def _check_args(args: argparse.Namespace) -> None:
    for name, value, low, high in (("--repeat", args.repeat, 1, MAX_REPEAT),
                                   ("--sweep-repeat", args.sweep_repeat, 1, 20),
                                   ("--per-target", args.per_target, 1, 256)):
        if not low <= value <= high:
            raise _usage(f"{name} must be {low}-{high}, got {value}")
    if args.rate < 0:
        raise _usage("--rate must not be negative")
    if args.idle_timeout is not None and not 1 <= args.idle_timeout <= MAX_IDLE_S:
        raise _usage(f"--idle-timeout must be 1-{MAX_IDLE_S:.0f} seconds, got "
                     f"{args.idle_timeout:g}")
    for pin in args.pin_sha256:
        h = pin.replace(":", "").lower()
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise _usage(f"--pin-sha256 {pin!r}: expected 64 hex digits (the certificate's "
                         "SHA-256, as in the JSON's certificate.sha256)")


def cmd_diagnose(args: argparse.Namespace) -> int:

    _check_args(args)
    target = target_of(args.target, args)
    deadlines = deadlines_of(args)
    opts = plan.PlanOptions(repeat=args.repeat, sweep_repeat=args.sweep_repeat,
                            deadlines=deadlines, per_target=args.per_target, rate=args.rate,
                            unrelated_sni=args.unrelated_sni, idle_max=args.idle_timeout)
    json_out = json_file_of(args)
    html = HtmlFile(args)
    wire = WireFiles(args)
    meta = report.RunMeta(started=time.time(), options={
        "repeat": args.repeat, "sweep_repeat": args.sweep_repeat,
        "connect_timeout_s": deadlines.connect, "read_timeout_s": deadlines.read,
        "per_target": args.per_target, "rate": args.rate, "unrelated_sni": args.unrelated_sni,
        "idle_timeout_max_s": args.idle_timeout, "capture": args.capture,
        "expect_issuer": args.expect_issuer, "pin_sha256": args.pin_sha256})
    meta.capture = {"requested": args.capture, "available": False, "reason": None, "packets": 0}
    state = plan.PlanState()
    holder: dict[str, Any] = {}
    show = not args.quiet and sys.stderr.isatty()

    def step_started(step: str) -> None:
        if show:
            say(f"diagnose: {step} …", file=sys.stderr, flush=True)

    async def go() -> None:
        (ep,) = await engine.resolve_targets([target], False)
        holder["ep"] = ep
        if ep.address is None:
            return
        # --pcap needs whole packets: its capture serves --capture as well
        wire.start([(ep.address, target.port, ep.family)])
        pcap_cap = wire.capture_for(ep.address, target.port)
        if pcap_cap is not None and args.capture:
            holder["shared_cap"] = pcap_cap
            meta.capture.update(available=True, reason=None)
        elif args.capture:
            cap, why = open_capture(ep.address, target.port, ep.family)
            holder["cap"] = cap
            meta.capture.update(available=cap is not None, reason=None if cap else why)
        try:
            await plan.execute(ep, opts, state, step_started)
        finally:
            if holder.get("cap") is not None:
                holder["cap"].stop()
            wire.stop()

    rc = EXIT_OK
    try:
        run_loop(go())
    except KeyboardInterrupt:
        meta.complete = False
        rc = EXIT_INTERRUPTED
    meta.finished = time.time()
    ep = holder.get("ep")
    if ep is None:
        return rc
    if ep.address is None:
        raise _usage(f"target {target.label!r}: {ep.error or 'does not resolve'}")
    cap = holder.get("cap") or holder.get("shared_cap")
    if cap is not None:
        meta.capture["packets"] = cap_mod.attach(state.results, cap)
        meta.capture["dropped"] = cap.dropped
    doc = report.document(state, ep, meta)
    wire.write(state.results, args.quiet)
    html.write(lambda: diagnose_html.render(doc))
    emit(doc, args.json, json_out, None if args.quiet else report.text(doc))
    return rc


def _load(path: str) -> dict[str, Any]:
    doc = read_json(path)
    return check(doc, path)


def cmd_diff(args: argparse.Namespace) -> int:


    a, b = _load(args.a), _load(args.b)
    la = args.label_a or Path(args.a).stem
    lb = args.label_b or Path(args.b).stem
    if la == lb:
        la, lb = f"A:{la}", f"B:{lb}"
    json_out = json_file_of(args)
    html = HtmlFile(args)
    try:
        doc = diff.document(diff.Side(la, a), diff.Side(lb, b))
    except (KeyError, ValueError, TypeError) as e:
        raise _usage(f"{args.a} / {args.b}: unexpected content ({type(e).__name__}: {e})"
                     ) from None
    html.write(lambda: diff_html.render(doc, diff.Side(la, a), diff.Side(lb, b)))
    emit(doc, args.json, json_out, diff.text(doc))
    return EXIT_OK
