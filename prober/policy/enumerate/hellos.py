"""Hello documents a policy scan sends, built on the generated-profile helpers.

Everything here returns a profile ``hello`` mapping (see profiles/README.md), so each
probe is compiled like any profile and runs as a normal attempt.
"""

from __future__ import annotations

import copy
from typing import Any

from prober.profiles.families import LEGACY_GROUPS, candidate_suites, legacy_doc, tls13_doc
from prober.wire import registry as reg

# brainpool too: a server whose only curves are those must not look ECDHE-less
ELIMINATION_GROUPS_12 = [*LEGACY_GROUPS, "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1"]
UNKNOWN_EXTENSION = 0xEEEE  # unassigned, and not a GREASE value


def names(values: list[int] | tuple[int, ...]) -> list[Any]:
    """Suites for a hello document: code points, not names (two registry entries may
    share a name, and a code point compiles without a lookup)."""
    return list(values)


def hello(version: str, suites: list[int], *, groups: list[str] | None = None,
          key_shares: list[str] | None = None) -> dict[str, Any]:
    """A hello offering exactly ``version`` (as the highest) and ``suites``."""
    if version == "TLSv1.3":
        return tls13_doc(names(suites), groups=groups, key_shares=key_shares)
    return legacy_doc(version, names(suites), groups or ELIMINATION_GROUPS_12)


def sslv2_hello() -> dict[str, Any]:
    specs = [f"0x{v:06X}" for v in sorted(reg._index().sslv2)]
    return {"sslv2": True, "version": "SSLv2", "cipher_suites": specs}


def _ext_key(entry: Any) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def set_ext(doc: dict[str, Any], name: str, value: Any, *, first: bool = False
            ) -> dict[str, Any]:
    """A copy of ``doc`` with extension ``name`` set to ``value`` (None: a bare entry),
    replaced in place when present, else added (at the end, or first)."""
    out = copy.deepcopy(doc)
    exts = out.setdefault("extensions", [])
    entry: Any = name if value is None else {name: value}
    for i, e in enumerate(exts):
        if _ext_key(e) == name:
            exts[i] = entry
            return out
    if first:
        exts.insert(0, entry)
    else:
        exts.append(entry)
    return out


def with_suites(doc: dict[str, Any], suites: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["cipher_suites"] = list(suites)
    return out


def padded(doc: dict[str, Any], total: int) -> dict[str, Any]:
    """The hello padded so that its record is ``total`` bytes on the wire."""
    return set_ext(doc, "padding", {"to": total})


def with_unknown_extension(doc: dict[str, Any]) -> dict[str, Any]:
    return set_ext(doc, "raw", {"type": f"0x{UNKNOWN_EXTENSION:04X}", "data": "00"})


def greased(doc: dict[str, Any]) -> dict[str, Any]:
    """GREASE (RFC 8701) where a browser puts it: suite, extensions, groups, versions."""
    out = with_suites(doc, ["GREASE_0x0A0A", *doc["cipher_suites"]])
    out = set_ext(out, "grease", "0x1A1A", first=True)
    exts = out["extensions"]
    for i, e in enumerate(exts):
        key = _ext_key(e)
        if key in ("supported_groups", "supported_versions", "signature_algorithms"):
            grease = {"supported_groups": "GREASE_0x2A2A", "supported_versions": "GREASE_0x3A3A",
                      "signature_algorithms": "GREASE_0x4A4A"}[key]
            exts[i] = {key: [grease, *e[key]]}
    exts.append({"grease": "0x5A5A"})
    return out


def many_suites(doc: dict[str, Any], total: int = 160) -> dict[str, Any]:
    """More than 128 suites, the known-good ones last, after unassigned code points no
    server can pick: only a server that reads the whole list can answer it."""
    keep = list(doc["cipher_suites"])
    need = max(0, total - len(keep))
    filler = [v for v in range(0xD000, 0xE000)
              if reg.suite(v) is None and v not in reg.GREASE_VALUES][:need]
    return with_suites(doc, [*names(filler), *keep])


def tls13_with_legacy(legacy: list[int]) -> dict[str, Any]:
    """A TLS 1.3 + 1.2 hello (what every current client sends) whose only TLS 1.2 suites
    are ``legacy``: a TLS 1.2 server must answer it with TLS 1.2."""
    return tls13_doc(names(candidate_suites("TLSv1.3")), legacy=names(legacy))
