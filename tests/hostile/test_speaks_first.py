"""A server that speaks first (a banner, an alert on accept) answers before the hello is
out: its reply time is measured from the connection, never negative, and the detail and
the JSON say so."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from prober.core.outcome import SPOKE_FIRST, reply_time
from prober.diagnose.report import cells
from tests.hostile.cli import Run, run_prober
from tests.peers.factory import started_peers
from tests.peers.misbehaving import SMTP_BANNER, SSH_BANNER, BannerListener, HttpSpeaker

ALERT_ON_ACCEPT = b"\x15\x03\x03\x00\x02\x02\x28"  # fatal handshake_failure, unasked


def slow_hello_profile(tmp_path: Path) -> Path:
    """A TLS 1.2 hello whose first 10 bytes go out, then 300 ms later the rest: whatever
    a server says on accept arrives before the hello is out."""
    path = tmp_path / "slow-hello.yaml"
    path.write_text("""\
schema: 1
name: slow-hello
hello:
  version: TLSv1.2
  cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]
  extensions:
    - supported_groups: [x25519]
    - ec_point_formats: [uncompressed]
    - signature_algorithms: [rsa_pss_rsae_sha256]
transport:
  segment_sizes: [10]
  pause_ms: 300
""")
    return path


def probe(tmp_path: Path, port: int, *args: str) -> tuple[Run, dict[str, object]]:
    out = tmp_path / "probe.json"
    run = run_prober(tmp_path, "probe", f"127.0.0.1:{port}", "--json", str(out), "-t", "3",
                     *args)
    run.assert_survived()
    return run, json.loads(out.read_text())


def medians(stdout: str) -> list[float]:
    """The last column of the table's rows."""
    rows = stdout.rstrip("\n").split("\n")
    rows = rows[rows.index("") + 2:]
    return [float(r.split()[-1]) for r in rows]


@pytest.mark.parametrize(("banner", "outcome"), [(SSH_BANNER, "not-tls"),
                                                 (ALERT_ON_ACCEPT, "alert")],
                         ids=["ssh-banner", "alert-on-accept"])
def test_reply_time_of_a_server_that_speaks_first(tmp_path: Path, banner: bytes,
                                                  outcome: str) -> None:
    with started_peers(BannerListener) as start:
        srv = start(banner=banner)
        run, doc = probe(tmp_path, srv.port, "-p", str(slow_hello_profile(tmp_path)),
                         "-n", "3")
    attempts = doc["attempts"]
    assert isinstance(attempts, list) and len(attempts) == 3
    for a in attempts:
        t = a["timings_ms"]
        assert a["outcome"] == outcome, a["detail"]
        assert t["first_byte"] < t["hello_sent"]  # the server really did speak first
        assert a["spoke_first"] is True
        assert a["detail"].endswith(SPOKE_FIRST)
    summary = doc["summary"]
    assert isinstance(summary, list)
    (cell,) = summary
    assert cell["spoke_first"] is True
    # from the connection to the banner: well under the 300 ms the hello took to go out
    assert 0 <= cell["median_ms"] < 150
    assert all(0 <= m < 150 for m in medians(run.stdout)), run.stdout
    assert SPOKE_FIRST in run.stdout


@pytest.mark.parametrize("banner", [SSH_BANNER, SMTP_BANNER], ids=["ssh", "smtp"])
def test_a_greeting_reads_the_same_before_or_after_the_hello(tmp_path: Path,
                                                           banner: bytes) -> None:
    """An SSH or SMTP server greets on accept; on a fast path the greeting and our hello
    race. One that greets only after the hello is out (0.2 s after accept) is reported
    exactly as one that greets before it: spoke first, timed from the connection."""
    with started_peers(BannerListener) as start:
        late = start(banner=banner, delay=0.2)
        _, doc = probe(tmp_path, late.port, "-p", "tls1.2-only", "-n", "2", "-c", "1")
        early = start(banner=banner)
        _, first = probe(tmp_path, early.port, "-p", str(slow_hello_profile(tmp_path)),
                         "-n", "1")
    attempts = doc["attempts"]
    assert isinstance(attempts, list) and len(attempts) == 2
    firsts = first["attempts"]
    assert isinstance(firsts, list) and len(firsts) == 1
    before: dict[str, Any] = firsts[0]
    for a in attempts:
        t = a["timings_ms"]
        assert t["first_byte"] > t["hello_sent"]  # the greeting came after the hello
        assert a["spoke_first"] is True and a["detail"].endswith(SPOKE_FIRST), a["detail"]
        assert a["detail"] == before["detail"]
    summary = doc["summary"]
    assert isinstance(summary, list) and len(summary) == 1
    cell: dict[str, Any] = summary[0]
    assert cell["spoke_first"] is True and cell["detail"] == before["detail"], cell
    assert "other" not in cell["detail"]


def test_a_reply_after_the_hello_is_no_greeting(tmp_path: Path) -> None:
    """An HTTP server answers our hello (a 400): that is a reply, timed from the hello."""
    with started_peers(HttpSpeaker) as start:
        srv = start()
        _, doc = probe(tmp_path, srv.port, "-p", "tls1.2-only", "-n", "2", "-c", "1")
    for a in doc["attempts"]:  # type: ignore[attr-defined]
        assert a["outcome"] == "not-tls" and "spoke_first" not in a, a
        assert not a["detail"].endswith(SPOKE_FIRST)


def test_a_server_that_answers_the_hello_is_timed_from_it() -> None:
    assert reply_time(1.0, 1.5, 3.0, 4.0) == (1.5, False)
    assert reply_time(1.0, 1.5, None, 4.0) == (2.5, False)
    value, early = reply_time(1.0, 1.5, 1.2, 4.0)
    assert early and value == pytest.approx(0.2)
    assert reply_time(None, None, None, 5.0) == (5.0, False)  # no connection


def test_diagnose_matrix_from_a_saved_run() -> None:
    """The matrix is rendered from the document: the same rule applies to saved runs."""
    def attempt(i: int, first: float) -> dict[str, object]:
        return {"id": i, "target": "t", "profile": "tls1.2-only", "outcome": "not-tls",
                "detail": "banner: 'x'",
                "timings_ms": {"connect": 1.0, "hello_sent": 1.3, "first_byte": first,
                               "total": 1.4}}
    (early,) = cells([attempt(1, 1.1), attempt(2, 1.1), attempt(3, 1.2)])
    assert early["median_ms"] == pytest.approx(0.1) and early["spoke_first"] is True
    (late,) = cells([attempt(1, 2.3)])
    assert late["median_ms"] == pytest.approx(1.0) and "spoke_first" not in late


def test_diagnose_against_an_ssh_server(tmp_path: Path) -> None:
    with started_peers(BannerListener) as start:
        srv = start(banner=SSH_BANNER)
        out = tmp_path / "diagnose.json"
        run = run_prober(tmp_path, "diagnose", f"127.0.0.1:{srv.port}", "-t", "1",
                         "--sweep-repeat", "1", "-n", "1", "--json", str(out), timeout=180)
    run.assert_survived()
    doc = json.loads(out.read_text())
    assert all(c["median_ms"] is None or c["median_ms"] >= 0 for c in doc["summary"])
    matrix = run.stdout.split("\nMATRIX\n", 1)[1]
    assert not re.search(r"\s-\d+\.\d+$", matrix, re.M), matrix
