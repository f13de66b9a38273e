"""The plaintext preambles that come before a ClientHello on STARTTLS services, sans-I/O.

SMTP (RFC 3207), IMAP (RFC 3501), POP3 (RFC 2595), FTP (RFC 4217), LDAP (RFC 4511
StartTLS extended operation), XMPP client-to-server (RFC 6120) and PostgreSQL's
SSLRequest. Each protocol is a generator that yields what to send and which reply it
waits for, and is handed the reply when it is whole; :class:`Preamble` feeds it the
server's bytes and says what to write back, so the socket code (prober.net.attempt)
only moves bytes. A preamble ends ready (the next bytes on the wire are the
ClientHello) or failed, with the reason a person can act on: STARTTLS not offered,
refused with the server's code, the connection closed, no answer in time, or an answer
that is not this protocol.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("smtp", "imap", "pop3", "ftp", "ldap", "xmpp", "postgres")

# the plaintext ports where each protocol's STARTTLS is the usual way in (implicit-TLS
# ports such as 465, 993, 995 and 636 are deliberately absent)
PORTS = {25: "smtp", 587: "smtp", 143: "imap", 110: "pop3", 21: "ftp", 389: "ldap",
         5222: "xmpp", 5432: "postgres"}

# what prober calls itself in SMTP's EHLO
EHLO_NAME = "prober.invalid"

# why a preamble failed
NOT_OFFERED = "not-offered"
REFUSED = "refused"
CLOSED = "closed"
TIMEOUT = "timeout"
UNEXPECTED = "unexpected"

# a reply larger than this without being whole is not the protocol we speak
MAX_REPLY = 65536
# lines kept in the transcript (and characters per line)
TRANSCRIPT_LINES = 40
LINE_CHARS = 160

_NAMES = {"smtp": "SMTP", "imap": "IMAP", "pop3": "POP3", "ftp": "FTP", "ldap": "LDAP",
          "xmpp": "XMPP", "postgres": "PostgreSQL"}


def protocol_name(proto: str) -> str:
    return _NAMES.get(proto, proto)


class Failed(Exception):
    def __init__(self, kind: str, step: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.kind, self.step, self.text, self.code = kind, step, text, code


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Await:
    """Wait for one whole reply: ``parse(buffer)`` returns (reply, bytes used) or None."""

    step: str  # what we wait for, in words ("greeting", "EHLO reply" ...)
    parse: Callable[[bytes], tuple[Any, int] | None]


Op = Send | Await
Script = Generator[Op, Any, None]


@dataclass
class PreambleResult:
    """How the preamble ended, as the attempt document reports it."""

    protocol: str
    ready: bool
    failure: str | None = None  # NOT_OFFERED | REFUSED | CLOSED | TIMEOUT | UNEXPECTED
    step: str | None = None  # where it stopped
    code: str | None = None  # the server's reply code, where it gave one
    reply: str | None = None  # the server's words
    transcript: list[str] = field(default_factory=list)

    def detail(self) -> str:
        """One line for the outcome's detail."""
        name = protocol_name(self.protocol)
        if self.ready:
            return f"{name} STARTTLS accepted"
        words = {
            NOT_OFFERED: f"STARTTLS not offered by the {name} server",
            REFUSED: f"STARTTLS refused by the {name} server",
            CLOSED: f"the {name} server closed the connection",
            TIMEOUT: f"no answer from the {name} server",
            UNEXPECTED: f"not a {name} server",
        }.get(self.failure or "", f"{name} preamble failed")
        at = f" (at the {self.step})" if self.step else ""
        said = " ".join(x for x in (self.code, self.reply) if x)
        return f"{words}{at}" + (f": {said}" if said else "")

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "ready": self.ready, "failure": self.failure,
                "step": self.step, "code": self.code, "reply": self.reply,
                "transcript": self.transcript}


