"""Registries of cipher suites, named groups and signature schemes.

Loaded once, lazily, from the JSON shipped in ``prober/data`` (transcribed from
IANA, OpenSSL and testssl.sh; see ``prober/data/PROVENANCE.md``). Every name a
user may type is accepted: IANA name, OpenSSL name or alias, or a code point
written ``0xC014`` / ``0xC0,0x14`` / decimal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

GREASE_VALUES: frozenset[int] = frozenset(0x0A0A + 0x1010 * i for i in range(16))

VERSION_NAMES: dict[int, str] = {
    0x0002: "SSLv2",
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}
# oldest first: the one list of versions every other version list is derived from
VERSIONS: tuple[str, ...] = tuple(VERSION_NAMES[v] for v in sorted(VERSION_NAMES))
_VERSION_ALIASES: dict[str, int] = {
    "sslv2": 0x0002,
    "ssl2": 0x0002,
    "sslv3": 0x0300,
    "ssl3": 0x0300,
    "tlsv1": 0x0301,
    "tls1": 0x0301,
    "tls1.0": 0x0301,
    "tlsv1.0": 0x0301,
    "tls1.1": 0x0302,
    "tlsv1.1": 0x0302,
    "tls1.2": 0x0303,
    "tlsv1.2": 0x0303,
    "tls1.3": 0x0304,
    "tlsv1.3": 0x0304,
}


class UnknownName(KeyError):
    """A name or code point that no registry knows."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"unknown {kind} {name!r}")
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class CipherSuite:
    value: int
    name: str  # IANA name, or the best-known name for non-IANA code points
    openssl_name: str | None
    kx: str | None
    auth: str | None
    enc: str | None
    enc_bits: int | None
    aead: bool
    forward_secret: bool
    scsv: bool
    tls_versions: tuple[str, ...]
    # named by OpenSSL 3 itself (the registry's local `openssl ciphers` listing), not only
    # by testssl.sh's mapping of older spellings: what an OpenSSL server reads from a hello
    openssl_builtin: bool = False

    @property
    def tls13(self) -> bool:
        return self.tls_versions == ("TLSv1.3",)


@dataclass(frozen=True)
class Group:
    value: int
    name: str
    kind: str
    tls13_usable: bool


@dataclass(frozen=True)
class SignatureScheme:
    value: int
    name: str


def _load(name: str) -> Any:
    text = resources.files("prober.data").joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def parse_code(text: str) -> int | None:
    """Read a code point written as 0xC014, 0xC0,0x14, GREASE_0x0A0A or decimal; None if not one."""
    t = text.strip().lower().replace(" ", "")
    if t == "grease":
        return 0x0A0A
    if t.startswith("grease_"):
        t = t[len("grease_"):]
    try:
        if "," in t:
            parts = [int(p, 16) for p in t.split(",")]
            value = 0
            for p in parts:
                value = (value << 8) | p
            return value
        if t.startswith("0x"):
            return int(t, 16)
        if t.isdigit():
            return int(t)
    except ValueError:
        return None
    return None


class _Index:
    def __init__(self) -> None:
        raw = _load("cipher_suites.json")
        self.suites: dict[int, CipherSuite] = {}
        self.suite_by_name: dict[str, int] = {}
        for e in raw["cipher_suites"]:
            cs = CipherSuite(
                value=e["value"],
                name=e.get("iana_name") or e["name"],
                openssl_name=e.get("openssl_name"),
                kx=e.get("kx"),
                auth=e.get("auth"),
                enc=e.get("enc"),
                enc_bits=e.get("enc_bits"),
                aead=bool(e.get("aead")),
                forward_secret=bool(e.get("forward_secret")),
                scsv=bool(e.get("scsv")),
                tls_versions=tuple(e.get("tls_versions") or ()),
                openssl_builtin=str(e.get("openssl_name_source") or "").startswith("openssl-"),
            )
            self.suites[cs.value] = cs
            names = [e["name"], e.get("iana_name"), e.get("openssl_name"),
                     *e.get("openssl_aliases", [])]
            names += e.get("former_iana_names", []) or []
            for n in names:
                if n:
                    # first writer wins: IANA names are unique, OpenSSL names may alias
                    self.suite_by_name.setdefault(n.lower(), cs.value)
        self.sslv2: dict[int, CipherSuite] = {}
        for e in raw["sslv2_cipher_specs"]:
            cs = CipherSuite(
                value=e["value"],
                name=e["name"],
                openssl_name=e.get("openssl_name"),
                kx=e.get("kx"),
                auth=e.get("auth"),
                enc=e.get("enc"),
                enc_bits=None,
                aead=False,
                forward_secret=False,
                scsv=False,
                tls_versions=("SSLv2",),
            )
            self.sslv2[cs.value] = cs

        graw = _load("groups.json")
        self.groups: dict[int, Group] = {}
        self.group_by_name: dict[str, int] = {}
        for e in graw["groups"]:
            g = Group(e["value"], e["name"], e.get("kind", ""), bool(e.get("tls13_usable")))
            self.groups[g.value] = g
            for n in [e["name"], *e.get("aliases", [])]:
                self.group_by_name.setdefault(n.lower(), g.value)
        # spellings used by OpenSSL and by the policy catalogs
        for alias, canonical in (("prime256v1", "secp256r1"), ("p-256", "secp256r1"),
                                 ("p-384", "secp384r1"), ("p-521", "secp521r1")):
            if canonical in self.group_by_name:
                self.group_by_name.setdefault(alias, self.group_by_name[canonical])

        sraw = _load("signature_schemes.json")
        self.sigs: dict[int, SignatureScheme] = {}
        self.sig_by_name: dict[str, int] = {}
        for e in sraw["signature_schemes"]:
            s = SignatureScheme(e["value"], e["name"])
            self.sigs[s.value] = s
            self.sig_by_name[s.name.lower()] = s.value
        for e in sraw["tls12_hash_signature_pairs"]:
            if e["value"] not in self.sigs:
                s = SignatureScheme(e["value"], e["name"])
                self.sigs[s.value] = s
            self.sig_by_name.setdefault(e["name"].lower(), e["value"])


