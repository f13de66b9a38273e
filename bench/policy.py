"""`prober policy` beside sslyze's full cipher-suite scan and nmap's ssl-enum-ciphers, on
the same nginx servers in the same run (root only: network namespaces).

    make bench            # or: .venv/bin/python bench/policy.py [--repeat N]

The servers are the nginx cases of tests/policy/test_scan.py (ELBSecurityPolicy-2016-08,
ELBSecurityPolicy-FS-1-2-Res-2020-10, ELBSecurityPolicy-TLS13-1-2-2021-06, Mozilla
intermediate; cipher strings from the packaged catalog), started by that module's own
``start()`` inside a private network namespace; the tools run in a second namespace and
reach them over a veth, where nftables counts the SYNs (bench/netns_counter.py).

Per server and tool: whole-process wall time (median of --repeat runs, interleaved so
load drifts hit every tool alike), TCP connections (SYNs counted at the server), and
whether the accepted versions and suite sets, and the order, agree with the ground
truth: OpenSSL's own expansion of the configured string filtered by what the server's
certificates can serve (tests/policy/test_scan.py ``openssl_order``). For prober also its
suite-enumeration connections against the remove-the-winner ideal (accepted suites + 1
per version) and its other connections by purpose, from its JSON, and where its wall
time goes (start-up, scan, after the scan).
``--compare DIR`` also runs ``prober policy`` from another tree (e.g. a copy before a
change), in the same run and on the same servers, for before/after figures.
Figures are printed, never asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.netns_counter import SynCounterNet, why_unavailable  # noqa: E402
from prober.wire import registry as reg  # noqa: E402
from tests.peers import NginxServer, make_pki, stream_module_path  # noqa: E402

PY = sys.executable
POLICIES = ("ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-FS-1-2-Res-2020-10",
            "ELBSecurityPolicy-TLS13-1-2-2021-06", "mozilla-intermediate-5.7")
PROBER, SSLYZE, NMAP = "prober policy", "sslyze", "nmap"
TOOLS = (PROBER, SSLYZE, NMAP)
SUITE_TARGET = 1.25  # suite-enumeration connections / ideal
# sslyze's JSON field per version
_SSLYZE_FIELD = {"SSLv2": "ssl_2_0", "SSLv3": "ssl_3_0", "TLSv1.0": "tls_1_0",
                 "TLSv1.1": "tls_1_1", "TLSv1.2": "tls_1_2", "TLSv1.3": "tls_1_3"}


# -- the servers --------------------------------------------------------------------------

@dataclass
class Server:
    case: Any  # tests.policy.test_scan.Case
    srv: NginxServer
    expected: dict[str, list[str]]  # version -> IANA names in the server's order
    server_order: bool

    @property
    def label(self) -> str:
        return str(self.case.policy)

    @property
    def ideal(self) -> int:
        """Remove-the-winner: one hello per accepted suite plus the refused one, per
        accepted version."""
        return sum(len(s) + 1 for s in self.expected.values())


class _Request:
    """Stands in for pytest's ``request`` so tests/policy/test_scan.py's own ``start()``
    configures the servers (same configuration as the tests, nothing copied); its nginx
    factory binds the server namespace's address."""

    def __init__(self, factory: Callable[..., NginxServer]) -> None:
        self._factory = factory

    def getfixturevalue(self, name: str) -> Callable[..., NginxServer]:
        if name != "nginx_factory":
            raise LookupError(f"bench/policy.py only starts nginx servers, not {name}")
        return self._factory


def start_servers(net: SynCounterNet, tmp: Path, stack: contextlib.ExitStack) -> list[Server]:
    from tests.policy.test_scan import CASES, openssl_order, start

    pki = make_pki(tmp / "pki")
    dhparam = tmp / "ffdhe2048.pem"  # what the tests' dhparam fixture makes
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                    "group:ffdhe2048", "-out", str(dhparam)], check=True, capture_output=True,
                   timeout=60)

    def factory(**kwargs: Any) -> NginxServer:
        srv = NginxServer(pki, host=net.server_addr, **kwargs)
        stack.callback(srv.stop)  # stopped even when a later start fails
        return srv.start()

    out = []
    for name in POLICIES:
        case = next((c for c in CASES if c.server == "nginx" and c.policy == name), None)
        if case is None:
            print(f"  ! tests/policy/test_scan.py has no nginx case for {name}: skipped")
            continue
        with net.in_server():
            srv = start(case, cast(Any, _Request(factory)), dhparam)
        net.watch(srv.port)
        expected = {}
        for v in case.versions:
            string = case.tls13_string if v == "TLSv1.3" else case.cipher_string
            expected[v] = openssl_order(string, v, case.cert, case.dh)
        out.append(Server(case, srv, expected, bool(case.server_order)))
    return out


