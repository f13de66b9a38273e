"""A recorded server flight, and what replaying it needs: the exact ClientHellos sent,
the private keys of their key shares, and every byte the server sent back.

The prober normally makes its key pairs at random; a recording keeps the private keys it
used (:func:`recorded_keys` makes prober's hello builder hand them out), so the flight
can be decrypted again, its plaintext mutated and sealed again with the very keys the
server used.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from prober.wire import keyshare
from prober.wire.clienthello import (
    BuiltHello,
    ClientHello,
    decode_client_hello,
    decode_key_share_client,
    spec_from_hello,
)
from prober.wire.constants import ExtensionType
from prober.wire.keyshare import KeyShare

CORPUS = Path(__file__).resolve().parent / "corpus"
SCHEMA = "prober.fuzz.flight/1"


# -- key agreements from known private keys (the same checks as prober's own) -------------


class _KnownX25519:
    server_share_length = 32

    def __init__(self, private: bytes) -> None:
        self._key = x25519.X25519PrivateKey.from_private_bytes(private)
        self.public = self._key.public_key().public_bytes_raw()

    def agree(self, server_share: bytes) -> bytes:
        if len(server_share) != 32:
            raise ValueError(f"x25519 share must be 32 bytes, got {len(server_share)}")
        return self._key.exchange(x25519.X25519PublicKey.from_public_bytes(server_share))


class _KnownX448:
    server_share_length = 56

    def __init__(self, private: bytes) -> None:
        self._key = x448.X448PrivateKey.from_private_bytes(private)
        self.public = self._key.public_key().public_bytes_raw()

    def agree(self, server_share: bytes) -> bytes:
        if len(server_share) != 56:
            raise ValueError(f"x448 share must be 56 bytes, got {len(server_share)}")
        return self._key.exchange(x448.X448PublicKey.from_public_bytes(server_share))


_CURVES: dict[int, ec.EllipticCurve] = {keyshare.SECP256R1: ec.SECP256R1(),
                                        keyshare.SECP384R1: ec.SECP384R1(),
                                        keyshare.SECP521R1: ec.SECP521R1()}


class _KnownEcdh:
    def __init__(self, curve: ec.EllipticCurve, private: bytes) -> None:
        self._curve = curve
        self._key = ec.derive_private_key(int.from_bytes(private, "big"), curve)
        self.public = self._key.public_key().public_bytes(Encoding.X962,
                                                          PublicFormat.UncompressedPoint)
        self.server_share_length = len(self.public)

    def agree(self, server_share: bytes) -> bytes:
        if len(server_share) != self.server_share_length:
            raise ValueError(f"share must be {self.server_share_length} bytes")
        peer = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, server_share)
        return self._key.exchange(ec.ECDH(), peer)


@functools.lru_cache(maxsize=64)
def known_key(group: int, private: bytes) -> KeyShare:
    """The key pair of ``private`` (one object per key: a KeyShare holds no state)."""
    if group == keyshare.X25519:
        return KeyShare(group, _KnownX25519(private))
    if group == keyshare.X448:
        return KeyShare(group, _KnownX448(private))
    return KeyShare(group, _KnownEcdh(_CURVES[group], private))


def new_private(group: int) -> bytes:
    """A fresh private key for ``group`` in the form :func:`known_key` reads."""
    if group == keyshare.X25519:
        return x25519.X25519PrivateKey.generate().private_bytes_raw()
    if group == keyshare.X448:
        return x448.X448PrivateKey.generate().private_bytes_raw()
    curve = _CURVES[group]
    value = ec.generate_private_key(curve).private_numbers().private_value
    return value.to_bytes((curve.key_size + 7) // 8, "big")


KNOWN_GROUPS = frozenset({keyshare.X25519, keyshare.X448, *_CURVES})


@contextlib.contextmanager
def recorded_keys(keys: dict[int, bytes]) -> Iterator[dict[int, KeyShare]]:
    """Within the block, prober's hello builder hands out these key pairs for their groups
    (its per-process key cache holds them), as it did when the flight was recorded; the
    cache is as it was afterwards."""
    cache = keyshare._CACHE
    saved = {g: cache[g] for g in keys if g in cache}
    shares = {g: known_key(g, k) for g, k in keys.items()}
    cache.update(shares)
    try:
        yield shares
    finally:
        for g in keys:
            cache.pop(g, None)
        cache.update(saved)


# -- the recording --------------------------------------------------------------------


@dataclass
class Recording:
    name: str
    how: str  # the server and its options
    profile: str  # the profile whose hello was sent
    sni: str | None
    record_version: int
    hellos: list[bytes]  # handshake messages sent: the hello, and the one after an HRR
    keys: dict[int, bytes]  # group -> private key of every share sent
    server: bytes  # every byte the server sent, in order
    expect: dict[str, Any] = field(default_factory=dict)  # what the reader made of it

    def built(self) -> BuiltHello:
        """The first hello as the reader needs it; call inside :func:`recorded_keys`
        (the reader builds the second hello after an HRR from the same keys)."""
        hello = decode_client_hello(self.hellos[0])
        spec = spec_from_hello(hello, self.record_version)
        ks = hello.extension(ExtensionType.KEY_SHARE)
        groups = tuple(g for g, _ in decode_key_share_client(ks)) if ks is not None else ()
        keys = {g: keyshare.generate(g) for g in groups if g in self.keys}
        return BuiltHello(spec, hello, self.hellos[0], keys, self.sni, groups)

    @property
    def first_hello(self) -> ClientHello:
        return decode_client_hello(self.hellos[0])

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "name": self.name, "how": self.how, "profile": self.profile,
                "sni": self.sni, "record_version": self.record_version,
                "hellos": [h.hex() for h in self.hellos],
                "keys": {f"0x{g:04x}": k.hex() for g, k in sorted(self.keys.items())},
                "server": self.server.hex(), "expect": self.expect}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Recording:
        assert d["schema"] == SCHEMA, d.get("schema")
        return cls(name=d["name"], how=d["how"], profile=d["profile"], sni=d["sni"],
                   record_version=int(d["record_version"]),
                   hellos=[bytes.fromhex(h) for h in d["hellos"]],
                   keys={int(g, 16): bytes.fromhex(k) for g, k in d["keys"].items()},
                   server=bytes.fromhex(d["server"]), expect=dict(d["expect"]))


def load_corpus(directory: Path = CORPUS) -> list[Recording]:
    return [Recording.from_json(json.loads(p.read_text()))
            for p in sorted(directory.glob("*.json"))]
