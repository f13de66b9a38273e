"""The hello variants of the plan, built as profiles (pure): the sanity hello, the
version sweep, the size ladder and its bisection, the hello split over TLS records and
TCP segments, TLS_FALLBACK_SCSV; and the pure choices made from the results (the
known-good reference, the fallback versions, the bisection bounds).
"""

from __future__ import annotations

import copy
from itertools import pairwise
from typing import Any

from prober.core.outcome import Outcome
from prober.diagnose.findings import (
    LEGACY,
    STEP_RECORDS,
    STEP_SEGMENTS,
    SWEEP_ORDER,
    SWEEP_PROFILES,
    SWEEP_VERSIONS,
    Seen,
)
from prober.profiles.compile import compile_hello
from prober.profiles.families import BROAD_VERSIONS, VERSION_PROFILES, tls13_doc, version_profile
from prober.profiles.model import Profile, TransportSpec
from prober.wire import registry as reg
from prober.wire.buffer import Reader
from prober.wire.clienthello import ExtSpec, HelloSpec, KeyShareSpec, build, ext_u16_list
from prober.wire.constants import TLS_FALLBACK_SCSV, ExtensionType

SANITY = "sanity"
KNOWN_GOOD = "known-good"
# size ladder: wire sizes of the padded rungs; 1800 is a Chrome-like X25519MLKEM768 hello
LADDER = (600, 1300, 1800, 4000)
PQ_RUNG = 1800
X25519MLKEM768 = 0x11EC
X25519 = 0x001D
# a TCP segment split is only meaningful if the peer has to wait for the second part
SPLIT_PAUSE_MS = 200.0
# a version -> the sweep profile one below it
LOWER_VERSION = {SWEEP_VERSIONS[hi]: lo for lo, hi in pairwise(SWEEP_PROFILES)}


def sanity_profile(name: str) -> Profile:
    """A broad hello (TLS 1.0-1.3, every usual suite): what almost any server answers."""

    t13 = version_profile("tls1.3-only").spec.cipher_suites
    t12 = version_profile("tls1.2-only").spec.cipher_suites
    doc = tls13_doc([reg.suite_name(v) for v in t13],
                    legacy=[reg.suite_name(v) for v in t12])
    for i, e in enumerate(doc["extensions"]):
        if isinstance(e, dict) and "supported_versions" in e:
            doc["extensions"][i] = {"supported_versions": list(BROAD_VERSIONS)}
    return Profile(name=name, spec=compile_hello(doc), origin="generated",
                   description="broad TLS 1.0-1.3 hello (diagnose sanity probe)")


def sweep_profiles() -> list[Profile]:

    return [version_profile(n) for n in SWEEP_PROFILES]


def choose_reference(sweep: list[Seen]) -> tuple[str, str]:
    """(profile, why): the newest version the sweep got a full handshake with, else the
    broad sanity hello (which is what the variants are then built on)."""
    for prof in reversed(SWEEP_PROFILES):
        atts = [a for a in sweep if a.profile == prof]
        ok = sum(1 for a in atts if a.outcome == Outcome.OK)
        if atts and ok * 2 >= len(atts) and ok:
            return prof, f"the newest version the sweep succeeded with ({ok}/{len(atts)})"
    return SANITY, "no version of the sweep succeeded: the broad sanity hello is used"


def with_ext(spec: HelloSpec, ext: ExtSpec) -> HelloSpec:
    """A copy of ``spec`` with ``ext`` replacing the extension of its type (or appended)."""
    out = copy.deepcopy(spec)
    exts = [e for e in out.extensions or () if e.type != ext.type]
    out.extensions = [*exts, ext]
    return out


def small_spec(spec: HelloSpec, suite: int | None) -> HelloSpec:
    """The reference hello cut down to the suite the server chose: the ladder's first rung."""
    out = copy.deepcopy(spec)
    if suite is not None and suite in out.cipher_suites and len(out.cipher_suites) > 2:
        out.cipher_suites = [suite]
    return out


def padded(spec: HelloSpec, to: int) -> HelloSpec:
    return with_ext(spec, ExtSpec(ExtensionType.PADDING, pad_to=to))


def pq_spec(spec: HelloSpec) -> HelloSpec | None:
    """``spec`` with an X25519MLKEM768 key share first (None when it cannot do TLS 1.3)."""
    if spec.ext(ExtensionType.KEY_SHARE) is None:
        return None

    sg = spec.ext(ExtensionType.SUPPORTED_GROUPS)
    groups = Reader(sg.body).pull_list(2, 2) if sg is not None else [X25519]
    groups = [X25519MLKEM768, *[g for g in groups if g != X25519MLKEM768]]
    out = with_ext(spec, ExtSpec(ExtensionType.SUPPORTED_GROUPS, ext_u16_list(groups)))
    ks = ExtSpec(ExtensionType.KEY_SHARE,
                 key_shares=[KeyShareSpec(X25519MLKEM768), KeyShareSpec(X25519)])
    # keep the extensions' order: key_share where it was
    assert out.extensions is not None
    out.extensions = [ks if e.type == ExtensionType.KEY_SHARE else e for e in out.extensions]
    return out


def size_profiles(ref: Profile, suite: int | None, sni: str | None
                  ) -> list[tuple[Profile, dict[str, Any]]]:
    """The size ladder: small, ~600 B, ~1.3 kB, X25519MLKEM768 ~1.8 kB, 4 kB."""
    if ref.spec.sslv2 or ref.spec.extensions is None:
        return []  # SSLv2/SSLv3-style hellos have no extensions to pad with
    small = small_spec(ref.spec, suite)
    base = len(build(small, sni).records())
    out = [(Profile(name="size:small", spec=small, sni=ref.sni), {"size_target": base})]
    for to in LADDER:
        if to <= base:
            continue
        spec = padded(small, to)
        meta: dict[str, Any] = {"size_target": to}
        if to == PQ_RUNG:
            pq = pq_spec(small)
            meta["pq"] = pq is not None
            if pq is not None:
                spec = padded(pq, to)
        out.append((Profile(name=f"size:{to}", spec=spec, sni=ref.sni), meta))
    return out


