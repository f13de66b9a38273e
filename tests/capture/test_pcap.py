"""`prober profiles from-pcap` on captures made here by tcpdump of real clients.

A listener started by the test keeps the exact bytes each connection sent before it
closes; real clients (openssl s_client, curl, gnutls-cli, `prober probe` with several
profiles) connect to it while tcpdump captures. Every hello found in a capture must be
byte for byte what the listener received on the same client port, and nothing the
listener received may be missing.

Captures: loopback (Ethernet framing), ``-i any`` (Linux cooked v2, and v1 with
``-y LINUX_SLL``), nanosecond timestamps, pcapng (editcap), pcapng with two interfaces
of different link types (mergecap), both rewritten big-endian here (no tool on Debian
writes that), VXLAN on UDP 4789 between two network namespaces (the shape of AWS VPC
traffic mirroring, with an MTU that makes every hello span TCP segments), a hello split
into segments and records by prober itself, and the loopback packets reordered,
duplicated and damaged.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.capture.hellos import SeenHello
from prober.capture.pcap import CaptureError, ScanStats, import_captures, scan
from prober.capture.tcp_reassembly import Reassembler
from prober.profiles.loader import load_file, resolve
from prober.wire.buffer import DecodeError
from prober.wire.clienthello import ClientHello, SSLv2Hello, build, read_client_hello
from tests.conftest import missing, need_bins
from tests.peers.lifecycle import poll_until, stop_process

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
LONG_SNI = ".".join(["a" * 60] * 4) + ".test"  # 249 bytes: an OpenSSL hello over 512
SPLIT_LEN = 395 + 2 * 5  # the split profile's hello: padded to 400 in one record, in two
PROBE_PROFILES = ["chrome-101-win10", "firefox-137-win11", "java-8u442", "tls1.2-only",
                  "sslv2-only", "group:X25519MLKEM768"]


# --- the peer that tells what was sent ----------------------------------------------


def hello_complete(buf: bytes) -> bool:
    if len(buf) >= 2 and buf[0] & 0x80:
        return len(buf) >= 2 + ((buf[0] & 0x7F) << 8 | buf[1])
    try:
        read_client_hello(buf)
    except DecodeError:
        return False
    return True


class HelloRecorder:
    """Accepts on ``host``; keeps what each connection sent until its hello is whole
    (or 3 s passed), then closes. ``records``: (client ip, client port, bytes)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.records: list[tuple[str, int, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HelloRecorder:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(5)
        for t in self._threads:
            t.join(5)
        self.sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                c, addr = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(c, addr), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, c: socket.socket, addr: tuple[str, int]) -> None:
        buf = b""
        deadline = time.monotonic() + 3
        c.settimeout(0.2)
        with c:
            while not hello_complete(buf) and time.monotonic() < deadline:
                try:
                    got = c.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not got:
                    break
                buf += got
        with self._lock:
            self.records.append((addr[0], addr[1], buf))

    def by_port(self) -> dict[int, bytes]:
        with self._lock:
            return {port: data for _, port, data in self.records}


# --- tcpdump and clients --------------------------------------------------------------


@contextlib.contextmanager
def tcpdump(path: Path, iface: str, bpf: str, *extra: str,
            netns: str | None = None) -> Iterator[None]:
    argv = ["tcpdump", "--immediate-mode", "-U", "-n", "-B", "16384", "-i", iface, "-w", str(path),
            *extra, bpf]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    err = path.with_name(path.name + ".err")
    with open(err, "wb") as fh:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=fh)
    try:
        poll_until(lambda: b"listening on" in err.read_bytes() or proc.poll() is not None, 10)
        if b"listening on" not in err.read_bytes():
            raise RuntimeError(f"tcpdump did not start: {err.read_text()}")
        yield
        # the last packets: tcpdump writes them a while after they passed, and drops what
        # it has not written on SIGINT; wait until the file has stopped growing for 0.6 s
        # (one quiet 0.15 s step was not enough on a loaded machine: a descheduled
        # tcpdump lost the last hellos of a run)
        sizes = [-1]

        def settled() -> bool:
            sizes.append(path.stat().st_size if path.exists() else 0)
            return len(sizes) > 4 and len(set(sizes[-5:])) == 1

        poll_until(settled, 8.0, step=0.15)
    finally:
        stop_process(proc, signal.SIGINT)  # on SIGINT tcpdump flushes and exits


def run(*argv: str, netns: str | None = None, timeout: float = 15) -> str:
    if netns:
        argv = ("ip", "netns", "exec", netns, *argv)
    r = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, cwd=REPO, check=False)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def s_client(target: str, *opts: str, netns: str | None = None) -> None:
    run("openssl", "s_client", "-connect", target, *opts, netns=netns)


