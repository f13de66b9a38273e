"""Agreement with reality (what scripts/agreement.py prints), as a test: each real client
installed here is captured now with `prober profiles capture`, then the client and
prober's replay of that profile meet the same nginx under every server policy; both must
succeed or both fail, and agree on version and suite when they succeed.

The browsers and the JVM take seconds per run; like every client they run when
installed, are skipped with the reason when not, and fail the test in CI (CI=true),
where `make setup` installs them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.capture.live import profile_filename
from prober.profiles.identity import client_identity
from prober.profiles.loader import load_file
from prober.wire.clienthello import ClientHello, build, read_client_hello
from prober.wire.registry import suite_value
from scripts.capture import agree, runner
from scripts.capture import clients as cl
from tests.conftest import missing, need_nginx_stream
from tests.peers import NginxServer, Pki

CHEAP = ["openssl-s_client", "curl", "gnutls-cli", "nss-tstclnt", "python-ssl", "python-httpx",
         "wget", "nodejs", "go-crypto-tls"]
HEAVY = ["openjdk", "chromium", "firefox-esr"]  # JVM and browsers: seconds per run
CAPTURED = Path(__file__).resolve().parents[2] / "profiles" / "captured"


@pytest.fixture(scope="module")
def servers(pki: Pki) -> Iterator[dict[str, NginxServer]]:
    need_nginx_stream()
    started: dict[str, NginxServer] = {}
    try:
        for p in agree.POLICIES:
            started[p.id] = agree.start_server(p, pki)
        yield started
    finally:
        for srv in started.values():
            srv.stop()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="prober-agreement-test-") as d:
        yield Path(d)


_captures: dict[str, runner.Captured] = {}


def _capture(client_id: str, workdir: Path) -> runner.Captured:
    """The client, installed and captured now (once per test session)."""
    client = cl.BY_ID[client_id]
    why = client.missing()
    if why:
        missing(f"{client.title}: {why}")
    if client_id not in _captures:
        if client.prepare is not None:
            client.prepare(workdir / "tools")
        got = runner.capture(client, client.version(), workdir / "profiles",
                             tools=workdir / "tools", work=workdir / client_id / "capture")
        assert got.path is not None, (got.listener_output, got.client_output[-2000:])
        _captures[client_id] = got
    return _captures[client_id]


@pytest.mark.parametrize("client_id", CHEAP + HEAVY)
def test_real_client_and_replay_agree(client_id: str, servers: dict[str, NginxServer],
                                      workdir: Path, pki: Pki) -> None:
    got = _capture(client_id, workdir)
    assert got.path is not None
    raw = read_client_hello(bytes.fromhex(load_file(got.path).extra["raw_hex"]))
    rebuilt = build(load_file(got.path).spec, "demo.test").hello
    assert isinstance(raw, ClientHello) and rebuilt is not None
    assert client_identity(rebuilt) == client_identity(raw)
    cells = agree.run_row(got.client, got.name, got.path, list(agree.POLICIES), servers,
                          tools=workdir / "tools", work=workdir / client_id, pki=pki)
    table = agree.render(cells)
    assert all(c.agree for c in cells), f"{agree.totals(cells)}\n{table}"
    versions = {c.real.version for c in cells if c.real.ok}
    assert "TLSv1.2" in versions, table  # the TLS 1.2-only servers negotiated 1.2
    # the server's log, which decides for the real client, says what the client says
    for c in cells:
        if c.real.ok and c.real.client_view is not None:
            version, suite = c.real.client_view
            assert version == c.real.version, (c.policy, c.real)
            assert suite_value(suite) == suite_value(c.real.suite or ""), (c.policy, c.real)


@pytest.mark.parametrize("client_id", CHEAP + HEAVY)
def test_committed_profile_is_this_client(client_id: str, workdir: Path) -> None:
    """profiles/captured/ holds what the installed client sends (same configuration)."""
    got = _capture(client_id, workdir)
    committed = CAPTURED / profile_filename(got.name)
    if not committed.exists():
        pytest.skip(f"no committed profile for {got.name} (another version is installed)")
    assert got.path is not None
    fresh = read_client_hello(bytes.fromhex(load_file(got.path).extra["raw_hex"]))
    kept = read_client_hello(bytes.fromhex(load_file(committed).extra["raw_hex"]))
    assert client_identity(fresh) == client_identity(kept), (got.name, committed)
    info: dict[str, Any] = load_file(committed).client
    assert info["version"] == got.version.version


def test_judge() -> None:
    ok12 = agree.Side(True, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    fail = agree.Side(False, detail="alert handshake_failure")
    assert agree.judge(ok12, agree.Side(True, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"))[0]
    assert agree.judge(fail, agree.Side(False, detail="reset"))[0]
    assert "real client failed" in agree.judge(fail, ok12)[1]
    assert "negotiated differently" in agree.judge(
        ok12, agree.Side(True, "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"))[1]
    assert "never reached" in agree.judge(agree.Side(False, reached=False), fail)[1]


def _edited(path: Path, tmp: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    doc = yaml.safe_load(path.read_text())
    edit(doc["hello"])
    out = tmp / f"edited-{len(list(tmp.iterdir()))}.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def test_a_profile_unlike_the_client_is_caught(servers: dict[str, NginxServer], workdir: Path,
                                               pki: Pki, tmp_path: Path) -> None:
    """The harness has teeth: a replay that is not the client's hello disagrees."""
    got = _capture("curl", workdir)
    assert got.path is not None

    def drop_alpn(hello: dict[str, Any]) -> None:
        hello["extensions"] = [e for e in hello["extensions"]
                               if not (isinstance(e, dict) and "alpn" in e)]

    def reverse_suites(hello: dict[str, Any]) -> None:
        hello["cipher_suites"].reverse()

    for edit, policy, reason in (
            (drop_alpn, "alpn-required", "real client failed, replay succeeded"),
            (reverse_suites, "client-order-tls1.2", "negotiated differently")):
        cell = agree.run_cell(got.client, "edited", _edited(got.path, tmp_path, edit),
                              agree.BY_POLICY[policy], servers[policy], tools=workdir / "tools",
                              work=workdir / "edited", pki=pki)
        assert not cell.agree and reason in cell.reason, cell
