"""The Mozilla catalog entries are exactly what scripts/build_mozilla_catalog.py builds from
the vendored guideline files, and those files are what Mozilla publishes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from prober.policy.naming import catalog

REPO = Path(__file__).resolve().parents[2]
VENDORED = REPO / "prober" / "data" / "mozilla_guidelines"
PACKAGED = REPO / "prober" / "data" / "policies" / "mozilla.json"
SCRIPT = REPO / "scripts" / "build_mozilla_catalog.py"
# the shared reference copy next to the repository, when there is one
SHARED = REPO.parent / "shared" / "data" / "mozilla_guidelines"


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_mozilla_catalog", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_packaged_entries_are_what_the_script_builds() -> None:
    built = _builder().build(VENDORED)
    assert json.loads(PACKAGED.read_text(encoding="utf-8")) == built
    # and --check says so, as a plain clone runs it
    r = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                       text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_every_level_of_every_guideline_is_an_entry() -> None:
    for f in sorted(VENDORED.glob("[0-9]*.json")):
        levels = json.loads(f.read_text(encoding="utf-8"))["configurations"]
        for level, cfg in levels.items():
            p = catalog.get(f"mozilla-{level}-{f.stem}")
            assert p.certificate_types == tuple(cfg["certificate_types"])
            assert p.groups is not None
            pq = "X25519MLKEM768" in cfg["tls_curves"]
            assert [v.id for v in p.variants] == (["openssl-below-3.5"] if pq else [])
            for v in p.variants:
                assert v.groups == tuple(g for g in p.groups if g != "X25519MLKEM768")
                assert "OpenSSL" in v.condition and v.name.startswith(p.name)
    assert "old" not in json.loads((VENDORED / "6.0.json").read_text())["configurations"]
    assert len(catalog.by_provider("mozilla")) == 32


def test_a_changed_guideline_changes_the_build(tmp_path: Path) -> None:
    for f in VENDORED.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    doc = json.loads((tmp_path / "6.0.json").read_text())
    doc["configurations"]["intermediate"]["ciphers"]["openssl"].append("AES128-SHA")
    doc["configurations"]["intermediate"]["ciphers"]["iana"].append(
        "TLS_RSA_WITH_AES_128_CBC_SHA")
    (tmp_path / "6.0.json").write_text(json.dumps(doc))
    r = subprocess.run([sys.executable, str(SCRIPT), "--check", "--guidelines", str(tmp_path)],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 1 and "differs" in r.stderr
    built = _builder().build(tmp_path)
    entry = next(e for e in built["policies"] if e["name"] == "mozilla-intermediate-6.0")
    assert entry["ciphers_iana"][-1] == "TLS_RSA_WITH_AES_128_CBC_SHA"


def test_vendored_copy_is_the_published_data() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"no shared reference copy at {SHARED}")
    for f in sorted(SHARED.glob("*.json")):
        assert (VENDORED / f.name).read_bytes() == f.read_bytes(), f.name
    assert (VENDORED / "LICENSE-MPL-2.0.txt").read_text().startswith(
        "Mozilla Public License Version 2.0")
