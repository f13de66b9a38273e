"""The netns lab (issue 5): every scenario really behaves as its ground truth says.

Each test probes one scenario with ``prober probe`` run inside a lab client, and where
prober does not measure something yet (TTL), with ``tcpdump -v`` on the client's
interface.  These tests check the *lab*, not a diagnosis: the rules of ``prober
diagnose`` are tested against the same lab elsewhere.

Needs root; skips with the reason otherwise (see tests/lab/fixtures.py).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.lab import Lab, LabError, Packet, idle_probe_code
from tests.lab.fixtures import lab
from tests.lab.netns import cleanup_stale, list_netns, run
from tests.lab.scenarios import BACKEND_A, BACKEND_B, FINDING_IDS, SERVICE_ADDRESSES
from tests.peers.lifecycle import poll_until

__all__ = ["lab"]  # the fixture, imported for this module

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
SERVER_TTL = 63  # the server's 64, minus the router's hop
ROUTER_TTL = 64  # packets the router makes itself


def cells(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["profile"]: c for c in doc["summary"]}


def outcomes(doc: dict[str, Any]) -> dict[str, dict[str, int]]:
    """profile -> {outcome: count}."""
    return {p: c["counts"] for p, c in cells(doc).items()}


def attempts(doc: dict[str, Any], profile: str) -> list[dict[str, Any]]:
    return [a for a in doc["attempts"] if a["profile"] == profile]


def alerts(doc: dict[str, Any], profile: str) -> set[str]:
    return {a.get("alert", {}).get("description") for a in attempts(doc, profile)}


def from_server(packets: list[Packet], address: str, flags: str) -> list[Packet]:
    return [p for p in packets if p.src == address and p.sport == 443 and p.flags == flags]


def probe(lab: Lab, name: str, *args: str, host: str = "client1") -> dict[str, Any]:
    s = lab.scenario(name)
    return lab.probe(s.target, "--sni", s.sni, *args, host=host)


# -- the lab itself --------------------------------------------------------------------


def test_catalog_covers_every_finding(lab: Lab) -> None:
    names = [s.finding for s in lab.scenarios.values() if s.finding]
    main_ids = FINDING_IDS - {"dpi-fragmentation"}  # true only alongside sni-reset/-drop
    assert set(names) == main_ids, set(names) ^ main_ids
    # one scenario per cause, but the outside-only reset (seen from client2, a `diff`)
    twice = sorted(n for n in set(names) if names.count(n) > 1)
    assert twice == ["injected-reset"], twice
    addresses = [s.address for s in lab.scenarios.values()]
    assert len(set(addresses)) == len(addresses)
    assert set(addresses) <= set(SERVICE_ADDRESSES)
    for s in lab.scenarios.values():
        assert s.cause and s.sni.endswith(".lab.test") and set(s.also) <= FINDING_IDS


def test_no_route_out_of_the_lab(lab: Lab) -> None:
    """No namespace has a default route; the host's gateway is unreachable from each;
    the host's own namespace got no address of the lab."""
    for ns in lab.namespaces:
        assert run(["ip", "-n", ns, "route", "show", "default"]).stdout.strip() == ""
        r = run(["ip", "-n", ns, "-4", "route", "get", "192.0.2.1"], check=False)
        assert r.returncode != 0 and "unreachable" in r.stderr.lower(), (ns, r)
    host_addrs = run(["ip", "-4", "-o", "addr", "show"]).stdout
    assert "198.51.100." not in host_addrs and "203.0.113." not in host_addrs
    route = run(["ip", "-n", lab.ns("client1"), "-4", "-o", "route", "get",
                 lab.scenario("healthy").address]).stdout
    assert "via 198.51.100.1 dev lan0" in route


def test_names_resolve_inside_the_lab_only(lab: Lab) -> None:
    r = lab.run_in("client1", ["getent", "hosts", "healthy.lab.test"], timeout=10)
    assert r.stdout.split()[:1] == [lab.scenario("healthy").address]
    t0 = time.monotonic()
    r = lab.run_in("client1", ["getent", "hosts", "example.com"], timeout=20)
    assert r.returncode != 0 and time.monotonic() - t0 < 10  # no resolver reachable


