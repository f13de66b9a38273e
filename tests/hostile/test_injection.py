"""A server cannot write to the terminal or into a report: what it chooses (certificate
subject, issuer and names, the ALPN protocol, a banner) reaches every text output with
its control characters, bidi overrides and line breaks shown as escapes, the tables keep
their rows, JSON keeps the exact value (``{"hex": ...}`` for bytes that are not UTF-8)
and ``check --junit`` stays well-formed XML.

The servers are real loopback listeners: the TLS 1.3 harness (a real key exchange, a
flight the client decrypts and verifies) with a certificate and an ALPN choice full of
terminal escapes, and a plain TCP listener that greets with escape codes.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from prober.report.escape import for_html, for_terminal, for_terminal_block, for_xml, text_of
from prober.wire.buffer import vec
from prober.wire.constants import HandshakeType
from tests.hostile.alpn import alpn_extension, alpn_profile, offered_alpn
from tests.hostile.cli import Run, probe_one, run_prober
from tests.hostile.tls13_server import Answer, HostileTls13, Session
from tests.peers.factory import started_peers
from tests.peers.misbehaving import BannerListener

Hostile = Callable[[Answer], HostileTls13]

# what a hostile server puts in its names: clear the screen, home the cursor, ring the
# bell, set the window title, colour, a carriage return and a newline that forge a
# table row, a right-to-left override and isolates, a zero-width space
CN = "\x1b[2J\x1b[H\x07pwned\r\nforged-row ok 1/1\u202egnp.exe"
ORG = "O\x1b]0;owned title\x07\u2066x\u2069\u200b"
SANS = ["evil\x1b[31m.test", "a\r\nb.test", "x\u202ey.test"]
# ALPN names the test profile offers and the server picks: one that is valid UTF-8 (JSON
# keeps it as text) and one that is not (JSON keeps it as hex)
ALPN_TEXT = "h2\x1b[2J\x07\r\nforged ok\u202e".encode()
ALPN_BYTES = b"h2\x1b[31m\xff\xfe\r\nx"

FORBIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def assert_inert(text: str, where: str) -> None:
    """Nothing in ``text`` acts on a terminal: no control, format or separator character
    but the layout's own newlines and tabs."""
    bad = sorted({f"U+{ord(c):04X}" for c in text
                  if c not in "\n\t" and unicodedata.category(c) in FORBIDDEN})
    assert not bad, f"{where} holds raw {', '.join(bad)}:\n{text}"


def assert_run_inert(run: Run) -> None:
    assert_inert(run.stdout, "stdout")
    assert_inert(run.stderr, "stderr")


@cache
def hostile_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, CN)])
    now = dt.datetime.now(dt.UTC)
    # cryptography refuses to build a non-ASCII DNSName; servers are not so particular
    sans = [x509.DNSName._init_without_validation(s) for s in SANS]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def flight_choosing(alpn: Callable[[Session], bytes | None]) -> Answer:
    """A whole, verifying TLS 1.3 flight with the hostile certificate; EncryptedExtensions
    selects ``alpn(session)`` (none when it gives None)."""
    def answer(s: Session) -> bytes:
        name = alpn(s)
        ee = s.message(HandshakeType.ENCRYPTED_EXTENSIONS,
                       vec(alpn_extension(name) if name is not None else b"", 2))
        return s.seal(ee + s.certificate(hostile_certificate()) + s.certificate_verify()
                      + s.finished())
    return answer


def echo_first_alpn(s: Session) -> bytes | None:
    names = offered_alpn(s)
    return names[0] if names else None


@pytest.fixture
def hostile_tls(hostile: Hostile) -> HostileTls13:
    return hostile(flight_choosing(echo_first_alpn))


def table_lines(stdout: str) -> list[str]:
    """The probe table: the lines after the first blank one."""
    lines = stdout.rstrip("\n").split("\n")
    return lines[lines.index("") + 1:]


def assert_certificate_exact(cert: dict[str, Any]) -> None:
    assert cert["subject"] == f"CN={CN},O={ORG.replace(';', chr(92) + ';')}"
    assert cert["san"] == SANS


