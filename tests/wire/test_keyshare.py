"""Key shares: every group round-trips against an independent server side.

The server side never goes through prober.wire.keyshare: ECDH uses
cryptography's key objects directly, FFDHE uses cryptography's DH with its own
key pair, and ML-KEM uses kyber-py's encapsulation.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import dh, ec, x448, x25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_parameters,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kyber_py.ml_kem import ML_KEM_512, ML_KEM_768, ML_KEM_1024

from prober.wire import keyshare as ks

# What a server does with one component of our share:
# (client share length, respond(client_part) -> (server_part, server_secret)).
Responder = tuple[int, Callable[[bytes], tuple[bytes, bytes]]]


def _x25519() -> Responder:
    def respond(client: bytes) -> tuple[bytes, bytes]:
        key = x25519.X25519PrivateKey.generate()
        peer = x25519.X25519PublicKey.from_public_bytes(client)
        return key.public_key().public_bytes_raw(), key.exchange(peer)

    return 32, respond


def _x448() -> Responder:
    def respond(client: bytes) -> tuple[bytes, bytes]:
        key = x448.X448PrivateKey.generate()
        peer = x448.X448PublicKey.from_public_bytes(client)
        return key.public_key().public_bytes_raw(), key.exchange(peer)

    return 56, respond


def _ecdh(curve: ec.EllipticCurve, length: int) -> Responder:
    def respond(client: bytes) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(curve)
        peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, client)
        share = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return share, key.exchange(ec.ECDH(), peer)

    return length, respond


def _ffdhe(group: int, length: int) -> Responder:
    def respond(client: bytes) -> tuple[bytes, bytes]:
        numbers = dh.DHParameterNumbers(ks.ffdhe_prime(group), 2)
        key = numbers.parameters().generate_private_key()
        peer = dh.DHPublicNumbers(int.from_bytes(client, "big"), numbers).public_key()
        share = key.public_key().public_numbers().y.to_bytes(length, "big")
        # RFC 8446 7.4.1: the secret keeps its leading zeros.
        return share, key.exchange(peer).rjust(length, b"\x00")

    return length, respond


def _mlkem(kem: object, ek_length: int) -> Responder:
    def respond(client: bytes) -> tuple[bytes, bytes]:
        secret, ciphertext = kem.encaps(client)  # type: ignore[attr-defined]
        return bytes(ciphertext), bytes(secret)

    return ek_length, respond


SERVERS: dict[int, list[Responder]] = {
    ks.X25519: [_x25519()],
    ks.X448: [_x448()],
    ks.SECP256R1: [_ecdh(ec.SECP256R1(), 65)],
    ks.SECP384R1: [_ecdh(ec.SECP384R1(), 97)],
    ks.SECP521R1: [_ecdh(ec.SECP521R1(), 133)],
    ks.BRAINPOOLP256R1TLS13: [_ecdh(ec.BrainpoolP256R1(), 65)],
    ks.BRAINPOOLP384R1TLS13: [_ecdh(ec.BrainpoolP384R1(), 97)],
    ks.BRAINPOOLP512R1TLS13: [_ecdh(ec.BrainpoolP512R1(), 129)],
    ks.FFDHE2048: [_ffdhe(ks.FFDHE2048, 256)],
    ks.FFDHE3072: [_ffdhe(ks.FFDHE3072, 384)],
    ks.FFDHE4096: [_ffdhe(ks.FFDHE4096, 512)],
    ks.FFDHE6144: [_ffdhe(ks.FFDHE6144, 768)],
    ks.FFDHE8192: [_ffdhe(ks.FFDHE8192, 1024)],
    ks.MLKEM512: [_mlkem(ML_KEM_512, 800)],
    ks.MLKEM768: [_mlkem(ML_KEM_768, 1184)],
    ks.MLKEM1024: [_mlkem(ML_KEM_1024, 1568)],
    # draft-kwiatkowski-tls-ecdhe-mlkem: ML-KEM first for X25519MLKEM768 only.
    ks.X25519MLKEM768: [_mlkem(ML_KEM_768, 1184), _x25519()],
    ks.SECP256R1MLKEM768: [_ecdh(ec.SECP256R1(), 65), _mlkem(ML_KEM_768, 1184)],
    ks.SECP384R1MLKEM1024: [_ecdh(ec.SECP384R1(), 97), _mlkem(ML_KEM_1024, 1568)],
}

EXPECTED_PUBLIC_LENGTH = {
    ks.X25519: 32,
    ks.X448: 56,
    ks.SECP256R1: 65,
    ks.SECP384R1: 97,
    ks.SECP521R1: 133,
    ks.BRAINPOOLP256R1TLS13: 65,
    ks.BRAINPOOLP384R1TLS13: 97,
    ks.BRAINPOOLP512R1TLS13: 129,
    ks.FFDHE2048: 256,
    ks.FFDHE3072: 384,
    ks.FFDHE4096: 512,
    ks.FFDHE6144: 768,
    ks.FFDHE8192: 1024,
    ks.MLKEM512: 800,
    ks.MLKEM768: 1184,
    ks.MLKEM1024: 1568,
    ks.X25519MLKEM768: 1216,
    ks.SECP256R1MLKEM768: 1249,
    ks.SECP384R1MLKEM1024: 1665,
}

EXPECTED_SERVER_LENGTH = {
    **EXPECTED_PUBLIC_LENGTH,
    ks.MLKEM512: 768,
    ks.MLKEM768: 1088,
    ks.X25519MLKEM768: 1088 + 32,
    ks.SECP256R1MLKEM768: 65 + 1088,
}

EXPECTED_SECRET_LENGTH = {
    ks.X25519: 32,
    ks.X448: 56,
    ks.SECP256R1: 32,
    ks.SECP384R1: 48,
    ks.SECP521R1: 66,
    ks.BRAINPOOLP256R1TLS13: 32,
    ks.BRAINPOOLP384R1TLS13: 48,
    ks.BRAINPOOLP512R1TLS13: 64,
    ks.FFDHE2048: 256,
    ks.FFDHE3072: 384,
    ks.FFDHE4096: 512,
    ks.FFDHE6144: 768,
    ks.FFDHE8192: 1024,
    ks.MLKEM512: 32,
    ks.MLKEM768: 32,
    ks.MLKEM1024: 32,
    ks.X25519MLKEM768: 64,
    ks.SECP256R1MLKEM768: 64,
    ks.SECP384R1MLKEM1024: 80,
}

ALL_GROUPS = sorted(SERVERS)


def server_response(group: int, client_public: bytes) -> tuple[bytes, bytes]:
    """Split our share per component, answer each, concatenate in the same order."""
    shares, secrets = [], []
    offset = 0
    for length, respond in SERVERS[group]:
        share, secret = respond(client_public[offset : offset + length])
        shares.append(share)
        secrets.append(secret)
        offset += length
    assert offset == len(client_public)
    return b"".join(shares), b"".join(secrets)


def test_supported_groups_covered() -> None:
    assert set(SERVERS) == ks.SUPPORTED_GROUPS
    assert set(EXPECTED_PUBLIC_LENGTH) == ks.SUPPORTED_GROUPS


@pytest.mark.parametrize("group", ALL_GROUPS, ids=lambda g: f"0x{g:04X}")
def test_round_trip(group: int) -> None:
    share = ks.generate(group)
    assert share.group == group
    server_share, server_secret = server_response(group, share.public)
    assert len(server_share) == share.server_share_length == EXPECTED_SERVER_LENGTH[group]
    secret = share.shared_secret(server_share)
    assert secret == server_secret
    assert len(secret) == EXPECTED_SECRET_LENGTH[group]


@pytest.mark.parametrize("group", ALL_GROUPS, ids=lambda g: f"0x{g:04X}")
def test_public_lengths(group: int) -> None:
    share = ks.generate(group)
    assert len(share.public) == EXPECTED_PUBLIC_LENGTH[group]
    assert ks.typical_share_length(group) == len(share.public)


def test_hybrid_component_order() -> None:
    # X25519MLKEM768: ek || x25519 from us, ct || x25519 back, secret ML-KEM first.
    share = ks.generate(ks.X25519MLKEM768)
    kem_secret, ciphertext = ML_KEM_768.encaps(share.public[:1184])
    server_x = x25519.X25519PrivateKey.generate()
    x_secret = server_x.exchange(x25519.X25519PublicKey.from_public_bytes(share.public[1184:]))
    secret = share.shared_secret(ciphertext + server_x.public_key().public_bytes_raw())
    assert secret == kem_secret + x_secret

    # SecP256r1MLKEM768: point || ek from us, point || ct back, secret ECDH first.
    share = ks.generate(ks.SECP256R1MLKEM768)
    assert share.public[0] == 0x04
    server_ec = ec.generate_private_key(ec.SECP256R1())
    ec_secret = server_ec.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), share.public[:65])
    )
    kem_secret, ciphertext = ML_KEM_768.encaps(share.public[65:])
    point = server_ec.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert share.shared_secret(point + ciphertext) == ec_secret + kem_secret


# ------------------------------------------------------------------ malformed shares


@pytest.mark.parametrize("group", ALL_GROUPS, ids=lambda g: f"0x{g:04X}")
def test_wrong_length_rejected(group: int) -> None:
    share = ks.generate(group)
    good, _ = server_response(group, share.public)
    for bad in (b"", good[:-1], good + b"\x00", good[:1]):
        with pytest.raises(ValueError):
            share.shared_secret(bad)


def test_x25519_low_order_point_rejected() -> None:
    # RFC 8446 7.4.2: an all-zero x25519 result must abort the handshake.
    share = ks.generate(ks.X25519)
    with pytest.raises(ValueError):
        share.shared_secret(bytes(32))
    hybrid = ks.generate(ks.X25519MLKEM768)
    good, _ = server_response(ks.X25519MLKEM768, hybrid.public)
    with pytest.raises(ValueError):
        hybrid.shared_secret(good[:1088] + bytes(32))


@pytest.mark.parametrize("group", [ks.SECP256R1, ks.SECP384R1, ks.SECP521R1])
def test_ec_point_not_on_curve_or_compressed(group: int) -> None:
    share = ks.generate(group)
    n = len(share.public)
    with pytest.raises(ValueError):
        share.shared_secret(b"\x04" + b"\x01" * (n - 1))
    good, _ = server_response(group, share.public)
    # Same length, but a compressed/hybrid format byte: TLS 1.3 forbids it.
    for prefix in (b"\x02", b"\x03", b"\x06"):
        with pytest.raises(ValueError):
            share.shared_secret(prefix + good[1:])


def test_hybrid_bad_ec_part_rejected() -> None:
    share = ks.generate(ks.SECP256R1MLKEM768)
    good, _ = server_response(ks.SECP256R1MLKEM768, share.public)
    with pytest.raises(ValueError):
        share.shared_secret(b"\x04" + b"\x01" * 64 + good[65:])


@pytest.mark.parametrize("group", [ks.FFDHE2048, ks.FFDHE3072])
def test_ffdhe_out_of_range(group: int) -> None:
    share = ks.generate(group)
    p = ks.ffdhe_prime(group)
    n = len(share.public)
    for y in (0, 1, p - 1, p, 2 ** (8 * n) - 1):
        with pytest.raises(ValueError):
            share.shared_secret(y.to_bytes(n, "big"))


def test_ffdhe_secret_left_padded() -> None:
    # A server value of 2 gives 2^x mod p = our own public value; any output
    # with leading zero bytes must keep them, so the length is always len(p).
    share = ks.generate(ks.FFDHE2048)
    secret = share.shared_secret((2).to_bytes(256, "big"))
    assert secret == share.public
    assert len(secret) == 256


@pytest.mark.parametrize("group", [ks.MLKEM768, ks.MLKEM1024])
def test_mlkem_wrong_ciphertext_length(group: int) -> None:
    share = ks.generate(group)
    with pytest.raises(ValueError):
        share.shared_secret(bytes(share.server_share_length - 1))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    group=st.sampled_from([ks.X25519, ks.X448, ks.SECP256R1, ks.FFDHE2048, ks.X25519MLKEM768]),
    data=st.data(),
)
def test_arbitrary_server_share_only_value_error(group: int, data: st.DataObject) -> None:
    """Whatever a server sends, the outcome is a secret or ValueError - never a crash."""
    share = ks.generate(group)
    n = share.server_share_length
    length = data.draw(st.sampled_from([0, 1, n - 1, n, n + 1]))
    blob = data.draw(st.binary(min_size=length, max_size=length))
    try:
        secret = share.shared_secret(blob)
    except ValueError:
        return
    assert len(secret) == EXPECTED_SECRET_LENGTH[group]


# ------------------------------------------------------------------ reuse and fresh


def test_reuse_by_default() -> None:
    for group in (ks.X25519, ks.X25519MLKEM768, ks.SECP256R1):
        assert ks.generate(group) is ks.generate(group)


def test_fresh_is_new_and_leaves_cache_alone() -> None:
    cached = ks.generate(ks.X25519MLKEM768)
    fresh = ks.generate(ks.X25519MLKEM768, fresh=True)
    assert fresh is not cached
    assert fresh.public != cached.public
    assert ks.generate(ks.X25519MLKEM768) is cached
    # The fresh pair is fully usable on its own.
    server_share, server_secret = server_response(ks.X25519MLKEM768, fresh.public)
    assert fresh.shared_secret(server_share) == server_secret
    assert cached.shared_secret(server_share) != server_secret


def test_unsupported_group() -> None:
    for group in (0x0A0A, 0x6399, 0x0015, 0xFFFF):
        with pytest.raises(ks.UnsupportedGroup):
            ks.generate(group)
    with pytest.raises(KeyError):
        ks.generate(0x0A0A, fresh=True)


def test_repr_does_not_dump_key_material() -> None:
    text = repr(ks.generate(ks.X25519MLKEM768))
    assert "0x11EC" in text
    assert "1216" in text
    assert len(text) < 80


# ------------------------------------------------------------------ placeholders


def test_placeholder_share() -> None:
    a = ks.placeholder_share(0x6399, 1216)
    b = ks.placeholder_share(0x6399, 1216)
    assert len(a) == len(b) == 1216
    assert a != b
    assert len(ks.placeholder_share(0x0A0A, 1)) == 1
    for bad in (0, -1, 0x10000):
        with pytest.raises(ValueError):
            ks.placeholder_share(0x6399, bad)


def test_typical_share_length() -> None:
    assert ks.typical_share_length(0x0A0A) == 1  # GREASE
    assert ks.typical_share_length(0xFAFA) == 1
    assert ks.typical_share_length(0x0A1A) is None  # not GREASE
    assert ks.typical_share_length(0x6399) == 1216  # X25519Kyber768Draft00
    assert ks.typical_share_length(0x639A) == 1249
    assert ks.typical_share_length(0x11EE) == 1249
    assert ks.typical_share_length(0x0015) == 57  # secp224r1
    assert ks.typical_share_length(0x0029) == 65  # curveSM2
    assert ks.typical_share_length(0xFF01) is None
    assert ks.typical_share_length(0x1234) is None


# ------------------------------------------------------------------ RFC 7919 primes

FFDHE2048_HEX = (
    "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695"
    "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A"
    "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935"
    "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A"
    "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4"
    "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61"
    "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005"
    "C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF"
)

FFDHE_BITS = {
    ks.FFDHE2048: 2048,
    ks.FFDHE3072: 3072,
    ks.FFDHE4096: 4096,
    ks.FFDHE6144: 6144,
    ks.FFDHE8192: 8192,
}


def test_ffdhe2048_prime_matches_rfc7919() -> None:
    assert ks.ffdhe_prime(ks.FFDHE2048) == int(FFDHE2048_HEX, 16)


@pytest.mark.parametrize("group", sorted(FFDHE_BITS), ids=lambda g: f"0x{g:04X}")
def test_ffdhe_prime_shape(group: int) -> None:
    p = ks.ffdhe_prime(group)
    bits = FFDHE_BITS[group]
    ones = (1 << 64) - 1
    assert p.bit_length() == bits
    # RFC 7919: the top and bottom 64 bits are all ones; the rest come from e.
    assert p >> (bits - 64) == ones
    assert p & ones == ones
    # Same digits of e as ffdhe2048 right below the top 64 bits.
    assert (p >> (bits - 128)) & ones == int(FFDHE2048_HEX[16:32], 16)


@pytest.mark.parametrize("group", [ks.FFDHE2048, ks.FFDHE3072])
def test_ffdhe_prime_is_probably_safe(group: int) -> None:
    # Fermat base 2 on p and q = (p-1)/2; the larger groups are too slow in Python.
    p = ks.ffdhe_prime(group)
    q = (p - 1) // 2
    assert pow(2, p - 1, p) == 1
    assert pow(3, q - 1, q) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")
@pytest.mark.parametrize("group", sorted(FFDHE_BITS), ids=lambda g: f"0x{g:04X}")
def test_ffdhe_prime_matches_openssl(group: int) -> None:
    name = f"group:ffdhe{FFDHE_BITS[group]}"
    proc = subprocess.run(
        ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", name],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.skip("openssl does not know the named ffdhe groups")
    params = load_pem_parameters(proc.stdout)
    assert isinstance(params, dh.DHParameters)
    assert params.parameter_numbers().p == ks.ffdhe_prime(group)
    assert params.parameter_numbers().g == 2


def test_ffdhe_prime_unknown_group() -> None:
    with pytest.raises(ks.UnsupportedGroup):
        ks.ffdhe_prime(ks.X25519)