def split_profile(tmp: Path) -> Path:
    """The tls1.2-only hello, cut into TLS records of 100 bytes and TCP segments of 60."""
    doc = {"schema": 1, "name": "split-hello", "origin": "handwritten",
           "hello": {"version": "TLSv1.2", "cipher_suites": ["ECDHE-RSA-AES128-GCM-SHA256",
                                                             "ECDHE-ECDSA-AES128-GCM-SHA256"],
                     "extensions": ["server_name", {"supported_groups": ["x25519"]},
                                    {"signature_algorithms": ["rsa_pss_rsae_sha256"]},
                                    {"padding": {"to": 400}}]},
           "transport": {"record_sizes": [100], "segment_sizes": [60, 60], "pause_ms": 30}}
    path = tmp / "split-hello.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def probe(target: str, profiles: list[str], *extra: str, netns: str | None = None) -> str:
    args = [a for p in profiles for a in ("-p", p)]
    return run(PY, "-m", "prober", "probe", target, *args, "-t", "3", "-c", "4", *extra,
               netns=netns, timeout=60)


# --- the loopback capture (one run of clients, four tcpdumps at once) ----------------


@dataclass
class Loopback:
    dir: Path
    v4: HelloRecorder
    v6: HelloRecorder
    files: dict[str, Path] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)  # client port -> what sent it

    def sent(self) -> dict[int, bytes]:
        return {**self.v4.by_port(), **self.v6.by_port()}


def _label_new(rec: HelloRecorder, before: int, label: str, labels: dict[int, str]) -> None:
    for _, port, _ in rec.records[before:]:
        labels[port] = label


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    need_bins("tcpdump", "openssl", "curl", "gnutls-cli")
    if os.geteuid() != 0:
        missing("capturing with tcpdump needs root")
    tmp = tmp_path_factory.mktemp("lo")
    with HelloRecorder("127.0.0.1") as v4, HelloRecorder("::1") as v6:
        lb = Loopback(tmp, v4, v6)
        bpf = f"tcp port {v4.port} or tcp port {v6.port}"
        lb.files = {"lo": tmp / "lo.pcap", "lo-ns": tmp / "lo-ns.pcap",
                    "sll2": tmp / "any.pcap", "sll": tmp / "any-sll.pcap"}
        with contextlib.ExitStack() as caps:
            caps.enter_context(tcpdump(lb.files["lo"], "lo", bpf))
            caps.enter_context(tcpdump(lb.files["lo-ns"], "lo", bpf,
                                       "--time-stamp-precision=nano"))
            caps.enter_context(tcpdump(lb.files["sll2"], "any", bpf))
            caps.enter_context(tcpdump(lb.files["sll"], "any", bpf, "-y", "LINUX_SLL"))
            t4, t6 = f"127.0.0.1:{v4.port}", f"[::1]:{v6.port}"
            clients: list[tuple[str, HelloRecorder, list[str]]] = [
                ("s_client a", v4, ["openssl", "s_client", "-connect", t4, "-servername",
                                    "a.test"]),
                ("s_client a", v4, ["openssl", "s_client", "-connect", t4, "-servername",
                                    "b.test", "-bind", "127.0.0.2:0"]),
                ("s_client a", v4, ["openssl", "s_client", "-connect", t4, "-servername",
                                    "a.test", "-bind", "127.0.0.3:0"]),
                ("s_client tls1.2", v4, ["openssl", "s_client", "-connect", t4, "-tls1_2",
                                         "-servername", "a.test", "-cipher",
                                         "ECDHE-RSA-AES128-GCM-SHA256"]),
                ("s_client no sni", v4, ["openssl", "s_client", "-connect", t4,
                                         "-noservername"]),
                ("s_client records", v4, ["openssl", "s_client", "-connect", t4,
                                          "-max_send_frag", "512", "-alpn", "h2",
                                          "-servername", LONG_SNI]),
                ("s_client v6", v6, ["openssl", "s_client", "-connect", t6, "-tls1_3",
                                     "-servername", "six.test"]),
                ("curl", v4, ["curl", "-sk", "--max-time", "3", "--resolve",
                              f"c.test:{v4.port}:127.0.0.1", f"https://c.test:{v4.port}/"]),
                ("gnutls-cli", v4, ["gnutls-cli", "--insecure", "-p", str(v4.port),
                                    "--sni-hostname", "g.test", "127.0.0.1"]),
            ]
            for label, rec, argv in clients:
                before = len(rec.records)
                run(*argv)
                _wait_records(rec, before + 1)
                _label_new(rec, before, label, lb.labels)
            before = len(v4.records)
            out = probe(t4, [*PROBE_PROFILES, str(split_profile(tmp))], "--sni", "p.test")
            _wait_records(v4, before + len(PROBE_PROFILES) + 1, out)
            _label_new(v4, before, "prober", lb.labels)
        yield lb


def _wait_records(rec: HelloRecorder, n: int, why: str = "") -> None:
    if not poll_until(lambda: len(rec.records) >= n, 5):
        raise AssertionError(f"listener saw {len(rec.records)} connections, "
                             f"expected {n}: {why}")


