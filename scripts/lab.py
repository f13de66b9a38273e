#!/usr/bin/env python3
"""Bring the netns lab up by hand, so every failure mode can be seen and probed.

    scripts/lab.py up       build the lab, leave it running, print what to try
    scripts/lab.py status   is it running? the same table
    scripts/lab.py down     stop and remove everything (idempotent)

(``make lab-up`` / ``make lab-down``.)  Needs root.  ``up`` starts a supervisor
process (``scripts/lab.py serve``, detached) that owns every server and middlebox of
the lab; ``down`` stops it by its PID, then removes any namespace of the lab still
there.  State lives in /run/prober-lab/; the supervisor logs to
/run/prober-lab/lab.log.  See docs/lab.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.lab.lab import Lab  # noqa: E402
from tests.lab.netns import (  # noqa: E402
    PREFIX_MANUAL,
    LabError,
    cleanup_stale,
    delete_netns,
    kill_pids,
    list_netns,
    pid_alive,
    unavailable_reason,
)
from tests.lab.profiles import write_profiles  # noqa: E402

STATE_DIR = Path("/run/prober-lab")
STATE = STATE_DIR / "state.json"
LOG = STATE_DIR / "lab.log"
LOCK = STATE_DIR / "lock"
UP_TIMEOUT_S = 90.0
DOWN_TIMEOUT_S = 30.0
SERVE_MARK = "prober-lab-serve"  # in the supervisor's argv: how `down` knows it is ours


def _read_state() -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(STATE.read_text())
    except (OSError, ValueError):
        return None
    return doc


def _supervisor_pid(state: dict[str, Any] | None) -> int | None:
    """The supervisor's PID when it is alive and really ours (argv carries our mark)."""
    if not state or not isinstance(state.get("pid"), int):
        return None
    pid: int = state["pid"]
    if not pid_alive(pid):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if SERVE_MARK.encode() in argv else None


def _prober_cmd() -> str:
    venv = REPO / ".venv" / "bin" / "prober"
    try:
        return str(venv.relative_to(Path.cwd()))
    except ValueError:
        return str(venv)


def table(state: dict[str, Any]) -> str:
    """Scenario -> address, SNI, the finding it must produce, and a command to try."""
    ns = state["namespaces"]
    env = f"env PROBER_PROFILES={state['profiles_dir']}"
    rows = [("scenario", "address:port", "SNI", "finding", "try")]
    for s in state["scenarios"]:
        client = s["clients"][0]
        cmd = ["sudo", "ip", "netns", "exec", ns[client]]
        if any(a.startswith("lab-") for a in s["try_args"]):
            cmd += env.split()
        cmd += [_prober_cmd(), "probe", f"{s['sni']}:{s['port']}", *s["try_args"]]
        line = shlex.join(cmd)
        if s.get("try_command"):
            line = s["try_command"].replace("{ns}", ns[client])
        rows.append((s["name"], f"{s['address']}:{s['port']}", s["sni"],
                     s["finding"] or "(none)", line))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
             for r in rows]
    return "\n".join(lines)


def explain(state: dict[str, Any]) -> str:
    ns = state["namespaces"]
    p = state["params"]
    out = [
        "prober lab: up (supervisor pid {pid})".format(**state),
        f"  {ns['client1']} 198.51.100.10, {ns['client2']} 198.51.100.11 "
        f"-> {ns['router']} 198.51.100.1 / 203.0.113.1 -> {ns['server']} "
        "203.0.113.10-30 (no route out of the lab)",
        f"  names *.lab.test resolve inside the lab; lab profiles: PROBER_PROFILES="
        f"{state['profiles_dir']}",
        f"  lab CA {state['lab_ca']}, interceptor CA {state['intercept_ca']}",
        f"  idle timeout {p['idle_timeout_s']:g} s, silent proxy FIN after "
        f"{p['silent_fin_s']:g} s, flapping {p['flap_down_s']:g} s down every "
        f"{p['flap_up_s'] + p['flap_down_s']:g} s",
        "",
        table(state),
        "",
        "Any scenario: sudo ip netns exec " + ns["client1"] + " "
        + _prober_cmd() + " diagnose NAME.lab.test",
        "Causes: scripts/lab.py status --causes; details: docs/lab.md. "
        "Stop: make lab-down",
    ]
    return "\n".join(out)