class Preamble:
    """One protocol's preamble on one connection: feed it the server's bytes, write what
    it returns; ``done`` once ready or failed (``result``). ``leftover`` holds bytes the
    server sent after its last plaintext reply (they belong to the TLS stream)."""

    def __init__(self, protocol: str, server_name: str | None = None) -> None:
        if protocol not in _SCRIPTS:
            raise ValueError(f"unknown STARTTLS protocol {protocol!r}; one of "
                             f"{', '.join(PROTOCOLS)}")
        self.protocol = protocol
        self._script = _SCRIPTS[protocol](server_name or "localhost")
        self._buf = bytearray()
        self._waiting: Await | None = None
        self.result: PreambleResult | None = None
        self.leftover = b""
        self._transcript: list[str] = []

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def ready(self) -> bool:
        return self.result is not None and self.result.ready

    @property
    def step(self) -> str | None:
        return self._waiting.step if self._waiting else None

    def start(self) -> bytes:
        """What to send as soon as the connection is up (empty when the server speaks
        first)."""
        return self._advance(None)

    def feed(self, data: bytes) -> bytes:
        """Take server bytes; return bytes to send back (empty when none)."""
        if self.done:
            self.leftover += data
            return b""
        self._buf += data
        out = b""
        while self._waiting is not None and not self.done:
            try:
                got = self._waiting.parse(bytes(self._buf))
            except Failed as f:
                self._fail(f)
                break
            if got is None:
                if len(self._buf) > MAX_REPLY:
                    self._fail(Failed(UNEXPECTED, self._waiting.step,
                                      f"{len(self._buf)} bytes without a whole reply"))
                break
            reply, used = got
            self._note("S", bytes(self._buf[:used]))
            del self._buf[:used]
            out += self._advance(reply)
        if self.done and self._buf:
            self.leftover += bytes(self._buf)
            self._buf.clear()
        return out

    def closed(self, how: str) -> None:
        """The server closed the connection (``how``: "fin" or "rst")."""
        if not self.done:
            seen = _words(bytes(self._buf)) if self._buf else None
            self._fail(Failed(CLOSED, self.step or "start",
                              f"{'RST' if how == 'rst' else 'FIN'}"
                              + (f" after {seen!r}" if seen else "")))

    def timed_out(self, seconds: float) -> None:
        if not self.done:
            got = _words(bytes(self._buf)) if self._buf else None
            self._fail(Failed(TIMEOUT, self.step or "start",
                              f"nothing whole within {seconds:g} s"
                              + (f" (got {got!r})" if got else "")))

    # -- internals ------------------------------------------------------------------

    def _advance(self, value: Any) -> bytes:
        out = b""
        try:
            op = self._script.send(value)
            while isinstance(op, Send):
                self._note("C", op.data)
                out += op.data
                op = self._script.send(None)
            self._waiting = op
        except StopIteration:
            self._waiting = None
            self.result = PreambleResult(self.protocol, True, transcript=self._transcript)
        except Failed as f:
            self._fail(f)
        return out

    def _fail(self, f: Failed) -> None:
        self._waiting = None
        self._script.close()
        self.result = PreambleResult(self.protocol, False, f.kind, f.step, f.code,
                                     f.text or None, self._transcript)

    def _note(self, who: str, data: bytes) -> None:
        for line in _lines_for_transcript(data):
            if len(self._transcript) < TRANSCRIPT_LINES:
                self._transcript.append(f"{who}: {line}")


_UNPRINTABLE = re.compile(rb"[^\x20-\x7e]+")


def _words(data: bytes, limit: int = LINE_CHARS) -> str:
    return _UNPRINTABLE.sub(b" ", data[:limit]).decode("ascii").strip()


def _lines_for_transcript(data: bytes) -> list[str]:
    if data[:1] in (b"<",) or b"\n" in data:
        return [_words(x) for x in data.splitlines() if x.strip()]
    return [data[:48].hex() if _UNPRINTABLE.search(data[:48]) else _words(data)]


# --- reply parsers --------------------------------------------------------------------------


def _line(buf: bytes) -> tuple[str, int] | None:
    end = buf.find(b"\n")
    if end < 0:
        return None
    return buf[:end].rstrip(b"\r").decode("latin-1"), end + 1


def _until(pred: Callable[[str], bool]) -> Callable[[bytes], tuple[list[str], int] | None]:
    """Lines up to and including the first one ``pred`` accepts."""
    def parse(buf: bytes) -> tuple[list[str], int] | None:
        lines: list[str] = []
        pos = 0
        while True:
            got = _line(buf[pos:])
            if got is None:
                return None
            text, used = got
            pos += used
            lines.append(text)
            if pred(text):
                return lines, pos
    return parse


def _last_numeric(text: str) -> bool:
    # "NNN-text" continues a reply, "NNN text" ends it (anything else cannot continue)
    return len(text) < 4 or text[3] != "-" or not text[:3].isdigit()


