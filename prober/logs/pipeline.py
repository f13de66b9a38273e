"""Reading log files: gzip by magic bytes, format per file, line by line.

The only module of the log reader that touches files. Everything it reads goes through
the parsers (logs_aws, logs_vpc, logs_servers) into a :class:`Tally`; the result is a
:class:`LogSummary` whose ``population`` the what-if engine uses.
"""

from __future__ import annotations

import gzip
import io
import itertools
import sys
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, cast

from prober.core.errors import InputError
from prober.logs import detect as logs_detect
from prober.logs import formats as logs_formats
from prober.logs.aws import (
    AlbAccessLog,
    AlbConnectionLog,
    ClassicElbAccessLog,
    CloudFrontLog,
    NlbAccessLog,
)
from prober.logs.population import Population
from prober.logs.records import LineParser
from prober.logs.servers import GoHttpLog, HaproxyLog, NginxErrorLog
from prober.logs.tally import FileStats, LogSummary, Tally
from prober.logs.vpc import REQUIRED, VpcFlowLog

FORMATS = logs_detect.FORMATS
GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"


class LogInputError(InputError):
    """A file that cannot be read at all, or whose format cannot be told: one line."""


def make_parser(fmt: str, *, vpc_fields: Sequence[str] | None = None, port: int = 443,
                max_packets: int = 4) -> LineParser:
    if fmt == "alb-conn":
        return AlbConnectionLog()
    if fmt == "alb-access":
        return AlbAccessLog()
    if fmt == "nlb":
        return NlbAccessLog()
    if fmt == "classic-elb":
        return ClassicElbAccessLog()
    if fmt == "cloudfront":
        return CloudFrontLog()
    if fmt == "vpc-flow":
        return VpcFlowLog(vpc_fields, port=port, max_packets=max_packets)
    if fmt == "go":
        return GoHttpLog()
    if fmt == "nginx":
        return NginxErrorLog()
    if fmt == "haproxy":
        return HaproxyLog()
    raise LogInputError(f"unknown log format {fmt!r}; formats: auto, {', '.join(FORMATS)}")


def check_vpc_fields(spec: str) -> tuple[str, ...]:
    """``--vpc-fields`` -> field names; every name must be a flow-log field."""
    fields = logs_formats.parse_vpc_fields(spec)
    known = set(logs_formats.vpc_field_names())
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise LogInputError(f"--vpc-fields: unknown flow-log field(s) {', '.join(unknown)}")
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        raise LogInputError(f"--vpc-fields: a flow needs {', '.join(missing)} as well")
    return fields


def open_binary(path: str) -> io.BufferedReader:
    if path == STDIN:
        stdin = sys.stdin.buffer
        # peek() tells gzip from text without consuming: it needs a BufferedReader
        return stdin if isinstance(stdin, io.BufferedReader) else io.BufferedReader(
            cast(io.RawIOBase, stdin))
    try:
        return open(path, "rb")
    except OSError as e:
        raise LogInputError(f"cannot read {path!r}: {e.strerror or e}") from None


def check_readable(paths: Sequence[str]) -> None:
    """Fail before reading anything when one of the files cannot be opened."""
    for path in paths:
        if path == STDIN:
            continue
        if Path(path).is_dir():
            raise LogInputError(f"cannot read {path!r}: it is a directory")
        open_binary(path).close()


def text_lines(raw: io.BufferedReader, stats: FileStats) -> Iterator[str]:
    """Lines of a plain or gzip stream (told by its first two bytes), as text.

    Bytes that are not UTF-8 become U+FFFD (the line then usually turns out malformed,
    and is reported as such). A stream that breaks off (truncated gzip) ends the file
    with ``stats.error`` set; the lines before it count.
    """
    stats.compressed = raw.peek(2)[:2] == GZIP_MAGIC
    binary = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if stats.compressed else raw
    text = io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="\n")
    try:
        yield from text
    except (EOFError, OSError, zlib.error) as e:
        stats.error = f"stopped reading: {e or type(e).__name__}"


def sniff(path: str, vpc_fields: Sequence[str] | None = None) -> str:
    """The format of a file from its first lines (``empty`` for a file of blank lines);
    :class:`LogInputError` when no format fits."""
    stats = FileStats(path=path)
    with open_binary(path) as raw:
        head = list(itertools.islice(text_lines(raw, stats), logs_detect.SCAN_LINES))
    return _verdict(path, head, vpc_fields)


