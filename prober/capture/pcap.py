"""ClientHellos from capture files: pcap/pcapng -> frames -> TCP segments -> hellos.

``scan`` walks the files in the order given (one reassembler over all of them, so a
capture rotated into several files keeps its connections whole) and hands every
ClientHello it finds to ``on_hello``. ``import_captures`` groups them into profiles.

Nothing in a file's contents is fatal: damaged frames, headers and hellos are counted
in :class:`ScanStats` and the scan goes on. A file that cannot be opened or is not a
capture raises :class:`CaptureError` before anything is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.capture.hellos import Grouper, HelloGroup, SeenHello
from prober.capture.pcap_file import CaptureFormatError, read_frames, sniff
from prober.capture.pcap_link import LINKTYPE_NAMES, Tally, tcp_segment
from prober.capture.tcp_reassembly import HelloBytes, Reassembler
from prober.core.errors import InputError
from prober.wire.buffer import DecodeError
from prober.wire.clienthello import read_client_hello


class CaptureError(InputError):
    """A file that cannot be read as a capture (one line, naming the file)."""


@dataclass
class ScanStats:
    files: list[str] = field(default_factory=list)
    frames: int = 0
    hellos: int = 0
    link_types: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "frames": self.frames, "hellos": self.hellos,
                "link_types": dict(self.link_types), "seen": dict(self.seen),
                "malformed": dict(self.malformed), "malformed_total": self.malformed_total}


@dataclass
class CaptureImport:
    stats: ScanStats
    groups: list[HelloGroup]


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
    paths = list(paths)
    check_files(paths)
    stats = ScanStats(files=paths)
    tally = Tally.new()
    flows = reassembler or Reassembler()
    for path in paths:
        with open(path, "rb") as fh:
            try:
                for frame in read_frames(fh, stats.malformed):
                    stats.frames += 1
                    stats.link_types[LINKTYPE_NAMES.get(frame.linktype,
                                                        str(frame.linktype))] += 1
                    seg = tcp_segment(frame, tally)
                    if seg is None:
                        continue
                    got = flows.feed(seg)
                    if got is not None:
                        _hello(got, path, stats, on_hello)
            except CaptureFormatError as e:  # pragma: no cover - check_files saw the magic
                raise CaptureError(f"{path}: {e}") from None
    flows.finish()
    stats.seen.update(tally.seen)
    stats.seen.update(flows.seen)
    stats.malformed.update(tally.malformed)
    stats.malformed.update(flows.malformed)
    return stats


def _hello(got: HelloBytes, path: str, stats: ScanStats,
           on_hello: Callable[[SeenHello], None]) -> None:
    try:
        hello = read_client_hello(got.data)
    except DecodeError as e:
        stats.malformed[f"ClientHello does not parse ({_short(str(e))})"] += 1
        return
    stats.hellos += 1
    on_hello(SeenHello(got.data, hello, got.client, got.client_port, got.server,
                       got.server_port, got.ts, path))


def _short(msg: str) -> str:
    # offsets make every message unique; the kind of damage is what a count needs
    return msg.split(" at offset")[0][:60]


def import_captures(paths: Iterable[str | Path]) -> CaptureImport:
    grouper = Grouper()
    stats = scan([str(p) for p in paths], grouper.add)
    return CaptureImport(stats, grouper.groups())
