"""The diagnostic plan: which hellos to send, in which order, and the two probes that
are not ClientHello attempts (connect-and-wait, idle timeout).

steps.py     the steps in their order, and why that order (``execute``)
variants.py  the hello variants as profiles, and the pure choices made from results
runner.py    options, state so far, and the runner that sends jobs through ``attempt``
control.py   connect-and-wait
idle.py      the idle-timeout measurement
"""

from __future__ import annotations

from prober.diagnose.plan.control import connect_and_wait
from prober.diagnose.plan.idle import (
    ACK_WAIT_S,
    AFTER_ACK_S,
    IDLE_POLL_S,
    TCP_CLOSE,
    idle_probe,
    idle_waits,
    measure_idle,
    refine_waits,
)
from prober.diagnose.plan.runner import UNRELATED_SNI, Job, PlanOptions, PlanState, Runner, seen
from prober.diagnose.plan.steps import BISECT_RESOLUTION, SPLIT_REPEAT, execute, interleave
from prober.diagnose.plan.variants import (
    KNOWN_GOOD,
    LADDER,
    LOWER_VERSION,
    PQ_RUNG,
    SANITY,
    SPLIT_PAUSE_MS,
    X25519,
    X25519MLKEM768,
    bisect_bounds,
    bisect_profile,
    choose_reference,
    fallback_profile,
    fallback_versions,
    padded,
    pq_spec,
    sanity_profile,
    size_profiles,
    small_spec,
    split_point,
    split_profiles,
    sweep_profiles,
    with_ext,
)

# every public name of the former single module stays importable from here
__all__ = [
    "ACK_WAIT_S", "AFTER_ACK_S", "BISECT_RESOLUTION", "IDLE_POLL_S", "KNOWN_GOOD", "LADDER",
    "LOWER_VERSION", "PQ_RUNG", "SANITY", "SPLIT_PAUSE_MS", "SPLIT_REPEAT", "TCP_CLOSE",
    "UNRELATED_SNI", "X25519", "X25519MLKEM768", "Job", "PlanOptions", "PlanState", "Runner",
    "bisect_bounds", "bisect_profile", "choose_reference", "connect_and_wait", "execute",
    "fallback_profile", "fallback_versions", "idle_probe", "idle_waits", "interleave",
    "measure_idle", "padded", "pq_spec", "refine_waits", "sanity_profile", "seen",
    "size_profiles", "small_spec", "split_point", "split_profiles", "sweep_profiles",
    "with_ext",
]
