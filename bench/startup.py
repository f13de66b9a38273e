"""Start-up time of the `prober` command, as a user runs it (whole process, wall clock).

    .venv/bin/python bench/startup.py [--runs 10] [--prober /path/to/venv/bin/prober]
                                      [--tree DIR]

Runs each command ``--runs`` times after one warm-up run and prints the median wall time
(and min, max, median CPU time) of:

- ``prober --help``
- ``prober probe 127.0.0.1:PORT -p default``: the default profile set (9 files), with
  the profile index already cached (every start after the first)
- the same with a cold index cache (a fresh ``$XDG_CACHE_HOME`` every run: the first
  start, or the first after a profile file changed)
- ``prober probe 127.0.0.1:PORT -p tls1.2-only``: a generated profile, no file read

PORT is a stdlib-ssl TLS server (TLS 1.2-1.3, RSA and ECDSA) started here on loopback,
so every probe completes real handshakes. Without ``--prober`` the checkout's package is
timed (``python -m prober``), after byte-compiling it as ``make setup`` and pip do: a
process that compiles every module from source is not what users start. ``--tree DIR``
times another checkout the same way (e.g. ``git worktree add /tmp/before COMMIT``), to
set a change beside what came before it in the same conditions.
Figures are printed, never asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers.pki import make_pki  # noqa: E402
from tests.peers.python_server import PythonTLSServer  # noqa: E402


@dataclass
class Timing:
    wall: float
    cpu: float  # user + system of the child


def run_once(argv: list[str], env: dict[str, str]) -> Timing:
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait4 gives this child's own CPU time, which RUSAGE_CHILDREN would sum over runs
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if p.stderr:
        p.stderr.close()
    if p.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} exited {p.returncode}: {err.strip()[-500:]}")
    return Timing(wall, usage.ru_utime + usage.ru_stime)


def measure(argv: list[str], runs: int, env_of: Callable[[], dict[str, str]]) -> list[Timing]:
    run_once(argv, env_of())  # warm-up: page cache, and the index cache when it is kept
    return [run_once(argv, env_of()) for _ in range(runs)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--prober", metavar="PATH",
                    help="an installed prober command (default: python -m prober from "
                    "this checkout)")
    ap.add_argument("--tree", metavar="DIR", type=Path,
                    help="time the package of this checkout instead (python -m prober)")
    args = ap.parse_args()
    tree = args.tree.resolve() if args.tree else REPO

    env = dict(os.environ)
    if args.prober:
        prober = [args.prober]
    else:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "prober")],
                       check=True, stdout=subprocess.DEVNULL)
        prober = [sys.executable, "-m", "prober"]
        env["PYTHONPATH"] = str(tree)
    version = subprocess.run([*prober, "--version"], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
    libyaml = subprocess.run(
        [sys.executable if not args.prober else str(Path(args.prober).parent / "python"),
         "-c", "import yaml; print(yaml.__with_libyaml__)"],
        env=env, capture_output=True, text=True).stdout.strip()

    with tempfile.TemporaryDirectory(prefix="prober-startup-") as tmp:
        server = PythonTLSServer(make_pki(Path(tmp) / "pki")).start()
        try:
            target = f"127.0.0.1:{server.port}"
            warm_cache = Path(tmp) / "cache-warm"
            cold = iter(range(1 << 30))

            def warm_env() -> dict[str, str]:
                return {**env, "XDG_CACHE_HOME": str(warm_cache)}

            def cold_env() -> dict[str, str]:
                return {**env, "XDG_CACHE_HOME": str(Path(tmp) / f"cache-{next(cold)}")}

            cases = [
                ("prober --help", [*prober, "--help"], warm_env),
                (f"prober probe {target} -p default",
                 [*prober, "probe", target, "-p", "default"], warm_env),
                ("  same, cold profile index", [*prober, "probe", target, "-p", "default"],
                 cold_env),
                (f"prober probe {target} -p tls1.2-only",
                 [*prober, "probe", target, "-p", "tls1.2-only"], warm_env),
            ]
            print(f"{version} ({shlex.join(prober)}); libyaml: {libyaml}; "
                  f"{args.runs} runs each after one warm-up; {os.cpu_count()} CPUs, "
                  f"load {os.getloadavg()[0]:.2f}\n")
            print(f"{'command':<46} {'median s':>9} {'min':>6} {'max':>6} {'CPU s':>6}")
            for label, argv, env_of in cases:
                ts = measure(argv, args.runs, env_of)
                walls = [t.wall for t in ts]
                print(f"{label:<46} {statistics.median(walls):>9.3f} {min(walls):>6.3f} "
                      f"{max(walls):>6.3f} {statistics.median(t.cpu for t in ts):>6.3f}",
                      flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
