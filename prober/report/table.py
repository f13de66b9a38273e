"""Every text table prober prints, laid out by tabulate after each cell is made safe.

The one place a cell meets the terminal: a server-chosen string (a certificate name, an
ALPN protocol, an SNI from a capture) cannot add a row, move the cursor or reorder the
line, whatever it holds, and the columns stay aligned because tabulate measures the
escaped text that is printed (it would skip ANSI sequences when measuring).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from prober.report.escape import for_terminal, text_of


def cell(value: object) -> object:
    """A cell as it is laid out: numbers stay numbers (tabulate aligns them), text and
    document values (``{"hex": ...}``, None) become escaped text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return for_terminal(value) if isinstance(value, str) else text_of(value)
    return value


def tabulate(rows: Iterable[Sequence[object]], headers: Sequence[str] = (),
             **options: Any) -> str:
    """``tabulate.tabulate(rows, headers, **options)`` over safe cells."""
    import tabulate as _tabulate

    safe = [[cell(v) for v in row] for row in rows]
    return _tabulate.tabulate(safe, headers=[for_terminal(h) for h in headers], **options)
