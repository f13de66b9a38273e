"""ALPN on both sides of the hostile harness: the extension a server sends, and a TLS 1.3
profile (x25519, TLS_AES_128_GCM_SHA256, the harness's parameters) that offers exactly
the protocol names a test gives, byte for byte."""

from __future__ import annotations

from pathlib import Path

from prober.wire.buffer import Reader, u16, vec
from prober.wire.constants import ExtensionType
from tests.hostile.tls13_server import Session


def alpn_extension(name: bytes) -> bytes:
    """An ALPN extension (type and body) selecting ``name``."""
    return u16(ExtensionType.ALPN) + vec(vec(vec(name, 1), 2), 2)


def offered_alpn(s: Session) -> list[bytes]:
    body = s.hello.extension(ExtensionType.ALPN)
    if body is None:
        return []
    lst = Reader(body).sub(2)
    names = []
    while not lst.eof():
        names.append(lst.pull_vector(1))
    return names


def alpn_profile(tmp_path: Path, name: str, *alpn: bytes) -> Path:
    """A profile file offering exactly ``alpn`` (a raw extension: any bytes go)."""
    body = vec(b"".join(vec(a, 1) for a in alpn), 2)
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
schema: 1
name: {name}
hello:
  version: TLSv1.2
  cipher_suites: [TLS_AES_128_GCM_SHA256]
  extensions:
    - supported_versions: [TLSv1.3]
    - supported_groups: [x25519]
    - signature_algorithms: [ecdsa_secp256r1_sha256]
    - key_share: [x25519]
    - raw: {{type: "0x0010", data: "{body.hex()}"}}
""")
    return path
