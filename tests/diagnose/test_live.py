"""`prober diagnose` and `prober diff` end to end, through the CLI, against real peers:
a healthy nginx, a TLS 1.2-only nginx, the ALB-like front of prober/net/demo.py, a silent
listener, an idle-timeout relay; `prober diff` of two real runs; and every scenario of
the netns lab (tests/lab, root only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from prober.cli import demo
from prober.cli.main import main
from prober.diagnose.plan.steps import BACKEND_HELLOS
from prober.net import demo as servers
from tests.lab import Lab, Scenario
from tests.lab.fixtures import lab
from tests.lab.scenarios import LabParams, catalog
from tests.peers.misbehaving import SilentReader

__all__ = ["lab"]  # the lab fixture, imported for this module

# short runs: the plan's shape is the same, with fewer repeats
QUICK = ["-n", "4", "--sweep-repeat", "1", "--per-target", "16", "-t", "2"]


def diagnose(tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, *args: str
             ) -> tuple[dict[str, Any], str]:
    out = tmp_path / f"diag-{time.monotonic_ns()}.json"
    rc = main(["diagnose", target, *args, "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["schema"] == "prober.diagnose/2"
    return doc, text


def finding_ids(doc: dict[str, Any]) -> list[str]:
    return [f["id"] for f in doc["findings"]]


@contextlib.contextmanager
def alb_like() -> Iterator[tuple[int, int]]:
    """prober/net/demo.py's ALB-like front and its backend: (front port, backend port)."""
    policy = demo.load_policy()
    with tempfile.TemporaryDirectory(prefix="prb-diag-") as tmp:
        certs = servers.make_certificates(Path(tmp))
        backend = servers.Backend(servers.backend_context(policy, certs))
    backend.start()
    front = servers.Listeners(backend.port)
    try:
        front.start()
        yield front.front_port, backend.port
    finally:
        try:
            front.stop()
        finally:
            backend.stop()


def test_healthy_nginx_gets_only_its_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            nginx_factory: Any) -> None:
    srv = nginx_factory()
    doc, text = diagnose(tmp_path, capsys, f"localhost:{srv.port}", "--address", "127.0.0.1",
                         "-t", "3")
    assert finding_ids(doc) == ["policy"], doc["findings"]
    pol = doc["findings"][0]
    assert pol["confidence"] == "info"
    assert pol["figures"]["accepted"] == ["TLSv1.3", "TLSv1.2"]
    assert doc["reference"]["profile"] == "tls1.3-only"
    assert doc["target"]["sni"] == "localhost"
    by = {c["profile"]: c for c in doc["summary"]}
    assert by["known-good"]["counts"] == {"ok": 10}
    assert by["fallback-scsv"]["outcome"] == "alert"
    assert {by[p]["outcome"] for p in ("sni:none", "sni:unrelated", "size:small", "size:600",
                                       "size:1300", "size:1800", "size:4000", "records:split",
                                       "segments:split", "sanity@first", "sanity@last")} == {"ok"}
    sizes = [by[f"size:{n}"]["hello_bytes"] for n in (600, 1300, 1800, 4000)]
    assert sizes == [600, 1300, 1800, 4000]
    assert doc["control"]["outcome"] == "silent"
    # findings first, evidence below, the matrix last
    assert text.index("FINDINGS") < text.index("EVIDENCE") < text.index("MATRIX")
    assert "info   policy  accepts TLSv1.3, TLSv1.2;" in text


def test_expect_issuer_and_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   nginx_factory: Any) -> None:
    from prober.net.packets import open_capture

    cap, _ = open_capture("127.0.0.1", 9, socket.AF_INET)  # can this process capture?
    if cap is not None:
        cap.stop()
    srv = nginx_factory()
    root = cap is not None
    doc, _ = diagnose(tmp_path, capsys, f"localhost:{srv.port}", "--address", "127.0.0.1",
                      "--expect-issuer", "Corp Inspection CA", "--capture", *QUICK)
    assert finding_ids(doc) == ["tls-interception", "policy"]
    assert "not by 'Corp Inspection CA'" in doc["findings"][0]["cause"]
    if not root:
        assert doc["capture"]["available"] is False
        assert any("CAP_NET_RAW" in n for n in doc["notes"])
        return
    assert doc["capture"]["available"] is True and doc["capture"]["packets"] > 0
    a = next(a for a in doc["attempts"] if a["profile"] == "known-good")
    flags = [p["flags"] for p in a["packets"]]
    assert flags[:3] == ["S", "SA", "A"], flags
    assert all(p["ttl"] == 64 for p in a["packets"])
    assert not any("TTL" in n for n in doc["notes"])


