"""A TLS 1.3 server built on tlslite-ng (pure Python), in threads.

tlslite-ng implements the hybrid ML-KEM groups (X25519MLKEM768, SecP256r1MLKEM768,
SecP384r1MLKEM1024) on top of kyber-py, so it is an independent peer for prober's
post-quantum key shares where the system OpenSSL (3.0) has no ML-KEM.

``TlsliteServer(groups=["X25519MLKEM768"])`` serves TLS 1.3 only on 127.0.0.1 with a
self-signed certificate (generated with ``cryptography``), offering only ``groups`` (in
that order of preference; a client whose key shares miss them all gets a
HelloRetryRequest for the first one it supports).  Every connection is recorded as a
:class:`Handshake`: what was negotiated, whether a HelloRetryRequest was sent, whether
the handshake completed, or the exception.

Import guarded: :data:`IMPORT_ERROR` is the reason tlslite-ng can't be used (None when
it can); :func:`hybrid_groups` lists the hybrid groups this tlslite-ng build supports.
"""

from __future__ import annotations

import contextlib
import socket
import warnings
from dataclasses import dataclass
from typing import Any

from prober.net.certs import KeyKind, throwaway_certificate

from .lifecycle import ThreadedServer

IMPORT_ERROR: str | None
try:
    with warnings.catch_warnings():
        # tlslite/__init__ imports its asyncore integration (DeprecationWarning on 3.11)
        warnings.simplefilter("ignore", DeprecationWarning)
        from tlslite import HandshakeSettings, TLSConnection, X509CertChain, parsePEMKey
        from tlslite.constants import GroupName
        from tlslite.handshakesettings import CURVE_NAMES
except ImportError as e:  # pragma: no cover - depends on the environment
    IMPORT_ERROR = f"tlslite-ng is not importable ({e}); pip install -e '.[dev]'"
else:
    IMPORT_ERROR = None

# IANA names (as prober reports them) <-> tlslite-ng's setting names
_IANA_TO_TLSLITE = {
    "X25519MLKEM768": "x25519mlkem768",
    "SecP256r1MLKEM768": "secp256r1mlkem768",
    "SecP384r1MLKEM1024": "secp384r1mlkem1024",
}
_TLSLITE_TO_IANA = {v: k for k, v in _IANA_TO_TLSLITE.items()}
HYBRID_GROUPS: tuple[str, ...] = tuple(_IANA_TO_TLSLITE)

# RFC 8446 4.1.3: the ServerHello.random of a HelloRetryRequest
_HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
             0x0304: "TLSv1.3"}
_TLS13_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
}


def hybrid_groups() -> list[str]:
    """IANA names of the hybrid groups the installed tlslite-ng offers (needs kyber-py)."""
    if IMPORT_ERROR is not None:
        return []
    return [g for g, t in _IANA_TO_TLSLITE.items() if t in CURVE_NAMES]


def _tlslite_group(name: str) -> str:
    """tlslite-ng's setting name for an IANA or tlslite group name."""
    return _IANA_TO_TLSLITE.get(name, name.lower() if name.lower() in _TLSLITE_TO_IANA else name)


def _group_label(value: int | None) -> str | None:
    if value is None:
        return None
    name = GroupName.toRepr(value)
    if name is None:
        return f"0x{value:04X}"
    return str(_TLSLITE_TO_IANA.get(name, name))


def self_signed(kind: KeyKind = "rsa") -> tuple[str, str]:
    """(certificate PEM, PKCS#8 key PEM) of a fresh self-signed ``rsa`` or ``ecdsa`` leaf."""
    cert, key = throwaway_certificate(kind, common_name="tlslite-ng test peer",
                                      names=["localhost", "127.0.0.1"], days=30)
    return cert.decode(), key.decode()


@dataclass
class Handshake:
    """One connection as the server saw it.

    ``version`` ("TLSv1.3"), ``cipher`` (IANA name) and ``group`` (IANA name for the
    hybrids, tlslite's name otherwise) are what the server's ServerHello carried, read
    back from the bytes it sent, so they are known also when the handshake failed
    afterwards (a prober closes after the server's Finished without sending its own).
    ``hrr_group``: the group a HelloRetryRequest asked for (None: no HRR).
    ``completed``: the client's Finished was verified.  ``error``: the exception, if any.
    """

    version: str | None = None
    cipher: str | None = None
    group: str | None = None
    hrr_group: str | None = None
    completed: bool = False
    error: str | None = None
    server_bytes: int = 0

    @property
    def hrr(self) -> bool:
        return self.hrr_group is not None


