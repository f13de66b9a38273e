"""A loopback TLS 1.3 "server" that does the real key exchange, then lies.

``HostileTls13(answer)`` reads a ClientHello, answers with a genuine ServerHello
(TLS_AES_128_GCM_SHA256, x25519 against the client's own share) and then sends
whatever ``answer(session)`` returns: records sealed with the real server handshake
keys, so the client decrypts them and has to deal with what is inside.  The
:class:`Session` builds the usual messages (EncryptedExtensions, Certificate,
CertificateVerify, a Finished that verifies) and seals arbitrary inner plaintexts.

Like the other loopback peers (tests/peers/misbehaving.py) it runs one epoll thread,
is a context manager, and stops everything it opened at ``stop()``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from prober.wire.buffer import u16, u24, vec
from prober.wire.clienthello import ClientHello, decode_key_share_client, read_client_hello
from prober.wire.constants import ExtensionType, HandshakeType
from prober.wire.serverhello import (
    ServerHello,
    ext_selected_version,
    ext_server_key_share,
    push_server_hello,
)
from prober.wire.tls13 import HandshakeDecryptor, hkdf_expand_label, transcript_hash
from tests.peers.misbehaving import Conn, LoopListener

SUITE = 0x1301  # TLS_AES_128_GCM_SHA256: every TLS 1.3 hello offers it
X25519 = 0x001D
HANDSHAKE = 22
APPLICATION_DATA = 23
CHANGE_CIPHER_SPEC = 20
ECDSA_SECP256R1_SHA256 = 0x0403


def record(ctype: int, payload: bytes) -> bytes:
    return bytes([ctype, 3, 3]) + u16(len(payload)) + payload


@dataclass
class Session:
    """One connection's TLS 1.3 state as the server sees it."""

    hello: ClientHello
    keys: HandshakeDecryptor  # the client's view of the same schedule: its server keys
    transcript: bytearray
    seq: int = 0
    sent: list[str] = field(default_factory=list)

    # -- handshake messages (each one joins the transcript) ---------------------------

    def message(self, mtype: int, body: bytes) -> bytes:
        msg = bytes([mtype]) + u24(len(body)) + body
        self.transcript += msg
        self.sent.append(HandshakeType(mtype).name.lower() if mtype in
                         HandshakeType._value2member_map_ else f"type {mtype}")
        return msg

    def encrypted_extensions(self) -> bytes:
        return self.message(HandshakeType.ENCRYPTED_EXTENSIONS, vec(b"", 2))

    def certificate(self, *ders: bytes) -> bytes:
        entries = b"".join(vec(d, 3) + vec(b"", 2) for d in ders)
        return self.message(HandshakeType.CERTIFICATE, vec(b"", 1) + vec(entries, 3))

    def compressed_certificate(self, algorithm: int, uncompressed_length: int,
                               data: bytes) -> bytes:
        body = u16(algorithm) + u24(uncompressed_length) + vec(data, 3)
        return self.message(HandshakeType.COMPRESSED_CERTIFICATE, body)

    def certificate_verify(self) -> bytes:
        # the client reads the scheme and does not check the signature
        return self.message(HandshakeType.CERTIFICATE_VERIFY,
                            u16(ECDSA_SECP256R1_SHA256) + vec(b"\x30" + bytes(70), 2))

    def finished(self) -> bytes:
        """A Finished over the transcript so far that the client's check accepts."""
        k = self.keys
        key = hkdf_expand_label(k.server_handshake_traffic_secret, b"finished", b"",
                                k.hash_len, k.hash_name)
        verify = hmac.new(key, transcript_hash(k.hash_name, bytes(self.transcript)),
                          k.hash_name).digest()
        return self.message(HandshakeType.FINISHED, verify)

    # -- records ----------------------------------------------------------------------

    def seal_inner(self, inner: bytes) -> bytes:
        """One application_data record carrying ``inner`` (TLSInnerPlaintext) as is."""
        k = self.keys
        header = bytes([APPLICATION_DATA, 3, 3]) + u16(len(inner) + 16)
        nonce = (int.from_bytes(k.server_write_iv, "big") ^ self.seq).to_bytes(12, "big")
        self.seq += 1
        return header + AESGCM(k.server_write_key).encrypt(nonce, inner, header)

    def seal(self, content: bytes, ctype: int = HANDSHAKE, padding: int = 0) -> bytes:
        """``content`` sealed in as many records as it takes (16 KiB each)."""
        out = b""
        for i in range(0, max(len(content), 1), 16384):
            out += self.seal_inner(content[i : i + 16384] + bytes([ctype]) + bytes(padding))
        return out

    def whole_flight(self, *ders: bytes) -> bytes:
        """EncryptedExtensions, Certificate(ders), CertificateVerify, Finished, sealed."""
        return self.seal(self.encrypted_extensions() + self.certificate(*ders)
                         + self.certificate_verify() + self.finished())


def server_hello(hello: ClientHello, public: bytes) -> bytes:
    return push_server_hello(ServerHello(
        legacy_version=0x0303, random=os.urandom(32), session_id=hello.session_id,
        cipher_suite=SUITE, compression_method=0,
        extensions=((ExtensionType.SUPPORTED_VERSIONS, ext_selected_version(0x0304)),
                    (ExtensionType.KEY_SHARE, ext_server_key_share(X25519, public)))))


def open_session(hello: ClientHello) -> tuple[Session, bytes]:
    """The session for ``hello`` and the ServerHello message that starts it."""
    ks = hello.extension(ExtensionType.KEY_SHARE)
    shares = dict(decode_key_share_client(ks)) if ks is not None else {}
    if X25519 not in shares or SUITE not in hello.cipher_suites:
        raise ValueError("the hello has no x25519 share or no TLS_AES_128_GCM_SHA256")
    key = x25519.X25519PrivateKey.generate()
    secret = key.exchange(x25519.X25519PublicKey.from_public_bytes(shares[X25519]))
    sh = server_hello(hello, key.public_key().public_bytes_raw())
    transcript = bytearray(hello.encode() + sh)
    return Session(hello, HandshakeDecryptor(SUITE, secret, bytes(transcript)), transcript), sh


Answer = Callable[[Session], bytes]


class HostileTls13(LoopListener):
    """Answers every ClientHello with a real ServerHello, a middlebox-compat
    ChangeCipherSpec and then ``answer(session)`` (sealed records, or any bytes);
    then reads and discards until the client closes.  ``sessions`` keeps each
    connection's :class:`Session`, ``errors`` what went wrong on this side."""

    def __init__(self, answer: Answer, *, host: str = "127.0.0.1") -> None:
        super().__init__(host=host)
        self.answer = answer
        self.sessions: list[Session] = []
        self.errors: list[str] = []

    def on_data(self, c: Conn, data: bytes) -> None:
        if c.hello_seen:
            c.buf = b""
            return
        try:
            hello = read_client_hello(bytes(c.buf))
        except ValueError:
            return  # not whole yet
        c.hello_seen = True
        c.buf = b""
        try:
            if not isinstance(hello, ClientHello):
                raise ValueError("an SSLv2 hello")
            session, sh = open_session(hello)
            flight = self.answer(session)
        except Exception as e:  # reported to the test; the client sees a FIN
            with self._lock:
                self.errors.append(f"{type(e).__name__}: {e}")
            self.fin(c)
            return
        with self._lock:
            self.sessions.append(session)
        self.send(c, record(HANDSHAKE, sh) + record(CHANGE_CIPHER_SPEC, b"\x01") + flight)
