"""Command line: the parser's skeleton and the dispatch.

The one place where loading is deferred: the top-level parser knows every command's name
and one-line help, and only the module of the command being run is imported (it then
adds its own options and imports its domain normally). ``prober --help`` loads nothing
else, and ``prober probe`` never loads the policy, diagnose or log code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from prober import __version__
from prober.cli.common import EXIT_OK, EXIT_USAGE, Commands, Parser
from prober.core.errors import InputError

# (command, module that adds its options and runs it, one-line help), in --help order
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("probe", "prober.cli.probe", "replay client profiles against endpoints"),
    ("profiles", "prober.cli.profiles", "list and show client profiles"),
    ("outcomes", "prober.cli.profiles", "the outcome taxonomy"),
    ("policy", "prober.cli.policy", "enumerate an endpoint's effective TLS policy and name it"),
    ("catalog", "prober.cli.catalog", "list and show the named policies endpoints are matched to"),
    ("logs", "prober.cli.logs", "summarise clients and handshake failures from logs"),
    ("whatif", "prober.cli.whatif", "simulate a candidate TLS policy against client profiles"),
    ("check", "prober.cli.check", "check expectations against endpoints (CI gate)"),
    ("diagnose", "prober.cli.diagnose", "name what is on the path to an endpoint"),
    ("diff", "prober.cli.diagnose", "compare two runs (inside vs outside, before vs after)"),
    ("report", "prober.cli.report", "draw a saved run as a self-contained HTML report"),
    ("fleet", "prober.cli.fleet", "run a job over an inventory from several vantage points"),
    ("agent", "prober.cli.agent", "serve a vantage point: a Celery worker for fleet runs"),
    ("demo", "prober.cli.demo", "run the loopback demo endpoint and probe it (or just serve it)"),
)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    p = Parser(prog="prober", description="Active TLS handshake prober and compatibility "
               "tester.")
    p.add_argument("--version", action="version", version=f"prober {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parsers = {name: sub.add_parser(name, help=help_) for name, _, help_ in COMMANDS}
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = next((m for name, m, _ in COMMANDS if name == chosen), None)
    if module is not None:
        importlib.import_module(module).register(Commands(parsers))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        rc: int = args.func(args)
        return rc
    except InputError as e:  # every bad input, however deep it was found: one line
        # here, not at the top: `prober --help` loads only this module and cli/common
        from prober.report.escape import for_terminal
        from prober.report.output import say

        # one line, whatever the bad input held (a name from a file, a server's text)
        say(f"prober: {for_terminal(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
