"""The HTML report of real runs, rendered in headless Chromium, and the pcapng/key log
of a TLS 1.3 probe read back by tshark.

Every run is against a loopback peer: ``prober demo serve`` (its ALB-like front resets
TLS 1.1 and older; its silent listener ACKs and never answers) and nginx. Screenshots of
the rendered pages go to ``out/screenshots/`` (CI keeps them as artifacts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_bins
from tests.peers.nginx_server import NginxServer
from tests.report import browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = browser.SHOTS
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def prober(*args: str, timeout: float = 120, check: bool = True,
           prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*prefix, sys.executable, "-m", "prober", *args], capture_output=True,
                       text=True, timeout=timeout, env=ENV, cwd=ROOT)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    port_file = tmp_path_factory.mktemp("demo") / "ports"
    proc = subprocess.Popen([sys.executable, "-m", "prober", "demo", "serve", "--port-file",
                             str(port_file)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or "SILENT" not in port_file.read_text():
            assert proc.poll() is None, "prober demo serve exited"
            assert time.monotonic() < deadline, "prober demo serve did not start"
            time.sleep(0.1)
        ports = dict(line.split("=") for line in port_file.read_text().split())
        yield {k: int(v) for k, v in ports.items()}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _root() -> bool:
    return os.geteuid() == 0


def test_diagnose_demo_front_html(demo: dict[str, int], chrome: Any, tmp_path: Path) -> None:
    """Field case 1: the RST the front answers TLS 1.1 with is the highlighted arrow of
    the policy-reset finding, on the server's lane, with the TTL and IP ID captured."""
    capture = ["--capture"] if _root() else []
    out = tmp_path / "front.html"
    prober("diagnose", f"127.0.0.1:{demo['FRONT']}", "-t", "2", "-n", "3", *capture,
           "--json", str(tmp_path / "front.json"), "--html", str(out), "-q")
    doc = json.loads((tmp_path / "front.json").read_text())
    page = browser.layout(chrome, out, SHOTS / "diagnose-demo-front.png")
    browser.check_offline(page)
    assert page["svgs"]
    for svg in page["svgs"]:
        browser.check_diagram(svg)
    finding = next(f for f in doc["findings"] if f["id"] == "policy-reset")
    svg = browser.finding_svg(page, "policy-reset")
    assert {ln["key"] for ln in svg["lanes"]} == {"client", "server"}
    [hl] = [a for a in svg["arrows"] if a["highlight"]]
    assert hl["kind"] == "rst" and (hl["from"], hl["to"]) == ("server", "client")
    assert int(hl["attempt"]) in finding["attempts"]
    assert hl["stroke"] == "rgb(198, 40, 40)"  # drawn in the highlight colour
    if capture:
        assert "TTL 64" in hl["label"] and "IP ID" in hl["label"]
    # the evidence links to the attempts it cites, and every link has its target
    links = next(f for f in page["findings"] if f["id"] == "policy-reset")["links"]
    assert {f"#a-{i}" for i in finding["attempts"][:3]} <= set(links)
    for link in links:
        assert chrome.find_elements("id", link[1:]), link
    # the saved run draws the same without probing again
    again = tmp_path / "again.html"
    prober("report", str(tmp_path / "front.json"), "--html", str(again))
    assert again.read_text() == out.read_text()


def test_diagnose_silent_listener_html(demo: dict[str, int], chrome: Any,
                                       tmp_path: Path) -> None:
    """Field case 3 in small: the ACK of a hello no server ever answers comes from a
    middlebox lane, and it is the highlighted arrow of silent-proxy."""
    out = tmp_path / "silent.html"
    prober("diagnose", f"127.0.0.1:{demo['SILENT']}", "-t", "1", "-n", "2",
           "--sweep-repeat", "1", "--json", str(tmp_path / "silent.json"), "--html", str(out),
           "-q")
    doc = json.loads((tmp_path / "silent.json").read_text())
    page = browser.layout(chrome, out, SHOTS / "diagnose-silent-listener.png")
    browser.check_offline(page)
    for svg in page["svgs"]:
        browser.check_diagram(svg)
    finding = next(f for f in doc["findings"] if f["id"] == "silent-proxy")
    svg = browser.finding_svg(page, "silent-proxy")
    assert [ln["key"] for ln in svg["lanes"]] == ["client", "middlebox", "server"]
    [hl] = [a for a in svg["arrows"] if a["highlight"]]
    assert (hl["kind"], hl["from"], hl["to"]) == ("hello_ack", "middlebox", "client")
    assert int(hl["attempt"]) in finding["attempts"]
    # the hello goes to the middlebox, never to the server
    hello = next(a for a in svg["arrows"] if a["kind"] == "hello")
    assert hello["to"] == "middlebox"