def test_healthy(lab: Lab) -> None:
    s = lab.scenario("healthy")
    # by name: the client's hosts file resolves it, and the name goes into SNI
    doc = lab.probe(s.name_target, "-p", "tls1.2-only", "-p", "tls1.3-only",
                    "-p", "firefox-137-win11")
    assert doc["targets"][0]["address"] == s.address
    assert doc["targets"][0]["sni"] == s.sni
    assert all(c == {"ok": 1} for c in outcomes(doc).values()), doc["_table"]
    issuers = {a["certificate"]["issuer"] for a in doc["attempts"]}
    assert issuers == {"CN=prober lab CA,O=prober lab"}
    # Ethernet MTU 1500 on the whole path: 1500 - 40 (IPv4 + TCP) - 12 (timestamps)
    assert {a["tcp"]["snd_mss"] for a in doc["attempts"]} == {1448}, doc["_table"]


def test_policy_alert(lab: Lab) -> None:
    doc = probe(lab, "policy-alert", "-p", "tls1.0-only", "-p", "tls1.1-only",
                "-p", "tls1.2-only", "-p", "tls1.3-only")
    o = outcomes(doc)
    assert o["tls1.2-only"] == {"ok": 1}, doc["_table"]
    for p in ("tls1.0-only", "tls1.1-only", "tls1.3-only"):
        assert o[p] == {"alert": 1} and alerts(doc, p) == {"protocol_version"}, doc["_table"]


def test_policy_reset(lab: Lab) -> None:
    doc = probe(lab, "policy-reset", "-p", "tls1.0-only", "-p", "tls1.1-only",
                "-p", "tls1.2-only", "-p", "tls1.3-only", "-p", "cipher:ECDHE-RSA-AES256-SHA")
    o = outcomes(doc)
    assert o["tls1.0-only"] == o["tls1.1-only"] == {"reset": 1}, doc["_table"]
    assert o["tls1.2-only"] == {"ok": 1}, doc["_table"]
    # behind the front the TLS stack alerts on its own, as on an ALB
    assert alerts(doc, "tls1.3-only") == {"protocol_version"}, doc["_table"]
    assert alerts(doc, "cipher:ECDHE-RSA-AES256-SHA") == {"handshake_failure"}, doc["_table"]


def test_silent_proxy(lab: Lab) -> None:
    s = lab.scenario("silent-proxy")
    with lab.capture("client1", f"tcp and host {s.address}") as cap:
        long = lab.start_probe(s.target, "--sni", s.sni, "-p", "tls1.2-only",
                               "--timeout", str(lab.params.silent_fin_s + 3))
        short = lab.start_probe(s.target, "--sni", s.sni, "-p", "tls1.3-only",
                                "--timeout", "2")
        short_doc, long_doc = short.result(), long.result()
        cap.wait_for("the silent proxy's FIN",
                     lambda ps: bool(from_server(ps, s.address, "F.")))
    assert outcomes(short_doc) == {"tls1.3-only": {"hang-acked": 1}}, short_doc["_table"]
    (a,) = long_doc["attempts"]
    assert a["outcome"] == "eof" and a["tcp"]["acked"], long_doc["_table"]
    fin_after_s = (a["timings_ms"]["total"] - a["timings_ms"]["connect"]) / 1000
    assert abs(fin_after_s - lab.params.silent_fin_s) < 1.5, long_doc["_table"]
    # every TCP answer came from the router, one hop closer than the server
    synacks = from_server(cap.packets(), s.address, "S.")
    fins = from_server(cap.packets(), s.address, "F.")
    assert synacks and fins
    assert {p.ttl for p in synacks + fins} == {ROUTER_TTL}
    # and the server never saw a ClientHello
    assert not [x for x in lab.sessions("silent-proxy") if x.bytes_received]


def test_injected_reset(lab: Lab) -> None:
    s = lab.scenario("injected-reset")
    with lab.capture("client1", f"tcp and host {s.address}") as cap:
        doc = probe(lab, "injected-reset", "-p", "tls1.2-only", "-p", "tls1.3-only")
        cap.wait_for("two resets", lambda ps: len(
            [p for p in ps if p.src == s.address and p.flags.startswith("R")]) >= 2)
    assert all(c == {"reset": 1} for c in outcomes(doc).values()), doc["_table"]
    synacks = from_server(cap.packets(), s.address, "S.")
    resets = [p for p in cap.packets() if p.src == s.address and p.flags.startswith("R")]
    assert len(synacks) == 2 and len(resets) == 2, cap.packets()
    assert {p.ttl for p in synacks} == {SERVER_TTL}  # the server answered the SYN
    assert {p.ttl for p in resets} == {ROUTER_TTL}  # the reset is the router's forgery


