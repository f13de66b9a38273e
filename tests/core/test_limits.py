"""The per-endpoint cap is held exactly, on the wire, per resolved address: a listener
that counts connections open at once never sees more than N, whatever the number of
target names pointing at it, and does see N (the cap is not a slowdown in disguise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.misbehaving import CountingListener

ROOT = Path(__file__).resolve().parents[2]


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prober", "probe", *args, "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("cap", [3, 64])
def test_cap_holds_exactly_on_one_address(cap: int) -> None:
    with CountingListener() as srv:
        # hellos that are never answered: each attempt holds its connection 0.3 s
        r = _probe(f"127.0.0.1:{srv.port}", "-p", "tls1.2-only", "-n", str(cap * 4),
                   "--per-target", str(cap), "-c", "512", "-t", "0.3")
        assert r.returncode == 0, r.stderr
        assert srv.accepted == cap * 4
        assert srv.most == cap, (srv.most, cap)


def test_cap_is_per_address_not_per_name() -> None:
    with CountingListener() as srv:
        # three names, one address: one cap of 3, not three of them
        r = _probe(f"a.test:{srv.port}", f"b.test:{srv.port}", f"c.test:{srv.port}",
                   "--address", "127.0.0.1", "-p", "tls1.2-only", "-n", "8",
                   "--per-target", "3", "-c", "64", "-t", "0.3")
        assert r.returncode == 0, r.stderr
        assert srv.accepted == 24
        assert srv.most == 3, srv.most
