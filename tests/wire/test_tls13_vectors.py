"""TLS 1.3 key schedule and record decryption against RFC 8448 section 3.

The vectors (tests/wire/data/rfc8448_simple.json) are the "Simple 1-RTT Handshake"
trace: x25519, TLS_AES_128_GCM_SHA256, no PSK.  The record test is
self-checking: a single wrong byte in the key schedule or in the transcribed
ciphertext makes AES-GCM authentication fail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from prober.wire import tls13

VECTORS = Path(__file__).parent / "data" / "rfc8448_simple.json"


@pytest.fixture(scope="module")
def v() -> dict[str, bytes]:
    raw = json.loads(VECTORS.read_text())
    return {k: bytes.fromhex(val) for k, val in raw.items() if not k.startswith("_")}


@pytest.fixture(scope="module")
def hello(v: dict[str, bytes]) -> bytes:
    return v["client_hello"] + v["server_hello"]


@pytest.fixture()
def dec(v: dict[str, bytes], hello: bytes) -> tls13.HandshakeDecryptor:
    return tls13.HandshakeDecryptor(0x1301, v["shared_secret"], hello)


def _through_cv(v: dict[str, bytes]) -> bytes:
    return (
        v["client_hello"]
        + v["server_hello"]
        + v["encrypted_extensions"]
        + v["certificate"]
        + v["certificate_verify"]
    )


# ------------------------------------------------------------------ RFC 8448 section 3


def test_x25519_keys_and_shared_secret(v: dict[str, bytes]) -> None:
    client = x25519.X25519PrivateKey.from_private_bytes(v["client_private"])
    server = x25519.X25519PrivateKey.from_private_bytes(v["server_private"])
    assert client.public_key().public_bytes_raw() == v["client_public"]
    assert server.public_key().public_bytes_raw() == v["server_public"]
    # The shares really are the ones inside the transcribed hello messages.
    assert v["client_public"] in v["client_hello"]
    assert v["server_public"] in v["server_hello"]
    secret = client.exchange(x25519.X25519PublicKey.from_public_bytes(v["server_public"]))
    assert secret == v["shared_secret"]


def test_key_schedule_steps(v: dict[str, bytes], hello: bytes) -> None:
    zeros = bytes(32)
    early = tls13.hkdf_extract(zeros, zeros, "sha256")
    assert early == v["early_secret"]
    assert tls13.hkdf_extract(b"", zeros, "sha256") == early
    derived = tls13.derive_secret(early, b"derived", b"", "sha256")
    assert derived == v["derived_for_handshake"]
    hs = tls13.hkdf_extract(derived, v["shared_secret"], "sha256")
    assert hs == v["handshake_secret"]
    assert tls13.transcript_hash("sha256", hello) == v["hello_hash"]
    assert tls13.derive_secret(hs, b"c hs traffic", hello) == v["client_handshake_traffic_secret"]
    assert tls13.derive_secret(hs, b"s hs traffic", hello) == v["server_handshake_traffic_secret"]
    assert tls13.derive_secret(hs, b"derived", b"") == v["derived_for_master"]
    shts = v["server_handshake_traffic_secret"]
    assert tls13.hkdf_expand_label(shts, b"key", b"", 16) == v["server_handshake_key"]
    assert tls13.hkdf_expand_label(shts, b"iv", b"", 12) == v["server_handshake_iv"]
    assert tls13.hkdf_expand_label(shts, b"finished", b"", 32) == v["server_finished_key"]


def test_decryptor_secrets_and_keys(dec: tls13.HandshakeDecryptor, v: dict[str, bytes]) -> None:
    assert dec.hash_name == "sha256"
    assert dec.early_secret == v["early_secret"]
    assert dec.handshake_secret == v["handshake_secret"]
    assert dec.client_handshake_traffic_secret == v["client_handshake_traffic_secret"]
    assert dec.server_handshake_traffic_secret == v["server_handshake_traffic_secret"]
    assert dec.master_secret == v["master_secret"]
    assert dec.server_write_key == v["server_handshake_key"]
    assert dec.server_write_iv == v["server_handshake_iv"]
    assert dec.client_write_key == v["client_handshake_key"]
    assert dec.client_write_iv == v["client_handshake_iv"]


def test_decrypt_server_handshake_record(
    dec: tls13.HandshakeDecryptor, v: dict[str, bytes]
) -> None:
    record = v["server_handshake_record"]
    assert len(record) == 679
    content_type, plaintext = dec.decrypt_record(record[:5], record[5:])
    assert content_type == 22  # handshake
    assert plaintext == (
        v["encrypted_extensions"]
        + v["certificate"]
        + v["certificate_verify"]
        + v["server_finished"]
    )
    assert dec.sequence_number == 1


def test_server_finished(dec: tls13.HandshakeDecryptor, v: dict[str, bytes]) -> None:
    verify_data = v["server_finished"][4:]
    assert dec.server_finished_ok(_through_cv(v), verify_data)
    assert not dec.server_finished_ok(_through_cv(v), bytes(32))
    assert not dec.server_finished_ok(_through_cv(v)[:-1], verify_data)


def test_client_finished(dec: tls13.HandshakeDecryptor, v: dict[str, bytes]) -> None:
    transcript = _through_cv(v) + v["server_finished"]
    assert dec.client_finished_verify_data(transcript) == v["client_finished"][4:]


def test_second_decrypt_uses_next_sequence_number(
    dec: tls13.HandshakeDecryptor, v: dict[str, bytes]
) -> None:
    record = v["server_handshake_record"]
    dec.decrypt_record(record[:5], record[5:])
    # Replaying the same record under sequence number 1 must not authenticate.
    with pytest.raises(tls13.DecryptError):
        dec.decrypt_record(record[:5], record[5:])
    assert dec.sequence_number == 1


def test_tampered_record_and_failure_keeps_sequence(
    dec: tls13.HandshakeDecryptor, v: dict[str, bytes]
) -> None:
    record = bytearray(v["server_handshake_record"])
    record[100] ^= 0x01
    with pytest.raises(tls13.DecryptError):
        dec.decrypt_record(bytes(record[:5]), bytes(record[5:]))
    assert dec.sequence_number == 0
    # DecryptError is a ValueError, so generic parse-error handling catches it.
    assert issubclass(tls13.DecryptError, ValueError)
    good = v["server_handshake_record"]
    assert dec.decrypt_record(good[:5], good[5:])[0] == 22


def test_wrong_aad_fails(dec: tls13.HandshakeDecryptor, v: dict[str, bytes]) -> None:
    record = v["server_handshake_record"]
    header = b"\x17\x03\x01" + record[3:5]  # legacy_record_version is authenticated
    with pytest.raises(tls13.DecryptError):
        dec.decrypt_record(header, record[5:])


def test_wrong_shared_secret_fails(v: dict[str, bytes], hello: bytes) -> None:
    dec = tls13.HandshakeDecryptor(0x1301, bytes(32), hello)
    record = v["server_handshake_record"]
    with pytest.raises(tls13.DecryptError):
        dec.decrypt_record(record[:5], record[5:])


def test_malformed_record_inputs(dec: tls13.HandshakeDecryptor, v: dict[str, bytes]) -> None:
    record = v["server_handshake_record"]
    with pytest.raises(ValueError):
        dec.decrypt_record(record[:4], record[5:])
    with pytest.raises(ValueError):
        dec.decrypt_record(b"\x16" + record[1:5], record[5:])  # plaintext handshake
    with pytest.raises(ValueError):
        dec.decrypt_record(record[:5], record[5:-1])  # length field mismatch
    with pytest.raises(tls13.DecryptError):
        dec.decrypt_record(b"\x17\x03\x03\x00\x10", bytes(16))  # tag only
    assert dec.sequence_number == 0


# ------------------------------------------------------------------ helpers and other suites


def test_suite_params() -> None:
    assert tls13.suite_params(0x1301) == ("sha256", 16, 12)
    assert tls13.suite_params(0x1302) == ("sha384", 32, 12)
    assert tls13.suite_params(0x1303) == ("sha256", 32, 12)
    assert tls13.suite_params(0x1304) == ("sha256", 16, 12)
    assert tls13.suite_params(0x1305) == ("sha256", 16, 12)
    assert tls13.suite_params(0xC02F) is None
    assert tls13.suite_params(0x1306) is None
    with pytest.raises(ValueError):
        tls13.HandshakeDecryptor(0xC02F, bytes(32), b"")


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_hkdf_matches_cryptography(hash_name: str) -> None:
    algo: hashes.HashAlgorithm = hashes.SHA256() if hash_name == "sha256" else hashes.SHA384()
    salt, ikm, info = b"salt" * 5, b"input keying material", b"some info"
    prk = tls13.hkdf_extract(salt, ikm, hash_name)
    okm = HKDF(algorithm=algo, length=100, salt=salt, info=info).derive(ikm)
    assert tls13.hkdf_expand(prk, info, 100, hash_name) == okm
    # HkdfLabel = uint16 length || opaque label<7..255> || opaque context<0..255>
    label_info = b"\x00\x2a" + b"\x0etls13 test abc" + b"\x03ctx"
    expected = HKDFExpand(algorithm=algo, length=42, info=label_info).derive(prk)
    assert tls13.hkdf_expand_label(prk, b"test abc", b"ctx", 42, hash_name) == expected


def test_hkdf_label_info_bytes_from_rfc(v: dict[str, bytes]) -> None:
    # RFC 8448 prints the "key" and "iv" HkdfLabel encodings; rebuild via HKDF-Expand.
    shts = v["server_handshake_traffic_secret"]
    assert tls13.hkdf_expand(shts, v["key_info"], 16) == v["server_handshake_key"]
    assert tls13.hkdf_expand(shts, v["iv_info"], 12) == v["server_handshake_iv"]


def test_hkdf_limits() -> None:
    with pytest.raises(ValueError):
        tls13.hkdf_expand(bytes(32), b"", 255 * 32 + 1)
    with pytest.raises(ValueError):
        tls13.hkdf_expand_label(bytes(32), b"x" * 250, b"", 16)
    with pytest.raises(ValueError):
        tls13.hkdf_expand_label(bytes(32), b"key", b"c" * 256, 16)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_message_hash(hash_name: str) -> None:
    ch1 = b"\x01\x00\x00\x05hello"
    msg = tls13.message_hash(hash_name, ch1)
    digest = hashlib.new(hash_name, ch1).digest()
    assert msg == bytes([254, 0, 0, len(digest)]) + digest


def test_hrr_transcript_feeds_the_schedule() -> None:
    # After HRR the transcript starts with message_hash(CH1); the traffic
    # secrets must be Derive-Secret over exactly that concatenation.
    ch1 = b"\x01\x00\x00\x03abc"
    hrr = b"\x02\x00\x00\x03hrr"
    ch2 = b"\x01\x00\x00\x03def"
    sh = b"\x02\x00\x00\x02sh"
    transcript = tls13.message_hash("sha384", ch1) + hrr + ch2 + sh
    dec = tls13.HandshakeDecryptor(0x1302, b"\x11" * 48, transcript)
    zeros = bytes(48)
    early = hmac.new(zeros, zeros, "sha384").digest()
    assert dec.early_secret == early
    derived = tls13.derive_secret(early, b"derived", b"", "sha384")
    hs = hmac.new(derived, b"\x11" * 48, "sha384").digest()
    assert dec.handshake_secret == hs
    assert dec.server_handshake_traffic_secret == tls13.derive_secret(
        hs, b"s hs traffic", transcript, "sha384"
    )
    assert len(dec.server_write_key) == 32
    assert len(dec.client_handshake_traffic_secret) == 48


def _seal(suite: int, key: bytes, nonce: bytes, aad: bytes, data: bytes) -> bytes:
    if suite in (0x1301, 0x1302):
        return AESGCM(key).encrypt(nonce, data, aad)
    if suite == 0x1303:
        return ChaCha20Poly1305(key).encrypt(nonce, data, aad)
    return AESCCM(key, tag_length=16 if suite == 0x1304 else 8).encrypt(nonce, data, aad)


@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303, 0x1304, 0x1305])
def test_record_layer_every_suite(suite: int) -> None:
    """Records sealed independently (cryptography AEAD, RFC 8446 5.3 nonce) open in order."""
    hash_name, key_len, iv_len = tls13.suite_params(suite) or ("", 0, 0)
    dec = tls13.HandshakeDecryptor(suite, b"\x42" * 32, b"\x01\x00\x00\x00\x02\x00\x00\x00")
    assert len(dec.server_write_key) == key_len
    assert len(dec.server_write_iv) == iv_len
    assert len(dec.server_handshake_traffic_secret) == hashlib.new(hash_name).digest_size
    messages = [
        (22, b"\x08\x00\x00\x02\x00\x00", 0),
        (22, b"\x0b" + bytes(300), 17),  # padded with zeros
        (21, b"\x02\x28", 0),  # an encrypted alert
    ]
    for seq, (ctype, content, pad) in enumerate(messages):
        nonce = (int.from_bytes(dec.server_write_iv, "big") ^ seq).to_bytes(iv_len, "big")
        inner = content + bytes([ctype]) + bytes(pad)
        tag_len = 8 if suite == 0x1305 else 16
        header = b"\x17\x03\x03" + (len(inner) + tag_len).to_bytes(2, "big")
        sealed = _seal(suite, dec.server_write_key, nonce, header, inner)
        assert dec.decrypt_record(header, sealed) == (ctype, content)
    assert dec.sequence_number == len(messages)


def test_all_padding_record_rejected() -> None:
    dec = tls13.HandshakeDecryptor(0x1301, b"\x42" * 32, b"")
    inner = bytes(10)
    header = b"\x17\x03\x03" + (len(inner) + 16).to_bytes(2, "big")
    sealed = AESGCM(dec.server_write_key).encrypt(dec.server_write_iv, inner, header)
    with pytest.raises(ValueError) as info:
        dec.decrypt_record(header, sealed)
    assert not isinstance(info.value, tls13.DecryptError)
