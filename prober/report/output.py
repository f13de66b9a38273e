"""Where a command's JSON document and its text report go (``--json FILE|-``)."""

from __future__ import annotations

import json
import sys
from typing import IO, Any


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
        print(text, file=sys.stderr if where == "-" else sys.stdout)