@cache
def _index() -> _Index:
    return _Index()


def suite(value: int) -> CipherSuite | None:
    return _index().suites.get(value)


def all_suites() -> list[CipherSuite]:
    return list(_index().suites.values())


def sslv2_specs() -> dict[int, CipherSuite]:
    """Every SSLv2 cipher spec of the registry, by its 24-bit value."""
    return _index().sslv2


def sslv2_spec(value: int) -> CipherSuite | None:
    return _index().sslv2.get(value)


def suite_value(name: str) -> int:
    """Code point of a suite given by IANA name, OpenSSL name or code point."""
    idx = _index()
    v = idx.suite_by_name.get(name.strip().lower())
    if v is None and not name.upper().startswith("TLS_") and not name.upper().startswith("SSL_"):
        v = idx.suite_by_name.get("tls_" + name.strip().lower())
    if v is not None:
        return v
    code = parse_code(name)
    if code is not None and 0 <= code <= 0xFFFF:
        return code
    raise UnknownName("cipher suite", name)


def suite_name(value: int) -> str:
    cs = suite(value)
    if cs is not None:
        return cs.name
    if value in GREASE_VALUES:
        return f"GREASE_0x{value:04X}"
    return f"0x{value:04X}"


def suite_openssl_name(value: int) -> str | None:
    cs = suite(value)
    return cs.openssl_name if cs else None


def group(value: int) -> Group | None:
    return _index().groups.get(value)


def all_groups() -> list[Group]:
    return list(_index().groups.values())


def group_value(name: str) -> int:
    v = _index().group_by_name.get(name.strip().lower())
    if v is not None:
        return v
    code = parse_code(name)
    if code is not None and 0 <= code <= 0xFFFF:
        return code
    raise UnknownName("group", name)


def group_name(value: int) -> str:
    g = group(value)
    if g is not None:
        return g.name
    if value in GREASE_VALUES:
        return f"GREASE_0x{value:04X}"
    return f"0x{value:04X}"


def sig_value(name: str) -> int:
    v = _index().sig_by_name.get(name.strip().lower())
    if v is not None:
        return v
    code = parse_code(name)
    if code is not None and 0 <= code <= 0xFFFF:
        return code
    raise UnknownName("signature scheme", name)


def sig_name(value: int) -> str:
    s = _index().sigs.get(value)
    if s is not None:
        return s.name
    if value in GREASE_VALUES:
        return f"GREASE_0x{value:04X}"
    return f"0x{value:04X}"


def version_value(name: str) -> int:
    key = name.strip().lower().replace(" ", "").replace("_", ".")
    if key in _VERSION_ALIASES:
        return _VERSION_ALIASES[key]
    for v, n in VERSION_NAMES.items():
        if n.lower() == key:
            return v
    if key.startswith("tlsv1.3-draft") and key[13:].isdigit() and int(key[13:]) <= 0xFF:
        return 0x7F00 | int(key[13:])  # what version_name calls a draft version
    code = parse_code(name)
    if code is not None and 0 <= code <= 0xFFFF:
        return code
    raise UnknownName("protocol version", name)


def version_name(value: int) -> str:
    if value in VERSION_NAMES:
        return VERSION_NAMES[value]
    if value in GREASE_VALUES:
        return f"GREASE_0x{value:04X}"
    if 0x7F00 <= value <= 0x7FFF:
        return f"TLSv1.3-draft{value & 0xFF}"
    return f"0x{value:04X}"


def is_grease(value: int) -> bool:
    return value in GREASE_VALUES
