"""A whole diagnosis of one endpoint as one call, for callers that want the document
without the command's progress and options (``prober check``'s ``no_findings``)."""

from __future__ import annotations

import time
from typing import Any

from prober.core.attempt import AttemptResult
from prober.core.engine import Endpoint
from prober.diagnose import report
from prober.diagnose.plan import PlanOptions, PlanState, execute
from prober.net.attempt import Deadlines


async def diagnose(ep: Endpoint, deadlines: Deadlines, *, per_target: int = 8,
                   results: list[AttemptResult] | None = None) -> dict[str, Any]:
    """The diagnose document (``findings.DIAGNOSE_SCHEMA``) of ``ep`` with the default plan;
    ``results`` (when given) gets every attempt, even of an interrupted run."""
    started = time.time()
    state = PlanState()
    try:
        await execute(ep, PlanOptions(deadlines=deadlines, per_target=per_target), state)
    finally:
        if results is not None:
            results.extend(state.results)
    return report.document(state, ep, report.RunMeta(started=started, finished=time.time()))