class _Tap:
    """Socket proxy keeping the bytes the server sends, to read its plaintext hellos back."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sent = bytearray()

    def send(self, data: bytes) -> int:
        n = self._sock.send(data)
        self.sent += data[:n]
        return n

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)
        self.sent += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _server_hellos(sent: bytes) -> list[dict[str, Any]]:
    """The ServerHello / HelloRetryRequest messages in the plaintext records of ``sent``.

    Each: ``hrr`` (bool), ``version`` (from supported_versions, else legacy_version),
    ``cipher`` (IANA name or hex) and ``group`` (the key_share's group, IANA name for the
    hybrids).  Reading stops at the first encrypted record.
    """
    hs = bytearray()
    pos = 0
    while pos + 5 <= len(sent):
        ctype, length = sent[pos], int.from_bytes(sent[pos + 3 : pos + 5], "big")
        if ctype == 23:
            break
        if ctype == 22:
            hs += sent[pos + 5 : pos + 5 + length]
        pos += 5 + length
    out: list[dict[str, Any]] = []
    i = 0
    while i + 4 <= len(hs):
        mtype, mlen = hs[i], int.from_bytes(hs[i + 1 : i + 4], "big")
        body = bytes(hs[i + 4 : i + 4 + mlen])
        i += 4 + mlen
        if mtype != 2 or len(body) < 38:
            continue
        legacy = int.from_bytes(body[0:2], "big")
        sid_len = body[34]
        j = 35 + sid_len
        suite = int.from_bytes(body[j : j + 2], "big")
        j += 3
        ext_end = j + 2 + int.from_bytes(body[j : j + 2], "big")
        j += 2
        hello: dict[str, Any] = {
            "hrr": body[2:34] == _HRR_RANDOM,
            "version": _VERSIONS.get(legacy, f"0x{legacy:04X}"),
            "cipher": _TLS13_SUITES.get(suite, f"0x{suite:04X}"),
            "group": None,
        }
        while j + 4 <= ext_end:
            etype, elen = int.from_bytes(body[j : j + 2], "big"), int.from_bytes(
                body[j + 2 : j + 4], "big"
            )
            data = body[j + 4 : j + 4 + elen]
            j += 4 + elen
            if etype == 43 and len(data) >= 2:  # supported_versions
                v = int.from_bytes(data[:2], "big")
                hello["version"] = _VERSIONS.get(v, f"0x{v:04X}")
            elif etype == 51 and len(data) >= 2:  # key_share (group first, HRR or SH)
                hello["group"] = _group_label(int.from_bytes(data[:2], "big"))
        out.append(hello)
    return out


class TlsliteServer(ThreadedServer):
    """``TlsliteServer(groups, key_shares=None, cert="rsa")``: tlslite-ng TLS 1.3 server.

    ``groups``: IANA (``X25519MLKEM768``) or tlslite (``x25519mlkem768``) names, the only
    groups offered, preferred first.  ``key_shares``: the groups whose client key share
    the server accepts without a HelloRetryRequest (default: all of ``groups``).
    ``cert``: ``rsa`` or ``ecdsa`` (P-256), self-signed.  ``compress_certificate``: answer
    a client's compress_certificate with a zlib CompressedCertificate (default: off).
    Attributes: ``host``, ``port``.  ``handshakes()`` -> list of :class:`Handshake`.
    Serves any number of connections, one thread each; ``stop()`` joins every thread.
    """

    thread_name = "tlslite"
    backlog = 64
    join_handlers = True

    def __init__(
        self,
        groups: list[str] | tuple[str, ...] = ("X25519MLKEM768",),
        key_shares: list[str] | tuple[str, ...] | None = None,
        *,
        cert: KeyKind = "rsa",
        compress_certificate: bool = False,
        host: str = "127.0.0.1",
        handshake_timeout: float = 20.0,
    ) -> None:
        if IMPORT_ERROR is not None:
            raise RuntimeError(IMPORT_ERROR)
        super().__init__(host)
        self.handshake_timeout = handshake_timeout
        self.groups = [_tlslite_group(g) for g in groups]
        shares = groups if key_shares is None else key_shares
        self.key_shares = [_tlslite_group(g) for g in shares]
        self.compress_certificate = compress_certificate
        cert_pem, key_pem = self_signed(cert)
        self.cert_pem = cert_pem
        self._chain = X509CertChain()
        self._chain.parsePemList(cert_pem)
        self._key = parsePEMKey(key_pem, private=True, implementations=["python"])
        self.settings = self._settings()
        self._handshakes: list[Handshake] = []

    def _settings(self) -> Any:
        s = HandshakeSettings()
        s.minVersion = (3, 4)
        s.maxVersion = (3, 4)
        s.eccCurves = [g for g in self.groups if not g.startswith("ffdhe")]
        s.dhGroups = [g for g in self.groups if g.startswith("ffdhe")]
        s.keyShares = list(self.key_shares)
        if not self.compress_certificate:
            # RFC 8879: with it, a client offering compress_certificate (Firefox: zlib,
            # brotli, zstd) gets a CompressedCertificate (zlib here) instead of Certificate
            s.certificate_compression_send = []
        return s.validate()

    def _handle(self, conn: socket.socket) -> None:
        rec = Handshake()
        tap = _Tap(conn)
        tls = None
        try:
            conn.settimeout(self.handshake_timeout)
            tls = TLSConnection(tap)
            try:
                # alpn must be given: tlslite-ng 0.8 raises TypeError when the client
                # offers ALPN and the server has no list (tlsconnection.py, TLS 1.3 path)
                tls.handshakeServer(
                    certChain=self._chain,
                    privateKey=self._key,
                    settings=self.settings,
                    alpn=[bytearray(b"http/1.1")],
                )
                rec.completed = True
            except Exception as e:  # recorded, the client decides how far it goes
                rec.error = f"{type(e).__name__}: {e}"
            rec.server_bytes = len(tap.sent)
            hellos = _server_hellos(bytes(tap.sent))
            for hello in hellos:
                if hello["hrr"]:
                    rec.hrr_group = hello["group"]
                else:
                    rec.version, rec.cipher = hello["version"], hello["cipher"]
                    rec.group = hello["group"]
            if rec.completed:
                with contextlib.suppress(Exception):
                    tls.settimeout(2.0)
                    if tls.read(max=4096):
                        tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                with contextlib.suppress(Exception):
                    tls.close()
        except Exception as e:  # pragma: no cover - anything else is still recorded
            rec.error = rec.error or f"{type(e).__name__}: {e}"
        finally:
            with self._lock:
                self._handshakes.append(rec)
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def handshakes(self) -> list[Handshake]:
        with self._lock:
            return list(self._handshakes)
