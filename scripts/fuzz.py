"""Fuzz what reads hostile bytes: the server flight reader, the certificate description,
the capture import and the ClientHello importer (tests/fuzz/targets.py).

    python scripts/fuzz.py [TARGET...] [--cases N] [--seed S] [--engine seeded|atheris]
                           [--coverage] [--case I] [--json FILE]

``seeded`` (the default, and what CI runs through tests/fuzz/test_fuzz.py): N mutations
per target from a seeded generator, the same cases on every run.  ``atheris``: libFuzzer
through atheris, coverage-guided over the same structure-aware mutations (its input is
the stream of mutation choices), N runs per target.  Each target runs in a process of its
own; a problem is counted and the run goes on.  ``--coverage`` reports the line coverage
of prober/wire/serverflight.py reached by the flight target.  ``--case I`` reruns one
seeded case (a failure names its seed and case).  Exit 1 when any problem was found.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_NAMES = ("flight", "describe", "pcap", "hello")
FLIGHT_READER = "prober/wire/serverflight.py"


def scratch_dir() -> str:
    """A place for the capture files the pcap target writes: memory when there is some
    (/dev/shm: opening a file there costs a tenth of a disk's)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else (
        tempfile.gettempdir())


def run_seeded(target: str, cases: int, seed: int, first: int, coverage: bool
               ) -> dict[str, Any]:
    """One target in this process: its report (and coverage) as a dict."""
    cov = None
    if coverage:
        import coverage as coverage_mod

        # started before prober is imported: module-level lines count as run
        cov = coverage_mod.Coverage(include=[str(REPO / FLIGHT_READER)], data_file=None)
        cov.start()
    from tests.fuzz.targets import run

    with tempfile.TemporaryDirectory(dir=scratch_dir()) as d:
        report = run(target, cases, seed, Path(d), first=first)
    out: dict[str, Any] = {
        "target": target, "engine": "seeded", "seed": seed, "cases": report.cases,
        "seconds": round(report.seconds, 2),
        "rate_per_s": round(report.cases / max(report.seconds, 1e-9)),
        "problems": len(report.failures),
        "failures": [{"case": f.case, "problem": f.problem, "input": f.input.hex()}
                     for f in report.failures[:20]]}
    if cov is not None:
        cov.stop()
        analysis = cov.analysis2(str(REPO / FLIGHT_READER))
        statements, missing = len(analysis[1]), len(analysis[3])
        out["coverage"] = {"file": FLIGHT_READER, "statements": statements,
                           "missing": missing,
                           "percent": round(100 * (statements - missing) / statements, 1),
                           "missing_lines": analysis[4]}
    return out


def run_atheris(target: str, cases: int, seed: int, results: Path) -> None:
    """libFuzzer over the target, in this process; problems appended to ``results``
    (libFuzzer ends the process itself)."""
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

    # coverage feedback from prober's own code (instrumenting every library loaded,
    # cryptography and PyYAML included, costs minutes and slows every case)
    with atheris.instrument_imports(include=["prober"]):
        from tests.fuzz.mutate import FromFuzzer
        from tests.fuzz.targets import TARGETS

    t = TARGETS[target]
    scratch = Path(tempfile.mkdtemp(dir=scratch_dir()))
    state = t.seeds(scratch)
    count = [0]
    t0 = time.monotonic()

    def one(data: bytes) -> None:
        count[0] += 1
        try:
            _, problems = t.case(FromFuzzer(atheris.FuzzedDataProvider(data)), state)
        except Exception as e:
            problems = [f"uncaught {type(e).__name__}: {e}"]
        if problems or count[0] % 10_000 == 0 or count[0] == cases:
            with results.open("a") as fh:
                fh.write(json.dumps({"cases": count[0], "seconds": time.monotonic() - t0,
                                     "problems": problems, "input": data.hex()
                                     if problems else ""}) + "\n")

    atheris.Setup([sys.argv[0], f"-runs={cases}", f"-seed={seed or 1}", "-max_len=4096",
                   "-print_final_stats=1"], one)
    atheris.Fuzz()


def child(args: argparse.Namespace, target: str) -> dict[str, Any]:
    """Run one target in a process of its own; its summary."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "result.json"
        argv = [sys.executable, __file__, "--one", target, "--cases", str(args.cases),
                "--seed", str(args.seed), "--engine", args.engine, "--result", str(out)]
        if args.coverage and target == "flight":
            argv.append("--coverage")
        t0 = time.monotonic()
        proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        wall = time.monotonic() - t0
        if args.engine == "seeded":
            if not out.exists():
                return {"target": target, "error": proc.stderr[-2000:], "problems": 1}
            result: dict[str, Any] = json.loads(out.read_text())
            return result
        lines = [json.loads(line) for line in out.read_text().splitlines()] \
            if out.exists() else []
        problems = [p for line in lines for p in line["problems"]]
        done = max((line["cases"] for line in lines), default=0)
        fuzzing = max((line["seconds"] for line in lines), default=wall)
        return {"target": target, "engine": "atheris", "seed": args.seed, "cases": done,
                "seconds": round(wall, 1), "startup_s": round(wall - fuzzing, 1),
                "rate_per_s": round(done / max(fuzzing, 1e-9)),
                "problems": len(problems), "failures": problems[:20],
                "exit": proc.returncode,
                "libfuzzer": [x for x in proc.stderr.splitlines() if x.startswith("stat::")
                              or "DONE" in x][-8:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", default=list(TARGET_NAMES), metavar="TARGET",
                    help=f"of {', '.join(TARGET_NAMES)} (default all)")
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--engine", choices=("seeded", "atheris"), default="seeded")
    ap.add_argument("--coverage", action="store_true")
    ap.add_argument("--case", type=int, help="rerun this one seeded case and show it")
    ap.add_argument("--json", metavar="FILE", help="write the summaries as JSON")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    if args.one:  # the child: one target, here
        if args.engine == "atheris":
            run_atheris(args.one, args.cases, args.seed, Path(args.result))
            return 0
        res = run_seeded(args.one, args.cases, args.seed, 0, args.coverage)
        Path(args.result).write_text(json.dumps(res))
        return 0
    if args.case is not None:
        for target in args.targets:
            res = run_seeded(target, 1, args.seed, args.case, False)
            print(json.dumps(res, indent=1))
        return 0
    summaries = []
    for target in args.targets:
        res = child(args, target)
        summaries.append(res)
        cov = res.get("coverage")
        print(f"{target:9} {res.get('engine', '?'):8} {res.get('cases', 0):>9,} cases "
              f"{res.get('seconds', 0):>8.1f} s {res.get('rate_per_s', 0):>7,}/s "
              f"{res['problems']} problem(s)"
              + (f"; {cov['file']} line coverage {cov['percent']}%" if cov else ""),
              flush=True)
        for f in res.get("failures", [])[:3]:
            print(f"  {str(f)[:600]}")
        if res.get("error"):
            print(f"  the run failed: {res['error']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summaries, indent=1) + "\n")
    return 1 if any(s["problems"] for s in summaries) else 0


if __name__ == "__main__":
    raise SystemExit(main())
