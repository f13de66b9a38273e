"""`prober fleet run` in-process versus on agents, and `--job policy` beside sslyze.

    make bench            # or: .venv/bin/python bench/fleet.py [--endpoints N] [--only a|b]

(a) **Distribution overhead.** One nginx (stream module, ECDSA P-256, TLS 1.2 + 1.3, one
    worker) listens on 2,000 loopback addresses (``--endpoints``, up to 10,000), 127.0.1.1
    to 127.0.8.250, all on one
    port: Linux routes the whole of 127.0.0.0/8 to ``lo``, so each ``listen
    127.0.X.Y:PORT`` is a real socket of its own (one line each in nginx.conf; a single
    ``listen *:PORT`` would also accept on the host's other interfaces). The inventory is
    a plain targets file of those 2,000 endpoints, so each task runs the ``default``
    profile set. The same inventory runs
      - in-process pinned to core 0 (``taskset -c 0 prober fleet run``) and on one agent
        pinned to core 0 with the coordinator on core 1 (nginx and redis-server on core 1
        in every run): the worker gets one core either way, the target's comparison;
      - in-process unpinned and on two agents unpinned (the machine's two cores).
    Per run: whole-process wall time, attempts/s (whole run, and in-run from the tasks'
    own start/finish times in the store), CPU seconds and peak RSS of the coordinator
    (in-process: the one process) and of each agent (/proc: VmHWM). Distribution
    overhead = in-process rate / agents' rate - 1 per round (target <= 15 % for the
    one-core pair: the median of ``--rounds`` rounds, each pair run in the other order
    than the last), and the same from the tasks' own times. Then the coordinator's RSS
    at 200, 1,000 and 2,000 endpoints, in-process and distributed: the highest VmRSS sampled
    while the tasks ran (the store is on disk, so it should stay nearly flat) and the
    peak with the closing report.
(b) **policy versus sslyze.** 200 endpoints (one nginx with its defaults: TLS 1.2 + 1.3,
    HIGH:!aNULL:!MD5, RSA; 200 ports) in a private network namespace; ``prober fleet run --job
    policy`` and ``sslyze --targets_in`` (cipher suites of every version, as
    bench/policy.py runs it) from a second namespace, SYNs counted by nftables at the
    server (bench/netns_counter.py). Targets: fleet faster than sslyze, >= 5x fewer
    connections. Root only; skipped otherwise.

Every process started here is stopped here by PID; every run has a time limit.
Figures are printed, never asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.netns_counter import SERVER_IF, SynCounterNet, why_unavailable  # noqa: E402
from prober.fleet.runner import DEFAULT_SHARD_SIZE, MAX_SHARD_SIZE  # noqa: E402
from tests.fleet.harness import Agent, agents, redis_server  # noqa: E402
from tests.lab.netns import exec_argv  # noqa: E402
from tests.lab.netns import run as ns_run  # noqa: E402
from tests.peers.lifecycle import proc_stat  # noqa: E402
from tests.peers.misbehaving import raise_nofile_limit  # noqa: E402
from tests.peers.nginx_server import NginxServer, stream_module_path  # noqa: E402
from tests.peers.pki import Pki, make_pki  # noqa: E402
from tests.peers.ports import free_port  # noqa: E402

PY = sys.executable
VANTAGE = "bench"
TIME_LIMIT_S = 120  # per task
VISIBILITY_S = 300
RUN_LIMIT_S = 900.0  # per fleet run (the process is killed after it)
SIZES = (200, 1000, 2000)
MAX_ENDPOINTS = 10_000  # 127.0.1.1 to 127.0.40.250: one nginx listening socket each
OVERHEAD_TARGET = 0.15
CONN_TARGET = 5.0
WORKER_CORE, OTHER_CORE = 0, 1


def loopback_addresses(n: int) -> list[str]:
    """127.0.1.1 … : 250 per /24, never 127.0.0.x (where other tests' servers listen)."""
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(n)]


