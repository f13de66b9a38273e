"""The HTML report of real diagnoses in the netns lab (tests/lab), read in headless
Chromium: a silent proxy and an injected reset get their middlebox lane, with the
arrow the finding cites highlighted; interception shows the interceptor's issuer; the
two backends' behaviours each get their diagram; a healthy endpoint gets none of that.

One lab for the module; the five runs go at once (they mostly wait on deadlines).
Screenshots go to ``out/screenshots/lab-*.png`` (CI keeps them as artifacts). Root only
(tests/lab/fixtures.py skips with the reason otherwise).
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_bins
from tests.lab import Lab
from tests.report import browser

# the lab's diagnose runs (tests/diagnose/test_live.py): short deadlines, with packets
ARGS = ["-t", "2", "--capture"]
# scenario -> (client host, extra arguments)
RUNS: dict[str, tuple[str, list[str]]] = {
    "silent-proxy": ("client1", []),
    "injected-reset": ("client1", []),
    # only client2's path is intercepted; the issuer it should see makes it a finding
    "intercepting-proxy": ("client2", ["--expect-issuer", "prober lab CA"]),
    # 8 hellos per version: both backends answer some (see test_live.LAB_EXTRA)
    "two-backends": ("client1", ["--sweep-repeat", "8"]),
    "healthy": ("client1", []),
}
RUN_TIMEOUT_S = 120

pytestmark = pytest.mark.root


def _run(lab: Lab, name: str) -> tuple[Path, dict[str, Any]]:
    host, extra = RUNS[name]
    out_json, out_html = lab.workdir / f"html-{name}.json", lab.workdir / f"html-{name}.html"
    argv = [*lab.prober_argv(host), "diagnose", lab.scenario(name).name_target, *ARGS, *extra,
            "--json", str(out_json), "--html", str(out_html), "-q"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    return out_html, json.loads(out_json.read_text())


@pytest.fixture(scope="module")
def runs(lab: Lab) -> dict[str, tuple[Path, dict[str, Any]]]:
    with ThreadPoolExecutor(len(RUNS)) as pool:
        futures = {name: pool.submit(_run, lab, name) for name in RUNS}
        return {name: f.result() for name, f in futures.items()}


def _page(chrome: Any, runs: dict[str, tuple[Path, dict[str, Any]]], name: str
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page of a lab run as the browser lays it out (screenshot saved), checked for
    what every page must be: offline, and every diagram in order and legible."""
    html, doc = runs[name]
    page = browser.layout(chrome, html, browser.SHOTS / f"lab-{name}.png")
    browser.check_offline(page)
    assert page["svgs"]
    for svg in page["svgs"]:
        browser.check_diagram(svg)
    return page, doc


def _finding(doc: dict[str, Any], fid: str) -> dict[str, Any]:
    return next(f for f in doc["findings"] if f["id"] == fid)


