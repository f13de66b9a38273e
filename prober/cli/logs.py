"""`prober logs FILE...`: who connects with what, who fails and why, from logs."""

from __future__ import annotations

import argparse

from prober.cli.common import EXIT_OK, Commands, UsageError, json_file_of
from prober.logs.pipeline import LogInputError, check_vpc_fields, read_logs, require_usable
from prober.logs.report import document, table
from prober.report.output import emit

FORMAT_CHOICES = ("auto", "alb-conn", "alb-access", "nlb", "classic-elb", "cloudfront", "vpc-flow",
                  "go", "nginx", "haproxy")


def register(hooks: Commands) -> None:
    p = hooks.command(
        "logs",
        "Read ALB connection/access logs, NLB logs, Classic ELB access logs, "
        "CloudFront standard logs, VPC flow logs and the TLS handshake error lines of Go, "
        "nginx and HAProxy (plain or gzip, format detected per file); summarise clients "
        "by IP, protocol and suite, failures by reason, and flows that look like failed "
        "handshakes.")
    p.add_argument("files", nargs="+", metavar="FILE", help="log files (- = stdin)")
    p.add_argument("--format", default="auto", choices=FORMAT_CHOICES,
                   help="format of every FILE (default: detected per file)")
    p.add_argument("--vpc-fields", metavar="FIELDS",
                   help="flow-log field order when the files have no header line, e.g. "
                   "'version srcaddr dstaddr srcport dstport protocol packets tcp-flags "
                   "action' (${...} accepted)")
    p.add_argument("--port", type=int, default=443,
                   help="TLS port of the flows to judge (default 443)")
    p.add_argument("--max-packets", type=int, default=4, metavar="N",
                   help="a flow record of at most N packets may be a failed handshake "
                   "(default 4)")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="rows per table (default 10)")
    p.add_argument("--examples", type=int, default=10, metavar="N",
                   help="malformed and suspicious lines kept as examples (default 10)")
    p.add_argument("--json", metavar="FILE|-", help="write the JSON document (- = stdout)")
    p.add_argument("-q", "--quiet", action="store_true", help="no tables")
    p.set_defaults(func=cmd_logs)


def cmd_logs(args: argparse.Namespace) -> int:

    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not 1-65535")
    if args.max_packets < 3 or args.top < 1 or args.examples < 0:
        raise UsageError("--max-packets must be at least 3, --top at least 1, "
                         "--examples not negative")
    out = None
    try:
        fields = check_vpc_fields(args.vpc_fields) if args.vpc_fields else None
        out = json_file_of(args)
        summary = require_usable(read_logs(
            args.files, format=args.format, vpc_fields=fields, port=args.port,
            max_packets=args.max_packets, max_examples=args.examples))
    except LogInputError as e:
        if out is not None:
            out.close()
        raise UsageError(str(e)) from None
    emit(document(summary) if args.json else None, args.json, out,
         None if args.quiet else table(summary, args.top))
    return EXIT_OK
