"""Facts about a certificate (key type and size, names, validity), cached by digest.

A run sees the same leaf thousands of times; parsing it once is enough.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any


def describe(der: bytes) -> dict[str, Any]:
    return dict(_describe(hashlib.sha256(der).hexdigest(), der))


@lru_cache(maxsize=256)
def _describe(digest: str, der: bytes) -> tuple[tuple[str, Any], ...]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    out: dict[str, Any] = {"sha256": digest}
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as e:
        out["error"] = f"unparsable certificate: {e}"
        return tuple(out.items())
    out["subject"] = cert.subject.rfc4514_string()
    out["issuer"] = cert.issuer.rfc4514_string()
    out["not_before"] = cert.not_valid_before_utc.isoformat()
    out["not_after"] = cert.not_valid_after_utc.isoformat()
    try:
        key = cert.public_key()
    except (ValueError, TypeError):
        key = None
    if isinstance(key, rsa.RSAPublicKey):
        out["key_type"], out["key_bits"] = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        out["key_type"], out["key_bits"] = "ECDSA", key.curve.key_size
        out["curve"] = key.curve.name
    elif isinstance(key, ed25519.Ed25519PublicKey):
        out["key_type"], out["key_bits"] = "Ed25519", 256
    elif isinstance(key, ed448.Ed448PublicKey):
        out["key_type"], out["key_bits"] = "Ed448", 456
    elif isinstance(key, dsa.DSAPublicKey):
        out["key_type"], out["key_bits"] = "DSA", key.key_size
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out["san"] = [str(n.value) for n in san][:20]
    except x509.ExtensionNotFound:
        out["san"] = []
    sig = cert.signature_algorithm_oid
    out["signature_algorithm"] = getattr(sig, "_name", sig.dotted_string)
    return tuple(out.items())
