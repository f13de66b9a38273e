"""The diagnostic plan: which hellos to send, in which order, and the two probes that
are not ClientHello attempts (connect-and-wait, idle timeout).

steps.py     the steps in their order, and why that order (``execute``)
variants.py  the hello variants as profiles, and the pure choices made from results
runner.py    options, state so far, and the runner that sends jobs through ``attempt``
idle.py      the idle-timeout ladder (its connections: prober.net.idle; the
             connect-and-wait control's: prober.net.control)
"""

from __future__ import annotations

from prober.diagnose.plan.idle import idle_waits, measure_idle, refine_waits
from prober.diagnose.plan.runner import UNRELATED_SNI, Job, PlanOptions, PlanState, Runner, seen
from prober.diagnose.plan.steps import BISECT_RESOLUTION, SPLIT_REPEAT, control, execute, interleave
from prober.diagnose.plan.variants import (
    KNOWN_GOOD,
    LADDER,
    LOWER_VERSION,
    PQ_RUNG,
    SANITY,
    SPLIT_PAUSE_MS,
    bisect_bounds,
    bisect_profile,
    choose_reference,
    fallback_profile,
    fallback_versions,
    intolerance_profile,
    size_gaps,
    size_profiles,
    size_runs,
    small_spec,
    split_profiles,
    sweep_profiles,
)
from prober.profiles.families import sanity_profile

# the plan's public names, importable from here (how a hello is changed is
# prober.profiles.variants')
__all__ = [
    "BISECT_RESOLUTION",
    "KNOWN_GOOD",
    "LADDER",
    "LOWER_VERSION",
    "PQ_RUNG",
    "SANITY",
    "SPLIT_PAUSE_MS",
    "SPLIT_REPEAT",
    "UNRELATED_SNI",
    "Job",
    "PlanOptions",
    "PlanState",
    "Runner",
    "bisect_bounds",
    "bisect_profile",
    "choose_reference",
    "control",
    "execute",
    "fallback_profile",
    "fallback_versions",
    "idle_waits",
    "interleave",
    "intolerance_profile",
    "measure_idle",
    "refine_waits",
    "sanity_profile",
    "seen",
    "size_gaps",
    "size_profiles",
    "size_runs",
    "small_spec",
    "split_profiles",
    "sweep_profiles",
]
