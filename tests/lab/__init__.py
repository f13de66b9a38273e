"""The netns lab of issue 5: client, router and server hosts in network namespaces, a
real scenario per finding of ``prober diagnose``.  See docs/lab.md.

``Lab`` builds it (``with Lab() as lab:``), ``Scenario`` describes one service;
tests/diagnose/test_lab.py shows every scenario doing what it claims; scripts/lab.py brings it
up by hand.
"""

from .lab import Lab, Packet, ProbeRun, idle_probe_code, parse_tcpdump
from .netns import LabError, unavailable_reason
from .scenarios import LabParams, Scenario, catalog

__all__ = [
    "Lab",
    "LabError",
    "LabParams",
    "Packet",
    "ProbeRun",
    "Scenario",
    "catalog",
    "idle_probe_code",
    "parse_tcpdump",
    "unavailable_reason",
]
