"""No false calm: HTTP, SSH, a mail greeting, a closed port and a silent listener on the
TLS port, through every command that connects. Each says first that no TLS endpoint was
measured, and why; `policy` exits 3 without a page of n/a, `check` fails, `probe` still
exits 0 (its run completed); a healthy endpoint gets none of it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from tests.peers.misbehaving import HttpSpeaker, SilentReader, SmtpBanner, SshBanner, closed_port

QUICK = ["-n", "2", "--sweep-repeat", "1", "-t", "1"]

# (peer, finding id, words of the cause, tls_endpoint kind)
CASES: dict[str, tuple[Any, str, str, str]] = {
    "http": (HttpSpeaker, "wrong-service", "speaks HTTP, not TLS", "wrong-service"),
    "ssh": (SshBanner, "wrong-service", "speaks SSH, not TLS", "wrong-service"),
    "smtp": (SmtpBanner, "wrong-service", "speaks SMTP, not TLS", "wrong-service"),
    "closed": (None, "port-closed", "Nothing listens on the port", "port-closed"),
    "silent": (SilentReader, "silent-proxy", "Something ACKs the ClientHello", "silent"),
}


@contextlib.contextmanager
def peer(name: str) -> Iterator[int]:
    cls = CASES[name][0]
    if cls is None:
        yield closed_port()
        return
    with cls() as srv:
        yield srv.port


@pytest.mark.parametrize("name", list(CASES))
def test_diagnose_says_what_answered_first(name: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, fid, words, kind = CASES[name]
    out = tmp_path / "d.json"
    with peer(name) as port:
        rc = main(["diagnose", f"127.0.0.1:{port}", *QUICK, "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["findings"][0]["id"] == fid, doc["findings"]
    assert words in doc["findings"][0]["cause"]
    assert doc["tls_endpoint"]["measured"] is False and doc["tls_endpoint"]["kind"] == kind
    assert doc["tls_endpoint"]["finding"] == fid
    assert "endpoint-flapping" not in [f["id"] for f in doc["findings"]]
    assert text.index("NO TLS ENDPOINT MEASURED") < text.index("FINDINGS")
    assert "FINDINGS\n  none" not in text
    if name == "smtp":
        assert "--starttls smtp" in doc["findings"][0]["next"]


@pytest.mark.parametrize("name", list(CASES))
def test_policy_exits_3_without_a_page_of_na(name: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, _, _, kind = CASES[name]
    out = tmp_path / "p.json"
    with peer(name) as port:
        rc = main(["policy", f"127.0.0.1:{port}", "-t", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 3, text
    lines = text.splitlines()
    assert "no TLS endpoint measured" in lines[0]
    assert lines[1].startswith("NO TLS ENDPOINT MEASURED: ")
    assert "n/a" not in text and "FEATURES" not in text and "INTOLERANCE" not in text
    doc = json.loads(out.read_text())
    assert doc["tls_endpoint"]["measured"] is False and doc["tls_endpoint"]["kind"] == kind


def test_check_fails_and_probe_completes(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "expect.yaml"
    exp.write_text("schema: 1\nprofiles:\n  - profiles: [tls1.2-only]\n    allow: [ok, not-tls]\n"
                   "min_version: TLSv1.2\nforbidden_suites: ['*CBC*']\n")
    junit = tmp_path / "junit.xml"
    with peer("ssh") as port:
        rc = main(["check", f"127.0.0.1:{port}", "-e", str(exp), "-t", "1",
                   "--junit", str(junit)])
        out = capsys.readouterr().out
        assert rc == 1, out
        rows = [ln for ln in out.splitlines() if ln.startswith(("PASS", "FAIL"))]
        assert rows[0].startswith("FAIL") and "TLS endpoint" in rows[0]
        assert "speaks SSH" in rows[0]
        # vacuously true of an SSH port: failed, with what it would have said
        assert any(r.startswith("FAIL") and "min_version" in r and "not measured" in r
                   for r in rows)
        assert any(r.startswith("FAIL") and "forbidden_suites" in r for r in rows)
        # what the file literally allows still holds
        assert any(r.startswith("PASS") and "profiles[0]" in r for r in rows)
        assert "TLS endpoint" in junit.read_text()

        pj = tmp_path / "probe.json"
        rc = main(["probe", f"127.0.0.1:{port}", "-p", "tls1.2-only", "--json", str(pj)])
        text = capsys.readouterr().out
        assert rc == 0
        assert text.splitlines()[1].strip().startswith("NO TLS ENDPOINT MEASURED: The port "
                                                       "speaks SSH")
        doc = json.loads(pj.read_text())
        assert doc["targets"][0]["tls_endpoint"]["protocol"] == "SSH"


def test_a_healthy_endpoint_gets_none_of_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            nginx_factory: Any) -> None:
    srv = nginx_factory()
    out = tmp_path / "p.json"
    assert main(["policy", f"127.0.0.1:{srv.port}", "-t", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "NO TLS ENDPOINT" not in text
    assert json.loads(out.read_text())["tls_endpoint"] == {"measured": True}
    pj = tmp_path / "probe.json"
    assert main(["probe", f"127.0.0.1:{srv.port}", "-p", "tls1.2-only", "--json", str(pj)]) == 0
    assert "NO TLS ENDPOINT" not in capsys.readouterr().out
    assert json.loads(pj.read_text())["targets"][0]["tls_endpoint"] == {"measured": True}