# -- running a tool -----------------------------------------------------------------------

@dataclass
class Run:
    wall: float
    cpu: float  # user + sys of the process (and children it waited for)
    syns: int
    rc: int
    stdout: str
    stderr: str
    json: dict[str, Any] | None = None
    spawned: float = 0.0  # epoch seconds, to place the attempts' own timestamps


def prober_split(run: Run) -> tuple[float, float, float] | None:
    """(start-up until the first connection, the scan, what follows it until exit) of a
    prober run, from the attempts' own timestamps in its JSON."""
    attempts = (run.json or {}).get("attempts") or []
    if not attempts:
        return None
    first = min(a["started_at"] for a in attempts)
    last = max(a["started_at"] + (a["timings_ms"]["total"] or 0) / 1000 for a in attempts)
    return first - run.spawned, last - first, run.spawned + run.wall - last


@dataclass
class Result:
    tool: str
    runs: list[Run] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def best(self) -> float:
        return min(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def syns(self) -> int:
        return int(statistics.median(r.syns for r in self.runs))

    @property
    def last(self) -> Run:
        return self.runs[-1]


def kind_of(tool: str) -> str:
    """``prober policy @DIR`` (a --compare tree) runs and is read like prober policy."""
    return PROBER if tool.startswith(PROBER) else tool


def cwd_of(tool: str) -> Path:
    # `python -m prober` imports the package from its working directory first
    return Path(tool.split(" @", 1)[1]) if " @" in tool else REPO


def argv_for(tool: str, addr: str, port: int, out: Path) -> list[str]:
    target = f"{addr}:{port}"
    tool = kind_of(tool)
    if tool == PROBER:
        return [PY, "-m", "prober", "policy", target, "--json", str(out)]
    if tool == SSLYZE:
        return [PY, "-m", "sslyze", "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2",
                "--tlsv1_3", target, f"--json_out={out}"]
    return ["nmap", "-n", "-p", str(port), "--script", "+ssl-enum-ciphers", addr]


def run_tool(net: SynCounterNet, tool: str, server: Server, out: Path, timeout: float) -> Run:
    argv = argv_for(tool, net.server_addr, server.srv.port, out)
    out.unlink(missing_ok=True)
    before = net.syns(server.srv.port)
    with net.in_client():  # the process (and all it starts) lives in the client namespace
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        spawned = time.time()
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               check=False, cwd=cwd_of(tool))
            rc, stdout, stderr = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, stdout, stderr = -1, _text(e.stdout), f"timed out after {timeout:.0f} s"
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    syns = net.syns(server.srv.port) - before
    doc = None
    if out.is_file():
        with contextlib.suppress(ValueError):
            doc = json.loads(out.read_text())
    if rc != 0:
        print(f"  ! {tool} on {server.label} exited {rc}: {stderr.strip()[-300:]}")
    return Run(wall, cpu, syns, rc, stdout, stderr, doc, spawned)


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode(errors="replace")


# -- what each tool says it found ---------------------------------------------------------

@dataclass
class Found:
    suites: dict[str, list[str]]  # version -> IANA names, in the tool's order
    order: dict[str, str]  # version -> "server" | "client" | "" (not reported)
    error: str = ""


def _iana(name: str) -> str:
    # nmap names TLS 1.3 suites TLS_AKE_WITH_<AEAD>_<HASH>
    name = name.replace("TLS_AKE_WITH_", "TLS_", 1)
    try:
        return reg.suite_name(reg.suite_value(name))
    except KeyError:
        return name


def found_prober(run: Run) -> Found:
    doc = run.json
    if doc is None:
        return Found({}, {}, "no JSON")
    pol = doc["policy"]
    order = {}
    for v in pol["versions"]:
        so = pol["server_order"].get(v)
        order[v] = "server" if so else "client" if so is False else ""
    err = "" if doc.get("reliable") else "not reliable: " + "; ".join(doc.get("warnings", []))
    return Found({v: list(pol["suites"][v]) for v in pol["versions"]}, order, err)


def found_sslyze(run: Run) -> Found:
    doc = run.json
    if doc is None:
        return Found({}, {}, "no JSON")
    res = doc["server_scan_results"][0]
    if res.get("scan_status") != "COMPLETED":
        return Found({}, {}, f"scan {res.get('scan_status')}")
    suites: dict[str, list[str]] = {}
    for v, f in _SSLYZE_FIELD.items():
        attempt = res["scan_result"][f"{f}_cipher_suites"]
        if attempt.get("result") is None:
            return Found(suites, {}, f"{v}: {attempt.get('status')}")
        names = [_iana(a["cipher_suite"]["name"])
                 for a in attempt["result"]["accepted_cipher_suites"]]
        if names:
            suites[v] = names
    return Found(suites, {})  # sslyze reports no order


