"""`prober profiles from-pcap` on captures written here byte by byte: a hello whose
extensions do not parse where the fingerprints read them, one no profile can replay, a
draft version, pcapng timestamps out of any range, SNI full of escape codes.  Nothing is
fatal; what is malformed is counted and listed with its file and frame number; every
profile written loads back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prober.capture.pcap import import_captures
from prober.profiles.loader import load_file
from prober.wire.buffer import vec
from tests.hostile.cli import Run, run_prober
from tests.hostile.pcapkit import Packet, client_hello, connection, pcap, pcapng, sslv2_hello
from tests.hostile.test_injection import assert_run_inert

TLS13 = (43, b"\x04\x03\x04\x03\x03")  # supported_versions: TLS 1.3, 1.2


def sni(name: bytes) -> tuple[int, bytes]:
    return 0, vec(b"\x00" + vec(name, 2), 2)


GOOD = client_hello(extensions=[TLS13, (10, b"\x00\x02\x00\x1d")])
# (hello, the kind of malformed it must be counted as); None: it must import
HELLOS: list[tuple[bytes, str | None]] = [
    (GOOD, None),
    (client_hello(extensions=[(43, b"\x03\x03")]), "ClientHello extension does not parse"),
    (client_hello(extensions=[TLS13, (10, b"\x00\x03\x00\x1d\x00")]),
     "ClientHello extension does not parse"),
    (client_hello(extensions=[TLS13, (11, b"\x05\x00")]),
     "ClientHello extension does not parse"),
    (client_hello(extensions=[TLS13, (13, b"\x00\x05\x04\x03")]),
     "ClientHello extension does not parse"),
    (client_hello(extensions=[TLS13, (16, b"\x00\x05\x09h2")]),
     "ClientHello extension does not parse"),
    (client_hello(suites=(), extensions=[TLS13]), "hello not usable as a profile"),
    (sslv2_hello([]), "hello not usable as a profile"),
    (client_hello(extensions=[(43, b"\x02\x7f\x1c")]), None),  # TLS 1.3 draft 28
    (client_hello(version=0x7F1C, extensions=[]), None),  # a draft as legacy_version
    (sslv2_hello([0x010080], version=0x7F1C), None),
]


def capture(hellos: list[bytes]) -> list[Packet]:
    """One connection per hello: a SYN (odd frame numbers) then the hello (even)."""
    return [p for i, h in enumerate(hellos) for p in connection(h, sport=40000 + i)]


def from_pcap(tmp_path: Path, *files: Path) -> tuple[Run, dict[str, Any], Path]:
    out, doc = tmp_path / "imported", tmp_path / "import.json"
    run = run_prober(tmp_path, "profiles", "from-pcap", *map(str, files), "--out", str(out),
                     "--json", str(doc))
    run.assert_survived()
    assert_run_inert(run)
    return run, json.loads(doc.read_text()), out


def assert_every_written_profile_loads(doc: dict[str, Any]) -> None:
    for fp in doc["fingerprints"]:
        profile = load_file(fp["file"])
        assert profile.name == fp["name"]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_malformed_hellos_are_counted_with_their_frame(tmp_path: Path, fmt: str) -> None:
    packets = capture([h for h, _ in HELLOS])
    path = tmp_path / f"hellos.{fmt}"
    path.write_bytes(pcap(packets) if fmt == "pcap" else pcapng([(0, p) for p in packets]))
    run, doc, _ = from_pcap(tmp_path, path)
    stats = doc["stats"]
    bad = [(2 * (i + 1), kind) for i, (_, kind) in enumerate(HELLOS) if kind is not None]
    assert stats["malformed_total"] == len(bad), stats["malformed"]
    # (hellos rejected when their profile is made are listed after the scan's)
    listed = sorted((m["frame"], m["why"]) for m in stats["malformed_frames"])
    assert [f for f, _ in listed] == [f for f, _ in bad]
    for (_, why), (_, kind) in zip(listed, bad, strict=True):
        assert why.startswith(kind), (why, kind)
    for frame, _ in bad:
        assert f"{path} frame {frame}: " in run.stdout
    assert len(doc["fingerprints"]) == sum(kind is None for _, kind in HELLOS)
    assert_every_written_profile_loads(doc)


def test_the_library_call_is_total_too(tmp_path: Path) -> None:
    path = tmp_path / "hellos.pcap"
    path.write_bytes(pcap(capture([h for h, _ in HELLOS])))
    result = import_captures([path])
    assert len(result.profiles) == 4
    assert result.stats.malformed_total == 7


@pytest.mark.parametrize(("options", "what"), [
    ({"tsresol": 0, "raw_ticks": {0: 2**63, 1: 2**64 - 1}}, "beyond year 9999"),
    ({"tsoffset": -(2**62)}, "before 1970"),
    ({"tsresol": 0x80 | 0, "raw_ticks": {0: 2**64 - 1, 1: 2**64 - 1}}, "2^64 s"),
], ids=["huge", "negative", "binary-resolution"])
def test_pcapng_timestamps_out_of_range(tmp_path: Path, options: dict[str, Any],
                                        what: str) -> None:
    path = tmp_path / "ts.pcapng"
    path.write_bytes(pcapng([(0, p) for p in connection(GOOD, sport=40000)], **options))
    _, doc, _ = from_pcap(tmp_path, path)
    (fp,) = doc["fingerprints"]
    assert fp["first_seen"] is None and fp["last_seen"] is None, what
    stats = doc["stats"]
    assert stats["malformed"] == {"timestamp out of range (frame kept without a time)": 2}
    assert [m["frame"] for m in stats["malformed_frames"]] == [1, 2]
    assert_every_written_profile_loads(doc)


def test_sni_with_escape_codes(tmp_path: Path) -> None:
    """A client's SNI reaches the table, the profile's name and `profiles show`."""
    name = b"\x1b[2J\x1b[H\x07evil\r\nforged.test"
    path = tmp_path / "sni.pcap"
    hello = client_hello(extensions=[sni(name), TLS13, (10, b"\x00\x02\x00\x1d")])
    path.write_bytes(pcap(connection(hello, sport=40000)))
    run, doc, out = from_pcap(tmp_path, path)
    rows = run.stdout.split("\n\n")[1].split("\n")
    assert len(rows) == 2, run.stdout  # the header and the one fingerprint
    assert "\\x1b[2J\\x1b[H\\x07evil\\r\\nforged.test" in rows[1]
    (fp,) = doc["fingerprints"]
    assert fp["sni"] == [name.decode()]
    written = Path(fp["file"])
    assert written.parent == out and "\x1b" not in written.name
    show = run_prober(tmp_path, "profiles", "show", str(written))
    show.assert_survived()
    assert_run_inert(show)
    assert_every_written_profile_loads(doc)


def test_sni_that_is_not_utf8_is_kept_as_bytes(tmp_path: Path) -> None:
    name = b"caf\xe9\xff.test"
    path = tmp_path / "latin1.pcap"
    hello = client_hello(extensions=[sni(name), TLS13, (10, b"\x00\x02\x00\x1d")])
    path.write_bytes(pcap(connection(hello, sport=40000)))
    run, doc, _ = from_pcap(tmp_path, path)
    (fp,) = doc["fingerprints"]
    assert fp["sni"] == [{"hex": name.hex()}]
    assert "caf\\xe9\\xff.test" in run.stdout
    written = load_file(fp["file"])
    assert written.extra["sni"] == [{"hex": name.hex()}]


def test_truncated_file_counts_the_damage_after_the_last_frame(tmp_path: Path) -> None:
    data = pcap(capture([GOOD, GOOD]))
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-7])
    _, doc, _ = from_pcap(tmp_path, path)
    stats = doc["stats"]
    assert stats["malformed"] == {"file truncated inside a packet": 1}
    # frames 1-3 were whole; the damage is in frame 4
    assert stats["malformed_frames"] == [{"file": str(path), "frame": 4,
                                          "why": "file truncated inside a packet"}]
    assert len(doc["fingerprints"]) == 1


