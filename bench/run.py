"""Benchmarks, side by side with the peer tools, on servers started here (loopback only).

    make bench            # or: .venv/bin/python bench/run.py [--attempts N]

1. Handshake rate: `prober probe` (ClientHello to complete server flight) against one
   local nginx (ECDSA P-256, TLS 1.2 + 1.3), beside the connection rate sslyze reaches in
   its own full cipher-suite scan of the same server in the same run, beside the
   server's own limit (nginx CPU seconds per handshake, from /proc).
2. Memory: peak RSS of `prober probe` holding 5,000 attempts in flight against a silent
   listener.
Figures are printed, never asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers.misbehaving import SilentReader, raise_nofile_limit  # noqa: E402
from tests.peers.nginx_server import NginxServer, NginxSession  # noqa: E402
from tests.peers.pki import make_pki  # noqa: E402

PY = sys.executable


def measure(argv: list[str]) -> Run:
    """Run argv in a fresh helper so that its peak RSS and CPU time are its own."""
    code = (
        "import json,resource,subprocess,sys,time;"
        "t=time.monotonic();p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "w=time.monotonic()-t;"
        "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps({'wall':w,'rss':u.ru_maxrss,'cpu':u.ru_utime+u.ru_stime,"
        "'rc':p.returncode,'out':p.stdout[-20000:],'err':p.stderr[-2000:]}))"
    )
    res = subprocess.run([PY, "-c", code, *argv], capture_output=True, text=True, check=True)
    d = json.loads(res.stdout)
    if d["rc"] not in (0,):
        print(f"  ! {' '.join(argv[:4])}... exited {d['rc']}: {d['err'].strip()[-300:]}")
    return Run(d["wall"], d["rss"], d["cpu"], d["rc"], d["out"])


@dataclass
class Run:
    wall: float
    rss_kb: int
    cpu_s: float  # user + system of the process, start-up included
    rc: int
    out: str


@dataclass
class Row:
    run: str
    connections: int
    ok: int | None
    wall: float
    in_run: float  # connections/s between the first and the last connection
    client_cpu_ms: float | None  # per connection, start-up excluded where known
    server_cpu_ms: float  # nginx CPU per connection
    rss_kb: int

    @property
    def ceiling(self) -> float:
        """Connections/s one nginx worker could serve at the CPU cost measured."""
        return 1000 / max(self.server_cpu_ms, 1e-6)


class ServerCost:
    """The nginx sessions and worker CPU from here on: what one run cost the server."""

    def __init__(self, ngx: NginxServer) -> None:
        self.ngx, self.cpu0, self.n0 = ngx, ngx.cpu_seconds(), len(ngx.sessions())

    def sessions(self) -> list[NginxSession]:
        return self.ngx.sessions()[self.n0:]

    def per_session_ms(self) -> float:
        return (self.ngx.cpu_seconds() - self.cpu0) / max(len(self.sessions()), 1) * 1e3


def _startup_cpu() -> float:
    """CPU seconds `prober probe` spends before and after its attempts (imports, set-up,
    one attempt), taken off the runs' totals so that the per-attempt cost is the loop's."""
    with SilentReader() as silent:
        run = measure([PY, "-m", "prober", "probe", f"127.0.0.1:{silent.port}", "-p",
                       "tls1.2-only", "--timeout", "0.01", "-q"])
    return run.cpu_s


def bench_rate(attempts: int, concurrency: int) -> None:
    startup = _startup_cpu()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        with NginxServer(pki, cert="ecdsa", protocols="TLSv1.2 TLSv1.3",
                         worker_processes=1) as ngx:
            target = f"127.0.0.1:{ngx.port}"
            flight_bytes = 0  # of the TLS 1.2 server flight, for the bare client below
            for profile in ("tls1.3-only", "tls1.2-only"):
                cost = ServerCost(ngx)
                jsonl = Path(tmp) / f"{profile}.jsonl"
                run = measure([
                    PY, "-m", "prober", "probe", target, "-p", profile, "-n", str(attempts),
                    "-c", str(concurrency), "--per-target", str(concurrency), "-q",
                    "--jsonl", str(jsonl)])
                lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
                ok = sum(1 for x in lines if x["outcome"] == "ok")
                first = min(x["started_at"] for x in lines)
                last = max(x["started_at"] + (x["timings_ms"]["total"] or 0) / 1000
                           for x in lines)
                if profile == "tls1.2-only":
                    flight_bytes = min(x.get("server_bytes", 0) for x in lines)
                time.sleep(0.3)
                rows.append(Row(f"prober probe -p {profile}", attempts, ok, run.wall,
                                attempts / (last - first),
                                (run.cpu_s - startup) / attempts * 1e3,
                                cost.per_session_ms(), run.rss_kb))
            # the same TLS 1.2 exchange by the barest asyncio client (no parsing, no
            # records, no TCP_INFO): what any Python prober pays for the I/O alone
            cost = ServerCost(ngx)
            run = measure([PY, str(Path(__file__).with_name("bare_client.py")), "127.0.0.1",
                           str(ngx.port), str(attempts), str(concurrency), str(flight_bytes)])
            bare = json.loads(run.out)
            time.sleep(0.3)
            rows.append(Row("bare asyncio client, tls1.2-only (floor)", attempts, bare["ok"],
                            run.wall, bare["rate"], bare["cpu_s"] / attempts * 1e3,
                            cost.per_session_ms(), run.rss_kb))
            cost = ServerCost(ngx)
            run = measure([PY, "-m", "sslyze", "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1",
                           "--tlsv1_2", "--tlsv1_3", target])
            time.sleep(0.5)
            scan = cost.sessions()
            span = max(x.msec for x in scan) - min(x.msec for x in scan)
            rows.append(Row("sslyze full cipher-suite scan", len(scan), None, run.wall,
                            len(scan) / span, None, cost.per_session_ms(), run.rss_kb))
    _print_rate(rows)


def _print_rate(rows: list[Row]) -> None:
    from tabulate import tabulate

    print("\n## Handshake rate against one nginx (ECDSA P-256, TLS 1.2 + 1.3, 1 worker)\n")
    print(tabulate(
        [[r.run, r.connections, "" if r.ok is None else r.ok, f"{r.wall:.2f}",
          f"{r.in_run:.0f}", f"{r.connections / r.wall:.0f}",
          "" if r.client_cpu_ms is None else f"{r.client_cpu_ms:.3f}",
          f"{r.server_cpu_ms:.3f}", f"{r.ceiling:.0f}",
          f"{r.rss_kb / 1024:.0f}"] for r in rows],
        headers=["run", "connections", "ok", "wall s", "conn/s in run",
                 "conn/s whole process", "client CPU ms/conn", "nginx CPU ms/conn",
                 "nginx ceiling conn/s", "peak RSS MB"], tablefmt="github"))
    prober = [r for r in rows if r.run.startswith("prober")]
    sslyze = rows[-1]
    best = max(prober, key=lambda r: r.in_run)
    print(f"\nIn-run rates (sslyze from the server's session log, prober from the attempts' "
          f"own timestamps): prober {best.in_run:.0f} attempts/s ({best.run.split()[-1]}) vs "
          f"sslyze {sslyze.in_run:.0f} conn/s = {best.in_run / max(sslyze.in_run, 1e-6):.1f}x "
          f"(target 4x); whole process: {best.connections / best.wall:.0f} vs "
          f"{sslyze.connections / sslyze.wall:.0f} conn/s = "
          f"{best.connections / best.wall / max(sslyze.connections / sslyze.wall, 1e-6):.1f}x.")
    for r in prober:
        print(f"{r.run}: {r.in_run / r.ceiling:.0%} of what the nginx worker could serve at "
              f"its measured cost ({r.ceiling:.0f}/s).")


def bench_memory(in_flight: int) -> None:
    raise_nofile_limit(in_flight * 2 + 512)
    with SilentReader(backlog=in_flight) as silent:
        run = measure([
            PY, "-m", "prober", "probe", f"127.0.0.1:{silent.port}", "-p", "tls1.2-only",
            "-n", str(in_flight), "-c", str(in_flight), "--per-target", str(in_flight),
            "--timeout", "5", "-q", "--json", os.devnull])
        peak_open = silent.open_connections
    print(f"\n## {in_flight} attempts in flight against a silent listener\n")
    print(f"peak RSS {run.rss_kb / 1024:.0f} MB (target < 300 MB), wall {run.wall:.1f} s, "
          f"rc {run.rc}, "
          f"listener connections still open at the end: {peak_open}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--in-flight", type=int, default=5000)
    args = ap.parse_args()
    bench_rate(args.attempts, args.concurrency)
    bench_memory(args.in_flight)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
