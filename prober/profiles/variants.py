"""The hello-mutation kit: a hello derived from another, one change at a time. Policy
scans and diagnose build every probe that is "this hello, but ..." here, so a variant
means the same bytes whichever command sends it.

Every function returns a new template and leaves the one it is given alone: a
reference hello is the base of many variants.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from prober.profiles.compile import compile_extension
from prober.profiles.model import TransportSpec
from prober.wire import registry as reg
from prober.wire.buffer import Reader
from prober.wire.clienthello import (
    ExtSpec,
    HelloSpec,
    KeyShareSpec,
    build,
    ext_supported_versions,
    ext_u16_list,
)
from prober.wire.constants import TLS_FALLBACK_SCSV, ExtensionType

UNKNOWN_EXTENSION = 0xEEEE  # unassigned, and not a GREASE value
X25519MLKEM768 = 0x11EC
X25519 = 0x001D
# where a browser puts GREASE (RFC 8701), one value per place as Chrome draws them
_GREASE_SUITE, _GREASE_FIRST_EXT, _GREASE_LAST_EXT = 0x0A0A, 0x1A1A, 0x5A5A
_GREASE_IN_LISTS: dict[int, int] = {ExtensionType.SUPPORTED_GROUPS: 0x2A2A,
                                     ExtensionType.SUPPORTED_VERSIONS: 0x3A3A,
                                     ExtensionType.SIGNATURE_ALGORITHMS: 0x4A4A}
# plain ints, as in templates compiled from documents: a variant then equals (and prints
# as) the same hello written as a document
_PADDING = int(ExtensionType.PADDING)
_SUPPORTED_GROUPS = int(ExtensionType.SUPPORTED_GROUPS)
_KEY_SHARE = int(ExtensionType.KEY_SHARE)


def extension(name: str, value: Any = None) -> ExtSpec:
    """An extension written as in a profile document: ``extension("alpn", ["h2"])``,
    ``extension("status_request")``."""
    return compile_extension(name if value is None else {name: value})


def with_extension(spec: HelloSpec, ext: ExtSpec, *, first: bool = False) -> HelloSpec:
    """``ext`` in the place of the extension of its type; when there is none, added at
    the end (or first). A hello without an extensions block gets one."""
    out = copy.deepcopy(spec)
    exts = list(out.extensions or ())
    at = next((i for i, e in enumerate(exts) if e.type == ext.type), None)
    if at is not None:
        exts[at] = ext
    elif first:
        exts.insert(0, ext)
    else:
        exts.append(ext)
    out.extensions = exts
    return out


def without_extension(spec: HelloSpec, ext_type: int) -> HelloSpec:
    out = copy.deepcopy(spec)
    if out.extensions is not None:
        out.extensions = [e for e in out.extensions if e.type != ext_type]
    return out


def with_suites(spec: HelloSpec, suites: Sequence[int]) -> HelloSpec:
    out = copy.deepcopy(spec)
    out.cipher_suites = list(suites)
    return out


def padded(spec: HelloSpec, to: int) -> HelloSpec:
    """The hello padded so that, in one record, it is ``to`` bytes on the wire."""
    return with_extension(spec, ExtSpec(_PADDING, pad_to=to))


def with_fallback_scsv(spec: HelloSpec) -> HelloSpec:
    """TLS_FALLBACK_SCSV (RFC 7507) last, as a client retrying with a lower version sends."""
    return with_suites(spec, [*spec.cipher_suites, TLS_FALLBACK_SCSV])


def with_unknown_extension(spec: HelloSpec) -> HelloSpec:
    """An extension no server knows: servers must ignore those, intolerant ones fail."""
    return with_extension(spec, ExtSpec(UNKNOWN_EXTENSION, b"\x00"))


def greased(spec: HelloSpec) -> HelloSpec:
    """GREASE where a browser puts it: a suite, an extension first and one last, and a
    value in front of the groups, versions and signature algorithms."""
    out = with_suites(spec, [_GREASE_SUITE, *spec.cipher_suites])
    out = with_extension(out, ExtSpec(_GREASE_FIRST_EXT, b""), first=True)
    exts = []
    for e in out.extensions or ():
        grease = _GREASE_IN_LISTS.get(e.type)
        if grease is None:
            exts.append(e)
        elif e.type == ExtensionType.SUPPORTED_VERSIONS:
            exts.append(ExtSpec(e.type, ext_supported_versions(
                [grease, *Reader(e.body).pull_list(1, 2)])))
        else:
            exts.append(ExtSpec(e.type, ext_u16_list([grease, *Reader(e.body).pull_list(2, 2)])))
    out.extensions = [*exts, ExtSpec(_GREASE_LAST_EXT, b"")]
    return out


def many_suites(spec: HelloSpec, total: int = 160) -> HelloSpec:
    """More than 128 suites, the hello's own last, after unassigned code points no server
    can pick: only a server that reads the whole list can answer it."""
    keep = list(spec.cipher_suites)
    need = max(0, total - len(keep))
    filler = [v for v in range(0xD000, 0xE000)
              if reg.suite(v) is None and v not in reg.GREASE_VALUES][:need]
    return with_suites(spec, [*filler, *keep])


def with_pq_key_share(spec: HelloSpec) -> HelloSpec | None:
    """The hello with an X25519MLKEM768 key share first, as Chrome sends it (an extra
    ~1.2 kB); None when it has no key_share to put it in (no TLS 1.3)."""
    if spec.ext(ExtensionType.KEY_SHARE) is None:
        return None
    sg = spec.ext(ExtensionType.SUPPORTED_GROUPS)
    groups = Reader(sg.body).pull_list(2, 2) if sg is not None else [X25519]
    groups = [X25519MLKEM768, *[g for g in groups if g != X25519MLKEM768]]
    out = with_extension(spec, ExtSpec(_SUPPORTED_GROUPS, ext_u16_list(groups)))
    return with_extension(out, ExtSpec(_KEY_SHARE, key_shares=[
        KeyShareSpec(X25519MLKEM768), KeyShareSpec(X25519)]))


def split_point(spec: HelloSpec, sni: str | None) -> tuple[int, int]:
    """(cut, length) of the handshake message: the cut falls inside the SNI when there is
    one, since that is what a DPI device matches on."""
    msg = build(spec, sni).message
    if sni:
        at = msg.find(sni.encode("idna"))
        if at >= 0:
            return at + max(1, len(sni) // 2), len(msg)
    return max(1, len(msg) // 3), len(msg)


def split_over_records(spec: HelloSpec, sni: str | None) -> TransportSpec:
    """The hello in three TLS records, the first cut at :func:`split_point`."""
    cut, length = split_point(spec, sni)
    return TransportSpec(record_sizes=[cut, max(1, (length - cut) // 2)])


def split_over_segments(spec: HelloSpec, sni: str | None, pause_ms: float) -> TransportSpec:
    """The hello's one record in two TCP segments cut at :func:`split_point`, ``pause_ms``
    apart: only a peer that has to wait for the second one is tested."""
    cut, _ = split_point(spec, sni)
    # segments are cut in the wire bytes: the record header comes first
    return TransportSpec(segment_sizes=[cut + 5], pause_ms=pause_ms)
