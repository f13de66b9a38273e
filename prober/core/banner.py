"""The protocol a non-TLS banner names, and whether that protocol's server speaks first.

Below core.outcome (which needs the second half: a greeting is the server speaking first
however fast our hello went out) and core.service (which names the service people
pointed prober at by mistake).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """A protocol recognised from what the server sent."""

    protocol: str  # "HTTP", "SSH", "SMTP", ...
    starttls: str | None  # the --starttls value that reaches TLS there, if any
    # its server greets on accept, unasked (SSH, SMTP, FTP, POP3, IMAP, MySQL, VNC): what
    # it sent is no answer to our hello, whether it arrived before or after the hello
    # was out (on a fast path the two race)
    greets: bool = False

    def advice(self) -> str:
        if self.starttls:
            return (f"It is a plaintext {self.protocol} service: use `--starttls "
                    f"{self.starttls}` to reach its TLS, or the port that serves TLS "
                    "directly.")
        return f"Point prober at the port that serves TLS, not {self.protocol}."


# (pattern on the banner's start, protocol, STARTTLS name, greets on accept); first match
# wins. Banners are what wire.serverflight.banner_of keeps: printable ASCII, other bytes
# as spaces.
_BANNERS: tuple[tuple[re.Pattern[str], str, str | None, bool], ...] = tuple(
    (re.compile(p, re.IGNORECASE), proto, st, greets) for p, proto, st, greets in (
        (r"^HTTP/\d", "HTTP", None, False),
        (r"^SSH-\d", "SSH", None, True),
        (r"^220[ -].*\bE?SMTP\b|^220[ -].*\b(postfix|exim|sendmail|mail)\b", "SMTP", "smtp",
         True),
        (r"^220[ -].*FTP", "FTP", "ftp", True),
        (r"^(5\d\d|421)[ -].*\b(SMTP|ESMTP|mail)\b", "SMTP", "smtp", True),
        (r"^\+OK\b", "POP3", "pop3", True),
        (r"^\* (OK|PREAUTH|BYE)\b", "IMAP", "imap", True),
        (r"<\?xml|<stream:|jabber:", "XMPP", "xmpp", False),
        (r"1\.3\.6\.1\.4\.1\.1466\.20036|^0 .{0,12}\bx\b", "LDAP", "ldap", False),
        (r"^E.{0,8}S(FATAL|ERROR)\b|^E.{0,8}VFATAL", "PostgreSQL", "postgres", False),
        (r"mysql_native_password|caching_sha2_password", "MySQL", None, True),
        (r"^-ERR\b|^\+PONG", "Redis", None, False),
        (r"^RFB \d", "VNC", None, True),
        (r"^220[ -]", "SMTP or FTP", None, True),
        (r"^(<html|<!doctype)", "HTTP", None, False),
    ))


def identify(banner: str | None) -> Service | None:
    """The protocol a non-TLS banner names, or None when it names none known."""
    if not banner:
        return None
    for pattern, proto, starttls, greets in _BANNERS:
        if pattern.search(banner):
            return Service(proto, starttls, greets)
    return None
