"""One vocabulary for why a handshake failed, whichever server wrote it.

Go, nginx (OpenSSL), HAProxy and the ALB each word the same failure differently
("client offered only unsupported versions", "unsupported protocol", "SSL handshake
failure (...)"); an operator wants one row per cause. The server's own text is kept
beside the normalised reason as the example.
"""

from __future__ import annotations

import re
from functools import lru_cache

from prober.logs import formats as logs_formats
from prober.wire.constants import AlertDescription
from prober.wire.registry import version_name

PROTOCOL_VERSION = "protocol version"
NO_SHARED_CIPHER = "no shared cipher"
NO_SHARED_GROUP = "no shared group"
NO_SHARED_SIGALG = "no shared signature algorithm"
INAPPROPRIATE_FALLBACK = "inappropriate fallback"
NO_ALPN = "no shared ALPN protocol"
SSLV2_HELLO = "SSLv2-format hello"
CLIENT_REJECTED_CERT = "client rejected the certificate"
CLIENT_CERT = "client certificate (mTLS)"
UNKNOWN_SNI = "unknown SNI"
NOT_TLS = "not TLS"
RESET = "connection reset"
EOF = "EOF"
TIMEOUT = "timeout"
CLIENT_ALERT = "client alert"
UNSPECIFIED = "handshake failure (no detail logged)"
OTHER = "other"

# alerts a client sends about us -> the cause they point at
_ALERT_REASON: dict[int, str] = {
    AlertDescription.protocol_version: PROTOCOL_VERSION,
    AlertDescription.inappropriate_fallback: INAPPROPRIATE_FALLBACK,
    AlertDescription.no_application_protocol: NO_ALPN,
    AlertDescription.unrecognized_name: UNKNOWN_SNI,
    AlertDescription.certificate_required: CLIENT_CERT,
    **{a: CLIENT_REJECTED_CERT for a in (
        AlertDescription.bad_certificate, AlertDescription.unsupported_certificate,
        AlertDescription.certificate_revoked, AlertDescription.certificate_expired,
        AlertDescription.certificate_unknown, AlertDescription.unknown_ca)},
}


def alert_reason(number: int) -> str:
    return _ALERT_REASON.get(number, CLIENT_ALERT)


# OpenSSL reason texts (also BoringSSL's, lower-cased with spaces) -> reason. Matched as
# substrings of the text after "SSL routines:<func>:", so 1.0/1.1/3.x spellings all hit.
_OPENSSL_TEXT: tuple[tuple[str, str], ...] = (
    ("inappropriate fallback", INAPPROPRIATE_FALLBACK),
    ("unsupported protocol", PROTOCOL_VERSION),
    ("version too low", PROTOCOL_VERSION),
    ("wrong ssl version", PROTOCOL_VERSION),
    ("no protocols available", PROTOCOL_VERSION),
    ("no shared cipher", NO_SHARED_CIPHER),
    ("no ciphers available", NO_SHARED_CIPHER),
    ("no shared groups", NO_SHARED_GROUP),
    ("no shared group", NO_SHARED_GROUP),
    ("no suitable key share", NO_SHARED_GROUP),
    ("no shared signature algorithms", NO_SHARED_SIGALG),
    ("no common signature algorithms", NO_SHARED_SIGALG),
    ("no suitable signature algorithm", NO_SHARED_SIGALG),
    ("legacy sigalg disallowed", NO_SHARED_SIGALG),
    ("no application protocol", NO_ALPN),
    ("peer did not return a certificate", CLIENT_CERT),
    ("certificate verify failed", CLIENT_CERT),
    ("unrecognized name", UNKNOWN_SNI),
    ("http request", NOT_TLS),
    ("https proxy request", NOT_TLS),
    ("wrong version number", NOT_TLS),
    ("unknown protocol", NOT_TLS),
    ("packet length too long", NOT_TLS),
    ("unexpected eof while reading", EOF),
)
_OPENSSL_ALERT = re.compile(r"alert number (\d+)", re.IGNORECASE)


def openssl_reason(text: str) -> str:
    """Reason of an OpenSSL/BoringSSL error text (``no shared cipher``, ``tlsv1 alert
    unknown ca:SSL alert number 48``, ``NO_SHARED_CIPHER``)."""
    t = text.lower().replace("_", " ")
    m = _OPENSSL_ALERT.search(t)
    if m:
        return alert_reason(int(m.group(1)))
    for needle, reason in _OPENSSL_TEXT:
        if needle in t:
            return reason
    if "alert" in t:
        return _alert_by_openssl_name(t)
    return OTHER


