"""A private search path for loader tests: its own user and cache directories, no
``$PROBER_PROFILES``, and the loader's per-process memory cleared before and after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from prober.profiles import loader


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PROBER_PROFILES", raising=False)
    loader.reset()
    yield tmp_path
    loader.reset()
