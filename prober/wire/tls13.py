"""TLS 1.3 key schedule and decryption of the server's handshake flight.

Sans-I/O (RFC 8446 section 7): given the cipher suite, the (EC)DHE/KEM shared
secret and the transcript ClientHello..ServerHello, derive the handshake
traffic secrets and open the records that carry EncryptedExtensions,
Certificate, CertificateVerify and Finished.  The prober needs this to see
what a TLS 1.3 server actually sends after ServerHello (certificate chain,
extensions, alerts) - all of which is encrypted.

Only the no-PSK handshake is covered: the early secret is HKDF-Extract(0, 0).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from functools import cache, cached_property
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

__all__ = [
    "DecryptError",
    "HandshakeDecryptor",
    "RecordContentError",
    "derive_secret",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_extract",
    "message_hash",
    "suite_params",
    "transcript_hash",
]

# (hash, key length, iv length); the iv is 12 bytes for every TLS 1.3 AEAD.
_SUITES: dict[int, tuple[str, int, int]] = {
    0x1301: ("sha256", 16, 12),  # TLS_AES_128_GCM_SHA256
    0x1302: ("sha384", 32, 12),  # TLS_AES_256_GCM_SHA384
    0x1303: ("sha256", 32, 12),  # TLS_CHACHA20_POLY1305_SHA256
    0x1304: ("sha256", 16, 12),  # TLS_AES_128_CCM_SHA256
    0x1305: ("sha256", 16, 12),  # TLS_AES_128_CCM_8_SHA256
}

_CONTENT_APPLICATION_DATA = 23
_HANDSHAKE_MESSAGE_HASH = 254


class DecryptError(ValueError):
    """A protected record failed AEAD authentication (wrong keys or corrupt record)."""


class RecordContentError(ValueError):
    """A protected record authenticated, but its plaintext is not a TLSInnerPlaintext
    (RFC 8446 5.4: no non-zero byte, so no content type); a peer answers it with an
    unexpected_message alert.  Not a DecryptError: the keys were right."""


def suite_params(suite: int) -> tuple[str, int, int] | None:
    """(hash name, key length, iv length) for a TLS 1.3 suite, None for others."""
    return _SUITES.get(suite)


_HASH_LEN = {"sha256": 32, "sha384": 48}


def _hash_len(hash_name: str) -> int:
    return _HASH_LEN.get(hash_name) or hashlib.new(hash_name).digest_size


def transcript_hash(hash_name: str, transcript: bytes) -> bytes:
    """Transcript-Hash over concatenated handshake messages (headers included)."""
    return hashlib.new(hash_name, transcript).digest()


def hkdf_extract(salt: bytes, ikm: bytes, hash_name: str = "sha256") -> bytes:
    """HKDF-Extract (RFC 5869); an empty salt equals HashLen zero bytes."""
    # HMAC zero-pads the key to the block size, so b"" and HashLen zeros give
    # the same PRK - no special case for the RFC's "0" salt is needed.
    return hmac.digest(salt, ikm, hash_name)


def hkdf_expand(prk: bytes, info: bytes, length: int, hash_name: str = "sha256") -> bytes:
    """HKDF-Expand (RFC 5869)."""
    hash_len = _hash_len(hash_name)
    if not 0 <= length <= 255 * hash_len:
        raise ValueError(f"HKDF-Expand length {length} out of range")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        # hmac.digest is the one-shot C path: a handshake runs ~10 of these per attempt
        block = hmac.digest(prk, block + info + bytes([counter]), hash_name)
        out += block
        counter += 1
    return out[:length]


def hkdf_expand_label(
    secret: bytes, label: bytes, context: bytes, length: int, hash_name: str = "sha256"
) -> bytes:
    """HKDF-Expand-Label (RFC 8446 7.1); ``label`` without the ``tls13 `` prefix."""
    full_label = b"tls13 " + label
    if len(full_label) > 255 or len(context) > 255 or not 0 <= length <= 0xFFFF:
        raise ValueError("HkdfLabel field out of range")
    info = (
        struct.pack("!H", length)
        + bytes([len(full_label)])
        + full_label
        + bytes([len(context)])
        + context
    )
    return hkdf_expand(secret, info, length, hash_name)


def derive_secret(secret: bytes, label: bytes, messages: bytes, hash_name: str = "sha256") -> bytes:
    """Derive-Secret (RFC 8446 7.1) over the concatenated handshake ``messages``."""
    return hkdf_expand_label(
        secret, label, transcript_hash(hash_name, messages), _hash_len(hash_name), hash_name
    )


def message_hash(hash_name: str, client_hello1: bytes) -> bytes:
    """The synthetic ``message_hash`` message standing in for ClientHello1 after an HRR.

    RFC 8446 4.4.1: handshake type 254, 24-bit length HashLen, then
    Hash(ClientHello1) where ClientHello1 includes its 4-byte header.  The
    transcript for the rest of the handshake is then
    message_hash || HelloRetryRequest || ClientHello2 || ServerHello || ...
    """
    digest = transcript_hash(hash_name, client_hello1)
    return bytes([_HANDSHAKE_MESSAGE_HASH]) + len(digest).to_bytes(3, "big") + digest


@cache
def _early_secret(hash_name: str) -> bytes:
    """HKDF-Extract(0, 0): without a PSK the same for every handshake of a hash."""
    zeros = bytes(_hash_len(hash_name))
    return hkdf_extract(zeros, zeros, hash_name)


@cache
def _derived_early(hash_name: str) -> bytes:
    """Derive-Secret(Early Secret, "derived", ""), computed once per hash likewise."""
    return derive_secret(_early_secret(hash_name), b"derived", b"", hash_name)


class _Aead(Protocol):
    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


def _aead(suite: int, key: bytes) -> tuple[_Aead, int]:
    """The AEAD object and its tag length for ``suite``."""
    if suite in (0x1301, 0x1302):
        return AESGCM(key), 16
    if suite == 0x1303:
        return ChaCha20Poly1305(key), 16
    if suite == 0x1304:
        return AESCCM(key, tag_length=16), 16
    if suite == 0x1305:
        return AESCCM(key, tag_length=8), 8
    raise ValueError(f"not a TLS 1.3 cipher suite: 0x{suite:04X}")


class HandshakeDecryptor:
    """Handshake-traffic keys of one TLS 1.3 connection, and the server's record reader.

    ``transcript`` is every handshake message (4-byte headers included) from
    ClientHello through ServerHello - after a HelloRetryRequest that is
    ``message_hash(CH1) + HRR + CH2 + SH``.
    """

    def __init__(self, suite: int, shared_secret: bytes, transcript: bytes) -> None:
        params = suite_params(suite)
        if params is None:
            raise ValueError(f"not a TLS 1.3 cipher suite: 0x{suite:04X}")
        self.suite = suite
        self.hash_name, key_len, iv_len = params
        self.hash_len = _hash_len(self.hash_name)
        h = self.hash_name
        self.key_len, self.iv_len = key_len, iv_len
        self.handshake_secret = hkdf_extract(_derived_early(h), shared_secret, h)
        self._transcript_hash = transcript_hash(h, transcript)
        self.server_handshake_traffic_secret = hkdf_expand_label(
            self.handshake_secret, b"s hs traffic", self._transcript_hash, self.hash_len, h
        )
        self.server_write_key = hkdf_expand_label(
            self.server_handshake_traffic_secret, b"key", b"", key_len, h
        )
        self.server_write_iv = hkdf_expand_label(
            self.server_handshake_traffic_secret, b"iv", b"", iv_len, h
        )
        self._aead, self._tag_len = _aead(suite, self.server_write_key)
        # Number of server records opened so far under the handshake key.
        self.sequence_number = 0

    # what a caller going on past the server's Finished needs; a probe stops there, so
    # these are derived on first use (each is HMACs a probe would otherwise pay for)
    @property
    def early_secret(self) -> bytes:
        return _early_secret(self.hash_name)

    @cached_property
    def client_handshake_traffic_secret(self) -> bytes:
        return hkdf_expand_label(self.handshake_secret, b"c hs traffic", self._transcript_hash,
                                 self.hash_len, self.hash_name)

    @cached_property
    def master_secret(self) -> bytes:
        h = self.hash_name
        return hkdf_extract(derive_secret(self.handshake_secret, b"derived", b"", h),
                            bytes(self.hash_len), h)

    @cached_property
    def client_write_key(self) -> bytes:
        return hkdf_expand_label(self.client_handshake_traffic_secret, b"key", b"",
                                 self.key_len, self.hash_name)

    @cached_property
    def client_write_iv(self) -> bytes:
        return hkdf_expand_label(self.client_handshake_traffic_secret, b"iv", b"",
                                 self.iv_len, self.hash_name)

    def _nonce(self) -> bytes:
        # RFC 8446 5.3: the 64-bit sequence number, left-padded to iv_length, XOR iv.
        iv = self.server_write_iv
        n = len(iv)
        return (int.from_bytes(iv, "big") ^ self.sequence_number).to_bytes(n, "big")

    def decrypt_record(self, header: bytes, payload: bytes) -> tuple[int, bytes]:
        """Open one TLSCiphertext from the server.

        ``header`` is the 5-byte record header (the AEAD additional data) and
        ``payload`` the ``encrypted_record``.  Returns (inner content type,
        content) with the zero padding removed.  Raises DecryptError when the
        record does not authenticate; the sequence number only advances on
        success, so a caller may retry with another decryptor (e.g. a guessed
        suite or share) without desynchronising this one.  Raises
        RecordContentError for an authentic record that is all padding (it has
        been opened, so the sequence number has advanced past it).
        """
        if len(header) != 5:
            raise ValueError(f"record header must be 5 bytes, got {len(header)}")
        if header[0] != _CONTENT_APPLICATION_DATA:
            # Middlebox-compat ChangeCipherSpec and plaintext alerts are not
            # protected; hand them to the caller's plaintext path instead.
            raise ValueError(f"record type {header[0]} is not protected (expected 23)")
        if int.from_bytes(header[3:5], "big") != len(payload):
            raise ValueError("record header length does not match the payload")
        if len(payload) <= self._tag_len:
            # Not even room for the tag plus a content type: cannot authenticate.
            raise DecryptError("encrypted record shorter than the AEAD tag")
        try:
            inner = self._aead.decrypt(self._nonce(), bytes(payload), bytes(header))
        except InvalidTag as exc:
            raise DecryptError(f"record {self.sequence_number} failed authentication") from exc
        self.sequence_number += 1
        # TLSInnerPlaintext = content || type || zeros; the type is the last
        # non-zero byte (RFC 8446 5.4).
        content = inner.rstrip(b"\x00")
        if not content:
            raise RecordContentError(
                f"record {self.sequence_number - 1} is all zero padding ({len(inner)} bytes), "
                "no content type (unexpected_message)")
        return content[-1], content[:-1]

    def _finished(self, base_key: bytes, transcript: bytes) -> bytes:
        finished_key = hkdf_expand_label(base_key, b"finished", b"", self.hash_len, self.hash_name)
        return hmac.new(
            finished_key, transcript_hash(self.hash_name, transcript), self.hash_name
        ).digest()

    def server_finished_ok(
        self, transcript_through_certificate_verify: bytes, verify_data: bytes
    ) -> bool:
        """Check the server Finished ``verify_data`` (RFC 8446 4.4.4).

        The transcript runs from ClientHello (or message_hash) through
        CertificateVerify - everything before the Finished message itself.
        """
        expected = self._finished(
            self.server_handshake_traffic_secret, transcript_through_certificate_verify
        )
        return hmac.compare_digest(expected, bytes(verify_data))

    def client_finished_verify_data(self, transcript_through_server_finished: bytes) -> bytes:
        """The client's Finished ``verify_data``, over ClientHello..server Finished."""
        return self._finished(
            self.client_handshake_traffic_secret, transcript_through_server_finished
        )
