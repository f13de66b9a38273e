"""A real redis-server and real `prober agent` processes for the fleet tests; every one is
started here and stopped here, by PID, also when the test fails.

Each takes ``netns``: a namespace of the netns lab (tests/lab) to run in instead of this
one. The process is started under ``ip netns exec NS`` (which execs it: the PID is
the program's own, and the namespace's /etc/hosts and resolv.conf from /etc/netns/NS
apply, so lab names resolve and nothing else does)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netns import exec_argv, in_netns
from tests.peers.pki import Pki
from tests.peers.ports import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def prober(*args: str) -> list[str]:
    return [sys.executable, "-m", "prober", *args]


def in_ns(netns: str | None) -> list[str]:
    """The argv prefix that runs a command in ``netns`` (nothing for this namespace)."""
    return exec_argv(netns) if netns else []


def fleet(*args: str, netns: str | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``prober fleet ARGS`` to the end (bounded), in ``netns`` if given."""
    return subprocess.run([*in_ns(netns), *prober("fleet", *args)], env=env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def sql(store: Path, q: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as db:
        return list(db.execute(q, params))


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def _namespace(netns: str | None) -> Iterator[None]:
    with in_netns(netns) if netns else contextlib.nullcontext():
        yield


def redis_tls_missing() -> str | None:
    """Why this redis-server cannot serve TLS, or None. A build without TLS refuses the
    tls-port directive; one with it reads on and refuses the unknown one after it, so
    nothing is started either way."""
    if shutil.which("redis-server") is None:
        return "redis-server not found (apt-get install redis-server)"
    out = subprocess.run(["redis-server", "--port", "0", "--tls-port", "0",
                          "--prober-no-such-directive", "x"],
                         capture_output=True, text=True, timeout=10, check=False)
    said = out.stdout + out.stderr
    if "prober-no-such-directive" not in said:
        return f"this redis-server has no TLS support (BUILD_TLS): {said.strip()[-200:]}"
    return None


@contextlib.contextmanager
def redis_server(tmp: Path, *, host: str = "127.0.0.1", netns: str | None = None,
                 password: str | None = None, tls: Pki | None = None) -> Iterator[str]:
    """A private redis-server on an ephemeral port of ``host`` (in ``netns``), nothing
    saved to disk; yields its URL. Off loopback, redis serves only clients that give a
    ``password`` (its protected mode), as a real broker should. With ``tls`` it serves
    TLS only, with the PKI's RSA certificate (no plaintext port), and yields a
    ``rediss://`` URL without options."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not found (apt-get install redis-server)")
    with _namespace(netns):  # the port is free where the server will listen
        port = free_port(host)
    ports = ["--port", str(port)]
    if tls is not None:
        ports = ["--port", "0", "--tls-port", str(port),
                 "--tls-cert-file", str(tls.rsa_cert), "--tls-key-file", str(tls.rsa_key),
                 "--tls-ca-cert-file", str(tls.ca_cert), "--tls-auth-clients", "no"]
    log = open(tmp / f"redis-{port}.log", "wb")  # noqa: SIM115 (outlives this block)
    proc = subprocess.Popen([*in_ns(netns), "redis-server", *ports,
                             "--bind", host, "--save", "", "--appendonly", "no",
                             "--dir", str(tmp),
                             *(["--requirepass", password] if password else [])],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        with _namespace(netns):  # /proc/net/tcp is the namespace's there
            wait_listening(host, port, 10, alive=proc)
        scheme = "rediss" if tls is not None else "redis"
        yield f"{scheme}://{f':{password}@' if password else ''}{host}:{port}/0"
    finally:
        _stop(proc)
        log.close()


class Agent:
    """`prober agent` as a subprocess; ``ready()`` waits for its worker to consume."""

    def __init__(self, tmp: Path, broker: str, vantage: str, allow: list[str], *,
                 name: str, time_limit: float = 30, visibility: float = 60,
                 lease_ttl: float = 15, netns: str | None = None,
                 concurrency: int | None = None) -> None:
        self.log_path = tmp / f"agent-{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed by stop())
        args = ["agent", "--broker", broker, "--vantage", vantage, "--name", name,
                "--time-limit", str(time_limit), "--visibility-timeout", str(visibility),
                "--lease-ttl", str(lease_ttl)]
        for a in allow:
            args += ["--allow", a]
        if concurrency is not None:
            args += ["--concurrency", str(concurrency)]
        self.proc = subprocess.Popen([*in_ns(netns), *prober(*args)], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env())
        self.name = name

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self, timeout: float = 30) -> Agent:
        deadline = time.monotonic() + timeout
        while " ready." not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent {self.name} exited: {self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent {self.name} not ready: {self.log()[-2000:]}")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()


@contextlib.contextmanager
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    try:
        yield started
    finally:
        for a in started:
            a.stop()
