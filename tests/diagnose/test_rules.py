"""Diagnose rules: on results produced by real misbehaving peers (steps run through the
plan's runner), and focused pure tests on hand-written results for what loopback peers
cannot produce (TTLs, delays, two backends, idle timeouts); the hello variants and the
packet parser on bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
from typing import Any

import pytest

from prober.core.engine import Endpoint
from prober.core.targets import SNI_TARGET, Sni, Target
from prober.diagnose import capture, diff, plan, rules
from prober.diagnose.findings import (
    Control,
    IdleResult,
    Packet,
    RunView,
    Seen,
    view_from_doc,
)
from prober.net import packets
from prober.net.attempt import Deadlines
from prober.net.idle import IdleProbe
from prober.profiles import variants
from prober.profiles.families import version_profile
from prober.wire.buffer import Reader
from prober.wire.clienthello import build, read_client_hello
from prober.wire.constants import TLS_FALLBACK_SCSV, ExtensionType
from tests.peers import load_tls12_flight
from tests.peers.misbehaving import FinAfterHello, PartialFlight, ResetAfterHello, SilentReader

# --- running steps against real peers ------------------------------------------------------


def endpoint(host: str, port: int, sni: str | None = None) -> Endpoint:
    t = Target(host=host, port=port, address=host,
               sni_choice=Sni.named(sni) if sni else SNI_TARGET)
    return Endpoint(t, socket.AF_INET6 if ":" in host else socket.AF_INET, host)


def run_steps(ep: Endpoint, steps: list[tuple[str, str, int]], timeout: float = 1.0,
              cap: bool = False) -> RunView:
    """Run (step, profile, count) through the plan's runner; the RunView of the results."""
    opts = plan.PlanOptions(deadlines=Deadlines(timeout, timeout), per_target=16)
    state = plan.PlanState()

    def profile(name: str) -> Any:
        if name.startswith("sanity"):
            return plan.sanity_profile(name)
        base = name.split("=", 1)[-1]
        p = version_profile(base)
        return dataclasses.replace(p, name=name.split("=", 1)[0]) if "=" in name else p

    async def go() -> Any:
        c = None
        if cap:
            c, why = packets.open_capture(ep.address or "", ep.target.port, ep.family)
            assert c is not None, why
        try:
            await plan.Runner(opts, state).run(
                [plan.Job(step, profile(name), ep, i) for step, name, n in steps
                 for i in range(n)])
            await asyncio.sleep(0.1)
        finally:
            if c is not None:
                c.stop()
                capture.attach(state.results, c)

    asyncio.run(go())
    doc = {"target": {"target": ep.target.label, "sni": ep.target.sni},
           "capture": {"requested": cap, "available": cap},
           "attempts": [r.to_json() for r in sorted(state.results, key=lambda r: r.id)]}
    return view_from_doc(doc)


def ids(run: RunView) -> list[str]:
    return [f.id for f in rules.evaluate(run)]


SWEEP = [("sweep", p, 2) for p in ("sslv3-only", "tls1.0-only", "tls1.1-only", "tls1.2-only",
                                    "tls1.3-only")]


def test_reset_after_every_hello_is_named_and_ttl_unchecked() -> None:
    with ResetAfterHello() as srv:
        run = run_steps(endpoint("127.0.0.1", srv.port), [*SWEEP,
                        ("repeat", "known-good=tls1.2-only", 4)])
    found = rules.evaluate(run)
    assert [f.id for f in found] == ["policy-reset"]
    f = found[0]
    assert f.confidence == "medium" and "Every ClientHello is answered with a TCP RST" in f.cause
    assert f.unchecked == ["TTL of the RST vs the SYN-ACK: not compared (no --capture)"]
    # loopback: the RST comes faster than any round trip could tell apart -> not "injected"
    assert "injected-reset" not in ids(run)


def test_fin_after_hello_names_fin() -> None:
    with FinAfterHello() as srv:
        run = run_steps(endpoint("127.0.0.1", srv.port), [*SWEEP])
    (f,) = rules.evaluate(run)
    assert f.id == "policy-reset" and "TCP FIN" in f.cause
    assert f.confidence == "medium"


def test_silent_reader_is_a_silent_proxy() -> None:
    with SilentReader() as srv:
        run = run_steps(endpoint("127.0.0.1", srv.port),
                        [("sweep", "tls1.2-only", 2), ("repeat", "known-good=tls1.3-only", 4)],
                        timeout=0.5)
        ep = endpoint("127.0.0.1", srv.port)
        run.control = asyncio.run(plan.control(ep, 0.3, 1.0))
    assert run.control.outcome == "silent"
    found = rules.evaluate(run)
    assert found[0].id == "silent-proxy" and found[0].confidence == "high"
    assert "(6/6 attempts)" in found[0].cause
    assert any("ACKed within" in e for e in found[0].evidence)
    assert any("stayed silent" in e for e in found[0].evidence)


def test_partial_flight_then_stall_is_an_mtu_blackhole() -> None:
    flight = load_tls12_flight()
    # the whole ServerHello and a little of the certificate: what a blackhole lets through
    n = 5 + 4 + int.from_bytes(flight[6:9], "big") + 40
    with PartialFlight(n_bytes=n, then="stall") as srv:
        run = run_steps(endpoint("127.0.0.1", srv.port),
                        [("repeat", "known-good=tls1.2-only", 3)], timeout=0.5)
    (f,) = rules.evaluate(run)
    assert f.id == "mtu-blackhole" and f.confidence == "high"
    assert "(server_hello)" in f.cause and f.figures["bytes_before_stall"] == n


def test_partial_flight_then_reset_is_not_an_mtu_blackhole() -> None:
    with PartialFlight(n_bytes=90, then="reset") as srv:
        run = run_steps(endpoint("127.0.0.1", srv.port),
                        [("repeat", "known-good=tls1.2-only", 3)], timeout=0.5)
    assert "mtu-blackhole" not in ids(run)


