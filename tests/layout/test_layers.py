"""The layering holds (import-linter contracts, no cycles, sockets only in net/), and the
checks are not blind: a planted violation of each kind makes them fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"),
                           "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def _check_layers(package: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "check_layers.py"),
                           str(package)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contracts to plant violations in."""
    shutil.copytree(ROOT / "prober", tmp_path / "prober",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(tree: Path, module: str, code: str) -> None:
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + "\n" + code + "\n", encoding="utf-8")


def test_the_contracts_hold() -> None:
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 kept, 0 broken" in r.stdout


def test_no_cycle_and_no_socket_outside_net() -> None:
    r = _check_layers(ROOT / "prober")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 problem(s)" in r.stderr


@pytest.mark.parametrize(("module", "code", "broken"), [
    # a lower layer reaching up
    ("prober/core/engine.py", "from prober.policy import report as _r", "Layers"),
    # the CLI imported from below it
    ("prober/diagnose/report.py", "import prober.cli.common", "Nothing outside prober.cli"),
    # the codec importing the rest of prober
    ("prober/wire/buffer.py", "from prober.net import tcpinfo as _t", "The wire codec"),
    # a socket outside net/
    ("prober/policy/scan.py", "import socket as _s", "Only prober.net"),
])
def test_a_planted_violation_breaks_its_contract(tree: Path, module: str, code: str,
                                                 broken: str) -> None:
    _plant(tree, module, code)
    r = _lint_imports(tree)
    assert r.returncode != 0
    line = next(x for x in r.stdout.splitlines() if x.startswith(broken))
    assert line.endswith("BROKEN"), r.stdout


def test_a_planted_cycle_and_socket_call_are_found(tree: Path) -> None:
    # an import inside a function still closes a cycle
    _plant(tree, "prober/wire/buffer.py",
           "def _late() -> None:\n    from prober.wire import clienthello  # noqa")
    # no import needed to open a connection from asyncio
    _plant(tree, "prober/diagnose/findings.py",
           "async def _dial(loop):\n    return await loop.create_connection(None, 'h', 1)")
    r = _check_layers(tree / "prober")
    assert r.returncode == 1
    assert "import cycle:" in r.stdout and "prober.wire.buffer" in r.stdout
    assert "findings.py" in r.stdout and "create_connection() opens a socket" in r.stdout
