"""What one log line becomes: a connection, a flow, a skipped line, or a malformed one.

Parsers are pure functions of one line (``str``) and return:

* :class:`Conn`: one TLS connection attempt seen by the server side (ALB/NLB logs, a
  server's handshake error line), with the client, what was negotiated when known, and
  the normalised failure reason (``None`` when the handshake succeeded);
* :class:`Flow`: one VPC flow-log record to or from the watched port;
* a ``str``: the line is valid but carries no TLS connection (a header, a NODATA record,
  a plain-HTTP listener, an nginx start-up notice); the string says which, so skipped
  lines are counted by kind, never dropped silently;

or raise :class:`Malformed` with a short reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Malformed(ValueError):
    """The line does not have the shape of its format; the message says what is wrong."""


@dataclass(slots=True)
class Conn:
    client_ip: str
    # as logged (TLSv1.2, tlsv12, TLSv1...); normalised once per distinct value later
    protocol: str | None
    # as logged (OpenSSL name, or IANA for TLS 1.3 suites in ALB access logs)
    suite: str | None
    failure: str | None = None  # normalised reason (logs_reasons), None: handshake done
    detail: str | None = None  # the server's own wording of the failure, for examples
    time: str | None = None  # sortable timestamp text (ISO 8601, or Y/M/D), when cheap


@dataclass(slots=True)
class Flow:
    client_ip: str
    server: str  # address:port of the watched side
    packets: int
    flags: int | None  # tcp-flags, None when the format has no such field
    suspicious: str | None  # why it looks like a failed handshake, or None
    time: str | None = None


Item = Conn | Flow | str


class LineParser(Protocol):
    """One format. ``name`` is the ``--format`` value; a parser may keep state between
    lines (a VPC header line changes the field order of the lines after it)."""

    name: str

    def parse(self, line: str) -> Item: ...