# an SMTP/FTP reply: ``NNN-text`` lines, ending with ``NNN text``
_numeric = _until(_last_numeric)


def _single_line(buf: bytes) -> tuple[list[str], int] | None:
    got = _line(buf)
    return None if got is None else ([got[0]], got[1])


def _one_byte(buf: bytes) -> tuple[bytes, int] | None:
    if not buf:
        return None
    if buf[:1] == b"E":
        # an ErrorResponse: type byte, int32 length, fields
        if len(buf) < 5:
            return None
        n = 1 + int.from_bytes(buf[1:5], "big")
        return (bytes(buf[:n]), n) if len(buf) >= n else None
    return bytes(buf[:1]), 1


def _ber_length(buf: bytes, at: int) -> tuple[int, int] | None:
    """(length, where the content starts) of the BER element whose length byte is at
    ``at``; None when more bytes are needed."""
    if len(buf) <= at:
        return None
    first = buf[at]
    if first < 0x80:
        return first, at + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise Failed(UNEXPECTED, "StartTLS response", f"BER length form {first:#x}")
    if len(buf) < at + 1 + n:
        return None
    return int.from_bytes(buf[at + 1:at + 1 + n], "big"), at + 1 + n


def _ldap_message(buf: bytes) -> tuple[bytes, int] | None:
    if not buf:
        return None
    if buf[0] != 0x30:
        raise Failed(UNEXPECTED, "StartTLS response",
                     f"not an LDAP message (first byte {buf[0]:#04x}: {_words(buf[:40])!r})")
    got = _ber_length(buf, 1)
    if got is None:
        return None
    length, start = got
    end = start + length
    return (bytes(buf[:end]), end) if len(buf) >= end else None


def _xml_until(pattern: re.Pattern[bytes]) -> Callable[[bytes], tuple[bytes, int] | None]:
    """XMPP: bytes up to the end of the first match of ``pattern`` (or of a stream error,
    which ends every wait)."""
    def parse(buf: bytes) -> tuple[bytes, int] | None:
        err = _XMPP_ERROR.search(buf)
        m = pattern.search(buf)
        if err is not None and (m is None or err.start() < m.start()):
            return bytes(buf[:err.end()]), err.end()
        if m is None:
            return None
        return bytes(buf[:m.end()]), m.end()
    return parse


_XMPP_ERROR = re.compile(rb"<(?:\w+:)?error[\s>].*?</(?:\w+:)?error>", re.S)
_XMPP_FEATURES = re.compile(
    rb"<(?:\w+:)?features\b[^>]*/>|<(?:\w+:)?features\b.*?</(?:\w+:)?features>", re.S)
_XMPP_ANSWER = re.compile(rb"<(proceed|failure)\b[^>]*?(?:/>|>.*?</\1>)", re.S)


# --- the scripts -----------------------------------------------------------------------------


def _code(lines: list[str]) -> str:
    return lines[-1][:3] if lines and lines[-1][:3].isdigit() else "?"


def _said(lines: list[str]) -> str:
    return _words(" ".join(ln[4:] if ln[:3].isdigit() else ln for ln in lines).encode(
        "latin-1"))[:LINE_CHARS]


def _smtp(name: str) -> Script:
    greeting = yield Await("greeting", _numeric)
    code = _code(greeting)
    if code != "220":
        kind = REFUSED if code[:1] in "45" else UNEXPECTED
        raise Failed(kind, "greeting", _said(greeting), code if code != "?" else None)
    # the client's name: prober has none to give, and .invalid says so (RFC 2606)
    yield Send(f"EHLO {EHLO_NAME}\r\n".encode())
    ehlo = yield Await("EHLO reply", _numeric)
    if _code(ehlo) != "250":
        raise Failed(NOT_OFFERED, "EHLO reply", _said(ehlo), _code(ehlo))
    caps = {ln[4:].split(" ", 1)[0].upper() for ln in ehlo[1:]}
    if "STARTTLS" not in caps:
        raise Failed(NOT_OFFERED, "EHLO reply",
                     f"its extensions are {', '.join(sorted(caps)) or 'none'}")
    yield Send(b"STARTTLS\r\n")
    answer = yield Await("STARTTLS reply", _numeric)
    if _code(answer) != "220":
        raise Failed(REFUSED, "STARTTLS reply", _said(answer), _code(answer))


