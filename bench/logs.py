"""Benchmark of `prober logs` on ALB connection logs.

    .venv/bin/python bench/logs.py [--lines 1000000] [--files 10] [--keep DIR]

Writes LINES connection-log lines (a realistic mix: mostly TLS 1.3 and TLS 1.2 AEAD
suites, some legacy clients refused with Failed:UnmappedConnectionError, a plain-HTTP
listener, mTLS failures, IPv6 clients, a few corrupt lines) into FILES files, every
other one gzip-compressed as AWS delivers them, then runs `prober logs` on all of them
in a fresh process and prints its wall time and peak RSS. Target: under 10 s and
200 MB for 1 M lines. Figures are printed, never asserted: this is a measurement.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# (weight, tls_protocol, tls_cipher, latency?, tls_verify_status)
MIX = (
    (52, "TLSv1.3", "TLS_AES_128_GCM_SHA256", True, "Success"),
    (9, "TLSv1.3", "TLS_AES_256_GCM_SHA384", True, "Success"),
    (3, "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256", True, "Success"),
    (19, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", True, "Success"),
    (5, "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", True, "Success"),
    (3, "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", True, "Success"),
    (2, "TLSv1.2", "ECDHE-RSA-AES256-SHA", False, "Failed:UnmappedConnectionError"),
    (2, "-", "-", False, "Failed:UnmappedConnectionError"),
    (1, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", False, "Failed:ClientCertUntrusted"),
    (4, "-", "-", False, "-"),  # plain-HTTP listener
)
CORRUPT_EVERY = 50_000


def client_pool(rng: random.Random, n: int) -> list[str]:
    pool = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
            f"{rng.randint(1, 254)}" for _ in range(n - n // 20)]
    pool += [f"2001:db8:{rng.randint(0, 0xffff):x}::{rng.randint(1, 0xffff):x}"
             for _ in range(n // 20)]
    return pool


def generate(out_dir: Path, lines: int, files: int, seed: int = 6) -> list[Path]:
    rng = random.Random(seed)
    clients = client_pool(rng, 20_000)
    # a few heavy clients (NAT gateways, crawlers) and a long tail, as in real logs
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(clients))]
    mix_w = [m[0] for m in MIX]
    per_file = lines // files
    paths = []
    n = 0
    for i in range(files):
        count = per_file if i < files - 1 else lines - per_file * (files - 1)
        ips = rng.choices(clients, weights, k=count)
        kinds = rng.choices(MIX, mix_w, k=count)
        rows = []
        for ip, (_w, proto, cipher, ok, status) in zip(ips, kinds, strict=True):
            n += 1
            if n % CORRUPT_EVERY == 0:
                rows.append("2024-03-30T18:14:0\x00 garbage-after-a-crash")
                continue
            ts = f"2024-03-30T{18 + i // 6:02d}:{(i * 5) % 60:02d}:{n % 60:02d}.{n % 1000000:06d}Z"
            latency = f"{rng.random() * 0.05:.3f}" if ok else "-"
            port = "80" if status == "-" else "443"
            rows.append(f'{ts} {ip} {rng.randint(1024, 65535)} {port} {proto} {cipher} '
                        f'{latency} "-" - - {status} TID_{n:032x} - '
                        f'app/my-loadbalancer/50dc6c495c0c9188 10.0.1.{25 + i % 3}')
        text = ("\n".join(rows) + "\n").encode()
        name = f"conn_log_123456789012_elasticloadbalancing_us-east-2_app.my-lb_{i:02d}.log"
        if i % 2 == 0:
            path = out_dir / (name + ".gz")
            path.write_bytes(gzip.compress(text, compresslevel=6))
        else:
            path = out_dir / name
            path.write_bytes(text)
        paths.append(path)
    return paths


def measure(argv: list[str]) -> dict[str, Any]:
    """Run argv in a fresh helper so its peak RSS is its own."""
    code = (
        "import json,resource,subprocess,sys,time;"
        "t=time.monotonic();p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "w=time.monotonic()-t;"
        "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps({'wall':w,'cpu':u.ru_utime+u.ru_stime,'rss_kb':u.ru_maxrss,"
        "'rc':p.returncode,'out':p.stdout,'err':p.stderr[-2000:]}))"
    )
    res = subprocess.run([PY, "-c", code, *argv], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(res.stdout)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--keep", metavar="DIR", help="write the logs here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="prb-bench-logs-") as tmp:
        out_dir = Path(args.keep or tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        paths = generate(out_dir, args.lines, args.files)
        size = sum(p.stat().st_size for p in paths)
        print(f"generated {args.lines:,} ALB connection-log lines in {len(paths)} files "
              f"({sum(p.suffix == '.gz' for p in paths)} gzip, {size / 1e6:.0f} MB on disk) "
              f"in {time.monotonic() - t0:.1f} s")
        r = measure([PY, "-m", "prober", "logs", *map(str, paths), "--top", "5"])
        wall, cpu, rss = float(r["wall"]), float(r["cpu"]), int(r["rss_kb"])
        # CPU time beside wall time: on a busy machine the two part ways
        print(f"prober logs: wall {wall:.2f} s ({args.lines / wall:,.0f} lines/s), "
              f"CPU {cpu:.2f} s, peak RSS {rss / 1024:.0f} MB "
              f"(target: < 10 s, < 200 MB), exit {r['rc']}")
        if r["rc"] != 0:
            print(str(r["err"]).strip())
        else:
            print("\n".join(str(r["out"]).splitlines()[:2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
