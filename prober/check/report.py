"""The gate's verdicts as text: one row per expectation, then the evidence of each
failure, then the count."""

from __future__ import annotations

from prober.check.evaluate import Verdict
from prober.report.escape import for_terminal
from prober.report.table import tabulate


def verdicts_text(verdicts: list[Verdict], quiet: bool) -> str:
    """The table (failures only when ``quiet``) and the evidence of every failure."""
    rows = [["PASS" if v.passed else "FAIL", v.target, v.name, v.message]
            for v in verdicts if not (quiet and v.passed)]
    parts = []
    if rows:
        parts.append(tabulate(rows, headers=["", "target", "expectation", "result"],
                              tablefmt="plain", disable_numparse=True))
    for v in verdicts:
        if not v.passed and v.evidence:
            # one line each, whatever the evidence quotes
            parts.append(f"\n{for_terminal(v.target)} {for_terminal(v.name)}:")
            parts += [f"  {for_terminal(e)}" for e in v.evidence]
    return "\n".join(parts)


def summary_line(verdicts: list[Verdict]) -> str:
    failed = sum(not v.passed for v in verdicts)
    return f"{len(verdicts) - failed} passed, {failed} failed"