class MultiNginx(NginxServer):
    """One nginx whose TLS server listens on every ``(address, port)`` given."""

    def __init__(self, pki: Pki, listens: list[tuple[str, int]], **kw: object) -> None:
        host, port = listens[0]
        super().__init__(pki, host=host, port=port, **kw)  # type: ignore[arg-type]
        self.listens = listens

    def config(self) -> str:
        one = f"listen {self.host}:{self.port} ssl;"
        text = super().config()
        if one not in text:
            raise RuntimeError("tests/peers/nginx_server.py's config changed: no " + one)
        return text.replace(one, "\n        ".join(
            f"listen {a}:{p} ssl;" for a, p in self.listens))

    def pids(self) -> list[int]:
        return [p for p in [self.pid, *self.worker_pids()] if p is not None]


def pin(pids: list[int], core: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(p, {core})


def two_cores() -> bool:
    return len(os.sched_getaffinity(0)) >= 2


# -- one fleet run ------------------------------------------------------------------------

@dataclass
class Run:
    label: str
    endpoints: int
    wall: float
    rss_kb: int  # the coordinator's (in-process: the one process's) peak RSS
    rc: int
    cpu_s: float = 0.0  # the coordinator's user + system
    attempts: int = 0
    tasks_done: int = 0
    span: float = 0.0  # first task start to last task finish, from the store
    agents_rss_kb: list[int] = field(default_factory=list)
    agents_cpu_s: list[float] = field(default_factory=list)
    tasks_rss_kb: int = 0  # the coordinator's peak VmRSS until the last task finished
    stderr: str = ""

    @property
    def rate(self) -> float:
        return self.attempts / self.wall if self.wall else 0.0

    @property
    def in_run(self) -> float:
        return self.attempts / self.span if self.span else 0.0


# Runs argv in a helper process so that the peak RSS is argv's own (RUSAGE_CHILDREN of a
# process that has no other child), killed at the time limit.
# Runs argv in a helper process so that the peak RSS is argv's own (RUSAGE_CHILDREN of a
# process that has no other child), killed at the time limit; VmRSS is also sampled every
# 0.1 s, so that the peak while the tasks ran can be told from the final report's.
_MEASURE = """
import json, resource, subprocess, sys, threading, time
limit = float(sys.argv[1])
t = time.monotonic()
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     text=True)
samples = []
def sample():
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        samples.append((time.time(), int(line.split()[1])))
        except OSError:
            pass
        time.sleep(0.1)
threading.Thread(target=sample, daemon=True).start()
try:
    _, err = p.communicate(timeout=limit)
    rc = p.returncode
except subprocess.TimeoutExpired:
    p.kill()
    p.communicate()
    rc, err = -9, f"timed out after {limit:g} s"
w = time.monotonic() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": w, "rss": u.ru_maxrss, "cpu": u.ru_utime + u.ru_stime, "rc": rc,
                  "err": err[-3000:], "samples": samples}))
"""


def fleet_run(label: str, inv: Path, store: Path, n: int, extra: list[str],
              cores: list[int] | None) -> Run:
    argv = [PY, "-m", "prober", "fleet", "run", str(inv), "--store", str(store),
            "--time-limit", str(TIME_LIMIT_S), "--visibility-timeout", str(VISIBILITY_S),
            "--stall", "60", "-q", *extra]
    if cores is not None:
        argv = ["taskset", "-c", ",".join(map(str, cores)), *argv]
    store.unlink(missing_ok=True)
    res = subprocess.run([PY, "-c", _MEASURE, str(RUN_LIMIT_S), *argv], capture_output=True,
                         text=True, check=True, cwd=REPO, timeout=RUN_LIMIT_S + 60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    d = json.loads(res.stdout)
    run = Run(label, n, d["wall"], d["rss"], d["rc"], cpu_s=d["cpu"], stderr=d["err"])
    if store.is_file():
        db = sqlite3.connect(store)
        try:
            run.attempts = db.execute("SELECT count(*) FROM attempts").fetchone()[0]
            run.tasks_done = db.execute(
                "SELECT count(*) FROM tasks WHERE status='done'").fetchone()[0]
            first, last = db.execute(
                "SELECT min(started_at), max(finished_at) FROM tasks").fetchone()
            run.span = (last - first) if first is not None and last is not None else 0.0
            run.tasks_rss_kb = max((kb for ts, kb in d["samples"] if last is None or ts <= last),
                                   default=0)
        finally:
            db.close()
    if run.tasks_done != n:
        print(f"  ! {label}: {run.tasks_done}/{n} tasks done, rc {run.rc}: "
              f"{run.stderr.strip()[-400:]}")
    return run


def cpu_s(pid: int) -> float:
    f = proc_stat(pid)
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK") if f else 0.0


def peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextlib.contextmanager
def started_agents(tmp: Path, broker: str, n: int, cores: list[int] | None,
                   port: int) -> Iterator[list[Agent]]:
    with agents() as started:
        for i in range(n):
            a = Agent(tmp, broker, VANTAGE, [f"127.0.0.0/8:{port}"], name=f"bench{i}",
                      time_limit=TIME_LIMIT_S, visibility=VISIBILITY_S)
            started.append(a)
            if cores is not None:
                pin([a.proc.pid], cores[i % len(cores)])
        for a in started:
            a.ready(60)
        yield started


_DBS = itertools.count(1)


SHARD = {"size": DEFAULT_SHARD_SIZE}  # --shard-size of the distributed runs


def distributed(label: str, tmp: Path, broker: str, inv: Path, n: int, port: int,
                n_agents: int, agent_cores: list[int] | None,
                coord_cores: list[int] | None) -> Run:
    # an emptied Redis database per run, so that no run starts with an earlier run's
    # results (up to a shard's answer each) in the server's memory
    broker = f"{broker.rsplit('/', 1)[0]}/{1 + next(_DBS) % 15}"
    import redis

    redis.Redis.from_url(broker).flushdb()
    with started_agents(tmp, broker, n_agents, agent_cores, port) as ags:
        # an agent's own start-up (imports, Celery's boot) is before the run, not in it
        booted = [cpu_s(a.proc.pid) for a in ags]
        run = fleet_run(label, inv, tmp / "store.sqlite", n,
                        ["--broker", broker, "--vantage", VANTAGE,
                         "--shard-size", str(SHARD["size"])], coord_cores)
        run.agents_rss_kb = [peak_rss_kb(a.proc.pid) for a in ags]
        run.agents_cpu_s = [cpu_s(a.proc.pid) - b for a, b in zip(ags, booted, strict=True)]
    return run


# -- (a) ----------------------------------------------------------------------------------

ONE_CORE_EMB = f"in-process, core {WORKER_CORE}"
ONE_CORE_AGENT = f"1 agent on core {WORKER_CORE}, coordinator on core {OTHER_CORE}"
BOTH_EMB, BOTH_AGENTS = "in-process, both cores", "2 agents, both cores"


def bench_overhead(tmp: Path, n: int, sizes: list[int], rounds: int, both_rounds: int,
                   one_core_only: bool = False) -> None:
    raise_nofile_limit(4 * n + 1024)
    pki = make_pki(tmp / "pki")
    port = free_port()
    addrs = loopback_addresses(n)
    invs = {}
    for size in sorted({*sizes, n}):
        invs[size] = tmp / f"fleet-{size}.txt"
        invs[size].write_text("".join(f"{a}:{port}\n" for a in addrs[:size]))
    one_core = two_cores()
    runs: list[Run] = []
    # a connection slot per listening socket, and as many again for the attempts
    with MultiNginx(pki, [(a, port) for a in addrs], cert="ecdsa", worker_processes=1,
                    worker_connections=max(4096, 2 * n + 1024)) as ngx, redis_server(tmp) as broker:
        redis_pid = _listener_pid(broker)
        if one_core:
            pin(ngx.pids() + ([redis_pid] if redis_pid else []), OTHER_CORE)
        print(f"\n## Fleet: {n} loopback endpoints (127.0.1.1-{addrs[-1]}:{port}, one nginx) "
              f"x the default profile set, {rounds} round(s) of the one-core pair, "
              f"{0 if one_core_only else min(rounds, both_rounds)} of the two-core pair, "
              f"interleaved in alternating order; agents get --shard-size {SHARD['size']} "
              f"(tasks per message)\n")
        inv = invs[n]
        store = tmp / "store.sqlite"
        load0 = os.getloadavg()
        # interleaved, each pair in the other order than the last (A B, B A, …), so that
        # the machine's drift and the order's own effect hit both sides alike
        for i in range(rounds):
            if one_core:
                pair: list[Callable[[], Run]] = [
                    lambda: fleet_run(ONE_CORE_EMB, inv, store, n, [], [WORKER_CORE]),
                    lambda: distributed(ONE_CORE_AGENT, tmp, broker, inv, n, port, 1,
                                        [WORKER_CORE], [OTHER_CORE])]
                runs += [f() for f in (pair if i % 2 == 0 else pair[::-1])]
            if (one_core_only and one_core) or i >= both_rounds:
                continue
            pair = [lambda: fleet_run(BOTH_EMB, inv, store, n, [], None),
                    lambda: distributed(BOTH_AGENTS, tmp, broker, inv, n, port, 2, None,
                                        None)]
            runs += [f() for f in (pair if i % 2 == 0 else pair[::-1])]
        load1 = os.getloadavg()
        _print_overhead(runs, one_core)
        scale: list[tuple[int, Run, Run]] = []
        for size in sizes:
            emb = fleet_run(f"in-process {size}", invs[size], store, size, [], None)
            dist = distributed(f"2 agents {size}", tmp, broker, invs[size], size, port, 2,
                               None, None)
            scale.append((size, emb, dist))
        if scale:
            _print_scale(scale)
        print(f"\nLoad average (1, 5 min): {load0[0]:.2f}, {load0[1]:.2f} before, "
              f"{load1[0]:.2f}, {load1[1]:.2f} after the runs above; "
              f"{os.cpu_count()} CPUs shared with whatever else runs on this machine.")


def _listener_pid(broker: str) -> int | None:
    """redis-server's PID, from the listening socket's owner (ss)."""
    port = broker.rsplit(":", 1)[1].split("/")[0]
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                         text=True, check=False, timeout=10).stdout
    for part in out.split("pid=")[1:]:
        return int(part.split(",")[0])
    return None


def _table(rows: list[list[object]], headers: list[str]) -> None:
    from tabulate import tabulate

    print(tabulate(rows, headers=headers, tablefmt="github"))


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f}"


