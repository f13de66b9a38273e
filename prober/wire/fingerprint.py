"""JA3 and JA4 fingerprints of a ClientHello.

JA3: Salesforce's original definition (decimal fields, GREASE removed, MD5).
JA4: FoxIO's JA4 (technical_details/JA4.md): ``t<ver><d|i><nn><nn><alpn>_<suites>_<exts>``.
"""

from __future__ import annotations

import hashlib

from prober.wire.buffer import Reader
from prober.wire.clienthello import ClientHello
from prober.wire.constants import ExtensionType
from prober.wire.registry import GREASE_VALUES

_JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
                 0x0002: "s2"}


def _u16s(body: bytes | None, len_width: int = 2) -> list[int]:
    if body is None:
        return []
    return Reader(body).pull_list(len_width, 2)


def ja3_string(ch: ClientHello) -> str:
    exts = [t for t, _ in ch.extensions or () if t not in GREASE_VALUES]
    groups = [g for g in _u16s(ch.extension(ExtensionType.SUPPORTED_GROUPS))
              if g not in GREASE_VALUES]
    pf = ch.extension(ExtensionType.EC_POINT_FORMATS)
    formats = list(Reader(pf).pull_list(1, 1)) if pf is not None else []
    fields = [
        str(ch.legacy_version),
        "-".join(str(c) for c in ch.cipher_suites if c not in GREASE_VALUES),
        "-".join(str(e) for e in exts),
        "-".join(str(g) for g in groups),
        "-".join(str(f) for f in formats),
    ]
    return ",".join(fields)


def ja3(ch: ClientHello) -> str:
    return hashlib.md5(ja3_string(ch).encode(), usedforsecurity=False).hexdigest()


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def ja4_parts(ch: ClientHello) -> tuple[str, str, str]:
    """(JA4_a, sorted suites, sorted extensions_sigalgs) before hashing: that is JA4_r."""
    versions = [v for v in _u16s(ch.extension(ExtensionType.SUPPORTED_VERSIONS), 1)
                if v not in GREASE_VALUES]
    top = max(versions) if versions else ch.legacy_version
    ver = _JA4_VERSIONS.get(top, "00")
    sni = "d" if ch.extension(ExtensionType.SERVER_NAME) is not None else "i"
    suites = [c for c in ch.cipher_suites if c not in GREASE_VALUES]
    exts = [t for t, _ in ch.extensions or () if t not in GREASE_VALUES]
    alpn_body = ch.extension(ExtensionType.ALPN)
    alpn = "00"
    if alpn_body is not None:
        lst = Reader(alpn_body).sub(2)
        first = lst.pull_vector(1) if not lst.eof() else b""
        if first:
            # JA4: the first and last characters when both are ASCII alphanumerics,
            # else the first and last hex digits of the raw value
            a, b = first[:1], first[-1:]
            alpn = (a + b).decode() if (a + b).isalnum() and (a + b).isascii() else (
                a.hex()[0] + b.hex()[1])
    part_a = f"t{ver}{sni}{min(len(suites), 99):02d}{min(len(exts), 99):02d}{alpn}"
    part_b = ",".join(f"{c:04x}" for c in sorted(suites))
    sorted_exts = sorted(e for e in exts
                         if e not in (ExtensionType.SERVER_NAME, ExtensionType.ALPN))
    part_c = ",".join(f"{e:04x}" for e in sorted_exts)
    sigs = [s for s in _u16s(ch.extension(ExtensionType.SIGNATURE_ALGORITHMS))
            if s not in GREASE_VALUES]
    if sigs:
        part_c += "_" + ",".join(f"{s:04x}" for s in sigs)
    return part_a, part_b, part_c


def ja4(ch: ClientHello) -> str:
    a, b, c = ja4_parts(ch)
    return f"{a}_{_hash12(b)}_{_hash12(c)}"


def ja4_r(ch: ClientHello) -> str:
    return "_".join(ja4_parts(ch))
