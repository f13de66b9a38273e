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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers.misbehaving import SilentReader, raise_nofile_limit  # noqa: E402
from tests.peers.nginx_server import NginxServer  # noqa: E402
from tests.peers.pki import make_pki  # noqa: E402

PY = sys.executable


def measure(argv: list[str]) -> tuple[float, int, int, str]:
    """Run argv in a fresh helper so its peak RSS is its own: (wall s, rss kB, rc, stdout)."""
    code = (
        "import json,resource,subprocess,sys,time;"
        "t=time.monotonic();p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "w=time.monotonic()-t;"
        "print(json.dumps({'wall':w,'rss':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
        "'rc':p.returncode,'out':p.stdout[-20000:],'err':p.stderr[-2000:]}))"
    )
    res = subprocess.run([PY, "-c", code, *argv], capture_output=True, text=True, check=True)
    d = json.loads(res.stdout)
    if d["rc"] not in (0,):
        print(f"  ! {' '.join(argv[:4])}... exited {d['rc']}: {d['err'].strip()[-300:]}")
    return d["wall"], d["rss"], d["rc"], d["out"]


def bench_rate(attempts: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        with NginxServer(pki, cert="ecdsa", protocols="TLSv1.2 TLSv1.3",
                         worker_processes=1) as ngx:
            target = f"127.0.0.1:{ngx.port}"
            rows = []
            for profile in ("tls1.3-only", "tls1.2-only"):
                cpu0, n0 = ngx.cpu_seconds(), len(ngx.sessions())
                jsonl = Path(tmp) / f"{profile}.jsonl"
                wall, rss, _rc, _ = measure([
                    PY, "-m", "prober", "probe", target, "-p", profile, "-n", str(attempts),
                    "-c", str(concurrency), "--per-target", str(concurrency), "-q",
                    "--jsonl", str(jsonl)])
                lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
                ok = sum(1 for x in lines if x["outcome"] == "ok")
                first = min(x["started_at"] for x in lines)
                last = max(x["started_at"] + (x["timings_ms"]["total"] or 0) / 1000
                           for x in lines)
                time.sleep(0.3)
                cpu = ngx.cpu_seconds() - cpu0
                sessions = len(ngx.sessions()) - n0
                rows.append((f"prober probe -p {profile}", attempts, ok, wall,
                             attempts / (last - first), attempts / wall, sessions,
                             cpu / max(sessions, 1) * 1e3, rss))
            cpu0, n0 = ngx.cpu_seconds(), len(ngx.sessions())
            wall, rss, _rc, _ = measure([PY, "-m", "sslyze", "--sslv2", "--sslv3", "--tlsv1",
                                         "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", target])
            time.sleep(0.5)
            scan = ngx.sessions()[n0:]
            sessions = len(scan)
            cpu = ngx.cpu_seconds() - cpu0
            span = max(s.msec for s in scan) - min(s.msec for s in scan)
            rows.append(("sslyze full cipher-suite scan", sessions, None, wall, sessions / span,
                         sessions / wall, sessions, cpu / max(sessions, 1) * 1e3, rss))
        from tabulate import tabulate

        print("\n## Handshake rate against one nginx (ECDSA P-256, TLS 1.2 + 1.3, 1 worker)\n")
        print(tabulate(
            [[r[0], r[1], "" if r[2] is None else r[2], f"{r[3]:.2f}",
              "" if r[4] is None else f"{r[4]:.0f}", f"{r[5]:.0f}", r[6], f"{r[7]:.3f}",
              f"{r[8] / 1024:.0f}"] for r in rows],
            headers=["run", "attempts", "ok", "wall s", "attempts/s in run",
                     "conn/s whole process", "server sessions", "nginx CPU ms/handshake",
                     "peak RSS MB"], tablefmt="github"))
        prober_rate = max(r[4] or 0 for r in rows[:-1])
        sslyze_rate = rows[-1][4] or 0.0
        limit = 1000 / max(rows[0][7], 1e-6)
        print(f"\nIn-run rates (from the server's session log for sslyze, from the attempts' "
              f"own timestamps for prober): prober {prober_rate:.0f} attempts/s vs sslyze "
              f"{sslyze_rate:.0f} conn/s "
              f"= {prober_rate / max(sslyze_rate, 1e-6):.1f}x (target 4x); one nginx worker "
              f"could serve ~{limit:.0f} TLS 1.3 handshakes/s at the CPU cost measured.")


def bench_memory(in_flight: int) -> None:
    raise_nofile_limit(in_flight * 2 + 512)
    with SilentReader(backlog=in_flight) as silent:
        wall, rss, rc, _ = measure([
            PY, "-m", "prober", "probe", f"127.0.0.1:{silent.port}", "-p", "tls1.2-only",
            "-n", str(in_flight), "-c", str(in_flight), "--per-target", str(in_flight),
            "--timeout", "5", "-q", "--json", os.devnull])
        peak_open = silent.open_connections
    print(f"\n## {in_flight} attempts in flight against a silent listener\n")
    print(f"peak RSS {rss / 1024:.0f} MB (target < 300 MB), wall {wall:.1f} s, rc {rc}, "
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