def _print_overhead(runs: list[Run], one_core: bool) -> None:
    _table([[r.label, r.tasks_done, r.attempts, f"{r.wall:.1f}", f"{r.wall - r.span:.2f}",
             f"{r.rate:.0f}", f"{r.in_run:.0f}", f"{r.cpu_s:.1f}", _mb(r.rss_kb),
             " / ".join(f"{c:.1f}" for c in r.agents_cpu_s),
             " / ".join(map(_mb, r.agents_rss_kb))] for r in runs],
           ["run", "tasks done", "attempts", "wall s", "s before the first task + after the last",
            "attempts/s (whole run)", "attempts/s (in-run)", "coordinator CPU s",
            "coordinator peak RSS MB", "agents' CPU s in the run", "agents' peak RSS MB"])
    pairs = [(ONE_CORE_EMB, ONE_CORE_AGENT, "one core")] if one_core else []
    if any(r.label == BOTH_EMB for r in runs):
        pairs.append((BOTH_EMB, BOTH_AGENTS, "two agents vs in-process on both cores"))
    for emb_label, dist_label, what in pairs:
        emb = [r for r in runs if r.label == emb_label]
        dist = [r for r in runs if r.label == dist_label]
        if not all(r.rate and r.in_run for r in dist):
            print(f"\nDistribution overhead, {what}: not measured (a run failed)")
            continue
        whole = [e.rate / d.rate - 1 for e, d in zip(emb, dist, strict=True)]
        in_run = [e.in_run / d.in_run - 1 for e, d in zip(emb, dist, strict=True)]
        med = statistics.median(whole)
        target = (f"; target <= {OVERHEAD_TARGET:.0%}: {_met(med <= OVERHEAD_TARGET)}"
                  if what == "one core" else "")
        print(f"\nDistribution overhead, {what} (in-process rate / agents' rate - 1, per "
              f"round): whole run {', '.join(f'{x:+.1%}' for x in whole)} (median "
              f"{med:+.1%}, quartiles {_quartiles(whole)}{target}); in-run "
              f"{', '.join(f'{x:+.1%}' for x in in_run)} (median "
              f"{statistics.median(in_run):+.1%}).")
    if not one_core:
        print("\n(one CPU only: the pinned one-core pair was not run)")