def found_nmap(run: Run) -> Found:
    suites: dict[str, list[str]] = {}
    order: dict[str, str] = {}
    version = None
    for line in run.stdout.splitlines():
        m = re.match(r"\|\s{3}(SSLv[23]|TLSv1\.[0-3]):\s*$", line)
        if m:
            version = m.group(1)
            suites[version] = []
            continue
        if version is None:
            continue
        m = re.match(r"\|\s{7}(\w+) \(.*\) - \S+$", line)
        if m:
            suites[version].append(_iana(m.group(1)))
            continue
        m = re.match(r"\|\s{5}cipher preference: (\w+)", line)
        if m:
            order[version] = m.group(1)
    if "ssl-enum-ciphers" not in run.stdout:
        return Found({}, {}, "no ssl-enum-ciphers output")
    return Found({v: s for v, s in suites.items() if s}, order)


FINDERS = {PROBER: found_prober, SSLYZE: found_sslyze, NMAP: found_nmap}


def judge_sets(server: Server, f: Found) -> str:
    """``yes`` or what differs from the ground truth (versions and suite sets)."""
    if f.error and not f.suites:
        return f"no: {f.error}"
    problems = []
    want, got = set(server.expected), set(f.suites)
    if want != got:
        problems.append(f"versions {sorted(got)} (want {sorted(want)})")
    for v in sorted(want & got):
        missing = [s for s in server.expected[v] if s not in f.suites[v]]
        extra = [s for s in f.suites[v] if s not in server.expected[v]]
        if missing:
            problems.append(f"{v} missing {len(missing)} ({', '.join(missing[:3])}"
                            f"{', …' if len(missing) > 3 else ''})")
        if extra:
            problems.append(f"{v} extra {', '.join(extra[:3])}")
    if f.error:
        problems.append(f.error)
    return "yes" if not problems else "no: " + "; ".join(problems)


def judge_order(server: Server, f: Found, tool: str) -> str:
    """``yes`` when the tool reports the server's order (or that the client's order is
    followed) as configured, ``n/a`` when it reports no order."""
    if kind_of(tool) == SSLYZE:
        return "n/a (not reported)"
    problems = []
    for v, want in server.expected.items():
        got = f.suites.get(v)
        if got is None or sorted(got) != sorted(want):
            continue  # judged by the sets column
        said = f.order.get(v, "")
        if len(want) < 2:
            continue  # one suite: no order to tell
        if server.server_order:
            if said != "server":
                problems.append(f"{v}: says {said or 'nothing'} order")
            elif got != want:
                i = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
                problems.append(f"{v}: #{i + 1} {got[i]} (want {want[i]})")
        elif said != "client":
            problems.append(f"{v}: says {said or 'nothing'}, the server follows the client")
    return "yes" if not problems else "no: " + "; ".join(problems)


# -- the report ---------------------------------------------------------------------------

