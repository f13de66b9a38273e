"""Deterministic fuzzing in CI: the recorded corpus replayed as it was recorded, then
10,000 seeded mutations per target (the same cases on every run), with no problem
allowed: no exception escaping, no parser hole, nothing reported that breaks a contract.
The flight reader runs under coverage.py in a process of its own, which must reach 85%
of prober/wire/serverflight.py.  ``make fuzz`` runs the long, coverage-guided version."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from prober.wire import serverflight as sf
from prober.wire import tls13
from prober.wire.buffer import u16
from prober.wire.serverflight import FlightReader
from tests.fuzz import flights as fl
from tests.fuzz.recording import Recording, load_corpus, recorded_keys
from tests.fuzz.targets import Failure, run

REPO = Path(__file__).resolve().parents[2]
SEED = 20261207
CASES = 10_000
MIN_FLIGHT_COVERAGE = 85.0


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # capture files are written per case: memory when there is some
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base) as d:
        yield Path(d)


def explain(failures: list[Failure]) -> str:
    lines = [f"{len(failures)} problem(s); rerun one with: python scripts/fuzz.py "
             f"{failures[0].target} --seed {failures[0].seed} --case {failures[0].case}"]
    for f in failures[:5]:
        lines.append(f"case {f.case}: {f.problem[:1500]}\n  input {f.input[:200].hex()}")
    return "\n".join(lines)


# -- the corpus ------------------------------------------------------------------------------


CORPUS = load_corpus()


@pytest.mark.parametrize("rec", CORPUS, ids=[r.name for r in CORPUS])
def test_corpus_replays_as_recorded(rec: Recording) -> None:
    """Each recording ends in the reader as it ended live, byte by byte too; a flight
    after a HelloRetryRequest makes the very second hello that was sent."""
    for step in (len(rec.server), 1):
        with recorded_keys(rec.keys):
            reader = FlightReader(rec.built())
            hellos = [rec.hellos[0]]
            for i in range(0, len(rec.server), step):
                if reader.feed(rec.server[i:i + step]):
                    hellos.append(reader.built.message)
        f = reader.flight
        assert (f.status, f.messages, f.error) == (
            rec.expect["status"], rec.expect["messages"], rec.expect["error"])
        assert hellos == rec.hellos


def test_corpus_spans_what_servers_send() -> None:
    versions = {r.expect["version"] for r in CORPUS if r.expect["status"] == sf.COMPLETE}
    assert {0x0301, 0x0302, 0x0303, 0x0304} <= versions
    assert any(r.expect["hrr_group"] for r in CORPUS)
    assert any(r.expect["status"] == sf.ALERT for r in CORPUS)
    assert {"zlib", "brotli"} <= {r.expect["certificate_compression"] for r in CORPUS}
    assert any(r.expect["status"] == sf.NOT_TLS for r in CORPUS)


# -- the mutations ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["describe", "pcap", "hello"])
def test_fuzz(target: str, scratch: Path) -> None:
    report = run(target, CASES, SEED, scratch)
    assert report.cases == CASES
    assert not report.failures, explain(report.failures)


def test_fuzz_flight_reader_with_coverage(tmp_path: Path) -> None:
    """The flight target in its own process under coverage.py (started before prober is
    imported, so every line is measured)."""
    out = tmp_path / "fuzz.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fuzz.py"), "flight", "--cases", str(CASES),
         "--seed", str(SEED), "--coverage", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert out.exists(), proc.stderr[-3000:]
    (res,) = json.loads(out.read_text())
    assert res["cases"] == CASES, res
    assert res["problems"] == 0, json.dumps(res["failures"][:3], indent=1)
    cov = res["coverage"]
    assert cov["percent"] >= MIN_FLIGHT_COVERAGE, cov


def test_fuzzing_finds_the_all_padding_record_without_its_fix(
        monkeypatch: pytest.MonkeyPatch, scratch: Path) -> None:
    """The decryption as it was before commit 5a21c48 (an all-padding record raised a bare
    ValueError): the flight target finds it within a few thousand cases."""
    opened = tls13.HandshakeDecryptor.decrypt_record

    def before_the_fix(self: tls13.HandshakeDecryptor, header: bytes, payload: bytes
                       ) -> tuple[int, bytes]:
        try:
            return opened(self, header, payload)
        except tls13.RecordContentError:
            raise ValueError("decrypted record has no content type (all padding)") from None

    monkeypatch.setattr(tls13.HandshakeDecryptor, "decrypt_record", before_the_fix)
    report = run("flight", 3000, SEED, scratch)
    assert any("all padding" in f.problem for f in report.failures), report.failures[:3]


def test_sslv2_server_hello_with_a_version_never_offered() -> None:
    """Found by the fuzzing: an SSLv2 SERVER-HELLO naming a version the hello did not
    offer was reported complete."""
    seed = fl.sslv2_seed()
    assert seed.built is not None
    server = bytearray(seed.rec.server)
    server[5:7] = u16(0x0034)  # SERVER-VERSION
    reader = FlightReader(seed.built)
    reader.feed(bytes(server))
    assert reader.flight.status == sf.BAD
    assert reader.flight.error == "SSLv2 ServerHello with version 0x0034, not offered"
    ok = FlightReader(seed.built)
    ok.feed(seed.rec.server)
    assert ok.flight.status == sf.COMPLETE and ok.flight.version == 0x0002