def _quartiles(xs: list[float]) -> str:
    if len(xs) < 4:
        return f"range {min(xs):+.1%} to {max(xs):+.1%}"
    q1, _, q3 = statistics.quantiles(xs, n=4)
    return f"{q1:+.1%} to {q3:+.1%}"


def _print_scale(scale: list[tuple[int, Run, Run]]) -> None:
    print("\n## Coordinator peak RSS by fleet size\n")
    _table([[size, f"{e.wall:.1f}", _mb(e.tasks_rss_kb), _mb(e.rss_kb), f"{d.wall:.1f}",
             _mb(d.tasks_rss_kb), _mb(d.rss_kb), " / ".join(map(_mb, d.agents_rss_kb))]
            for size, e, d in scale],
           ["endpoints", "in-process wall s", "in-process RSS MB while tasks ran",
            "in-process peak RSS MB (with the report)", "2 agents wall s",
            "coordinator RSS MB while tasks ran", "coordinator peak RSS MB (with the report)",
            "agents' peak RSS MB"])
    print("\nRSS while tasks ran: the highest VmRSS sampled (every 0.1 s) until the last "
          "task finished; the peak includes `fleet run`'s closing report, which lists every "
          "endpoint's outcome per profile.")


# -- (b) ----------------------------------------------------------------------------------

