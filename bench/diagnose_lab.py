"""`prober diagnose` against every scenario of the netns lab, timed, beside sslyze's scan of
the same targets from the same client (root only: network namespaces).

    .venv/bin/python bench/diagnose_lab.py [--scenarios a,b] [--no-sslyze] [--json FILE]

The lab is tests/lab (docs/lab.md), built once for the run. Each scenario is diagnosed
from the client where its cause shows (client2 for the outside-only ones), one at a
time, with the lab tests' options (``-t 2 --capture``; ``--idle-timeout 8`` on
idle-timeout, ``--rate 10`` with the server stopped for 1.5 s on flapping,
``--expect-issuer "prober lab CA"`` on intercepting-proxy); then sslyze
runs its default scan (``python -m sslyze NAME:443{ADDRESS}``) from the same client.
Per scenario: wall time of the whole process, attempts, the finding ids, and sslyze's
wall time and whether it could connect at all. sslyze answers another question (what a
server supports, not what is on the path), so its times are context, not a race: on
failing paths it mostly waits for its own timeouts. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab import Lab, Scenario  # noqa: E402

PY = sys.executable
DIAGNOSE_ARGS = ["-t", "2", "--capture"]
# interception shows from one vantage only when told the real issuer (docs/lab.md)
EXTRA = {"idle-timeout": ["--idle-timeout", "8"], "flapping": ["--rate", "10"],
         "intercepting-proxy": ["--expect-issuer", "prober lab CA"]}
RUN_TIMEOUT_S = 300.0


def vantage(s: Scenario) -> str:
    return "client2" if s.clients == ("client2",) else "client1"


def run_diagnose(lab: Lab, s: Scenario) -> dict[str, Any]:
    out = lab.workdir / f"bench-{s.name}.json"
    argv = [*lab.prober_argv(vantage(s)), "diagnose", s.name_target, *DIAGNOSE_ARGS,
            *EXTRA.get(s.name, []), "--json", str(out), "-q"]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if s.name == "flapping" and lab.flapper is not None:
        try:
            time.sleep(1.5)
            lab.flapper.down()
            time.sleep(1.5)
        finally:
            lab.flapper.up()
    try:
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        return {"wall_s": None, "error": "timeout"}
    wall = time.monotonic() - t0
    if proc.returncode != 0 or not out.exists():
        return {"wall_s": round(wall, 2), "error": err.strip()[-300:]}
    doc = json.loads(out.read_text())
    return {"wall_s": round(wall, 2), "attempts": len(doc["attempts"]),
            "findings": [f["id"] for f in doc["findings"] if f["confidence"] != "info"],
            "elapsed_s": doc.get("elapsed_s")}


def run_sslyze(lab: Lab, s: Scenario) -> dict[str, Any]:
    out = lab.workdir / f"bench-sslyze-{s.name}.json"
    argv = [*lab.exec_argv(vantage(s)), PY, "-m", "sslyze", "--quiet",
            f"--json_out={out}", f"{s.sni}:{s.port}{{{s.address}}}"]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"wall_s": None, "status": "timeout"}
    wall = time.monotonic() - t0
    status = f"exit {proc.returncode}"
    if out.exists():
        doc = json.loads(out.read_text())
        results = doc.get("server_scan_results") or [{}]
        status = str(results[0].get("scan_status") or results[0].get(
            "connectivity_status") or status)
        err = results[0].get("connectivity_error_trace")
        if err:
            status += f" ({str(err).splitlines()[-1][:60]})"
    return {"wall_s": round(wall, 2), "status": status}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    p.add_argument("--no-sslyze", action="store_true", help="time prober only")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.add_argument("--keep", metavar="DIR", help="copy every run's JSON document here")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/diagnose_lab.py: needs root (the lab's network namespaces)",
              file=sys.stderr)
        return 2
    from tabulate import tabulate

    rows: list[dict[str, Any]] = []
    with Lab() as lab:
        names = args.scenarios.split(",") if args.scenarios else list(lab.scenarios)
        for name in names:
            s = lab.scenario(name)
            row: dict[str, Any] = {"scenario": name, "vantage": vantage(s),
                                   "expected": s.finding, "diagnose": run_diagnose(lab, s)}
            if not args.no_sslyze:
                row["sslyze"] = run_sslyze(lab, s)
            rows.append(row)
            print(f"{name}: {row['diagnose'].get('wall_s')} s", file=sys.stderr, flush=True)
            if args.keep:
                keep = Path(args.keep)
                keep.mkdir(parents=True, exist_ok=True)
                for f in lab.workdir.glob(f"bench-*{name}.json"):
                    shutil.copy(f, keep / f.name)
    table = []
    for r in rows:
        d, z = r["diagnose"], r.get("sslyze", {})
        found = d.get("findings")
        table.append([r["scenario"], d.get("wall_s"), d.get("attempts"),
                      ", ".join(found) if found is not None else d.get("error", "")[:40],
                      "yes" if found is not None and ((r["expected"] is None and not found)
                                                      or r["expected"] in found) else "NO",
                      z.get("wall_s", "-"), z.get("status", "-")])
    total_d = sum(r["diagnose"].get("wall_s") or 0 for r in rows)
    total_z = sum((r.get("sslyze") or {}).get("wall_s") or 0 for r in rows)
    table.append(["total", round(total_d, 1), sum(r["diagnose"].get("attempts") or 0
                                                  for r in rows), "", "",
                  round(total_z, 1) if not args.no_sslyze else "-", ""])
    print(tabulate(table, headers=["scenario", "diagnose s", "attempts", "findings",
                                   "named", "sslyze s", "sslyze"],
                   tablefmt="plain", disable_numparse=True))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "total_diagnose_s": total_d,
                                               "total_sslyze_s": total_z}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