def hellos_of(*paths: Path) -> tuple[list[SeenHello], ScanStats]:
    out: list[SeenHello] = []
    stats = scan([str(p) for p in paths], out.append)
    return out, stats


def assert_same_as_sent(found: list[SeenHello], sent: dict[int, bytes],
                        copies: int = 1) -> None:
    """Every hello sent is found ``copies`` times with the same bytes; nothing else."""
    by_port: dict[int, list[bytes]] = {}
    for h in found:
        by_port.setdefault(h.client_port, []).append(h.raw)
    assert sorted(by_port) == sorted(sent), "client ports differ from the listener's"
    for port, data in sent.items():
        assert by_port[port] == [data] * copies, f"hello from port {port} differs"


# --- tests on the loopback captures ---------------------------------------------------


def test_every_hello_on_loopback_is_found_byte_for_byte(loopback: Loopback) -> None:
    sent = loopback.sent()
    assert len(sent) == 9 + len(PROBE_PROFILES) + 1
    for key in ("lo", "lo-ns", "sll2", "sll"):
        found, stats = hellos_of(loopback.files[key])
        assert_same_as_sent(found, sent)
        assert stats.malformed_total == 0, stats.malformed
    # the link types are what tcpdump was asked for
    for key, link in (("lo", "Ethernet"), ("sll2", "Linux cooked v2"),
                      ("sll", "Linux cooked v1")):
        _, stats = hellos_of(loopback.files[key])
        assert set(stats.link_types) == {link}


def test_timestamps_agree_between_micro_and_nanosecond_files(loopback: Loopback) -> None:
    us, _ = hellos_of(loopback.files["lo"])
    ns, _ = hellos_of(loopback.files["lo-ns"])
    t_us = {h.client_port: h.ts for h in us}
    t_ns = {h.client_port: h.ts for h in ns}
    assert t_us.keys() == t_ns.keys()
    for port, ts in t_us.items():
        assert abs(ts - t_ns[port]) < 0.01
        assert abs(ts - time.time()) < 600  # seconds since the epoch, not ticks


def test_hellos_spanning_records_and_segments(loopback: Loopback) -> None:
    found, _ = hellos_of(loopback.files["lo"])
    by_label = {loopback.labels[h.client_port]: h for h in found}
    long = by_label["s_client records"]
    assert _record_count(long.raw) == 2, "openssl was told to send records of 512 bytes"
    assert isinstance(long.hello, ClientHello) and long.sni == LONG_SNI
    split = next(h for h in found if h.sni == "p.test" and isinstance(h.hello, ClientHello)
                 and h.hello.cipher_suites == [0xC02F, 0xC02B])
    assert _record_count(split.raw) == 2  # 100 bytes, then the rest of the 395
    assert len(split.raw) == SPLIT_LEN
    assert _segments_with_payload(loopback.files["lo"], split.client_port) >= 3


def _record_count(raw: bytes) -> int:
    n, pos = 0, 0
    while pos + 5 <= len(raw):
        pos += 5 + int.from_bytes(raw[pos + 3:pos + 5], "big")
        n += 1
    return n


def _segments_with_payload(pcap: Path, client_port: int) -> int:
    out = subprocess.run(["tcpdump", "-n", "-r", str(pcap), f"tcp src port {client_port} "
                          "and greater 67"], capture_output=True, text=True, check=True)
    return len([ln for ln in out.stdout.splitlines() if "length 0" not in ln])


def test_prober_profiles_come_back_as_sent(loopback: Loopback) -> None:
    """Each profile `prober probe` sent is one extracted hello with its suites and
    extensions, as `build` makes them from the profile."""
    found, _ = hellos_of(loopback.files["sll2"])
    probed = [h for h in found if loopback.labels[h.client_port] == "prober"]
    for name in [*PROBE_PROFILES, str(split_profile(loopback.dir))]:
        (profile,) = resolve(name)
        want = build(profile.spec, "p.test")
        if want.hello is None:
            v2 = [h.hello for h in probed if isinstance(h.hello, SSLv2Hello)]
            assert len(v2) == 1 and v2[0].cipher_specs == profile.spec.cipher_suites
            continue
        match = [h for h in probed if isinstance(h.hello, ClientHello)
                 and h.hello.cipher_suites == want.hello.cipher_suites
                 and [t for t, _ in h.hello.extensions or ()]
                 == [t for t, _ in want.hello.extensions or ()]]
        assert len(match) == 1, name
        got = match[0].hello
        assert isinstance(got, ClientHello)
        # the bodies that do not change per attempt are equal too
        fixed = {t: b for t, b in want.hello.extensions or () if t not in (0x0033, 0x0015)}
        assert {t: b for t, b in got.extensions or () if t in fixed} == fixed


