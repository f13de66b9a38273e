"""A self-contained demo of field case 1 (DESIGN.md), on loopback only.

It rebuilds the case with nothing but this venv: an "ALB" whose security policy is
ELBSecurityPolicy-FS-1-2-Res-2020-10, read from the shipped policy catalog, and a
listener that swallows the ClientHello. Then it runs ``prober probe`` against them
exactly as a user would, and checks that every attempt got the outcome the real
balancer produces.

    backend   Python ``ssl`` server, TLS 1.2 only, the policy's four suites, RSA and
              ECDSA certificates: it answers unsupported hellos with a TLS alert
    front     asyncio TCP front on 127.0.0.1: reads the ClientHello, resets (RST)
              hellos whose newest version is below TLS 1.2 as an ALB does, and relays
              everything else to the backend byte for byte
    silent    accepts, reads, never answers

Run as ``prober demo`` (``make demo``). Exit status: 0 when every outcome is
the expected one, 1 when one differs or the demo could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

from prober.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Commands, UsageError
from prober.cli.main import main as prober_main
from prober.core.outcome import Outcome
from prober.net.demo import (
    LOOPBACK,
    Backend,
    Listeners,
    Policy,
    backend_context,
    make_certificates,
)
from prober.report.output import say

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

POLICY_CATALOG = "aws_elb.json"
POLICY_NAME = "ELBSecurityPolicy-FS-1-2-Res-2020-10"

FRONT_PROFILES = ["tls1.2-only", "tls1.3-only", "tls1.1-only", "cipher:ECDHE-RSA-AES256-SHA",
                  "cipher:ECDHE-RSA-AES128-GCM-SHA256", "firefox-137-win11"]
FRONT_REPEAT = 3
SILENT_PROFILES = ["tls1.2-only"]
SILENT_TIMEOUT_S = 2


@dataclass(frozen=True)
class Expect:
    outcome: str
    alert: str | None = None  # the alert description every attempt must carry


FRONT_EXPECT: dict[str, Expect] = {
    "tls1.2-only": Expect(Outcome.OK),
    "tls1.3-only": Expect(Outcome.ALERT, "protocol_version"),
    "tls1.1-only": Expect(Outcome.RESET),
    "cipher:ECDHE-RSA-AES256-SHA": Expect(Outcome.ALERT, "handshake_failure"),
    "cipher:ECDHE-RSA-AES128-GCM-SHA256": Expect(Outcome.OK),
    "firefox-137-win11": Expect(Outcome.OK),
}
SILENT_EXPECT: dict[str, Expect] = {"tls1.2-only": Expect(Outcome.HANG_ACKED)}


# --- the policy --------------------------------------------------------------------------


def load_policy(name: str = POLICY_NAME, catalog: str = POLICY_CATALOG) -> Policy:
    """The policy as the shipped catalog describes it, so the demo cannot drift from it."""
    path = resources.files("prober").joinpath("data", "policies", catalog)
    doc = json.loads(path.read_text(encoding="utf-8"))
    for entry in doc["policies"]:
        if entry["name"] == name:
            return Policy(name, list(entry["protocols"]), list(entry["ciphers"]))
    raise KeyError(f"{name} is not in {catalog}")


# --- running the prober and checking what it saw ------------------------------------------


class Interrupted(Exception):
    """The prober run was stopped by Ctrl-C."""


def run_prober(argv: list[str], explanation: str) -> None:
    """Run ``prober`` in-process with ``argv``, after showing the command a user would type."""

    say(f"# {explanation}")
    say(f"$ {shlex.join(['prober', *argv])}", flush=True)
    rc = prober_main(argv)
    say(flush=True)
    if rc == EXIT_INTERRUPTED:
        raise Interrupted
    if rc != EXIT_OK:
        raise RuntimeError(f"prober exited with status {rc}")


def check(doc_path: Path, expect: dict[str, Expect]) -> list[str]:
    """Every expected profile, every attempt: the outcome (and alert) expected, else why not."""
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    problems = []
    cells = {c["profile"]: c for c in doc["summary"]}
    for profile, want in expect.items():
        cell = cells.get(profile)
        if cell is None:
            problems.append(f"{profile}: no attempts in {doc_path}")
            continue
        counts: dict[str, int] = cell["counts"]
        if counts != {want.outcome: cell["attempts"]}:
            got = ", ".join(f"{o} {n}/{cell['attempts']}" for o, n in counts.items())
            problems.append(f"{profile}: expected {want.outcome}, got {got} ({cell['detail']})")
            continue
        if want.alert is not None:
            alerts = {a.get("alert", {}).get("description") for a in doc["attempts"]
                      if a["profile"] == profile}
            if alerts != {want.alert}:
                names = ", ".join(sorted(str(a) for a in alerts))
                problems.append(f"{profile}: expected alert {want.alert}, got {names}")
    return problems


@contextlib.contextmanager
def demo_endpoint(policy: Policy) -> Iterator[Listeners]:
    """The backend enforcing ``policy`` and, in front of it, the ALB-like front and the
    silent listener; stopped in reverse order, each step even if an earlier one fails."""
    backend: Backend | None = None
    listeners: Listeners | None = None
    try:
        # the keys live only until OpenSSL has loaded them into the context
        with tempfile.TemporaryDirectory(prefix="prober-demo-") as tmp:
            certs = make_certificates(Path(tmp))
            backend = Backend(backend_context(policy, certs))
            backend.start()
            listeners = Listeners(backend.port)
            listeners.start()
        yield listeners
    finally:
        try:
            if listeners is not None:
                listeners.stop()
        finally:
            if backend is not None:
                backend.stop()


def run_demo(out_dir: Path) -> int:
    t0 = time.monotonic()
    policy = load_policy()
    with demo_endpoint(policy) as listeners:
        out_dir.mkdir(parents=True, exist_ok=True)
        front_json, silent_json = out_dir / "demo.json", out_dir / "demo-silent.json"

        say(f"Field case 1: an AWS ALB with {policy.name} "
            f"({', '.join(policy.protocols)}; {':'.join(policy.ciphers)}).\n")
        front_argv = ["probe", f"{LOOPBACK}:{listeners.front_port}"]
        for p in FRONT_PROFILES:
            front_argv += ["-p", p]
        front_argv += ["--repeat", str(FRONT_REPEAT), "--json", str(front_json)]
        run_prober(front_argv, f"ALB-like front: RST for hellos below TLS 1.2, the rest "
                   f"relayed to a Python ssl backend enforcing {policy.name}")

        silent_argv = ["probe", f"{LOOPBACK}:{listeners.silent_port}"]
        for p in SILENT_PROFILES:
            silent_argv += ["-p", p]
        silent_argv += ["--timeout", str(SILENT_TIMEOUT_S), "--json", str(silent_json)]
        run_prober(silent_argv, "silent listener: accepts the connection, reads the "
                   "ClientHello, never answers (like a middlebox that swallows it)")

    problems = check(front_json, FRONT_EXPECT) + check(silent_json, SILENT_EXPECT)
    elapsed = time.monotonic() - t0
    if problems:
        for p in problems:
            say(f"UNEXPECTED  {p}")
        say(f"demo: {len(problems)} outcome(s) differ from what the ALB does "
            f"({elapsed:.1f} s); JSON in {front_json} and {silent_json}")
        return 1
    say(f"demo: every outcome as expected ({elapsed:.1f} s); JSON in {front_json} and "
        f"{silent_json}")
    return 0


def serve(port_file: Path | None) -> int:
    """Keep the demo endpoint up until SIGTERM/Ctrl-C: the target of the project's own CI
    gate (`prober check` against it, as a user's pipeline would check their endpoint)."""

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    policy = load_policy()
    try:
        with demo_endpoint(policy) as listeners:
            _serve_until(stop, listeners, policy, port_file)
    except KeyboardInterrupt:
        pass
    return 0


def _serve_until(stop: threading.Event, listeners: Listeners, policy: Policy,
                 port_file: Path | None) -> None:
    line = f"FRONT={listeners.front_port}\nSILENT={listeners.silent_port}\n"
    if port_file is not None:
        tmp_file = port_file.with_suffix(".tmp")
        tmp_file.write_text(line)
        tmp_file.replace(port_file)
    say(f"demo endpoint ({policy.name}) on {LOOPBACK}:{listeners.front_port}, silent "
        f"listener on {LOOPBACK}:{listeners.silent_port}; SIGTERM or Ctrl-C stops it",
        flush=True)
    while not stop.wait(0.5):
        pass


def register(hooks: Commands) -> None:
    p = hooks.command(
        "demo",
        "Start, on loopback, an endpoint whose policy mirrors AWS "
        f"{POLICY_NAME} behind an ALB-like front (RST to hellos below TLS 1.2), plus a "
        "listener that reads and never answers; probe both as a user would and check every "
        "outcome. `prober demo serve` keeps the endpoint up instead (until SIGTERM/Ctrl-C).")
    p.add_argument("action", nargs="?", choices=["serve"],
                   help="serve: keep the demo endpoint up for other commands to probe")
    p.add_argument("--port-file", metavar="FILE", type=Path,
                   help="serve: write FRONT=PORT and SILENT=PORT lines to FILE once listening")
    p.add_argument("--out", metavar="DIR", type=Path, default=Path("out"),
                   help="where the demo writes its JSON documents (default ./out)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.action == "serve":
        return serve(args.port_file)
    if args.port_file is not None:
        raise UsageError("--port-file goes with `prober demo serve`")
    try:
        return run_demo(args.out)
    except (KeyboardInterrupt, Interrupted):
        say("demo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        # setup failures (port, certificate, catalog) are one line, not a traceback
        say(f"demo: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