# -- the escaping itself ---------------------------------------------------------------


def test_every_unsafe_kind_becomes_a_visible_escape() -> None:
    cases = [
        ("\x1b[2J", "\\x1b[2J"), ("\x07", "\\x07"), ("a\r\nb", "a\\r\\nb"), ("\t", "\\t"),
        ("\x7f", "\\x7f"), ("\x9b", "\\x9b"), ("\u202e", "\\u202e"),
        ("\u2066\u2069", "\\u2066\\u2069"),
        ("\u200b\u200d\ufeff\u00ad", "\\u200b\\u200d\\ufeff\\xad"),
        ("\u2028\u2029", "\\u2028\\u2029"), ("\ud800", "\\ud800"),
        ("\udcff", "\\xff"),  # a byte that was not UTF-8 (surrogateescape)
        ("\ufffe\U0001ffff", "\\ufffe\\U0001ffff"), ("\U000e0041", "\\U000e0041"),
    ]
    for raw, shown in cases:
        assert for_terminal(raw) == shown, raw
        assert_inert(for_terminal(raw), repr(raw))
    # what is safe is left alone: letters of any script, emoji, spaces, private use
    for safe in ("CN=例え.テスト", "مرحبا", "🙂", "a\u00a0b", "\ue000", "plain ascii ~"):
        assert for_terminal(safe) == safe
    assert for_terminal_block("a\n\tb\r\x1b") == "a\n\tb\\r\\x1b"
    assert for_xml("x\x00y\ufffe") == "x\\x00y\\ufffe"
    assert for_html("<b>\x1b&", block=False) == "&lt;b&gt;\\x1b&amp;"
    assert text_of({"hex": "ff1b41"}) == "\\xff\\x1bA"
    assert text_of(None) == ""


def test_every_printed_line_goes_through_the_report_layer() -> None:
    """print(), sys.stdout/stderr.write and tabulate only in prober/report/: the one
    place output is made safe."""
    import re

    root = Path(__file__).resolve().parents[2] / "prober"
    allowed = {root / "report" / "output.py", root / "report" / "progress.py",
               root / "report" / "table.py"}
    pattern = re.compile(r"(?<![\w.])print\(|sys\.std(out|err)\.write|^\s*(from tabulate|"
                         r"import tabulate)", re.M)
    offenders = [f"{p.relative_to(root)}:{text[:m.start()].count(chr(10)) + 1}"
                 for p in sorted(root.rglob("*.py")) if p not in allowed
                 for text in [p.read_text()] for m in pattern.finditer(text)]
    assert offenders == [], offenders


# -- probe -------------------------------------------------------------------------------


def test_probe_table_and_json(tmp_path: Path, hostile_tls: HostileTls13) -> None:
    text_p = alpn_profile(tmp_path, "alpn-text", ALPN_TEXT)
    bytes_p = alpn_profile(tmp_path, "alpn-bytes", ALPN_BYTES)
    out = tmp_path / "probe.json"
    jsonl = tmp_path / "probe.jsonl"
    run = run_prober(tmp_path, "probe", f"127.0.0.1:{hostile_tls.port}", "-p", str(text_p),
                     "-p", str(bytes_p), "--json", str(out), "--jsonl", str(jsonl),
                     "-t", "5", "-c", "1")
    run.assert_survived()
    assert_run_inert(run)
    rows = table_lines(run.stdout)
    assert len(rows) == 3, run.stdout  # the header and one row per profile, no forged row
    assert rows[1].startswith("alpn-text ") and rows[2].startswith("alpn-bytes ")
    assert "ALPN h2\\x1b[2J\\x07\\r\\nforged ok\\u202e" in rows[1]
    assert "ALPN h2\\x1b[31m\\xff\\xfe\\r\\nx" in rows[2]
    doc = json.loads(out.read_text())
    by_profile = {a["profile"]: a for a in doc["attempts"]}
    for name, alpn in (("alpn-text", ALPN_TEXT), ("alpn-bytes", ALPN_BYTES)):
        a = by_profile[name]
        assert a["outcome"] == "ok", a["detail"]
        assert_certificate_exact(a["certificate"])
        chosen = a["negotiated"]["alpn"]
        if name == "alpn-text":
            assert chosen == alpn.decode()
        else:
            assert chosen == {"hex": alpn.hex()}
            assert bytes.fromhex(chosen["hex"]) == alpn
    # the streamed lines carry the same exact values
    streamed = {a["profile"]: a for a in map(json.loads, jsonl.read_text().splitlines())}
    assert streamed["alpn-bytes"]["negotiated"]["alpn"] == {"hex": ALPN_BYTES.hex()}