def test_profiles_deduplicated_with_counts_ips_and_sni(loopback: Loopback) -> None:
    imp = import_captures([loopback.files["lo"]])
    sent = loopback.sent()
    assert sum(g.count for g in imp.groups) == len(sent)
    a = [g for g in imp.groups if "a.test" in g.top_sni() and g.count == 3]
    assert len(a) == 1, "three s_client runs with one configuration are one profile"
    g = a[0]
    assert set(g.clients) == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    assert g.top_sni() == ["a.test", "b.test"] and g.sni["a.test"] == 2
    assert set(g.server_ports) == {loopback.v4.port}
    assert g.first_seen <= g.last_seen and g.last_seen - g.first_seen < 30
    assert g.name == f"{g.fingerprint}-a.test"
    # the TLS 1.2-only s_client run, the one without SNI and the v6 one are their own
    six = [x for x in imp.groups if x.top_sni() == ["six.test"]]
    assert len(six) == 1 and set(six[0].clients) == {"::1"}
    names = [x.name for x in imp.groups]
    assert len(set(names)) == len(names)
    # the same connections captured twice (lo and any) are counted once
    twice = import_captures([loopback.files["lo"], loopback.files["sll2"]])
    assert [(x.name, x.count) for x in imp.groups] == [(x.name, x.count) for x in twice.groups]
    # every frame of both files is read (two tcpdumps need not catch the same last
    # packets of a connection's teardown: compared with each file's own count, not 2x)
    alone = import_captures([loopback.files["sll2"]])
    assert twice.stats.frames == imp.stats.frames + alone.stats.frames


def test_pcapng_from_editcap_and_mergecap(loopback: Loopback, tmp_path: Path) -> None:
    need_bins("editcap", "mergecap")
    sent = loopback.sent()
    ng = tmp_path / "lo.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(loopback.files["lo-ns"]), str(ng)],
                   check=True, capture_output=True)
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    found, stats = hellos_of(ng)
    assert_same_as_sent(found, sent)
    assert stats.malformed_total == 0
    # two interfaces of two link types in one file
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), str(loopback.files["lo"]),
                    str(loopback.files["sll"])], check=True, capture_output=True)
    found, stats = hellos_of(merged)
    assert set(stats.link_types) == {"Ethernet", "Linux cooked v1"}
    # a packet captured on two interfaces is one packet: each hello counts once
    assert_same_as_sent(found, sent)
    # (each file's own count: two tcpdumps need not catch the same teardown packets)
    assert stats.frames == (hellos_of(loopback.files["lo"])[1].frames
                            + hellos_of(loopback.files["sll"])[1].frames)
    for src, dst in ((ng, tmp_path / "be.pcapng"), (merged, tmp_path / "merged-be.pcapng"),
                     (loopback.files["lo"], tmp_path / "be.pcap")):
        to_big_endian(src, dst)
        found_be, st = hellos_of(dst)
        assert [(h.client_port, h.raw, h.ts) for h in found_be] == [
            (h.client_port, h.raw, h.ts) for h in hellos_of(src)[0]]
        assert st.malformed_total == 0


