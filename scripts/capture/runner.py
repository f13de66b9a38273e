"""Capturing one real client: `prober profiles capture --complete` in a child process,
the client pointed at it, both stopped once the hello is written (or at a deadline)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prober.capture.live import profile_filename
from scripts.capture import sandbox
from scripts.capture.clients import Call, Client, Version, profile_name

REPO = Path(__file__).resolve().parents[2]
TAG = "captured-here"


@dataclass
class Captured:
    client: Client
    version: Version
    name: str
    path: Path | None  # None: no hello arrived
    listener_output: str
    client_output: str
    seconds: float


def capture(client: Client, version: Version, out: Path, *, tools: Path, work: Path,
            name: str | None = None) -> Captured:
    """Capture ``client``'s first ClientHello into ``out/<name>.yaml``."""
    name = name or profile_name(client, version)
    work.mkdir(parents=True, exist_ok=True)
    err_path, out_path = work / "capture.err", work / "capture.out"
    argv = [sys.executable, "-m", "prober", "profiles", "capture", "--listen",
            f"{sandbox.ADDRESS}:0", "--complete", "--count", "1",
            "--timeout", str(client.timeout), "--name", name, "--out", str(out),
            "--client-name", client.title, "--client-version", version.version,
            "--tag", TAG, "--description",
            f"{client.title} {version.version}: its first ClientHello, captured on loopback "
            "by scripts/capture_clients.py"]
    for k, v in version.details.items():
        argv += ["--client-detail", f"{k}={v}"]
    t0 = time.monotonic()
    with err_path.open("wb") as err, out_path.open("wb") as stdout:
        listener = subprocess.Popen(argv, stdout=stdout, stderr=err, cwd=REPO,
                                    start_new_session=True)
    try:
        port = _wait_port(err_path, listener, 20.0)
        call = Call(sandbox.ADDRESS, port, sandbox.NAME, work, tools)
        if client.setup is not None:
            client.setup(call)
        prefix = sandbox.resolver_prefix(work / "resolver")
        log = work / "client.log"
        run = sandbox.run_bounded([*prefix, *client.argv(call)], timeout=client.timeout,
                                  env=client.run_env(call), cwd=work, log=log,
                                  stdin=client.stdin,
                                  done=lambda: listener.poll() is not None
                                  or client.finished(log))
        try:
            listener.wait(client.timeout)
        except subprocess.TimeoutExpired:
            pass
    finally:
        if listener.poll() is None:
            sandbox.stop_group(listener)
    path = out / profile_filename(name)
    written = path if f"wrote {path}" in out_path.read_text() else None
    return Captured(client, version, name, written, out_path.read_text() + err_path.read_text(),
                    run.output, time.monotonic() - t0)


def _wait_port(err_path: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"listening on \S+:(\d+)", err_path.read_text(errors="replace"))
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the capture listener did not start: {err_path.read_text()[-500:]}")