def test_sni_reset(lab: Lab) -> None:
    s = lab.scenario("sni-reset")
    with lab.capture("client1", f"tcp and host {s.address} and tcp[tcpflags] & tcp-rst != 0"
                     ) as cap:
        blocked = probe(lab, "sni-reset", "-p", "tls1.2-only")
        cap.wait_for("the reset", lambda ps: any(p.src == s.address for p in ps))
    other = lab.probe(s.target, "--sni", "other.lab.test", "-p", "tls1.2-only")
    none = lab.probe(s.target, "--no-sni", "-p", "tls1.2-only")
    # the rule reads one packet at a time: a name cut by a record boundary slips through
    split = probe(lab, "sni-reset", "-p", "lab-split-records")
    assert outcomes(blocked) == {"tls1.2-only": {"reset": 1}}, blocked["_table"]
    assert outcomes(other) == outcomes(none) == {"tls1.2-only": {"ok": 1}}
    assert outcomes(split) == {"lab-split-records": {"ok": 1}}, split["_table"]
    assert {p.ttl for p in cap.packets() if p.src == s.address} == {ROUTER_TTL}


def test_sni_drop(lab: Lab) -> None:
    s = lab.scenario("sni-drop")
    blocked = lab.start_probe(s.target, "--sni", s.sni, "-p", "tls1.2-only", "--timeout", "2")
    other = lab.probe(s.target, "--sni", "other.lab.test", "-p", "tls1.2-only")
    none = lab.probe(s.target, "--no-sni", "-p", "tls1.2-only")
    doc = blocked.result()
    assert outcomes(doc) == {"tls1.2-only": {"hang-unacked": 1}}, doc["_table"]
    assert outcomes(other) == outcomes(none) == {"tls1.2-only": {"ok": 1}}


def test_size_drop(lab: Lab) -> None:
    doc = probe(lab, "size-drop", "-p", "tls1.2-only", "-p", "group:X25519MLKEM768",
                "-p", "firefox-137-win11", "-p", "lab-mlkem-small-segments",
                "-p", "lab-split-hello", "--timeout", "2")
    o = outcomes(doc)
    assert o["tls1.2-only"] == {"ok": 1}, doc["_table"]
    assert o["group:X25519MLKEM768"] == o["firefox-137-win11"] == {"hang-unacked": 1}
    big = attempts(doc, "firefox-137-win11")[0]
    assert big["hello_bytes"] > lab.params.size_limit
    # the same big hello in small segments passes: it is the packet size, not the hello
    assert o["lab-mlkem-small-segments"] == o["lab-split-hello"] == {"ok": 1}, doc["_table"]


def test_segmentation_drop(lab: Lab) -> None:
    doc = probe(lab, "segmentation-drop", "-p", "tls1.2-only", "-p", "firefox-137-win11",
                "-p", "lab-split-hello", "-p", "lab-mlkem-small-segments", "--timeout", "2")
    o = outcomes(doc)
    assert o["tls1.2-only"] == {"ok": 1}, doc["_table"]
    # anything spread over two segments dies, however small
    for p in ("firefox-137-win11", "lab-split-hello", "lab-mlkem-small-segments"):
        assert o[p] == {"hang-unacked": 1}, (p, doc["_table"])
    assert attempts(doc, "lab-split-hello")[0]["hello_bytes"] < 600


def test_mtu_blackhole(lab: Lab) -> None:
    doc = probe(lab, "mtu-blackhole", "-p", "tls1.2-only", "-p", "tls1.3-only",
                "--timeout", "2")
    o = outcomes(doc)
    assert o == {"tls1.2-only": {"partial": 1}, "tls1.3-only": {"partial": 1}}, doc["_table"]
    assert attempts(doc, "tls1.2-only")[0]["server_messages"] == ["server_hello"]
    # the router did say "fragmentation needed"; its own rule kept it from the server
    ruleset = lab.nft_counters()
    line = next(x for x in ruleset.splitlines() if "frag-needed" in x)
    assert "packets 0 " not in line, line


def test_two_backends(lab: Lab) -> None:
    # 20 flows hashed over two backends: all on one of them has odds of 2 in a million
    doc = probe(lab, "two-backends", "-p", "tls1.1-only", "-p", "tls1.2-only",
                "--repeat", "20")
    o = outcomes(doc)
    assert o["tls1.2-only"] == {"ok": 20}, doc["_table"]
    assert set(o["tls1.1-only"]) == {"ok", "alert"}, doc["_table"]
    assert alerts(doc, "tls1.1-only") == {None, "protocol_version"}
    subjects = Counter(a["certificate"]["subject"].split(",")[0]
                       for a in attempts(doc, "tls1.2-only"))
    assert set(subjects) == {"CN=backend-a.lab.test", "CN=backend-b.lab.test"}, subjects
    # TLS 1.1 succeeded only where backend-a answered
    ok11 = {a["certificate"]["subject"].split(",")[0] for a in attempts(doc, "tls1.1-only")
            if a["outcome"] == "ok"}
    assert ok11 == {"CN=backend-a.lab.test"}
    for backend, addr in (("backend-a", BACKEND_A), ("backend-b", BACKEND_B)):
        assert lab.servers[backend].host == addr and lab.sessions(backend)