def test_tls12_only_openssl_is_policy_alert(openssl_server_factory: Any) -> None:
    srv = openssl_server_factory(cert="rsa", min_protocol="TLSv1.2", max_protocol="TLSv1.2")
    run = run_steps(endpoint("127.0.0.1", srv.port), [*SWEEP])
    found = rules.evaluate(run)
    assert [f.id for f in found] == ["policy-alert", "policy"]
    assert "refuses TLSv1.3 with a TLS alert (protocol_version)" in found[0].cause
    assert found[1].figures["accepted"] == ["TLSv1.2"]


def test_openssl_honours_fallback_scsv(openssl_server_factory: Any) -> None:
    srv = openssl_server_factory(cert="ecdsa", min_protocol="TLSv1.2")
    fb = plan.fallback_profile("TLSv1.2")
    ep = endpoint("127.0.0.1", srv.port)
    state = plan.PlanState()
    asyncio.run(plan.Runner(plan.PlanOptions(deadlines=Deadlines(2, 2)), state).run(
        [plan.Job("fallback", fb, ep)]))
    (r,) = state.results
    assert r.outcome == "alert" and "inappropriate_fallback" in r.detail
    run = view_from_doc({"attempts": [r.to_json()]})
    assert ids(run) == []  # the server does the right thing: nothing to report


@pytest.mark.root
def test_capture_sees_the_rst_come_from_the_server() -> None:
    cap, why = packets.open_capture("127.0.0.1", 9, socket.AF_INET)
    if cap is None:
        pytest.skip(f"--capture unavailable here: {why}")
    cap.stop()
    with ResetAfterHello() as srv:
        run = run_steps(endpoint("127.0.0.1", srv.port), [*SWEEP], cap=True)
    a = run.attempts[0]
    assert a.packets is not None
    flags = [p.flags for p in a.packets]
    assert flags[:2] == ["S", "SA"] and any("R" in f for f in flags[2:]), flags
    syn_ack, reset = rules.synack(a), rules.rst(a)
    assert syn_ack is not None and reset is not None
    assert syn_ack.ttl == reset.ttl == 64
    found = rules.evaluate(run)
    assert found[0].id == "policy-reset" and found[0].unchecked == []
    assert any("TTL 64 = the SYN-ACK's: both from 0 hops away" in e
               for e in found[0].evidence)
    assert "injected-reset" not in ids(run)


@pytest.mark.root
def test_capture_stop_keeps_the_packets_already_on_the_wire() -> None:
    """stop() right after the last attempt: the resets the kernel has queued for the
    capture (they come last) are still recorded, not discarded with the thread."""
    with socket.socket() as lsn:
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(64)
        port = lsn.getsockname()[1]
        cap, why = packets.open_capture("127.0.0.1", port, socket.AF_INET)
        if cap is None:
            pytest.skip(f"--capture unavailable here: {why}")
        n = 40
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            lsn.accept()[0].close()
        cap.stop()
    resets = [p for p in cap.packets if "R" in p.flags and p.dport == port]
    assert len(resets) == n, f"{len(resets)} of {n} resets recorded, {len(cap.packets)} packets"