def test_json_to_stdout_keeps_exact_values(tmp_path: Path, hostile_tls: HostileTls13) -> None:
    """--json -: the document on stdout (json.dumps escapes), the table on stderr, inert."""
    p = alpn_profile(tmp_path, "alpn-text", ALPN_TEXT)
    run = run_prober(tmp_path, "probe", f"127.0.0.1:{hostile_tls.port}", "-p", str(p),
                     "--json", "-", "-t", "5")
    run.assert_survived()
    assert_run_inert(run)
    (a,) = json.loads(run.stdout)["attempts"]
    assert a["negotiated"]["alpn"] == ALPN_TEXT.decode()
    assert_certificate_exact(a["certificate"])
    assert len(table_lines(run.stderr)) == 2


def test_banner_of_a_server_that_is_not_tls(tmp_path: Path) -> None:
    banner = b"\x1b[2J\x1b[1;1H\x07SSH-2.0-evil\r\nfake-profile ok 1/1\xff\xe2\x80\xae"
    with started_peers(BannerListener) as start:
        srv = start(banner=banner)
        run, a = probe_one(tmp_path, srv.port, "tls1.2-only")
        assert_run_inert(run)
        assert a["outcome"] == "not-tls"
        assert a["banner"] == {"hex": banner.hex()}
        assert len(table_lines(run.stdout)) == 2
        # valid UTF-8: the banner is text in the JSON, exactly
        srv2 = start(banner=b"\x1b]0;title\x07HELO \xe2\x80\xae\r\n")
        run, a = probe_one(tmp_path, srv2.port, "tls1.2-only")
        assert_run_inert(run)
        assert a["banner"] == "\x1b]0;title\x07HELO \u202e\r\n"


# -- the other commands ------------------------------------------------------------------


def test_check_output_and_junit(tmp_path: Path, hostile_tls: HostileTls13) -> None:
    p = alpn_profile(tmp_path, "alpn-bytes", ALPN_BYTES)
    exp = tmp_path / "expect.yaml"
    # both fail, so their evidence (the detail with the ALPN, the certificate's subject)
    # is printed and goes into the JUnit failure text
    exp.write_text(f"schema: 1\nprofiles:\n  - profiles: [{p}]\n    allow: [alert]\n"
                   "certificate: {valid_days: 3650}\ntimeout: 5\n")
    junit = tmp_path / "junit.xml"
    out = tmp_path / "check.json"
    run = run_prober(tmp_path, "check", f"127.0.0.1:{hostile_tls.port}", "--expect", str(exp),
                     "--junit", str(junit), "--json", str(out))
    assert run.returncode == 1, run.stderr
    assert_run_inert(run)
    assert "Traceback" not in run.stderr
    root = ET.parse(junit).getroot()  # well-formed, whatever the server sent
    failures = [c.find("failure") for c in root.iter("testcase")]
    texts = [f.text or "" for f in failures if f is not None]
    assert len(texts) == 2, ET.tostring(root, encoding="unicode")
    for t in texts:
        assert_inert(t.replace("\n", ""), "JUnit failure text")
    joined = "\n".join(texts)
    assert "\\x1b[2J\\x1b[H\\x07pwned\\r\\nforged-row" in joined
    assert "ALPN h2\\x1b[31m\\xff\\xfe\\r\\nx" in joined
    for el in root.iter():
        for v in el.attrib.values():
            assert_inert(v, "JUnit attribute")
    doc = json.loads(out.read_text())
    (a,) = doc["attempts"]
    assert a["negotiated"]["alpn"] == {"hex": ALPN_BYTES.hex()}