def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(servers: list[Server], results: dict[tuple[int, str], Result], repeat: int,
           tools: list[str]) -> None:
    from tabulate import tabulate

    summary = []
    for s in servers:
        case = s.case
        n = sum(len(v) for v in s.expected.values())
        print(f"\n## nginx {s.label}: {' '.join(case.versions)}, cert {case.cert}, "
              f"{'server' if s.server_order else 'client'} order; ground truth {n} suites, "
              f"ideal {s.ideal} suite connections\n")
        rows = []
        for tool in tools:
            r = results[(s.srv.port, tool)]
            f = FINDERS[kind_of(tool)](r.last)
            syn_set = sorted({x.syns for x in r.runs})
            rows.append([tool, f"{r.wall:.2f}", f"{r.best:.2f}", f"{r.cpu:.2f}",
                         str(r.syns) if len(syn_set) == 1 else f"{r.syns} (runs: {syn_set})",
                         judge_sets(s, f), judge_order(s, f, tool)])
        print(tabulate(rows, headers=["tool", f"wall s (median of {repeat})", "best",
                                      "CPU s", "TCP conns (SYNs)", "versions + sets = truth",
                                      "order = truth"], tablefmt="github"))
        pr, nm = results[(s.srv.port, PROBER)], results[(s.srv.port, NMAP)]
        conn = (pr.last.json or {}).get("connections") or {}
        suites = int(conn.get("suites", 0))
        ratio = suites / s.ideal if s.ideal else 0.0
        print(f"\nprober connections: suite enumeration {suites} vs ideal {s.ideal} "
              f"(= {ratio:.2f}x; target <= {SUITE_TARGET}x: {_met(ratio <= SUITE_TARGET)}); "
              f"JSON's own ideal {conn.get('ideal_suites', '?')}")
        print(f"  beside it: refused-version hellos {conn.get('versions', '?')}, groups "
              f"{conn.get('groups', '?')}, features/certificates/intolerance "
              f"{conn.get('extras', '?')}, sanity {conn.get('sanity', '?')}; total "
              f"{conn.get('total', '?')} in the JSON, {pr.syns} SYNs counted")
        splits = [x for x in map(prober_split, pr.runs) if x is not None]
        if splits:
            a, b, c = (statistics.median(x[i] for x in splits) for i in range(3))
            print(f"  prober's wall time (medians): start-up until the first connection "
                  f"{a:.2f} s, scan {b:.2f} s, naming + report + exit {c:.2f} s")
        print(f"prober wall {pr.wall:.2f} s vs nmap {nm.wall:.2f} s, median (target <= "
              f"nmap's: {_met(pr.wall <= nm.wall)}); best {pr.best:.2f} vs {nm.best:.2f} "
              f"({_met(pr.best <= nm.best)})")
        ss = results[(s.srv.port, SSLYZE)]
        summary.append([s.label, f"{pr.wall:.2f} / {pr.best:.2f}", f"{ss.wall:.2f} / {ss.best:.2f}",
                        f"{nm.wall:.2f} / {nm.best:.2f}", pr.syns, ss.syns, nm.syns,
                        f"{suites}/{s.ideal} = {ratio:.2f}x"])
    print("\n## Summary (wall s: median / best)\n")
    print(tabulate(summary, headers=["server (nginx)", "prober policy", "sslyze", "nmap",
                                     "prober SYNs", "sslyze SYNs", "nmap SYNs",
                                     "prober suite conns / ideal"], tablefmt="github"))
    print(f"\nTargets: prober's whole-process wall time <= nmap's on every server; suite "
          f"enumeration <= {SUITE_TARGET}x the ideal. Wall times include interpreter start "
          f"(prober and sslyze run from compiled bytecode); CPU s is user+sys of the tool's "
          f"process, which other load on the machine does not inflate.")


# -- main ---------------------------------------------------------------------------------

def preflight() -> str | None:
    reason = why_unavailable()
    if reason:
        return reason
    for b in ("nginx", "nmap", "openssl"):
        if shutil.which(b) is None:
            return f"needs `{b}` (make setup)"
    if stream_module_path() is None:
        return "nginx has no stream module (apt-get install libnginx-mod-stream)"
    return None


def compile_prober(tree: Path) -> None:
    """Bytecode for the prober package, as `pip install .` leaves it: with the editable
    install and PYTHONDONTWRITEBYTECODE set, every run would otherwise recompile all of
    prober from source (~0.1-0.2 s) and the wall times would measure that."""
    subprocess.run([PY, "-m", "compileall", "-q", str(tree / "prober")], check=False,
                   capture_output=True, timeout=120)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (e.g. make killed) unwinds like Ctrl-C: servers stop, namespaces go."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per tool and server (5)")
    ap.add_argument("--compare", action="append", default=[], metavar="DIR",
                    help="also run `prober policy` from another tree holding a prober "
                    "package (before/after figures in the same run); repeatable")
    ap.add_argument("--timeout", type=float, default=180.0,
                    help="kill a tool run after this many seconds (180)")
    args = ap.parse_args()
    if not 1 <= args.repeat <= 20:
        ap.error("--repeat must be 1-20")
    print("\n## prober policy vs sslyze vs nmap ssl-enum-ciphers (nginx, private netns)\n")
    reason = preflight()
    if reason:
        print(f"skipped: {reason}")
        return 0
    tools = [*TOOLS[:1], *(f"{PROBER} @{Path(d).resolve()}" for d in args.compare), *TOOLS[1:]]
    for tool in tools:
        compile_prober(cwd_of(tool))
    results: dict[tuple[int, str], Result] = {}
    with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="prb-bench-policy-") as d, \
            SynCounterNet() as net, contextlib.ExitStack() as stack:
        tmp = Path(d)
        servers = start_servers(net, tmp, stack)
        print(f"{len(servers)} nginx servers at {net.server_addr} (netns {net.server_ns}); "
              f"tools run from {net.client_addr} (netns {net.client_ns}); "
              f"{args.repeat} runs each, interleaved")
        load0 = os.getloadavg()[0]
        for rep in range(args.repeat):
            for s in servers:
                for i, tool in enumerate(tools):
                    out = tmp / f"{s.srv.port}-{i}-{rep}.json"
                    run = run_tool(net, tool, s, out, args.timeout)
                    results.setdefault((s.srv.port, tool), Result(tool)).runs.append(run)
        report(servers, results, args.repeat, tools)
        print(f"Load average (1 min) on this machine: {load0:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs: wall times "
              "are only comparable within one run.")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # servers and namespaces are gone already (context managers)
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
