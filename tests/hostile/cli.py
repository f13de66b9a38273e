"""The prober CLI run as a subprocess, as a user runs it, with its peak memory measured.

``run_prober(tmp_path, "probe", ...)`` starts ``python -m prober ...`` from this
checkout, optionally under an address-space limit (``prlimit --as``), waits at most
``timeout`` seconds (then kills the process it started, by PID) and returns its exit
code, output and peak RSS (``wait4``'s rusage of exactly that child).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    max_rss_kb: int

    def assert_survived(self) -> None:
        """Exit 0, and no traceback (uvloop prints one for an exception escaping a
        protocol callback, and the run goes on with a wrong outcome)."""
        assert self.returncode == 0, f"exit {self.returncode}\n{self.stderr[-3000:]}"
        for marker in ("Traceback", "Fatal error"):
            assert marker not in self.stderr, self.stderr[-3000:]

    def table_row(self, profile: str, outcome: str) -> str:
        """The line of the stdout table for ``profile`` (it must show ``outcome``)."""
        m = re.search(rf"^{re.escape(profile)}\s+{re.escape(outcome)}\s.*$", self.stdout, re.M)
        assert m is not None, f"no table row '{profile} {outcome}' in:\n{self.stdout}"
        return m.group(0)


def _limit_as(limit: int) -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_prober(tmp_path: Path, *args: str, address_space: int | None = None,
               timeout: float = 120.0) -> Run:
    argv = [sys.executable, "-m", "prober", *args]
    preexec = None
    if address_space is not None:
        prlimit = shutil.which("prlimit")
        if prlimit is not None:
            argv = [prlimit, f"--as={address_space}", *argv]
        else:
            preexec = lambda: _limit_as(address_space)  # noqa: E731
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    stamp = time.monotonic_ns()
    out_path, err_path = tmp_path / f"stdout-{stamp}.txt", tmp_path / f"stderr-{stamp}.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err, preexec_fn=preexec)
    deadline = time.monotonic() + timeout
    reaped: tuple[int, Any] | None = None
    while time.monotonic() < deadline:
        pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            reaped = status, rusage
            break
        time.sleep(0.02)
    if reaped is None:  # still running at the deadline: end it (our own child, by PID)
        os.kill(p.pid, signal.SIGKILL)
        _, status, _ = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        raise AssertionError(f"{argv} still running after {timeout} s:\n"
                             f"{err_path.read_text(errors='replace')[-3000:]}")
    status, rusage = reaped
    p.returncode = os.waitstatus_to_exitcode(status)
    return Run(argv, p.returncode, out_path.read_text(errors="replace"),
               err_path.read_text(errors="replace"), int(rusage.ru_maxrss))


def probe_one(tmp_path: Path, port: int, profile: str, *extra: str,
              address_space: int | None = None) -> tuple[Run, dict[str, Any]]:
    """``prober probe 127.0.0.1:PORT -p PROFILE --json FILE``: the run (checked to have
    survived, with its table row) and the one attempt of the JSON document."""
    out = tmp_path / f"probe-{time.monotonic_ns()}.json"
    run = run_prober(tmp_path, "probe", f"127.0.0.1:{port}", "-p", profile, "--json", str(out),
                     "-t", "10", "-c", "1", *extra, address_space=address_space)
    run.assert_survived()
    doc = json.loads(out.read_text())
    assert doc["schema"] == "prober.probe/2"
    (attempt,) = doc["attempts"]
    run.table_row(attempt["profile"], attempt["outcome"])
    return run, attempt