@pytest.mark.root
@pytest.mark.parametrize("v6", [False, True])
def test_capture_kernel_filter_is_accepted(v6: bool) -> None:
    """The kernel refuses a malformed BPF program, and Capture.start() then falls back to
    filtering every frame of the host in Python, silently: attach both here."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(packets.ETH_P_ALL))
    except PermissionError as e:
        pytest.skip(f"no packet socket here: {e}")
    with sock:
        packets._attach_filter(sock, packets.bpf_tcp_port(443, v6))


@pytest.mark.root
def test_capture_of_ipv6_loopback_sees_both_directions() -> None:
    with socket.socket(socket.AF_INET6) as lsn:
        try:
            lsn.bind(("::1", 0))
        except OSError as e:
            pytest.skip(f"no IPv6 loopback: {e}")
        lsn.listen(8)
        port = lsn.getsockname()[1]
        cap, why = packets.open_capture("::1", port, socket.AF_INET6)
        if cap is None:
            pytest.skip(f"--capture unavailable here: {why}")
        n = 5
        for _ in range(n):
            with socket.create_connection(("::1", port), timeout=2):
                pass
            lsn.accept()[0].close()
        cap.stop()
    syns = [p for p in cap.packets if p.flags == "S" and p.dport == port]
    synacks = [p for p in cap.packets if p.flags == "SA" and p.sport == port]
    assert len(syns) == len(synacks) == n, [(p.flags, p.sport, p.dport) for p in cap.packets]


@pytest.mark.root
def test_drop_lab_unacked_hello_and_dead_port(drop_lab: Any) -> None:
    run = run_steps(endpoint(drop_lab.addr, drop_lab.hang_port),
                    [("repeat", "known-good=tls1.2-only", 3)], timeout=1.0)
    (f,) = rules.evaluate(run)
    assert f.id == "path-drop" and "never ACKed" in f.cause
    run = run_steps(endpoint(drop_lab.addr, drop_lab.drop_syn_port),
                    [("sanity-first", "sanity@first", 1), ("repeat", "known-good=tls1.2-only", 2),
                     ("sanity-last", "sanity@last", 1)], timeout=0.5)
    (f,) = rules.evaluate(run)
    # a port that never answers a SYN is unreachable, not flapping
    assert f.id == "endpoint-unreachable" and "the SYN went unanswered (4/4)" in f.cause
    assert run.no_tls() is not None and run.no_tls().kind == "unreachable"  # type: ignore[union-attr]


# --- hand-written results -------------------------------------------------------------------

_ids = iter(range(1, 100000))


def att(profile: str, outcome: str, step: str | None = None, **kw: Any) -> dict[str, Any]:
    """One attempt in its JSON form, with plausible loopback timings."""
    d: dict[str, Any] = {
        "id": next(_ids), "target": "shop.test:443", "profile": profile, "outcome": outcome,
        "detail": kw.pop("detail", outcome), "sni": kw.pop("sni", "shop.test"),
        "started_at": kw.pop("started_at", 1000.0), "local_port": kw.pop("port", 40000),
        "hello_bytes": kw.pop("bytes", 500), "end": kw.pop("end", None),
        "timings_ms": {"connect": kw.pop("connect", 0.2), "hello_sent": 0.3,
                       "hello_acked": 0.4, "first_byte": kw.pop("first", None),
                       "total": kw.pop("total", 5.0)},
        "tcp": {"acked": kw.pop("acked", True), "rtt_us": kw.pop("rtt_us", 50),
                "snd_mss": kw.pop("mss", None)},
        "server_bytes": kw.pop("server_bytes", 0),
        "server_messages": kw.pop("messages", []),
    }
    if step:
        d["step"] = step
    if outcome == "ok":
        d["timings_ms"]["first_byte"] = d["timings_ms"]["first_byte"] or 2.0
        d["negotiated"] = {"version": kw.pop("version", "TLSv1.3"),
                           "suite": kw.pop("suite", "TLS_AES_128_GCM_SHA256")}
        d["certificate"] = {"sha256": kw.pop("cert", "aa" * 32),
                            "issuer": kw.pop("issuer", "CN=Real CA"), "subject": "CN=shop.test"}
        d["server_bytes"] = 1500
    if "alert" in kw:
        d["alert"] = {"description": kw.pop("alert")}
    if "packets" in kw:
        d["packets"] = kw.pop("packets")
    assert not kw, kw
    return d


def view(atts: list[dict[str, Any]], **kw: Any) -> RunView:
    doc: dict[str, Any] = {"target": {"target": "shop.test:443", "sni": kw.pop("sni", "shop.test")},
                           "attempts": atts, **kw}
    return view_from_doc(doc)


def healthy(**kw: Any) -> list[dict[str, Any]]:
    out = [att("sanity@first", "ok", "sanity-first")]
    for v in ("sslv3-only", "tls1.0-only", "tls1.1-only"):
        out.append(att(v, "alert", "sweep", alert="protocol_version"))
    out += [att("tls1.2-only", "ok", "sweep", version="TLSv1.2"), att("tls1.3-only", "ok", "sweep")]
    out += [att("known-good", "ok", "repeat", port=40000 + i) for i in range(10)]
    out += [att("sni:none", "ok", "sni", sni=None), att("sni:unrelated", "ok", "sni",
                                                        sni="www.example.com")]
    out += [att(f"size:{n}", "ok", "size", bytes=n) for n in (250, 600, 1300, 1800, 4000)]
    out += [att("records:split", "ok", "records")] * 1 + [att("segments:split", "ok", "segments")]
    out += [att("fallback-scsv", "alert", "fallback", alert="inappropriate_fallback")]
    out.append(att("sanity@last", "ok", "sanity-last"))
    return out


def test_healthy_gets_only_its_policy() -> None:
    found = rules.evaluate(view(healthy()))
    assert [f.id for f in found] == ["policy"]
    assert found[0].cause.startswith("accepts TLSv1.3, TLSv1.2; refuses TLSv1.1, TLSv1.0, SSLv3 "
                                     "(alert protocol_version)")


def replace_step(atts: list[dict[str, Any]], profile: str, **kw: Any) -> list[dict[str, Any]]:
    out = [a for a in atts if a["profile"] != profile]
    n = sum(1 for a in atts if a["profile"] == profile)
    for i in range(n):
        x = dict(kw)
        out.append(att(profile, x.pop("outcome"), x.pop("step"), port=41000 + i, **x))
    return out


def test_sni_reset_and_dpi_fragmentation() -> None:
    atts = replace_step(healthy(), "known-good", outcome="reset", step="repeat", total=1.3)
    atts = replace_step(atts, "tls1.3-only", outcome="reset", step="sweep", total=1.3)
    atts = replace_step(atts, "segments:split", outcome="reset", step="segments")
    found = {f.id: f for f in rules.evaluate(view(atts))}
    assert set(found) == {"sni-reset", "dpi-fragmentation", "policy"}
    assert found["sni-reset"].confidence == "high"
    assert "'shop.test' are reset (10/10)" in found["sni-reset"].cause
    assert "TLS records" in found["dpi-fragmentation"].cause


def test_sni_drop_is_not_reported_as_a_silent_proxy() -> None:
    atts = replace_step(healthy(), "known-good", outcome="hang-acked", step="repeat", total=5000)
    atts = replace_step(atts, "records:split", outcome="hang-acked", step="records", total=5000)
    atts = replace_step(atts, "segments:split", outcome="hang-acked", step="segments")
    assert ids(view(atts)) == ["sni-drop", "policy"]


def test_no_sni_findings_for_an_address_target() -> None:
    atts = replace_step(healthy(), "known-good", outcome="reset", step="repeat")
    run = view(atts, sni=None)
    for a in run.attempts:
        object.__setattr__(a, "sni", None)
    run.sni = None
    assert "sni-reset" not in ids(run)
    assert any(n.startswith("SNI filtering") for n in rules.notes(run))


def test_size_drop_with_bisection() -> None:
    atts = [a for a in healthy() if not a["profile"].startswith("size:")]
    for n, o in ((250, "ok"), (600, "ok"), (1300, "hang-unacked"), (1800, "hang-unacked"),
                 (4000, "hang-unacked")):
        atts.append(att(f"size:{n}", o, "size", bytes=n, acked=o == "ok"))
    for n, o in ((950, "ok"), (1125, "hang-unacked"), (1037, "ok"), (1081, "ok"),
                 (1103, "hang-unacked"), (1092, "ok")):
        atts.append(att(f"size:{n}", o, "bisect", bytes=n))
    found = rules.evaluate(view(atts))
    assert [f.id for f in found] == ["size-drop", "policy"]
    f = found[0]
    assert f.figures["breaking_bytes"] == 1103 and f.figures["largest_passing_bytes"] == 1092
    assert "1103 bytes and more are dropped (never ACKed)" in f.cause
    assert "post-quantum" in f.cause


def test_non_monotonic_sizes_are_no_size_drop() -> None:
    atts = replace_step(healthy(), "size:1300", outcome="reset", step="size", bytes=1300)
    assert "size-drop" not in ids(view(atts))


def test_segmentation_drop() -> None:
    atts = [*healthy(), att("segments:split", "hang-acked", "segments")]
    atts = replace_step(atts, "segments:split", outcome="hang-acked", step="segments")
    found = rules.evaluate(view(atts))
    assert [f.id for f in found] == ["segmentation-drop", "policy"]
    assert found[0].confidence == "high" and "two TCP segments" in found[0].cause


def _pk(flags: str, ttl: int, incoming: bool = True, t: float = 1.0) -> dict[str, Any]:
    return {"t_ms": t, "dir": "in" if incoming else "out", "flags": flags, "ttl": ttl,
            "ip_id": 0, "win": 0, "len": 0}


def test_injected_reset_by_ttl() -> None:
    pk = [_pk("S", 64, False), _pk("SA", 62), _pk("A", 64, False), _pk("PA", 64, False),
          _pk("RA", 64)]
    atts = replace_step(healthy(), "tls1.1-only", outcome="reset", step="sweep", packets=pk)
    found = {f.id: f for f in rules.evaluate(view(atts, capture={"requested": True,
                                                                  "available": True}))}
    f = found["injected-reset"]
    assert f.confidence == "high" and "2 hops closer than the server" in f.cause
    assert f.unchecked == []


def test_injected_reset_by_timing_and_what_was_not_checked() -> None:
    atts = [dict(a, tcp={"acked": True, "rtt_us": 40000}) for a in healthy()]
    atts = replace_step(atts, "tls1.1-only", outcome="reset", step="sweep", rtt_us=40000,
                        total=1.5)
    found = {f.id: f for f in rules.evaluate(view(atts))}
    f = found["injected-reset"]
    assert f.confidence == "medium" and "sooner than the 40.0 ms round trip" in f.cause
    assert f.unchecked == ["TTL of the RST vs the SYN-ACK: not compared (no --capture)"]
    # without a measurable round trip nothing is claimed
    assert "injected-reset" not in ids(view(replace_step(
        healthy(), "tls1.1-only", outcome="reset", step="sweep", total=1.5)))


def test_near_tcp_terminator() -> None:
    atts = [dict(a, timings_ms=dict(a["timings_ms"], connect=0.8, first_byte=62.0))
            if a["outcome"] == "ok" else a for a in healthy()]
    found = {f.id: f for f in rules.evaluate(view(atts))}
    f = found["near-tcp-terminator"]
    assert f.figures == {"round_trip_ms": 0.05, "server_hello_ms": 61.7}


def test_intermittent_follows_the_source_port() -> None:
    atts = [a for a in healthy() if a["profile"] != "known-good"]
    for i in range(16):
        port = 50000 + i
        atts.append(att("known-good", "ok" if port % 2 == 0 else "reset", "repeat", port=port))
    found = {f.id: f for f in rules.evaluate(view(atts))}
    f = found["intermittent"]
    assert f.confidence == "high" and "succeeds 8/16" in f.cause
    assert "port mod 2 in [0] succeed" in f.figures["port_correlation"]


def test_backends_differing_only_in_certificate() -> None:
    atts = [a for a in healthy() if a["profile"] != "known-good"]
    for i in range(10):
        atts.append(att("known-good", "ok", "repeat", port=50000 + i,
                        cert=("aa" if i % 2 else "bb") * 32))
    found = {f.id: f for f in rules.evaluate(view(atts))}
    # the same answers but for the certificate: not intermittent
    assert set(found) == {"mixed-certificates", "policy"}, found
    f = found["mixed-certificates"]
    assert "succeed with 2 different certificates" in f.cause
    # every other handshake of the run has the first certificate: 16 of 21, the rest 5
    assert f.figures["shares"] == {"aa" * 32: round(16 / 21, 3), "bb" * 32: round(5 / 21, 3)}
    assert "(76%)" in f.evidence[0] and "(24%)" in f.evidence[1]


def test_mixed_certificates_names_the_expired_one() -> None:
    atts = [a for a in healthy() if a["profile"] != "known-good"]
    for i in range(10):
        a = att("known-good", "ok", "repeat", port=50000 + 3 * i,
                cert=("cc" if i < 3 else "aa") * 32, started_at=1_800_000_000.0)
        a["certificate"]["not_after"] = ("2020-01-01T00:00:00+00:00" if i < 3
                                         else "2099-01-01T00:00:00+00:00")
        atts.append(a)
    f = {f.id: f for f in rules.evaluate(view(atts))}["mixed-certificates"]
    assert f.confidence == "high" and "EXPIRED" in f.cause
    assert f.figures["shares"]["cc" * 32] == round(3 / 21, 3)  # of every handshake of the run


def test_inappropriate_fallback() -> None:
    atts = replace_step(healthy(), "known-good", outcome="alert", step="repeat",
                        alert="inappropriate_fallback")
    f = {f.id: f for f in rules.evaluate(view(atts))}["inappropriate-fallback"]
    assert f.confidence == "high" and "not fallbacks" in f.cause
    atts = replace_step(healthy(), "fallback-scsv", outcome="ok", step="fallback",
                        version="TLSv1.2")
    f = {f.id: f for f in rules.evaluate(view(atts))}["inappropriate-fallback"]
    assert f.confidence == "low" and "downgrade protection" in f.cause
    # a server that still accepts TLS 1.1 but refuses clients falling back to it
    atts = [*healthy(), att("fallback-scsv@TLSv1.1", "alert", "fallback",
                            alert="inappropriate_fallback")]
    atts[-1]["fallback_version"] = "TLSv1.1"
    assert "inappropriate-fallback" not in ids(view(atts))  # TLS 1.1 was not accepted
    atts[-1]["accepted"] = ["TLSv1.1", "TLSv1.2", "TLSv1.3"]
    f = {f.id: f for f in rules.evaluate(view(atts))}["inappropriate-fallback"]
    assert f.confidence == "low" and "still accepts TLSv1.1" in f.cause


def test_mtu_blackhole_pure() -> None:
    atts = replace_step(healthy(), "known-good", outcome="partial", step="repeat", end="timeout",
                        server_bytes=1200, messages=["server_hello"])
    f = rules.evaluate(view(atts))[0]
    assert f.id == "mtu-blackhole" and "10/" in f.cause


def test_idle_timeout_interval() -> None:
    probes = [IdleProbe(1, "alive"), IdleProbe(2, "alive"), IdleProbe(4, "reset", "RST"),
              IdleProbe(8, "cancelled"), IdleProbe(2.5, "alive"), IdleProbe(3, "reset", "RST"),
              IdleProbe(3.5, "reset", "RST")]
    run = view(healthy())
    run.idle = IdleResult(8, tuple(probes))
    f = {f.id: f for f in rules.evaluate(run)}["idle-timeout"]
    assert f.figures == {"idle_timeout_s_min": 2.5, "idle_timeout_s_max": 3, "how": "reset"}
    assert f.confidence == "high" and "answered with RST" in f.cause
    run.idle = IdleResult(8, (IdleProbe(1, "alive"), IdleProbe(8, "alive")))
    assert "idle-timeout" not in ids(run)
    assert "idle timeout: none up to 8 s" in rules.notes(run)
    run.idle = IdleResult(8, (IdleProbe(8, "closed", "FIN from the peer after 5.0 s idle",
                                        closed_after_s=5.0),))
    f = {f.id: f for f in rules.evaluate(run)}["idle-timeout"]
    assert "after 5.0 s idle" in f.cause


def test_tls_interception_by_issuer_and_pin() -> None:
    atts = healthy()
    f = {f.id: f for f in rules.evaluate(view(atts, options={"expect_issuer": "Corp CA"}))}
    assert "'CN=Real CA', not by 'Corp CA'" in f["tls-interception"].cause
    assert ids(view(atts, options={"expect_issuer": "real ca"})) == ["policy"]
    pin = ":".join(["AA"] * 32)
    assert ids(view(atts, options={"pin_sha256": [pin]})) == ["policy"]
    f = {f.id: f for f in rules.evaluate(view(atts, options={"pin_sha256": ["bb" * 32]}))}
    assert "matches none of the 1 pinned" in f["tls-interception"].cause


def test_endpoint_flapping() -> None:
    atts = healthy()
    atts[-1] = att("sanity@last", "refused", "sanity-last", started_at=1009.0)
    atts[12] = dict(atts[12], outcome="connect-timeout", detail="no SYN-ACK",
                    started_at=1004.0)
    f = rules.evaluate(view(atts))[0]
    assert f.id == "endpoint-flapping" and f.confidence == "high"
    assert "changed between the first and the last sanity probe" in f.cause


def test_control_fin_is_reported_with_a_silent_device() -> None:
    atts = [att("known-good", "hang-acked", "repeat", total=5000) for _ in range(4)]
    run = view(atts)
    run.control = Control("fin", 0.3, 10000.0)
    f = rules.evaluate(run)[0]
    assert f.id == "silent-proxy" and "closed with FIN after 10.0 s" in f.cause


def test_notes_say_what_could_not_be_checked() -> None:
    run = view(healthy(), capture={"requested": True, "available": False,
                                   "reason": "no raw socket: needs root or CAP_NET_RAW"})
    n = rules.notes(run)
    assert any("needs root or CAP_NET_RAW" in x for x in n)
    assert any(x.startswith("idle timeout: not measured") for x in n)


# --- the plan's hello variants, on bytes ------------------------------------------------------


def test_size_ladder_sizes_and_pq_share() -> None:
    ref = version_profile("tls1.3-only")
    suite = 0x1301
    ladder = plan.size_profiles(ref, suite, "shop.test")
    names = [p.name for p, _ in ladder]
    assert names == ["size:small", "size:600", "size:1300", "size:1800", "size:4000"]
    sizes = [len(build(p.spec, "shop.test").records()) for p, _ in ladder]
    assert sizes[0] < 300 and sizes[1:] == [600, 1300, 1800, 4000]
    pq = ladder[3][0]
    hello = read_client_hello(build(pq.spec, "shop.test").records())
    body = hello.extension(ExtensionType.KEY_SHARE)  # type: ignore[union-attr]
    assert body is not None
    r = Reader(body)
    r.pull_u16()
    assert r.pull_u16() == variants.X25519MLKEM768
    assert ladder[3][1]["pq"] is True


def test_split_point_cuts_the_sni_and_fallback_has_scsv() -> None:
    spec = version_profile("tls1.2-only").spec
    cut, length = variants.split_point(spec, "shop.example.org")
    msg = build(spec, "shop.example.org").message
    assert msg[cut - 8:cut] == b"shop.exa"
    assert b"shop.example.org" not in msg[:cut] and length == len(msg)
    fb = plan.fallback_profile("TLSv1.2")
    assert fb.spec.cipher_suites[-1] == TLS_FALLBACK_SCSV
    assert fb.spec.offered_versions()[0] == 0x0303
    assert plan.fallback_versions(["TLSv1.2", "TLSv1.3"]) == [("fallback-scsv", "TLSv1.2")]
    assert plan.fallback_versions(["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]) == [
        ("fallback-scsv", "TLSv1.2"), ("fallback-scsv@TLSv1.1", "TLSv1.1"),
        ("fallback-scsv@TLSv1.0", "TLSv1.0")]
    assert plan.fallback_versions(["TLSv1.2"]) == [("fallback-scsv", "TLSv1.1")]
    assert plan.fallback_versions(["SSLv3"]) == []


def test_choose_reference() -> None:
    sweep = [Seen(id=i, step="sweep", profile=p, outcome=o, detail="") for i, (p, o) in
             enumerate([("tls1.2-only", "ok"), ("tls1.3-only", "alert"), ("tls1.1-only", "ok")])]
    assert plan.choose_reference(sweep)[0] == "tls1.2-only"
    assert plan.choose_reference([])[0] == "sanity"
    lo_hi = plan.bisect_bounds([Seen(1, "size", "size:600", "ok", "", hello_bytes=600),
                                Seen(2, "size", "size:1300", "reset", "", hello_bytes=1300)])
    assert lo_hi == (600, 1300)
    assert plan.idle_waits(10) == [1, 2, 4, 8, 10]
    assert plan.refine_waits(2, 4) == [2.5, 3.0, 3.5]


# --- capture parsing ---------------------------------------------------------------------------


def _ipv4_tcp(ttl: int, flags: int, payload: int = 0) -> bytes:
    tcp = struct.pack("!HHIIHHHH", 443, 40000, 1, 2, (5 << 12) | flags, 512, 0, 0)
    total = 20 + len(tcp) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 777, 0x4000, ttl, 6, 0,
                     socket.inet_aton("198.51.100.2"), socket.inet_aton("198.51.100.1"))
    return ip + tcp + b"\0" * payload


def test_parse_ipv4_and_ttl_words() -> None:
    p = packets.parse_ipv4(_ipv4_tcp(61, 0x12), 5.0)
    assert p is not None
    assert (p.src, p.sport, p.dport, p.flags, p.ttl, p.ip_id, p.window, p.length) == (
        "198.51.100.2", 443, 40000, "SA", 61, 777, 512, 0)
    assert packets.parse_ipv4(_ipv4_tcp(64, 0x18, 100), 5.0).length == 100  # type: ignore
    assert len(packets.bpf_tcp_port(443)) == 13 * 8
    syn_ack = Packet(0, True, "SA", 61, 0, 0, 0)
    assert rules.ttl_compare(Packet(0, True, "R", 63, 0, 0, 0), syn_ack) == (
        2, "TTL 63 vs the SYN-ACK's 61: 2 hops closer than the server")
    assert "another initial TTL" in rules.ttl_compare(Packet(0, True, "R", 253, 0, 0, 0),
                                                      syn_ack)[1]  # type: ignore[index]
    assert rules.ttl_compare(Packet(0, True, "R", 61, 0, 0, 0), syn_ack) is None


# --- diff --------------------------------------------------------------------------------------


def _doc(atts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": "prober.diagnose/1", "target": {"target": "shop.test:443",
                                                       "sni": "shop.test"}, "attempts": atts}


def test_diff_names_the_failing_side_and_interception() -> None:
    inside = healthy()
    outside = replace_step(healthy(), "tls1.2-only", outcome="reset", step="sweep")
    outside = replace_step(outside, "known-good", outcome="ok", step="repeat",
                           issuer="CN=Corp Inspection CA")
    d = diff.document(diff.Side("inside", _doc(inside)), diff.Side("outside", _doc(outside)))
    found = {f["id"]: f for f in d["findings"]}
    # the outside run alone calls a version refused by RST policy-reset: so does the diff
    own = {f.id for f in rules.evaluate(view(outside))}
    assert "policy-reset" in own
    assert found["policy-reset"]["cause"].startswith("outside only: reset")
    assert "as a cloud load balancer does" in found["policy-reset"]["cause"]
    assert "issuer differs between inside and outside" in found["tls-interception"]["cause"]
    assert [r["key"] for r in d["rows"] if r["differs"]] == ["tls1.2-only", "known-good"]
    with pytest.raises(diff.DiffInputError, match="not a prober run"):
        diff.check({"schema": "x"}, "a.json")


def test_injected_reset_is_not_also_the_endpoint_refusing_everything() -> None:
    pk = [_pk("S", 64, False), _pk("SA", 63), _pk("PA", 64, False), _pk("R", 64)]
    atts = [att(p, "reset", "sweep", packets=pk) for p in ("tls1.2-only", "tls1.3-only")]
    atts += [att("known-good", "reset", "repeat", packets=pk) for _ in range(4)]
    run = view(atts, capture={"requested": True, "available": True})
    assert ids(run) == ["injected-reset"]


def test_large_hellos_failing_with_a_segmentation_drop_are_not_a_size_drop() -> None:
    atts = replace_step(healthy(), "segments:split", outcome="hang-unacked", step="segments")
    atts = replace_step(atts, "size:1800", outcome="hang-unacked", step="size", bytes=1800)
    atts = replace_step(atts, "size:4000", outcome="hang-unacked", step="size", bytes=4000)
    assert ids(view(atts)) == ["segmentation-drop", "policy"]
    # below one segment's worth the size is the cause, whatever else is found
    atts = replace_step(atts, "size:1300", outcome="hang-unacked", step="size", bytes=1100)
    assert set(ids(view(atts))) == {"segmentation-drop", "size-drop", "policy"}


def test_the_connections_own_mss_tells_size_from_segmentation() -> None:
    atts = replace_step(healthy(), "segments:split", outcome="hang-unacked", step="segments")
    for n in (1800, 4000):
        atts = replace_step(atts, f"size:{n}", outcome="hang-unacked", step="size", bytes=n,
                            mss=1448)
    # 1300 bytes fit one 1448-byte segment: failing there is a size limit, not segmentation
    big = replace_step(atts, "size:1300", outcome="hang-unacked", step="size", bytes=1300,
                       mss=1448)
    assert set(ids(view(big))) == {"segmentation-drop", "size-drop", "policy"}
    # on a path whose MSS is 1220, the 1300-byte hello is two segments: segmentation only
    small = [{**a, "tcp": {**a["tcp"], "snd_mss": 1220}} for a in big]
    assert ids(view(small)) == ["segmentation-drop", "policy"]


def test_a_stalled_flight_still_shows_the_version_chosen() -> None:
    atts = replace_step(healthy(), "tls1.3-only", outcome="partial", step="sweep",
                        end="timeout", server_bytes=161, messages=["server_hello"])
    for a in atts:
        if a["profile"] == "tls1.3-only":
            a["negotiated"] = {"version": "TLSv1.3"}
    found = rules.evaluate(view(atts))
    assert found[-1].figures["accepted"] == ["TLSv1.3", "TLSv1.2"]


# --- no TLS endpoint, one vocabulary ----------------------------------------------------------


def test_wrong_service_names_the_protocol_and_the_starttls() -> None:
    banner = "220 mail.shop.test ESMTP Postfix (Debian/GNU)"
    atts = [att(p, "not-tls", "sweep", detail=f"banner: {banner!r}") for p in
            ("tls1.2-only", "tls1.3-only")]
    atts += [att("known-good", "not-tls", "repeat") for _ in range(4)]
    for a in atts:
        a["banner"] = banner
    run = view(atts)
    (f,) = rules.evaluate(run)
    assert f.id == "wrong-service" and f.confidence == "high"
    assert "speaks SMTP, not TLS" in f.cause and "6/6 attempts" in f.cause
    assert "--starttls smtp" in f.next
    assert f.figures["protocol"] == "SMTP" and f.figures["starttls"] == "smtp"


def test_a_closed_port_is_port_closed_not_flapping() -> None:
    atts = [att(p, "refused", s, detail="connection refused (RST to SYN)")
            for p, s in (("sanity@first", "sanity-first"), ("tls1.2-only", "sweep"),
                         ("known-good", "repeat"), ("sanity@last", "sanity-last"))]
    (f,) = rules.evaluate(view(atts))
    assert f.id == "port-closed" and "Nothing listens on the port" in f.cause


def test_healthy_run_measured_tls() -> None:
    assert view(healthy()).no_tls() is None


def test_sni_drop_policy_is_measured_without_sni() -> None:
    """The hellos naming the target are dropped (an SSLv3 hello carries no SNI and gets an
    alert): the policy line must not call TLS 1.2/1.3 refused; the sweep without SNI the
    plan runs then says what the server accepts."""
    atts = [a for a in healthy() if a["step"] not in ("sweep", "repeat", "records", "segments")]
    atts += [att("sslv3-only", "alert", "sweep", sni=None, alert="protocol_version")]
    atts += [att(p, "hang-unacked", "sweep", acked=False, total=5000)
             for p in ("tls1.0-only", "tls1.1-only", "tls1.2-only", "tls1.3-only")]
    atts += [att("known-good", "hang-unacked", "repeat", acked=False, total=5000,
                 port=40000 + i) for i in range(10)]
    atts += [att("records:split", "ok", "records"), att("segments:split", "ok", "segments")]
    saved = rules.evaluate(view(atts))
    assert [f.id for f in saved][:2] == ["sni-drop", "dpi-fragmentation"]
    pol = next(f for f in saved if f.id == "policy")
    assert "refuses" not in pol.cause.split("(alert")[1] if "(alert" in pol.cause else True
    assert "TLSv1.3, TLSv1.2, TLSv1.1, TLSv1.0 not measured" in pol.cause, pol.cause
    assert pol.figures["not_measured"] == ["TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0"]
    # with the plan's sweep without SNI: the versions the server really accepts
    atts += [att("sslv3-only@no-sni", "alert", "sweep-no-sni", sni=None,
                 alert="protocol_version")]
    atts += [att(f"{p}@no-sni", "alert", "sweep-no-sni", sni=None, alert="protocol_version")
             for p in ("tls1.0-only", "tls1.1-only")]
    atts += [att("tls1.2-only@no-sni", "ok", "sweep-no-sni", sni=None, version="TLSv1.2"),
             att("tls1.3-only@no-sni", "ok", "sweep-no-sni", sni=None)]
    found = rules.evaluate(view(atts))
    assert [f.id for f in found] == ["sni-drop", "dpi-fragmentation", "policy"]
    pol = found[-1]
    assert pol.cause.startswith("accepts TLSv1.3, TLSv1.2; refuses TLSv1.1, TLSv1.0, SSLv3 "
                                "(alert protocol_version); measured without SNI"), pol.cause
    assert pol.figures["without_sni"] is True


def test_diff_keeps_an_injected_reset_injected() -> None:
    """Where the failing side's own run proves the RST forged (TTL), the diff says so too."""
    pk = [_pk("S", 64, False), _pk("SA", 63), _pk("PA", 64, False), _pk("R", 64)]
    inside = healthy()
    gone = ("tls1.2-only", "known-good", "sni:none", "sni:unrelated", "records:split",
            "segments:split")
    outside = [a for a in healthy() if a["profile"] not in gone]
    outside += [att("tls1.2-only", "reset", "sweep", packets=pk),
                att("records:split", "reset", "records", packets=pk),
                att("segments:split", "reset", "segments", packets=pk),
                att("sni:none", "reset", "sni", sni=None, packets=pk),
                att("sni:unrelated", "reset", "sni", sni="www.example.com", packets=pk)]
    outside += [att("known-good", "reset", "repeat", packets=pk, port=40000 + i)
                for i in range(10)]
    odoc = {**_doc(outside), "capture": {"requested": True, "available": True}}
    own = {f.id for f in rules.evaluate(view_from_doc(odoc))}
    assert "injected-reset" in own and "policy-reset" not in own
    d = diff.document(diff.Side("inside", _doc(inside)), diff.Side("outside", odoc))
    assert {f["id"] for f in d["findings"]} == {"injected-reset"}, d["findings"]


