"""Keeping real clients on loopback: a private network namespace, a hosts file, and
child processes that are stopped by their own process group.

Every client is pointed at ``demo.test`` (the name the test PKI's certificates carry)
on 127.0.0.1: most through their own flags (curl --resolve, s_client -servername, ...),
the rest (wget, Firefox) through a hosts file bind-mounted over /etc/hosts in a mount
namespace, with a resolv.conf whose only nameserver is 127.0.0.1, so no query can
leave the machine. The scripts also re-run themselves in a network namespace of their
own (``unshare --net``), where only loopback exists.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NAME = "demo.test"
ADDRESS = "127.0.0.1"
_NETNS_ENV = "PROBER_PRIVATE_NETNS"


def is_root() -> bool:
    return os.geteuid() == 0


def in_private_netns() -> bool:
    return os.environ.get(_NETNS_ENV) == "1"


def rerun_in_private_netns(argv: list[str]) -> int | None:
    """Run this script again inside a new network namespace (only loopback, up).

    Returns the child's exit status, or None when that is impossible here (not root,
    no unshare/ip, or already inside one): the caller then goes on where it is.
    """
    if in_private_netns() or not is_root() or not shutil.which("unshare") or not shutil.which(
            "ip"):
        return None
    cmd = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c",
           'ip link set lo up && exec "$@"', "sh", sys.executable, *argv]
    return subprocess.run(cmd, env={**os.environ, _NETNS_ENV: "1"}, check=False).returncode


def resolver_prefix(work: Path) -> list[str]:
    """A command prefix giving the child a hosts file with NAME -> 127.0.0.1 and a
    resolver pointing nowhere (empty when not root: clients then rely on their flags)."""
    if not is_root() or shutil.which("unshare") is None:
        return []
    work.mkdir(parents=True, exist_ok=True)
    hosts, resolv = work / "hosts", work / "resolv.conf"
    hosts.write_text(f"127.0.0.1 localhost {NAME}\n::1 localhost\n")
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    script = (f"mount --bind {hosts} /etc/hosts && mount --bind {resolv} /etc/resolv.conf "
              '&& exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


@dataclass
class Finished:
    argv: list[str]
    returncode: int | None  # None: stopped by us (deadline or done)
    output: str
    seconds: float


def run_bounded(argv: list[str], *, timeout: float, env: dict[str, str] | None = None,
                cwd: Path | None = None, done: Callable[[], bool] | None = None,
                log: Path, stdin: bytes | None = None) -> Finished:
    """Run ``argv`` (its own process group) until it exits, ``timeout`` passes, or
    ``done()`` says what we needed has happened; then stop the group it leads. Its
    output goes to ``log``; ``stdin`` (else nothing) is its standard input."""
    t0 = time.monotonic()
    stdin_path = log.with_suffix(".stdin")
    stdin_path.write_bytes(stdin or b"")
    with log.open("wb") as out, stdin_path.open("rb") as inp:
        proc = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, start_new_session=True)
        rc: int | None = None
        try:
            while time.monotonic() - t0 < timeout:
                rc = proc.poll()
                if rc is not None or (done is not None and done()):
                    break
                time.sleep(0.05)
        finally:
            rc = proc.poll()
            if rc is None:
                stop_group(proc)
    return Finished(argv, rc, log.read_text(errors="replace"), time.monotonic() - t0)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to the process group ``proc`` leads (browsers fork)."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            # children the leader left behind still hold the group: one more signal
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
