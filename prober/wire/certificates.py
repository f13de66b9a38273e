"""Facts about a certificate (key type and size, names, validity), cached by digest.

A run sees the same leaf thousands of times; parsing it once is enough.

``describe`` never raises: the certificate comes from the server, and ``cryptography``
parses subject, issuer, extensions and keys lazily, raising whatever it meets
(ValueError, KeyError, UnsupportedAlgorithm, InvalidVersion, DuplicateExtension...)
on first access.  So every field is read here, at once, and what it returns holds only
plain values (str, int, bool, lists of str) that need no certificate object later.  A
certificate that fails anywhere is recorded as undecodable: its SHA-256, ``undecodable``
true, ``error_kind`` (the exception's class) and ``error``.
"""

from __future__ import annotations

import hashlib
import warnings
from functools import lru_cache
from typing import Any


def describe(der: bytes) -> dict[str, Any]:
    der = bytes(der)
    facts = _describe(hashlib.sha256(der).hexdigest(), der)
    # the cache keeps tuples; each caller gets lists of its own
    return {k: list(v) if isinstance(v, tuple) else v for k, v in facts}


@lru_cache(maxsize=256)
def _describe(digest: str, der: bytes) -> tuple[tuple[str, Any], ...]:
    try:
        with warnings.catch_warnings():
            # what cryptography warns about (a negative serial, a name attribute of the
            # wrong length) is the server's business: not a line on our stderr
            warnings.simplefilter("ignore")
            facts = _facts(der)
    except Exception as e:  # anything cryptography raises costs this certificate only
        return (("sha256", digest), ("undecodable", True), ("error_kind", type(e).__name__),
                ("error", f"unparsable certificate: {type(e).__name__}: {e}"))
    return (("sha256", digest), *facts)


def _facts(der: bytes) -> list[tuple[str, Any]]:
    """Every field, read eagerly; raises whatever the parser raises."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    cert = x509.load_der_x509_certificate(der)
    # read for their checks only (lazy in cryptography: a bad one raises on access)
    cert.version  # noqa: B018
    cert.serial_number  # noqa: B018
    out: list[tuple[str, Any]] = [
        ("subject", str(cert.subject.rfc4514_string())),
        ("issuer", str(cert.issuer.rfc4514_string())),
        ("not_before", cert.not_valid_before_utc.isoformat()),
        ("not_after", cert.not_valid_after_utc.isoformat()),
    ]
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        out += [("key_type", "RSA"), ("key_bits", int(key.key_size))]
    elif isinstance(key, ec.EllipticCurvePublicKey):
        out += [("key_type", "ECDSA"), ("key_bits", int(key.curve.key_size)),
                ("curve", str(key.curve.name))]
    elif isinstance(key, ed25519.Ed25519PublicKey):
        out += [("key_type", "Ed25519"), ("key_bits", 256)]
    elif isinstance(key, ed448.Ed448PublicKey):
        out += [("key_type", "Ed448"), ("key_bits", 456)]
    elif isinstance(key, dsa.DSAPublicKey):
        out += [("key_type", "DSA"), ("key_bits", int(key.key_size))]
    extensions = cert.extensions  # parses every extension
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n.value) for n in san)[:20]
    except x509.ExtensionNotFound:
        names = ()
    out.append(("san", names))
    sig = cert.signature_algorithm_oid
    out.append(("signature_algorithm", str(getattr(sig, "_name", sig.dotted_string))))
    return out
