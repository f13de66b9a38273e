"""Where a command's JSON document and its text report go (``--json FILE|-``), and the
one way text reaches the terminal.

Every line prober prints passes through :func:`say`, which escapes whatever could act
on a terminal (prober.report.escape) but the report's own newlines and tabs: a value
that reached a line without going through a table cell still cannot clear the screen,
rewrite the line with CR or reorder it with a bidi override."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from prober.report.escape import for_terminal_block


def say(*parts: object, file: IO[str] | None = None, flush: bool = False) -> None:
    """``print`` for prober's own output, made safe to show (see the module)."""
    text = " ".join(p if isinstance(p, str) else str(p) for p in parts)
    print(for_terminal_block(text), file=file or sys.stdout, flush=flush)


def emit(doc: dict[str, Any] | None, where: str | None, out: IO[str] | None,
         text: str | None) -> None:
    """The document to stdout (``where`` is ``-``) or into ``out`` (which is closed), then
    the text: on stderr when stdout carries the JSON, so the two never mix.

    ``out`` is opened by the caller before the run, so a path that cannot be written fails
    before any work; ``doc`` may be None when no ``--json`` was given, ``text`` when the
    report is not wanted (``--quiet``)."""
    if where == "-":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif out is not None:
        with out:
            json.dump(doc, out, indent=2)
            out.write("\n")
    if text is not None:
        say(text, file=sys.stderr if where == "-" else sys.stdout)
