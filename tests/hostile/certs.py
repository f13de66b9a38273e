"""A real certificate, and the same certificate broken in the ways servers break them.

Every broken variant is still a DER SEQUENCE that a TLS stack happily forwards; what
breaks is what ``cryptography`` finds when (often lazily) it parses a field.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from prober.net.certs import throwaway_certificate
from tests.hostile import der


@cache
def good_certificate() -> bytes:
    """A self-signed ECDSA P-256 leaf for localhost, as DER (subjectAltName its only
    extension: the mutations below find it first)."""
    pem, _key = throwaway_certificate("ecdsa", common_name="hostile test peer",
                                      names=["localhost"], days=30)
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


# TBSCertificate fields by position (with the explicit [0] version present)
VERSION, SERIAL, SIGNATURE, ISSUER, VALIDITY, SUBJECT, SPKI, EXTENSIONS = range(8)


def _mutated(change: Callable[[list[der.Node]], None]) -> bytes:
    cert = der.parse(good_certificate())
    certificate_fields = cert[1]
    assert isinstance(certificate_fields, list)
    tbs = certificate_fields[0][1]
    assert isinstance(tbs, list)
    change(tbs)
    return der.encode(cert)


def _kids(node: der.Node) -> list[der.Node]:
    value = node[1]
    assert isinstance(value, list)
    return value


def bad_version() -> bytes:
    """version [0] EXPLICIT INTEGER 7 (only v1..v3 exist): InvalidVersion."""
    def change(tbs: list[der.Node]) -> None:
        tbs[VERSION] = (der.CONTEXT_0, [(der.INTEGER, b"\x07")])
    return _mutated(change)


def unknown_key_algorithm() -> bytes:
    """SubjectPublicKeyInfo with an algorithm OID nobody knows."""
    def change(tbs: list[der.Node]) -> None:
        algorithm = _kids(tbs[SPKI])[0]
        _kids(algorithm)[:] = [(der.OID, der.oid("1.3.6.1.4.1.99999.1"))]
    return _mutated(change)


def unknown_curve() -> bytes:
    """An EC key on a curve OID nobody knows: UnsupportedAlgorithm."""
    def change(tbs: list[der.Node]) -> None:
        algorithm = _kids(tbs[SPKI])[0]
        _kids(algorithm)[1] = (der.OID, der.oid("1.3.132.0.99"))
    return _mutated(change)


def truncated_extension() -> bytes:
    """The subjectAltName extension's value cut short by three bytes."""
    def change(tbs: list[der.Node]) -> None:
        extensions = _kids(_kids(tbs[EXTENSIONS])[0])
        san = _kids(extensions[0])
        value = san[-1][1]
        assert isinstance(value, bytes)
        san[-1] = (der.OCTET_STRING, value[:-3])
    return _mutated(change)


def duplicate_extension() -> bytes:
    """subjectAltName twice: DuplicateExtension."""
    def change(tbs: list[der.Node]) -> None:
        extensions = _kids(_kids(tbs[EXTENSIONS])[0])
        extensions.append(extensions[0])
    return _mutated(change)


def garbage_subject() -> bytes:
    """A subject commonName whose UTF8String is not UTF-8."""
    def change(tbs: list[der.Node]) -> None:
        atv: der.Node = (der.SEQUENCE, [(der.OID, der.oid("2.5.4.3")),
                                        (der.UTF8_STRING, b"\xff\xfe\x80")])
        tbs[SUBJECT] = (der.SEQUENCE, [(der.SET, [atv])])
    return _mutated(change)


def not_a_certificate() -> bytes:
    return b"\x30\x03\x02\x01\x01"


# name -> (DER, the error_kind describe() must report)
BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    "bad-version": (bad_version, "InvalidVersion"),
    "unknown-key-algorithm": (unknown_key_algorithm, "ValueError"),
    "unknown-curve": (unknown_curve, "UnsupportedAlgorithm"),
    "truncated-extension": (truncated_extension, "ValueError"),
    "duplicate-extension": (duplicate_extension, "DuplicateExtension"),
    "garbage-subject": (garbage_subject, "ValueError"),
    "not-a-certificate": (not_a_certificate, "ValueError"),
}
