"""Network-namespace plumbing for the lab: running commands, entering a namespace from
Python, naming, stale cleanup.

Everything here is about *our* namespaces only.  The lab never puts an interface, an
address or a route into the host's own namespace: every link is a veth pair created
directly between two lab namespaces (``ip -n A link add ... peer ... netns B``), so
lab traffic has no way to reach the host's eth0 (192.0.2.2/24 with a real gateway).

Entering a namespace from Python (:func:`in_netns`) uses ``setns(2)``, which switches
the *calling thread* only.  Whatever that thread creates while inside stays there for
good: sockets, threads (they inherit the creator's namespace), child processes.  So a
peer class from ``tests/peers`` (nginx, a listener thread) started inside
``in_netns(ns)`` lives in ``ns`` although it was written for loopback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.peers.lifecycle import pid_alive as pid_alive  # scripts/lab.py imports it here
from tests.peers.lifecycle import poll_until
from tests.peers.netns import NETNS_TOOLS, netns_unavailable

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
# `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc/*: the lab's hosts file and
# a resolv.conf that points nowhere live there, so names resolve inside the lab only
ETC_NETNS = Path("/etc/netns")

# test labs: prb-lab<owner pid>-<host>; the hand-started lab (`make lab-up`): prb-lab-<host>
PREFIX_MANUAL = "prb-lab-"
_OWNED = re.compile(r"prb-lab(\d+)-[a-z0-9]+")
_MANUAL = re.compile(r"prb-lab-[a-z0-9]+")
_OWNED_WORKDIR = re.compile(r"prb-lab(\d*)-[a-z0-9]*work-\w+")

_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    """A lab step failed; the message names the command and what it said."""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short command; raise :class:`LabError` with its stderr when it fails."""
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                       check=False, input=input)
    if check and r.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({r.returncode}): "
                       f"{(r.stderr or r.stdout).strip()}")
    return r


def exec_argv(ns: str) -> list[str]:
    """Prefix that runs a command inside ``ns``."""
    return ["ip", "netns", "exec", ns]


def prefix_for(owner_pid: int | None) -> str:
    """Namespace-name prefix of a lab owned by ``owner_pid`` (None: the manual lab)."""
    return PREFIX_MANUAL if owner_pid is None else f"prb-lab{owner_pid}-"


# -- entering a namespace from this process ------------------------------------------------


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def current_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the body with this thread inside namespace ``ns``, then come back.

    Must be called from the main thread: the peers in tests/peers look at
    ``/proc/self/net/tcp`` to see whether a server listens, and ``/proc/self`` is the
    main thread's view.
    """
    if threading.current_thread() is not threading.main_thread():
        raise LabError("in_netns() must run on the main thread (see its docstring)")
    with open(NETNS_DIR / ns) as target, open("/proc/thread-self/ns/net") as home:
        home_ino = os.fstat(home.fileno()).st_ino
        _setns(target.fileno())
        try:
            yield
        finally:
            # failing to come back would leave the test process inside the lab
            _setns(home.fileno())
            if current_netns_inode() != home_ino:
                raise LabError("could not return to the original network namespace")


# -- discovery and cleanup ----------------------------------------------------------------


def list_netns() -> list[str]:
    r = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.split()]


def netns_pids(ns: str) -> list[int]:
    """PIDs of processes whose network namespace is ``ns`` (all started by a lab)."""
    r = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def kill_pids(pids: Sequence[int], *, grace: float = 3.0) -> None:
    """SIGTERM each pid (never this process), wait up to ``grace`` s, then SIGKILL."""
    me = os.getpid()
    targets = [p for p in pids if p != me]
    for p in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    poll_until(lambda: not any(pid_alive(p) for p in targets), grace, step=0.05)
    for p in filter(pid_alive, targets):  # only the ones still there: a pid may be reused
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def delete_netns(ns: str) -> None:
    """Kill what still runs inside ``ns``, delete it (its veth ends go with it) and its
    /etc/netns directory.  Idempotent."""
    if ns in list_netns():
        kill_pids(netns_pids(ns))
        run(["ip", "netns", "del", ns], check=False)
    d = ETC_NETNS / ns
    if d.is_dir() and d.parent == ETC_NETNS:
        shutil.rmtree(d, ignore_errors=True)


def cleanup_stale(manual_owner_alive: bool | None = None) -> list[str]:
    """Remove namespaces of test labs whose owner process is gone (``prb-lab<pid>-*``),
    and those of the manual lab when ``manual_owner_alive`` is False; and the work
    directories such labs left in the temp dir."""
    removed = []
    for d in Path(tempfile.gettempdir()).glob("prb-lab*work-*"):
        m = _OWNED_WORKDIR.fullmatch(d.name)
        owner_gone = m is not None and (not pid_alive(int(m.group(1))) if m.group(1)
                                        else manual_owner_alive is False)
        if owner_gone and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
    names = set(list_netns())
    if ETC_NETNS.is_dir():
        names |= {d.name for d in ETC_NETNS.iterdir() if d.name.startswith("prb-lab")}
    for ns in sorted(names):
        m = _OWNED.fullmatch(ns)
        stale = (m is not None and not pid_alive(int(m.group(1)))) or (
            manual_owner_alive is False and _MANUAL.fullmatch(ns) is not None)
        if stale:
            delete_netns(ns)
            removed.append(ns)
    return removed


def unavailable_reason() -> str | None:
    """Why the lab can't be built here (None when it can)."""
    return netns_unavailable("the netns lab", (*NETNS_TOOLS, ("iptables", "iptables"),
                                               ("nginx", "nginx-light libnginx-mod-stream"),
                                               ("tcpdump", "tcpdump")))