def bisect_profile(ref: Profile, suite: int | None, to: int) -> Profile:
    return Profile(name=f"size:{to}", spec=padded(small_spec(ref.spec, suite), to),
                   sni=ref.sni)


def split_point(spec: HelloSpec, sni: str | None) -> tuple[int, int]:
    """(cut, length) of the handshake message: the cut falls inside the SNI when there is
    one, since that is what a DPI device matches on."""
    msg = build(spec, sni).message
    if sni:
        at = msg.find(sni.encode("idna"))
        if at >= 0:
            return at + max(1, len(sni) // 2), len(msg)
    return max(1, len(msg) // 3), len(msg)


def split_profiles(ref: Profile, sni: str | None) -> list[tuple[str, Profile, dict[str, Any]]]:
    if ref.spec.sslv2:
        return []
    cut, length = split_point(ref.spec, ref.sni.resolve(sni))
    records = [cut, max(1, (length - cut) // 2)]
    # segments are cut in the wire bytes: the record header comes first
    segments = [cut + 5]
    return [
        (STEP_RECORDS, Profile(name="records:split", spec=ref.spec, sni=ref.sni,
                               transport=TransportSpec(record_sizes=records)),
         {"record_sizes": records}),
        (STEP_SEGMENTS, Profile(name="segments:split", spec=ref.spec, sni=ref.sni,
                                transport=TransportSpec(segment_sizes=segments,
                                                        pause_ms=SPLIT_PAUSE_MS)),
         {"segment_sizes": segments, "pause_ms": SPLIT_PAUSE_MS}),
    ]


def intolerance_profile(ref: Profile, version: str) -> Profile | None:
    """The known-good hello of ``version`` (TLS 1.2 or older, which carries no
    supported_versions) with a supported_versions extension naming that version alone:
    any server takes it as it takes the plain one, an intolerant one does not."""
    if ref.spec.sslv2 or ref.spec.extensions is None or \
            ref.spec.ext(ExtensionType.SUPPORTED_VERSIONS) is not None:
        return None
    value = reg.version_value(version)
    ext = ExtSpec(ExtensionType.SUPPORTED_VERSIONS, bytes([2]) + value.to_bytes(2, "big"))
    return Profile(name="supported-versions", spec=with_ext(ref.spec, ext), sni=ref.sni,
                   origin="generated",
                   description=f"{version} hello with supported_versions [{version}]")


def fallback_profile(version: str, name: str = "fallback-scsv") -> Profile:
    """``version`` (TLSv1.x, SSLv3) with TLS_FALLBACK_SCSV, as a client retrying lower does."""

    spec = copy.deepcopy(version_profile(VERSION_PROFILES[version]).spec)
    spec.cipher_suites = [*spec.cipher_suites, TLS_FALLBACK_SCSV]
    return Profile(name=name, spec=spec, origin="generated",
                   description=f"{version} with TLS_FALLBACK_SCSV")


def fallback_versions(accepted: list[str]) -> list[tuple[str, str]]:
    """(profile name, version) of the TLS_FALLBACK_SCSV probes for the versions accepted.

    One below the newest (what a client retrying once sends), and every legacy version
    (TLS 1.1 and older) the server still accepts: refusing a fallback to a version the
    server does accept is what a client that had to retry runs into.
    """
    newest = _newest(accepted)
    if newest is None or newest not in LOWER_VERSION:
        return []
    below = SWEEP_VERSIONS[LOWER_VERSION[newest]]
    out = [("fallback-scsv", below)]
    for v in LEGACY:
        if v in accepted and v != below and v != newest:
            out.append((f"fallback-scsv@{v}", v))
    return out


def size_gaps(rungs: list[Seen], limit: int = 3) -> list[tuple[int, int]]:
    """(smaller, larger) hello sizes of neighbouring rungs whose fate differs, smallest
    first: each is a boundary to bisect. No assumption that failing is monotonic in
    size: a window of sizes that fail has a boundary on each side."""
    conn = sorted((a for a in rungs if a.connected), key=lambda a: a.hello_bytes)
    out: list[tuple[int, int]] = []
    for a, b in pairwise(conn):
        if a.answered != b.answered and b.hello_bytes > a.hello_bytes:
            out.append((a.hello_bytes, b.hello_bytes))
    return out[:limit]


def size_runs(rungs: list[Seen]) -> list[tuple[bool, list[Seen]]]:
    """The rungs by size, grouped into runs of the same fate: (answered, attempts)."""
    conn = sorted((a for a in rungs if a.connected), key=lambda a: a.hello_bytes)
    runs: list[tuple[bool, list[Seen]]] = []
    for a in conn:
        if runs and runs[-1][0] == a.answered:
            runs[-1][1].append(a)
        else:
            runs.append((a.answered, [a]))
    return runs


def bisect_bounds(rungs: list[Seen]) -> tuple[int, int] | None:
    """(largest passing, smallest failing) hello size when the ladder shows a threshold."""
    conn = [a for a in rungs if a.connected]
    ok = [a.hello_bytes for a in conn if a.answered]
    bad = [a.hello_bytes for a in conn if not a.answered]
    if not ok or not bad or max(ok) >= min(bad):
        return None
    return max(ok), min(bad)


def _newest(versions: list[str]) -> str | None:
    known = [v for v in versions if v in SWEEP_ORDER]
    return max(known, key=SWEEP_ORDER.index) if known else None