def causes(state: dict[str, Any]) -> str:
    return "\n".join(f"{s['name']:<20} {s['cause']}" for s in state["scenarios"])


@contextlib.contextmanager
def _exclusive(timeout: float = UP_TIMEOUT_S) -> Iterator[None]:
    """One `up`/`down` at a time (two shells, or two test runs, on one machine)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"{LOCK} stays locked: another `lab.py up/down`?") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- commands ---------------------------------------------------------------------------


def cmd_up(_args: argparse.Namespace) -> int:
    reason = unavailable_reason()
    if reason:
        print(f"lab: {reason}", file=sys.stderr)
        return 1
    with _exclusive():
        return _up()


def _up() -> int:
    state = _read_state()
    if _supervisor_pid(state) is not None and state and state.get("ready"):
        print(explain(state))
        return 0
    _teardown_leftovers(state)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        STATE.unlink()
    with open(LOG, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--mark", SERVE_MARK],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=REPO)  # its own session: survives this shell
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        state = _read_state()
        if state and state.get("ready") and state.get("pid") == proc.pid:
            print(explain(state))
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(DOWN_TIMEOUT_S)
    tail = LOG.read_text(errors="replace").splitlines()[-25:]
    print("lab: failed to come up; the supervisor's log ends with:\n  "
          + "\n  ".join(tail), file=sys.stderr)
    _teardown_leftovers(None)
    return 1


def _teardown_leftovers(state: dict[str, Any] | None) -> None:
    """Remove the manual lab's namespaces (and what runs in them) when no live
    supervisor owns them; test labs of dead owners too."""
    if _supervisor_pid(state) is None:
        cleanup_stale(manual_owner_alive=False)


def cmd_down(_args: argparse.Namespace) -> int:
    with _exclusive():
        return _down()


def _down() -> int:
    state = _read_state()
    pid = _supervisor_pid(state)
    if pid is not None:  # on SIGTERM the supervisor stops its servers and removes the lab
        kill_pids([pid], grace=DOWN_TIMEOUT_S)
    # whatever is left (a killed supervisor, a half-built lab) goes too
    for ns in list_netns():
        if ns.startswith(PREFIX_MANUAL):
            delete_netns(ns)
    cleanup_stale(manual_owner_alive=False)
    with contextlib.suppress(FileNotFoundError):
        STATE.unlink()
    shutil.rmtree(STATE_DIR / "profiles", ignore_errors=True)
    print("lab: down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = _read_state()
    if _supervisor_pid(state) is None or not state:
        left = [ns for ns in list_netns() if ns.startswith(PREFIX_MANUAL)]
        print("lab: not running" + (f" (leftover namespaces: {', '.join(left)}; "
                                     "run `make lab-down`)" if left else ""))
        return 3
    print(causes(state) if args.causes else explain(state))
    return 0


def cmd_serve(_args: argparse.Namespace) -> int:
    """The supervisor: build the lab, publish its description, run until SIGTERM."""
    stop = False

    def on_signal(_signo: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lab = Lab(manual=True)
    try:
        lab.start()
        assert lab.flapper is not None
        lab.flapper.start_auto()
        state = {"pid": os.getpid(), "ready": True, "started_at": time.time(),
                 **lab.describe()}
        # the lab profiles at a path short enough to type
        state["profiles_dir"] = str(write_profiles(STATE_DIR / "profiles"))
        tmp = STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(STATE)
        print(f"lab: up, pid {os.getpid()}", flush=True)
        while not stop:
            lab.flapper.tick()  # on the main thread: starting nginx enters a namespace
            time.sleep(0.2)
    except LabError as e:
        print(f"lab: {e}", flush=True)
        return 1
    finally:
        lab.stop()
        published = _read_state()
        if published and published.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                STATE.unlink()
        print("lab: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/lab.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="build the lab and leave it running")
    sub.add_parser("down", help="tear the lab down (idempotent)")
    st = sub.add_parser("status", help="is the lab running; what to try")
    st.add_argument("--causes", action="store_true", help="the real cause of each scenario")
    sv = sub.add_parser("serve", help=argparse.SUPPRESS)
    sv.add_argument("--mark", default="")
    args = ap.parse_args(argv)
    if os.geteuid() != 0 and args.cmd != "status":
        print("lab: needs root (network namespaces): run with sudo", file=sys.stderr)
        return 1
    handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "serve": cmd_serve}
    try:
        return handlers[args.cmd](args)
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