def _verdict(path: str, head: list[str], vpc_fields: Sequence[str] | None) -> str:
    fmt = logs_detect.detect(head, vpc_fields)
    if fmt:
        return fmt
    if not any(line.strip() for line in head):
        return "empty"
    raise LogInputError(f"{path}: cannot tell the log format from its first {len(head)} "
                        f"lines; give --format ({', '.join(FORMATS)})")


def read_file(path: str, tally: Tally, *, format: str = "auto",
              vpc_fields: Sequence[str] | None = None, port: int = 443,
              max_packets: int = 4) -> FileStats:
    """Count one file into ``tally``; ``format`` may be ``auto`` (detected here)."""
    stats = FileStats(path=path)
    with open_binary(path) as raw:
        lines = text_lines(raw, stats)
        head: list[str] = []
        fmt = format
        if format == "auto":
            head = list(itertools.islice(lines, logs_detect.SCAN_LINES))
            fmt = _verdict(path, head, vpc_fields)
        stats.format = fmt
        tally.files.append(stats)
        if fmt == "empty":
            stats.skipped["blank line"] += len(head)
            stats.lines = len(head)
            return stats
        parser = make_parser(fmt, vpc_fields=vpc_fields, port=port, max_packets=max_packets)
        if fmt in logs_detect.PER_REQUEST:
            stats.units = "requests"
        tally.feed(itertools.chain(head, lines), parser, stats)
    return stats


def read_logs(paths: Sequence[str | Path], *, format: str = "auto",
              vpc_fields: Sequence[str] | None = None, port: int = 443, max_packets: int = 4,
              max_examples: int = 10) -> LogSummary:
    """Read every file into one summary. Raises :class:`LogInputError` for an unreadable
    file or one whose format cannot be told (before reading any file in full);
    malformed lines are counted and kept as examples."""
    names = [str(p) for p in paths]
    if format != "auto":
        make_parser(format)  # an unknown --format fails before any reading
    check_readable(names)
    formats = {name: format if format != "auto" or name == STDIN else sniff(name, vpc_fields)
               for name in names}
    # an empty file is looked at again when read: it is counted like the others
    formats = {name: "auto" if fmt == "empty" else fmt for name, fmt in formats.items()}
    tally = Tally(max_examples=max_examples)
    for name in names:
        read_file(name, tally, format=formats[name], vpc_fields=vpc_fields, port=port,
                  max_packets=max_packets)
    return tally.summary({"format": format, "port": port, "max_packets": max_packets,
                          "vpc_fields": list(vpc_fields) if vpc_fields else None})


def require_usable(summary: LogSummary) -> LogSummary:
    """``summary`` when at least one line of its files counted (a connection or a flow);
    :class:`LogInputError` otherwise, in one line saying what the lines were instead.

    An empty summary would read as "nobody connected", when what happened is that none
    of the lines was one this reader counts (a wrong file, a wrong ``--format``, a log
    of plain HTTP)."""
    files = summary.files
    if any(f.connections or f.flows for f in files):
        return summary
    lines = sum(f.lines for f in files)
    malformed = sum(f.malformed for f in files)
    skipped = sum((f.skipped for f in files), Counter[str]())
    parts = [f"malformed: {malformed}"] if malformed else []
    parts += [f"{why}: {n}" for why, n in skipped.most_common(3)]
    stopped = [f"{f.path}: {f.error}" for f in files if f.error]
    where = files[0].path if len(files) == 1 else f"{len(files)} files"
    detail = f" ({', '.join(parts)})" if parts else ""
    raise LogInputError(f"{where}: no usable line: {lines} line{'s' * (lines != 1)}{detail}, "
                        "no TLS connection or flow counted"
                        + (f"; {stopped[0]}" if stopped else ""))


def load_population(paths: Sequence[str | Path], format: str = "auto",
                    **options: Any) -> Population:
    """Read log files (any format ``prober logs`` reads) into a population.

    ``options`` are those of :func:`prober.logs.pipeline.read_logs` (``vpc_fields``...).
    Raises :class:`prober.logs.pipeline.LogInputError` for an unreadable file or one whose
    format cannot be told, or when no line of them counted; malformed lines are counted,
    never raised.
    """
    return require_usable(read_logs(paths, format=format, **options)).population
