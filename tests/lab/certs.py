"""Certificates of the lab: one CA for the real servers, another one for the
intercepting proxy, and a leaf per server so every answer says who sent it.

``tests.peers.pki.make_pki`` gives one leaf per key type for the whole test run; the lab
needs to tell servers apart by certificate (the two backends of a balancer, the real
server versus the interceptor), so it issues a leaf per server with the server's name
in the CN.  Keys are made once per key type and reused by every leaf: generating RSA
keys is the slow part, and distinct keys add nothing to what the lab shows.

The leaves come out as :class:`tests.peers.pki.Pki` objects, which is what
:class:`tests.peers.NginxServer` takes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.peers.pki import Pki

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

LAB_DOMAIN = "lab.test"  # RFC 6761 reserves .test: these names never leave the machine


def _name(org: str, cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: PrivateKey) -> None:
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))


@dataclass
class LabCA:
    """A CA that issues leaves for the lab names and addresses."""

    dir: Path
    org: str
    cn: str
    ip_addresses: tuple[str, ...]
    key: ec.EllipticCurvePrivateKey = field(init=False)
    cert: x509.Certificate = field(init=False)
    _leaf_keys: dict[str, PrivateKey] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = _name(self.org, self.cn)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def cert_path(self) -> Path:
        return self.dir / "ca.pem"

    def _key(self, kind: str) -> PrivateKey:
        if kind not in self._leaf_keys:
            self._leaf_keys[kind] = (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                if kind == "rsa" else ec.generate_private_key(ec.SECP256R1()))
        return self._leaf_keys[kind]

    def leaf(self, label: str, kind: str, *, extra_names: int = 0,
             expired: bool = False) -> tuple[Path, Path]:
        """(chain PEM, key PEM) for a leaf ``CN=<label>.lab.test`` valid for every lab
        name (``*.lab.test``) and address; ``extra_names`` more DNS names make it as big
        as the multi-name certificates real sites send."""
        key = self._key(kind)
        now = dt.datetime.now(dt.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(LAB_DOMAIN),
                                        x509.DNSName(f"*.{LAB_DOMAIN}")]
        sans += [x509.DNSName(f"www{i}.{label}.{LAB_DOMAIN}") for i in range(extra_names)]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in self.ip_addresses]
        cert = (
            x509.CertificateBuilder().subject_name(_name(self.org, f"{label}.{LAB_DOMAIN}"))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            # an expired leaf ended yesterday (a backend that missed its renewal)
            .not_valid_before(now - dt.timedelta(days=31 if expired else 1))
            .not_valid_after(now + dt.timedelta(days=-1 if expired else 30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = self.dir / f"{label}-{kind}.pem"
        key_path = self.dir / f"{label}-{kind}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                              + self.cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path

    def pki(self, label: str, *, expired: bool = False) -> Pki:
        """RSA and ECDSA leaves for ``label``, in the shape NginxServer takes."""
        rsa_cert, rsa_key = self.leaf(label, "rsa", expired=expired)
        ec_cert, ec_key = self.leaf(label, "ecdsa", expired=expired)
        ca_key = self.dir / "ca.key"
        if not ca_key.exists():
            _write_key(ca_key, self.key)
        return Pki(dir=self.dir, ca_cert=self.cert_path, ca_key=ca_key, rsa_cert=rsa_cert,
                   rsa_key=rsa_key, ecdsa_cert=ec_cert, ecdsa_key=ec_key)