# --- more causes: server requirements, sizes, rates, loss ---------------------------------


def test_strict_sni_is_a_server_policy_not_a_filter() -> None:
    atts = replace_step(healthy(), "sni:none", outcome="alert", step="sni", sni=None,
                        alert="unrecognized_name", detail="unrecognized_name (112) fatal")
    atts = replace_step(atts, "sni:unrelated", outcome="alert", step="sni",
                        sni="www.example.com", alert="unrecognized_name")
    found = {f.id: f for f in rules.evaluate(view(atts))}
    assert set(found) == {"sni-required", "policy"}, found
    f = found["sni-required"]
    assert f.confidence == "high" and "without SNI and naming another host" in f.cause
    assert f.figures["alerts"] == ["unrecognized_name"]
    # a filter on the path cuts the *named* hello instead: sni-reset, never sni-required
    cut = replace_step(healthy(), "known-good", outcome="reset", step="repeat")
    assert "sni-required" not in ids(view(cut))


def test_client_certificate_request_names_the_issuers() -> None:
    atts = healthy()
    for a in atts:
        if a["outcome"] == "ok":
            a["negotiated"]["certificate_request"] = True
            a["negotiated"]["certificate_request_cas"] = ["CN=Corp Client CA,O=Corp"]
    found = {f.id: f for f in rules.evaluate(view(atts))}
    assert set(found) == {"client-certificate", "policy"}
    f = found["client-certificate"]
    assert "CN=Corp Client CA,O=Corp" in f.cause and f.figures["ca_names"] == [
        "CN=Corp Client CA,O=Corp"]


