"""What answers when it is not TLS: banners of real servers name their protocol and the
STARTTLS that reaches their TLS; the "no TLS endpoint measured" verdict over outcomes."""

from __future__ import annotations

import pytest

from prober.core.service import identify, no_tls

# first bytes as real servers send them (wire.serverflight.banner_of keeps printable ASCII)
BANNERS = [
    ("HTTP/1.1 400 Bad Request Server: nginx Content-Type: text/html", "HTTP", None),
    ("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", "SSH", None),
    ("220 mail.example.test ESMTP Postfix (Debian/GNU)", "SMTP", "smtp"),
    ("220 mx.example.test ESMTP Exim 4.96 Mon, 23 Nov 2026 18:23:28 +0000", "SMTP", "smtp"),
    ("220 (vsFTPd 3.0.3)", "FTP", "ftp"),
    ("220 ProFTPD Server (Debian) [::ffff:203.0.113.5]", "FTP", "ftp"),
    ("+OK Dovecot (Debian) ready.", "POP3", "pop3"),
    ("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS]",
     "IMAP", "imap"),
    ("<?xml version='1.0'?><stream:stream xmlns='jabber:client'", "XMPP", "xmpp"),
    ("0   x   1.3.6.1.4.1.1466.20036", "LDAP", "ldap"),
    ("E   SFATAL VFATAL C0A000 Munsupported frontend protocol", "PostgreSQL", "postgres"),
    ("J    8.0.36  mysql_native_password", "MySQL", None),
    ("220 welcome", "SMTP or FTP", None),
]


@pytest.mark.parametrize(("banner", "protocol", "starttls"), BANNERS)
def test_banners_name_their_protocol(banner: str, protocol: str, starttls: str | None) -> None:
    svc = identify(banner)
    assert svc is not None and (svc.protocol, svc.starttls) == (protocol, starttls)


def test_unknown_banner_is_no_protocol() -> None:
    assert identify("\x00\x01garbage") is None and identify(None) is None


def test_no_tls_kinds() -> None:
    assert no_tls([("ok", None, ""), ("not-tls", "HTTP/1.1 400", "")]) is None
    assert no_tls([("alert", None, "protocol_version"), ("reset", None, "")]) is None
    assert no_tls([]) is None
    v = no_tls([("not-tls", "+OK Dovecot ready.", "")] * 3 + [("reset", None, "")])
    assert v is not None and v.kind == "wrong-service"
    assert "speaks POP3" in v.cause and "3/4 attempts" in v.cause
    assert v.advice is not None and "--starttls pop3" in v.advice
    assert v.to_json()["starttls"] == "pop3" and v.to_json()["measured"] is False
    for outcomes, kind in (
            (["refused"] * 3, "port-closed"),
            (["connect-timeout", "connect-timeout", "refused"], "unreachable"),
            (["dns-error"], "dns-error"),
            (["hang-acked", "hang-acked", "refused"], "silent"),
            (["hang-unacked"] * 2, "dropped"),
            (["reset", "eof", "reset"], "cut")):
        v = no_tls([(o, None, "") for o in outcomes])
        assert v is not None and v.kind == kind, (outcomes, v)


def test_the_readme_outcome_table_is_the_enum() -> None:
    """The taxonomy is a contract: README's table lists exactly the Outcome values."""
    import re
    from pathlib import Path

    from prober.core.outcome import OUTCOMES, Outcome

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Outcomes (a contract)", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"^\| `([a-z-]+)` \|", section, re.M)
    assert listed == [o.value for o in Outcome]
    assert set(OUTCOMES) == set(Outcome)