def test_snaplen_cut_hellos_are_counted_not_fatal(tmp_path: Path) -> None:
    need_bins("tcpdump", "openssl")
    if os.geteuid() != 0:
        missing("capturing with tcpdump needs root")
    pcap = tmp_path / "short.pcap"
    with HelloRecorder() as rec, tcpdump(pcap, "lo", f"tcp port {rec.port}", "-s", "120"):
        s_client(f"127.0.0.1:{rec.port}", "-servername", "cut.test")
        _wait_records(rec, 1)
    found, stats = hellos_of(pcap)
    assert found == []
    assert stats.malformed["hello cut short by the capture's snaplen"] == 1
    r = subprocess.run([PY, "-m", "prober", "profiles", "from-pcap", str(pcap), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "no ClientHello found" in r.stdout
    assert "malformed: 1 (hello cut short by the capture's snaplen: 1)" in r.stdout


# --- reordered, duplicated and damaged packets (rewritten from the real capture) ------


@dataclass
class Rec:
    hdr: bytes  # the 16-byte pcap record header (timestamps kept)
    frame: bytes

    def tcp(self) -> tuple[int, int, int, int] | None:
        """(source port, seq, flags, payload offset) of an Ethernet/IPv4/TCP frame."""
        f = self.frame
        if len(f) < 54 or f[12:14] != b"\x08\x00" or f[14] >> 4 != 4 or f[23] != 6:
            return None
        t = 14 + (f[14] & 0x0F) * 4
        sport, _dport, seq = struct.unpack_from(">HHI", f, t)
        return sport, seq, f[t + 13], t + (f[t + 12] >> 4) * 4


def read_pcap(path: Path) -> tuple[bytes, list[Rec]]:
    data = path.read_bytes()
    recs, pos = [], 24
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        recs.append(Rec(data[pos:pos + 16], data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return data[:24], recs


def write_pcap(path: Path, head: bytes, recs: list[Rec]) -> None:
    with open(path, "wb") as fh:
        fh.write(head)
        for r in recs:
            fh.write(r.hdr[:8] + struct.pack("<II", len(r.frame), len(r.frame)) + r.frame)


def with_payload(r: Rec, skip: int, payload: bytes) -> Rec:
    """The same segment, starting ``skip`` bytes later and carrying ``payload``."""
    info = r.tcp()
    assert info is not None
    _, seq, _, at = info
    f = bytearray(r.frame[:at] + payload)
    struct.pack_into(">H", f, 16, len(f) - 14)  # IPv4 total length
    struct.pack_into(">I", f, 14 + (f[14] & 0x0F) * 4 + 4, (seq + skip) % (1 << 32))
    return Rec(r.hdr, bytes(f))


JUNK = [
    b"\x00" * 10,  # shorter than an Ethernet header
    bytes(12) + b"\x08\x00" + b"\x45\x00",  # IPv4, two bytes of header
    bytes(12) + b"\x08\x00" + b"\x45\x00\x00\x17" + bytes(5) + b"\x06" + bytes(10)
    + b"\x01\x02\x03",  # TCP, three bytes of header
    bytes(12) + b"\x08\x00" + b"\x75" + bytes(40),  # IP version 7
]


def test_reordered_retransmitted_and_damaged_packets(loopback: Loopback,
                                                     tmp_path: Path) -> None:
    head, recs = read_pcap(loopback.files["lo"])
    sent = loopback.sent()
    port_of = {v: k for k, v in loopback.labels.items()}

    def data_recs(port: int) -> list[Rec]:
        out = []
        for r in recs:
            info = r.tcp()
            if info and info[0] == port and len(r.frame) > info[3]:
                out.append(r)
        return out

    # the split prober hello: the last segment first, the first one twice
    split = next(port for port, raw in sent.items() if loopback.labels[port] == "prober"
                 and len(raw) == SPLIT_LEN)
    seg = data_recs(split)[:3]
    assert len(seg) == 3
    out = [r for r in recs if all(r is not s for s in seg)]
    out.extend([seg[2], seg[0], seg[0], seg[1]])
    # an overlapping retransmission of bytes 30..90 of another hello, ahead of it
    first = data_recs(port_of["curl"])[0]
    info = first.tcp()
    assert info is not None
    over = with_payload(first, 30, first.frame[info[3] + 30:info[3] + 90])
    out.insert(next(i for i, r in enumerate(out) if r is first), over)
    # damage that must be counted, never fatal
    out[5:5] = [Rec(recs[0].hdr, j) for j in JUNK]
    shuffled = tmp_path / "shuffled.pcap"
    write_pcap(shuffled, head, out)
    found, stats = hellos_of(shuffled)
    assert_same_as_sent(found, sent)
    assert stats.seen["retransmitted segments"] >= 2
    assert stats.malformed_total == 4, stats.malformed
    # a capture that began after the SYNs: the split hello still arrives back to front
    no_syn = [r for r in out if not ((r.tcp() or (0, 0, 0, 0))[2] & 0x02)]
    late = tmp_path / "no-syn.pcap"
    write_pcap(late, head, no_syn)
    found, stats = hellos_of(late)
    assert_same_as_sent(found, sent)
    assert stats.malformed_total == 4


def test_damaged_bytes_are_never_fatal(loopback: Loopback, tmp_path: Path) -> None:
    """300 copies of the real captures with random bytes overwritten or the tail cut:
    every scan finishes; a hello found is always one of those sent (or a damaged copy
    that still parses), and the damage shows in the counts."""
    import random

    rnd = random.Random(3)
    sent = set(loopback.sent().values())
    sources = [loopback.files["lo"].read_bytes()]
    ng = tmp_path / "lo.pcapng"
    if subprocess.run(["editcap", "-F", "pcapng", str(loopback.files["lo"]), str(ng)],
                      capture_output=True, check=False).returncode == 0:
        sources.append(ng.read_bytes())
    path = tmp_path / "damaged"
    damaged_seen = 0
    for i in range(300):
        data = bytearray(sources[i % len(sources)])
        if i % 3 == 0:
            del data[rnd.randrange(28, len(data)):]
        for _ in range(rnd.randint(1, 8)):
            data[rnd.randrange(24, len(data))] = rnd.randrange(256)
        path.write_bytes(bytes(data))
        found, stats = hellos_of(path)
        assert len(found) <= len(sent)
        damaged_seen += stats.malformed_total > 0 or len(found) < len(sent)
    assert damaged_seen > 100


def test_memory_bounds_cut_and_count(loopback: Loopback) -> None:
    sent = loopback.sent()
    # 100 bytes for all flows together: only the hello that waits for a second segment
    # (prober's split one) ever holds more, and it is given up
    found: list[SeenHello] = []
    stats = scan([str(loopback.files["lo"])], found.append, Reassembler(max_buffered=100))
    assert sorted(len(h.raw) for h in found) == sorted(
        len(raw) for raw in sent.values() if len(raw) != SPLIT_LEN)
    assert stats.malformed == {"flows dropped to bound memory": 1}
    # hellos over 600 bytes are refused as soon as their handshake header says so
    found = []
    stats = scan([str(loopback.files["lo"])], found.append, Reassembler(max_hello=600))
    big = [raw for raw in sent.values()
           if raw[0] == 0x16 and 4 + int.from_bytes(raw[6:9], "big") > 600]
    assert len(big) >= 2 and len(found) == len(sent) - len(big)
    assert stats.malformed["TLS records that cannot be a ClientHello"] == len(big)


def test_sequence_numbers_wrapping_inside_a_hello(loopback: Loopback, tmp_path: Path) -> None:
    """The split hello again, its client's sequence numbers moved so that 2^32 falls
    between its first and second segment."""
    head, recs = read_pcap(loopback.files["lo"])
    port = next(p for p, raw in loopback.sent().items() if len(raw) == SPLIT_LEN)
    syn = next(r for r in recs if (r.tcp() or (0, 0, 0, 0))[:1] == (port,)
               and (r.tcp() or (0, 0, 0, 0))[2] & 0x02)
    info = syn.tcp()
    assert info is not None
    delta = (1 << 32) - 61 - info[1]  # ISN 2^32 - 61: the second 60-byte segment is at 0
    out = []
    for r in recs:
        i = r.tcp()
        if i is not None and i[0] == port:
            f = bytearray(r.frame)
            struct.pack_into(">I", f, 14 + (f[14] & 0x0F) * 4 + 4, (i[1] + delta) % (1 << 32))
            r = Rec(r.hdr, bytes(f))
        out.append(r)
    path = tmp_path / "wrap.pcap"
    write_pcap(path, head, out)
    found, _ = hellos_of(path)
    assert_same_as_sent(found, loopback.sent())


@pytest.mark.parametrize(("linktype", "rewrite"), [
    (101, lambda f: f[14:]),  # raw IP, as a tun device or WireGuard gives it
    (0, lambda f: struct.pack("<I", 10 if f[12:14] == b"\x86\xdd" else 2) + f[14:]),
    (1, lambda f: f[:12] + b"\x88\xa8\x00\x07\x81\x00\x00\x2a" + f[12:]),  # QinQ tags
])
def test_link_types_no_local_tool_writes(loopback: Loopback, tmp_path: Path, linktype: int,
                                         rewrite: object) -> None:
    """Raw IP, BSD loopback and 802.1ad+802.1Q tagged Ethernet, rewritten from the real
    loopback capture (this kernel has no VLAN or tunnel devices to capture them on)."""
    head, recs = read_pcap(loopback.files["lo"])
    assert callable(rewrite)
    out = [Rec(r.hdr, rewrite(r.frame)) for r in recs]
    path = tmp_path / f"link{linktype}.pcap"
    write_pcap(path, head[:20] + struct.pack("<I", linktype), out)
    found, stats = hellos_of(path)
    assert_same_as_sent(found, loopback.sent())
    assert stats.malformed_total == 0


# --- big-endian rewriting (no tool here writes it; the reader must read it) ----------


def to_big_endian(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        dst.write_bytes(_pcapng_be(data))
        return
    assert struct.unpack("<I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D)
    out = bytearray(struct.pack(">IHHiIII", *struct.unpack("<IHHiIII", data[:24])))
    pos = 24
    while pos < len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, pos)
        out += struct.pack(">IIII", sec, frac, incl, orig) + data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
    dst.write_bytes(bytes(out))


def _pcapng_be(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while pos < len(data):
        btype, total = struct.unpack_from("<II", data, pos)
        body = data[pos + 8:pos + total - 4]
        if btype == 0x0A0D0D0A:
            major, minor, seclen = struct.unpack_from("<HHq", body, 4)
            nb = struct.pack(">IHHq", 0x1A2B3C4D, major, minor, seclen) + _opts_be(body[16:])
        elif btype == 1:
            lt, res, snap = struct.unpack_from("<HHI", body)
            nb = struct.pack(">HHI", lt, res, snap) + _opts_be(body[8:])
        elif btype == 6:
            iface, hi, lo, cap, orig = struct.unpack_from("<IIIII", body)
            padded = (cap + 3) // 4 * 4
            nb = (struct.pack(">IIIII", iface, hi, lo, cap, orig) + body[20:20 + padded]
                  + _opts_be(body[20 + padded:]))
        else:
            pos += total
            continue  # statistics and the like: nothing the reader uses
        out += struct.pack(">II", btype, len(nb) + 12) + nb + struct.pack(">I", len(nb) + 12)
        pos += total
    return bytes(out)


def _opts_be(opts: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while pos + 4 <= len(opts):
        code, length = struct.unpack_from("<HH", opts, pos)
        value = opts[pos + 4:pos + 4 + (length + 3) // 4 * 4]
        if code == 14 and length == 8:  # if_tsoffset: a number, so its bytes turn too
            value = struct.pack(">q", struct.unpack("<q", value[:8])[0])
        out += struct.pack(">HH", code, length) + value
        pos += 4 + (length + 3) // 4 * 4
        if code == 0:
            break
    return bytes(out)


# --- VXLAN between two namespaces (the shape of VPC traffic mirroring) ---------------


@dataclass
class VxlanLab:
    client_ns: str
    server_ns: str
    client_addr: str = "203.0.113.1"
    server_addr: str = "203.0.113.2"


_NS_LISTENER = r"""
import socket, sys, threading, time
sys.path.insert(0, sys.argv[3])
from tests.capture.test_pcap import hello_complete
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
print("ready", flush=True)
lock = threading.Lock()
def serve(c, a):
    buf = b""; c.settimeout(3)
    with c:
        try:
            while not hello_complete(buf):
                d = c.recv(65536)
                if not d: break
                buf += d
        except OSError:
            pass
    with lock:
        print(a[0], a[1], buf.hex(), flush=True)
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
"""


@pytest.fixture
def vxlan_lab() -> Iterator[VxlanLab]:
    need_bins("ip", "tcpdump")
    if os.geteuid() != 0:
        missing("network namespaces need root")
    tag = f"{os.getpid() % 100000}"
    lab = VxlanLab(f"prbvx-c-{tag}", f"prbvx-s-{tag}")
    created: list[str] = []
    try:
        for ns in (lab.client_ns, lab.server_ns):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            created.append(ns)
        # the underlay is a veth pair between the two namespaces only: no host side,
        # no route anywhere else
        sh = [
            f"ip -n {lab.client_ns} link add vxu0 type veth peer name vxu1 netns {lab.server_ns}",
        ]
        for ns, me, peer, ifn in ((lab.client_ns, "198.51.100.1", "198.51.100.2", "vxu0"),
                                  (lab.server_ns, "198.51.100.2", "198.51.100.1", "vxu1")):
            over = lab.client_addr if ifn == "vxu0" else lab.server_addr
            sh += [f"ip -n {ns} link set lo up",
                   f"ip -n {ns} addr add {me}/24 dev {ifn}",
                   f"ip -n {ns} link set {ifn} up",
                   f"ip -n {ns} link add vxlan0 type vxlan id 42 dstport 4789 remote {peer} "
                   f"local {me} dev {ifn}",
                   # a small MTU on the overlay: every hello spans several TCP segments
                   f"ip -n {ns} link set vxlan0 mtu 300",
                   f"ip -n {ns} addr add {over}/24 dev vxlan0",
                   f"ip -n {ns} link set vxlan0 up"]
        for cmd in sh:
            subprocess.run(cmd.split(), check=True, capture_output=True)
        yield lab
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_vxlan_mirrored_traffic(vxlan_lab: VxlanLab, tmp_path: Path) -> None:
    lab = vxlan_lab
    log = tmp_path / "listener.log"
    with open(log, "wb") as fh:
        listener = subprocess.Popen(
            ["ip", "netns", "exec", lab.server_ns, PY, "-u", "-c", _NS_LISTENER,
             lab.server_addr, "443", str(REPO)], stdout=fh, stderr=subprocess.STDOUT)
    try:
        poll_until(lambda: b"ready" in log.read_bytes() or listener.poll() is not None, 10)
        assert b"ready" in log.read_bytes(), log.read_text()
        pcap = tmp_path / "vxlan.pcap"
        target = f"{lab.server_addr}:443"
        with tcpdump(pcap, "vxu0", "udp port 4789", netns=lab.client_ns):
            s_client(target, "-servername", "vx.test", netns=lab.client_ns)
            run("curl", "-sk", "--max-time", "3", "--resolve", f"vx.test:443:{lab.server_addr}",
                "https://vx.test/", netns=lab.client_ns)
            probe(target, ["chrome-101-win10", str(split_profile(tmp_path))], "--sni",
                  "vx.test", netns=lab.client_ns)
            poll_until(lambda: len(_ns_records(log)) >= 4, 5, step=0.05)
    finally:
        stop_process(listener)
    sent = _ns_records(log)
    assert len(sent) == 4
    found, stats = hellos_of(pcap)
    assert_same_as_sent(found, sent)
    assert {h.client for h in found} == {lab.client_addr}
    assert {h.server_port for h in found} == {443}
    assert stats.seen["VXLAN frames opened"] > 0 and stats.malformed_total == 0
    assert set(stats.link_types) == {"Ethernet"}
    # with an overlay MSS of 260 none of these hellos fit one segment
    assert all(len(h.raw) > 260 for h in found)
    # every TCP segment came out of a VXLAN frame (the rest were ARP): the underlay is UDP
    assert 0 < stats.seen["TCP segments"] <= stats.seen["VXLAN frames opened"]


def _ns_records(log: Path) -> dict[int, bytes]:
    out = {}
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[int(parts[1])] = bytes.fromhex(parts[2])
    return out


# --- the command -----------------------------------------------------------------------


def test_command_writes_loadable_profiles_and_json(loopback: Loopback, tmp_path: Path) -> None:
    out = tmp_path / "imported"
    js = tmp_path / "import.json"
    r = subprocess.run([PY, "-m", "prober", "profiles", "from-pcap",
                        str(loopback.files["lo"]), str(loopback.files["sll2"]),
                        "--out", str(out), "--json", str(js)],
                       capture_output=True, text=True, check=False, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(js.read_text())
    assert doc["schema"] == "prober.pcap-import/1"
    n_sent = len(loopback.sent())
    # both files hold the same connections: each hello counts once
    assert doc["stats"]["hellos"] == n_sent
    assert sum(f["count"] for f in doc["fingerprints"]) == n_sent
    files = sorted(out.glob("*.yaml"))
    assert len(files) == len(doc["fingerprints"])
    header = r.stdout.splitlines()[0]
    assert header.startswith("2 files, ") and f"{n_sent} ClientHellos" in header
    assert r.stdout.splitlines()[2].split() == ["fingerprint", "count", "client", "IPs", "SNI",
                                                "versions", "suites"]
    for f in doc["fingerprints"]:
        p = load_file(f["file"])
        assert p.origin == "imported" and p.name == f["name"]
        assert p.extra["count"] == f["count"] and p.extra.get("ja4") == f["ja4"]
        assert p.extra["client_ips"] and p.extra["first_seen"] <= p.extra["last_seen"]
        assert f["name"].startswith(f["fingerprint"])
        # replaying the profile sends the captured hello again (random etc. aside)
        raw = bytes.fromhex(p.extra["raw_hex"])
        captured = read_client_hello(raw)
        if isinstance(captured, ClientHello):
            again = build(p.spec, f["sni"][0] if f["sni"] else None).hello
            assert again is not None
            assert again.cipher_suites == captured.cipher_suites
            assert [t for t, _ in again.extensions or ()] == [
                t for t, _ in captured.extensions or ()]
        row = next(ln for ln in r.stdout.splitlines() if ln.startswith(f["fingerprint"] + " "))
        assert f" {f['count']} " in row and f"{f['suites']}" in row.split()[-1]


def test_imported_profiles_replay_against_a_real_server(
        loopback: Loopback, tmp_path: Path, openssl_server_factory: Any) -> None:
    """What from-pcap writes is a profile `prober probe` runs: the s_client and curl
    hellos negotiate with s_server as those clients would (TLS 1.3 here)."""
    out = tmp_path / "imported"
    r = subprocess.run([PY, "-m", "prober", "profiles", "from-pcap",
                        str(loopback.files["lo"]), "--out", str(out)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    a_test = [f for f in out.glob("*-a.test.yaml")]
    curl = [f for f in out.glob("*-c.test.yaml")]
    assert len(a_test) >= 1 and len(curl) == 1
    srv = openssl_server_factory()
    res = subprocess.run([PY, "-m", "prober", "probe", f"127.0.0.1:{srv.port}", "-p",
                          str(a_test[0]), "-p", str(curl[0]), "--sni", "demo.test", "-t", "5",
                          "--json", "-"], capture_output=True, text=True, check=False, cwd=REPO)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)["summary"]
    assert [s["outcome"] for s in summary] == ["ok", "ok"], summary
    assert all(s["detail"].startswith("TLSv1.3") for s in summary)


def test_command_errors_are_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n")
    for args, msg in (([str(tmp_path / "missing.pcap")], "cannot read: No such file"),
                      ([str(text)], "not a pcap or pcapng file")):
        r = subprocess.run([PY, "-m", "prober", "profiles", "from-pcap", *args, "--out",
                            str(tmp_path / "o")], capture_output=True, text=True, check=False)
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(CaptureError):
        import_captures([text])


def test_truncated_file_keeps_what_came_before(loopback: Loopback, tmp_path: Path) -> None:
    data = loopback.files["lo"].read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 7])
    found, stats = hellos_of(cut)
    assert stats.malformed["file truncated inside a packet"] == 1
    assert len(found) == len(loopback.sent())  # the last packet is a FIN or ACK


def test_tshark_sees_the_same_hellos(loopback: Loopback) -> None:
    """An independent dissector finds a TLS ClientHello on exactly the same connections
    (tshark 4.0 does not dissect an SSLv2 hello on a port it does not know)."""
    need_bins("tshark")
    out = subprocess.run(["tshark", "-r", str(loopback.files["lo"]), "-Y",
                          "tls.handshake.type == 1", "-T", "fields", "-e", "tcp.srcport"],
                         capture_output=True, text=True, check=True)
    ports = sorted({int(x) for x in out.stdout.split()})
    found, _ = hellos_of(loopback.files["lo"])
    assert ports == sorted(h.client_port for h in found if isinstance(h.hello, ClientHello))
    assert len(ports) == len(loopback.sent()) - 1