def test_lab_silent_proxy_page(chrome: Any,
                               runs: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """The ClientHello goes to a middlebox lane, which ACKs it: that ACK is the
    highlighted arrow, of an attempt the finding cites; nothing answers from the server."""
    page, doc = _page(chrome, runs, "silent-proxy")
    finding = _finding(doc, "silent-proxy")
    svg = browser.finding_svg(page, "silent-proxy")
    assert [ln["key"] for ln in svg["lanes"]] == ["client", "middlebox", "server"]
    [hl] = [a for a in svg["arrows"] if a["highlight"]]
    assert (hl["kind"], hl["from"], hl["to"]) == ("hello_ack", "middlebox", "client")
    assert int(hl["attempt"]) in finding["attempts"]
    kinds = [a["kind"] for a in svg["arrows"]]
    hello = svg["arrows"][kinds.index("hello")]
    assert hello["to"] == "middlebox" and kinds.index("hello") < kinds.index("hello_ack")
    # the server never saw the hello: no TLS answer at all, from any lane
    assert not {"flight", "alert", "data"} & set(kinds)
    # captured packets: the ACK carries its TTL, as the lab's router sent it
    assert f"TTL {hl['ttl']}" in hl["label"]


def test_lab_injected_reset_page(chrome: Any,
                                 runs: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """The RST comes from a middlebox lane, highlighted: its TTL is not the SYN-ACK's,
    and it is the RST the finding's evidence cites."""
    page, doc = _page(chrome, runs, "injected-reset")
    finding = _finding(doc, "injected-reset")
    svg = browser.finding_svg(page, "injected-reset")
    assert [ln["key"] for ln in svg["lanes"]] == ["client", "middlebox", "server"]
    [hl] = [a for a in svg["arrows"] if a["highlight"]]
    assert (hl["kind"], hl["from"], hl["to"]) == ("rst", "middlebox", "client")
    assert int(hl["attempt"]) in finding["attempts"]
    synack = next(a for a in svg["arrows"] if a["kind"] == "synack")
    assert synack["from"] == "server" and synack["ttl"] != hl["ttl"]
    said = f"TTL {hl['ttl']} vs the SYN-ACK's {synack['ttl']}"
    assert any(said in e for e in finding["evidence"]), (said, finding["evidence"])
    # the hello went to the server; the answer came from closer
    hello = next(a for a in svg["arrows"] if a["kind"] == "hello")
    assert hello["to"] == "server" and hello["line"]["y"] < hl["line"]["y"]
    # every diagram of a cited attempt further down places its RST the same way
    cited = [s for s in page["svgs"] if s["attempt"] and int(s["attempt"]) in finding["attempts"]]
    assert len(cited) > 1
    for s in cited:
        assert {(a["from"], a["highlight"]) for a in s["arrows"] if a["kind"] == "rst"} == {
            ("middlebox", True)}, s["id"]


def test_lab_interception_page(chrome: Any,
                               runs: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """From the intercepted side: the certificate section shows the interceptor's issuer
    (and only it), and the finding highlights the flight that carried it."""
    page, doc = _page(chrome, runs, "intercepting-proxy")
    finding = _finding(doc, "tls-interception")
    issuers = {c["issuer"] for c in page["certs"]}
    assert issuers == {"CN=prober lab intercept CA,O=prober lab intercept"}, page["certs"]
    assert all(c["box"]["h"] > 0 for c in page["certs"])
    assert "prober lab intercept CA" in finding["cause"]
    svg = browser.finding_svg(page, "tls-interception")
    assert [ln["key"] for ln in svg["lanes"]] == ["client", "server"]
    hls = [a for a in svg["arrows"] if a["highlight"]]
    assert [(a["kind"], a["from"]) for a in hls] == [("flight", "server")]
    assert int(hls[0]["attempt"]) in finding["attempts"]


def test_lab_two_backends_page(chrome: Any,
                               runs: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """The same hello answered two ways: the intermittent finding draws each behaviour,
    the server's answer highlighted in each; the two certificates are both listed."""
    page, doc = _page(chrome, runs, "two-backends")
    finding = _finding(doc, "intermittent")
    by_id = {a["id"]: a for a in doc["attempts"]}
    section = next(f for f in page["findings"] if f["id"] == "intermittent")
    svgs = [next(s for s in page["svgs"] if s["id"] == i) for i in section["svgs"]]
    assert len(svgs) >= 2, section
    shown = [by_id[int(s["attempt"])] for s in svgs]
    assert all(a["id"] in finding["attempts"] for a in shown)
    assert len({a["profile"] for a in shown}) == 1  # the same hello...
    assert len({(a["outcome"], a.get("detail")) for a in shown}) == len(shown)  # ...answered
    for svg, a in zip(svgs, shown, strict=True):
        hls = [x for x in svg["arrows"] if x["highlight"]]
        assert hls and all(x["from"] == "server" for x in hls), (svg["id"], hls)
        answer = "flight" if a["outcome"] == "ok" else "alert"
        assert answer in {x["kind"] for x in hls}, (svg["id"], a["outcome"], hls)
    subjects = {c["subject"].split(",")[0] for c in page["certs"]}
    assert subjects == {"CN=backend-a.lab.test", "CN=backend-b.lab.test"}, page["certs"]


def test_lab_healthy_page(chrome: Any, runs: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """Nothing on the path: no finding diagram, no middlebox lane, nothing highlighted."""
    page, doc = _page(chrome, runs, "healthy")
    assert [f["id"] for f in doc["findings"]] == ["policy"]
    assert [f["svg"] for f in page["findings"]] == [None]
    for svg in page["svgs"]:
        assert [ln["key"] for ln in svg["lanes"]] == ["client", "server"], svg["id"]
        assert not any(a["highlight"] for a in svg["arrows"]), svg["id"]
    assert {c["subject"].split(",")[0] for c in page["certs"]} == {"CN=healthy.lab.test"}


def test_lab_pcap_keylog_both_directions(lab: Lab, tmp_path: Path) -> None:
    """Off loopback the capture holds the prober's own packets too: without the
    ClientHello (its random) Wireshark could not use the key log."""
    need_bins("tshark")
    pcap, keys = lab.workdir / "lab.pcapng", lab.workdir / "lab.keys"
    argv = [*lab.prober_argv("client1"), "probe", lab.scenario("healthy").name_target, "-p",
            "tls1.3-only", "-n", "2", "--pcap", str(pcap), "--keylog", str(keys), "-q"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert r.returncode == 0, r.stderr

    def tshark(*args: str) -> list[str]:
        t = subprocess.run(["tshark", "-r", str(pcap), *args], capture_output=True, text=True,
                           timeout=60)
        assert t.returncode == 0, t.stderr
        return t.stdout.split()

    server = lab.scenario("healthy").address
    assert tshark("-Y", "tls.handshake.type==1", "-T", "fields", "-e", "ip.dst") == [server] * 2
    assert tshark("-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields", "-e",
                  "ip.dst") == [server] * 2
    certs = tshark("-o", f"tls.keylog_file:{keys}", "-Y", "tls.handshake.type==11", "-T",
                   "fields", "-e", "ip.src")
    assert certs == [server] * 2
