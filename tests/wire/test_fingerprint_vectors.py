"""JA3/JA4 (prober/wire/fingerprint.py) against published vectors and independent code.

Published vectors:

* JA3: the two examples of the salesforce/ja3 README.
* JA4: every worked example of FoxIO's ``technical_details/JA4.md`` (the Chrome hello,
  its JA4_r, the hash without signature algorithms, the ALPN rules, the all-zero hash
  of an empty field) and fingerprints from FoxIO's own regression snapshots
  (``rust/ja4/src/snapshots/ja4__insta@*.snap``) whose hellos their raw output spells
  out (``python/test/testdata/*.json``): a Chrome hello without ALPN, one resuming with
  a PSK, and one with ECH, MLKEM and ML-DSA (``sigalg-grease.pcapng``).

Independent implementations, on hellos of real clients captured here by tcpdump:
``ja4plus`` from PyPI (its own pcap reader, TCP reassembly and JA4) and tshark's JA3
(Debian's tshark 4.0 has no JA4 field yet).

Two disagreements these tests found (GREASE inside signature_algorithms, non-ASCII ALPN
bytes) were fixed in prober/wire/fingerprint.py; the tests below hold the spec's answer.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prober.wire.buffer import vec
from prober.wire.clienthello import (
    ClientHello,
    ext_alpn,
    ext_server_name,
    ext_supported_versions,
    ext_u8_list,
    ext_u16_list,
)
from prober.wire.fingerprint import ja3, ja3_string, ja4, ja4_r
from tests.capture.test_pcap import (
    HelloRecorder,
    _wait_records,
    hellos_of,
    probe,
    run,
    tcpdump,
)
from tests.conftest import missing, need_bins

REPO = Path(__file__).resolve().parents[2]


def _hexes(text: str) -> list[int]:
    return [int(x, 16) for x in text.split(",") if x]


def hello(suites: list[int], exts: list[tuple[int, bytes]] | None,
          version: int = 0x0303) -> ClientHello:
    return ClientHello(version, bytes(32), bytes(32), suites, [0], exts)


def ext_body(t: int, *, alpn: list[str] | None = None, sigs: list[int] | None = None,
             versions: list[int] | None = None) -> bytes:
    """A plausible body for an extension type (JA4 reads only SNI, ALPN, versions and
    signature algorithms; JA3 reads groups and point formats)."""
    if t == 0x0000:
        return ext_server_name("example.com")
    if t == 0x0010:
        return ext_alpn(alpn or ["h2"])
    if t == 0x000D:
        return ext_u16_list(sigs or [])
    if t == 0x002B:
        return ext_supported_versions(versions or [0x0304, 0x0303])
    if t == 0x000A:
        return ext_u16_list([0x001D, 0x0017, 0x0018])
    if t == 0x000B:
        return ext_u8_list([0])
    return b""


def from_raw_original(suites: str, exts: str, sigs: str, alpn: list[str] | None = None,
                      versions: list[int] | None = None) -> ClientHello:
    """The hello a JA4_ro (original order, GREASE already removed) spells out."""
    sig_list = _hexes(sigs)
    return hello(_hexes(suites), [(t, ext_body(t, alpn=alpn, sigs=sig_list, versions=versions))
                                  for t in _hexes(exts)])


# --- JA3: the salesforce/ja3 README ----------------------------------------------------


def test_ja3_readme_example_with_extensions() -> None:
    ch = hello([47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
               [(0, ext_server_name("example.com")), (10, ext_u16_list([23, 24, 25])),
                (11, ext_u8_list([0]))], version=769)
    assert ja3_string(ch) == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    assert ja3(ch) == "ada70206e40642a3e4461f35503241d5"


def test_ja3_readme_example_without_extensions() -> None:
    ch = hello([4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99], None, version=769)
    assert ja3_string(ch) == "769,4-5-10-9-100-98-3-6-19-18-99,,,"
    assert ja3(ch) == "de350869b8c85de67a350c8d186f11e6"


def test_ja3_ignores_grease_everywhere() -> None:
    ch = hello([0x0A0A, 47], [(0x1A1A, b""), (10, ext_u16_list([0x2A2A, 23])),
                              (11, ext_u8_list([0]))], version=771)
    assert ja3_string(ch) == "771,47,10-11,23,0"


# --- JA4: technical_details/JA4.md ---------------------------------------------------

CHROME_SUITES = "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035"
CHROME_EXTS = "001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015"
CHROME_SIGS = "0403,0804,0401,0503,0805,0501,0806,0601"
CHROME_JA4_R = (
    "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
    "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
    "0403,0804,0401,0503,0805,0501,0806,0601")


def test_ja4_spec_example() -> None:
    ch = from_raw_original(CHROME_SUITES, CHROME_EXTS, CHROME_SIGS)
    assert ja4(ch) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4_r(ch) == CHROME_JA4_R


def test_ja4_spec_example_with_grease_as_chrome_sends_it() -> None:
    """GREASE in suites, extensions, versions and groups counts nowhere."""
    ch = from_raw_original(CHROME_SUITES, CHROME_EXTS, CHROME_SIGS,
                           versions=[0x7A7A, 0x0304, 0x0303])
    assert ch.extensions is not None
    ch.cipher_suites.insert(0, 0x0A0A)
    ch.extensions.insert(0, (0x2A2A, b""))
    ch.extensions.append((0xFAFA, b"\x00"))
    assert ja4(ch) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4_r(ch) == CHROME_JA4_R


def test_ja4_spec_hash_without_signature_algorithms() -> None:
    # "If there are no signature algorithms in the hello packet, then the string ends
    # without an underscore": 0005,...,ff01 = 6d807ffa2a79
    ch = from_raw_original(CHROME_SUITES, CHROME_EXTS, "")
    assert ja4(ch).endswith("_6d807ffa2a79")
    assert not ja4_r(ch).endswith("_")


def test_ja4_spec_empty_fields_hash_to_zeros() -> None:
    # no cipher suites / no extensions in the sorted list -> 000000000000
    assert ja4(hello([], None)) == "t12i000000_000000000000_000000000000"
    only_sni_alpn = hello([0x1301], [(0x0000, ext_body(0)), (0x0010, ext_alpn(["h2"]))])
    assert ja4(only_sni_alpn) == (
        f"t12d0102h2_{hashlib.sha256(b'1301').hexdigest()[:12]}_000000000000")


@pytest.mark.parametrize(("alpn", "want"), [
    (["h2"], "h2"), (["http/1.1", "h2"], "h1"), (["h"], "hh"), ([""], "00"),
    (["\x01"], "01"),  # an ASCII control byte: hex of its first and last nibble
])
def test_ja4_alpn_rule(alpn: list[str], want: str) -> None:
    ch = hello([0x1301], [(0x0010, ext_alpn(alpn))])
    assert ja4(ch)[8:10] == want


def test_ja4_alpn_absent_and_more_than_99() -> None:
    ch = hello(list(range(1, 120)), [(0x0A0A + 0x1010 * i, b"") for i in range(3)])
    assert ja4(ch)[:10] == "t12i990000"


# JA4.md: "If the first or last byte of the first ALPN is non-alphanumeric ... we print
# the first and last characters of the hex representation of the first ALPN instead."
_SPEC_ALPN_BYTES = [(b"\xab", "ab"), (b"\xab\xcd", "ad"), (b"\x30\xab", "3b"),
                    (b"\x30\x31\xab\xcd", "3d"), (b"\x30\xab\xcd\x31", "01")]
@pytest.mark.parametrize(("raw", "want"), _SPEC_ALPN_BYTES)
def test_ja4_alpn_spec_examples_on_bytes(raw: bytes, want: str) -> None:
    ch = hello([0x1301], [(0x0010, vec(vec(raw, 1), 2))])
    assert ja4(ch)[8:10] == want


# --- JA4: FoxIO's regression snapshots ------------------------------------------------


def test_ja4_foxio_snapshot_chrome_without_alpn() -> None:
    # tls-handshake.pcapng stream 6 (mtalk.google.com:5228)
    ch = from_raw_original(CHROME_SUITES,
                           "0033,002b,001b,0000,0012,002d,000d,000a,0005,0023,0017,ff01,000b,0015",
                           CHROME_SIGS)
    assert ja4(ch) == "t13d151400_8daaf6152771_de4a06bb82e3"


def test_ja4_foxio_snapshot_chrome_resuming_with_psk() -> None:
    # tls-handshake.pcapng stream 31 (edge-chat.facebook.com): http/1.1, pre_shared_key
    ch = from_raw_original(CHROME_SUITES, CHROME_EXTS + ",0029", CHROME_SIGS,
                           alpn=["http/1.1"])
    assert ja4(ch) == "t13d1517h1_8daaf6152771_6cdcb247c39b"


SIGALG_GREASE_EXTS = "fe0d,0010,0017,0033,44cd,ff01,000a,000d,0023,002b,000b,ca34,002d,0000," \
    "0005,001b,0012"
SIGALG_GREASE_SIGS = "0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601"


def test_ja4_foxio_snapshot_ech_mlkem_mldsa() -> None:
    # sigalg-grease.pcapng: JA4 and JA4_r as FoxIO's tools print them
    ch = from_raw_original(CHROME_SUITES, SIGALG_GREASE_EXTS, SIGALG_GREASE_SIGS)
    assert ja4(ch) == "t13d1517h2_8daaf6152771_cb7bf5808d99"
    assert ja4_r(ch) == (
        "t13d1517h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,"
        "cca9_0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,ca34,fe0d,ff01_"
        "0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601")


def test_ja4_grease_in_signature_algorithms_is_ignored() -> None:
    ch = from_raw_original(CHROME_SUITES, SIGALG_GREASE_EXTS, "")
    assert ch.extensions is not None
    i = next(i for i, (t, _) in enumerate(ch.extensions) if t == 0x000D)
    ch.extensions[i] = (0x000D, ext_u16_list([0x5A5A, *_hexes(SIGALG_GREASE_SIGS)]))
    assert ja4(ch) == "t13d1517h2_8daaf6152771_cb7bf5808d99"


# --- independent implementations on real hellos ---------------------------------------


@dataclass
class Captured:
    pcap: Path
    ports: dict[int, str]  # client port -> which client sent it


@pytest.fixture(scope="module")
def real_hellos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captured]:
    need_bins("tcpdump", "openssl", "curl", "gnutls-cli")
    if os.geteuid() != 0:
        missing("capturing with tcpdump needs root")
    tmp = tmp_path_factory.mktemp("fp")
    pcap = tmp / "clients.pcap"
    ports: dict[int, str] = {}
    profiles = [str(p) for p in sorted((REPO / "profiles" / "clients").glob("*.yaml"))]
    profiles += ["tls1.0-only", "tls1.1-only", "tls1.2-only", "tls1.3-only", "sslv3-only",
                 "group:X25519MLKEM768", "cipher:ECDHE-RSA-AES256-SHA"]
    with HelloRecorder() as rec, tcpdump(pcap, "lo", f"tcp port {rec.port}"):
        t = f"127.0.0.1:{rec.port}"
        for label, argv in (
            ("openssl", ["openssl", "s_client", "-connect", t, "-servername", "o.test"]),
            ("openssl alpn", ["openssl", "s_client", "-connect", t, "-alpn", "h2,http/1.1",
                              "-servername", "o.test"]),
            ("openssl tls1.2", ["openssl", "s_client", "-connect", t, "-tls1_2"]),
            ("curl", ["curl", "-sk", "--max-time", "3", "--resolve",
                      f"c.test:{rec.port}:127.0.0.1", f"https://c.test:{rec.port}/"]),
            ("gnutls-cli", ["gnutls-cli", "--insecure", "-p", str(rec.port),
                            "--sni-hostname", "g.test", "127.0.0.1"]),
        ):
            before = len(rec.records)
            run(*argv)
            _wait_records(rec, before + 1)
            ports.update({p: label for _, p, _ in rec.records[before:]})
        before = len(rec.records)
        out = probe(t, profiles, "--sni", "p.test")
        _wait_records(rec, before + len(profiles), out)
        ports.update({p: "prober" for _, p, _ in rec.records[before:]})
    yield Captured(pcap, ports)


def _ours(cap: Captured) -> dict[int, ClientHello]:
    found, stats = hellos_of(cap.pcap)
    assert stats.malformed_total == 0
    assert sorted(h.client_port for h in found) == sorted(cap.ports)
    return {h.client_port: h.hello for h in found if isinstance(h.hello, ClientHello)}


def test_ja4_agrees_with_ja4plus_on_real_hellos(real_hellos: Captured) -> None:
    if importlib.util.find_spec("ja4plus") is None:
        missing("ja4plus not installed (pip install -e '.[dev]')")
    ours = _ours(real_hellos)
    r = subprocess.run([sys.executable, "-c", "import sys; from ja4plus.cli import main; "
                        "sys.argv[0] = 'ja4plus'; main()", "--format", "json", "--types",
                        "ja4", "analyze", str(real_hellos.pcap)],
                       capture_output=True, text=True, check=True, timeout=120)
    theirs: dict[int, tuple[str, str]] = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            if d.get("type") == "ja4":
                theirs[int(d["src_port"])] = (d["fingerprint"], d["raw"])
    assert sorted(theirs) == sorted(ours), "ja4plus found hellos on other connections"
    agree = [p for p, ch in ours.items() if (ja4(ch), ja4_r(ch)) == theirs[p]]
    print(f"\nja4plus {importlib.metadata.version('ja4plus')}: JA4 and JA4_r agree on "
          f"{len(agree)}/{len(ours)} hellos ({len(set(ja4(c) for c in ours.values()))} "
          "distinct fingerprints)")
    assert len(ours) >= 25
    for port, ch in ours.items():
        assert (ja4(ch), ja4_r(ch)) == theirs[port], real_hellos.ports[port]


def test_ja3_agrees_with_tshark_on_real_hellos(real_hellos: Captured) -> None:
    need_bins("tshark")
    ours = _ours(real_hellos)
    r = subprocess.run(["tshark", "-r", str(real_hellos.pcap), "-Y", "tls.handshake.type == 1",
                        "-T", "fields", "-e", "tcp.srcport", "-e", "tls.handshake.ja3_full",
                        "-e", "tls.handshake.ja3"], capture_output=True, text=True, check=True,
                       timeout=120)
    version = subprocess.run(["tshark", "-v"], capture_output=True, text=True,
                             check=False).stdout.split("\n")[0]
    theirs = {}
    for line in r.stdout.splitlines():
        port_text, full, digest = line.split("\t")
        theirs[int(port_text)] = (full, digest)
    assert sorted(theirs) == sorted(ours)
    agree = [p for p, ch in ours.items() if (ja3_string(ch), ja3(ch)) == theirs[p]]
    print(f"\n{version}: JA3 string and hash agree on {len(agree)}/{len(ours)} hellos")
    for port, ch in ours.items():
        assert (ja3_string(ch), ja3(ch)) == theirs[port], real_hellos.ports[port]
