"""The STARTTLS preambles on bytes: every protocol's way to ready, and each way it fails
(not offered, refused with the server's code, closed, no answer, not this protocol),
with replies cut at every byte."""

from __future__ import annotations

import pytest

from prober.wire.starttls import (
    LDAP_STARTTLS,
    PG_SSLREQUEST,
    PORTS,
    PROTOCOLS,
    Preamble,
    PreambleResult,
)


def run(protocol: str, replies: list[bytes], *,
        split: bool = False) -> tuple[Preamble, list[bytes]]:
    """Feed ``replies`` one after the other (each byte by byte with ``split``); what the
    client sent, in order."""
    p = Preamble(protocol, "demo.test")
    sent = [p.start()]
    for r in replies:
        chunks = [r[i:i + 1] for i in range(len(r))] if split else [r]
        for c in chunks:
            sent.append(p.feed(c))
    return p, [s for s in sent if s]


def result(p: Preamble) -> PreambleResult:
    assert p.result is not None
    return p.result


SMTP_OK = [b"220-mail.demo.test ESMTP\r\n220 hello\r\n",
           b"250-mail.demo.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 HELP\r\n",
           b"220 TLS go ahead\r\n"]


@pytest.mark.parametrize("split", [False, True])
def test_smtp_ready(split: bool) -> None:
    p, sent = run("smtp", SMTP_OK, split=split)
    assert p.ready and sent == [b"EHLO prober.invalid\r\n", b"STARTTLS\r\n"]
    r = result(p)
    assert r.detail() == "SMTP STARTTLS accepted"
    assert r.transcript[0].startswith("S: 220-mail.demo.test") and "C: STARTTLS" in r.transcript


def test_bytes_after_the_go_ahead_are_left_for_tls() -> None:
    p, _ = run("smtp", [*SMTP_OK[:2], b"220 go\r\n\x16\x03\x03"])
    assert p.ready and p.leftover == b"\x16\x03\x03"


def test_smtp_failures() -> None:
    p, _ = run("smtp", [b"220 hi\r\n", b"250-mx\r\n250 SIZE 1000\r\n"])
    r = result(p)
    assert (r.ready, r.failure, r.step) == (False, "not-offered", "EHLO reply")
    assert r.detail() == ("STARTTLS not offered by the SMTP server (at the EHLO reply): its "
                          "extensions are SIZE")
    p, _ = run("smtp", [*SMTP_OK[:2], b"454 4.7.0 TLS not available due to local problem\r\n"])
    r = result(p)
    assert (r.failure, r.code) == ("refused", "454")
    assert r.detail().endswith(": 454 4.7.0 TLS not available due to local problem")
    p, _ = run("smtp", [b"421 Too many concurrent SMTP connections\r\n"])
    assert (result(p).failure, result(p).code, result(p).step) == ("refused", "421", "greeting")
    p, _ = run("smtp", [b"SSH-2.0-OpenSSH_9.2\r\n"])
    assert result(p).failure == "unexpected"


def test_closed_and_timeout() -> None:
    p, _ = run("imap", [b"* OK ready\r\n", b"* CAPA"])
    p.closed("fin")
    r = result(p)
    assert (r.failure, r.step) == ("closed", "CAPABILITY reply")
    assert "FIN after '* CAPA'" in r.detail()
    p, _ = run("smtp", [])
    p.timed_out(2.0)
    assert result(p).detail() == ("no answer from the SMTP server (at the greeting): nothing "
                                  "whole within 2 s")
    p.feed(b"220 late\r\n")  # after the end: kept as leftover, changes nothing
    assert result(p).failure == "timeout"


def test_imap() -> None:
    p, sent = run("imap", [b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n",
                           b"a2 OK Begin TLS negotiation now\r\n"])
    assert p.ready and sent == [b"a2 STARTTLS\r\n"]  # the greeting listed the capability
    p, sent = run("imap", [b"* OK ready\r\n", b"* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK\r\n",
                           b"a2 OK go\r\n"], split=True)
    assert p.ready and sent == [b"a1 CAPABILITY\r\n", b"a2 STARTTLS\r\n"]
    p, _ = run("imap", [b"* OK ready\r\n", b"* CAPABILITY IMAP4rev1\r\na1 OK\r\n"])
    assert result(p).failure == "not-offered"
    p, _ = run("imap", [b"* OK [CAPABILITY STARTTLS] x\r\n", b"a2 NO not now\r\n"])
    assert (result(p).failure, result(p).code) == ("refused", "NO")
    p, _ = run("imap", [b"* PREAUTH logged in\r\n"])
    assert result(p).failure == "not-offered"
    p, _ = run("imap", [b"* BYE go away\r\n"])
    assert result(p).failure == "refused"