POLICY_PORT0 = 40000
ALL_SYNS = "prb_bench_fleet"


def count_all_syns(net: SynCounterNet) -> None:
    """One nftables counter of every SYN reaching the server namespace over the veth (the
    200 ports together), in a table of its own beside bench/netns_counter.py's."""
    ruleset = f"""
table inet {ALL_SYNS}
delete table inet {ALL_SYNS}
table inet {ALL_SYNS} {{
    counter syns {{ }}
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "{SERVER_IF}" tcp flags & (syn | ack) == syn counter name "syns"
    }}
}}
"""
    ns_run([*exec_argv(net.server_ns), "nft", "-f", "-"], input=ruleset)


def all_syns(net: SynCounterNet) -> int:
    out = ns_run([*exec_argv(net.server_ns), "nft", "-j", "list", "counter", "inet",
                  ALL_SYNS, "syns"]).stdout
    for item in json.loads(out).get("nftables", []):
        if "counter" in item:
            return int(item["counter"]["packets"])
    raise RuntimeError(f"no counter {ALL_SYNS}/syns in: {out[:300]}")


@dataclass
class Tool:
    label: str
    wall: float
    rss_kb: int
    cpu_s: float
    rc: int
    syns: int
    complete: str  # what the tool finished, in its own terms
    err: str = ""