def test_intercepting_proxy(lab: Lab) -> None:
    s = lab.scenario("intercepting-proxy")
    inside = probe(lab, s.name, "-p", "tls1.2-only", "-p", "tls1.3-only", host="client1")
    seen = probe(lab, s.name, "-p", "tls1.2-only", "-p", "tls1.3-only", host="client2")
    for doc in (inside, seen):
        assert all(c == {"ok": 1} for c in outcomes(doc).values()), doc["_table"]
    assert {a["certificate"]["issuer"] for a in inside["attempts"]} == {
        "CN=prober lab CA,O=prober lab"}
    assert {a["certificate"]["issuer"] for a in seen["attempts"]} == {
        "CN=prober lab intercept CA,O=prober lab intercept"}
    assert lab.interceptor is not None and s.sni in lab.interceptor.sni_seen


def test_idle_timeout(lab: Lab) -> None:
    s = lab.scenario("idle-timeout")
    code = idle_probe_code()
    limit = lab.params.idle_timeout_s
    procs = {idle: subprocess.Popen([*lab.exec_argv("client1"), sys.executable, "-c", code,
                                     s.address, str(idle)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for idle in (limit - 2, limit + 2)}
    results = {}
    for idle, p in procs.items():
        out, err = p.communicate(timeout=limit + 20)
        assert p.returncode == 0, err
        results[idle] = out.strip()
    assert results == {limit - 2: "ok", limit + 2: "reset"}


def _jsonl_until(path: Path, what: str, pred: Any, run_: Any, timeout: float = 30.0) -> None:
    """Until an attempt line of ``path`` (``--jsonl``) satisfies ``pred``; fails naming
    ``what`` (with the run's output) when the deadline or the run's end comes first."""
    def attempts() -> list[dict[str, Any]]:
        lines = []
        for raw in (path.read_text().splitlines() if path.exists() else []):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                pass  # the line being written
        return lines

    def seen() -> bool:
        return any(pred(a) for a in attempts())

    poll_until(lambda: seen() or run_.proc.poll() is not None, timeout)
    if not seen():
        pytest.fail(f"no attempt {what} after {timeout} s; seen: "
                    f"{[a.get('outcome') for a in attempts()]}")


def test_flapping(lab: Lab) -> None:
    s = lab.scenario("flapping")
    assert lab.flapper is not None and lab.flapper.is_up
    jsonl = lab.workdir / f"flapping-{time.monotonic_ns()}.jsonl"
    # --retries 0: the lab is checked by what each attempt met; a refusal retried once the
    # server is back would hide the outage from the summary's counts
    run_ = lab.start_probe(s.target, "--sni", s.sni, "-p", "tls1.2-only", "--repeat", "20",
                           "--rate", "4", "--timeout", "1", "--retries", "0",
                           "--jsonl", str(jsonl))
    # down once an attempt has succeeded, up once one was refused: on the run's own
    # progress, not on fixed sleeps a slow start-up on a loaded machine outlasts
    try:
        _jsonl_until(jsonl, "ok before the outage", lambda a: a["outcome"] == "ok", run_)
        lab.flapper.down()
        _jsonl_until(jsonl, "refused during the outage",
                     lambda a: a["outcome"] == "refused", run_)
    finally:
        lab.flapper.up()
    doc = run_.result()
    o = outcomes(doc)["tls1.2-only"]
    # an attempt caught in flight when the server goes down is reset, the rest are refused
    assert {"ok", "refused"} <= set(o) <= {"ok", "refused", "reset"}, doc["_table"]
    ordered = [a["outcome"] for a in sorted(doc["attempts"], key=lambda a: a["started_at"])]
    assert ordered[0] == ordered[-1] == "ok", ordered  # up, down, up again
    assert lab.flapper.is_up


def test_fallback(lab: Lab) -> None:
    doc = probe(lab, "fallback", "-p", "tls1.1-only", "-p", "lab-tls1.1-scsv",
                "-p", "lab-tls1.2-scsv")
    o = outcomes(doc)
    assert o["tls1.1-only"] == {"ok": 1}, doc["_table"]
    for p in ("lab-tls1.1-scsv", "lab-tls1.2-scsv"):
        assert alerts(doc, p) == {"inappropriate_fallback"}, doc["_table"]
    # a TLS 1.2+ server turns the TLS 1.1 fallback away for the version alone
    healthy = probe(lab, "healthy", "-p", "lab-tls1.1-scsv")
    assert alerts(healthy, "lab-tls1.1-scsv") == {"protocol_version"}


def test_near_tcp_terminator(lab: Lab) -> None:
    s = lab.scenario("near-tcp-terminator")
    with lab.capture("client1", f"tcp and host {s.address}") as cap:
        doc = probe(lab, s.name, "-p", "tls1.2-only", "--repeat", "3")
    assert outcomes(doc) == {"tls1.2-only": {"ok": 3}}, doc["_table"]
    for a in doc["attempts"]:
        to_first_byte = a["timings_ms"]["first_byte"] - a["timings_ms"]["hello_sent"]
        assert to_first_byte > 1.8 * lab.params.near_delay_ms, a["timings_ms"]
        assert a["tcp"]["rtt_us"] < 5000  # TCP answers at once: the relay is close
    assert {p.ttl for p in from_server(cap.packets(), s.address, "S.")} == {ROUTER_TTL}
    # the certificate is the real server's: only TCP is terminated, not TLS
    assert {a["certificate"]["issuer"] for a in doc["attempts"]} == {
        "CN=prober lab CA,O=prober lab"}


def test_healthy_server_ttl_is_one_hop(lab: Lab) -> None:
    s = lab.scenario("healthy")
    with lab.capture("client1", f"tcp and host {s.address}") as cap:
        probe(lab, "healthy", "-p", "tls1.2-only")
    answers = [p for p in cap.packets() if p.src == s.address]
    assert answers and {p.ttl for p in answers} == {SERVER_TTL}


# -- lifecycle --------------------------------------------------------------------------


def test_stale_namespaces_of_dead_owners_are_removed(lab: Lab) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"prb-lab{dead.pid}-client1"
    run(["ip", "netns", "add", stale])
    try:
        assert stale in cleanup_stale()
        assert stale not in list_netns()
        assert all(ns in list_netns() for ns in lab.namespaces)  # a live owner's stay
    finally:
        run(["ip", "netns", "del", stale], check=False)


class _BrokenLab(Lab):
    def _load_rules(self) -> None:
        raise LabError("injected failure")


def test_failed_start_leaves_nothing(lab: Lab) -> None:
    """A start that fails half-way (servers and middleboxes up, rules not) removes
    everything it made: namespaces, processes in them, /etc/netns entries."""
    broken = _BrokenLab(tag="broken")
    with pytest.raises(LabError, match="injected failure"):
        broken.start()
    assert not [ns for ns in list_netns() if ns.startswith(broken.prefix)]
    assert not [p for p in Path("/etc/netns").glob(f"{broken.prefix}*")]
    assert not broken.servers


def test_lab_script_up_status_down(lab: Lab) -> None:
    """`make lab-up` / `make lab-down`, unless a lab brought up by hand is running (that
    one is the user's: leave it alone)."""
    script = [sys.executable, str(REPO / "scripts" / "lab.py")]
    Path("/run/prober-lab").mkdir(parents=True, exist_ok=True)
    with open("/run/prober-lab/test.lock", "a") as lock:
        try:  # another test run on this machine may be doing the same right now
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.skip("another test run is exercising scripts/lab.py")
        if run([*script, "status"], check=False).returncode == 0 or any(
                ns.startswith("prb-lab-") for ns in list_netns()):
            pytest.skip("a lab brought up by hand is running")
        _up_status_down(lab, script)


def _up_status_down(lab: Lab, script: list[str]) -> None:
    try:
        up = run([*script, "up"], timeout=120)
        for s in lab.scenarios.values():
            assert f"{s.address}:{s.port}" in up.stdout and s.sni in up.stdout
        assert "sudo ip netns exec prb-lab-client1 " in up.stdout
        assert run([*script, "status"]).returncode == 0
        r = run(["ip", "netns", "exec", "prb-lab-client1", sys.executable, "-m", "prober",
                 "probe", "healthy.lab.test", "-p", "tls1.3-only", "--json", "-", "-q"],
                timeout=60)
        assert '"outcome": "ok"' in r.stdout
    finally:
        down = run([*script, "down"], timeout=120, check=False)
    assert down.returncode == 0, down.stderr
    assert not [ns for ns in list_netns() if ns.startswith("prb-lab-")]
    assert run([*script, "down"], check=False).returncode == 0  # idempotent
    assert run([*script, "status"], check=False).returncode == 3