def test_pop3() -> None:
    p, sent = run("pop3", [b"+OK ready\r\n", b"+OK\r\nUSER\r\nSTLS\r\n.\r\n", b"+OK go\r\n"])
    assert p.ready and sent == [b"CAPA\r\n", b"STLS\r\n"]
    p, _ = run("pop3", [b"+OK ready\r\n", b"+OK\r\nUSER\r\n.\r\n"])
    assert result(p).failure == "not-offered"
    # no CAPA: STLS is tried anyway
    p, sent = run("pop3", [b"+OK ready\r\n", b"-ERR unknown\r\n", b"-ERR no TLS\r\n"])
    assert sent[-1] == b"STLS\r\n" and result(p).failure == "refused"


def test_ftp() -> None:
    p, sent = run("ftp", [b"220 (vsFTPd 3.0.3)\r\n", b"234 Proceed with negotiation.\r\n"])
    assert p.ready and sent == [b"AUTH TLS\r\n"]
    p, _ = run("ftp", [b"220-welcome\r\n220 go\r\n", b"502 Command not implemented\r\n"])
    assert (result(p).failure, result(p).code) == ("not-offered", "502")
    p, _ = run("ftp", [b"220 x\r\n", b"534 Policy denied\r\n"])
    assert (result(p).failure, result(p).code) == ("refused", "534")


def _ldap_response(code: int, text: bytes = b"") -> bytes:
    body = bytes([0x0A, 1, code, 0x04, 0, 0x04, len(text)]) + text
    op = bytes([0x78, len(body)]) + body
    msg = bytes([0x02, 1, 1]) + op
    return bytes([0x30, len(msg)]) + msg


def test_ldap() -> None:
    assert LDAP_STARTTLS.hex() == ("301d02010177188016312e332e362e312e342e312e313436362e"
                                   "3230303337")
    p, sent = run("ldap", [_ldap_response(0)], split=True)
    assert p.ready and sent == [LDAP_STARTTLS]
    p, _ = run("ldap", [_ldap_response(2, b"unsupported extended operation")])
    r = result(p)
    assert (r.failure, r.code, r.reply) == ("not-offered", "2 protocolError",
                                            "unsupported extended operation")
    p, _ = run("ldap", [_ldap_response(53)])
    assert (result(p).failure, result(p).code) == ("refused", "53 unwillingToPerform")
    p, _ = run("ldap", [b"HTTP/1.1 400 Bad Request\r\n"])
    assert result(p).failure == "unexpected"
    # a long-form BER length, as Active Directory writes
    body = bytes([0x0A, 1, 0, 0x04, 0, 0x04, 0])
    long_msg = bytes([0x02, 1, 1, 0x78, 0x84, 0, 0, 0, len(body)]) + body
    p, _ = run("ldap", [bytes([0x30, 0x84, 0, 0, 0, len(long_msg)]) + long_msg])
    assert p.ready


def test_xmpp() -> None:
    head = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>")
    feats = (b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
             b"<required/></starttls></stream:features>")
    p, sent = run("xmpp", [head, feats, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"],
                  split=True)
    assert p.ready and b"to='demo.test'" in sent[0]
    assert sent[1] == b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    p, _ = run("xmpp", [head + b"<stream:features><mechanisms/></stream:features>"])
    assert result(p).failure == "not-offered"
    p, _ = run("xmpp", [head, feats, b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"])
    assert result(p).failure == "refused"
    p, _ = run("xmpp", [head + b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:"
                               b"xmpp-streams'/></stream:error>"])
    assert (result(p).failure, result(p).code) == ("refused", "host-unknown")


def test_postgres() -> None:
    assert PG_SSLREQUEST.hex() == "0000000804d2162f"
    p, sent = run("postgres", [b"S"])
    assert p.ready and sent == [PG_SSLREQUEST]
    p, _ = run("postgres", [b"N"])
    assert result(p).failure == "not-offered"
    err = b"SFATAL\x00C0A000\x00Munsupported frontend protocol\x00\x00"
    p, _ = run("postgres", [b"E" + (4 + len(err)).to_bytes(4, "big") + err])
    assert (result(p).failure, result(p).code, result(p).reply) == (
        "refused", "0A000", "unsupported frontend protocol")


def test_runaway_reply_is_bounded() -> None:
    p, _ = run("smtp", [b"220" + b"x" * 70000])
    assert result(p).failure == "unexpected"


def test_ports_are_plaintext_only() -> None:
    assert set(PORTS.values()) == set(PROTOCOLS)
    assert not {465, 993, 995, 636, 443, 5223} & set(PORTS)
    with pytest.raises(ValueError, match="unknown STARTTLS protocol"):
        Preamble("rdp")
