"""Throwaway self-signed certificates for the servers prober runs itself (the demo's
backend, the capture listener) and for the test peers that need a leaf and no chain.

Nobody is meant to verify them: they exist so that a TLS server can finish a handshake.
They live in ``net/`` because only the servers here load them.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["rsa", "ecdsa"]
KEY_KINDS: tuple[KeyKind, ...] = ("rsa", "ecdsa")
# a clock a little behind ours (a VM, a container) still finds the certificate valid
_BACKDATE = _dt.timedelta(hours=1)


def throwaway_certificate(kind: KeyKind, *, common_name: str, names: Iterable[str] = (),
                          organization: str | None = None, days: int = 1,
                          server_auth: bool = False) -> tuple[bytes, bytes]:
    """(certificate PEM, PKCS#8 key PEM) of a fresh self-signed RSA 2048 or ECDSA P-256 leaf.

    ``names`` become the subjectAltName, each an IP address entry when it parses as one
    and a DNS name otherwise (duplicates and empty names dropped, order kept).
    ``server_auth`` marks it an end-entity server certificate (basicConstraints CA:FALSE,
    extendedKeyUsage serverAuth) for clients that check those even when they do not
    check the issuer.
    """
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unknown key kind {kind!r} (known: {', '.join(KEY_KINDS)})")
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attrs)
    now = _dt.datetime.now(_dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - _BACKDATE)
               .not_valid_after(now + _dt.timedelta(days=days)))
    sans = _general_names(names)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if server_auth:
        builder = (builder
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  critical=False))
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_pair(cert_pem: bytes, key_pem: bytes, cert_path: Path, key_path: Path) -> None:
    """Write a certificate and its key; the key file is private before it holds the key."""
    cert_path.write_bytes(cert_pem)
    key_path.touch(mode=0o600)
    key_path.chmod(0o600)  # touch keeps the mode of a file that already existed
    key_path.write_bytes(key_pem)


def _general_names(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in dict.fromkeys(n for n in names if n):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            # a certificate holds A-labels only
            out.append(x509.DNSName(n.encode("idna").decode("ascii")))
    return out
