"""The field-case-1 demo: end to end as ``make demo`` runs it, and the front's decision
on real hellos built from the profiles the demo probes with."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from prober.cli import demo
from prober.net import demo as servers
from prober.profiles.families import generated
from prober.profiles.loader import resolve
from prober.profiles.model import Profile
from prober.wire.clienthello import (
    ClientHello,
    SSLv2Hello,
    build,
    ext_supported_versions,
    read_client_hello,
)
from prober.wire.constants import ExtensionType


def _profile(name: str) -> Profile:
    p = generated(name)
    if p is None:
        [p] = resolve(name)  # a client profile shipped in profiles/clients
    return p


def _wire(name: str, split: list[int] | None = None) -> bytes:
    return build(_profile(name).spec, "demo.test").records(split)


# --- end to end ---------------------------------------------------------------------------


def test_demo_runs_and_every_outcome_is_the_expected_one(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "prober", "demo"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # the outcome column of the tables: 3 repeats against the front, 1 against the silent one
    for cell in ("ok 3/3", "alert 3/3", "reset 3/3"):
        assert cell in out
    assert re.search(r"^tls1\.2-only\s+hang-acked\s", out, re.MULTILINE)
    assert "$ prober probe 127.0.0.1:" in out
    assert "every outcome as expected" in out
    doc = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert {c["profile"]: c["outcome"] for c in doc["summary"]} == {
        p: e.outcome for p, e in demo.FRONT_EXPECT.items()}
    assert (tmp_path / "out" / "demo-silent.json").is_file()


# --- the front's version decision ---------------------------------------------------------


@pytest.mark.parametrize(("name", "highest", "forwards"), [
    ("tls1.0-only", 0x0301, False),
    ("tls1.1-only", 0x0302, False),
    ("tls1.2-only", 0x0303, True),
    ("tls1.3-only", 0x0304, True),
    ("cipher:ECDHE-RSA-AES256-SHA", 0x0303, True),
    ("cipher:ECDHE-RSA-AES128-GCM-SHA256", 0x0303, True),
    ("firefox-137-win11", 0x0304, True),
])
def test_front_decision_on_real_hellos(name: str, highest: int, forwards: bool) -> None:
    hello = read_client_hello(_wire(name))
    assert servers.highest_offered_version(hello) == highest
    assert servers.front_forwards(hello) is forwards


def test_front_resets_sslv2_and_sslv3_hellos() -> None:
    v2 = read_client_hello(_wire("sslv2-only"))
    assert isinstance(v2, SSLv2Hello)
    assert not servers.front_forwards(v2)
    assert not servers.front_forwards(read_client_hello(_wire("sslv3-only")))


def test_supported_versions_overrides_legacy_version_and_grease_is_ignored() -> None:
    def hello(versions: list[int]) -> ClientHello:
        ext = (ExtensionType.SUPPORTED_VERSIONS.value, ext_supported_versions(versions))
        return ClientHello(0x0303, b"\0" * 32, b"", [0xC02F], [0], [ext])

    # legacy_version says TLS 1.2, but supported_versions is what a server must obey
    assert not servers.front_forwards(hello([0x0A0A, 0x0302, 0x0301]))
    assert servers.highest_offered_version(hello([0x0A0A])) == 0
    assert servers.front_forwards(hello([0x3A3A, 0x0304]))
    broken = ClientHello(0x0303, b"\0" * 32, b"", [0xC02F], [0],
                         [(ExtensionType.SUPPORTED_VERSIONS.value, b"\x05\x03")])
    assert not servers.front_forwards(broken)


# --- reading the hello off the socket ------------------------------------------------------


async def test_read_hello_waits_for_a_hello_split_over_records_and_segments() -> None:
    wire = _wire("tls1.3-only", split=[10, 30])
    reader = asyncio.StreamReader()
    task = asyncio.ensure_future(servers.read_hello(reader))
    for i in range(0, len(wire), 7):
        reader.feed_data(wire[i : i + 7])
        await asyncio.sleep(0)
    data, hello = await asyncio.wait_for(task, 2)
    assert data == wire
    assert hello is not None and servers.front_forwards(hello)


async def test_read_hello_gives_up_at_once_on_non_tls_bytes() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"GET / HTTP/1.1\r\n\r\n")
    data, hello = await asyncio.wait_for(servers.read_hello(reader), 1)
    assert hello is None and data.startswith(b"GET")


async def test_read_hello_gives_up_when_the_client_closes_mid_hello() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(_wire("tls1.2-only")[:50])
    reader.feed_eof()
    _, hello = await asyncio.wait_for(servers.read_hello(reader), 1)
    assert hello is None


# --- the backend's policy and the check of outcomes ----------------------------------------


def test_backend_context_is_the_catalog_policy(tmp_path: Path) -> None:
    policy = demo.load_policy()
    assert policy.protocols == ["TLSv1.2"]
    ctx = servers.backend_context(policy, servers.make_certificates(tmp_path))
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert sorted(tls12) == sorted(policy.ciphers)


def test_check_names_every_differing_outcome(tmp_path: Path) -> None:
    def attempt(profile: str, outcome: str, alert: str | None = None) -> dict[str, object]:
        a: dict[str, object] = {"profile": profile, "outcome": outcome}
        if alert:
            a["alert"] = {"description": alert}
        return a

    doc = {
        "summary": [
            {"profile": "tls1.1-only", "attempts": 2, "counts": {"reset": 1, "eof": 1},
             "outcome": "reset", "detail": "RST"},
            {"profile": "tls1.3-only", "attempts": 1, "counts": {"alert": 1},
             "outcome": "alert", "detail": "handshake_failure (40) fatal"},
        ],
        "attempts": [attempt("tls1.1-only", "reset"), attempt("tls1.1-only", "eof"),
                     attempt("tls1.3-only", "alert", "handshake_failure")],
    }
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    problems = demo.check(path, {"tls1.1-only": demo.Expect("reset"),
                                 "tls1.3-only": demo.Expect("alert", "protocol_version"),
                                 "firefox-137-win11": demo.Expect("ok")})
    assert problems == [
        "tls1.1-only: expected reset, got reset 1/2, eof 1/2 (RST)",
        "tls1.3-only: expected alert protocol_version, got handshake_failure",
        f"firefox-137-win11: no attempts in {path}",
    ]
