"""A throw-away PKI for the test peers: one CA and leaf certificates signed by it.

``make_pki(dir)`` writes PEM files into ``dir`` and returns a :class:`Pki` with their
paths.  Every leaf carries the same SANs (``localhost``, ``demo.test``, ``*.demo.test``,
``127.0.0.1``, ``192.0.2.2``, ``198.51.100.2``, ``203.0.113.2``) so any peer can be
reached by name or address.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DNS_NAMES: tuple[str, ...] = ("localhost", "demo.test", "*.demo.test")
# 192.0.2.2 as asked; .2 of the other documentation ranges too, since DropLab moves to
# 198.51.100.0/24 or 203.0.113.0/24 where the host already uses 192.0.2.0/24.
IP_ADDRESSES: tuple[str, ...] = ("127.0.0.1", "192.0.2.2", "198.51.100.2", "203.0.113.2")

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files of one test PKI (all ``Path`` objects)."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    rsa_cert: Path
    rsa_key: Path
    ecdsa_cert: Path
    ecdsa_key: Path
    ecdsa384_cert: Path | None = None
    ecdsa384_key: Path | None = None

    def cert_key(self, kind: str) -> tuple[Path, Path]:
        """(cert, key) for ``kind`` in ``rsa``, ``ecdsa``, ``ecdsa384``."""
        if kind == "rsa":
            return self.rsa_cert, self.rsa_key
        if kind == "ecdsa":
            return self.ecdsa_cert, self.ecdsa_key
        if kind == "ecdsa384" and self.ecdsa384_cert and self.ecdsa384_key:
            return self.ecdsa384_cert, self.ecdsa384_key
        raise ValueError(f"no certificate of kind {kind!r} in this PKI")


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "prober test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: _PrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, *certs: x509.Certificate) -> None:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: _PrivateKey,
    key: _PrivateKey,
    cn: str,
    now: _dt.datetime,
) -> x509.Certificate:
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES]
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,  # RSA key exchange (TLS_RSA_*) needs it
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def make_pki(dir: str | Path, *, ecdsa384: bool = False,
             now: _dt.datetime | None = None) -> Pki:
    """Create a CA (ECDSA P-256) and leaf certs (RSA 2048, ECDSA P-256, optionally
    ECDSA P-384) under ``dir``.  Leaf ``*_cert`` files hold leaf + CA (a chain).
    ``now``: the validity counts from it (default: now); two PKIs made with the same
    ``now`` have leaves that expire at the same second, with other keys."""
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    now = now or _dt.datetime.now(_dt.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("prober test CA"))
        .issuer_name(_name("prober test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(d / "ca.key", ca_key)
    _write_cert(d / "ca.pem", ca_cert)

    leaves: dict[str, tuple[Path, Path]] = {}
    specs: list[tuple[str, _PrivateKey]] = [
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ecdsa", ec.generate_private_key(ec.SECP256R1())),
    ]
    if ecdsa384:
        specs.append(("ecdsa384", ec.generate_private_key(ec.SECP384R1())))
    for kind, key in specs:
        cert = _leaf(ca_cert, ca_key, key, f"demo.test ({kind})", now)
        cert_path, key_path = d / f"{kind}.pem", d / f"{kind}.key"
        _write_key(key_path, key)
        _write_cert(cert_path, cert, ca_cert)
        leaves[kind] = (cert_path, key_path)

    p384 = leaves.get("ecdsa384")
    return Pki(
        dir=d,
        ca_cert=d / "ca.pem",
        ca_key=d / "ca.key",
        rsa_cert=leaves["rsa"][0],
        rsa_key=leaves["rsa"][1],
        ecdsa_cert=leaves["ecdsa"][0],
        ecdsa_key=leaves["ecdsa"][1],
        ecdsa384_cert=p384[0] if p384 else None,
        ecdsa384_key=p384[1] if p384 else None,
    )
