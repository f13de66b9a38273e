"""ClientHellos from capture files: pcap/pcapng -> frames -> TCP segments -> hellos.

``scan`` walks the files in the order given (one reassembler over all of them, so a
capture rotated into several files keeps its connections whole) and hands every
ClientHello it finds to ``on_hello``. ``import_captures`` groups them into profiles.

Nothing in a file's contents is fatal: damaged frames, headers and hellos are counted
in :class:`ScanStats` (the first ones also by file and frame number, as Wireshark
numbers them) and the scan goes on. A file that cannot be opened or is not a capture
raises :class:`CaptureError` before anything is read. ``import_captures`` keeps only the
groups whose profile compiles: a hello no profile can replay is counted as malformed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.capture.hellos import Grouper, HelloGroup, SeenHello, profile_doc
from prober.capture.pcap_file import CaptureFormatError, read_frames, sniff
from prober.capture.pcap_link import LINKTYPE_NAMES, Tally, tcp_segment
from prober.capture.tcp_reassembly import HelloBytes, Reassembler
from prober.core.errors import InputError
from prober.profiles.compile import ProfileError
from prober.profiles.loader import profile_from_doc
from prober.profiles.model import Profile
from prober.wire.buffer import DecodeError
from prober.wire.clienthello import read_client_hello


class CaptureError(InputError):
    """A file that cannot be read as a capture (one line, naming the file)."""


# malformed frames listed one by one (all are counted)
MAX_MALFORMED_FRAMES = 20


@dataclass(frozen=True)
class MalformedFrame:
    file: str
    frame: int  # 1-based, in its file; one past the last frame for damage after it
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "frame": self.frame, "why": self.why}


@dataclass
class ScanStats:
    files: list[str] = field(default_factory=list)
    frames: int = 0
    hellos: int = 0
    link_types: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    malformed_frames: list[MalformedFrame] = field(default_factory=list)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def reject(self, file: str, frame: int, why: str, count: int = 1) -> None:
        """Count ``count`` malformed things of kind ``why``, first seen at ``frame``."""
        self.malformed[why] += count
        self.note(file, frame, why)

    def note(self, file: str, frame: int, why: str) -> None:
        if len(self.malformed_frames) < MAX_MALFORMED_FRAMES:
            self.malformed_frames.append(MalformedFrame(file, frame, why))

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "frames": self.frames, "hellos": self.hellos,
                "link_types": dict(self.link_types), "seen": dict(self.seen),
                "malformed": dict(self.malformed), "malformed_total": self.malformed_total,
                "malformed_frames": [m.to_json() for m in self.malformed_frames]}


@dataclass
class ImportedProfile:
    group: HelloGroup
    doc: dict[str, Any]  # the profile document, as it is written
    profile: Profile  # the document compiled: what loading it gives


@dataclass
class CaptureImport:
    stats: ScanStats
    profiles: list[ImportedProfile]

    @property
    def groups(self) -> list[HelloGroup]:
        return [p.group for p in self.profiles]


def check_files(paths: Iterable[str]) -> None:
    """Fail before reading anything when a file is missing or not a capture."""
    for p in paths:
        try:
            with open(p, "rb") as fh:
                head = fh.read(4)
        except OSError as e:
            raise CaptureError(f"{p}: cannot read: {e.strerror}") from None
        if sniff(head) is None:
            raise CaptureError(f"{p}: not a pcap or pcapng file (magic "
                               f"{head.hex() or 'missing: empty file'})")


def scan(paths: Iterable[str], on_hello: Callable[[SeenHello], None],
         reassembler: Reassembler | None = None) -> ScanStats:
    """Every hello of the files to ``on_hello``; a ValueError it raises (a hello whose
    extensions do not parse where the fingerprint reads them) counts that hello as
    malformed."""
    paths = list(paths)
    check_files(paths)
    stats = ScanStats(files=paths)
    tally = Tally.new()
    flows = reassembler or Reassembler()
    # damage is counted where it is found, in four tallies: a frame that adds to one is
    # listed with its number
    problems: Counter[str] = Counter()
    watch = _Watch([problems, tally.malformed, flows.malformed])
    for path in paths:
        n = 0
        with open(path, "rb") as fh:
            try:
                for frame in read_frames(fh, problems):
                    n += 1
                    stats.frames += 1
                    stats.link_types[LINKTYPE_NAMES.get(frame.linktype,
                                                        str(frame.linktype))] += 1
                    seg = tcp_segment(frame, tally)
                    got = flows.feed(seg) if seg is not None else None
                    if got is not None:
                        _hello(got, path, n, stats, on_hello)
                    watch.check(stats, path, n)
            except CaptureFormatError as e:  # pragma: no cover - check_files saw the magic
                raise CaptureError(f"{path}: {e}") from None
        watch.check(stats, path, n + 1)  # the file ended damaged after its last frame
    flows.finish()
    stats.seen.update(tally.seen)
    stats.seen.update(flows.seen)
    stats.malformed.update(problems)
    stats.malformed.update(tally.malformed)
    stats.malformed.update(flows.malformed)
    return stats


class _Watch:
    """Which counters a frame added to (a copy kept to compare, refreshed on change)."""

    def __init__(self, counters: list[Counter[str]]) -> None:
        self.counters = counters
        self.copies = [Counter(c) for c in counters]
        self.totals = [0] * len(counters)

    def check(self, stats: ScanStats, path: str, frame: int) -> None:
        for i, c in enumerate(self.counters):
            total = c.total()
            if total == self.totals[i]:
                continue
            for why in c - self.copies[i]:
                stats.note(path, frame, why)
            self.copies[i], self.totals[i] = Counter(c), total


def _hello(got: HelloBytes, path: str, frame: int, stats: ScanStats,
           on_hello: Callable[[SeenHello], None]) -> None:
    try:
        hello = read_client_hello(got.data)
    except DecodeError as e:
        stats.reject(path, frame, f"ClientHello does not parse ({_short(str(e))})")
        return
    seen = SeenHello(got.data, hello, got.client, got.client_port, got.server,
                     got.server_port, got.ts, path, frame)
    try:
        on_hello(seen)
    except ValueError as e:
        # the hello's framing parsed, an extension the fingerprints read did not
        stats.reject(path, frame, f"ClientHello extension does not parse ({_short(str(e))})")
        return
    stats.hellos += 1


def _short(msg: str) -> str:
    # offsets make every message unique; the kind of damage is what a count needs
    return msg.split(" at offset")[0][:60]


def import_captures(paths: Iterable[str | Path]) -> CaptureImport:
    """The profiles of every distinct client in the captures: only those that compile
    (a hello that cannot be replayed, with no cipher suite or a version no registry can
    name, counts as malformed)."""
    grouper = Grouper()
    stats = scan([str(p) for p in paths], grouper.add)
    profiles = []
    for g in grouper.groups():
        try:
            doc = profile_doc(g)
            profile = profile_from_doc(doc, g.name)
        except ProfileError as e:
            why = f"hello not usable as a profile ({_short(str(e).removeprefix(g.name + ': '))})"
        except ValueError as e:  # an extension only the profile (or JA3) reads
            why = f"ClientHello extension does not parse ({_short(str(e))})"
        else:
            profiles.append(ImportedProfile(g, doc, profile))
            continue
        stats.reject(g.first.source, g.first.frame, why, g.count)
    return CaptureImport(stats, profiles)
