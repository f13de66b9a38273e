"""Client key pairs for the TLS 1.3 ``key_share`` extension.

Sans-I/O: everything here maps bytes to bytes. A :class:`KeyShare` carries the
``key_exchange`` bytes exactly as they go into a ClientHello ``KeyShareEntry``
and computes the shared secret from the server's ``key_exchange`` bytes, which
is the IKM of the TLS 1.3 handshake secret (RFC 8446 section 7.1).

Wire formats (client share / server share / shared secret):

* x25519, x448: RFC 7748 u-coordinates; secret = raw X25519/X448 output.
* secp256r1/384r1/521r1, brainpoolP*r1tls13: uncompressed X9.62 points
  (RFC 8446 4.2.8.2, RFC 8734); secret = x coordinate, field-size bytes.
* ffdhe2048..8192: big-endian public value left-padded to the prime length
  (RFC 8446 4.2.8.1); secret likewise left-padded (RFC 8446 7.4.1).
* MLKEM512/768/1024: FIPS 203 encapsulation key / ciphertext / shared key
  (draft-connolly-tls-mlkem-key-agreement).
* Hybrids (draft-kwiatkowski-tls-ecdhe-mlkem, now draft-ietf-tls-ecdhe-mlkem):
  each of the three values is the concatenation of its two components in the
  same order.  X25519MLKEM768 puts ML-KEM first (so the FIPS-approved secret
  leads the HKDF input; X25519 is not approved), while SecP256r1MLKEM768 and
  SecP384r1MLKEM1024 put the (approved) ECDH part first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import dh, ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "BRAINPOOLP256R1TLS13",
    "BRAINPOOLP384R1TLS13",
    "BRAINPOOLP512R1TLS13",
    "FFDHE2048",
    "FFDHE3072",
    "FFDHE4096",
    "FFDHE6144",
    "FFDHE8192",
    "MLKEM512",
    "MLKEM768",
    "MLKEM1024",
    "SECP256R1",
    "SECP256R1MLKEM768",
    "SECP384R1",
    "SECP384R1MLKEM1024",
    "SECP521R1",
    "SUPPORTED_GROUPS",
    "X448",
    "X25519",
    "X25519MLKEM768",
    "KeyShare",
    "UnsupportedGroup",
    "ffdhe_prime",
    "generate",
    "placeholder_share",
    "typical_share_length",
]

SECP256R1 = 0x0017
SECP384R1 = 0x0018
SECP521R1 = 0x0019
X25519 = 0x001D
X448 = 0x001E
BRAINPOOLP256R1TLS13 = 0x001F
BRAINPOOLP384R1TLS13 = 0x0020
BRAINPOOLP512R1TLS13 = 0x0021
FFDHE2048 = 0x0100
FFDHE3072 = 0x0101
FFDHE4096 = 0x0102
FFDHE6144 = 0x0103
FFDHE8192 = 0x0104
MLKEM512 = 0x0200
MLKEM768 = 0x0201
MLKEM1024 = 0x0202
SECP256R1MLKEM768 = 0x11EB
X25519MLKEM768 = 0x11EC
SECP384R1MLKEM1024 = 0x11ED


class UnsupportedGroup(KeyError):
    """No key pair can be computed for this named group (offer a placeholder instead)."""


class _Agreement(Protocol):
    """One key-agreement component: what we send, and how to finish it."""

    @property
    def public(self) -> bytes: ...

    @property
    def server_share_length(self) -> int: ...

    def agree(self, server_share: bytes) -> bytes: ...


# --------------------------------------------------------------------------- ECDH


class _X25519:
    server_share_length = 32

    def __init__(self) -> None:
        self._key = x25519.X25519PrivateKey.generate()
        self.public = self._key.public_key().public_bytes_raw()

    def agree(self, server_share: bytes) -> bytes:
        if len(server_share) != self.server_share_length:
            raise ValueError(f"x25519 share must be 32 bytes, got {len(server_share)}")
        # cryptography raises ValueError itself when the result is all zeros
        # (a low-order point), which RFC 8446 7.4.2 requires us to reject.
        return self._key.exchange(x25519.X25519PublicKey.from_public_bytes(server_share))


class _X448:
    server_share_length = 56

    def __init__(self) -> None:
        self._key = x448.X448PrivateKey.generate()
        self.public = self._key.public_key().public_bytes_raw()

    def agree(self, server_share: bytes) -> bytes:
        if len(server_share) != self.server_share_length:
            raise ValueError(f"x448 share must be 56 bytes, got {len(server_share)}")
        return self._key.exchange(x448.X448PublicKey.from_public_bytes(server_share))


class _Ecdh:
    """ECDH over a short-Weierstrass curve with uncompressed points."""

    def __init__(self, curve: ec.EllipticCurve) -> None:
        self._curve = curve
        self._key = ec.generate_private_key(curve)
        self.public = self._key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        self.server_share_length = len(self.public)

    def agree(self, server_share: bytes) -> bytes:
        # TLS 1.3 only allows the uncompressed form (RFC 8446 4.2.8.2), so a
        # compressed or hybrid point is a server bug worth surfacing, even
        # though cryptography would happily decode it.
        if len(server_share) != self.server_share_length or server_share[:1] != b"\x04":
            raise ValueError(
                f"{self._curve.name} share must be an uncompressed point of "
                f"{self.server_share_length} bytes"
            )
        # from_encoded_point checks the point is on the curve (invalid-curve attacks
        # are moot for ephemeral keys, but a bad point means a broken server).
        peer = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, server_share)
        return self._key.exchange(ec.ECDH(), peer)


# --------------------------------------------------------------------------- FFDHE

# RFC 7919 Appendix A defines every prime as
#   p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1
# so we rebuild them from e and the per-group X instead of embedding ~6 KB of
# hex that nobody could review by eye; tests pin the result.
_FFDHE_X: dict[int, tuple[int, int]] = {
    FFDHE2048: (2048, 560316),
    FFDHE3072: (3072, 2625351),
    FFDHE4096: (4096, 5736041),
    FFDHE6144: (6144, 15705020),
    FFDHE8192: (8192, 10965728),
}
_FFDHE_PRIMES: dict[int, int] = {}

def _e_times_2_to(bits: int) -> int:
    """floor(e * 2**bits), from the series sum(1/k!) in fixed point."""
    guard = 64  # truncation in each term can only lose < 1 ulp per term
    term = 1 << (bits + guard)
    total = 0
    k = 0
    while term:
        total += term
        k += 1
        term //= k
    return total >> guard


def ffdhe_prime(group: int) -> int:
    """The RFC 7919 safe prime for an ffdhe group (generator is 2)."""
    if group not in _FFDHE_X:
        raise UnsupportedGroup(group)
    prime = _FFDHE_PRIMES.get(group)
    if prime is None:
        b, x = _FFDHE_X[group]
        prime = (1 << b) - (1 << (b - 64)) + (_e_times_2_to(b - 130) + x) * (1 << 64) - 1
        _FFDHE_PRIMES[group] = prime
    return prime


# One DHParameters object per group: building it is cheap, but every probe of a scan
# that offers ffdhe would otherwise repeat it.
_FFDHE_PARAMETERS: dict[int, dh.DHParameters] = {}


def _ffdhe_parameters(group: int) -> dh.DHParameters:
    params = _FFDHE_PARAMETERS.get(group)
    if params is None:
        params = dh.DHParameterNumbers(ffdhe_prime(group), 2).parameters()
        _FFDHE_PARAMETERS[group] = params
    return params


class _Ffdhe:
    # Keygen and agreement run in OpenSSL through cryptography: pure-Python pow() cost
    # ~0.1-0.3 s per ffdhe6144/8192 pair, paid on the scan's critical path after every
    # HelloRetryRequest to those groups. OpenSSL recognises the RFC 7919 primes and uses
    # the short exponents of RFC 7919 Appendix A (225-400 bits) itself.
    def __init__(self, group: int) -> None:
        self._p = ffdhe_prime(group)
        self.server_share_length = (self._p.bit_length() + 7) // 8
        self._params = _ffdhe_parameters(group)
        self._key = self._params.generate_private_key()
        y = self._key.public_key().public_numbers().y
        self.public = y.to_bytes(self.server_share_length, "big")

    def agree(self, server_share: bytes) -> bytes:
        if len(server_share) != self.server_share_length:
            # RFC 8446 4.2.8.1: the peer MUST left-pad to the prime length.
            raise ValueError(
                f"ffdhe share must be {self.server_share_length} bytes, got {len(server_share)}"
            )
        y = int.from_bytes(server_share, "big")
        # 1 and p-1 generate subgroups of order 1 and 2 and would leak or fix the secret.
        if not 1 < y < self._p - 1:
            raise ValueError("ffdhe share out of range (must satisfy 1 < y < p-1)")
        try:
            peer = dh.DHPublicNumbers(y, self._params.parameter_numbers()).public_key()
            z = int.from_bytes(self._key.exchange(peer), "big")
        except ValueError:
            # OpenSSL may refuse a value the range check above lets through; compute it
            # in Python as before rather than turn such a share into a new failure kind
            z = pow(y, self._key.private_numbers().x, self._p)
        if z == 1:
            raise ValueError("ffdhe shared secret is 1")
        # RFC 8446 7.4.1: the secret keeps its leading zeros (padded to the prime length)
        return z.to_bytes(self.server_share_length, "big")


# --------------------------------------------------------------------------- ML-KEM

_MLKEM_CIPHERTEXT = {512: 768, 768: 1088, 1024: 1568}


def _mlkem(level: int) -> Any:
    # kyber_py is pure Python and only needed for PQ groups; import it on first use.
    from kyber_py.ml_kem import ML_KEM_512, ML_KEM_768, ML_KEM_1024

    return {512: ML_KEM_512, 768: ML_KEM_768, 1024: ML_KEM_1024}[level]


class _MlKem:
    def __init__(self, level: int) -> None:
        self._level = level
        self._kem = _mlkem(level)
        ek, dk = self._kem.keygen()
        self.public: bytes = ek
        self._dk: bytes = dk
        self.server_share_length = _MLKEM_CIPHERTEXT[level]

    def agree(self, server_share: bytes) -> bytes:
        if len(server_share) != self.server_share_length:
            raise ValueError(
                f"ML-KEM-{self._level} ciphertext must be {self.server_share_length} bytes, "
                f"got {len(server_share)}"
            )
        # A well-sized but corrupted ciphertext does not fail here: ML-KEM's
        # implicit rejection yields an unrelated key, and the handshake then
        # fails at record decryption, which is where a prober will notice.
        secret: bytes = self._kem.decaps(self._dk, server_share)
        return secret


# --------------------------------------------------------------------------- hybrids


class _Hybrid:
    """Concatenation of components: shares and secrets all in the same order."""

    def __init__(self, parts: tuple[_Agreement, ...]) -> None:
        self._parts = parts
        self.public = b"".join(part.public for part in parts)
        self.server_share_length = sum(part.server_share_length for part in parts)

    def agree(self, server_share: bytes) -> bytes:
        if len(server_share) != self.server_share_length:
            raise ValueError(
                f"hybrid share must be {self.server_share_length} bytes, got {len(server_share)}"
            )
        out = []
        offset = 0
        for part in self._parts:
            end = offset + part.server_share_length
            out.append(part.agree(server_share[offset:end]))
            offset = end
        return b"".join(out)


_FACTORIES: dict[int, Callable[[], _Agreement]] = {
    X25519: _X25519,
    X448: _X448,
    SECP256R1: lambda: _Ecdh(ec.SECP256R1()),
    SECP384R1: lambda: _Ecdh(ec.SECP384R1()),
    SECP521R1: lambda: _Ecdh(ec.SECP521R1()),
    BRAINPOOLP256R1TLS13: lambda: _Ecdh(ec.BrainpoolP256R1()),
    BRAINPOOLP384R1TLS13: lambda: _Ecdh(ec.BrainpoolP384R1()),
    BRAINPOOLP512R1TLS13: lambda: _Ecdh(ec.BrainpoolP512R1()),
    FFDHE2048: lambda: _Ffdhe(FFDHE2048),
    FFDHE3072: lambda: _Ffdhe(FFDHE3072),
    FFDHE4096: lambda: _Ffdhe(FFDHE4096),
    FFDHE6144: lambda: _Ffdhe(FFDHE6144),
    FFDHE8192: lambda: _Ffdhe(FFDHE8192),
    MLKEM512: lambda: _MlKem(512),
    MLKEM768: lambda: _MlKem(768),
    MLKEM1024: lambda: _MlKem(1024),
    X25519MLKEM768: lambda: _Hybrid((_MlKem(768), _X25519())),
    SECP256R1MLKEM768: lambda: _Hybrid((_Ecdh(ec.SECP256R1()), _MlKem(768))),
    SECP384R1MLKEM1024: lambda: _Hybrid((_Ecdh(ec.SECP384R1()), _MlKem(1024))),
}

SUPPORTED_GROUPS: frozenset[int] = frozenset(_FACTORIES)


class KeyShare:
    """A client key pair for one named group.

    ``public`` is the ``key_exchange`` field of the ClientHello entry;
    ``server_share_length`` is the only length a valid ServerHello share can have.
    """

    __slots__ = ("_agreement", "group", "public", "server_share_length")

    def __init__(self, group: int, agreement: _Agreement) -> None:
        self.group = group
        self.public = agreement.public
        self.server_share_length = agreement.server_share_length
        self._agreement = agreement

    def shared_secret(self, server_share: bytes) -> bytes:
        """Finish the exchange with the server's ``key_exchange`` bytes.

        Raises ValueError when the share is malformed (wrong length, point not
        on the curve, out-of-range DH value, low-order x25519 point, ...).
        """
        return self._agreement.agree(bytes(server_share))

    def __repr__(self) -> str:
        # The public value can be kilobytes (ML-KEM); its length says enough.
        return f"KeyShare(group=0x{self.group:04X}, public=<{len(self.public)} bytes>)"


_CACHE: dict[int, KeyShare] = {}


def generate(group: int, *, fresh: bool = False) -> KeyShare:
    """A key pair for ``group``.

    By default one pair per group is made per process and handed out again:
    a prober sends thousands of hellos, ML-KEM keygen is milliseconds in pure
    Python, and forward secrecy of probe connections protects nothing.
    ``fresh=True`` returns a brand-new pair and leaves the shared one alone
    (for probes that must show distinct shares, e.g. across a HelloRetryRequest).
    """
    factory = _FACTORIES.get(group)
    if factory is None:
        raise UnsupportedGroup(group)
    if fresh:
        return KeyShare(group, factory())
    cached = _CACHE.get(group)
    if cached is not None:
        return cached
    # Two threads may race to build the first pair; setdefault keeps exactly
    # one, so every caller still sees the same share afterwards.
    return _CACHE.setdefault(group, KeyShare(group, factory()))


def placeholder_share(group: int, length: int) -> bytes:
    """Random ``key_exchange`` bytes for a group we cannot compute.

    Lets a hello offer the group on the wire; if the server picks it the
    handshake cannot be completed, but the choice itself is the observation.
    """
    # KeyShareEntry.key_exchange is opaque<1..2^16-1>.
    if not 1 <= length <= 0xFFFF:
        raise ValueError(f"key_exchange length must be 1..65535, got {length}")
    return os.urandom(length)


def _point(field_bits: int) -> int:
    return 1 + 2 * ((field_bits + 7) // 8)


_TYPICAL_LENGTHS: dict[int, int] = {
    # Binary and small prime curves: not allowed in TLS 1.3 but still offered
    # by some stacks; uncompressed points.
    0x0001: _point(163), 0x0002: _point(163), 0x0003: _point(163),
    0x0004: _point(193), 0x0005: _point(193),
    0x0006: _point(233), 0x0007: _point(233), 0x0008: _point(239),
    0x0009: _point(283), 0x000A: _point(283),
    0x000B: _point(409), 0x000C: _point(409),
    0x000D: _point(571), 0x000E: _point(571),
    0x000F: _point(160), 0x0010: _point(160), 0x0011: _point(160),
    0x0012: _point(192), 0x0013: _point(192),
    0x0014: _point(224), 0x0015: _point(224), 0x0016: _point(256),
    SECP256R1: _point(256), SECP384R1: _point(384), SECP521R1: _point(521),
    0x001A: _point(256), 0x001B: _point(384), 0x001C: _point(512),
    X25519: 32, X448: 56,
    BRAINPOOLP256R1TLS13: _point(256),
    BRAINPOOLP384R1TLS13: _point(384),
    BRAINPOOLP512R1TLS13: _point(512),
    # GOST curves in TLS 1.3 (RFC 9367) send X || Y without a format byte.
    0x0022: 64, 0x0023: 64, 0x0024: 64, 0x0025: 64,
    0x0026: 128, 0x0027: 128, 0x0028: 128,
    0x0029: _point(256),  # curveSM2 (RFC 8998)
    FFDHE2048: 256, FFDHE3072: 384, FFDHE4096: 512, FFDHE6144: 768, FFDHE8192: 1024,
    MLKEM512: 800, MLKEM768: 1184, MLKEM1024: 1568,
    SECP256R1MLKEM768: 65 + 1184,
    X25519MLKEM768: 1184 + 32,
    SECP384R1MLKEM1024: 97 + 1568,
    0x11EE: 65 + 1184,  # curveSM2MLKEM768
    # Pre-standard Kyber hybrids, still seen on older servers: X25519/P-256 first.
    0x6399: 32 + 1184,  # X25519Kyber768Draft00
    0x639A: 65 + 1184,  # SecP256r1Kyber768Draft00
}  # fmt: skip


def typical_share_length(group: int) -> int | None:
    """The client ``key_exchange`` length normally sent for ``group``, if known.

    GREASE groups (RFC 8701) get 1 byte, as browsers send; unknown groups None.
    """
    if group & 0x0F0F == 0x0A0A and group >> 8 == group & 0xFF:
        return 1
    return _TYPICAL_LENGTHS.get(group)
