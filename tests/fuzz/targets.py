"""The four fuzz targets, each a corpus of real inputs and a function that mutates one
and checks what prober made of it.

- ``flight``: the server flight reader (tests/fuzz/flights.py).
- ``describe``: the certificate description (prober.wire.certificates.describe), on the
  certificates of the recorded flights and the hostile ones, mutated where DER is parsed.
- ``pcap``: the capture import (prober.capture.pcap.import_captures), on pcap and pcapng
  files holding real ClientHellos, mutated anywhere.
- ``hello``: the ClientHello importer (read_client_hello, the fingerprints, doc_from_hello,
  the profile compiler), on the hellos of real clients, mutated field by field.

A check returns the problems it found (empty: all is well).  An exception escaping a
target is a problem too, reported by :func:`run` with the seed and case that reproduce
it (``scripts/fuzz.py TARGET --seed S --case N``).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prober.capture.hellos import fingerprint
from prober.capture.pcap import CaptureError, import_captures
from prober.profiles.identity import client_identity
from prober.profiles.importer import doc_from_hello, write_yaml
from prober.profiles.loader import load_file, profile_from_doc
from prober.wire.buffer import DecodeError, vec
from prober.wire.certificates import describe
from prober.wire.clienthello import ClientHello, SSLv2Hello, build, read_client_hello
from prober.wire.fingerprint import ja3, ja4_r
from tests.fuzz import flights as fl
from tests.fuzz.certs import mutate_der
from tests.fuzz.mutate import Choices, Seeded, chance, mutate_bytes, pick, split
from tests.fuzz.recording import load_corpus, recorded_keys
from tests.hostile import pcapkit
from tests.hostile.certs import BROKEN, good_certificate

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Failure:
    target: str
    seed: int
    case: int
    problem: str
    input: bytes = b""


@dataclass
class Report:
    target: str
    cases: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)


@dataclass
class Target:
    name: str
    seeds: Callable[[Path], Any]  # the corpus, prepared once (a scratch directory given)
    case: Callable[[Choices, Any], tuple[bytes, list[str]]]  # (input, problems)


# -- flight --------------------------------------------------------------------------------


def flight_seeds(_scratch: Path) -> list[fl.Flight]:
    return [fl.take_apart(r) for r in load_corpus()] + [fl.sslv2_seed()]


def flight_case(c: Choices, flights: list[fl.Flight]) -> tuple[bytes, list[str]]:
    return fl.run_case(c, flights)


# -- describe ------------------------------------------------------------------------------


def certificate_seeds(_scratch: Path) -> list[bytes]:
    ders: list[bytes] = []
    for rec in load_corpus():
        with recorded_keys(rec.keys):
            ders += fl.feed(None, rec.built(), rec.server).flight.certificates
    ders += [good_certificate()] + [make() for make, _ in BROKEN.values()]
    from tests.hostile.test_injection import hostile_certificate

    ders.append(hostile_certificate())
    return list(dict.fromkeys(ders))


def describe_case(c: Choices, ders: list[bytes]) -> tuple[bytes, list[str]]:
    der = mutate_der(c, pick(c, ders))
    d = describe(der)
    problems = []
    if not isinstance(d.get("sha256"), str):
        problems.append("no sha256")
    if not d.get("undecodable"):
        for k in ("subject", "issuer", "not_before", "not_after"):
            if not isinstance(d.get(k), str):
                problems.append(f"{k} is {d.get(k)!r}")
        if not all(isinstance(n, str) for n in d.get("san", [])):
            problems.append(f"san {d.get('san')!r}")
    json.dumps(d, ensure_ascii=False).encode("utf-8")  # plain, valid UTF-8
    return der, problems


# -- hello ---------------------------------------------------------------------------------


def captured_hellos() -> list[bytes]:
    """The ClientHellos of real clients: profiles/captured (recorded by
    scripts/capture_clients.py) and the hellos prober sent to record the flights."""
    out = []
    for path in sorted((REPO / "profiles" / "captured").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())["extra"]["raw_hex"]
        out.append(bytes.fromhex(raw))
    for rec in load_corpus():
        msg = rec.hellos[0]
        out.append(bytes([22, 3, 1]) + vec(msg, 2))
    out.append(pcapkit.sslv2_hello([0x010080, 0x0700C0, 0x00002F]))
    return out


@dataclass
class HelloState:
    hellos: list[bytes]
    scratch: Path
    # how often a profile that compiles is written and loaded back through YAML (pure
    # Python PyYAML, ~70 ms a profile: the CI run does it now and then)
    round_trip: float = 0.01


def hello_seeds(scratch: Path) -> HelloState:
    return HelloState(captured_hellos(), scratch)


def mutate_hello(c: Choices, raw: bytes) -> bytes:
    """A hello changed where it is parsed: an extension's body, type, place or count, the
    suites, versions, session id, compression; re-encoded (and re-cut into records) with
    its lengths right; or its bytes edited."""
    if chance(c, 0.25) or raw[0] & 0x80:
        return mutate_bytes(c, raw)
    try:
        h = read_client_hello(raw)
    except DecodeError:
        return mutate_bytes(c, raw)
    assert isinstance(h, ClientHello)
    exts = list(h.extensions or [])
    for _ in range(c.randint(1, 3)):
        kind = c.randint(0, 9)
        i = c.randint(0, max(len(exts) - 1, 0))
        if kind <= 3 and exts:
            t, body = exts[i]
            exts[i] = (t, mutate_bytes(c, body))
        elif kind == 4 and exts:
            exts[i] = (pick(c, [0, 10, 11, 13, 16, 43, 45, 51, 41, 21, 27, 28, 0x0A0A,
                                c.randint(0, 0xFFFF)]), exts[i][1])
        elif kind == 5 and exts:
            exts.insert(c.randint(0, len(exts)), exts[i])
        elif kind == 6 and exts:
            del exts[i]
        elif kind == 7:
            h.cipher_suites = pick(c, [[], [0x0A0A], [c.randint(0, 0xFFFF)],
                                       h.cipher_suites[::-1], h.cipher_suites * 3])
        elif kind == 8:
            h.legacy_version = pick(c, [0x0002, 0x0300, 0x0304, 0x7F1C, 0x7F17, 0xFEFD,
                                        c.randint(0, 0xFFFF)])
        else:
            h.compression_methods = pick(c, [[], [1], [0, 1], [c.randint(0, 255)]])
            h.session_id = pick(c, [b"", bytes(33), h.session_id])
    h.extensions = exts if h.extensions is not None or exts else None
    msg = h.encode()
    return b"".join(bytes([22, 3, 1]) + vec(p, 2)
                    for p in split(c, msg, pick(c, [16384, 100, 7])))


def hello_case(c: Choices, state: HelloState) -> tuple[bytes, list[str]]:
    raw = mutate_hello(c, pick(c, state.hellos))
    try:
        hello = read_client_hello(raw)
    except DecodeError:
        return raw, []
    # what import_captures runs on each hello; a ValueError is a malformed hello there
    try:
        fingerprint(hello)
        client_identity(hello)
        if isinstance(hello, ClientHello):
            ja3(hello)
            ja4_r(hello)
        doc = doc_from_hello(raw, name="fuzz", origin="imported")
        profile_from_doc(doc, "fuzz")
    except ValueError:
        return raw, []
    # a profile that compiles is written; it must load back and be sent again
    problems = []
    try:
        if chance(c, state.round_trip):
            path = state.scratch / "fuzz.yaml"
            write_yaml(doc, path)
            profile = load_file(path)
        else:
            profile = profile_from_doc(doc, "fuzz")
        built = build(profile.spec, "example.com")
        again = read_client_hello(built.records())
        if isinstance(hello, SSLv2Hello) != isinstance(again, SSLv2Hello):
            problems.append("the hello sent again is of another kind")
    except Exception as e:
        problems.append(f"an imported profile fails to load or build: {type(e).__name__}: "
                        f"{e}")
    return raw, problems


# -- pcap ----------------------------------------------------------------------------------


def pcap_seeds(scratch: Path) -> tuple[list[bytes], Path]:
    hellos = captured_hellos()
    files = []
    for i in range(0, len(hellos), 2):
        conns = [p for j, h in enumerate(hellos[i:i + 2])
                 for p in pcapkit.connection(h, sport=40000 + j, segment=pick(
                     Seeded(i + j), [1400, 200]))]
        files.append(pcapkit.pcap(conns, nanoseconds=bool(i % 8)))
        files.append(pcapkit.pcapng([(0, p) for p in conns]))
    return files, scratch


def pcap_case(c: Choices, state: tuple[list[bytes], Path]) -> tuple[bytes, list[str]]:
    files, scratch = state
    data = pick(c, files)
    kind = c.randint(0, 3)
    if kind == 0:
        data = data[:c.randint(0, len(data))]
    elif kind == 1:  # damage in the headers: the first bytes of the file
        head = c.randint(4, 128)
        data = data[:4] + mutate_bytes(c, data[4:head]) + data[head:]
    else:
        data = mutate_bytes(c, data, c.randint(1, 8))
    path = scratch / "fuzz.pcap"
    path.write_bytes(data)
    try:
        result = import_captures([path])
    except CaptureError:
        return data, []  # not a capture at all (its magic): the one refusal
    json.dumps(result.stats.to_json(), ensure_ascii=False).encode("utf-8")
    # (each profile returned compiled; writing and loading it back is the hello
    # target's check)
    return data, []


# -- running -------------------------------------------------------------------------------

TARGETS = {t.name: t for t in (
    Target("flight", flight_seeds, flight_case),
    Target("describe", certificate_seeds, describe_case),
    Target("pcap", pcap_seeds, pcap_case),
    Target("hello", hello_seeds, hello_case),
)}


def choices_for(seed: int, case: int) -> Seeded:
    """Each case its own generator: a failure is reproduced from (seed, case) alone."""
    return Seeded((seed << 32) | case)


def run(name: str, cases: int, seed: int, scratch: Path, *, first: int = 0,
        state: Any = None) -> Report:
    target = TARGETS[name]
    state = target.seeds(scratch) if state is None else state
    report = Report(name)
    t0 = time.perf_counter()
    for i in range(first, first + cases):
        data = b""
        try:
            data, problems = target.case(choices_for(seed, i), state)
        except Exception as e:
            problems = [f"uncaught {type(e).__name__}: {e}\n{traceback.format_exc()}"]
        report.failures += [Failure(name, seed, i, p, data) for p in problems]
        report.cases += 1
    report.seconds = time.perf_counter() - t0
    return report