def test_policy_report(tmp_path: Path, hostile_tls: HostileTls13) -> None:
    out = tmp_path / "policy.json"
    run = run_prober(tmp_path, "policy", f"127.0.0.1:{hostile_tls.port}", "--json", str(out),
                     "-t", "2", "-c", "4", "--budget", "60")
    run.assert_survived()
    assert_run_inert(run)
    lines = run.stdout.split("\n")
    start = lines.index("CERTIFICATES")
    end = next(i for i, line in enumerate(lines) if line.startswith("SNI-dependent chain"))
    assert len(lines[start + 1:end]) == 1, run.stdout  # one certificate, one row
    assert "\\x1b[2J\\x1b[H\\x07pwned\\r\\nforged-row" in lines[start + 1]
    (cert,) = json.loads(out.read_text())["certificates"]
    assert_certificate_exact(cert)


def test_diagnose_and_diff(tmp_path: Path, hostile_tls: HostileTls13) -> None:
    out = tmp_path / "diagnose.json"
    run = run_prober(tmp_path, "diagnose", f"127.0.0.1:{hostile_tls.port}", "-t", "1",
                     "--sweep-repeat", "1", "-n", "1", "--expect-issuer", "Let's Encrypt",
                     "--json", str(out), timeout=180)
    run.assert_survived()
    assert_run_inert(run)
    assert "tls-interception" in run.stdout
    assert "\\x1b[2J\\x1b[H\\x07pwned" in run.stdout
    doc = json.loads(out.read_text())
    ok = [a for a in doc["attempts"] if a["outcome"] == "ok"]
    assert ok and all(a["certificate"]["issuer"] == ok[0]["certificate"]["issuer"] for a in ok)
    assert_certificate_exact(ok[0]["certificate"])
    # the matrix has one row per profile run
    matrix = run.stdout.split("\nMATRIX\n", 1)[1].rstrip("\n").split("\n")
    assert len(matrix) == 1 + len({a["profile"] for a in doc["attempts"]})
    # diff against a run whose issuer is another: the issuers are quoted, inertly
    other = json.loads(out.read_text())
    for a in other["attempts"]:
        if "certificate" in a:
            a["certificate"]["issuer"] = "CN=real CA"
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    run = run_prober(tmp_path, "diff", str(out), str(other_path), "--label-a", "in\x1b[2J",
                     "--label-b", "out")
    run.assert_survived()
    assert_run_inert(run)
    assert "\\x1b[2J\\x1b[H\\x07pwned\\r\\nforged-row" in run.stdout


def test_whatif_against_the_server(tmp_path: Path, hostile_tls: HostileTls13) -> None:
    out = tmp_path / "whatif.json"
    run = run_prober(tmp_path, "whatif", "--policy", "ELBSecurityPolicy-TLS13-1-2-2021-06",
                     "--clients", "tls1.3-only", "--against",
                     f"127.0.0.1:{hostile_tls.port}", "-t", "2", "--json", str(out))
    run.assert_survived()
    assert_run_inert(run)


def test_logs_tables(tmp_path: Path) -> None:
    """Log lines carry what clients sent (handshake error texts): the same rule."""
    log = tmp_path / "go.log"
    log.write_bytes(
        b"2026/11/23 18:00:14 http: TLS handshake error from 203.0.113.9:38576: tls: client "
        b"offered only unsupported versions: [302 301]\x1b[2J\x07\r\xe2\x80\xaeevil\n"
        b"2026/11/23 18:00:15 http: TLS handshake error from 203.0.113.10:38577: remote "
        b"error: tls: bad \x1b]0;x\x07certificate\n")
    run = run_prober(tmp_path, "logs", str(log))
    run.assert_survived()
    assert_run_inert(run)
    lines = run.stdout.split("\n")
    start = lines.index("FAILURES BY REASON")
    rows = lines[start + 2:]
    assert len(rows[:rows.index("")] if "" in rows else rows) == 2, run.stdout
    assert "[302 301]\\x1b[2J\\x07\\r\\u202eevil" in run.stdout