def test_diff_html_side_by_side(demo: dict[str, int], chrome: Any, tmp_path: Path) -> None:
    runs = {}
    for name, port in (("front", demo["FRONT"]), ("silent", demo["SILENT"])):
        runs[name] = tmp_path / f"{name}.json"
        prober("probe", f"127.0.0.1:{port}", "-p", "tls1.1-only", "-p", "tls1.2-only", "-t",
               "1", "--json", str(runs[name]), "-q")
    out = tmp_path / "diff.html"
    prober("diff", str(runs["front"]), str(runs["silent"]), "--json",
           str(tmp_path / "diff.json"), "--html", str(out))
    page = browser.layout(chrome, out, SHOTS / "diff-front-vs-silent.png")
    browser.check_offline(page)
    pairs = [s for s in page["svgs"] if s["id"].startswith(("A-", "B-"))]
    assert pairs and len(pairs) % 2 == 0
    for a_svg, b_svg in zip(pairs[::2], pairs[1::2], strict=True):
        browser.check_diagram(a_svg)
        browser.check_diagram(b_svg)
        # side by side: B's drawing to the right of A's, their heights overlapping
        assert b_svg["lanes"][0]["box"]["x"] > a_svg["lanes"][-1]["box"]["x"]
        assert b_svg["lanes"][0]["box"]["y"] < a_svg["arrows"][-1]["line"]["y"]
        assert a_svg["lanes"][0]["box"]["y"] < b_svg["arrows"][-1]["line"]["y"]
    prober("report", str(tmp_path / "diff.json"), "--html", str(tmp_path / "saved.html"))


def test_policy_and_check_html(demo: dict[str, int], chrome: Any, tmp_path: Path) -> None:
    out = tmp_path / "policy.html"
    prober("policy", f"127.0.0.1:{demo['FRONT']}", "-t", "2", "--html", str(out))
    page = browser.layout(chrome, out, SHOTS / "policy-demo-front.png")
    browser.check_offline(page)
    assert "ELBSecurityPolicy-FS-1-2-Res-2020-10" in page["text"]
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in page["text"]
    for svg in page["svgs"]:
        browser.check_diagram(svg)
    out = tmp_path / "check.html"
    r = prober("check", f"127.0.0.1:{demo['FRONT']}", "--expect",
               str(ROOT / ".ci" / "expect.yaml"), "--html", str(out), check=False)
    assert r.returncode in (0, 1), r.stderr
    page = browser.layout(chrome, out, SHOTS / "check-demo-front.png")
    browser.check_offline(page)
    assert "PASS" in page["text"]


def test_server_strings_are_escaped(chrome: Any, tmp_path: Path) -> None:
    """A banner is what a server sent: it is shown, never interpreted."""
    from prober.probe.html import render

    evil = "<script>alert(1)</script>\x1b[31m\u202eevil<img src=http://x.test/a>"
    attempt = {"id": 1, "target": "t:1", "host": "t", "port": 1, "address": "127.0.0.1",
               "profile": "p", "outcome": "not-tls", "detail": f"banner {evil}",
               "end": "complete", "banner": evil, "hello_bytes": 10,
               "timings_ms": {"connect": 1.0, "hello_sent": 1.1, "hello_acked": 1.2,
                              "first_byte": 2.0, "total": 2.1},
               "tcp": {"acked": True}, "server_messages": [], "server_bytes": 80,
               "certificate": {"sha256": "ab" * 32, "subject": f"CN={evil}", "issuer": evil}}
    doc = {"schema": "prober.probe/1", "targets": [{"target": "t:1"}], "vantage": {},
           "attempts": [attempt]}
    out = tmp_path / "evil.html"
    out.write_text(render(doc))
    html = out.read_text()
    assert "<script>" not in html and "<img src=http" not in html
    assert "\x1b" not in html and "\u202e" not in html
    page = browser.layout(chrome, out)
    browser.check_offline(page)
    assert "<script>alert(1)</script>\\x1b[31m\\u202eevil" in page["text"]


