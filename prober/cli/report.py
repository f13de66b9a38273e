"""`prober report RUN.json --html FILE`: draw a saved run without probing again.

The run's ``schema`` says whose report it is; each capability renders its own document
exactly as its ``--html`` does after a live run. A diff document carries the rows of
both runs but not their attempts: give the two runs as well (``--a``/``--b``) to have
the exchanges drawn side by side.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prober.cli.common import EXIT_OK, Commands, UsageError, read_json
from prober.cli.outputs import HtmlFile


def register(hooks: Commands) -> None:
    p = hooks.command("report", "Draw a saved run (probe, diagnose, policy, diff or check "
                      "JSON) as a self-contained HTML report, without probing again.")
    p.add_argument("run", metavar="RUN.json")
    p.add_argument("--html", metavar="FILE", required=True, help="the HTML file to write")
    p.add_argument("--a", metavar="A.json", help="for a diff: run A (to draw its attempts)")
    p.add_argument("--b", metavar="B.json", help="for a diff: run B (to draw its attempts)")
    p.set_defaults(func=cmd_report)


def _load(path: str) -> dict[str, Any]:
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str):
        raise UsageError(f"{path}: not a prober run (no schema)")
    return doc


def _renderer(doc: dict[str, Any], args: argparse.Namespace) -> Callable[[], str]:
    schema = doc["schema"]
    if schema.startswith("prober.probe/"):
        from prober.probe.html import render as probe

        return lambda: probe(doc)
    if schema.startswith("prober.diagnose/"):
        from prober.diagnose.html import render as diagnose

        return lambda: diagnose(doc)
    if schema.startswith("prober.policy/"):
        from prober.policy.html import render as policy

        return lambda: policy(doc)
    if schema.startswith("prober.check/"):
        from prober.check.html import render as check

        return lambda: check(doc)
    if schema.startswith("prober.diff/"):
        from prober.diagnose.diff import Side
        from prober.diagnose.diff_html import render as diff

        a = _load(args.a) if args.a else {"attempts": []}
        b = _load(args.b) if args.b else {"attempts": []}
        return lambda: diff(doc, Side(doc["a"]["label"], a), Side(doc["b"]["label"], b))
    raise UsageError(f"{args.run}: schema {schema!r} has no HTML report (probe, diagnose, "
                     "policy, diff and check runs have)")


def cmd_report(args: argparse.Namespace) -> int:
    doc = _load(args.run)
    render = _renderer(doc, args)
    html = HtmlFile(args)
    try:
        html.write(render)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        Path(args.html).unlink(missing_ok=True)
        raise UsageError(f"{args.run}: unexpected content ({type(e).__name__}: {e})") from None
    return EXIT_OK