def _tls12_only_front(outcome: str, total: float) -> list[dict[str, Any]]:
    """A TLS 1.2 server: TLS 1.3 hellos get ``outcome``; the known-good hello is TLS 1.2."""
    atts = [att("sanity@first", outcome, "sanity-first", total=total)]
    atts += [att(v, "alert", "sweep", alert="protocol_version")
             for v in ("sslv3-only", "tls1.0-only", "tls1.1-only")]
    atts += [att("tls1.2-only", "ok", "sweep", version="TLSv1.2",
                 suite="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
             att("tls1.3-only", outcome, "sweep", total=total)]
    atts += [att("known-good", "ok", "repeat", port=40000 + i, version="TLSv1.2")
             for i in range(6)]
    atts += [att("sni:none", "ok", "sni", sni=None, version="TLSv1.2"),
             att("sni:unrelated", "ok", "sni", version="TLSv1.2")]
    atts.append(att("sanity@last", outcome, "sanity-last", total=total))
    return atts


def test_version_intolerance_is_not_a_version_policy() -> None:
    atts = _tls12_only_front("reset", 1.0)
    atts += [att("supported-versions", "reset", "intolerance", total=1.0) for _ in range(2)]
    found = {f.id: f for f in rules.evaluate(view(atts))}
    assert "version-intolerance" in found and "policy-reset" not in found, found
    f = found["version-intolerance"]
    assert f.confidence == "high" and "carry the supported_versions extension" in f.cause
    # a TLS 1.2-only server that answers the marked hello with TLS 1.2: a policy only
    atts = _tls12_only_front("alert", 1.0)
    atts += [att("supported-versions", "ok", "intolerance", version="TLSv1.2")
             for _ in range(2)]
    assert "version-intolerance" not in ids(view(atts))


def test_size_window_states_both_bounds() -> None:
    atts = [a for a in healthy() if not a["profile"].startswith("size:")]
    for n, o in ((250, "ok"), (600, "hang-unacked"), (1300, "ok"), (1800, "ok"),
                 (4000, "ok")):
        atts.append(att(f"size:{n}", o, "size", bytes=n, acked=o == "ok"))
    # bisected: the lower boundary between 250 and 600, the upper between 600 and 1300
    for n, o in ((425, "ok"), (512, "ok"), (556, "ok"), (578, "ok"), (589, "hang-unacked"),
                 (950, "ok"), (775, "ok"), (687, "ok"), (643, "hang-unacked"),
                 (665, "hang-unacked"), (676, "ok")):
        atts.append(att(f"size:{n}", o, "bisect", bytes=n, acked=o == "ok"))
    found = {f.id: f for f in rules.evaluate(view(atts))}
    assert set(found) == {"size-window", "policy"}, found
    f = found["size-window"]
    assert f.figures["window_bytes"] == [589, 665]
    assert (f.figures["passing_below_bytes"], f.figures["passing_above_bytes"]) == (578, 676)
    assert "from 589 to 665 bytes are dropped (never ACKed)" in f.cause
    # the plan bisects both sides of a window, not only a limit
    rungs = [Seen.from_json(a) for a in atts if a["step"] == "size"]
    assert plan.size_gaps(rungs) == [(250, 600), (600, 1300)]


def _timed(profile: str, outcome: str, t: float, step: str = "repeat",
           **kw: Any) -> dict[str, Any]:
    return att(profile, outcome, step, started_at=1000.0 + t,
               detail="connection refused (RST to SYN)" if outcome == "refused" else outcome,
               **kw)


def test_rate_limit_is_not_a_flap() -> None:
    """Refusals in every burst, between connections that get in, and retries after a
    back-off that get in: a rate limit. One stretch of refusals: an outage."""
    atts: list[dict[str, Any]] = []
    for burst in range(3):
        t0 = burst * 2.0
        for i in range(8):
            a = _timed("known-good", "ok" if i < 4 else "refused", t0 + i * 0.01)
            atts.append(a)
            if a["outcome"] == "refused":
                r = _timed("known-good", "ok", t0 + 0.5 + i * 0.01)
                r["retry_of"] = a["id"]
                atts.append(r)
    found = {f.id: f for f in rules.evaluate(view(atts))}
    assert "rate-limited" in found and "endpoint-flapping" not in found, found
    f = found["rate-limited"]
    assert f.figures["bursts"] == 3 and f.figures["refused"] == 12
    assert f.figures["retries_in"] == 12 and f.confidence == "high"
    # an outage: the refusals form one stretch in time
    down = [_timed("known-good", "refused" if 1.0 <= t < 2.0 else "ok", t)
            for t in (x * 0.1 for x in range(30))]
    found = {f.id: f for f in rules.evaluate(view(down))}
    assert "endpoint-flapping" in found and "rate-limited" not in found, found


def test_lossy_path_claims_its_victims() -> None:
    atts = healthy()
    for a in atts[::3]:
        if a["outcome"] in ("ok", "alert"):
            a["tcp"]["retransmits"] = 1
            a["timings_ms"]["total"] = 210.0
    for a in atts:
        a["tcp"].setdefault("retransmits", 0)
    victim = att("known-good", "hang-unacked", "repeat", acked=False, total=2000)
    victim["tcp"]["retransmits"] = 4
    atts.append(victim)
    found = {f.id: f for f in rules.evaluate(view(atts))}
    assert set(found) == {"lossy-path", "policy"}, found
    assert victim["id"] in found["lossy-path"].attempts
    # a healthy path retransmits nothing
    assert "lossy-path" not in ids(view(healthy()))