def _measured(net: SynCounterNet, argv: list[str]) -> tuple[dict[str, Any], int]:
    before = all_syns(net)
    with net.in_client():  # the helper, and the tool it starts, live in the client netns
        res = subprocess.run([PY, "-c", _MEASURE, str(RUN_LIMIT_S), *argv],
                             capture_output=True, text=True, check=True, cwd=REPO,
                             timeout=RUN_LIMIT_S + 60,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    time.sleep(0.5)  # the last SYNs are counted already; this is for the FIN/RST stragglers
    return json.loads(res.stdout), all_syns(net) - before


def run_fleet_policy(net: SynCounterNet, inv: Path, store: Path, n: int) -> Tool:
    store.unlink(missing_ok=True)
    d, syns = _measured(net, [PY, "-m", "prober", "fleet", "run", str(inv), "--job",
                              "policy", "--store", str(store), "-q",
                              "--time-limit", str(TIME_LIMIT_S)])
    named = reliable = done = 0
    if store.is_file():
        db = sqlite3.connect(store)
        try:
            done = db.execute("SELECT count(*) FROM tasks WHERE status='done'").fetchone()[0]
            reliable, named = db.execute(
                "SELECT sum(reliable), count(name) FROM policies").fetchone()
        finally:
            db.close()
    return Tool("prober fleet run --job policy", d["wall"], d["rss"], d["cpu"], d["rc"], syns,
                f"{done}/{n} tasks done, {reliable or 0} reliable, {named or 0} named",
                d["err"])


def run_sslyze(net: SynCounterNet, targets: Path, out: Path, n: int) -> Tool:
    out.unlink(missing_ok=True)
    d, syns = _measured(net, [PY, "-m", "sslyze", "--sslv2", "--sslv3", "--tlsv1",
                              "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--quiet",
                              "--targets_in", str(targets), f"--json_out={out}"])
    completed = 0
    if out.is_file():
        with contextlib.suppress(ValueError):
            doc = json.loads(out.read_text())
            completed = sum(1 for r in doc.get("server_scan_results", [])
                            if r.get("scan_status") == "COMPLETED")
    return Tool("sslyze --targets_in (cipher suites, every version)", d["wall"], d["rss"],
                d["cpu"], d["rc"], syns, f"{completed}/{n} scans completed", d["err"])


def bench_policy(tmp: Path, n: int, repeat: int) -> None:
    print(f"\n## fleet --job policy vs sslyze --targets_in: {n} endpoints (private netns)\n")
    reason = why_unavailable()
    if reason:
        print(f"skipped: {reason}")
        return
    if shutil.which("nft") is None:
        print("skipped: needs `nft` (make setup)")
        return
    pki = make_pki(tmp / "pki-b")
    inv, targets = tmp / "policy-200.txt", tmp / "sslyze-targets.txt"
    runs: list[tuple[Tool, Tool]] = []
    with SynCounterNet() as net, contextlib.ExitStack() as stack:
        listens = [(net.server_addr, POLICY_PORT0 + i) for i in range(n)]
        inv.write_text("".join(f"{a}:{p}\n" for a, p in listens))
        targets.write_text(inv.read_text())
        ngx = MultiNginx(pki, listens, worker_processes=1, worker_connections=4096)
        stack.callback(ngx.stop)
        with net.in_server():  # it listens in the server namespace
            ngx.start()
        count_all_syns(net)
        print(f"one nginx (defaults: {ngx.protocols}, ciphers {ngx.ciphers}, {ngx.cert} "
              f"certificate) on {net.server_addr}:{POLICY_PORT0}-{POLICY_PORT0 + n - 1} "
              f"(netns {net.server_ns}); the tools run from {net.client_addr} "
              f"(netns {net.client_ns}); SYNs counted by nftables at the server")
        load0 = os.getloadavg()
        for i in range(repeat):
            pr = run_fleet_policy(net, inv, tmp / f"policy-{i}.sqlite", n)
            ss = run_sslyze(net, targets, tmp / f"sslyze-{i}.json", n)
            for t in (pr, ss):
                if t.rc not in (0, 1):  # fleet run: 1 = findings
                    print(f"  ! {t.label} exited {t.rc}: {t.err.strip()[-300:]}")
            runs.append((pr, ss))
        load1 = os.getloadavg()
    rows = [[t.label, f"{t.wall:.1f}", f"{t.cpu_s:.1f}", t.syns, f"{t.syns / n:.0f}",
             _mb(t.rss_kb), t.complete] for pair in runs for t in pair]
    _table(rows, ["run", "wall s", "CPU s", "TCP conns (SYNs)", "per endpoint",
                  "peak RSS MB", "finished"])
    for i, (pr, ss) in enumerate(runs):
        fewer = ss.syns / max(pr.syns, 1)
        print(f"\nrun {i + 1}: fleet policy {pr.wall:.1f} s vs sslyze {ss.wall:.1f} s "
              f"({ss.wall / max(pr.wall, 1e-6):.1f}x faster; target faster: "
              f"{_met(pr.wall < ss.wall)}); {fewer:.1f}x fewer connections (target >= "
              f"{CONN_TARGET:g}x: {_met(fewer >= CONN_TARGET)})")
    print(f"\nLoad average (1, 5 min): {load0[0]:.2f}, {load0[1]:.2f} before, "
          f"{load1[0]:.2f}, {load1[1]:.2f} after; {os.cpu_count()} CPUs.")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=2000, help="(a): fleet size (2000)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="(a): fleet sizes for the coordinator's RSS (200,1000,2000)")
    ap.add_argument("--rounds", type=int, default=9,
                    help="(a): rounds of the one-core in-process/agent pair, interleaved "
                    "(9: one round moves by up to +-20%% on a shared machine)")
    ap.add_argument("--both-rounds", type=int, default=2,
                    help="(a): rounds of the two-core pair, within the first --rounds (2)")
    ap.add_argument("--policy-endpoints", type=int, default=200,
                    help="(b): endpoints of the policy inventory (200)")
    ap.add_argument("--repeat", type=int, default=1, help="(b): runs of each tool (1)")
    ap.add_argument("--only", choices=("a", "b"), help="run one part only")
    ap.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                    help=f"(a): the agents' runs' --shard-size ({DEFAULT_SHARD_SIZE})")
    ap.add_argument("--one-core-only", action="store_true",
                    help="(a): only the pinned one-core pair (no both-cores pair); with "
                    "--sizes '' no fleet-size runs either")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if not 1 <= args.endpoints <= MAX_ENDPOINTS or any(
            not 1 <= s <= args.endpoints for s in sizes):
        ap.error(f"--endpoints 1-{MAX_ENDPOINTS}, --sizes each 1-endpoints")
    if not 1 <= args.policy_endpoints <= 1000 or not 1 <= args.repeat <= 5 or not (
            1 <= args.rounds <= 15) or not 0 <= args.both_rounds <= 15:
        ap.error("--policy-endpoints 1-1000, --repeat 1-5, --rounds 1-15, "
                 "--both-rounds 0-15")
    if not 1 <= args.shard_size <= MAX_SHARD_SIZE:
        ap.error(f"--shard-size 1-{MAX_SHARD_SIZE}")
    SHARD["size"] = args.shard_size
    for b in ("nginx", "redis-server", "taskset", "ss"):
        if shutil.which(b) is None:
            print(f"skipped: needs `{b}` (make setup)")
            return 0
    if stream_module_path() is None:
        print("skipped: nginx has no stream module (apt-get install libnginx-mod-stream)")
        return 0
    with tempfile.TemporaryDirectory(prefix="prb-bench-fleet-") as d:
        if args.only in (None, "a"):
            bench_overhead(Path(d), args.endpoints, sizes, args.rounds, args.both_rounds,
                           args.one_core_only)
        if args.only in (None, "b"):
            bench_policy(Path(d), args.policy_endpoints, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