def _ftp(name: str) -> Script:
    greeting = yield Await("greeting", _numeric)
    code = _code(greeting)
    if code != "220":
        kind = REFUSED if code[:1] in "45" else UNEXPECTED
        raise Failed(kind, "greeting", _said(greeting), code if code != "?" else None)
    yield Send(b"AUTH TLS\r\n")
    answer = yield Await("AUTH TLS reply", _numeric)
    code = _code(answer)
    if code != "234":
        # 500/502/504: the command (or its TLS parameter) is not known: not offered
        kind = NOT_OFFERED if code in ("500", "502", "504") else REFUSED
        raise Failed(kind, "AUTH TLS reply", _said(answer), code)


def _imap_tagged(tag: str) -> Callable[[bytes], tuple[list[str], int] | None]:
    return _until(lambda ln: ln.startswith(tag + " "))


def _imap(name: str) -> Script:
    (greeting,) = yield Await("greeting", _single_line)
    head = greeting.split(" ", 2)
    status = head[1].upper() if len(head) > 1 and head[0] == "*" else ""
    if status == "BYE":
        raise Failed(REFUSED, "greeting", _words(greeting.encode("latin-1")), "BYE")
    if status == "PREAUTH":
        # RFC 3501: STARTTLS is not allowed once the session is authenticated
        raise Failed(NOT_OFFERED, "greeting", "PREAUTH greeting (no STARTTLS after it)")
    if status != "OK":
        raise Failed(UNEXPECTED, "greeting", _words(greeting.encode("latin-1")))
    caps = _imap_caps([greeting])
    if caps is None:
        yield Send(b"a1 CAPABILITY\r\n")
        lines = yield Await("CAPABILITY reply", _imap_tagged("a1"))
        caps = _imap_caps(lines) or set()
    if "STARTTLS" not in caps:
        raise Failed(NOT_OFFERED, "CAPABILITY reply",
                     f"its capabilities are {' '.join(sorted(caps)) or 'none'}")
    yield Send(b"a2 STARTTLS\r\n")
    lines = yield Await("STARTTLS reply", _imap_tagged("a2"))
    last = lines[-1].split(" ", 2)
    if len(last) < 2 or last[1].upper() != "OK":
        raise Failed(REFUSED, "STARTTLS reply", _words(lines[-1].encode("latin-1")),
                     last[1].upper() if len(last) > 1 else None)


def _imap_caps(lines: list[str]) -> set[str] | None:
    for ln in lines:
        m = re.search(r"\[CAPABILITY ([^\]]*)\]", ln, re.I) or re.match(
            r"\* CAPABILITY (.*)", ln, re.I)
        if m:
            return {c.upper() for c in m.group(1).split()}
    return None


def _pop3(name: str) -> Script:
    (greeting,) = yield Await("greeting", _single_line)
    if not greeting.startswith("+OK"):
        kind = REFUSED if greeting.startswith("-ERR") else UNEXPECTED
        raise Failed(kind, "greeting", _words(greeting.encode("latin-1")))
    yield Send(b"CAPA\r\n")
    (first,) = yield Await("CAPA reply", _single_line)
    if first.startswith("+OK"):
        lines = yield Await("CAPA list", _until(lambda ln: ln == "."))
        caps = {ln.split(" ", 1)[0].upper() for ln in lines[:-1]}
        if "STLS" not in caps:
            raise Failed(NOT_OFFERED, "CAPA reply",
                         f"its capabilities are {' '.join(sorted(caps)) or 'none'}")
    # a server without CAPA (-ERR) may still know STLS: ask
    yield Send(b"STLS\r\n")
    (answer,) = yield Await("STLS reply", _single_line)
    if not answer.startswith("+OK"):
        raise Failed(REFUSED, "STLS reply", _words(answer.encode("latin-1")),
                     "-ERR" if answer.startswith("-ERR") else None)


# RFC 4511 4.14.1: ExtendedRequest { requestName "1.3.6.1.4.1.1466.20037" }, message id 1
_LDAP_OID = b"1.3.6.1.4.1.1466.20037"
LDAP_STARTTLS = (bytes([0x30, 5 + 2 + len(_LDAP_OID), 0x02, 0x01, 0x01,
                        0x77, 2 + len(_LDAP_OID), 0x80, len(_LDAP_OID)]) + _LDAP_OID)