def test_tls12_only_nginx_is_policy_alert(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          nginx_factory: Any) -> None:
    srv = nginx_factory(protocols="TLSv1.2")
    doc, _ = diagnose(tmp_path, capsys, f"127.0.0.1:{srv.port}", *QUICK)
    assert finding_ids(doc) == ["policy-alert", "policy"]
    assert "refuses TLSv1.3 with a TLS alert (protocol_version)" in doc["findings"][0]["cause"]
    assert doc["reference"]["profile"] == "tls1.2-only"
    # the fallback probe: TLS 1.1 with the SCSV, refused like TLS 1.1 itself
    assert any(a["profile"] == "fallback-scsv" and a["outcome"] == "alert"
               for a in doc["attempts"])


def test_alb_like_front_is_policy_reset(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with alb_like() as (front, _backend):
        doc, _ = diagnose(tmp_path, capsys, f"127.0.0.1:{front}", *QUICK)
    ids = finding_ids(doc)
    assert ids[:2] == ["policy-alert", "policy-reset"] and ids[-1] == "policy", ids
    reset = doc["findings"][1]
    assert reset["figures"]["versions"] == ["TLSv1.1", "TLSv1.0", "SSLv3"]
    assert "like" not in reset["cause"] or "AWS ALB" in reset["cause"]
    assert "injected-reset" not in ids and "silent-proxy" not in ids


def test_silent_listener_is_a_silent_proxy(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with SilentReader() as srv:
        doc, text = diagnose(tmp_path, capsys, f"127.0.0.1:{srv.port}", *QUICK, "-t", "1")
    assert finding_ids(doc) == ["silent-proxy"]
    f = doc["findings"][0]
    assert f["confidence"] == "high"
    n = len(doc["attempts"])
    assert f"({n}/{n} attempts)" in f["cause"]
    assert doc["reference"]["profile"] == "sanity"
    assert "high   silent-proxy  Something ACKs the ClientHello and never answers" in text


def test_diff_inside_and_outside(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 nginx_factory: Any) -> None:
    # "inside": the TLS server itself; "outside": the same server behind the ALB-like front
    with alb_like() as (front, backend):
        inside, _ = diagnose(tmp_path, capsys, f"127.0.0.1:{backend}", *QUICK)
        outside, _ = diagnose(tmp_path, capsys, f"127.0.0.1:{front}", *QUICK)
    a, b = tmp_path / "inside.json", tmp_path / "outside.json"
    a.write_text(json.dumps(inside))
    b.write_text(json.dumps(outside))
    out = tmp_path / "diff.json"
    assert main(["diff", str(a), str(b), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["schema"] == "prober.diff/2"
    found = {f["id"]: f for f in doc["findings"]}
    # one vocabulary: the outside run's own diagnosis calls these RSTs policy-reset (a
    # balancer's version policy), and so does the diff of the two runs
    assert set(found) == {"policy-reset"}, doc["findings"]
    assert doc["own_findings"]["b_only"] == ["policy-reset"]
    f = found["policy-reset"]
    assert f["cause"].startswith("outside only: RST")
    assert "refuses these hellos with a TCP RST instead of a TLS alert, as a cloud load " \
           "balancer does" in f["cause"]
    assert set(f["figures"]["profiles"]) == {
        "sslv3-only", "tls1.0-only", "tls1.1-only", "fallback-scsv"}
    assert "DIFFERENCES (4 of" in text and "outside only: policy-reset" in text

    # a different server with another CA behind the same name: the issuer differs
    srv = nginx_factory()
    other, _ = diagnose(tmp_path, capsys, f"127.0.0.1:{srv.port}", *QUICK)
    c = tmp_path / "other.json"
    c.write_text(json.dumps(other))
    assert main(["diff", str(a), str(c), "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "tls-interception" in [f["id"] for f in doc["findings"]]


def test_diff_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something/1"}')
    assert main(["diff", str(bad), str(bad)]) == 2
    assert "not a prober run" in capsys.readouterr().err
    assert main(["diff", str(tmp_path / "missing.json"), str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["diagnose", "127.0.0.1:1", "--idle-timeout", "0.5"]) == 2
    assert "--idle-timeout must be" in capsys.readouterr().err
    assert main(["diagnose", "127.0.0.1:1", "--pin-sha256", "abc"]) == 2
    assert "64 hex digits" in capsys.readouterr().err


# --- idle timeout ----------------------------------------------------------------------------


class IdleRelay:
    """A TCP relay that forgets a connection idle for more than ``idle`` seconds: the next
    segment from the client is answered with RST, as an AWS NLB does after 350 s."""

    def __init__(self, backend_port: int, idle: float) -> None:
        self.backend_port = backend_port
        self.idle = idle
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def __enter__(self) -> IdleRelay:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(asyncio.start_server(
            self._handle, "127.0.0.1", 0), self.loop).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        last = [time.monotonic()]

        async def up() -> None:
            while data := await reader.read(65536):
                if time.monotonic() - last[0] > self.idle:
                    servers.abort_with_rst(writer)  # the flow is forgotten: RST
                    return
                last[0] = time.monotonic()
                b_writer.write(data)
                await b_writer.drain()

        async def down() -> None:
            while data := await b_reader.read(65536):
                last[0] = time.monotonic()
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.create_task(up()), asyncio.create_task(down())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except OSError:
            pass
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            b_writer.close()
            writer.close()


def test_idle_timeout_is_measured(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  nginx_factory: Any) -> None:
    srv = nginx_factory()
    with IdleRelay(srv.port, idle=1.5) as relay:
        doc, _ = diagnose(tmp_path, capsys, f"127.0.0.1:{relay.port}", "--idle-timeout", "4",
                          *QUICK)
    found = {f["id"]: f for f in doc["findings"]}
    assert set(found) == {"idle-timeout", "policy"}, doc["findings"]
    f = found["idle-timeout"]
    lo, hi = f["figures"]["idle_timeout_s_min"], f["figures"]["idle_timeout_s_max"]
    assert 1.0 <= lo < 1.6 and 1.5 <= hi <= 2.0 and lo < hi, f
    assert f["figures"]["how"] == "reset"
    assert "answered with RST" in f["cause"]
    results = {p["wait_s"]: p["result"] for p in doc["idle"]["probes"]}
    assert results[1.0] == "alive" and results[2.0] == "reset"


# --- the netns lab (tests/lab): every scenario's cause named, nothing else ---------------------
#
# Each scenario is diagnosed once, from a lab client, with --capture; the runs go four at a
# time (they mostly wait on deadlines). Interception shows only between two vantage points:
# client1 and client2 are diagnosed and `prober diff`ed. Root only (tests/lab/fixtures.py
# skips with the reason otherwise).

# the same plan with shorter deadlines: the causes do not need 5 s to show
LAB_ARGS = ["-t", "2", "--capture"]
LAB_EXTRA = {"idle-timeout": ["--idle-timeout", "8"],
             # spread over ~4 s so the outage below falls in the middle of the run
             "flapping": ["--rate", "10"]}
# two-backends runs with the default sweep: 3 hellos per version all land on one backend
# in 1 run in 4, and diagnose itself sweeps again (the backends step) until the versions
# tell the backends apart
LAB_PARALLEL = 4
LAB_SCENARIOS = [s.name for s in catalog(LabParams())]
LAB_RUN_TIMEOUT_S = 120


def _lab_diagnose(lab: Lab, s: Scenario, host: str) -> dict[str, Any]:
    out = lab.workdir / f"diagnose-{s.name}-{host}.json"
    argv = [*lab.prober_argv(host), "diagnose", s.name_target, *LAB_ARGS,
            *LAB_EXTRA.get(s.name, []), "--json", str(out), "-q"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if s.name == "flapping":
        assert lab.flapper is not None
        try:
            time.sleep(1.5)
            lab.flapper.down()
            time.sleep(1.5)
        finally:
            lab.flapper.up()
    try:
        _, err = proc.communicate(timeout=LAB_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    assert proc.returncode == 0, f"{' '.join(argv)}: {err}"
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def _vantage(s: Scenario) -> str:
    """Where a scenario's cause shows: client2 for those only client2's path has."""
    return "client2" if s.clients == ("client2",) else "client1"


@pytest.fixture(scope="module")
def lab_runs(lab: Lab) -> dict[tuple[str, str], dict[str, Any]]:
    one_sided = [s for s in lab.scenarios.values() if _vantage(s) == "client2"]
    jobs = [(s, "client1") for s in lab.scenarios.values() if s not in one_sided]
    # from both sides: the cause shows in `prober diff` of the two
    jobs += [(s, h) for s in one_sided for h in ("client1", "client2")]
    # the flapping run goes first and alone: it toggles the server on a schedule
    flap = next(j for j in jobs if j[0].name == "flapping")
    jobs.remove(flap)
    out = {(flap[0].name, flap[1]): _lab_diagnose(lab, *flap)}
    with ThreadPoolExecutor(LAB_PARALLEL) as pool:
        futures = {(s.name, h): pool.submit(_lab_diagnose, lab, s, h) for s, h in jobs}
        out.update({k: f.result() for k, f in futures.items()})
    return out


def _serious_ids(doc: dict[str, Any]) -> list[str]:
    return [f["id"] for f in doc["findings"] if f["confidence"] != "info"]


@pytest.mark.root
@pytest.mark.parametrize("name", LAB_SCENARIOS)
def test_lab_scenario_is_named(name: str, lab: Lab,
                               lab_runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    s = lab.scenario(name)
    doc = lab_runs[(name, _vantage(s))]
    found = _serious_ids(doc)
    summary = [(f["id"], f["confidence"], f["cause"]) for f in doc["findings"]]
    if s.finding is None:
        assert found == [], summary
        assert [f["id"] for f in doc["findings"]] == ["policy"]
        return
    if name != "intercepting-proxy":  # one vantage cannot see it: the diff test does
        assert s.finding in found, summary
    false = [i for i in found if i != s.finding and i not in s.also]
    assert not false, summary


@pytest.mark.root
def test_lab_injected_reset_names_the_hop(lab_runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    doc = lab_runs[("injected-reset", "client1")]
    f = doc["findings"][0]
    assert f["id"] == "injected-reset" and f["confidence"] == "high"
    assert "1 hop closer than the server" in f["cause"]
    assert any("TTL 64 vs the SYN-ACK's 63" in e for e in f["evidence"])


@pytest.mark.root
def test_lab_size_drop_bisects_to_the_limit(
        lab: Lab, lab_runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    f = next(f for f in lab_runs[("size-drop", "client1")]["findings"] if f["id"] == "size-drop")
    limit = lab.params.size_limit  # IP packet bytes; the hello is the TCP payload
    assert limit - 80 < f["figures"]["breaking_bytes"] <= limit - 40, f
    assert f["figures"]["breaking_bytes"] - f["figures"]["largest_passing_bytes"] <= 16


@pytest.mark.root
def test_lab_idle_timeout_is_measured(lab: Lab,
                                      lab_runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    f = next(f for f in lab_runs[("idle-timeout", "client1")]["findings"]
             if f["id"] == "idle-timeout")
    limit = lab.params.idle_timeout_s
    lo, hi = f["figures"]["idle_timeout_s_min"], f["figures"]["idle_timeout_s_max"]
    assert lo <= limit + 0.5 and hi >= limit - 0.5 and hi - lo <= 1.5, f
    assert f["figures"]["how"] == "reset"


@pytest.mark.root
def test_lab_two_backends_told_apart(lab_runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    f = next(f for f in lab_runs[("two-backends", "client1")]["findings"]
             if f["id"] == "intermittent")
    assert len(f["figures"]["certificates"]) == 2, f
    assert "distinct backends" in f["cause"]
    # the version sweep went on (bounded) until TLS 1.1 met both backends
    doc = lab_runs[("two-backends", "client1")]
    swept = [a for a in doc["attempts"] if a.get("step") in ("sweep", "backends")]
    assert {a["outcome"] for a in swept if a["profile"] == "tls1.1-only"} == {"ok", "alert"}
    assert max(Counter(a["profile"] for a in swept).values()) <= BACKEND_HELLOS


@pytest.mark.root
def test_lab_interception_shows_in_the_diff(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        lab_runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    a, b = tmp_path / "client1.json", tmp_path / "client2.json"
    a.write_text(json.dumps(lab_runs[("intercepting-proxy", "client1")]))
    b.write_text(json.dumps(lab_runs[("intercepting-proxy", "client2")]))
    assert main(["diff", str(a), str(b), "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    f = next(f for f in doc["findings"] if f["id"] == "tls-interception")
    assert any("prober lab intercept CA" in e for e in f["evidence"]), f


@pytest.mark.root
def test_lab_outside_only_reset_shows_in_the_diff(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        lab_runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    inside = lab_runs[("outside-reset", "client1")]
    assert _serious_ids(inside) == [], inside["findings"]
    a, b = tmp_path / "client1.json", tmp_path / "client2.json"
    a.write_text(json.dumps(inside))
    b.write_text(json.dumps(lab_runs[("outside-reset", "client2")]))
    assert main(["diff", str(a), str(b), "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (f,) = [f for f in doc["findings"] if f["id"] != "policy"]
    assert f["id"] == "injected-reset" and f["cause"].startswith("client2 only: RST"), f
    assert f["figures"]["side"] == "client2"
    assert doc["own_findings"]["b_only"] == ["injected-reset"]


@pytest.mark.root
def test_lab_new_causes_carry_their_figures(
        lab: Lab, lab_runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    def finding(name: str, fid: str) -> dict[str, Any]:
        doc = lab_runs[(name, "client1")]
        return next(f for f in doc["findings"] if f["id"] == fid)

    f = finding("sni-required", "sni-required")
    assert f["figures"]["alerts"] == ["unrecognized_name"], f
    f = finding("client-certificate", "client-certificate")
    assert f["figures"]["ca_names"] == ["CN=prober lab CA,O=prober lab"], f
    f = finding("mixed-certificates", "mixed-certificates")
    assert len(f["figures"]["certificates"]) == 2 and "EXPIRED" in f["cause"], f
    f = finding("size-window", "size-window")
    lo, hi = lab.params.size_window  # IP packet lengths; the hello is the TCP payload
    got_lo, got_hi = f["figures"]["window_bytes"]
    assert lo - 80 < got_lo <= lo - 40 and hi - 80 <= got_hi < hi - 40, f
    assert got_lo - f["figures"]["passing_below_bytes"] <= 16
    assert f["figures"]["passing_above_bytes"] - got_hi <= 16
    f = finding("rate-limited", "rate-limited")
    assert f["figures"]["retries_in"] >= 1 and f["figures"]["bursts"] >= 2, f
    assert lab.params.rate_per_s // 2 <= f["figures"]["allowed_per_s"] <= \
        3 * (lab.params.rate_per_s + lab.params.rate_burst), f
    f = finding("lossy-path", "lossy-path")
    assert f["figures"]["retransmitting"] >= 3, f
    f = finding("version-intolerance", "version-intolerance")
    assert f["figures"]["version"] == "TLSv1.2", f
    # the SNI-filtered sweep was repeated without SNI: no version is called refused
    pol = finding("sni-drop", "policy")
    assert pol["figures"]["without_sni"] is True, pol
    assert pol["figures"]["accepted"] == ["TLSv1.3", "TLSv1.2"], pol
    for name, kind in (("wrong-service", "wrong-service"), ("port-closed", "port-closed"),
                       ("endpoint-unreachable", "unreachable")):
        doc = lab_runs[(name, "client1")]
        assert doc["tls_endpoint"]["kind"] == kind, doc["tls_endpoint"]


@pytest.mark.root
def test_lab_policy_rides_out_a_rate_limit(lab: Lab) -> None:
    """`prober policy` against the rate-limited service: refused connections are retried
    after a back-off (new attempts, ``retry_of``), so the scan stays reliable and exact."""
    s = lab.scenario("rate-limited")
    out = lab.workdir / "policy-rate-limited.json"
    argv = [*lab.prober_argv("client1"), "policy", s.name_target, "-t", "2", "--json",
            str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=LAB_RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["policy"]["versions"] == ["TLSv1.3", "TLSv1.2"], doc["warnings"]
    refused = {a["id"] for a in doc["attempts"] if a["outcome"] == "refused"}
    retried = {a["retry_of"] for a in doc["attempts"] if "retry_of" in a}
    assert retried, "no refused attempt was retried"
    assert retried <= refused  # only what was turned away for load is tried again