def test_pcap_needs_raw_capture_and_sends_nothing(demo: dict[str, int],
                                                  tmp_path: Path) -> None:
    """Without CAP_NET_RAW, --pcap is refused with exit 2 before the first packet."""
    need_bins("setpriv")
    if not _root():
        pytest.skip("dropping CAP_NET_RAW from the bounding set is done as root")
    r = prober("probe", f"127.0.0.1:{demo['FRONT']}", "-p", "tls1.2-only", "--pcap",
               str(tmp_path / "x.pcapng"), "--jsonl", str(tmp_path / "a.jsonl"), check=False,
               prefix=("setpriv", "--bounding-set=-net_raw"))
    assert r.returncode == 2, r.stderr
    assert "--pcap" in r.stderr and "CAP_NET_RAW" in r.stderr and "nothing was sent" in r.stderr
    assert (tmp_path / "a.jsonl").read_text() == ""


def _tshark(*args: str) -> list[str]:
    r = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line.strip()]


def test_pcap_keylog_decrypt_tls13_nginx(nginx_factory: Callable[..., NginxServer],
                                         chrome: Any, tmp_path: Path) -> None:
    """tshark reads the attempts' comments back and, with the key log, decrypts the
    Certificate of every TLS 1.3 attempt against a real nginx."""
    need_bins("tshark", "nginx")
    if not _root():
        pytest.skip("--pcap needs root or CAP_NET_RAW")
    srv = nginx_factory(protocols="TLSv1.2 TLSv1.3")
    pcap, keys, page_out = tmp_path / "run.pcapng", tmp_path / "keys.log", tmp_path / "p.html"
    prober("probe", f"127.0.0.1:{srv.port}", "-p", "tls1.3-only", "-p", "tls1.2-only", "-n",
           "3", "--pcap", str(pcap), "--keylog", str(keys), "--json",
           str(tmp_path / "run.json"), "--html", str(page_out), "-q")
    doc = json.loads((tmp_path / "run.json").read_text())
    tls13 = [a for a in doc["attempts"] if a["profile"] == "tls1.3-only"]
    assert [a["outcome"] for a in tls13] == ["ok"] * 3
    lines = [ln for ln in keys.read_text().splitlines() if not ln.startswith("#")]
    assert len(lines) == 6  # two per TLS 1.3 attempt, none for TLS 1.2
    assert {ln.split()[0] for ln in lines} == {"CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                                               "SERVER_HANDSHAKE_TRAFFIC_SECRET"}
    comments = _tshark("-r", str(pcap), "-Y", "frame.comment", "-T", "fields", "-e",
                       "frame.comment")
    assert len(comments) == len(doc["attempts"]) == 6
    for a in doc["attempts"]:
        assert any(f"prober attempt {a['id']}: profile {a['profile']}, outcome {a['outcome']}"
                   in c for c in comments), a["id"]
    # the whole packets, each once (loopback shows each twice to a packet socket)
    hellos = _tshark("-r", str(pcap), "-Y", "tls.handshake.type==1", "-T", "fields", "-e",
                     "frame.number")
    assert len(hellos) == 6
    certs = _tshark("-r", str(pcap), "-o", f"tls.keylog_file:{keys}", "-Y",
                    "tls.handshake.type==11", "-T", "fields", "-e", "tls.handshake.type",
                    "-e", "x509sat.uTF8String", "-e", "tcp.stream")
    # three decrypted TLS 1.3 Certificates plus the three plaintext TLS 1.2 ones
    assert len(certs) == 6, certs
    without_keys = _tshark("-r", str(pcap), "-Y", "tls.handshake.type==11")
    assert len(without_keys) == 3  # TLS 1.2 only: TLS 1.3's is encrypted
    (tmp_path / "tshark.txt").write_text("\n".join(certs))
    page = browser.layout(chrome, page_out, SHOTS / "probe-nginx-tls13.png")
    browser.check_offline(page)
    for svg in page["svgs"]:
        browser.check_diagram(svg)
    if shutil.which("tshark"):
        # what the README shows
        SHOTS.parent.mkdir(parents=True, exist_ok=True)
        (SHOTS.parent / "tshark-certificate.txt").write_text(
            "\n".join(_tshark("-r", str(pcap), "-o", f"tls.keylog_file:{keys}", "-Y",
                              "tls.handshake.type==11")) + "\n")


def test_keylog_after_hello_retry_request(nginx_factory: Callable[..., NginxServer],
                                          tmp_path: Path) -> None:
    """After a HelloRetryRequest the lines stay keyed by the first hello's random (the
    second repeats it), and tshark still decrypts the flight."""
    need_bins("tshark", "nginx")
    if not _root():
        pytest.skip("--pcap needs root or CAP_NET_RAW")
    srv = nginx_factory(protocols="TLSv1.3", ecdh_curve="secp384r1")
    pcap, keys = tmp_path / "hrr.pcapng", tmp_path / "hrr.log"
    prober("probe", f"127.0.0.1:{srv.port}", "-p", "tls1.3-only", "--pcap", str(pcap),
           "--keylog", str(keys), "--json", str(tmp_path / "hrr.json"), "-q")
    [a] = json.loads((tmp_path / "hrr.json").read_text())["attempts"]
    assert a["outcome"] == "ok" and a["negotiated"]["hrr_group"] == "secp384r1", a
    randoms = _tshark("-r", str(pcap), "-Y", "tls.handshake.type==1", "-T", "fields", "-e",
                      "tls.handshake.random")
    assert len(randoms) == 2 and randoms[0] == randoms[1]
    lines = [ln.split() for ln in keys.read_text().splitlines() if not ln.startswith("#")]
    assert [ln[1] for ln in lines] == [randoms[0].replace(":", "")] * 2
    certs = _tshark("-r", str(pcap), "-o", f"tls.keylog_file:{keys}", "-Y",
                    "tls.handshake.type==11")
    assert len(certs) == 1


# --- --pcap and --keylog on the other commands that connect: check, whatif's live run --------


def _comments(pcap: Path) -> list[str]:
    return _tshark("-r", str(pcap), "-Y", "frame.comment", "-T", "fields", "-e",
                   "frame.comment")


def _read_back(pcap: Path, keys: Path, listed: list[tuple[str, str]], tls13_ok: int) -> int:
    """What tshark makes of a run's capture: one comment per attempt, each its own id,
    one naming each (profile, outcome) of ``listed`` (the attempts the run's JSON shows);
    the key log holds both secrets of at least ``tls13_ok`` handshakes, and with it tshark
    decrypts exactly one more Certificate per keyed handshake. The attempts counted."""
    comments = _comments(pcap)
    ids = sorted(int(c.split()[2].rstrip(":")) for c in comments)
    assert ids == list(range(1, len(comments) + 1)), ids
    for profile, outcome in listed:
        assert any(f"profile {profile}, outcome {outcome}" in c for c in comments), (
            profile, outcome, comments)
    lines = [ln.split() for ln in keys.read_text().splitlines() if not ln.startswith("#")]
    client = {ln[1] for ln in lines if ln[0] == "CLIENT_HANDSHAKE_TRAFFIC_SECRET"}
    server = {ln[1] for ln in lines if ln[0] == "SERVER_HANDSHAKE_TRAFFIC_SECRET"}
    assert client == server and len(client) >= tls13_ok > 0, lines
    decrypted = _tshark("-r", str(pcap), "-o", f"tls.keylog_file:{keys}", "-Y",
                        "tls.handshake.type==11", "-T", "fields", "-e", "tcp.stream")
    plain = _tshark("-r", str(pcap), "-Y", "tls.handshake.type==11", "-T", "fields", "-e",
                    "tcp.stream")
    assert len(decrypted) - len(plain) == len(client), (decrypted, plain, len(client))
    return len(comments)


def test_check_pcap_keylog_decrypt_tls13_nginx(nginx_factory: Callable[..., NginxServer],
                                               tmp_path: Path) -> None:
    """`prober check` records the gate's attempts and its policy scan's: tshark reads the
    comments back and decrypts every TLS 1.3 Certificate with the key log."""
    need_bins("tshark", "nginx")
    if not _root():
        pytest.skip("--pcap needs root or CAP_NET_RAW")
    srv = nginx_factory(protocols="TLSv1.2 TLSv1.3")
    expect = tmp_path / "expect.yaml"
    expect.write_text("schema: 1\nrepeat: 2\nprofiles:\n"
                      "  - profiles: [tls1.3-only, tls1.2-only]\n    allow: ok\n"
                      "policy:\n  no_weaker_than: ELBSecurityPolicy-2016-08\n")
    pcap, keys, out = tmp_path / "check.pcapng", tmp_path / "check.keys", tmp_path / "c.json"
    r = prober("check", f"127.0.0.1:{srv.port}", "-e", str(expect), "-t", "3", "--pcap",
               str(pcap), "--keylog", str(keys), "--json", str(out), check=False)
    # nginx's HIGH accepts ARIA and Camellia, which no ELB policy has: the policy verdict
    # is not the point here, the scan's attempts being recorded is
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(out.read_text())
    listed = [(a["profile"], a["outcome"]) for a in doc["attempts"]]
    assert sorted(listed) == [("tls1.2-only", "ok")] * 2 + [("tls1.3-only", "ok")] * 2
    assert "packets in" in r.stderr and "TLS 1.3 handshake(s) in" in r.stderr
    total = _read_back(pcap, keys, listed, tls13_ok=2)
    # the gate's attempts keep their JSON ids; the policy scan's follow them
    assert total > len(listed)
    for a in doc["attempts"]:
        assert any(c.startswith(f"prober attempt {a['id']}: profile {a['profile']},")
                   for c in _comments(pcap)), a


def test_whatif_live_pcap_keylog_decrypt_tls13_nginx(
        nginx_factory: Callable[..., NginxServer], tmp_path: Path) -> None:
    """whatif --against records its live hellos, one attempt per client; tshark
    decrypts the TLS 1.3 one."""
    need_bins("tshark", "nginx")
    if not _root():
        pytest.skip("--pcap needs root or CAP_NET_RAW")
    srv = nginx_factory(protocols="TLSv1.2 TLSv1.3")
    pcap, keys, out = tmp_path / "w.pcapng", tmp_path / "w.keys", tmp_path / "w.json"
    prober("whatif", "--policy", "ELBSecurityPolicy-TLS13-1-2-2021-06", "--clients",
           "tls1.3-only", "tls1.2-only", "tls1.1-only", "--against", f"127.0.0.1:{srv.port}",
           "-t", "3", "--pcap", str(pcap), "--keylog", str(keys), "--json", str(out))
    doc = json.loads(out.read_text())
    listed = [(c["client"], c["live"]["outcome"]) for c in doc["clients"]]
    assert dict(listed)["tls1.3-only"] == "ok" and dict(listed)["tls1.1-only"] != "ok"
    assert _read_back(pcap, keys, listed, tls13_ok=1) == 3


def test_wire_files_need_a_connection_and_a_capture(
        nginx_factory: Callable[..., NginxServer], tmp_path: Path) -> None:
    """whatif without a live endpoint connects nowhere: --pcap/--keylog there are a
    one-line usage error. Without CAP_NET_RAW, check and whatif --against exit 2 before
    the first packet (nginx logs no connection)."""
    for opt in ("--pcap", "--keylog"):
        r = prober("whatif", "--policy", "ELBSecurityPolicy-TLS13-1-2-2021-06", "--clients",
                   "tls1.2-only", opt, str(tmp_path / "x"), check=False)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert opt in r.stderr and "--against" in r.stderr
        assert not (tmp_path / "x").exists()
    need_bins("setpriv", "nginx")
    if not _root():
        pytest.skip("dropping CAP_NET_RAW from the bounding set is done as root")
    srv = nginx_factory()
    no_raw = ("setpriv", "--bounding-set=-net_raw")
    expect = tmp_path / "expect.yaml"
    expect.write_text("schema: 1\nprofiles:\n  - profiles: [tls1.2-only]\n    allow: ok\n")
    for argv in (["check", f"127.0.0.1:{srv.port}", "-e", str(expect)],
                 ["whatif", "--policy", "ELBSecurityPolicy-TLS13-1-2-2021-06", "--clients",
                  "tls1.2-only", "--against", f"127.0.0.1:{srv.port}"]):
        r = prober(*argv, "--pcap", str(tmp_path / "c.pcapng"), check=False, prefix=no_raw)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "--pcap" in r.stderr, r.stderr
        assert "CAP_NET_RAW" in r.stderr and "nothing was sent" in r.stderr
    # the server saw nothing: a connection it had accepted would be logged by now
    prober("probe", f"127.0.0.1:{srv.port}", "-p", "tls1.2-only", "-q")
    assert len(srv.wait_sessions(1)) == 1
