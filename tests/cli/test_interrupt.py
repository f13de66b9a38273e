"""Ctrl-C stops a command's run even when the first cancellation is swallowed (Python
3.11's asyncio.timeout and wait_for can lose one that meets an expiring timeout): the run
is cancelled again until it stops, and the command sees KeyboardInterrupt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# in a child process: a stray SIGINT must never reach the test session itself
_SCRIPT = """
import asyncio, os, signal
from prober.cli.common import run_loop

async def swallows_once():
    asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGINT)
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        await asyncio.sleep(30)  # as a lost cancellation would: the run goes on
    return "ran to its end"

try:
    print(run_loop(swallows_once()))
except KeyboardInterrupt:
    print("interrupted")
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


def test_ctrl_c_stops_a_run_that_swallows_the_first_cancellation() -> None:
    r = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True,
                       text=True, timeout=20, check=False)
    assert r.returncode == 0, r.stderr
    # interrupted well before either 30 s sleep ends, and Ctrl-C is Python's again
    assert r.stdout.split() == ["interrupted", "True"], r.stdout + r.stderr