_LDAP_RESULTS = {0: "success", 1: "operationsError", 2: "protocolError",
                 12: "unavailableCriticalExtension", 50: "insufficientAccessRights",
                 51: "busy", 52: "unavailable", 53: "unwillingToPerform", 80: "other"}


def _ldap(name: str) -> Script:
    yield Send(LDAP_STARTTLS)
    msg = yield Await("StartTLS response", _ldap_message)
    code, text = _ldap_result(msg)
    if code == 0:
        return
    label = f"{code} {_LDAP_RESULTS.get(code, 'result')}"
    # protocolError / unavailable: the server has no StartTLS to offer (no certificate)
    kind = NOT_OFFERED if code in (2, 12, 52) else REFUSED
    raise Failed(kind, "StartTLS response", text or label.split(" ", 1)[1], label)


def _ldap_result(msg: bytes) -> tuple[int, str]:
    """(resultCode, diagnosticMessage) of an LDAP ExtendedResponse."""
    got = _ber_length(msg, 1)
    assert got is not None
    pos = got[1]
    if msg[pos] != 0x02:
        raise Failed(UNEXPECTED, "StartTLS response", "no message id")
    idlen = _ber_length(msg, pos + 1)
    assert idlen is not None
    pos = idlen[1] + idlen[0]
    if pos >= len(msg) or msg[pos] != 0x78:
        raise Failed(UNEXPECTED, "StartTLS response",
                     f"not an ExtendedResponse (tag {msg[pos] if pos < len(msg) else 0:#x})")
    op = _ber_length(msg, pos + 1)
    assert op is not None
    pos = op[1]
    fields: list[bytes] = []
    while pos < len(msg) and len(fields) < 3:
        ln = _ber_length(msg, pos + 1)
        if ln is None:
            break
        fields.append(msg[ln[1]:ln[1] + ln[0]])
        pos = ln[1] + ln[0]
    if not fields:
        raise Failed(UNEXPECTED, "StartTLS response", "no resultCode")
    text = _words(fields[2]) if len(fields) > 2 else ""
    return int.from_bytes(fields[0], "big"), text


def _xmpp(name: str) -> Script:
    yield Send(("<?xml version='1.0'?><stream:stream to='" + _xml_attr(name) + "' "
                "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                "version='1.0'>").encode())
    features = yield Await("stream features", _xml_until(_XMPP_FEATURES))
    _xmpp_error(features, "stream features")
    if b"urn:ietf:params:xml:ns:xmpp-tls" not in features:
        raise Failed(NOT_OFFERED, "stream features", _words(features[-LINE_CHARS:]))
    yield Send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    answer = yield Await("starttls answer", _xml_until(_XMPP_ANSWER))
    _xmpp_error(answer, "starttls answer")
    if b"<proceed" not in answer:
        raise Failed(REFUSED, "starttls answer", _words(answer[-LINE_CHARS:]), "failure")


def _xmpp_error(data: bytes, step: str) -> None:
    m = _XMPP_ERROR.search(data)
    if m is not None:
        cond = re.search(rb"<([\w-]+) xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams", m.group())
        code = cond.group(1).decode() if cond else "stream error"
        raise Failed(REFUSED, step, _words(m.group()), code)


def _xml_attr(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in ".-_:[]")


# PostgreSQL: SSLRequest (length 8, code 80877103); the answer is one byte, S or N
PG_SSLREQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def _postgres(name: str) -> Script:
    yield Send(PG_SSLREQUEST)
    answer = yield Await("SSLRequest answer", _one_byte)
    if answer == b"S":
        return
    if answer == b"N":
        raise Failed(NOT_OFFERED, "SSLRequest answer", "N (the server has SSL off)", "N")
    if answer[:1] == b"E":
        fields = {f[:1]: f[1:].decode("utf-8", "replace")
                  for f in answer[5:].split(b"\x00") if f}
        raise Failed(REFUSED, "SSLRequest answer", fields.get(b"M", _words(answer)),
                     fields.get(b"C"))
    raise Failed(UNEXPECTED, "SSLRequest answer", f"byte {answer[:1]!r}")


_SCRIPTS: dict[str, Callable[[str], Script]] = {
    "smtp": _smtp, "imap": _imap, "pop3": _pop3, "ftp": _ftp, "ldap": _ldap,
    "xmpp": _xmpp, "postgres": _postgres}