def _alert_by_openssl_name(t: str) -> str:
    # "sslv3 alert certificate unknown" -> AlertDescription.certificate_unknown
    name = t.rsplit("alert ", 1)[-1].strip().replace(" ", "_")
    for a in AlertDescription:
        if a.name == name or a.name.replace("_", "") == name.replace("_", ""):
            return alert_reason(a.value)
    return CLIENT_ALERT


# "error:0A0000C1:SSL routines::no shared cipher" (3.x), "error:1417A0C1:SSL
# routines:tls_post_process_client_hello:no shared cipher" (1.1.1), BoringSSL
# "error:100000b8:SSL routines:OPENSSL_internal:NO_SHARED_CIPHER"
OPENSSL_ERROR = re.compile(r"error:([0-9A-Fa-f]{8}):[^:]*:[^:]*:([^()\n]*?)(?=\)|\s+error:|$)")


def packed_openssl_text(packed_hex: str) -> str | None:
    """Reason text of an OpenSSL 3 packed error code (``000000000A0000C1`` as HAProxy
    prints ``ssl_fc_err,hex``); ``None`` when it is not an SSL-library error."""
    try:
        code = int(packed_hex, 16)
    except ValueError:
        return None
    if code == 0 or (code >> 23) & 0xFF != 20:  # library 20 = SSL in 3.x packing
        return None
    return logs_formats.openssl_reasons().get(code & 0x7FFFFF)


# --- Go crypto/tls + net/http ----------------------------------------------------------

_GO_TEXT: tuple[tuple[str, str], ...] = (
    ("client offered only unsupported versions", PROTOCOL_VERSION),
    ("unsupported, maximum protocol version", PROTOCOL_VERSION),
    ("no cipher suite supported by both", NO_SHARED_CIPHER),
    ("no ECDHE curve supported by both", NO_SHARED_GROUP),
    ("inappropriate protocol fallback", INAPPROPRIATE_FALLBACK),
    ("unsupported application protocols", NO_ALPN),
    ("client didn't provide a certificate", CLIENT_CERT),
    ("failed to verify client certificate", CLIENT_CERT),
    ("failed to verify certificate", CLIENT_CERT),
    ("does not look like a TLS handshake", NOT_TLS),
    ("oversized record received", NOT_TLS),
    ("unsupported SSLv2 handshake received", SSLV2_HELLO),
    ("missing server name", UNKNOWN_SNI),
    ("connection reset by peer", RESET),
    ("broken pipe", RESET),
    ("i/o timeout", TIMEOUT),
)
_GO_VERSIONS = re.compile(
    r"versions: \[([0-9a-fA-F ]+)\]|maximum protocol version of ([0-9a-fA-F]+)")


@lru_cache(maxsize=1024)  # bounded: texts with addresses in them are all different
def go_reason(text: str) -> str:
    """Reason of the error text after ``http: TLS handshake error from IP:PORT: ``."""
    if text in ("EOF", "unexpected EOF"):
        return EOF
    if text.startswith("remote error: tls: "):
        number = logs_formats.go_alert_texts().get(text[len("remote error: tls: "):])
        return alert_reason(number) if number is not None else CLIENT_ALERT
    for needle, reason in _GO_TEXT:
        if needle in text:
            return reason
    return OTHER


def go_client_version(text: str) -> str | None:
    """The highest version a client offered, from Go's "unsupported versions: [302 301]"
    (hex wire values): ``TLSv1.1``. That is the client's protocol in the population."""
    m = _GO_VERSIONS.search(text)
    if not m:
        return None

    values = [int(v, 16) for v in (m.group(1) or m.group(2)).split()]
    return version_name(max(values)) if values else None


# --- HAProxy ---------------------------------------------------------------------------

_HAPROXY_NAME: dict[str, str] = {
    "SSL_EMPTY": EOF,
    "SSL_ABORT": RESET,
    "SSL_TIMEOUT": TIMEOUT,
    "SSL_CA_FAIL": CLIENT_CERT,
    "SSL_CRT_FAIL": CLIENT_CERT,
    "SSL_HANDSHAKE": UNSPECIFIED,
    "SSL_HANDSHAKE_HB": UNSPECIFIED,
}


def haproxy_reason(message: str) -> str | None:
    """Reason of a connection-error text (``SSL handshake failure``); ``None`` when the
    text is not one of HAProxy's TLS connection errors."""
    name = logs_formats.haproxy_messages().get(message)
    return None if name is None else haproxy_reason_by_name(name)


def haproxy_reason_by_name(name: str) -> str | None:
    if not name.startswith("SSL_"):
        return None  # PROXY-protocol and other non-TLS connection errors
    return _HAPROXY_NAME.get(name, OTHER)
