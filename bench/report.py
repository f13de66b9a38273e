"""Benchmark of the HTML reports on 1,000-attempt runs.

    .venv/bin/python bench/report.py [--attempts 1000] [--keep DIR]

Starts `prober demo serve`, records a probe run of ATTEMPTS attempts (four profiles: ok,
RST, alert, and the silent listener's hang) and a diagnose run of about as many (with
--capture when root, so every attempt carries its packets: the largest document), then
renders each report in this process five times and prints the size of the HTML and the
median render time. Target: under 2 MB and under 1 s. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _prober(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "prober", *args], check=True, env=ENV, cwd=REPO,
                   timeout=600, stdout=subprocess.DEVNULL)


def _serve(port_file: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "prober", "demo", "serve", "--port-file",
                             str(port_file)], env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_file.exists() or "SILENT" not in port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("prober demo serve did not start")
        time.sleep(0.1)
    return proc


def _browser_ms(page: Path) -> float | None:
    """How long headless Chromium takes to load and lay out the page (navigation timing),
    when chromium and chromedriver are installed."""
    try:
        from tests.report.browser import available, chromium
    except ImportError:
        return None
    if available() is not None:
        return None
    with chromium() as drv:
        drv.get(page.resolve().as_uri())
        ms: float = drv.execute_script(
            "const t = performance.getEntriesByType('navigation')[0];"
            "document.body.getBoundingClientRect(); return t.loadEventEnd - t.startTime;")
    return ms


def _measure(name: str, render: Callable[[dict[str, Any]], str], doc: dict[str, Any],
             out: Path) -> None:
    times = []
    html = ""
    for _ in range(5):
        t0 = time.perf_counter()
        html = render(doc)
        times.append(time.perf_counter() - t0)
    out.write_text(html)
    size = len(html.encode())
    shown = _browser_ms(out)
    print(f"{name:<34} {len(doc['attempts']):>6} attempts  {size / 1e6:6.2f} MB  "
          f"render median {statistics.median(times):.3f} s (best {min(times):.3f} s)  "
          + ("" if shown is None else f"Chromium load {shown:.0f} ms"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attempts", type=int, default=1000)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    from prober.diagnose.html import render as diagnose_html
    from prober.probe.html import render as probe_html

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        proc = _serve(work / "ports")
        try:
            ports = dict(line.split("=") for line in (work / "ports").read_text().split())
            front, silent = f"127.0.0.1:{ports['FRONT']}", f"127.0.0.1:{ports['SILENT']}"
            n = max(1, args.attempts // 4)
            _prober("probe", front, silent, "-p", "tls1.2-only", "-p", "tls1.1-only", "-t",
                    "0.3", "-n", str(n), "-c", "64", "--per-target", "32", "--json",
                    str(work / "probe.json"), "-q")
            capture = ["--capture"] if os.geteuid() == 0 else []
            _prober("diagnose", front, "-t", "1", "-n", str(min(1000, args.attempts - 30)),
                    *capture, "--json", str(work / "diagnose.json"), "-q")
        finally:
            proc.terminate()
            proc.wait(10)
        probe = json.loads((work / "probe.json").read_text())
        diag = json.loads((work / "diagnose.json").read_text())
        _measure("probe --html (2 endpoints)", probe_html, probe, work / "probe.html")
        _measure("diagnose --html" + (" --capture" if capture else ""), diagnose_html, diag,
                 work / "diagnose.html")


if __name__ == "__main__":
    main()
